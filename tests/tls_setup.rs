//! `msngate tls init`, `msngate client-setup`, `/setup` and the plain-HTTP
//! fallback, through the real binary over real HTTP and HTTPS.

mod common;

use common::{BinaryServer, TIMEOUT, database_url, free_port};
use msngate::client_setup::CLIENT_HOSTS;
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    ns: SocketAddr,
    https: SocketAddr,
    plain: SocketAddr,
}

impl Setup {
    /// A configuration with `http.tls: {}` (msngate's own certificate) and a
    /// plain fallback listener; `public_host` as given.
    fn new(public_host: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let (ns, sb, https, plain) = (free_port(), free_port(), free_port(), free_port());
        let db = database_url(dir.path());
        let data = dir.path().join("data");
        let yaml = format!(
            "msn:\n  listen: {ns}\n  switchboard_listen: {sb}\n  public_host: {public_host}\n  challenges: false\n\
             http:\n  listen: {https}\n  public_url: https://login.passport.com:{port}\n  plain_listen: {plain}\n  tls: {{}}\n\
             data_dir: {data}\ndatabase:\n  url: {db}\nauth:\n  argon2_memory_kib: 1024\n  argon2_iterations: 1\n",
            port = https.port(),
            data = data.display(),
        );
        let config = dir.path().join("msngate.yaml");
        std::fs::write(&config, yaml).unwrap();
        Setup {
            dir,
            config,
            ns,
            https,
            plain,
        }
    }

