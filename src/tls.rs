//! TLS settings shared by the HTTP server and the IRC bridge (rustls with
//! the ring provider set explicitly: no process-wide default is needed).

use anyhow::Context as _;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
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
