//! The HTTPS listener as Windows XP's SChannel sees it: TLS 1.0, RSA key
//! exchange, 3DES or RC4, no extensions (so no SNI). The client is GnuTLS's
//! `gnutls-cli` restricted to exactly that, once per cipher suite; modern
//! clients must still get TLS 1.3. scripts/test.sh installs gnutls-bin.

mod common;
use common::*;
use msngate::config::TlsConfig;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const PW: &str = "s3cret!";

/// The priority string of a client that offers only what XP offers, with
/// one cipher/MAC pair.
fn xp_priority(cipher_and_mac: &str) -> String {
    format!("NONE:+VERS-TLS1.0:{cipher_and_mac}:+RSA:+COMP-NULL:+SIGN-ALL:%NO_EXTENSIONS")
}

/// A 2048-bit RSA key and self-signed certificate (XP's suites all need RSA).
fn rsa_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=login.live.com", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl (Debian package openssl) must be installed");
    assert!(status.success(), "openssl req failed");
    (cert, key)
}

/// The server, and the directory of its certificate (read by the HTTP
/// listener as it starts, so kept for the test's length).
async fn start_https(legacy_clients: bool) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (certificate, private_key) = rsa_certificate(dir.path());
    let server = start_with(move |c| {
        c.http.tls = Some(TlsConfig {
            certificate: Some(certificate),
            private_key: Some(private_key),
            legacy_clients,
        })
    })
    .await;
    server.add_user("xp-alice@example.com", PW, "Alice").await;
    (server, dir)
}

/// One request over one TLS connection made by gnutls-cli; returns what it
/// printed (handshake description and the HTTP answer) and whether it
/// succeeded.
async fn gnutls(server: &TestServer, priority: &str, request: Vec<u8>) -> (bool, String) {
    let port = server.http().port().to_string();
    let priority = priority.to_string();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = Command::new("gnutls-cli")
            .args(["--insecure", "--port", &port, "--priority", &priority])
            .arg("127.0.0.1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("gnutls-cli (Debian package gnutls-bin) must be installed");
        let mut stdin = child.stdin.take().unwrap();
        // Written before the handshake ends: gnutls-cli sends it once the
        // session is up, and exits when the server closes (HTTP/1.0).
        let _ = stdin.write_all(&request);
        let out = child.wait_with_output().unwrap();
        drop(stdin);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    })
    .await
    .unwrap()
}

fn get(path: &str, headers: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.0\r\nHost: login.live.com\r\n{headers}Connection: close\r\n\r\n")
        .into_bytes()
}

