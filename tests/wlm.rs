//! Windows Live Messenger dialects (MSNP13–18) on the notification server,
//! over real TCP, with the token service (RST.srf / RST2.srf) over HTTPS:
//! sign-in step by step as WLM 8.x / WLM 2009 do, lists and presence, and
//! presence both ways with MSNP12 and MSNP7 users on the same server.

mod common;

use common::{Client, TestServer, render, start_with};
use msngate::config::TlsConfig;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PW: &str = "correct horse";
/// The capabilities a WLM 2009 contact showed (wlm/notification.md §5).
const WLM_CAPS: &str = "2688340284:2550273040";
const WLM_GUID: &str = "{8c7d6a2b-1f2e-4d3c-9b8a-7f6e5d4c3b2a}";

/// A server whose HTTP side (Passport, RST) speaks TLS with a self-signed
/// certificate, and the certificate clients must trust.
struct Wlm {
    server: TestServer,
    trusted: rustls::pki_types::CertificateDer<'static>,
    _certs: tempfile::TempDir,
}

async fn start_wlm(edit: impl FnOnce(&mut msngate::config::Config)) -> Wlm {
    let certs = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let certificate = certs.path().join("cert.pem");
    let private_key = certs.path().join("key.pem");
    std::fs::write(&certificate, certified.cert.pem()).unwrap();
    std::fs::write(&private_key, certified.signing_key.serialize_pem()).unwrap();
    let server = start_with(|c| {
        c.http.tls = Some(TlsConfig {
            certificate: Some(certificate),
            private_key: Some(private_key),
            legacy_clients: false,
        });
        edit(c);
    })
    .await;
    for (handle, name) in [
        ("alice@example.com", "Alice"),
        ("bob@example.com", "Bob"),
        ("carol@example.com", "Carol"),
    ] {
        server.add_user(handle, PW, name).await;
    }
    Wlm {
        server,
        trusted: certified.cert.der().clone(),
        _certs: certs,
    }
}

/// One HTTPS request (`Connection: close`); the whole response as text.
async fn https(wlm: &Wlm, request: &[u8]) -> String {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(wlm.trusted.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(wlm.server.http()).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut stream = connector.connect(name, tcp).await.unwrap();
    stream.write_all(request).await.unwrap();
    stream.flush().await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(common::TIMEOUT, stream.read_to_end(&mut response))
        .await
        .expect("HTTPS response in time");
    String::from_utf8_lossy(&response).into_owned()
}

/// The token service request a WLM client sends: RST.srf with the 2004/04
/// trust namespace (WLM 8.x), or RST2.srf with 2005/02 (WLM 2009), asking
/// for every token WLM 2009 asks for.
fn rst_request(
    rst2: bool,
    handle: &str,
    messenger_address: &str,
    messenger_policy: &str,
) -> Vec<u8> {
    let trust = if rst2 {
        "http://schemas.xmlsoap.org/ws/2005/02/trust"
    } else {
        "http://schemas.xmlsoap.org/ws/2004/04/trust"
    };
    let mut tokens = String::new();
    let wanted = [
        ("http://Passport.NET/tb", ""),
        (messenger_address, messenger_policy),
        ("messenger.msn.com", "?id=507"),
        ("contacts.msn.com", "MBI"),
        ("messengersecure.live.com", "MBI_SSL"),
        ("storage.msn.com", "MBI"),
        ("sup.live.com", "MBI"),
    ];
    let mut seen: Vec<&str> = Vec::new();
    for (address, policy) in wanted {
        // WLM 8.x asks for messenger.msn.com once, with the USR policy.
        if seen.contains(&address) {
            continue;
        }
        seen.push(address);
        let n = seen.len() - 1;
        let policy = if policy.is_empty() {
            String::new()
        } else {
            format!(
                "<wsp:PolicyReference URI=\"{}\"></wsp:PolicyReference>",
                policy.replace('&', "&amp;")
            )
        };
        tokens.push_str(&format!(
            "<wst:RequestSecurityToken Id=\"RST{n}\"><wst:RequestType>{trust}/Issue</wst:RequestType><wsp:AppliesTo><wsa:EndpointReference><wsa:Address>{address}</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>{policy}</wst:RequestSecurityToken>"
        ));
    }
    let body = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:wsse="http://schemas.xmlsoap.org/ws/2003/06/secext" xmlns:wsp="http://schemas.xmlsoap.org/ws/2002/12/policy" xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/03/addressing" xmlns:wst="{trust}" xmlns:ps="http://schemas.microsoft.com/Passport/SoapServices/PPCRL"><s:Header><ps:AuthInfo Id="PPAuthInfo"><ps:HostingApp>{{7108E71A-9926-4FCB-BCC9-9A9D3F32E423}}</ps:HostingApp><ps:BinaryVersion>5</ps:BinaryVersion><ps:UIVersion>1</ps:UIVersion><ps:Cookies></ps:Cookies><ps:RequestParams>AQAAAAIAAABsYwQAAAAxMDMz</ps:RequestParams></ps:AuthInfo><wsse:Security><wsse:UsernameToken Id="user"><wsse:Username>{handle}</wsse:Username><wsse:Password>{PW}</wsse:Password></wsse:UsernameToken></wsse:Security></s:Header><s:Body><ps:RequestMultipleSecurityTokens Id="RSTS">{tokens}</ps:RequestMultipleSecurityTokens></s:Body></s:Envelope>"#
    );
    let path = if rst2 { "/RST2.srf" } else { "/RST.srf" };
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nContent-Type: application/soap+xml\r\nUser-Agent: MSN Explorer/9.0 (MSN 8.0; TmstmpExt)\r\nHost: login.live.com\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-cache\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body.as_bytes());
    request
}

