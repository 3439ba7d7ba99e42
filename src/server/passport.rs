//! Passport HTTP: the nexus, the Passport 1.4 ("Tweener") login and the
//! SOAP `RST.srf` token service (login.md §7.2 and §9, client-quirks.md
//! "Passport HTTP").
//!
//! # Routes
//!
//! * `/rdr/pprdr.asp`, any method — the nexus:
//!
//!   ```text
//!   HTTP/1.1 200 OK
//!   PassportURLs: DARealm=Passport.Net,DALogin=login.example.com/login2.srf,DAReg=…,Properties=…,Privacy=…,GeneralRedir=…,Help=…,ConfigVersion=15
//!   Content-Length: 0
//!   ```
//!
//!   `DALogin` is `http.public_url` without its scheme, plus `/login2.srf`.
//!
//! * `/login2.srf`, any method — the Passport 1.4 login. The client sends
//!   `Authorization: Passport1.4 OrgVerb=GET,OrgURL=…,sign-in=alice%40example.com,pwd=s3cret%21,<challenge>`;
//!   the answer is either
//!
//!   ```text
//!   HTTP/1.1 200 OK
//!   Authentication-Info: Passport1.4 da-status=success,tname=MSPAuth,tname=MSPProf,tname=MSPSec,from-PP='t=…&p=…',ru=http://messenger.msn.com
//!   Content-Length: 0
//!   ```
//!
//!   or
//!
//!   ```text
//!   HTTP/1.1 401 Unauthorized
//!   WWW-Authenticate: Passport1.4 da-status=failed,srealm=Passport.NET,ts=-3,prompt,cburl=…,cbtxt=Wrong%20e-mail%20address%20or%20password
//!   Content-Length: 0
//!   ```
//!
//! * `POST /RST.srf` (and `/RST2.srf`) — the WS-Trust token service of MSN
//!   7.5-era clients and libraries. See `rst` in this file for the exact exchange.
//!
//! # Header case
//!
//! Clients match `PassportURLs`, `Authentication-Info`, `WWW-Authenticate`
//! and even `Content-Length` case-sensitively (the official client,
//! libpurple's `strstr`/`strcmp`), but hyper writes HTTP/1 header names in
//! lower case. hyper does write a response's names in their original
//! spelling when the response carries its (private) `HeaderCaseMap`
//! extension — the mechanism behind `preserve_header_case`, meant to forward
//! the spelling of a parsed message. We obtain such a map once, by letting
//! hyper (through axum-server, with `preserve_header_case(true)`) parse an
//! in-memory request that carries every header name in the spelling we
//! want, and attach a copy of it to each response of this router
//! ([`header_case`]). Names not in the map are written in title case by
//! [`serve`] (`title_case_headers`), lower case by other servers.
//!
//! # Old request lines
//!
//! Gaim/libpurple's MSNP8–9 code asks the nexus with `GET /rdr/pprdr.asp`
//! and no HTTP version (an HTTP/0.9 request line), which hyper refuses.
//! [`serve`] wraps every connection in [`LegacyRequestLine`], which adds
//! ` HTTP/1.0` to such a first line before hyper sees it.

use crate::config::{Config, TlsConfig};
use crate::core::accounts::{MAX_PASSWORD_LEN, SignInError};
use crate::core::hub::Hub;
use crate::metrics::Metrics;
use crate::store::AccountRow;
use anyhow::Context as _;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Extensions, HeaderName, HeaderValue, Response, StatusCode, header};
use axum::routing::{any, post};
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tracing::{debug, info, warn};

/// Largest `RST.srf` request body accepted (413 beyond).
pub const MAX_RST_BODY: usize = 64 * 1024;

/// Most `RequestSecurityToken`s answered in one `RST.srf` request; real
/// clients ask for at most eight.
const MAX_TOKENS_PER_REQUEST: usize = 16;

/// The `cbtxt` of a refusal, URL-encoded as clients expect.
const FAILURE_TEXT: &str = "Wrong%20e-mail%20address%20or%20password";

const SOAP_ENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const NS_PSF: &str = "http://schemas.microsoft.com/Passport/SoapServices/SOAPFault";
const NS_WST: &str = "http://schemas.xmlsoap.org/ws/2004/04/trust";
const NS_WSSE: &str = "http://schemas.xmlsoap.org/ws/2003/06/secext";
const NS_WSU: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
const NS_WSP: &str = "http://schemas.xmlsoap.org/ws/2002/12/policy";
const NS_WSA: &str = "http://schemas.xmlsoap.org/ws/2004/03/addressing";
const NS_SAML: &str = "urn:oasis:names:tc:SAML:1.0:assertion";

/// The AppliesTo address whose token is only a session key for token renewal.
const PASSPORT_TB: &str = "http://Passport.NET/tb";
/// AppliesTo addresses whose token is the ticket `USR … TWN S` presents.
const MESSENGER_ADDRESSES: [&str; 2] = ["messengerclear.live.com", "messenger.msn.com"];

struct Passport {
    hub: Arc<Hub>,
    ticket_lifetime: Duration,
    nexus: HeaderValue,
    failure: HeaderValue,
    metrics: Option<Arc<Metrics>>,
}

impl Passport {
    /// Counts a login outcome (`passport_logins` / `passport_refusals`).
    fn count(&self, accepted: bool) {
        if let Some(metrics) = &self.metrics {
            Metrics::inc(if accepted {
                &metrics.passport_logins
            } else {
                &metrics.passport_refusals
            });
        }
    }
}

/// The Passport routes (nexus, login, RST), ready to be merged with others.
pub fn router(hub: Arc<Hub>, config: Arc<Config>) -> Router {
    build(hub, config, None)
}

/// [`router`], also counting logins and refusals in `metrics`
/// (`passport_logins`, `passport_refusals`).
pub fn router_with_metrics(hub: Arc<Hub>, config: Arc<Config>, metrics: Arc<Metrics>) -> Router {
    build(hub, config, Some(metrics))
}

