//! Passport HTTP over real TCP (and TLS): nexus, Passport 1.4 login and
//! RST.srf, asserting the raw bytes clients parse, header-name case included.

use msngate::config::{Config, TlsConfig};
use msngate::core::accounts::Accounts;
use msngate::core::hashing::PasswordHasher;
use msngate::core::hub::{Hub, HubSettings};
use msngate::metrics::Metrics;
use msngate::server::passport;
use msngate::store::Store;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// How long to wait for an answer: generous, for slow and loaded CI machines.
const WAIT: Duration = Duration::from_secs(30);

const PUBLIC_URL: &str = "https://login.example.com";

struct Gateway {
    addr: SocketAddr,
    hub: Arc<Hub>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Gateway {
    async fn start(tls: Option<TlsConfig>) -> Gateway {
        Gateway::start_with(tls, None).await
    }

    async fn start_with(tls: Option<TlsConfig>, metrics: Option<Arc<Metrics>>) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}/t.db", dir.path().display()), 4)
            .await
            .unwrap();
        let hasher = PasswordHasher::new(1, 1024, 1).unwrap();
        let accounts = Accounts::new(store.clone(), hasher, true);
        let hub = Arc::new(Hub::new(
            store,
            accounts,
            HubSettings {
                max_queued_events: 1000,
                max_queued_bytes: 256 * 1024,
                max_contacts: 100,
                ticket_lifetime: Duration::from_secs(60),
                cookie_lifetime: Duration::from_secs(60),
                max_participants: 5,
            },
        ));
        hub.accounts
            .create("alice@example.com", "s3cret!", Some("Alice"))
            .await
            .unwrap();
        hub.accounts
            .create("comma@example.com", "pa,ss w%rd", None)
            .await
            .unwrap();

        let mut config = Config::default();
        config.http.public_url = PUBLIC_URL.into();
        config.http.tls = tls.clone();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let router = match metrics {
            Some(metrics) => passport::router_with_metrics(hub.clone(), Arc::new(config), metrics),
            None => passport::router(hub.clone(), Arc::new(config)),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            passport::serve(listener, router, tls.as_ref(), async move {
                let _ = stopped.await;
            })
            .await
        });
        Gateway {
            addr,
            hub,
            stop: Some(stop),
            task,
            _dir: dir,
        }
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.unwrap()
    }

    /// Sends `request` on a fresh connection and returns the first response.
    async fn exchange(&self, request: &[u8]) -> Reply {
        let mut stream = self.connect().await;
        stream.write_all(request).await.unwrap();
        read_reply(&mut stream).await
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(WAIT, &mut self.task).await;
        result
            .expect("server stops after the shutdown signal")
            .unwrap()
            .unwrap();
    }
}

#[derive(Debug)]
struct Reply {
    /// Status line and headers, exactly as received (CRLFs included).
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn has_line(&self, line: &str) -> bool {
        self.head.split("\r\n").any(|l| l == line)
    }

    fn line_starting(&self, prefix: &str) -> Option<&str> {
        self.head.split("\r\n").find(|l| l.starts_with(prefix))
    }

    fn body_text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
}

/// Reads one response: the head up to the blank line, then `Content-Length`
/// bytes of body (to EOF without one).
async fn read_reply(stream: &mut (impl AsyncRead + Unpin)) -> Reply {
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(
            n > 0,
            "connection closed before the end of the headers: {:?}",
            String::from_utf8_lossy(&data)
        );
        data.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(data[..head_end].to_vec()).unwrap();
    let length = head.split("\r\n").find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("content-length:")
            .map(|v| v.trim().parse::<usize>().unwrap())
    });
    let mut body = data[head_end..].to_vec();
    match length {
        Some(length) => {
            while body.len() < length {
                let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
                    .await
                    .unwrap()
                    .unwrap();
                assert!(n > 0, "connection closed inside the body");
                body.extend_from_slice(&chunk[..n]);
            }
            body.truncate(length);
        }
        None => {
            let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut body))
                .await
                .unwrap();
        }
    }
    Reply { head, body }
}