/// The text of `element` inside the token response for `address`.
fn token_field(xml: &str, address: &str, element: &str) -> String {
    let at = xml
        .find(&format!("<wsa:Address>{address}</wsa:Address>"))
        .unwrap_or_else(|| panic!("no token for {address} in {xml}"));
    let rest = &xml[at..];
    let rest = &rest[..rest.find("</wst:RequestSecurityTokenResponse>").unwrap()];
    let open = rest.find(&format!("<{element}")).unwrap();
    let start = open + rest[open..].find('>').unwrap() + 1;
    let end = start + rest[start..].find(&format!("</{element}>")).unwrap();
    rest[start..end].replace("&amp;", "&")
}

/// The ticket (and its proof key) the token service gives `handle`.
async fn tokens(
    wlm: &Wlm,
    rst2: bool,
    handle: &str,
    address: &str,
    policy: &str,
) -> (String, String) {
    let response = https(wlm, &rst_request(rst2, handle, address, policy)).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    for service in ["contacts.msn.com", "storage.msn.com", "sup.live.com"] {
        assert!(token_field(&response, service, "wsse:BinarySecurityToken").starts_with("t="));
    }
    (
        token_field(&response, address, "wsse:BinarySecurityToken"),
        token_field(&response, address, "wst:BinarySecret"),
    )
}

fn version_of(dialect: u8) -> &'static str {
    match dialect {
        13 | 14 => "8.0.0812",
        15 => "8.5.1302",
        _ => "14.0.8064.0206",
    }
}

/// VER, CVR and `USR … I` up to the challenge; returns the challenge's
/// last field (the SSO nonce, or the TWN policy).
async fn hello(wlm: &Wlm, c: &mut Client, dialect: u8, handle: &str) -> String {
    let t = c.next();
    c.send(&format!("VER {t} MSNP{dialect} CVR0")).await;
    c.expect(&format!("VER {t} MSNP{dialect}")).await;
    c.use_dialect(dialect);
    let t = c.next();
    let version = version_of(dialect);
    c.send(&format!(
        "CVR {t} 0x0409 winnt 5.1 i386 MSNMSGR {version} msmsgs {handle}"
    ))
    .await;
    let base = &wlm.server.running.config.http.public_url;
    c.expect(&format!(
        "CVR {t} {version} {version} {version} {base}/download {base}/info"
    ))
    .await;
    let t = c.next();
    let package = if dialect >= 15 { "SSO" } else { "TWN" };
    c.send(&format!("USR {t} {package} I {handle}")).await;
    let gcf = expect_payload(c, "GCF 0").await;
    let policies = payload_text(&gcf);
    assert!(
        policies.starts_with("<Policies><Policy type=\"SHIELDS\">"),
        "{policies}"
    );
    let challenge = c.recv().await;
    if dialect >= 15 {
        assert_eq!(
            &challenge.args[..4],
            [
                t.to_string(),
                "SSO".into(),
                "S".into(),
                "MBI_KEY_OLD".into()
            ]
        );
        let nonce = challenge.args[4].clone();
        assert_eq!(nonce.len(), 64, "nonce {nonce}");
        nonce
    } else {
        assert_eq!(
            render(&challenge),
            format!("USR {t} TWN S ct=1,rver=1,wp=FS_40SEC_0_COMPACT,lc=1,id=1")
        );
        challenge.args[3].clone()
    }
}

/// The second `USR` as the dialect's client sends it.
fn usr_s(dialect: u8, t: u32, ticket: &str, secret: &str, nonce: &str) -> String {
    if dialect <= 14 {
        return format!("USR {t} TWN S {ticket}");
    }
    let mbi = msnp::sso::mbi_response(secret, nonce, rand::random()).unwrap();
    if dialect == 15 {
        format!("USR {t} SSO S {ticket} {mbi}")
    } else {
        format!("USR {t} SSO S {ticket} {mbi} {WLM_GUID}")
    }
}

/// A whole WLM sign-in, asserting every line up to the profile message.
async fn sign_in_wlm(wlm: &Wlm, dialect: u8, handle: &str) -> Client {
    let mut c = Client::connect(wlm.server.ns()).await;
    let challenge = hello(wlm, &mut c, dialect, handle).await;
    let (address, policy) = if dialect >= 15 {
        ("messengerclear.live.com", msnp::sso::MBI_POLICY.to_string())
    } else {
        ("messenger.msn.com", format!("?{challenge}"))
    };
    let (ticket, secret) = tokens(wlm, dialect >= 16, handle, address, &policy).await;
    let t = c.next();
    c.send(&usr_s(dialect, t, &ticket, &secret, &challenge))
        .await;
    c.expect(&format!("USR {t} OK {handle} 1 0")).await;
    c.expect("SBS 0 null").await;
    let profile = expect_payload(&mut c, "MSG Hotmail Hotmail").await;
    let profile = payload_text(&profile);
    assert!(
        profile.contains("Content-Type: text/x-msmsgsprofile; charset=UTF-8\r\n"),
        "{profile}"
    );
    assert!(
        profile.ends_with("ABCHMigrated: 1\r\nMPOPEnabled: 0\r\n\r\n"),
        "{profile}"
    );
    match dialect {
        16 | 17 => assert_eq!(render(&c.recv().await), format!("UBX {handle} 1 0")),
        18 => assert_eq!(render(&c.recv().await), format!("UBX 1:{handle} 0")),
        _ => {}
    }
    c
}

/// MSNP12 sign-in with the Passport 1.4 login over HTTPS.
async fn sign_in_msnp12(wlm: &Wlm, handle: &str) -> Client {
    let mut c = Client::connect(wlm.server.ns()).await;
    c.send("VER 1 MSNP12 CVR0").await;
    c.expect("VER 1 MSNP12").await;
    c.send(&format!(
        "CVR 2 0x0409 winnt 5.1 i386 MSNMSGR 7.5.0324 msmsgs {handle}"
    ))
    .await;
    c.recv_named("CVR").await;
    c.send(&format!("USR 3 TWN I {handle}")).await;
    c.recv_named("USR").await;
    let enc = msnp::urlenc::encode_passport_field;
    let request = format!(
        "GET /login2.srf HTTP/1.1\r\nAuthorization: Passport1.4 OrgVerb=GET,OrgURL=http%3A%2F%2Fmessenger%2Emsn%2Ecom,sign-in={},pwd={},lc=1033,id=507,tw=40,fs=1,ru=http%3A%2F%2Fmessenger%2Emsn%2Ecom,ct=1,kpp=1,kv=5,ver=2.1.0173.1,tpf=0\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        enc(handle),
        enc(PW)
    );
    let response = https(wlm, request.as_bytes()).await;
    let start = response.find("from-PP='").expect("ticket") + 9;
    let ticket = &response[start..start + response[start..].find('\'').unwrap()];
    c.send(&format!("USR 4 TWN S {ticket}")).await;
    c.expect(&format!("USR 4 OK {handle} 1 0")).await;
    c.expect("SBS 0 null").await;
    expect_payload(&mut c, "MSG Hotmail Hotmail").await;
    c.trid = 4;
    c
}