fn build(hub: Arc<Hub>, config: Arc<Config>, metrics: Option<Arc<Metrics>>) -> Router {
    let base = sanitize_url(&config.http.public_url);
    let login_host = base
        .split_once("://")
        .map_or(base.as_str(), |(_, rest)| rest);
    let nexus = format!(
        "DARealm=Passport.Net,DALogin={login_host}/login2.srf,DAReg={base}/reg,Properties={base}/properties,\
         Privacy={base}/privacy,GeneralRedir={base}/redir,Help={base}/help,ConfigVersion=15"
    );
    let failure = format!(
        "Passport1.4 da-status=failed,srealm=Passport.NET,ts=-3,prompt,cburl={base}/logo.png,cbtxt={FAILURE_TEXT}"
    );
    let state = Arc::new(Passport {
        hub,
        ticket_lifetime: Duration::from_secs(config.auth.ticket_lifetime_secs),
        nexus: header_value(
            nexus,
            "DARealm=Passport.Net,DALogin=localhost/login2.srf,ConfigVersion=15",
        ),
        failure: header_value(
            failure,
            "Passport1.4 da-status=failed,srealm=Passport.NET,ts=-3,prompt",
        ),
        metrics,
    });
    Router::new()
        .route("/rdr/pprdr.asp", any(nexus_handler))
        .route("/login2.srf", any(login_handler))
        .route("/RST.srf", post(rst_handler))
        .route("/RST2.srf", post(rst_handler))
        .with_state(state)
}

/// `public_url` reduced to visible ASCII without commas (which would break
/// the comma-separated headers), without trailing `/`, query or fragment.
fn sanitize_url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or("");
    let cleaned: String = url
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != ',' && *c != '\'')
        .collect();
    cleaned.trim_end_matches('/').to_string()
}

fn header_value(text: String, fallback: &'static str) -> HeaderValue {
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(fallback))
}

fn peer(request: &Request) -> String {
    match request.extensions().get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(addr)) => addr.to_string(),
        None => "-".into(),
    }
}

/// The client's address, for the sign-in limits (unspecified when unknown:
/// all such requests then share one source's limits).
fn source_ip(request: &Request) -> IpAddr {
    match request.extensions().get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(addr)) => addr.ip(),
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    }
}

/// An untrusted string made safe and short for a log line.
fn loggable(text: &str) -> String {
    let short: String = text.chars().take(80).collect();
    format!("{short:?}")
}

/// An empty response (`Content-Length: 0`) with the given status.
fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    response
}

fn xml_response(xml: String) -> Response<Body> {
    let mut response = Response::new(Body::from(xml));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    response
}

// ---------------------------------------------------------------------------
// Header case

/// Header names in the spelling the clients look for.
const HEADER_SPELLINGS: [&str; 12] = [
    "PassportURLs",
    "Authentication-Info",
    "WWW-Authenticate",
    "Content-Length",
    "Content-Type",
    "Connection",
    "Date",
    "Location",
    "Cache-Control",
    "Server",
    "Set-Cookie",
    "Keep-Alive",
];

static HEADER_CASE: tokio::sync::OnceCell<Option<Extensions>> = tokio::sync::OnceCell::const_new();

/// Response extensions that make hyper write the names of
/// [`HEADER_SPELLINGS`] in that spelling (see the module docs). `None` if
/// they could not be obtained (logged once); responses then go out in
/// lower (or title) case.
pub async fn header_case() -> Option<&'static Extensions> {
    HEADER_CASE
        .get_or_init(|| async {
            match capture_header_case().await {
                Ok(extensions) => Some(extensions),
                Err(e) => {
                    warn!(error = %e, "cannot prepare Passport header spellings; header names will not have the case clients expect");
                    None
                }
            }
        })
        .await
        .as_ref()
}

async fn with_header_case(mut response: Response<Body>) -> Response<Body> {
    if let Some(extensions) = header_case().await {
        response.extensions_mut().extend(extensions.clone());
    }
    response
}

/// An address for an axum-server that serves one in-memory connection.
#[derive(Clone, Debug)]
struct InMemory;

struct InMemoryListener(parking_lot::Mutex<Option<tokio::io::DuplexStream>>);

impl axum_server::Address for InMemory {
    type Stream = tokio::io::DuplexStream;
    type Listener = InMemoryListener;
}

impl axum_server::AddrListener<tokio::io::DuplexStream, InMemory> for InMemoryListener {
    fn bind_to(_: InMemory) -> impl Future<Output = io::Result<Self>> + Send {
        std::future::ready(Err(io::Error::other(
            "an in-memory listener cannot be bound",
        )))
    }

    fn accept_stream(
        &self,
    ) -> impl Future<Output = io::Result<(tokio::io::DuplexStream, InMemory)>> + Send {
        let stream = self.0.lock().take();
        async move {
            match stream {
                Some(stream) => Ok((stream, InMemory)),
                None => std::future::pending().await,
            }
        }
    }

    fn get_local_addr(&self) -> io::Result<InMemory> {
        Ok(InMemory)
    }
}

/// Lets hyper parse a request whose header names are spelled as wanted and
/// keeps the request's extensions, which then hold hyper's `HeaderCaseMap`.
async fn capture_header_case() -> anyhow::Result<Extensions> {
    let (mut client, server_side) = tokio::io::duplex(16 * 1024);
    let captured: Arc<parking_lot::Mutex<Option<Extensions>>> = Arc::default();
    let sink = captured.clone();
    let app = Router::new().fallback(move |request: Request| {
        let sink = sink.clone();
        async move {
            *sink.lock() = Some(request.extensions().clone());
            StatusCode::NO_CONTENT
        }
    });
    let mut server = axum_server::Server::<InMemory>::from_listener(InMemoryListener(
        parking_lot::Mutex::new(Some(server_side)),
    ))
    .http1_only();
    server.http_builder().http1().preserve_header_case(true);

    let mut request = String::from("GET / HTTP/1.1\r\nHost: localhost\r\n");
    for name in HEADER_SPELLINGS {
        let value = if name == "Content-Length" { "0" } else { "x" };
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let exchange = async {
        client.write_all(request.as_bytes()).await?;
        let mut reply = Vec::new();
        let mut chunk = [0u8; 1024];
        while !reply.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = client.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, io::Error>(())
    };
    tokio::select! {
        result = server.serve(app.into_make_service()) => {
            result?;
            anyhow::bail!("the in-memory server stopped early");
        }
        result = tokio::time::timeout(Duration::from_secs(5), exchange) => {
            result.context("the in-memory exchange timed out")??;
        }
    }
    drop(client);
    let mut extensions = captured
        .lock()
        .take()
        .context("the in-memory request never reached its handler")?;
    extensions.remove::<axum_server::ConnectionShutdown>();
    let described = format!("{extensions:?}");
    if !described.contains("HeaderCaseMap") {
        anyhow::bail!("hyper kept no header spellings (extensions: {described})");
    }
    debug!(extensions = %described, "Passport header spellings ready");
    Ok(extensions)
}

// ---------------------------------------------------------------------------
// Nexus

async fn nexus_handler(State(passport): State<Arc<Passport>>, request: Request) -> Response<Body> {
    debug!(peer = %peer(&request), "nexus request");
    let mut response = empty(StatusCode::OK);
    response.headers_mut().insert(
        HeaderName::from_static("passporturls"),
        passport.nexus.clone(),
    );
    with_header_case(response).await
}

// ---------------------------------------------------------------------------
// Passport 1.4 login

/// `sign-in` and `pwd` of a Passport 1.4 `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub handle: String,
    pub password: String,
}

