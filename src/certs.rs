//! msngate's own certificates (`msngate tls init`, and `serve` with
//! `http.tls: {}`): a local certificate authority, made once and kept in
//! `<data_dir>/tls/`, and a server certificate it signs for every name in
//! [`crate::client_setup::certificate_names`], issued again when it is
//! missing, close to expiry, signed by another CA or short of a name.
//!
//! Keys are RSA 2048: Windows XP's SChannel and WinInet take no other kind,
//! and signatures are SHA-256 (Windows XP SP3 checks those; older Windows
//! cannot, see docs/clients.md). ring signs; it cannot generate RSA keys,
//! so the `rsa` crate makes them.

use crate::client_setup::certificate_names;
use crate::config::{Config, TlsConfig};
use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_RSA_SHA256, PublicKeyData as _, SerialNumber,
};
use rustls::pki_types::CertificateDer;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// RSA modulus size: what old Windows handles and current clients accept.
const RSA_BITS: usize = 2048;
/// How long the CA is valid; it is never replaced by msngate (clients
/// would have to import a new one), only reported when close to its end.
const CA_VALIDITY: Duration = Duration::days(20 * 365);
/// How long a server certificate is valid: 397 days, the most any client
/// policy accepts.
const SERVER_VALIDITY: Duration = Duration::days(397);
/// A server certificate with less than this left is issued again.
pub const RENEW_BEFORE: Duration = Duration::days(30);

/// The files in `<data_dir>/tls/`.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub dir: PathBuf,
    /// The CA certificate, PEM.
    pub ca_certificate: PathBuf,
    /// The CA's private key, PEM (PKCS#8), readable by its owner only.
    pub ca_key: PathBuf,
    /// The CA certificate, DER, named for Windows to import on a double-click.
    pub ca_download: PathBuf,
    /// The server certificate then the CA, PEM.
    pub server_certificate: PathBuf,
    /// The server's private key, PEM (PKCS#8), readable by its owner only.
    pub server_key: PathBuf,
}

impl TlsFiles {
    pub fn in_data_dir(data_dir: &Path) -> TlsFiles {
        let dir = data_dir.join("tls");
        TlsFiles {
            ca_certificate: dir.join("ca.crt"),
            ca_key: dir.join("ca.key"),
            ca_download: dir.join("msngate-ca.crt"),
            server_certificate: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            dir,
        }
    }

    /// `http.tls` pointing at these files.
    pub fn tls_config(&self, base: &TlsConfig) -> TlsConfig {
        TlsConfig {
            certificate: Some(self.server_certificate.clone()),
            private_key: Some(self.server_key.clone()),
            ..base.clone()
        }
    }
}

/// What [`ensure`] did.
#[derive(Debug)]
pub struct Report {
    pub files: TlsFiles,
    /// The CA was made now (clients must import it).
    pub ca_created: bool,
    pub ca_expires: OffsetDateTime,
    /// Why the server certificate was issued now; `None`: the kept one is good.
    pub issued_because: Option<String>,
    pub server_expires: OffsetDateTime,
    pub names: Vec<String>,
}

/// Makes the CA if there is none, and issues the server certificate if
/// it is missing or no longer right (see the module comment).
pub fn ensure(config: &Config) -> anyhow::Result<Report> {
    let files = TlsFiles::in_data_dir(&config.data_dir);
    create_private_dir(&files.dir)?;
    let now = OffsetDateTime::now_utc();
    let ca_created = !files.ca_certificate.exists() && !files.ca_key.exists();
    if ca_created {
        create_ca(&files, now)?;
    }
    let ca = Ca::load(&files)?;
    // The download copy is derived: written again if it went missing.
    if std::fs::read(&files.ca_download).ok().as_deref() != Some(ca.der.as_ref()) {
        write_file(&files.ca_download, ca.der.as_ref(), false)?;
    }
    let names = certificate_names(config);
    let (issued_because, server_expires) = match server_problem(&files, &ca, &names, now) {
        None => (None, current_expiry(&files)?),
        Some(reason) => (Some(reason), issue_server(&files, &ca, &names, now)?),
    };
    Ok(Report {
        files,
        ca_created,
        ca_expires: ca.not_after,
        issued_because,
        server_expires,
        names,
    })
}