/// Receives a payload command and checks its line, whose last field must
/// be the payload's length.
async fn expect_payload(c: &mut Client, head: &str) -> msnp::codec::Command {
    let cmd = c.recv().await;
    let len = cmd.payload.as_ref().map_or(0, |p| p.len());
    assert_eq!(render(&cmd), format!("{head} {len}"), "unexpected command");
    cmd
}

fn payload_text(cmd: &msnp::codec::Command) -> String {
    String::from_utf8_lossy(cmd.payload.as_deref().unwrap_or_default()).into_owned()
}

/// `<ml>` for one contact as WLM clients write it.
fn ml(initial: bool, local: &str, lists: u8) -> Vec<u8> {
    let head = if initial { "<ml l=\"1\">" } else { "<ml>" };
    format!("{head}<d n=\"example.com\"><c n=\"{local}\" l=\"{lists}\" t=\"1\" /></d></ml>")
        .into_bytes()
}

/// How a WLM client of `dialect` sees `handle` in presence lines.
fn shown(dialect: u8, handle: &str) -> String {
    match dialect {
        13 => handle.to_string(),
        14..=17 => format!("{handle} 1"),
        _ => format!("1:{handle}"),
    }
}

fn caps_shown(dialect: u8, caps: u32) -> String {
    if dialect >= 16 {
        format!("{caps}:0")
    } else {
        caps.to_string()
    }
}

#[tokio::test]
async fn msnp18_signs_in_step_by_step_as_wlm_2009_does() {
    let wlm = start_wlm(|_| {}).await;
    let mut c = sign_in_wlm(&wlm, 18, "alice@example.com").await;
    // retro-prpl sends BLP before its initial ADL, also when nothing changes.
    for mode in ["BL", "BL", "AL", "AL"] {
        let t = c.next();
        c.send(&format!("BLP {t} {mode}")).await;
        c.expect(&format!("BLP {t} {mode}")).await;
    }
    let t = c.next();
    c.send_payload(&format!("ADL {t}"), b"<ml l=\"1\"></ml>")
        .await;
    c.expect(&format!("ADL {t} OK")).await;
    let t = c.next();
    c.send(&format!("PRP {t} MFN Alice%20A.")).await;
    c.expect(&format!("PRP {t} MFN Alice%20A.")).await;
    let t = c.next();
    c.send_payload(
        &format!("UUX {t}"),
        b"<EndpointData><Capabilities>2688340284:2550273040</Capabilities></EndpointData>",
    )
    .await;
    c.expect(&format!("UUX {t} 0")).await;
    let t = c.next();
    c.send_payload(
        &format!("UUX {t}"),
        b"<PrivateEndpointData><EpName>Laptop</EpName><Idle>false</Idle><ClientType>1</ClientType><State>NLN</State></PrivateEndpointData>",
    )
    .await;
    c.expect(&format!("UUX {t} 0")).await;
    let t = c.next();
    c.send(&format!("CHG {t} NLN {WLM_CAPS} 0")).await;
    c.expect(&format!("CHG {t} NLN {WLM_CAPS} 0")).await;
    let t = c.next();
    c.send_payload(
        &format!("UUX {t}"),
        format!("<Data><PSM>hello</PSM><CurrentMedia></CurrentMedia><MachineGuid>{WLM_GUID}</MachineGuid><DDP></DDP><SignatureSound></SignatureSound><Scene></Scene><ColorScheme>-3</ColorScheme></Data>").as_bytes(),
    )
    .await;
    c.expect(&format!("UUX {t} 0")).await;
    let t = c.next();
    c.send("PNG").await;
    c.expect("QNG 50").await;
    // The address-book-era lists are edited with ADL/RML only.
    c.send(&format!("SYN {} 0 0", t + 1)).await;
    c.expect_closed().await;
}