/// Parses `Authorization: Passport1.4 …` (login.md §7.2): strips the scheme
/// word (repeatedly: a buggy client doubles it), splits on `,`, splits each
/// item at its first `=` and URL-decodes the value. Other fields (`OrgURL`,
/// `ru`, the challenge) are ignored, so their absence or oddities do not
/// matter. `None` without a non-empty `sign-in` and a `pwd`.
pub fn parse_authorization(raw: &[u8]) -> Option<Credentials> {
    let text = String::from_utf8_lossy(raw);
    let mut rest = text.trim_start();
    while let Some(after) = strip_prefix_ignore_case(rest, "Passport1.4") {
        rest = after.trim_start();
    }
    let mut handle = None;
    let mut password = None;
    for item in rest.split(',') {
        let Some((key, value)) = item.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key.eq_ignore_ascii_case("sign-in") && handle.is_none() {
            handle = Some(msnp::urlenc::decode(value.trim()));
        } else if key.eq_ignore_ascii_case("pwd") && password.is_none() {
            password = Some(msnp::urlenc::decode(value));
        }
    }
    let handle = handle.filter(|h| !h.is_empty())?;
    Some(Credentials {
        handle,
        password: password?,
    })
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// Why a sign-in was refused, for the log line.
#[derive(Debug)]
enum Refusal {
    Malformed(&'static str),
    PasswordTooLong,
    UnknownAccount,
    WrongPassword,
    Unavailable(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Malformed(what) => write!(f, "malformed request: {what}"),
            Refusal::PasswordTooLong => write!(f, "password longer than any account can have"),
            Refusal::UnknownAccount => write!(f, "unknown account"),
            Refusal::WrongPassword => write!(f, "wrong password"),
            Refusal::Unavailable(e) => write!(f, "account store unavailable: {e}"),
        }
    }
}

impl Passport {
    async fn check(
        &self,
        handle: &str,
        password: &str,
        source: IpAddr,
    ) -> Result<AccountRow, Refusal> {
        if password.is_empty() {
            return Err(Refusal::WrongPassword);
        }
        if password.len() > MAX_PASSWORD_LEN {
            return Err(Refusal::PasswordTooLong);
        }
        match self
            .hub
            .accounts
            .verify_password(handle, password, source)
            .await
        {
            Ok(account) => Ok(account),
            Err(SignInError::UnknownAccount) => Err(Refusal::UnknownAccount),
            Err(SignInError::WrongPassword | SignInError::LegacyDisabled) => {
                Err(Refusal::WrongPassword)
            }
            Err(SignInError::Store(e)) => Err(Refusal::Unavailable(e.to_string())),
        }
    }
}

async fn login_handler(State(passport): State<Arc<Passport>>, request: Request) -> Response<Body> {
    let peer = peer(&request);
    let source = source_ip(&request);
    let credentials = match request.headers().get(header::AUTHORIZATION) {
        Some(value) => parse_authorization(value.as_bytes())
            .ok_or(Refusal::Malformed("no sign-in or pwd field")),
        None => Err(Refusal::Malformed("no Authorization header")),
    };
    let (handle, outcome) = match credentials {
        Ok(c) => {
            let outcome = passport.check(&c.handle, &c.password, source).await;
            (c.handle, outcome)
        }
        Err(refusal) => (String::new(), Err(refusal)),
    };
    let response = match outcome {
        Ok(account) => {
            let ticket = passport.hub.tickets.issue(&account.handle);
            info!(handle = %account.handle, %peer, route = "login2.srf", "passport sign-in accepted");
            passport.count(true);
            let value = format!(
                "Passport1.4 da-status=success,tname=MSPAuth,tname=MSPProf,tname=MSPSec,from-PP='{ticket}',ru=http://messenger.msn.com"
            );
            match HeaderValue::from_str(&value) {
                Ok(value) => {
                    let mut response = empty(StatusCode::OK);
                    response
                        .headers_mut()
                        .insert(HeaderName::from_static("authentication-info"), value);
                    response
                }
                Err(_) => empty(StatusCode::INTERNAL_SERVER_ERROR),
            }
        }
        Err(Refusal::Unavailable(e)) => {
            warn!(handle = %loggable(&handle), %peer, route = "login2.srf", error = %e, "passport sign-in failed: account store unavailable");
            empty(StatusCode::INTERNAL_SERVER_ERROR)
        }
        Err(refusal) => {
            info!(handle = %loggable(&handle), %peer, route = "login2.srf", reason = %refusal, "passport sign-in refused");
            passport.count(false);
            let mut response = empty(StatusCode::UNAUTHORIZED);
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, passport.failure.clone());
            response
        }
    };
    with_header_case(response).await
}

// ---------------------------------------------------------------------------
// RST.srf

/// One `wst:RequestSecurityToken` of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The number of its `Id` (`RST3` → 3), or its position.
    pub number: usize,
    /// Its `wsp:AppliesTo/wsa:EndpointReference/wsa:Address`.
    pub address: String,
}

/// What an `RST.srf` request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RstRequest {
    pub username: String,
    pub password: String,
    pub tokens: Vec<TokenRequest>,
}

