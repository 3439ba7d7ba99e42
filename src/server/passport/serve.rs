//! Serving the Passport router: plain HTTP or HTTPS, HTTP/1 limits and
//! timeouts, graceful shutdown.

use super::header_case::header_case;
use super::legacy_request_line::LegacyAcceptor;
use crate::config::TlsConfig;
use anyhow::Context as _;
use axum::Router;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tracing::info;

/// Builds the rustls server configuration from PEM files, with the ring
/// provider set explicitly (no process-wide default needed).
pub fn tls_server_config(tls: &TlsConfig) -> anyhow::Result<rustls::ServerConfig> {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    let certificates = crate::tls::certificates(&tls.certificate, "http.tls.certificate")?;
    let key = PrivateKeyDer::from_pem_file(&tls.private_key).with_context(|| {
        format!(
            "http.tls.private_key: cannot read a private key from {}",
            tls.private_key.display()
        )
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .context("rustls: no usable protocol version")?
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .context("http.tls: the certificate and private key do not form a usable pair")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec(), b"http/1.0".to_vec()];
    Ok(config)
}

/// The HTTP/1 settings shared by the plain and TLS servers.
macro_rules! configure_http1 {
    ($server:expr) => {{
        $server
            .http_builder()
            .http1()
            .title_case_headers(true)
            .header_read_timeout(Some(Duration::from_secs(30)))
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
    // Prepared before the first client arrives.
    header_case().await;
    let handle = axum_server::Handle::new();
    let stopper = {
        let handle = handle.clone();
        tokio::spawn(async move {
            shutdown.await;
            handle.graceful_shutdown(Some(Duration::from_secs(5)));
        })
    };
    let make_service = router.into_make_service_with_connect_info::<SocketAddr>();
    let server = axum_server::from_tcp(listener)
        .context("cannot use the HTTP listener")?
        .handle(handle)
        .http1_only();
    let result = match tls_config {
        None => {
            info!(address = ?local, "Passport HTTP listening");
            let mut server =
                server.acceptor(LegacyAcceptor(axum_server::accept::NoDelayAcceptor::new()));
            configure_http1!(server);
            server
                .first_request_timeout(Duration::from_secs(30))
                .serve(make_service)
                .await
        }
        Some(config) => {
            info!(address = ?local, "Passport HTTPS listening");
            let rustls = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(config));
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(rustls)
                .acceptor(axum_server::accept::NoDelayAcceptor::new());
            let mut server = server.acceptor(LegacyAcceptor(acceptor));
            configure_http1!(server);
            server
                .first_request_timeout(Duration::from_secs(30))
                .serve(make_service)
                .await
        }
    };
    stopper.abort();
    result.context("Passport HTTP server failed")
}
