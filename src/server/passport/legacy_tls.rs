//! TLS 1.0/1.1 for Windows XP's SChannel, next to rustls on the same port.
//!
//! rustls has no TLS 1.0 or 1.1, and Debian's system OpenSSL 3.0 is built
//! without 3DES or RC4 suites. So msngate carries its own OpenSSL (the
//! `openssl` crate's `vendored` build, with `weak-crypto` and `legacy`
//! turned on in Cargo.toml) and uses it only for clients whose ClientHello
//! offers nothing newer than TLS 1.1 ([`super::client_hello`]). Everyone
//! else gets rustls, as before.
//!
//! The legacy context offers exactly what XP offers and needs: TLS 1.0 and
//! 1.1, RSA key exchange, TLS_RSA_WITH_3DES_EDE_CBC_SHA, then
//! TLS_RSA_WITH_RC4_128_SHA and TLS_RSA_WITH_RC4_128_MD5 (server order, so
//! 3DES wins where the client has it), security level 0 (SHA-1 and MD5 MACs,
//! short RSA keys).

use super::client_hello::{Classified, HelloKind, classify};
use crate::config::TlsConfig;
use anyhow::Context as _;
use openssl::pkey::{Id, PKey};
use openssl::ssl::{Ssl, SslContext, SslContextBuilder, SslMethod, SslOptions, SslVersion};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tracing::warn;

/// The suites of XP's SChannel that msngate accepts, in the server's order
/// of preference (OpenSSL's names).
pub const LEGACY_SUITES: [(&str, &str); 3] = [
    ("DES-CBC3-SHA", "TLS_RSA_WITH_3DES_EDE_CBC_SHA"),
    ("RC4-SHA", "TLS_RSA_WITH_RC4_128_SHA"),
    ("RC4-MD5", "TLS_RSA_WITH_RC4_128_MD5"),
];

/// How long a client gets to send its ClientHello, and then to finish the
/// handshake (the same as rustls's default in axum-server).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// OpenSSL's legacy provider (it holds RC4), loaded once into the default
/// library context next to the default provider, and kept loaded.
static LEGACY_PROVIDER: OnceLock<Result<openssl::provider::Provider, String>> = OnceLock::new();

fn load_legacy_provider() -> anyhow::Result<()> {
    let loaded = LEGACY_PROVIDER.get_or_init(|| {
        openssl::provider::Provider::try_load(None, "legacy", true).map_err(|e| e.to_string())
    });
    match loaded {
        Ok(_) => Ok(()),
        Err(error) => anyhow::bail!("cannot load OpenSSL's legacy provider (RC4): {error}"),
    }
}

/// A context builder with the legacy versions, options and security level,
/// but no suites or certificate yet.
fn legacy_builder() -> anyhow::Result<SslContextBuilder> {
    load_legacy_provider()?;
    let mut builder = SslContextBuilder::new(SslMethod::tls_server())
        .context("OpenSSL: cannot create a TLS context")?;
    // Level 0: SHA-1/MD5 MACs, RC4 and 3DES are below every other level.
    builder.set_security_level(0);
    builder
        .set_min_proto_version(Some(SslVersion::TLS1))
        .context("OpenSSL: cannot allow TLS 1.0")?;
    builder
        .set_max_proto_version(Some(SslVersion::TLS1_1))
        .context("OpenSSL: cannot limit the legacy listener to TLS 1.1")?;
    // SslOptions::ALL: OpenSSL's workarounds for old peers (among them no
    // empty fragments before CBC records, which some old stacks choke on).
    builder.set_options(
        SslOptions::ALL
            | SslOptions::NO_COMPRESSION
            | SslOptions::CIPHER_SERVER_PREFERENCE
            | SslOptions::NO_TICKET,
    );
    Ok(builder)
}

