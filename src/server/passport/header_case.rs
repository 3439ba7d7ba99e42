//! Header-name spelling for Passport responses (see the module docs of
//! [`super`], "Header case").

use anyhow::Context as _;
use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{Extensions, Response, StatusCode};
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, warn};

/// Header names in the spelling the clients look for.
const HEADER_SPELLINGS: [&str; 12] = [
    "PassportURLs",
    "Authentication-Info",
    "WWW-Authenticate",
    "Content-Length",
    "Content-Type",
    "Connection",
    "Date",
    "Location",
    "Cache-Control",
    "Server",
    "Set-Cookie",
    "Keep-Alive",
];

static HEADER_CASE: tokio::sync::OnceCell<Option<Extensions>> = tokio::sync::OnceCell::const_new();

/// Response extensions that make hyper write the names of
/// `HEADER_SPELLINGS` in that spelling (see [`super`], "Header case"). `None` if
/// they could not be obtained (logged once); responses then go out in
/// lower (or title) case.
pub async fn header_case() -> Option<&'static Extensions> {
    HEADER_CASE
        .get_or_init(|| async {
            match capture_header_case().await {
                Ok(extensions) => Some(extensions),
                Err(e) => {
                    warn!(error = %e, "cannot prepare Passport header spellings; header names will not have the case clients expect");
                    None
                }
            }
        })
        .await
        .as_ref()
}

pub(super) async fn with_header_case(mut response: Response<Body>) -> Response<Body> {
    if let Some(extensions) = header_case().await {
        response.extensions_mut().extend(extensions.clone());
    }
    response
}

/// An address for an axum-server that serves one in-memory connection.
#[derive(Clone, Debug)]
struct InMemory;

struct InMemoryListener(parking_lot::Mutex<Option<tokio::io::DuplexStream>>);

impl axum_server::Address for InMemory {
    type Stream = tokio::io::DuplexStream;
    type Listener = InMemoryListener;
}

impl axum_server::AddrListener<tokio::io::DuplexStream, InMemory> for InMemoryListener {
    fn bind_to(_: InMemory) -> impl Future<Output = io::Result<Self>> + Send {
        std::future::ready(Err(io::Error::other(
            "an in-memory listener cannot be bound",
        )))
    }

    fn accept_stream(
        &self,
    ) -> impl Future<Output = io::Result<(tokio::io::DuplexStream, InMemory)>> + Send {
        let stream = self.0.lock().take();
        async move {
            match stream {
                Some(stream) => Ok((stream, InMemory)),
                None => std::future::pending().await,
            }
        }
    }

    fn get_local_addr(&self) -> io::Result<InMemory> {
        Ok(InMemory)
    }
}

/// Lets hyper parse a request whose header names are spelled as wanted and
/// keeps the request's extensions, which then hold hyper's `HeaderCaseMap`.
async fn capture_header_case() -> anyhow::Result<Extensions> {
    let (mut client, server_side) = tokio::io::duplex(16 * 1024);
    let captured: Arc<parking_lot::Mutex<Option<Extensions>>> = Arc::default();
    let sink = captured.clone();
    let app = Router::new().fallback(move |request: Request| {
        let sink = sink.clone();
        async move {
            *sink.lock() = Some(request.extensions().clone());
            StatusCode::NO_CONTENT
        }
    });
    let mut server = axum_server::Server::<InMemory>::from_listener(InMemoryListener(
        parking_lot::Mutex::new(Some(server_side)),
    ))
    .http1_only();
    server.http_builder().http1().preserve_header_case(true);

    let mut request = String::from("GET / HTTP/1.1\r\nHost: localhost\r\n");
    for name in HEADER_SPELLINGS {
        let value = if name == "Content-Length" { "0" } else { "x" };
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let exchange = async {
        client.write_all(request.as_bytes()).await?;
        let mut reply = Vec::new();
        let mut chunk = [0u8; 1024];
        while !reply.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = client.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, io::Error>(())
    };
    tokio::select! {
        result = server.serve(app.into_make_service()) => {
            result?;
            anyhow::bail!("the in-memory server stopped early");
        }
        result = tokio::time::timeout(Duration::from_secs(5), exchange) => {
            result.context("the in-memory exchange timed out")??;
        }
    }
    drop(client);
    let mut extensions = captured
        .lock()
        .take()
        .context("the in-memory request never reached its handler")?;
    extensions.remove::<axum_server::ConnectionShutdown>();
    let described = format!("{extensions:?}");
    if !described.contains("HeaderCaseMap") {
        anyhow::bail!("hyper kept no header spellings (extensions: {described})");
    }
    debug!(extensions = %described, "Passport header spellings ready");
    Ok(extensions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hyper_keeps_the_wanted_spellings() {
        // Guards the header-case mechanism against hyper or axum-server changes.
        let extensions = header_case().await.expect("header spellings captured");
        assert!(format!("{extensions:?}").contains("HeaderCaseMap"));
    }
}