/// Every WLM dialect: its own sign-in lines, then presence with an MSNP12
/// contact both ways in the dialect's form, a challenge answered with the
/// dialect's product id, and the offline line.
#[tokio::test]
async fn every_wlm_dialect_signs_in_and_shares_presence_with_msnp12() {
    for dialect in 13..=18u8 {
        let wlm = start_wlm(|c| c.msn.challenges = true).await;
        let mut bob = sign_in_msnp12(&wlm, "bob@example.com").await;
        let t = bob.next();
        bob.send(&format!("ADC {t} FL N=alice@example.com F=Alice"))
            .await;
        assert_eq!(bob.recv().await.args[1], "FL");
        let t = bob.next();
        bob.send(&format!("CHG {t} NLN 1342177312")).await;
        bob.expect(&format!("CHG {t} NLN 1342177312")).await;
        // Challenge for the MSNP12 client, answered with its own product.
        let chl = bob.recv_named("CHL").await;
        let product = msnp::auth::find_product("PROD0101{0RM?UBW").unwrap();
        let answer = msnp::auth::challenge_msnp11(&chl.args[1], product.id, product.key);
        let t = bob.next();
        bob.send_payload(&format!("QRY {t} {}", product.id), answer.as_bytes())
            .await;
        bob.expect(&format!("QRY {t}")).await;

        let mut alice = sign_in_wlm(&wlm, dialect, "alice@example.com").await;
        let t = alice.next();
        alice
            .send_payload(&format!("ADL {t}"), &ml(true, "bob", 3))
            .await;
        alice.expect(&format!("ADL {t} OK")).await;
        let caps = if dialect >= 16 {
            WLM_CAPS
        } else {
            "2416181284"
        };
        let t = alice.next();
        alice.send(&format!("CHG {t} NLN {caps} 0")).await;
        alice.expect(&format!("CHG {t} NLN {caps} 0")).await;
        let bob_fields = format!(
            "NLN {} Bob {} %3Cmsnobj%2F%3E",
            shown(dialect, "bob@example.com"),
            caps_shown(dialect, 1342177312)
        );
        if dialect <= 17 {
            alice.expect(&format!("ILN {t} {bob_fields}")).await;
        } else {
            alice.expect(&format!("NLN {bob_fields}")).await;
        }
        let chl = alice.recv_named("CHL").await;
        let product =
            msnp::auth::wlm_client_product(msnp::dialect::Dialect::new(dialect).unwrap()).unwrap();
        let answer = msnp::auth::challenge_msnp11(&chl.args[1], product.id, product.key);
        let t = alice.next();
        alice
            .send_payload(&format!("QRY {t} {}", product.id), answer.as_bytes())
            .await;
        alice.expect(&format!("QRY {t}")).await;

        // Alice as the MSNP12 client sees her (extended caps dropped).
        let alice_caps = caps.split(':').next().unwrap();
        bob.expect(&format!("NLN NLN alice@example.com Alice {alice_caps}"))
            .await;
        // Her personal message reaches Bob; Bob's reaches her, in her form.
        let t = alice.next();
        alice
            .send_payload(
                &format!("UUX {t}"),
                b"<Data><PSM>from wlm</PSM><CurrentMedia></CurrentMedia></Data>",
            )
            .await;
        alice.expect(&format!("UUX {t} 0")).await;
        let ubx = expect_payload(&mut bob, "UBX alice@example.com").await;
        assert!(payload_text(&ubx).contains("<PSM>from wlm</PSM>"));
        let t = bob.next();
        bob.send_payload(
            &format!("UUX {t}"),
            b"<Data><PSM>from msnp12</PSM><CurrentMedia></CurrentMedia></Data>",
        )
        .await;
        bob.expect(&format!("UUX {t} 0")).await;
        let ubx = expect_payload(
            &mut alice,
            &format!("UBX {}", shown(dialect, "bob@example.com")),
        )
        .await;
        assert!(
            payload_text(&ubx).contains("<PSM>from msnp12</PSM>"),
            "dialect {dialect}"
        );
        // Status change and sign-out.
        let t = bob.next();
        bob.send(&format!("CHG {t} AWY 1342177312")).await;
        bob.expect(&format!("CHG {t} AWY 1342177312")).await;
        alice
            .expect(&format!(
                "NLN AWY {} Bob {} %3Cmsnobj%2F%3E",
                shown(dialect, "bob@example.com"),
                caps_shown(dialect, 1342177312)
            ))
            .await;
        bob.send("OUT").await;
        let fln = match dialect {
            13 => "FLN bob@example.com".to_string(),
            14 | 15 => "FLN bob@example.com 1 0".to_string(),
            16 | 17 => "FLN bob@example.com 1 0:0".to_string(),
            _ => "FLN 1:bob@example.com 0:0".to_string(),
        };
        alice.expect(&fln).await;
    }
}

/// An MSNP7 user adds the WLM user: she is told in the WLM form (ADL with
/// RL), he sees her come online; she adds him back with ADL and sees him;
/// blocking him with ADL BL hides her from him.
#[tokio::test]
async fn msnp18_and_msnp7_see_each_other_and_blocking_works() {
    let wlm = start_wlm(|_| {}).await;
    let mut alice = sign_in_wlm(&wlm, 18, "alice@example.com").await;
    let t = alice.next();
    alice
        .send_payload(&format!("ADL {t}"), b"<ml l=\"1\"></ml>")
        .await;
    alice.expect(&format!("ADL {t} OK")).await;
    let t = alice.next();
    alice.send(&format!("CHG {t} NLN {WLM_CAPS} 0")).await;
    alice.expect(&format!("CHG {t} NLN {WLM_CAPS} 0")).await;

    let mut carol = common::sign_in_md5(wlm.server.ns(), 7, "carol@example.com", PW).await;
    carol.send("CHG 2 NLN").await;
    carol.expect("CHG 2 NLN").await;
    carol
        .send("ADD 3 FL alice@example.com alice@example.com")
        .await;
    assert_eq!(
        carol.recv().await.args[..2],
        ["3".to_string(), "FL".to_string()]
    );
    carol.expect("ILN 3 NLN alice@example.com Alice").await;
    let notice = expect_payload(&mut alice, "ADL 0").await;
    assert_eq!(
        payload_text(&notice),
        "<ml><d n=\"example.com\"><c n=\"carol\" t=\"1\" l=\"8\" f=\"Carol\" /></d></ml>"
    );
    // Alice adds Carol back (FL + AL) and sees her at once.
    let t = alice.next();
    alice
        .send_payload(&format!("ADL {t}"), &ml(false, "carol", 3))
        .await;
    alice.expect(&format!("ADL {t} OK")).await;
    alice
        .expect("NLN NLN 1:carol@example.com Carol 0:0 %3Cmsnobj%2F%3E")
        .await;
    carol.send("CHG 4 BSY").await;
    carol.expect("CHG 4 BSY").await;
    alice
        .expect("NLN BSY 1:carol@example.com Carol 0:0 %3Cmsnobj%2F%3E")
        .await;
    let t = alice.next();
    alice.send(&format!("CHG {t} AWY {WLM_CAPS} 0")).await;
    alice.expect(&format!("CHG {t} AWY {WLM_CAPS} 0")).await;
    carol.expect("NLN AWY alice@example.com Alice").await;
    // Blocking Carol: she sees Alice go offline; RML BL gives her back.
    let t = alice.next();
    alice
        .send_payload(&format!("ADL {t}"), &ml(false, "carol", 4))
        .await;
    alice.expect(&format!("ADL {t} OK")).await;
    carol.expect("FLN alice@example.com").await;
    let t = alice.next();
    alice
        .send_payload(&format!("ADL {t}"), &ml(false, "carol", 2))
        .await;
    alice.expect(&format!("ADL {t} OK")).await;
    carol.expect("NLN AWY alice@example.com Alice").await;
    // Carol drops Alice: the WLM form of the reverse-list removal.
    carol.send("REM 5 FL alice@example.com").await;
    carol.recv_named("REM").await;
    let notice = expect_payload(&mut alice, "RML 0").await;
    assert_eq!(
        payload_text(&notice),
        "<ml><d n=\"example.com\"><c n=\"carol\" t=\"1\" l=\"8\" /></d></ml>"
    );
    // RML of the forward list: Carol's presence no longer reaches Alice.
    let t = alice.next();
    alice
        .send_payload(&format!("RML {t}"), &ml(false, "carol", 1))
        .await;
    alice.expect(&format!("RML {t} OK")).await;
    carol.send("CHG 6 NLN").await;
    carol.expect("CHG 6 NLN").await;
    // Carol's change is queued for watchers before her CHG is answered, so
    // a notice would come before the answer to Alice's next command.
    alice.send("PNG").await;
    alice.expect("QNG 50").await;
}