/// Reads an `RST.srf` envelope: `Username`, `Password` and each
/// `RequestSecurityToken`'s `Id` and `Address`, whatever their namespace
/// prefixes, XML entities decoded. `None` without a `Username` and a
/// `Password`.
pub fn parse_rst(xml: &str) -> Option<RstRequest> {
    let username = find_elements(xml, "Username")
        .next()?
        .text()
        .trim()
        .to_string();
    let password = find_elements(xml, "Password").next()?.text();
    if username.is_empty() {
        return None;
    }
    let tokens = find_elements(xml, "RequestSecurityToken")
        .take(MAX_TOKENS_PER_REQUEST)
        .enumerate()
        .map(|(position, element)| {
            let number = element
                .attribute("Id")
                .and_then(|id| {
                    let digits: String = id.chars().skip_while(|c| !c.is_ascii_digit()).collect();
                    digits.parse::<usize>().ok()
                })
                .unwrap_or(position);
            let address = find_elements(element.inner, "Address")
                .next()
                .map(|a| a.text().trim().to_string())
                .unwrap_or_default();
            TokenRequest { number, address }
        })
        .collect();
    Some(RstRequest {
        username,
        password,
        tokens,
    })
}

/// The `RST.srf` service.
///
/// Request (libpurple, KMess, Miranda; prefixes and the list of tokens vary):
///
/// ```text
/// POST /RST.srf HTTP/1.1
/// Content-Type: text/xml; charset=utf-8
///
/// <Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/" xmlns:wsse=… xmlns:wst=… xmlns:wsp=… xmlns:wsa=…>
///   <Header>
///     <ps:AuthInfo …>…</ps:AuthInfo>
///     <wsse:Security><wsse:UsernameToken Id="user">
///       <wsse:Username>alice@example.com</wsse:Username>
///       <wsse:Password>s3cret!</wsse:Password>
///     </wsse:UsernameToken></wsse:Security>
///   </Header>
///   <Body><ps:RequestMultipleSecurityTokens …>
///     <wst:RequestSecurityToken Id="RST0"> … <wsa:Address>http://Passport.NET/tb</wsa:Address> …
///     <wst:RequestSecurityToken Id="RST1"> … <wsa:Address>messengerclear.live.com</wsa:Address>
///        <wsse:PolicyReference URI="…"/> …
///   </ps:RequestMultipleSecurityTokens></Body>
/// </Envelope>
/// ```
///
/// Success — `200`, `Content-Type: text/xml; charset=utf-8`, one
/// `RequestSecurityTokenResponse` per requested token, in request order:
///
/// ```text
/// <?xml version="1.0" encoding="utf-8"?>
/// <S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/">
///   <S:Header><psf:pp xmlns:psf="…/SOAPFault">
///     <psf:serverVersion>1</psf:serverVersion><psf:PUID>…</psf:PUID> … <psf:reqstatus>0x0</psf:reqstatus> …
///   </psf:pp></S:Header>
///   <S:Body>
///     <wst:RequestSecurityTokenResponseCollection xmlns:wst=… xmlns:wsse=… xmlns:wsu=… xmlns:wsp=… …>
///       <wst:RequestSecurityTokenResponse>   (http://Passport.NET/tb: an opaque
///          EncryptedData/CipherData/CipherValue and a RequestedProofToken/BinarySecret)
///       <wst:RequestSecurityTokenResponse>
///         <wst:TokenType>urn:passport:compact</wst:TokenType>
///         <wsp:AppliesTo><wsa:EndpointReference><wsa:Address>messengerclear.live.com</wsa:Address>…
///         <wst:LifeTime><wsu:Created>…</wsu:Created><wsu:Expires>…</wsu:Expires></wst:LifeTime>
///         <wst:RequestedSecurityToken>
///           <wsse:BinarySecurityToken Id="Compact1">t=…&amp;p=…</wsse:BinarySecurityToken>
///         </wst:RequestedSecurityToken>
///         <wst:RequestedTokenReference>…<wsse:Reference URI="#Compact1"/></wst:RequestedTokenReference>
///         <wst:RequestedProofToken><wst:BinarySecret>…</wst:BinarySecret></wst:RequestedProofToken>
///       </wst:RequestSecurityTokenResponse>
///       …
///     </wst:RequestSecurityTokenResponseCollection>
///   </S:Body>
/// </S:Envelope>
/// ```
///
/// The token of `messengerclear.live.com` and `messenger.msn.com` (`Id`
/// `Compact<n>`/`PPToken<n>` after `RST<n>`: libpurple indexes by it) is a
/// Passport ticket from [`crate::core::tickets`], which `USR … TWN S`
/// redeems; other addresses get an opaque token that signs nothing in. What
/// the clients read: libpurple walks the collection by `Address` and splits
/// `BinarySecurityToken` at `&`; KMess wants the `wst:` prefix on the
/// collection; Miranda takes the text of the first `<wsse:BinarySecurityToken`
/// (hence the `tb` entry carries none) and splits it at `&p=`.
///
/// Failure (unknown account, wrong password, no credentials) — `200` (Miranda
/// treats any other status as "server unreachable") with the fault the live
/// service sent, `S:Fault` directly in `S:Envelope` (where libpurple looks):
///
/// ```text
/// <?xml version="1.0" encoding="utf-8"?>
/// <S:Envelope xmlns:S=… xmlns:wsse=… xmlns:psf=…>
///   <S:Header><psf:pp …>…<psf:reqstatus>0x80048821</psf:reqstatus>…</psf:pp></S:Header>
///   <S:Fault>
///     <faultcode>wsse:FailedAuthentication</faultcode>
///     <faultstring>Authentication Failure</faultstring>
///   </S:Fault>
/// </S:Envelope>
/// ```
///
/// A body over [`MAX_RST_BODY`] gets `413`, a store outage `500`.
async fn rst(
    passport: &Passport,
    (peer, source): (&str, IpAddr),
    route: &str,
    body: &[u8],
) -> Response<Body> {
    let now = SystemTime::now();
    let text = String::from_utf8_lossy(body);
    let Some(request) = parse_rst(&text) else {
        info!(%peer, route, reason = "malformed request: no Username or Password", "passport sign-in refused");
        passport.count(false);
        return xml_response(rst_fault(now));
    };
    match passport
        .check(&request.username, &request.password, source)
        .await
    {
        Ok(account) => {
            let ticket = passport.hub.tickets.issue(&account.handle);
            info!(handle = %account.handle, %peer, route, "passport sign-in accepted");
            passport.count(true);
            xml_response(rst_success(
                &account,
                &ticket,
                &request.tokens,
                now,
                passport.ticket_lifetime,
            ))
        }
        Err(Refusal::Unavailable(e)) => {
            warn!(handle = %loggable(&request.username), %peer, route, error = %e, "passport sign-in failed: account store unavailable");
            empty(StatusCode::INTERNAL_SERVER_ERROR)
        }
        Err(refusal) => {
            info!(handle = %loggable(&request.username), %peer, route, reason = %refusal, "passport sign-in refused");
            passport.count(false);
            xml_response(rst_fault(now))
        }
    }
}