/// The login request libpurple sends (login.md §7.2), with `credentials`
/// in place of `sign-in=…,pwd=…`.
fn login_request(scheme: &str, credentials: &str) -> Vec<u8> {
    format!(
        "GET /login2.srf HTTP/1.1\r\n\
         Authorization: {scheme} OrgVerb=GET,OrgURL=http%3A%2F%2Fmessenger%2Emsn%2Ecom,{credentials},lc=1033,id=507,tw=40,fs=1,ru=http%3A%2F%2Fmessenger%2Emsn%2Ecom,ct=1062764429,kpp=1,kv=5,ver=2.1.0173.1,tpf=43f8a4c8ed940c04e3740be46c4d1619\r\n\
         User-Agent: MSMSGS\r\n\
         Host: login.example.com\r\n\
         Connection: Keep-Alive\r\n\
         Cache-Control: no-cache\r\n\r\n"
    )
    .into_bytes()
}

fn ticket_of(reply: &Reply) -> String {
    let line = reply
        .line_starting("Authentication-Info: ")
        .expect("Authentication-Info header");
    let start = line.find("from-PP='").expect("from-PP") + "from-PP='".len();
    let end = start + line[start..].find('\'').expect("closing quote");
    line[start..end].to_string()
}

fn assert_refused(reply: &Reply) {
    assert!(
        reply.head.starts_with("HTTP/1.1 401 Unauthorized\r\n"),
        "{}",
        reply.head
    );
    let line = reply
        .line_starting("WWW-Authenticate: ")
        .expect("WWW-Authenticate header");
    assert!(
        line.starts_with(
            "WWW-Authenticate: Passport1.4 da-status=failed,srealm=Passport.NET,ts=-3,prompt,cburl="
        ),
        "{line}"
    );
    assert!(
        line.ends_with(",cbtxt=Wrong%20e-mail%20address%20or%20password"),
        "{line}"
    );
    assert!(reply.has_line("Content-Length: 0"), "{}", reply.head);
    assert!(reply.line_starting("Authentication-Info").is_none());
    assert!(reply.body.is_empty());
}

#[tokio::test]
async fn nexus_sends_passport_urls_in_exact_case() {
    let gw = Gateway::start(None).await;
    let reply = gw
        .exchange(b"GET /rdr/pprdr.asp HTTP/1.1\r\nHost: nexus.passport.com\r\n\r\n")
        .await;
    assert!(
        reply.head.starts_with("HTTP/1.1 200 OK\r\n"),
        "{}",
        reply.head
    );
    let line = reply
        .line_starting("PassportURLs: ")
        .unwrap_or_else(|| panic!("no exact PassportURLs in {}", reply.head));
    assert!(
        line.starts_with(
            "PassportURLs: DARealm=Passport.Net,DALogin=login.example.com/login2.srf,"
        ),
        "{line}"
    );
    assert!(line.ends_with(",ConfigVersion=15"), "{line}");
    assert!(
        !line.contains("DALogin=https"),
        "DALogin must not carry a scheme: {line}"
    );
    assert!(reply.has_line("Content-Length: 0"), "{}", reply.head);
    assert!(!reply.head.contains("passporturls") && !reply.head.contains("Passporturls"));
    assert!(reply.body.is_empty());

    // Any method, and the HTTP/1.0 form several clients use.
    let reply = gw
        .exchange(b"POST /rdr/pprdr.asp HTTP/1.0\r\nContent-Length: 0\r\n\r\n")
        .await;
    assert!(
        reply.head.starts_with("HTTP/1.0 200 OK\r\n"),
        "{}",
        reply.head
    );
    assert!(
        reply
            .line_starting(
                "PassportURLs: DARealm=Passport.Net,DALogin=login.example.com/login2.srf"
            )
            .is_some()
    );
    gw.stop().await;
}