/// The names (OpenSSL's) of [`LEGACY_SUITES`] this build of OpenSSL has.
/// All three, unless it was built without `weak-crypto` or `legacy`.
pub fn available_legacy_suites() -> anyhow::Result<Vec<&'static str>> {
    let mut available = Vec::new();
    for (name, _) in LEGACY_SUITES {
        if legacy_builder()?.set_cipher_list(name).is_ok() {
            available.push(name);
        }
    }
    Ok(available)
}

/// Key files already warned about as not RSA.
static NOT_RSA_WARNED: parking_lot::Mutex<Vec<std::path::PathBuf>> =
    parking_lot::Mutex::new(Vec::new());

/// The OpenSSL context for TLS 1.0/1.1 clients, or `None` when
/// `http.tls.legacy_clients` is off or the key cannot serve them (not RSA:
/// XP's suites all use RSA key exchange), which is said once in a warning.
pub fn legacy_context(tls: &TlsConfig) -> anyhow::Result<Option<SslContext>> {
    if !tls.legacy_clients {
        return Ok(None);
    }
    // Resolved by `certs::resolve_http_tls` (msngate's own files when the
    // operator named none) before the listener gets here.
    let Some(key_path) = tls.private_key.as_deref() else {
        anyhow::bail!("http.tls.private_key: no key file");
    };
    let pem = std::fs::read(key_path)
        .with_context(|| format!("http.tls.private_key: cannot read {}", key_path.display()))?;
    let key = PKey::private_key_from_pem(&pem).with_context(|| {
        format!(
            "http.tls.private_key: OpenSSL cannot read the key in {}",
            key_path.display()
        )
    })?;
    if key.id() != Id::RSA {
        // The context is built at the start check and again by the
        // listener: one warning per key file is enough.
        let mut warned = NOT_RSA_WARNED.lock();
        if warned.iter().any(|p| p == key_path) {
            return Ok(None);
        }
        warned.push(key_path.to_path_buf());
        warn!(
            private_key = %key_path.display(),
            key_type = ?key.id(),
            "http.tls: the key is not RSA, so TLS 1.0/1.1 clients (Windows XP) cannot sign in; \
             use an RSA certificate for them, or set http.tls.legacy_clients: false to silence this"
        );
        return Ok(None);
    }
    let available = available_legacy_suites()?;
    if available.is_empty() {
        anyhow::bail!(
            "http.tls.legacy_clients: this build's OpenSSL has none of {:?}; set legacy_clients: false",
            LEGACY_SUITES.map(|(name, _)| name)
        );
    }
    if available.len() < LEGACY_SUITES.len() {
        warn!(
            ?available,
            "http.tls.legacy_clients: this build's OpenSSL lacks some of Windows XP's suites"
        );
    }
    let Some(certificate) = tls.certificate.as_deref() else {
        anyhow::bail!("http.tls.certificate: no certificate file");
    };
    let mut builder = legacy_builder()?;
    builder
        .set_cipher_list(&available.join(":"))
        .context("OpenSSL: cannot set the legacy cipher suites")?;
    builder
        .set_certificate_chain_file(certificate)
        .with_context(|| {
            format!(
                "http.tls.certificate: OpenSSL cannot read the chain in {}",
                certificate.display()
            )
        })?;
    builder
        .set_private_key(&key)
        .context("http.tls.private_key: OpenSSL refuses the key")?;
    builder
        .check_private_key()
        .context("http.tls: the certificate and private key do not form a pair")?;
    Ok(Some(builder.build()))
}

/// The acceptor of the HTTPS listener: sets TCP_NODELAY, then hands the
/// connection to rustls, or, when `legacy` is set and the ClientHello offers
/// nothing newer than TLS 1.1, to OpenSSL.
#[derive(Clone)]
pub(super) struct HttpsAcceptor {
    modern: tokio_rustls::TlsAcceptor,
    legacy: Option<Arc<SslContext>>,
}

impl HttpsAcceptor {
    pub(super) fn new(modern: Arc<rustls::ServerConfig>, legacy: Option<SslContext>) -> Self {
        HttpsAcceptor {
            modern: tokio_rustls::TlsAcceptor::from(modern),
            legacy: legacy.map(Arc::new),
        }
    }