async fn rst_handler(State(passport): State<Arc<Passport>>, request: Request) -> Response<Body> {
    let peer = peer(&request);
    let source = source_ip(&request);
    let route = if request.uri().path().eq_ignore_ascii_case("/RST2.srf") {
        "RST2.srf"
    } else {
        "RST.srf"
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let response = if declared.is_some_and(|n| n > MAX_RST_BODY as u64) {
        info!(%peer, route, reason = "request body too large", "passport sign-in refused");
        passport.count(false);
        empty(StatusCode::PAYLOAD_TOO_LARGE)
    } else {
        match axum::body::to_bytes(request.into_body(), MAX_RST_BODY).await {
            Ok(body) => rst(&passport, (&peer, source), route, &body).await,
            Err(e) => {
                info!(%peer, route, reason = %format!("request body unreadable or too large: {e}"), "passport sign-in refused");
                passport.count(false);
                empty(StatusCode::PAYLOAD_TOO_LARGE)
            }
        }
    };
    with_header_case(response).await
}

fn psf_header(now: SystemTime, body: &str) -> String {
    format!(
        "<S:Header><psf:pp xmlns:psf=\"{NS_PSF}\"><psf:serverVersion>1</psf:serverVersion>{body}\
         <psf:serverInfo Path=\"Live1\" RollingUpgradeState=\"ExclusiveNew\" LocVersion=\"0\" ServerTime=\"{}\">msngate</psf:serverInfo>\
         <psf:cookies/><psf:response/></psf:pp></S:Header>",
        iso8601(now)
    )
}

fn rst_fault(now: SystemTime) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
         <S:Envelope xmlns:S=\"{SOAP_ENV}\" xmlns:wsse=\"{NS_WSSE}\" xmlns:psf=\"{NS_PSF}\">{}\
         <S:Fault><faultcode>wsse:FailedAuthentication</faultcode><faultstring>Authentication Failure</faultstring></S:Fault>\
         </S:Envelope>",
        psf_header(
            now,
            "<psf:authstate>0x80048800</psf:authstate><psf:reqstatus>0x80048821</psf:reqstatus>"
        )
    )
}

fn rst_success(
    account: &AccountRow,
    ticket: &str,
    requested: &[TokenRequest],
    now: SystemTime,
    ticket_lifetime: Duration,
) -> String {
    let fallback;
    let requested = if requested.is_empty() {
        fallback = [
            TokenRequest {
                number: 0,
                address: PASSPORT_TB.into(),
            },
            TokenRequest {
                number: 1,
                address: MESSENGER_ADDRESSES[0].into(),
            },
            TokenRequest {
                number: 2,
                address: MESSENGER_ADDRESSES[1].into(),
            },
        ];
        &fallback[..]
    } else {
        requested
    };
    let id = u64::try_from(account.id).unwrap_or(0);
    let puid = format!(
        "{:016X}",
        0x0006_0000_0000_0000_u64 | (id & 0xFFFF_FFFF_FFFF)
    );
    let cid = format!("{id:016x}");
    let created = iso8601(now);
    let mut out = String::with_capacity(2048 + requested.len() * 1024);
    out.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>");
    out.push_str(&format!("<S:Envelope xmlns:S=\"{SOAP_ENV}\">"));
    out.push_str(&psf_header(
        now,
        &format!(
            "<psf:PUID>{puid}</psf:PUID><psf:configVersion>3.100.2199.0</psf:configVersion>\
             <psf:uiVersion>3.0.869.0</psf:uiVersion><psf:authstate>0x48803</psf:authstate><psf:reqstatus>0x0</psf:reqstatus>\
             <psf:credProperties><psf:credProperty Name=\"MainBrandID\"></psf:credProperty>\
             <psf:credProperty Name=\"BrandIDList\"></psf:credProperty>\
             <psf:credProperty Name=\"IsWinLiveUser\">true</psf:credProperty>\
             <psf:credProperty Name=\"CID\">{cid}</psf:credProperty>\
             <psf:credProperty Name=\"AuthMembername\">{}</psf:credProperty></psf:credProperties>\
             <psf:extProperties></psf:extProperties>",
            xml_escape(&account.handle)
        ),
    ));
    out.push_str(&format!(
        "<S:Body><wst:RequestSecurityTokenResponseCollection xmlns:S=\"{SOAP_ENV}\" xmlns:wst=\"{NS_WST}\" \
         xmlns:wsse=\"{NS_WSSE}\" xmlns:wsu=\"{NS_WSU}\" xmlns:saml=\"{NS_SAML}\" xmlns:wsp=\"{NS_WSP}\" xmlns:psf=\"{NS_PSF}\">"
    ));
    for token in requested {
        let address = xml_escape(&token.address);
        let n = token.number;
        let messenger = MESSENGER_ADDRESSES
            .iter()
            .any(|a| token.address.eq_ignore_ascii_case(a));
        let lifetime = if messenger {
            ticket_lifetime
        } else {
            Duration::from_secs(24 * 3600)
        };
        let expires = iso8601(now + lifetime);
        out.push_str("<wst:RequestSecurityTokenResponse>");
        if token.address.eq_ignore_ascii_case(PASSPORT_TB) {
            out.push_str(&format!(
                "<wst:TokenType>urn:passport:legacy</wst:TokenType>\
                 <wsp:AppliesTo xmlns:wsa=\"{NS_WSA}\"><wsa:EndpointReference><wsa:Address>{address}</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>\
                 <wst:LifeTime><wsu:Created>{created}</wsu:Created><wsu:Expires>{expires}</wsu:Expires></wst:LifeTime>\
                 <wst:RequestedSecurityToken><EncryptedData xmlns=\"http://www.w3.org/2001/04/xmlenc#\" Id=\"BinaryDAToken{n}\" \
                 Type=\"http://www.w3.org/2001/04/xmlenc#Element\"><EncryptionMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#tripledes-cbc\"></EncryptionMethod>\
                 <ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:KeyName>http://Passport.NET/STS</ds:KeyName></ds:KeyInfo>\
                 <CipherData><CipherValue>{}</CipherValue></CipherData></EncryptedData></wst:RequestedSecurityToken>\
                 <wst:RequestedTokenReference><wsse:KeyIdentifier ValueType=\"urn:passport\"></wsse:KeyIdentifier>\
                 <wsse:Reference URI=\"#BinaryDAToken{n}\"></wsse:Reference></wst:RequestedTokenReference>\
                 <wst:RequestedProofToken><wst:BinarySecret>{}</wst:BinarySecret></wst:RequestedProofToken>",
                opaque_base64(),
                opaque_base64(),
            ));
        } else {
            // messenger.msn.com was a "legacy" PPToken in the MSNP12 era,
            // the rest "compact" tokens; clients only read the text.
            let legacy = token.address.eq_ignore_ascii_case(MESSENGER_ADDRESSES[1]);
            let (kind, id) = if legacy {
                ("legacy", format!("PPToken{n}"))
            } else {
                ("compact", format!("Compact{n}"))
            };
            let value = if messenger {
                xml_escape(ticket)
            } else {
                xml_escape(&format!(
                    "t={}&p={}",
                    crate::core::tickets::random_hex(),
                    crate::core::tickets::random_hex()
                ))
            };
            out.push_str(&format!(
                "<wst:TokenType>urn:passport:{kind}</wst:TokenType>\
                 <wsp:AppliesTo xmlns:wsa=\"{NS_WSA}\"><wsa:EndpointReference><wsa:Address>{address}</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>\
                 <wst:LifeTime><wsu:Created>{created}</wsu:Created><wsu:Expires>{expires}</wsu:Expires></wst:LifeTime>\
                 <wst:RequestedSecurityToken><wsse:BinarySecurityToken Id=\"{id}\">{value}</wsse:BinarySecurityToken></wst:RequestedSecurityToken>\
                 <wst:RequestedTokenReference><wsse:KeyIdentifier ValueType=\"urn:passport:{kind}\"></wsse:KeyIdentifier>\
                 <wsse:Reference URI=\"#{id}\"></wsse:Reference></wst:RequestedTokenReference>\
                 <wst:RequestedProofToken><wst:BinarySecret>{}</wst:BinarySecret></wst:RequestedProofToken>",
                opaque_base64(),
            ));
        }
        out.push_str("</wst:RequestSecurityTokenResponse>");
    }
    out.push_str("</wst:RequestSecurityTokenResponseCollection></S:Body></S:Envelope>");
    out
}