/// A wrong MBI response, a forged ticket and a ticket already used are
/// each refused with 911, and the connection closes.
#[tokio::test]
async fn bad_mbi_forged_and_reused_tickets_are_refused() {
    let wlm = start_wlm(|_| {}).await;
    let handle = "alice@example.com";

    // Wrong MBI: computed for another nonce.
    let mut c = Client::connect(wlm.server.ns()).await;
    let nonce = hello(&wlm, &mut c, 18, handle).await;
    let (ticket, secret) =
        tokens(&wlm, true, handle, "messengerclear.live.com", "MBI_KEY_OLD").await;
    let other_nonce = nonce.chars().rev().collect::<String>();
    let t = c.next();
    c.send(&usr_s(18, t, &ticket, &secret, &other_nonce)).await;
    c.expect(&format!("911 {t}")).await;
    c.expect_closed().await;

    // Forged ticket with an MBI response under a made-up key.
    let mut c = Client::connect(wlm.server.ns()).await;
    let nonce = hello(&wlm, &mut c, 18, handle).await;
    let t = c.next();
    let forged = format!("t={}&p=", "0".repeat(32));
    c.send(&usr_s(
        18,
        t,
        &forged,
        "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcY",
        &nonce,
    ))
    .await;
    c.expect(&format!("911 {t}")).await;
    c.expect_closed().await;

    // A good sign-in, then the same ticket again on a new connection.
    let mut c = Client::connect(wlm.server.ns()).await;
    let nonce = hello(&wlm, &mut c, 18, handle).await;
    let (ticket, secret) =
        tokens(&wlm, true, handle, "messengerclear.live.com", "MBI_KEY_OLD").await;
    let t = c.next();
    c.send(&usr_s(18, t, &ticket, &secret, &nonce)).await;
    c.expect(&format!("USR {t} OK {handle} 1 0")).await;
    let mut again = Client::connect(wlm.server.ns()).await;
    let nonce = hello(&wlm, &mut again, 18, handle).await;
    let t = again.next();
    again.send(&usr_s(18, t, &ticket, &secret, &nonce)).await;
    again.expect(&format!("911 {t}")).await;
    again.expect_closed().await;

    // MSNP13–14: a forged ticket, then a used one.
    let mut c = Client::connect(wlm.server.ns()).await;
    hello(&wlm, &mut c, 13, handle).await;
    let t = c.next();
    c.send(&format!("USR {t} TWN S {forged}")).await;
    c.expect(&format!("911 {t}")).await;
    c.expect_closed().await;
    let mut c = Client::connect(wlm.server.ns()).await;
    let policy = hello(&wlm, &mut c, 14, handle).await;
    let (ticket, _) = tokens(
        &wlm,
        false,
        handle,
        "messenger.msn.com",
        &format!("?{policy}"),
    )
    .await;
    let t = c.next();
    c.send(&format!("USR {t} TWN S {ticket}")).await;
    c.expect(&format!("USR {t} OK {handle} 1 0")).await;
    let mut again = Client::connect(wlm.server.ns()).await;
    hello(&wlm, &mut again, 14, handle).await;
    let t = again.next();
    again.send(&format!("USR {t} TWN S {ticket}")).await;
    again.expect(&format!("911 {t}")).await;
    again.expect_closed().await;

    // MSNP16+ must send the MBI response.
    let mut c = Client::connect(wlm.server.ns()).await;
    hello(&wlm, &mut c, 16, handle).await;
    let (ticket, _) = tokens(&wlm, true, handle, "messengerclear.live.com", "MBI_KEY_OLD").await;
    let t = c.next();
    c.send(&format!("USR {t} SSO S {ticket}")).await;
    c.expect(&format!("911 {t}")).await;
    c.expect_closed().await;

    // MSNP16+ must name the machine, in GUID form.
    for guid in ["", " not-a-guid"] {
        let mut c = Client::connect(wlm.server.ns()).await;
        let nonce = hello(&wlm, &mut c, 17, handle).await;
        let (ticket, secret) =
            tokens(&wlm, true, handle, "messengerclear.live.com", "MBI_KEY_OLD").await;
        let mbi = msnp::sso::mbi_response(&secret, &nonce, rand::random()).unwrap();
        let t = c.next();
        c.send(&format!("USR {t} SSO S {ticket} {mbi}{guid}")).await;
        c.expect(&format!("911 {t}")).await;
        c.expect_closed().await;
    }
    // Upper case without braces (retro-prpl's form) is a GUID too.
    let mut c = Client::connect(wlm.server.ns()).await;
    let nonce = hello(&wlm, &mut c, 18, handle).await;
    let (ticket, secret) =
        tokens(&wlm, true, handle, "messengerclear.live.com", "MBI_KEY_OLD").await;
    let mbi = msnp::sso::mbi_response(&secret, &nonce, rand::random()).unwrap();
    let t = c.next();
    c.send(&format!(
        "USR {t} SSO S {ticket} {mbi} 8C7D6A2B-1F2E-4D3C-9B8A-7F6E5D4C3B2A"
    ))
    .await;
    c.expect(&format!("USR {t} OK {handle} 1 0")).await;

    // The package of the other era closes.
    let mut c = Client::connect(wlm.server.ns()).await;
    c.send("VER 1 MSNP18 CVR0").await;
    c.expect("VER 1 MSNP18").await;
    c.send(&format!("USR 2 TWN I {handle}")).await;
    c.expect_closed().await;
}