    async fn handshake(&self, stream: TcpStream) -> io::Result<HttpsStream> {
        stream.set_nodelay(true)?;
        let Some(legacy) = &self.legacy else {
            return self
                .modern_handshake(Rewound::new(Vec::new(), stream))
                .await;
        };
        let (kind, stream) = within_handshake_time(read_client_hello(stream)).await?;
        match kind {
            HelloKind::Modern => self.modern_handshake(stream).await,
            HelloKind::Legacy => {
                let ssl = Ssl::new(legacy).map_err(io::Error::other)?;
                let mut tls =
                    tokio_openssl::SslStream::new(ssl, stream).map_err(io::Error::other)?;
                within_handshake_time(async {
                    Pin::new(&mut tls).accept().await.map_err(|error| {
                        io::Error::other(format!("legacy TLS (1.0/1.1) handshake failed: {error}"))
                    })
                })
                .await?;
                Ok(HttpsStream::Legacy(Box::new(tls)))
            }
        }
    }

    async fn modern_handshake(&self, stream: Rewound) -> io::Result<HttpsStream> {
        let tls = within_handshake_time(self.modern.accept(stream)).await?;
        Ok(HttpsStream::Modern(Box::new(tls)))
    }
}

impl<S: Send + 'static> axum_server::accept::Accept<TcpStream, S> for HttpsAcceptor {
    type Stream = HttpsStream;
    type Service = S;
    type Future = Pin<Box<dyn Future<Output = io::Result<(HttpsStream, S)>> + Send>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let acceptor = self.clone();
        Box::pin(async move { Ok((acceptor.handshake(stream).await?, service)) })
    }
}

async fn within_handshake_time<T>(step: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, step)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))?
}

/// Reads the client's first record (at most one) and says which stack gets
/// the connection; the bytes read are replayed to that stack.
async fn read_client_hello(mut stream: TcpStream) -> io::Result<(HelloKind, Rewound)> {
    let mut seen = Vec::new();
    loop {
        match classify(&seen) {
            Classified::Decided(kind) => return Ok((kind, Rewound::new(seen, stream))),
            Classified::NeedBytes(total) => {
                let start = seen.len();
                seen.resize(total, 0);
                let n = stream.read(&mut seen[start..]).await?;
                seen.truncate(start + n);
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed inside the TLS ClientHello",
                    ));
                }
            }
        }
    }
}

/// A TCP stream whose first bytes, already read, are read again.
pub struct Rewound {
    replay: Vec<u8>,
    replayed: usize,
    inner: TcpStream,
}

impl Rewound {
    fn new(replay: Vec<u8>, inner: TcpStream) -> Self {
        Rewound {
            replay,
            replayed: 0,
            inner,
        }
    }
}

impl AsyncRead for Rewound {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.replayed < this.replay.len() {
            let rest = &this.replay[this.replayed..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.replayed += n;
            if this.replayed == this.replay.len() {
                this.replay = Vec::new();
                this.replayed = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewound {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// An HTTPS connection after its handshake, over either stack.
pub enum HttpsStream {
    Modern(Box<tokio_rustls::server::TlsStream<Rewound>>),
    Legacy(Box<tokio_openssl::SslStream<Rewound>>),
}

impl AsyncRead for HttpsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            HttpsStream::Modern(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
            HttpsStream::Legacy(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for HttpsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            HttpsStream::Modern(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
            HttpsStream::Legacy(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            HttpsStream::Modern(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
            HttpsStream::Legacy(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            HttpsStream::Modern(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
            HttpsStream::Legacy(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_openssl_has_every_xp_suite() {
        // Fails when openssl-src is built without weak-crypto (no RC4 suites)
        // or legacy (no RC4 cipher) — see Cargo.toml.
        assert_eq!(
            available_legacy_suites().unwrap(),
            LEGACY_SUITES.map(|(name, _)| name).to_vec()
        );
    }
}