/// 32 random hex digits: valid base64 for 24 random bytes, the size of
/// the proof keys clients derive 3DES keys from. Nothing checks them here.
fn opaque_base64() -> String {
    crate::core::tickets::random_hex()
}

// ---------------------------------------------------------------------------
// Minimal, tolerant XML reading

/// An element found by [`find_elements`]: the text of its start tag after
/// the name, and everything between its start and end tags.
#[derive(Debug, Clone, Copy)]
struct Element<'a> {
    attributes: &'a str,
    inner: &'a str,
}

impl<'a> Element<'a> {
    /// The value of attribute `name` (any prefix), entities decoded.
    fn attribute(&self, name: &str) -> Option<String> {
        let mut rest = self.attributes;
        loop {
            rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
            if rest.is_empty() {
                return None;
            }
            let eq = rest.find('=')?;
            let key = rest[..eq].trim();
            let after = rest[eq + 1..].trim_start();
            let quote = after.chars().next().filter(|c| *c == '"' || *c == '\'')?;
            let body = &after[1..];
            let end = body.find(quote)?;
            let local = key.rsplit(':').next().unwrap_or(key);
            if local == name {
                return Some(xml_unescape(&body[..end]));
            }
            rest = &body[end + 1..];
        }
    }

    /// The element's character data: entities decoded, CDATA sections kept
    /// verbatim, nested markup and comments dropped.
    fn text(&self) -> String {
        let mut out = String::new();
        let mut rest = self.inner;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("<![CDATA[") {
                let end = after.find("]]>").unwrap_or(after.len());
                out.push_str(&after[..end]);
                rest = after.get(end + 3..).unwrap_or("");
            } else if let Some(after) = rest.strip_prefix("<!--") {
                rest = after
                    .find("-->")
                    .and_then(|end| after.get(end + 3..))
                    .unwrap_or("");
            } else if rest.starts_with('<') {
                rest = rest
                    .find('>')
                    .and_then(|end| rest.get(end + 1..))
                    .unwrap_or("");
            } else {
                let end = rest.find('<').unwrap_or(rest.len());
                out.push_str(&xml_unescape(&rest[..end]));
                rest = &rest[end..];
            }
        }
        out
    }
}

/// Longest element name [`find_elements`] considers.
const MAX_NAME_LEN: usize = 128;
/// Unterminated candidates [`find_elements`] skips before giving up.
const MAX_BROKEN_ELEMENTS: usize = 8;