/// `http.tls` as the listener needs it: the operator's files as they are,
/// or (`http.tls: {}`) msngate's own, made or renewed first.
pub fn resolve_http_tls(config: &Config) -> anyhow::Result<Option<(TlsConfig, Option<Report>)>> {
    match &config.http.tls {
        None => Ok(None),
        Some(tls) if !tls.uses_generated() => Ok(Some((tls.clone(), None))),
        Some(tls) => {
            let report = ensure(config).with_context(|| {
                format!(
                    "http.tls: cannot prepare msngate's own certificate in {}",
                    config.data_dir.join("tls").display()
                )
            })?;
            Ok(Some((report.files.tls_config(tls), Some(report))))
        }
    }
}

struct Ca {
    der: CertificateDer<'static>,
    key_pem: String,
    not_after: OffsetDateTime,
}

impl Ca {
    fn load(files: &TlsFiles) -> anyhow::Result<Ca> {
        let pem_text = std::fs::read_to_string(&files.ca_certificate)
            .with_context(|| format!("cannot read {}", files.ca_certificate.display()))?;
        let key_pem = std::fs::read_to_string(&files.ca_key)
            .with_context(|| format!("cannot read {}", files.ca_key.display()))?;
        let der = first_certificate(&pem_text)
            .with_context(|| format!("no certificate in {}", files.ca_certificate.display()))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| {
            anyhow::anyhow!("{}: not a certificate: {e}", files.ca_certificate.display())
        })?;
        let not_after =
            OffsetDateTime::from_unix_timestamp(parsed.validity().not_after.timestamp())
                .context("CA expiry out of range")?;
        let key = KeyPair::from_pem_and_sign_algo(&key_pem, &PKCS_RSA_SHA256)
            .map_err(|e| anyhow::anyhow!("{}: not an RSA key: {e}", files.ca_key.display()))?;
        if key.subject_public_key_info() != parsed.public_key().raw {
            anyhow::bail!(
                "{} is not the key of {}: restore the pair, or remove both to make a new CA \
                 (which every client must then import again)",
                files.ca_key.display(),
                files.ca_certificate.display()
            );
        }
        Ok(Ca {
            der,
            key_pem,
            not_after,
        })
    }

    fn issuer(&self) -> anyhow::Result<Issuer<'static, KeyPair>> {
        let key = KeyPair::from_pem_and_sign_algo(&self.key_pem, &PKCS_RSA_SHA256)
            .map_err(|e| anyhow::anyhow!("CA key: {e}"))?;
        Issuer::from_ca_cert_der(&self.der, key).map_err(|e| anyhow::anyhow!("CA certificate: {e}"))
    }
}

fn first_certificate(pem_text: &str) -> Option<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject as _;
    CertificateDer::pem_slice_iter(pem_text.as_bytes())
        .next()
        .and_then(Result::ok)
}

/// A new RSA key, as rcgen signs with it.
fn new_rsa_key() -> anyhow::Result<KeyPair> {
    use rsa::pkcs8::EncodePrivateKey as _;
    let key = rsa::PrivateKey::new(&mut getrandom::SysRng, RSA_BITS)
        .map_err(|e| anyhow::anyhow!("cannot generate an RSA key: {e}"))?;
    let pkcs8 = key
        .to_pkcs8_der()
        .map_err(|e| anyhow::anyhow!("cannot encode the RSA key: {e}"))?;
    KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8.as_bytes().into(), &PKCS_RSA_SHA256)
        .map_err(|e| anyhow::anyhow!("cannot use the RSA key: {e}"))
}

/// A positive serial number of 16 random bytes.
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

fn create_ca(files: &TlsFiles, now: OffsetDateTime) -> anyhow::Result<()> {
    let key = new_rsa_key()?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    // The date tells two msngate CAs apart in the Windows certificate store.
    name.push(
        DnType::CommonName,
        format!("msngate local CA {}", now.date()),
    );
    name.push(DnType::OrganizationName, "msngate");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - Duration::days(1);
    params.not_after = now + CA_VALIDITY;
    params.serial_number = Some(random_serial());
    let certificate = params
        .self_signed(&key)
        .map_err(|e| anyhow::anyhow!("cannot sign the CA certificate: {e}"))?;
    // The key first: a certificate without its key would be "a CA" that
    // cannot sign, and the next run would not make a new one.
    write_file(&files.ca_key, key.serialize_pem().as_bytes(), true)?;
    write_file(&files.ca_certificate, certificate.pem().as_bytes(), false)?;
    write_file(&files.ca_download, certificate.der().as_ref(), false)?;
    Ok(())
}