/// Signing in again elsewhere ends the first session with `OUT OTH`.
#[tokio::test]
async fn second_sign_in_sends_out_oth() {
    let wlm = start_wlm(|_| {}).await;
    let mut first = sign_in_wlm(&wlm, 18, "alice@example.com").await;
    let _second = sign_in_wlm(&wlm, 15, "alice@example.com").await;
    first.expect("OUT OTH").await;
    first.expect_closed().await;
    // The per-dialect session gauges know the WLM dialects.
    let metrics = &wlm.server.running.metrics;
    common::eventually("the MSNP18 session to be counted out", || {
        let text = metrics.render(1, 0);
        text.contains("msngate_sessions{dialect=\"MSNP18\"} 0\n")
            && text.contains("msngate_sessions{dialect=\"MSNP15\"} 1\n")
    })
    .await;
}

/// Malformed or reserved `<ml>` documents get the reference's error and a
/// close; FQY (MSNP14+) answers the network of existing accounts.
#[tokio::test]
async fn adl_errors_and_fqy() {
    let wlm = start_wlm(|_| {}).await;
    let mut c = sign_in_wlm(&wlm, 18, "alice@example.com").await;
    let t = c.next();
    c.send_payload(
        &format!("FQY {t}"),
        b"<ml><d n=\"example.com\"><c n=\"bob\" /></d></ml>",
    )
    .await;
    let answer = expect_payload(&mut c, &format!("FQY {t}")).await;
    assert_eq!(
        payload_text(&answer),
        "<ml><d n=\"example.com\"><c n=\"bob\" t=\"1\" /></d></ml>"
    );
    let t = c.next();
    c.send_payload(
        &format!("FQY {t}"),
        b"<ml><d n=\"example.com\"><c n=\"nobody\" /></d></ml>",
    )
    .await;
    c.expect(&format!("208 {t}")).await;
    // An account that no longer exists does not hold up the initial dump,
    // but a later ADL naming one is refused.
    let t = c.next();
    c.send_payload(&format!("ADL {t}"), &ml(true, "nobody", 3))
        .await;
    c.expect(&format!("ADL {t} OK")).await;
    let t = c.next();
    c.send_payload(&format!("ADL {t}"), &ml(false, "nobody", 1))
        .await;
    c.expect(&format!("208 {t}")).await;
    // Reverse list bits from a client: 241 with an empty payload, close.
    let t = c.next();
    c.send_payload(&format!("ADL {t}"), &ml(false, "bob", 8))
        .await;
    let refused = expect_payload(&mut c, &format!("241 {t}")).await;
    assert_eq!(payload_text(&refused), "");
    c.expect_closed().await;

    let mut c = sign_in_wlm(&wlm, 14, "bob@example.com").await;
    let t = c.next();
    c.send_payload(&format!("ADL {t}"), b"<ml><d n=\"example.com\"></d></ml>")
        .await;
    c.expect(&format!("240 {t}")).await;
    c.expect_closed().await;
}