/// Every element whose local name is `local`, whatever its prefix, in
/// document order. Unterminated elements are skipped; same-name nesting is
/// not supported (none of the elements read here nests).
fn find_elements<'a>(xml: &'a str, local: &'a str) -> impl Iterator<Item = Element<'a>> + 'a {
    let mut cursor = 0;
    // Each broken candidate may cost a scan of the rest of the document;
    // a few are tolerated, then the document is given up on, so hostile
    // input cannot make this quadratic.
    let mut broken = 0;
    std::iter::from_fn(move || {
        loop {
            if broken > MAX_BROKEN_ELEMENTS {
                return None;
            }
            let start = cursor + xml.get(cursor..)?.find('<')?;
            cursor = start + 1;
            let tag = &xml[start + 1..];
            let Some(name_len) = tag
                .bytes()
                .take(MAX_NAME_LEN)
                .position(|b| b.is_ascii_whitespace() || b == b'>' || b == b'/')
            else {
                continue;
            };
            let qname = &tag[..name_len];
            if qname.is_empty() || qname.starts_with(['!', '?']) {
                continue;
            }
            if qname.rsplit(':').next() != Some(local) {
                continue;
            }
            let Some(tag_end) = start_tag_end(&tag[name_len..]) else {
                broken += 1;
                continue;
            };
            let attributes_end = name_len + tag_end;
            let attributes = &tag[name_len..attributes_end];
            let after_tag = start + 1 + attributes_end + 1;
            if attributes.trim_end().ends_with('/') {
                cursor = after_tag;
                return Some(Element {
                    attributes,
                    inner: "",
                });
            }
            let body = xml.get(after_tag..)?;
            let Some(close) = find_close(body, qname) else {
                broken += 1;
                continue;
            };
            cursor = after_tag + close;
            return Some(Element {
                attributes,
                inner: &body[..close],
            });
        }
    })
}

/// The index of the `>` ending a start tag, skipping quoted attribute values.
fn start_tag_end(tag: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in tag.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '>') => return Some(i),
            (None, '<') => return None,
            _ => {}
        }
    }
    None
}

/// The index of `</qname>` (optional spaces before `>`) in `body`.
fn find_close(body: &str, qname: &str) -> Option<usize> {
    let mut from = 0;
    loop {
        let at = from + body.get(from..)?.find("</")?;
        let rest = &body[at + 2..];
        if let Some(after) = rest.strip_prefix(qname)
            && after.trim_start().starts_with('>')
        {
            return Some(at);
        }
        from = at + 2;
    }
}

/// XML helpers shared with the rest of the protocol code.
pub use msnp::xml::{escape as xml_escape, unescape_lenient as xml_unescape};

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC).
fn iso8601(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (year, month, day) = civil_from_days(i64::try_from(secs / 86_400).unwrap_or(0));
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

// ---------------------------------------------------------------------------
// Serving

/// An acceptor that wraps each connection in [`LegacyRequestLine`] after
/// the inner acceptor (TLS) is done.
#[derive(Clone, Debug)]
struct LegacyAcceptor<A>(A);

impl<A, I, S> axum_server::accept::Accept<I, S> for LegacyAcceptor<A>
where
    A: axum_server::accept::Accept<I, S>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = LegacyRequestLine<A::Stream>;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let inner = self.0.accept(stream, service);
        Box::pin(async move {
            let (stream, service) = inner.await?;
            Ok((LegacyRequestLine::new(stream), service))
        })
    }
}

/// Longest first line examined by [`LegacyRequestLine`].
const FIRST_LINE_LIMIT: usize = 8 * 1024;

/// Passes a connection through, except that a first request line without an
/// HTTP version (`GET /rdr/pprdr.asp`, as Gaim sent it) gets ` HTTP/1.0`.
pub struct LegacyRequestLine<S> {
    inner: S,
    state: FirstLine,
}

enum FirstLine {
    Reading(Vec<u8>),
    Replaying(Vec<u8>, usize),
    Done,
}

impl<S> LegacyRequestLine<S> {
    pub fn new(inner: S) -> Self {
        LegacyRequestLine {
            inner,
            state: FirstLine::Reading(Vec::new()),
        }
    }
}

/// `seen` with ` HTTP/1.0` added to its first line (which ends at
/// `newline`) if that line is `METHOD target` and nothing more.
fn add_missing_version(mut seen: Vec<u8>, newline: usize) -> Vec<u8> {
    let line_end = if newline > 0 && seen.get(newline - 1) == Some(&b'\r') {
        newline - 1
    } else {
        newline
    };
    let line = &seen[..line_end];
    let mut parts = line.split(|&b| b == b' ').filter(|p| !p.is_empty());
    let (Some(method), Some(target), None) = (parts.next(), parts.next(), parts.next()) else {
        return seen;
    };
    if method.iter().all(u8::is_ascii_uppercase) && target.first() == Some(&b'/') {
        seen.splice(line_end..line_end, b" HTTP/1.0".iter().copied());
    }
    seen
}