/// Why the kept server certificate cannot stay, or `None` when it can.
fn server_problem(
    files: &TlsFiles,
    ca: &Ca,
    names: &[String],
    now: OffsetDateTime,
) -> Option<String> {
    let Ok(pem_text) = std::fs::read_to_string(&files.server_certificate) else {
        return Some("there is none yet".into());
    };
    let Some(der) = first_certificate(&pem_text) else {
        return Some(format!(
            "{} holds no certificate",
            files.server_certificate.display()
        ));
    };
    let Ok((_, certificate)) = x509_parser::parse_x509_certificate(der.as_ref()) else {
        return Some(format!(
            "{} is not a certificate",
            files.server_certificate.display()
        ));
    };
    let Ok((_, ca_parsed)) = x509_parser::parse_x509_certificate(ca.der.as_ref()) else {
        return Some("the CA certificate cannot be read".into());
    };
    if certificate
        .verify_signature(Some(ca_parsed.public_key()))
        .is_err()
    {
        return Some("it was not signed by the CA in this directory".into());
    }
    let expires = certificate.validity().not_after.timestamp();
    if expires - now.unix_timestamp() < RENEW_BEFORE.whole_seconds() {
        return Some(format!(
            "it expires within {} days",
            RENEW_BEFORE.whole_days()
        ));
    }
    let covered = covered_names(&certificate);
    if let Some(missing) = names.iter().find(|n| !covered.contains(n)) {
        return Some(format!("it does not cover {missing}"));
    }
    let key_matches = std::fs::read_to_string(&files.server_key)
        .ok()
        .and_then(|pem| KeyPair::from_pem_and_sign_algo(&pem, &PKCS_RSA_SHA256).ok())
        .is_some_and(|key| key.subject_public_key_info() == certificate.public_key().raw);
    if !key_matches {
        return Some(format!(
            "{} is missing or not its key",
            files.server_key.display()
        ));
    }
    None
}

/// The DNS names and addresses (as text) of a certificate's subject
/// alternative names.
pub fn covered_names(certificate: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok(Some(san)) = certificate.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => <[u8; 4]>::try_from(*bytes)
                    .ok()
                    .map(|b| IpAddr::from(b).to_string()),
                16 => <[u8; 16]>::try_from(*bytes)
                    .ok()
                    .map(|b| IpAddr::from(b).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn current_expiry(files: &TlsFiles) -> anyhow::Result<OffsetDateTime> {
    let pem_text = std::fs::read_to_string(&files.server_certificate)?;
    let der = first_certificate(&pem_text).context("no server certificate")?;
    let (_, certificate) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| anyhow::anyhow!("server certificate: {e}"))?;
    OffsetDateTime::from_unix_timestamp(certificate.validity().not_after.timestamp())
        .context("server certificate expiry out of range")
}

fn issue_server(
    files: &TlsFiles,
    ca: &Ca,
    names: &[String],
    now: OffsetDateTime,
) -> anyhow::Result<OffsetDateTime> {
    let key = new_rsa_key()?;
    // IP addresses become address entries, the rest DNS names.
    let mut params = CertificateParams::new(names.to_vec())
        .map_err(|e| anyhow::anyhow!("cannot use the names {names:?}: {e}"))?;
    let mut subject = DistinguishedName::new();
    subject.push(
        DnType::CommonName,
        names.first().map_or("msngate", String::as_str),
    );
    subject.push(DnType::OrganizationName, "msngate");
    params.distinguished_name = subject;
    params.is_ca = IsCa::ExplicitNoCa;
    // keyEncipherment: Windows XP's TLS 1.0 uses RSA key exchange.
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - Duration::days(1);
    let not_after = now + SERVER_VALIDITY;
    params.not_after = not_after;
    params.serial_number = Some(random_serial());
    let issuer = ca.issuer()?;
    let certificate = params
        .signed_by(&key, &issuer)
        .map_err(|e| anyhow::anyhow!("cannot sign the server certificate: {e}"))?;
    let ca_pem = pem_of(&ca.der);
    write_file(&files.server_key, key.serialize_pem().as_bytes(), true)?;
    write_file(
        &files.server_certificate,
        format!("{}{ca_pem}", certificate.pem()).as_bytes(),
        false,
    )?;
    Ok(not_after)
}

fn pem_of(der: &CertificateDer<'_>) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in text.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

/// Writes `path` whole or not at all (a temporary file renamed over it),
/// owner-only when `private`.
fn write_file(path: &Path, contents: &[u8], private: bool) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    options.mode(if private { 0o600 } else { 0o644 });
    let mut file = options
        .open(&temporary)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("cannot write {}", path.display()))
}
