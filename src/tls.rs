//! TLS settings of the HTTP server and the IRC bridge (rustls with
//! the ring provider set explicitly: no process-wide default is needed).

use anyhow::Context as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A configured PEM file: a path, or a setting left out. `http.tls` leaves
/// both files out to mean "msngate's own certificate" (src/certs.rs), whose
/// paths are filled in before the listener starts, so an unset one reaching
/// [`server_config`] is refused with its key's name.
pub trait PemFileSetting {
    fn pem_file(&self) -> Option<&Path>;
}

impl PemFileSetting for Path {
    fn pem_file(&self) -> Option<&Path> {
        Some(self)
    }
}

impl PemFileSetting for PathBuf {
    fn pem_file(&self) -> Option<&Path> {
        Some(self)
    }
}

impl PemFileSetting for Option<PathBuf> {
    fn pem_file(&self) -> Option<&Path> {
        self.as_deref()
    }
}

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
    certificate: &(impl PemFileSetting + ?Sized),
    private_key: &(impl PemFileSetting + ?Sized),
    key: &str,
) -> anyhow::Result<rustls::ServerConfig> {
    let unset = |field: &str| {
        anyhow::anyhow!(
            "{key}.{field}: not set (msngate fills in its own certificate from \
             `msngate tls init` only when both files are left out)"
        )
    };
    let certificate = certificate.pem_file().ok_or_else(|| unset("certificate"))?;
    let private_key = private_key.pem_file().ok_or_else(|| unset("private_key"))?;
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