#[tokio::test]
async fn nexus_answers_a_request_line_without_version() {
    // Gaim's MSNP8-9 code: `GET /rdr/pprdr.asp\r\n\r\n`, then reads up to the blank line.
    let gw = Gateway::start(None).await;
    let mut stream = gw.connect().await;
    stream
        .write_all(b"GET /rdr/pprdr.asp\r\n\r\n")
        .await
        .unwrap();
    let mut all = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut all))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(all).unwrap();
    assert!(text.starts_with("HTTP/1.0 200 OK\r\n"), "{text}");
    assert!(
        text.contains(
            "\r\nPassportURLs: DARealm=Passport.Net,DALogin=login.example.com/login2.srf,"
        ),
        "{text}"
    );
    assert!(text.contains("\r\n\r\n"));
    gw.stop().await;
}

#[tokio::test]
async fn login_success_returns_a_ticket_that_redeems() {
    let gw = Gateway::start(None).await;
    let reply = gw
        .exchange(&login_request(
            "Passport1.4",
            "sign-in=alice%40example.com,pwd=s3cret%21",
        ))
        .await;
    assert!(
        reply.head.starts_with("HTTP/1.1 200 OK\r\n"),
        "{}",
        reply.head
    );
    let line = reply
        .line_starting("Authentication-Info: ")
        .expect("exact Authentication-Info");
    assert!(
        line.starts_with(
            "Authentication-Info: Passport1.4 da-status=success,tname=MSPAuth,tname=MSPProf,tname=MSPSec,from-PP='t="
        ),
        "{line}"
    );
    assert!(line.ends_with("',ru=http://messenger.msn.com"), "{line}");
    assert!(reply.has_line("Content-Length: 0"), "{}", reply.head);
    assert!(!reply.head.to_ascii_lowercase().contains("set-cookie"));
    let ticket = ticket_of(&reply);
    assert!(
        ticket.starts_with("t=") && ticket.contains("&p="),
        "{ticket}"
    );
    assert!(!ticket.contains([' ', ',', '\'']));
    gw.hub.tickets.redeem(&ticket, "alice@example.com").unwrap();
    // Single use.
    assert!(gw.hub.tickets.redeem(&ticket, "alice@example.com").is_err());

    // Handles are matched case-insensitively and the doubled scheme works.
    let reply = gw
        .exchange(&login_request(
            "Passport1.4 Passport1.4",
            "sign-in=Alice%40Example.COM,pwd=s3cret%21",
        ))
        .await;
    assert!(
        reply.head.starts_with("HTTP/1.1 200 OK\r\n"),
        "{}",
        reply.head
    );
    gw.hub
        .tickets
        .redeem(&ticket_of(&reply), "alice@example.com")
        .unwrap();
    gw.stop().await;
}