/// The switchboard works for MSNP13–15 as for MSNP12 (plain handles): a
/// WLM 8.x user and an MSNP12 user chat both ways, each invited once.
#[tokio::test]
async fn msnp15_and_msnp12_chat_through_the_switchboard() {
    let wlm = start_wlm(|_| {}).await;
    let sb_address = format!("127.0.0.1:{}", wlm.server.running.switchboard_addr.port());
    let mut bob = sign_in_msnp12(&wlm, "bob@example.com").await;
    let t = bob.next();
    bob.send(&format!("CHG {t} NLN 1342177312")).await;
    bob.expect(&format!("CHG {t} NLN 1342177312")).await;
    let mut alice = sign_in_wlm(&wlm, 15, "alice@example.com").await;
    let t = alice.next();
    alice
        .send_payload(&format!("ADL {t}"), b"<ml l=\"1\"></ml>")
        .await;
    alice.expect(&format!("ADL {t} OK")).await;
    let t = alice.next();
    alice.send(&format!("CHG {t} NLN 2416181284 0")).await;
    alice.expect(&format!("CHG {t} NLN 2416181284 0")).await;

    // Alice opens the session: the MSNP14+ XFR form.
    let t = alice.next();
    alice.send(&format!("XFR {t} SB")).await;
    let xfr = alice.recv().await;
    assert_eq!(xfr.args.len(), 8, "{}", render(&xfr));
    assert_eq!(
        &xfr.args[..4],
        [t.to_string(), "SB".into(), sb_address.clone(), "CKI".into()]
    );
    assert_eq!(
        &xfr.args[5..],
        ["U".to_string(), "messenger.msn.com".into(), "1".into()]
    );
    let mut a_sb = Client::connect(wlm.server.running.switchboard_addr).await;
    a_sb.send(&format!("USR 1 alice@example.com {}", xfr.args[4]))
        .await;
    a_sb.expect("USR 1 OK alice@example.com Alice").await;
    a_sb.send("CAL 2 bob@example.com").await;
    let ringing = a_sb.recv().await;
    assert_eq!(&ringing.args[..2], ["2".to_string(), "RINGING".into()]);
    let session = ringing.args[2].clone();
    let rng = bob.recv_named("RNG").await;
    assert_eq!(rng.args.len(), 6, "MSNP12 RNG form: {}", render(&rng));
    let mut b_sb = Client::connect(wlm.server.running.switchboard_addr).await;
    b_sb.send(&format!("ANS 1 bob@example.com {} {session}", rng.args[3]))
        .await;
    b_sb.expect("IRO 1 1 1 alice@example.com Alice 2416181284")
        .await;
    b_sb.expect("ANS 1 OK").await;
    a_sb.expect("JOI bob@example.com Bob 1342177312").await;
    let hello = b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nhi from WLM";
    a_sb.send_payload("MSG 3 A", hello).await;
    let relayed = expect_payload(&mut b_sb, "MSG alice@example.com Alice").await;
    assert_eq!(relayed.payload.as_deref(), Some(&hello[..]));
    a_sb.expect("ACK 3").await;
    let reply =
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nhi from MSNP12";
    b_sb.send_payload("MSG 2 N", reply).await;
    let relayed = expect_payload(&mut a_sb, "MSG bob@example.com Bob").await;
    assert_eq!(relayed.payload.as_deref(), Some(&reply[..]));

    // Bob invites Alice into a new session: the MSNP14+ RNG form.
    let t = bob.next();
    bob.send(&format!("XFR {t} SB")).await;
    let xfr = bob.recv_named("XFR").await;
    assert_eq!(xfr.args.len(), 5, "MSNP12 XFR form: {}", render(&xfr));
    let mut b2 = Client::connect(wlm.server.running.switchboard_addr).await;
    b2.send(&format!("USR 1 bob@example.com {}", xfr.args[4]))
        .await;
    b2.expect("USR 1 OK bob@example.com Bob").await;
    b2.send("CAL 2 alice@example.com").await;
    let session = b2.recv().await.args[2].clone();
    let rng = alice.recv_named("RNG").await;
    assert_eq!(rng.args[0], session);
    assert_eq!(
        &rng.args[4..],
        [
            "bob@example.com".to_string(),
            "Bob".into(),
            "U".into(),
            "messenger.hotmail.com".into(),
            "1".into()
        ]
    );
    let mut a2 = Client::connect(wlm.server.running.switchboard_addr).await;
    a2.send(&format!(
        "ANS 1 alice@example.com {} {session}",
        rng.args[3]
    ))
    .await;
    a2.expect("IRO 1 1 1 bob@example.com Bob 1342177312").await;
    a2.expect("ANS 1 OK").await;
}

/// The dispatch server refers WLM clients to the notification server
/// before any policy or challenge.
#[tokio::test]
async fn dispatch_refers_wlm_clients_to_the_notification_server() {
    let ns_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let wlm = start_wlm(|c| {
        c.msn.dispatch_redirect = true;
        c.msn.notification_listen = Some(ns_port);
    })
    .await;
    let dispatch = wlm.server.running.dispatch_addr.expect("dispatch listener");
    for (dialect, package) in [(13u8, "TWN"), (18, "SSO")] {
        let mut c = Client::connect(dispatch).await;
        c.send(&format!("VER 1 MSNP{dialect} CVR0")).await;
        c.expect(&format!("VER 1 MSNP{dialect}")).await;
        c.use_dialect(dialect);
        c.send(&format!("USR 2 {package} I alice@example.com"))
            .await;
        c.expect(&format!(
            "XFR 2 NS 127.0.0.1:{} U D",
            wlm.server.ns().port()
        ))
        .await;
        c.expect_closed().await;
    }
}

/// A bridge network that knows one user, for presence of bridged contacts.
struct OneUserNetwork;

const BRIDGED: &str = "known@test.bridge";

fn bridged(status: msngate::core::presence::Status) -> Arc<msngate::core::presence::Presence> {
    Arc::new(msngate::core::presence::Presence {
        handle: BRIDGED.into(),
        status,
        friendly_name: "Known Remote".into(),
        capabilities: 0x4000_0000,
        avatar: None,
        personal_message: "on the bridge".into(),
        now_playing: None,
    })
}

impl msngate::core::remote::Network for OneUserNetwork {
    fn name(&self) -> &str {
        "one-user"
    }
    fn owns(&self, handle: &str) -> bool {
        handle.ends_with("@test.bridge")
    }
    fn resolve<'a>(
        &'a self,
        handle: &'a str,
    ) -> msngate::core::remote::BoxFuture<'a, Option<Arc<msngate::core::presence::Presence>>> {
        Box::pin(async move {
            (handle == BRIDGED).then(|| bridged(msngate::core::presence::Status::Online))
        })
    }
    fn watch(&self, _local: &str, _remote: &str, _watching: bool) {}
    fn invite<'a>(
        &'a self,
        _conversation: Arc<msngate::core::conversation::Conversation>,
        _inviter: Arc<msngate::core::conversation::ParticipantInfo>,
        _remote: &'a str,
    ) -> msngate::core::remote::BoxFuture<'a, Result<(), msngate::core::hub::Unreachable>> {
        Box::pin(async { Err(msngate::core::hub::Unreachable) })
    }
    fn local_presence(&self, _presence: Arc<msngate::core::presence::Presence>) {}
}