    fn tls_dir(&self) -> PathBuf {
        self.dir.path().join("data").join("tls")
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_msngate"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs a command that must succeed; its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "msngate {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn set_public_host(&self, host: &str) {
        let yaml = std::fs::read_to_string(&self.config).unwrap();
        let edited: String = yaml
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("public_host:") {
                    format!("  public_host: {host}\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        std::fs::write(&self.config, edited).unwrap();
    }
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn first_pem_certificate(path: &Path) -> CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
}

/// Names and validity end (Unix seconds) of a certificate.
fn names_and_expiry(der: &[u8]) -> (Vec<String>, i64) {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    (
        msngate::certs::covered_names(&cert),
        cert.validity().not_after.timestamp(),
    )
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

const DAY: i64 = 86_400;

/// Replaces the server certificate with one the same CA signed that ends
/// in `days_left` days (as a certificate issued a year ago would).
fn write_expiring_server_certificate(tls_dir: &Path, days_left: i64) {
    let ca_der = CertificateDer::from(read(&tls_dir.join("msngate-ca.crt")));
    let ca_key = rcgen::KeyPair::from_pem_and_sign_algo(
        &String::from_utf8(read(&tls_dir.join("ca.key"))).unwrap(),
        &rcgen::PKCS_RSA_SHA256,
    )
    .unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_der(&ca_der, ca_key).unwrap();
    let server_key = rcgen::KeyPair::from_pem_and_sign_algo(
        &String::from_utf8(read(&tls_dir.join("server.key"))).unwrap(),
        &rcgen::PKCS_RSA_SHA256,
    )
    .unwrap();
    let names: Vec<String> =
        names_and_expiry(first_pem_certificate(&tls_dir.join("server.crt")).as_ref()).0;
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    let end = time::OffsetDateTime::now_utc() + time::Duration::days(days_left);
    params.not_before = end - time::Duration::days(397);
    params.not_after = end;
    let cert = params.signed_by(&server_key, &issuer).unwrap();
    std::fs::write(tls_dir.join("server.crt"), cert.pem()).unwrap();
}

#[test]
fn tls_init_keeps_its_ca_and_covers_every_client_host() {
    let setup = Setup::new("gate.example.test");
    let first = setup.ok(&["tls", "init"]);
    assert!(first.contains("CA: made"), "{first}");
    assert!(first.contains("server certificate: issued"), "{first}");
    let tls = setup.tls_dir();
    let ca_pem = read(&tls.join("ca.crt"));
    let ca_der = read(&tls.join("msngate-ca.crt"));
    let server = read(&tls.join("server.crt"));

    let second = setup.ok(&["tls", "init"]);
    assert!(second.contains("CA: kept"), "{second}");
    assert!(second.contains("server certificate: kept"), "{second}");
    assert_eq!(read(&tls.join("ca.crt")), ca_pem, "the CA was made again");
    assert_eq!(read(&tls.join("msngate-ca.crt")), ca_der);
    assert_eq!(read(&tls.join("server.crt")), server);

    // The download is the DER of the PEM CA.
    assert_eq!(
        first_pem_certificate(&tls.join("ca.crt")).as_ref(),
        ca_der.as_slice()
    );
    let (ca_names, _) = names_and_expiry(&ca_der);
    assert!(ca_names.is_empty());
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    assert!(ca.is_ca());

    let server_der = first_pem_certificate(&tls.join("server.crt"));
    let (names, expires) = names_and_expiry(server_der.as_ref());
    for host in CLIENT_HOSTS {
        assert!(
            names.iter().any(|n| n == host.name),
            "{} missing: {names:?}",
            host.name
        );
    }
    assert!(names.iter().any(|n| n == "gate.example.test"), "{names:?}");
    assert!(names.iter().any(|n| n == "login.passport.com"));
    assert!(expires > now() + 300 * DAY);
    let (_, cert) = x509_parser::parse_x509_certificate(server_der.as_ref()).unwrap();
    cert.verify_signature(Some(ca.public_key())).unwrap();
    // RSA keys, SHA-256 signatures: what Windows XP's SChannel accepts.
    assert_eq!(
        cert.public_key().algorithm.algorithm,
        x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION
    );
    assert_eq!(
        cert.signature_algorithm.algorithm,
        x509_parser::oid_registry::OID_PKCS1_SHA256WITHRSA
    );
    // The private keys are the owner's alone.
    use std::os::unix::fs::PermissionsExt;
    for key in ["ca.key", "server.key"] {
        let mode = std::fs::metadata(tls.join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{key} is readable by others: {mode:o}");
    }
}

#[test]
fn tls_init_renews_a_certificate_close_to_expiry_or_short_of_a_name() {
    let setup = Setup::new("192.0.2.10");
    setup.ok(&["tls", "init"]);
    let tls = setup.tls_dir();
    let ca = read(&tls.join("ca.crt"));

    write_expiring_server_certificate(&tls, 10);
    let out = setup.ok(&["tls", "init"]);
    assert!(out.contains("expires within 30 days"), "{out}");
    let (names, expires) =
        names_and_expiry(first_pem_certificate(&tls.join("server.crt")).as_ref());
    assert!(expires > now() + 300 * DAY, "not renewed");
    assert!(names.iter().any(|n| n == "192.0.2.10"), "{names:?}");

    // Forty days left: kept.
    write_expiring_server_certificate(&tls, 40);
    let kept = read(&tls.join("server.crt"));
    let out = setup.ok(&["tls", "init"]);
    assert!(out.contains("server certificate: kept"), "{out}");
    assert_eq!(read(&tls.join("server.crt")), kept);

    // A new public host is a name the certificate lacks.
    setup.set_public_host("chat.example.test");
    let out = setup.ok(&["tls", "init"]);
    assert!(out.contains("does not cover chat.example.test"), "{out}");
    let (names, _) = names_and_expiry(first_pem_certificate(&tls.join("server.crt")).as_ref());
    assert!(names.iter().any(|n| n == "chat.example.test"), "{names:?}");
    assert_eq!(read(&tls.join("ca.crt")), ca, "renewal replaced the CA");
}

#[test]
fn client_setup_prints_hosts_lines_and_the_ca() {
    let setup = Setup::new("192.0.2.10");
    let before = setup.ok(&["client-setup"]);
    assert!(before.contains("msngate tls init"), "{before}");
    setup.ok(&["tls", "init"]);
    let out = setup.ok(&["client-setup"]);
    for host in CLIENT_HOSTS {
        let line = format!("192.0.2.10  {}", host.name);
        assert!(
            out.lines().any(|l| l == line),
            "no line {line:?} in:\n{out}"
        );
    }
    let ca_file = setup.tls_dir().join("msngate-ca.crt");
    assert!(out.contains(&ca_file.display().to_string()), "{out}");
    assert!(
        out.contains(&format!(
            "https://login.passport.com:{}/setup/msngate-ca.crt",
            setup.https.port()
        )),
        "{out}"
    );
    let thumbprint = msngate::client_setup::thumbprint(&read(&ca_file));
    assert_eq!(thumbprint.len(), 59);
    assert!(out.contains(&thumbprint), "{out}");
    for family in msngate::client_setup::Family::ALL {
        assert!(out.contains(family.title()), "{out}");
    }
    // Listening on another port than 443 is pointed out.
    assert!(out.contains("official clients dial HTTPS on 443"), "{out}");
}

#[test]
fn half_an_operator_certificate_is_refused() {
    let setup = Setup::new("192.0.2.10");
    let yaml = std::fs::read_to_string(&setup.config)
        .unwrap()
        .replace("tls: {}", "tls:\n    certificate: /nonexistent.pem");
    std::fs::write(&setup.config, yaml).unwrap();
    let out = setup.run(&["check-config"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("http.tls.private_key"), "{err}");
}

fn client_config(ca: CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

/// One request, the whole answer as text (the server closes after it).
async fn exchange(stream: &mut (impl AsyncRead + AsyncWrite + Unpin), path: &str) -> Vec<u8> {
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: msngate\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    stream.flush().await.unwrap();
    let mut answer = Vec::new();
    // A TLS peer may close without close_notify; what arrived is the answer.
    let _ = tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut answer))
        .await
        .expect("answer timed out");
    answer
}

async fn plain_get(addr: SocketAddr, path: &str) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    exchange(&mut stream, path).await
}

fn passport_urls(answer: &[u8]) -> String {
    let text = String::from_utf8_lossy(answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text.lines()
        .find(|l| l.starts_with("PassportURLs:"))
        .unwrap_or_else(|| panic!("no PassportURLs in {text}"))
        .to_string()
}

fn body(answer: &[u8]) -> &[u8] {
    let at = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no end of headers");
    &answer[at + 4..]
}

#[tokio::test]
async fn serve_uses_the_generated_certificate_renews_it_and_answers_plain_http_too() {
    let setup = Setup::new("127.0.0.1");
    setup.ok(&["tls", "init"]);
    let tls = setup.tls_dir();
    // Close to expiry when the server starts: `serve` issues it again.
    write_expiring_server_certificate(&tls, 5);
    let server = BinaryServer::spawn(&setup.config, setup.ns, setup.https).await;

    let ca = CertificateDer::from(read(&tls.join("msngate-ca.crt")));
    let connector = tokio_rustls::TlsConnector::from(client_config(ca.clone()));
    for name in ["nexus.passport.com", "login.live.com", "contacts.msn.com"] {
        let tcp = TcpStream::connect(setup.https).await.unwrap();
        let mut stream = connector
            .connect(ServerName::try_from(name).unwrap(), tcp)
            .await
            .unwrap_or_else(|e| panic!("TLS to {name}: {e}"));
        let served = stream.get_ref().1.peer_certificates().unwrap()[0].clone();
        let (_, expires) = names_and_expiry(served.as_ref());
        assert!(expires > now() + 300 * DAY, "serve did not renew");
        let answer = exchange(&mut stream, "/rdr/pprdr.asp").await;
        let urls = passport_urls(&answer);
        assert!(
            urls.contains(&format!(
                "DALogin=login.passport.com:{}/login2.srf",
                setup.https.port()
            )),
            "{urls}"
        );
    }
    // The plain listener answers the same nexus.
    let https_urls = {
        let tcp = TcpStream::connect(setup.https).await.unwrap();
        let mut stream = connector
            .connect(ServerName::try_from("nexus.passport.com").unwrap(), tcp)
            .await
            .unwrap();
        passport_urls(&exchange(&mut stream, "/rdr/pprdr.asp").await)
    };
    assert_eq!(
        passport_urls(&plain_get(setup.plain, "/rdr/pprdr.asp").await),
        https_urls
    );

    // /setup: the page with the hosts lines, and the CA to import.
    let page = plain_get(setup.plain, "/setup").await;
    let page_text = String::from_utf8_lossy(&page);
    assert!(page_text.starts_with("HTTP/1.1 200"), "{page_text}");
    assert!(
        page_text.contains("127.0.0.1  nexus.passport.com"),
        "{page_text}"
    );
    assert!(
        page_text.contains("href=\"/setup/msngate-ca.crt\""),
        "{page_text}"
    );
    let download = plain_get(setup.plain, "/setup/msngate-ca.crt").await;
    let head = String::from_utf8_lossy(&download[..download.len().min(400)]).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("application/x-x509-ca-cert"), "{head}");
    assert_eq!(body(&download), ca.as_ref());
    // The plain listener does not speak TLS, the TLS one not plain HTTP.
    let refused = plain_get(setup.https, "/rdr/pprdr.asp").await;
    assert!(!String::from_utf8_lossy(&refused).contains("PassportURLs"));

    let status = server.terminate().await;
    assert!(status.success(), "{status:?}");
}