#[tokio::test]
async fn login_tolerates_client_variants() {
    let gw = Gateway::start(None).await;
    // URL-encoded `,`, space and `%` in the password.
    let reply = gw
        .exchange(&login_request(
            "Passport1.4",
            "sign-in=comma%40example.com,pwd=pa%2Css%20w%25rd",
        ))
        .await;
    assert!(
        reply.head.starts_with("HTTP/1.1 200 OK\r\n"),
        "{}",
        reply.head
    );
    gw.hub
        .tickets
        .redeem(&ticket_of(&reply), "comma@example.com")
        .unwrap();

    // A stray `}` after OrgURL and no `ru=` (client-quirks.md), unencoded `@`.
    let request = b"GET /login2.srf HTTP/1.1\r\n\
        Authorization: Passport1.4 OrgVerb=GET,OrgURL=http%3A%2F%2Fmessenger%2Emsn%2Ecom},sign-in=alice@example.com,pwd=s3cret!,lc=1033,id=507,tw=40,fs=1,ct=1,kpp=1,kv=5,ver=2.1.0173.1,tpf=x\r\n\
        Host: login.example.com\r\n\r\n";
    let reply = gw.exchange(request).await;
    assert!(
        reply.head.starts_with("HTTP/1.1 200 OK\r\n"),
        "{}",
        reply.head
    );

    // Keep-alive: the nexus and the login on one connection, as some clients do.
    let mut stream = gw.connect().await;
    stream
        .write_all(b"GET /rdr/pprdr.asp HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let first = read_reply(&mut stream).await;
    assert!(first.line_starting("PassportURLs: ").is_some());
    stream
        .write_all(&login_request(
            "Passport1.4",
            "sign-in=alice%40example.com,pwd=s3cret%21",
        ))
        .await
        .unwrap();
    let second = read_reply(&mut stream).await;
    assert!(
        second.head.starts_with("HTTP/1.1 200 OK\r\n"),
        "{}",
        second.head
    );
    gw.hub
        .tickets
        .redeem(&ticket_of(&second), "alice@example.com")
        .unwrap();
    gw.stop().await;
}

#[tokio::test]
async fn login_refusals_are_401_with_the_passport_challenge() {
    let gw = Gateway::start(None).await;
    let wrong = gw
        .exchange(&login_request(
            "Passport1.4",
            "sign-in=alice%40example.com,pwd=wrong",
        ))
        .await;
    assert_refused(&wrong);
    let unknown = gw
        .exchange(&login_request(
            "Passport1.4",
            "sign-in=nobody%40example.com,pwd=s3cret%21",
        ))
        .await;
    assert_refused(&unknown);
    let empty_password = gw
        .exchange(&login_request(
            "Passport1.4",
            "sign-in=alice%40example.com,pwd=",
        ))
        .await;
    assert_refused(&empty_password);
    let no_sign_in = gw
        .exchange(&login_request("Passport1.4", "pwd=s3cret%21"))
        .await;
    assert_refused(&no_sign_in);
    let too_long = gw
        .exchange(&login_request(
            "Passport1.4",
            &format!("sign-in=alice%40example.com,pwd={}", "x".repeat(5000)),
        ))
        .await;
    assert_refused(&too_long);

    for request in [
        &b"GET /login2.srf HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"GET /login2.srf HTTP/1.1\r\nAuthorization: garbage\r\nHost: x\r\n\r\n",
        b"GET /login2.srf HTTP/1.1\r\nAuthorization: Passport1.4\r\nHost: x\r\n\r\n",
        b"GET /login2.srf HTTP/1.1\r\nAuthorization: Passport1.4 ,,,===,sign-in,pwd\r\nHost: x\r\n\r\n",
        b"GET /login2.srf HTTP/1.1\r\nAuthorization: Passport1.4 sign-in=\xff\xfe%40x,pwd=\x80\x81\r\nHost: x\r\n\r\n",
        b"GET /login2.srf HTTP/1.1\r\nAuthorization: Passport1.4 sign-in=%ZZ%,pwd=%\r\nHost: x\r\n\r\n",
    ] {
        let reply = gw.exchange(request).await;
        assert_refused(&reply);
    }

    // Oversized headers are refused by hyper, and the server carries on.
    let huge = format!(
        "GET /login2.srf HTTP/1.1\r\nAuthorization: Passport1.4 {}\r\nHost: x\r\n\r\n",
        "a".repeat(200_000)
    );
    let mut stream = gw.connect().await;
    let _ = stream.write_all(huge.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );

    // Still serving, and nothing above issued a ticket that works.
    let reply = gw
        .exchange(&login_request(
            "Passport1.4",
            "sign-in=alice%40example.com,pwd=s3cret%21",
        ))
        .await;
    assert!(
        reply.head.starts_with("HTTP/1.1 200 OK\r\n"),
        "{}",
        reply.head
    );
    gw.stop().await;
}

/// An RST.srf request in the shape KMess and libpurple send.
fn rst_request(username: &str, password: &str) -> Vec<u8> {
    let body = format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/" xmlns:wsse="http://schemas.xmlsoap.org/ws/2003/06/secext" xmlns:saml="urn:oasis:names:tc:SAML:1.0:assertion" xmlns:wsp="http://schemas.xmlsoap.org/ws/2002/12/policy" xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd" xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/03/addressing" xmlns:wssc="http://schemas.xmlsoap.org/ws/2004/04/sc" xmlns:wst="http://schemas.xmlsoap.org/ws/2004/04/trust">
<Header><ps:AuthInfo xmlns:ps="http://schemas.microsoft.com/Passport/SoapServices/PPCRL" Id="PPAuthInfo"><ps:HostingApp>{{7108E71A-9926-4FCB-BCC9-9A9D3F32E423}}</ps:HostingApp><ps:BinaryVersion>4</ps:BinaryVersion><ps:UIVersion>1</ps:UIVersion><ps:Cookies></ps:Cookies><ps:RequestParams>AQAAAAIAAABsYwQAAAAxMDMz</ps:RequestParams></ps:AuthInfo>
<wsse:Security><wsse:UsernameToken Id="user"><wsse:Username>{username}</wsse:Username><wsse:Password>{password}</wsse:Password></wsse:UsernameToken></wsse:Security></Header>
<Body><ps:RequestMultipleSecurityTokens xmlns:ps="http://schemas.microsoft.com/Passport/SoapServices/PPCRL" Id="RSTS">
<wst:RequestSecurityToken Id="RST0"><wst:RequestType>http://schemas.xmlsoap.org/ws/2004/04/security/trust/Issue</wst:RequestType><wsp:AppliesTo><wsa:EndpointReference><wsa:Address>http://Passport.NET/tb</wsa:Address></wsa:EndpointReference></wsp:AppliesTo></wst:RequestSecurityToken>
<wst:RequestSecurityToken Id="RST1"><wst:RequestType>http://schemas.xmlsoap.org/ws/2004/04/security/trust/Issue</wst:RequestType><wsp:AppliesTo><wsa:EndpointReference><wsa:Address>messengerclear.live.com</wsa:Address></wsa:EndpointReference></wsp:AppliesTo><wsse:PolicyReference URI="MBI_KEY_OLD"></wsse:PolicyReference></wst:RequestSecurityToken>
<wst:RequestSecurityToken Id="RST2"><wst:RequestType>http://schemas.xmlsoap.org/ws/2004/04/security/trust/Issue</wst:RequestType><wsp:AppliesTo><wsa:EndpointReference><wsa:Address>contacts.msn.com</wsa:Address></wsa:EndpointReference></wsp:AppliesTo><wsse:PolicyReference URI="MBI"></wsse:PolicyReference></wst:RequestSecurityToken>
</ps:RequestMultipleSecurityTokens></Body></Envelope>"#
    );
    let mut request = format!(
        "POST /RST.srf HTTP/1.1\r\nAccept: text/*\r\nUser-Agent: Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)\r\n\
         Host: login.live.com\r\nContent-Length: {}\r\nConnection: Keep-Alive\r\nCache-Control: no-cache\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body.as_bytes());
    request
}

/// The text of the `BinarySecurityToken` answering `address`.
fn token_for(xml: &str, address: &str) -> Option<String> {
    let at = xml.find(&format!("<wsa:Address>{address}</wsa:Address>"))?;
    let rest = &xml[at..];
    let end_of_response = rest.find("</wst:RequestSecurityTokenResponse>")?;
    let rest = &rest[..end_of_response];
    let open = rest.find("<wsse:BinarySecurityToken")?;
    let start = open + rest[open..].find('>')? + 1;
    let end = start + rest[start..].find("</wsse:BinarySecurityToken>")?;
    Some(rest[start..end].to_string())
}

#[tokio::test]
async fn rst_success_carries_a_redeemable_ticket() {
    let gw = Gateway::start(None).await;
    // XML-escaped password `s3cret!` (`!` as a character reference).
    let reply = gw
        .exchange(&rst_request("alice@example.com", "s3cret&#33;"))
        .await;
    assert!(
        reply.head.starts_with("HTTP/1.1 200 OK\r\n"),
        "{}",
        reply.head
    );
    assert!(
        reply.has_line("Content-Type: text/xml; charset=utf-8"),
        "{}",
        reply.head
    );
    assert!(
        reply.line_starting("Content-Length: ").is_some(),
        "{}",
        reply.head
    );
    let xml = reply.body_text();
    assert!(
        xml.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?><S:Envelope"),
        "{xml}"
    );
    assert!(
        xml.contains("<wst:RequestSecurityTokenResponseCollection"),
        "{xml}"
    );
    assert!(xml.contains("<psf:PUID>"), "{xml}");
    assert!(!xml.contains("FailedAuthentication"));
    assert_eq!(
        xml.matches("<wst:RequestSecurityTokenResponse>").count(),
        3,
        "{xml}"
    );
    // The tb entry comes first and has no BinarySecurityToken (Miranda reads the first one).
    let first_token = xml.find("<wsse:BinarySecurityToken").unwrap();
    assert!(
        xml[first_token..].starts_with("<wsse:BinarySecurityToken Id=\"Compact1\">"),
        "{xml}"
    );
    assert!(token_for(&xml, "http://Passport.NET/tb").is_none());

    let escaped = token_for(&xml, "messengerclear.live.com").expect("messenger token");
    assert!(
        escaped.starts_with("t=") && escaped.contains("&amp;p="),
        "{escaped}"
    );
    let ticket = escaped.replace("&amp;", "&");
    let other = token_for(&xml, "contacts.msn.com")
        .expect("contacts token")
        .replace("&amp;", "&");
    assert_ne!(other, ticket);
    assert!(
        gw.hub.tickets.redeem(&other, "alice@example.com").is_err(),
        "only the messenger token signs in"
    );
    gw.hub.tickets.redeem(&ticket, "alice@example.com").unwrap();

    // The RST2.srf alias and a password with XML-escaped specials.
    let mut request = rst_request("comma@example.com", "pa,ss w%rd");
    let text =
        String::from_utf8(request.clone())
            .unwrap()
            .replacen("POST /RST.srf", "POST /RST2.srf", 1);
    request = text.into_bytes();
    let reply = gw.exchange(&request).await;
    let ticket = token_for(&reply.body_text(), "messengerclear.live.com")
        .unwrap()
        .replace("&amp;", "&");
    gw.hub.tickets.redeem(&ticket, "comma@example.com").unwrap();
    gw.stop().await;
}

#[tokio::test]
async fn rst_failure_is_a_failed_authentication_fault() {
    let gw = Gateway::start(None).await;
    for request in [
        rst_request("alice@example.com", "wrong"),
        rst_request("nobody@example.com", "s3cret!"),
        rst_request("", "s3cret!"),
        b"POST /RST.srf HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nnot xml \xff".to_vec(),
        b"POST /RST.srf HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".to_vec(),
    ] {
        let reply = gw.exchange(&request).await;
        assert!(
            reply.head.starts_with("HTTP/1.1 200 OK\r\n"),
            "{}",
            reply.head
        );
        assert!(
            reply.has_line("Content-Type: text/xml; charset=utf-8"),
            "{}",
            reply.head
        );
        let xml = reply.body_text();
        assert!(
            xml.contains("<S:Fault><faultcode>wsse:FailedAuthentication</faultcode>"),
            "{xml}"
        );
        assert!(
            xml.contains("<psf:reqstatus>0x80048821</psf:reqstatus>"),
            "{xml}"
        );
        assert!(!xml.contains("BinarySecurityToken"));
    }

    // Bodies over 64 KiB: 413, whether announced or streamed.
    let big = vec![b'a'; 70 * 1024];
    let mut request = format!(
        "POST /RST.srf HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        big.len()
    )
    .into_bytes();
    request.extend_from_slice(&big);
    let reply = gw.exchange(&request).await;
    assert!(
        reply.head.starts_with("HTTP/1.1 413 Payload Too Large\r\n"),
        "{}",
        reply.head
    );
    let mut request =
        b"POST /RST.srf HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..70 {
        request.extend_from_slice(b"400\r\n");
        request.extend_from_slice(&[b'a'; 1024]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let reply = gw.exchange(&request).await;
    assert!(
        reply.head.starts_with("HTTP/1.1 413 Payload Too Large\r\n"),
        "{}",
        reply.head
    );
    gw.stop().await;
}

fn install_self_signed(
    dir: &std::path::Path,
) -> (TlsConfig, rustls::pki_types::CertificateDer<'static>) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let certificate = dir.join("cert.pem");
    let private_key = dir.join("key.pem");
    std::fs::write(&certificate, certified.cert.pem()).unwrap();
    std::fs::write(&private_key, certified.signing_key.serialize_pem()).unwrap();
    (
        TlsConfig {
            certificate: Some(certificate),
            private_key: Some(private_key),
            legacy_clients: true,
        },
        certified.cert.der().clone(),
    )
}

async fn tls_connect(
    addr: SocketAddr,
    trusted: rustls::pki_types::CertificateDer<'static>,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await.unwrap()
}

async fn roundtrip(stream: &mut (impl AsyncRead + AsyncWrite + Unpin), request: &[u8]) -> Reply {
    stream.write_all(request).await.unwrap();
    stream.flush().await.unwrap();
    read_reply(stream).await
}

#[tokio::test]
async fn nexus_and_login_over_tls() {
    let certs = tempfile::tempdir().unwrap();
    let (tls, trusted) = install_self_signed(certs.path());
    let gw = Gateway::start(Some(tls)).await;

    let mut stream = tls_connect(gw.addr, trusted.clone()).await;
    let reply = roundtrip(
        &mut stream,
        b"GET /rdr/pprdr.asp HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .await;
    assert!(
        reply.head.starts_with("HTTP/1.1 200 OK\r\n"),
        "{}",
        reply.head
    );
    assert!(
        reply
            .line_starting(
                "PassportURLs: DARealm=Passport.Net,DALogin=login.example.com/login2.srf,"
            )
            .is_some(),
        "{}",
        reply.head
    );
    // Same connection, the login.
    let reply = roundtrip(
        &mut stream,
        &login_request("Passport1.4", "sign-in=alice%40example.com,pwd=s3cret%21"),
    )
    .await;
    assert!(
        reply.head.starts_with("HTTP/1.1 200 OK\r\n"),
        "{}",
        reply.head
    );
    gw.hub
        .tickets
        .redeem(&ticket_of(&reply), "alice@example.com")
        .unwrap();

    // The version-less request line works inside TLS too.
    let mut stream = tls_connect(gw.addr, trusted).await;
    stream
        .write_all(b"GET /rdr/pprdr.asp\r\n\r\n")
        .await
        .unwrap();
    let mut all = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut all))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&all);
    assert!(
        text.starts_with("HTTP/1.0 200 OK\r\n") && text.contains("\r\nPassportURLs: "),
        "{text}"
    );

    // A plain-text client on the TLS port gets nothing useful, and the server carries on.
    let mut plain = gw.connect().await;
    let _ = plain
        .write_all(b"GET /rdr/pprdr.asp HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut junk = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), plain.read_to_end(&mut junk)).await;
    assert!(!String::from_utf8_lossy(&junk).contains("PassportURLs"));
    gw.stop().await;
}

#[tokio::test]
async fn bad_tls_files_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let missing = TlsConfig {
        certificate: Some(dir.path().join("nope.pem")),
        private_key: Some(dir.path().join("nope.key")),
        legacy_clients: true,
    };
    let err = passport::tls_server_config(&missing).unwrap_err();
    assert!(
        format!("{err:#}").contains("http.tls.certificate"),
        "{err:#}"
    );
    std::fs::write(dir.path().join("empty.pem"), "").unwrap();
    let empty = TlsConfig {
        certificate: Some(dir.path().join("empty.pem")),
        private_key: Some(dir.path().join("empty.pem")),
        legacy_clients: true,
    };
    assert!(passport::tls_server_config(&empty).is_err());
}

