//! TLS settings of the HTTP server and the IRC bridge (rustls with
//! the ring provider set explicitly: no process-wide default is needed).

use anyhow::Context as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// The certificates of a PEM file; `key` names the config key in errors.
pub fn certificates(path: &Path, key: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certificates = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("{key}: cannot read {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{key}: invalid PEM in {}", path.display()))?;
    if certificates.is_empty() {
        anyhow::bail!("{key}: no certificate in {}", path.display());
    }
    Ok(certificates)
}

/// A server configuration presenting the certificate chain in
/// `certificate` with the key in `private_key` (PEM files); `key` names the
/// config section in errors (`http.tls`). No client authentication.
pub fn server_config(
    certificate: &Path,
    private_key: &Path,
    key: &str,
) -> anyhow::Result<rustls::ServerConfig> {
    let certificates = certificates(certificate, &format!("{key}.certificate"))?;
    let private_key_der = PrivateKeyDer::from_pem_file(private_key).with_context(|| {
        format!(
            "{key}.private_key: cannot read a private key from {}",
            private_key.display()
        )
    })?;
    rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("rustls: no usable protocol version")?
        .with_no_client_auth()
        .with_single_cert(certificates, private_key_der)
        .with_context(|| {
            format!("{key}: the certificate and private key do not form a usable pair")
        })
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration trusting the public web roots, plus the
/// certificates in `extra_ca` (a private CA, or a server's self-signed
/// certificate).
pub fn client_config(
    extra_ca: Option<&Path>,
    key: &str,
) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = extra_ca {
        for certificate in certificates(path, key)? {
            roots
                .add(certificate)
                .with_context(|| format!("{key}: unusable certificate in {}", path.display()))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("rustls: no usable protocol version")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