impl<S: AsyncRead + Unpin> AsyncRead for LegacyRequestLine<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                FirstLine::Done => return Pin::new(&mut this.inner).poll_read(cx, buf),
                FirstLine::Replaying(data, position) => {
                    let n = buf.remaining().min(data.len() - *position);
                    buf.put_slice(&data[*position..*position + n]);
                    *position += n;
                    if *position >= data.len() {
                        this.state = FirstLine::Done;
                    }
                    return Poll::Ready(Ok(()));
                }
                FirstLine::Reading(seen) => {
                    let mut chunk = [0u8; 2048];
                    let mut chunk_buf = ReadBuf::new(&mut chunk);
                    ready!(Pin::new(&mut this.inner).poll_read(cx, &mut chunk_buf))?;
                    let got = chunk_buf.filled();
                    if got.is_empty() {
                        let seen = std::mem::take(seen);
                        this.state = if seen.is_empty() {
                            FirstLine::Done
                        } else {
                            FirstLine::Replaying(seen, 0)
                        };
                        if matches!(this.state, FirstLine::Done) {
                            return Poll::Ready(Ok(()));
                        }
                        continue;
                    }
                    seen.extend_from_slice(got);
                    if let Some(newline) = seen.iter().position(|&b| b == b'\n') {
                        let seen = add_missing_version(std::mem::take(seen), newline);
                        this.state = FirstLine::Replaying(seen, 0);
                    } else if seen.len() >= FIRST_LINE_LIMIT {
                        let seen = std::mem::take(seen);
                        this.state = FirstLine::Replaying(seen, 0);
                    }
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for LegacyRequestLine<S> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_is_parsed_like_clients_send_it() {
        let c = parse_authorization(
            b"Passport1.4 OrgVerb=GET,OrgURL=http%3A%2F%2Fmessenger%2Emsn%2Ecom,sign-in=alice%40example.com,pwd=s3cret%21,lc=1033,id=507,tw=40,fs=1,ru=http%3A%2F%2Fmessenger%2Emsn%2Ecom,ct=1062764429,kpp=1,kv=5,ver=2.1.0173.1,tpf=43f8a4c8ed940c04e3740be46c4d1619",
        )
        .unwrap();
        assert_eq!(
            c,
            Credentials {
                handle: "alice@example.com".into(),
                password: "s3cret!".into()
            }
        );
        let c = parse_authorization(b"Passport1.4 Passport1.4  OrgVerb=GET,OrgURL=http%3A%2F%2Fmessenger%2Emsn%2Ecom},sign-in=a%40b.c,pwd=x%2Cy").unwrap();
        assert_eq!(c.handle, "a@b.c");
        assert_eq!(c.password, "x,y");
        assert!(parse_authorization(b"Passport1.4 OrgVerb=GET,pwd=x").is_none());
        assert!(parse_authorization(b"Passport1.4 sign-in=,pwd=x").is_none());
        assert!(parse_authorization(b"Basic YWxhZGRpbjpvcGVuc2VzYW1l").is_none());
        assert!(parse_authorization(b"").is_none());
        assert!(parse_authorization(&[0xff, 0xfe, b',', b'=']).is_none());
        // An empty password parses; the check refuses it.
        assert_eq!(
            parse_authorization(b"sign-in=a%40b.c,pwd=")
                .unwrap()
                .password,
            ""
        );
    }

    #[test]
    fn rst_envelopes_are_read_whatever_the_prefixes() {
        let xml = r#"<?xml version="1.0"?><Envelope xmlns="x"><Header><wsse:Security><wsse:UsernameToken Id="user">
            <wsse:Username> bob@example.com </wsse:Username><wsse:Password>a&amp;b&lt;c&#33;&#x41;&bogus;</wsse:Password>
            </wsse:UsernameToken></wsse:Security></Header><Body><ps:RequestMultipleSecurityTokens Id="RSTS">
            <wst:RequestSecurityToken Id="RST0"><wsp:AppliesTo><wsa:EndpointReference><wsa:Address>http://Passport.NET/tb</wsa:Address>
            </wsa:EndpointReference></wsp:AppliesTo></wst:RequestSecurityToken>
            <wst:RequestSecurityToken Id='RST1'><wsp:AppliesTo><wsa:EndpointReference><wsa:Address>messengerclear.live.com</wsa:Address>
            </wsa:EndpointReference></wsp:AppliesTo><wsse:PolicyReference URI="MBI_KEY_OLD"/></wst:RequestSecurityToken>
            </ps:RequestMultipleSecurityTokens></Body></Envelope>"#;
        let r = parse_rst(xml).unwrap();
        assert_eq!(r.username, "bob@example.com");
        assert_eq!(r.password, "a&b<c!A&bogus;");
        assert_eq!(
            r.tokens,
            vec![
                TokenRequest {
                    number: 0,
                    address: "http://Passport.NET/tb".into()
                },
                TokenRequest {
                    number: 1,
                    address: "messengerclear.live.com".into()
                },
            ]
        );
        let cdata = "<Username>x@y.z</Username><s:Password><![CDATA[p<&>]]></s:Password>";
        assert_eq!(parse_rst(cdata).unwrap().password, "p<&>");
        assert!(parse_rst("<Username>x@y.z</Username>").is_none());
        assert!(parse_rst("<Username>x@y.z<Password>p</Password>").is_none());
        assert!(parse_rst("not xml at all < > & ;").is_none());
        assert!(parse_rst("").is_none());
        assert!(parse_rst("<wsse:Username>x</wsse:Username><wsse:Password>p").is_none());
    }

    #[test]
    fn hostile_rst_bodies_stay_cheap() {
        let size = MAX_RST_BODY;
        let patterns = [
            "<".repeat(size),
            "&".repeat(size),
            "<Username>".repeat(size / 10),
            "<Username></x".repeat(size / 13),
            "<a:Username b=\"".repeat(size / 15),
            format!(
                "<Username>u</Username><Password>p</Password>{}",
                "<RequestSecurityToken>".repeat(size / 22)
            ),
        ];
        for body in patterns {
            let started = std::time::Instant::now();
            let _ = parse_rst(&body);
            let _ = xml_unescape(&body);
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{:?}",
                &body[..40]
            );
        }
    }

    #[test]
    fn xml_escaping_round_trips() {
        let s = "t=1&p=2 <'\"> é";
        assert_eq!(xml_escape("t=1&p=2"), "t=1&amp;p=2");
        assert_eq!(xml_unescape(&xml_escape(s)), s);
        assert_eq!(xml_unescape("&#1114112;&#xD800;&"), "&#1114112;&#xD800;&");
    }

    #[test]
    fn dates_are_iso8601_utc() {
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            iso8601(UNIX_EPOCH + Duration::from_secs(1_062_764_229)),
            "2003-09-05T12:17:09Z"
        );
        assert_eq!(
            iso8601(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn versionless_request_lines_get_http_1_0() {
        let fixed = add_missing_version(b"GET /rdr/pprdr.asp\r\n\r\n".to_vec(), 18);
        assert_eq!(fixed, b"GET /rdr/pprdr.asp HTTP/1.0\r\n\r\n");
        let fixed = add_missing_version(b"GET /x\n\n".to_vec(), 6);
        assert_eq!(fixed, b"GET /x HTTP/1.0\n\n");
        let kept = b"GET /rdr/pprdr.asp HTTP/1.1\r\n".to_vec();
        assert_eq!(add_missing_version(kept.clone(), kept.len() - 1), kept);
        let kept = b"\x16\x03\x01 junk\n".to_vec();
        assert_eq!(add_missing_version(kept.clone(), kept.len() - 1), kept);
    }

    #[tokio::test]
    async fn hyper_keeps_the_wanted_spellings() {
        // Guards the header-case mechanism against hyper or axum-server changes.
        let extensions = header_case().await.expect("header spellings captured");
        assert!(format!("{extensions:?}").contains("HeaderCaseMap"));
    }

    #[test]
    fn public_url_is_cleaned_for_headers() {
        assert_eq!(
            sanitize_url("https://login.example.com/"),
            "https://login.example.com"
        );
        assert_eq!(sanitize_url("http://h:8080/p?q#f"), "http://h:8080/p");
        assert_eq!(sanitize_url("http://a,b\r\n'c"), "http://abc");
    }
}