#[tokio::test]
async fn logins_and_refusals_are_counted() {
    use std::sync::atomic::Ordering;
    let metrics = Arc::new(Metrics::default());
    let gw = Gateway::start_with(None, Some(metrics.clone())).await;
    gw.exchange(&login_request(
        "Passport1.4",
        "sign-in=alice%40example.com,pwd=s3cret%21",
    ))
    .await;
    gw.exchange(&login_request(
        "Passport1.4",
        "sign-in=alice%40example.com,pwd=nope",
    ))
    .await;
    gw.exchange(b"GET /login2.srf HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    gw.exchange(&rst_request("alice@example.com", "s3cret!"))
        .await;
    gw.exchange(&rst_request("alice@example.com", "nope")).await;
    gw.exchange(b"GET /rdr/pprdr.asp HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    assert_eq!(metrics.passport_logins.load(Ordering::Relaxed), 2);
    assert_eq!(metrics.passport_refusals.load(Ordering::Relaxed), 3);
    gw.stop().await;
}

/// Everything msngate logs at debug level and above while this test binary
/// runs (one global subscriber; each test finds its own lines by peer).
fn captured_log() -> Arc<std::sync::Mutex<Vec<u8>>> {
    static LOG: std::sync::OnceLock<Arc<std::sync::Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let log: Arc<std::sync::Mutex<Vec<u8>>> = Arc::default();
        let sink = log.clone();
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("msngate=debug"))
            .with_ansi(false)
            .with_writer(move || LogWriter(sink.clone()))
            .try_init()
            .unwrap();
        log
    })
    .clone()
}

