//! Serving the Passport router: plain HTTP or HTTPS, HTTP/1 limits and
//! timeouts, graceful shutdown.

use super::header_case::header_case;
use super::legacy_request_line::LegacyAcceptor;
use super::legacy_tls::{HttpsAcceptor, legacy_context};
use crate::config::TlsConfig;
use anyhow::Context as _;
use axum::Router;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info};

/// How long a new connection may take to send its first request, and a
/// request its headers.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long open connections get to finish once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The rustls server configuration for `http.tls` (see
/// [`crate::tls::server_config`]), offering HTTP/1.1 and HTTP/1.0 by ALPN.
/// The legacy (OpenSSL) side is checked too, so that the start check
/// refuses files only OpenSSL cannot use.
pub fn tls_server_config(tls: &TlsConfig) -> anyhow::Result<rustls::ServerConfig> {
    let mut config = crate::tls::server_config(&tls.certificate, &tls.private_key, "http.tls")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec(), b"http/1.0".to_vec()];
    legacy_context(tls)?;
    Ok(config)
}

/// The HTTP/1 settings shared by the plain and TLS servers.
macro_rules! configure_http1 {
    ($server:expr) => {{
        $server
            .http_builder()
            .http1()
            .title_case_headers(true)
            .header_read_timeout(Some(REQUEST_TIMEOUT))
            .max_buf_size(64 * 1024)
            .max_headers(64);
    }};
}

/// Serves `router` on `listener` (plain HTTP, or HTTPS with `tls`) until
/// `shutdown` resolves; connections then get five seconds to finish.
pub async fn serve(
    listener: std::net::TcpListener,
    router: Router,
    tls: Option<&TlsConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let local = listener.local_addr().ok();
    let tls_config = tls.map(tls_server_config).transpose()?;
    let legacy_tls = match tls {
        Some(tls) => legacy_context(tls)?,
        None => None,
    };
    // Prepared before the first client arrives.
    header_case().await;
    let handle = axum_server::Handle::new();
    let stopper = {
        let handle = handle.clone();
        tokio::spawn(async move {
            shutdown.await;
            handle.graceful_shutdown(Some(SHUTDOWN_GRACE));
        })
    };
    let make_service = router.into_make_service_with_connect_info::<SocketAddr>();
    let server = axum_server::from_tcp(listener)
        .context("cannot use the HTTP listener")?
        .handle(handle)
        .http1_only()
        .first_request_timeout(REQUEST_TIMEOUT)
        .accept_error_handler(log_accept_error);
    let result = match tls_config {
        None => {
            info!(address = ?local, "Passport HTTP listening");
            let mut server =
                server.acceptor(LegacyAcceptor(axum_server::accept::NoDelayAcceptor::new()));
            configure_http1!(server);
            server.serve(make_service).await
        }
        Some(config) => {
            info!(
                address = ?local,
                legacy_clients = legacy_tls.is_some(),
                "Passport HTTPS listening (TLS 1.2/1.3; with legacy_clients also TLS 1.0/1.1)"
            );
            let acceptor = HttpsAcceptor::new(Arc::new(config), legacy_tls);
            let mut server = server.acceptor(LegacyAcceptor(acceptor));
            configure_http1!(server);
            server.serve(make_service).await
        }
    };
    stopper.abort();
    result.context("Passport HTTP server failed")
}

/// Says why a connection was dropped before HTTP began: with a peer, its
/// acceptor failed (TLS handshake refused or timed out); without, the
/// listener could not accept (the server retries).
fn log_accept_error(peer: Option<&SocketAddr>, error: &io::Error) {
    match peer {
        Some(peer) => {
            debug!(%peer, %error, "closing HTTP connection before its first request: TLS handshake or socket setup failed");
        }
        None => debug!(%error, "HTTP listener cannot accept a connection; retrying"),
    }
}