fn rst(username: &str, password: &str) -> Vec<u8> {
    let body = format!(
        r#"<?xml version="1.0" encoding="utf-8"?><Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/" xmlns:wsse="http://schemas.xmlsoap.org/ws/2003/06/secext" xmlns:wsp="http://schemas.xmlsoap.org/ws/2002/12/policy" xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/03/addressing" xmlns:wst="http://schemas.xmlsoap.org/ws/2004/04/trust"><Header><wsse:Security><wsse:UsernameToken Id="user"><wsse:Username>{username}</wsse:Username><wsse:Password>{password}</wsse:Password></wsse:UsernameToken></wsse:Security></Header><Body><ps:RequestMultipleSecurityTokens xmlns:ps="http://schemas.microsoft.com/Passport/SoapServices/PPCRL" Id="RSTS"><wst:RequestSecurityToken Id="RST0"><wst:RequestType>http://schemas.xmlsoap.org/ws/2004/04/security/trust/Issue</wst:RequestType><wsp:AppliesTo><wsa:EndpointReference><wsa:Address>http://Passport.NET/tb</wsa:Address></wsa:EndpointReference></wsp:AppliesTo></wst:RequestSecurityToken><wst:RequestSecurityToken Id="RST1"><wst:RequestType>http://schemas.xmlsoap.org/ws/2004/04/security/trust/Issue</wst:RequestType><wsp:AppliesTo><wsa:EndpointReference><wsa:Address>messengerclear.live.com</wsa:Address></wsa:EndpointReference></wsp:AppliesTo><wsse:PolicyReference URI="MBI_KEY_OLD"></wsse:PolicyReference></wst:RequestSecurityToken></ps:RequestMultipleSecurityTokens></Body></Envelope>"#
    );
    let mut request = format!(
        "POST /RST.srf HTTP/1.0\r\nHost: login.live.com\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body.as_bytes());
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_xp_suites_complete_a_handshake_and_fetch_passport() {
    let (server, _certificate) = start_https(true).await;
    let login = "Authorization: Passport1.4 OrgVerb=GET,OrgURL=http%3A%2F%2Fmessenger%2Emsn%2Ecom,sign-in=xp-alice%40example.com,pwd=s3cret%21,lc=1033,id=507,tw=40,fs=1,ru=http%3A%2F%2Fmessenger%2Emsn%2Ecom,ct=1,kpp=1,kv=5,ver=2.1.0173.1,tpf=x\r\n";
    for (suite, description) in [
        ("+3DES-CBC:+SHA1", "(TLS1.0-X.509)-(RSA)-(3DES-CBC)-(SHA1)"),
        (
            "+ARCFOUR-128:+SHA1",
            "(TLS1.0-X.509)-(RSA)-(ARCFOUR-128)-(SHA1)",
        ),
        (
            "+ARCFOUR-128:+MD5",
            "(TLS1.0-X.509)-(RSA)-(ARCFOUR-128)-(MD5)",
        ),
    ] {
        let priority = xp_priority(suite);
        let (ok, out) = gnutls(&server, &priority, get("/rdr/pprdr.asp", "")).await;
        assert!(ok, "{suite}: {out}");
        assert!(out.contains(description), "{suite}: {out}");
        assert!(out.contains("HTTP/1.0 200 OK"), "{suite}: {out}");
        assert!(
            out.contains("PassportURLs: DARealm=Passport.Net,DALogin="),
            "{suite}: {out}"
        );

        let (ok, out) = gnutls(&server, &priority, get("/login2.srf", login)).await;
        assert!(ok, "{suite}: {out}");
        assert!(
            out.contains("Authentication-Info: Passport1.4 da-status=success,")
                && out.contains("from-PP='t="),
            "{suite}: {out}"
        );

        let (ok, out) = gnutls(&server, &priority, rst("xp-alice@example.com", PW)).await;
        assert!(ok, "{suite}: {out}");
        assert!(
            out.contains("<wsa:Address>messengerclear.live.com</wsa:Address>")
                && out.contains("<wst:BinarySecret>"),
            "{suite}: {out}"
        );
    }
    // A wrong password over the same old TLS is still refused.
    let priority = xp_priority("+3DES-CBC:+SHA1");
    let (_, out) = gnutls(&server, &priority, rst("xp-alice@example.com", "wrong")).await;
    assert!(out.contains("wsse:FailedAuthentication"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modern_clients_still_get_tls_1_3() {
    let (server, _certificate) = start_https(true).await;
    let (ok, out) = gnutls(&server, "NORMAL", get("/rdr/pprdr.asp", "")).await;
    assert!(ok, "{out}");
    assert!(out.contains("(TLS1.3"), "{out}");
    assert!(out.contains("PassportURLs: "), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_legacy_clients_off_the_xp_handshake_fails() {
    let (server, _certificate) = start_https(false).await;
    let (ok, out) = gnutls(
        &server,
        &xp_priority("+3DES-CBC:+SHA1"),
        get("/rdr/pprdr.asp", ""),
    )
    .await;
    assert!(!ok, "{out}");
    assert!(!out.contains("PassportURLs"), "{out}");
    // Modern clients are unaffected.
    let (ok, out) = gnutls(&server, "NORMAL", get("/rdr/pprdr.asp", "")).await;
    assert!(ok && out.contains("(TLS1.3"), "{out}");
}