struct LogWriter(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The first log line about `peer` containing every one of `parts`,
/// waiting for it up to [`WAIT`].
async fn log_line(peer: SocketAddr, parts: &[&str]) -> String {
    let log = captured_log();
    let peer = format!("peer={peer}");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
        if let Some(line) = text
            .lines()
            .find(|l| l.contains(&peer) && parts.iter().all(|p| l.contains(p)))
        {
            return line.to_string();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no log line about {peer} with {parts:?} in:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `request` on a fresh connection; returns our end's address (the
/// server's `peer`) and the reply.
async fn exchange_from(gw: &Gateway, request: &[u8]) -> (SocketAddr, Reply) {
    let mut stream = gw.connect().await;
    let me = stream.local_addr().unwrap();
    stream.write_all(request).await.unwrap();
    (me, read_reply(&mut stream).await)
}

#[tokio::test]
async fn refusals_say_why_in_the_log() {
    captured_log();
    let gw = Gateway::start(None).await;
    let cases: [(Vec<u8>, &[&str]); 5] = [
        (
            login_request("Passport1.4", "sign-in=alice%40example.com,pwd=nope"),
            &[
                "passport sign-in refused",
                "login2.srf",
                "reason=wrong password",
            ],
        ),
        (
            b"GET /login2.srf HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            &[
                "passport sign-in refused",
                "reason=malformed request: no Authorization header",
            ],
        ),
        (
            rst_request("nobody@example.com", "s3cret!"),
            &[
                "passport sign-in refused",
                "RST.srf",
                "reason=unknown account",
            ],
        ),
        (
            b"POST /RST2.srf HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
            &[
                "passport sign-in refused",
                "RST2.srf",
                "reason=malformed request: no Username or Password",
            ],
        ),
        (
            b"POST /RST.srf HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n".to_vec(),
            &["passport sign-in refused", "reason=request body too large"],
        ),
    ];
    for (request, parts) in cases {
        let (me, _) = exchange_from(&gw, &request).await;
        log_line(me, parts).await;
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_failed_tls_handshake_says_why_in_the_log() {
    captured_log();
    let certs = tempfile::tempdir().unwrap();
    let (tls, _) = install_self_signed(certs.path());
    let gw = Gateway::start(Some(tls)).await;
    let mut plain = gw.connect().await;
    let me = plain.local_addr().unwrap();
    let _ = plain
        .write_all(b"GET /rdr/pprdr.asp HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let line = log_line(
        me,
        &["DEBUG", "closing HTTP connection before its first request"],
    )
    .await;
    assert!(line.contains("error="), "{line}");
    gw.stop().await;
}