/// Bridged contacts are network-1 contacts to WLM clients: FQY, ADL, their
/// presence and personal message in each dialect's form.
#[tokio::test]
async fn bridged_contacts_appear_in_the_wlm_forms() {
    use msngate::core::presence::Status;
    let wlm = start_wlm(|_| {}).await;
    let hub = wlm.server.running.hub.clone();
    hub.register_network(Arc::new(OneUserNetwork));
    for (dialect, user) in [(18u8, "alice@example.com"), (14, "bob@example.com")] {
        let mut c = sign_in_wlm(&wlm, dialect, user).await;
        let t = c.next();
        c.send_payload(&format!("ADL {t}"), b"<ml l=\"1\"></ml>")
            .await;
        c.expect(&format!("ADL {t} OK")).await;
        let t = c.next();
        c.send(&format!("CHG {t} NLN 0 0")).await;
        c.expect(&format!("CHG {t} NLN 0 0")).await;
        let t = c.next();
        c.send_payload(
            &format!("FQY {t}"),
            b"<ml><d n=\"test.bridge\"><c n=\"known\" /><c n=\"unknown\" /></d></ml>",
        )
        .await;
        let answer = expect_payload(&mut c, &format!("FQY {t}")).await;
        assert_eq!(
            payload_text(&answer),
            "<ml><d n=\"test.bridge\"><c n=\"known\" t=\"1\" /></d></ml>"
        );
        let t = c.next();
        c.send_payload(
            &format!("ADL {t}"),
            b"<ml><d n=\"test.bridge\"><c n=\"known\" l=\"3\" t=\"1\" /></d></ml>",
        )
        .await;
        c.expect(&format!("ADL {t} OK")).await;
        let who = shown(dialect, BRIDGED);
        let caps = caps_shown(dialect, 0x4000_0000);
        let line = format!("NLN {who} Known%20Remote {caps} %3Cmsnobj%2F%3E");
        if dialect <= 17 {
            c.expect(&format!("ILN {t} {line}")).await;
        } else {
            c.expect(&format!("NLN {line}")).await;
        }
        let ubx = expect_payload(&mut c, &format!("UBX {who}")).await;
        assert!(payload_text(&ubx).contains("<PSM>on the bridge</PSM>"));
        hub.remote_presence(bridged(Status::Away));
        c.expect(&format!(
            "NLN AWY {who} Known%20Remote {caps} %3Cmsnobj%2F%3E"
        ))
        .await;
        hub.remote_presence(bridged(Status::Offline));
        let fln = if dialect >= 16 {
            format!("FLN {who} 0:0")
        } else {
            format!("FLN {who} 0")
        };
        c.expect(&fln).await;
        hub.remote_presence(bridged(Status::Online));
        c.recv_named("NLN").await;
    }
}

/// WLM adds a contact through the address book (SOAP) and subscribes with
/// ADL afterwards: the contact is already on the forward list then, and
/// its presence still follows the ADL answer.
#[tokio::test]
async fn adl_after_an_address_book_add_sends_the_contacts_presence() {
    use msngate::core::hub::RosterEdit;
    use msngate::core::roster::List;
    let wlm = start_wlm(|_| {}).await;
    let mut bob = sign_in_msnp12(&wlm, "bob@example.com").await;
    let t = bob.next();
    bob.send(&format!("CHG {t} NLN 1342177312")).await;
    bob.expect(&format!("CHG {t} NLN 1342177312")).await;
    let mut alice = sign_in_wlm(&wlm, 18, "alice@example.com").await;
    let t = alice.next();
    alice
        .send_payload(&format!("ADL {t}"), b"<ml l=\"1\"></ml>")
        .await;
    alice.expect(&format!("ADL {t} OK")).await;
    let t = alice.next();
    alice.send(&format!("CHG {t} NLN {WLM_CAPS} 0")).await;
    alice.expect(&format!("CHG {t} NLN {WLM_CAPS} 0")).await;
    // What the address book service does for ABContactAdd.
    let hub = wlm.server.hub();
    let session = hub.session("alice@example.com").expect("alice online");
    hub.edit(
        &session,
        RosterEdit::Add {
            list: List::Forward,
            handle: "bob@example.com".into(),
            stored_name: "bob@example.com".into(),
            group: None,
        },
    )
    .await
    .expect("forward-list add");
    let t = alice.next();
    alice
        .send_payload(&format!("ADL {t}"), &ml(false, "bob", 1))
        .await;
    alice.expect(&format!("ADL {t} OK")).await;
    alice
        .expect("NLN NLN 1:bob@example.com Bob 1342177312:0 %3Cmsnobj%2F%3E")
        .await;
}

/// Before `USR … OK` a WLM connection accepts only the sign-in commands,
/// and a malformed `USR` is refused.
#[tokio::test]
async fn wlm_commands_before_sign_in_are_refused() {
    let wlm = start_wlm(|_| {}).await;
    let versioned = async || {
        let mut c = Client::connect(wlm.server.ns()).await;
        c.send("VER 1 MSNP18 CVR0").await;
        c.expect("VER 1 MSNP18").await;
        c.use_dialect(18);
        c
    };
    // List and presence commands before sign-in close.
    let mut c = versioned().await;
    c.send_payload("ADL 2", b"<ml l=\"1\"></ml>").await;
    c.expect_closed().await;
    let mut c = versioned().await;
    c.send("CHG 2 NLN 0:0 0").await;
    c.expect_closed().await;
    // USR S without USR I, USR I without a handle: close.
    let mut c = versioned().await;
    c.send("USR 2 SSO S t=x&p=y AAAA {8c7d6a2b-1f2e-4d3c-9b8a-7f6e5d4c3b2a}")
        .await;
    c.expect_closed().await;
    let mut c = versioned().await;
    c.send("USR 2 SSO I").await;
    c.expect_closed().await;
    // A malformed handle is a wrong login (911), not a close.
    let mut c = versioned().await;
    c.send("USR 2 SSO I not-an-address").await;
    c.expect("911 2").await;
    c.send("USR 3 SSO I alice@example.com").await;
    expect_payload(&mut c, "GCF 0").await;
    assert_eq!(c.recv().await.args[..3], ["3", "SSO", "S"]);
    // An MBI field that is not base64, or far too long: 911 and close.
    for blob in ["not*base64!".to_string(), "A".repeat(4000)] {
        let mut c = Client::connect(wlm.server.ns()).await;
        hello(&wlm, &mut c, 18, "alice@example.com").await;
        let (ticket, _) = tokens(
            &wlm,
            true,
            "alice@example.com",
            "messengerclear.live.com",
            "MBI_KEY_OLD",
        )
        .await;
        let t = c.next();
        c.send(&format!("USR {t} SSO S {ticket} {blob} {WLM_GUID}"))
            .await;
        c.expect(&format!("911 {t}")).await;
        c.expect_closed().await;
    }
}
