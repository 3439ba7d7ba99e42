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
//!   7.5-era clients and libraries. See the `rst` module for the exact exchange.
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
//!
//! # Files
//!
//! * `mod.rs` — the router, the shared state `Passport` and the password
//!   check both logins use;
//! * `nexus.rs`, `login.rs`, `rst.rs` — one route each;
//! * `header_case.rs` — the header spellings above;
//! * `legacy_request_line.rs` — the HTTP/0.9 request-line fix;
//! * `serve.rs` — listening, TLS, HTTP/1 limits and timeouts.

mod client_hello;
mod header_case;
mod legacy_request_line;
mod legacy_tls;
mod login;
mod nexus;
mod rst;
mod serve;

pub use header_case::header_case;
pub use legacy_request_line::LegacyRequestLine;
pub use legacy_tls::{LEGACY_SUITES, available_legacy_suites, legacy_context};
pub use login::{Credentials, parse_authorization};
pub use rst::MAX_RST_BODY;
pub use serve::{serve, tls_server_config};

use crate::config::Config;
use crate::core::accounts::{MAX_PASSWORD_LEN, SignInError};
use crate::core::hub::Hub;
use crate::metrics::Metrics;
use crate::store::AccountRow;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, Response, StatusCode, header};
use axum::routing::{any, post};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// What every Passport route shares.
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

    /// Logs and counts an accepted sign-in.
    fn accepted(&self, client: &Client, handle: &str) {
        let Client { peer, route, .. } = client;
        info!(%handle, %peer, route, "passport sign-in accepted");
        self.count(true);
    }

    /// Logs why a sign-in was refused, and counts it; `handle` is empty
    /// when the request named none.
    fn refused(&self, client: &Client, handle: &str, reason: &dyn std::fmt::Display) {
        let Client { peer, route, .. } = client;
        if handle.is_empty() {
            info!(%peer, route, %reason, "passport sign-in refused");
        } else {
            info!(handle = %loggable(handle), %peer, route, %reason, "passport sign-in refused");
        }
        self.count(false);
    }

    /// Logs a sign-in that failed on our side (not counted as a refusal:
    /// the client did nothing wrong).
    fn failed(&self, client: &Client, handle: &str, error: &dyn std::fmt::Display) {
        let Client { peer, route, .. } = client;
        warn!(handle = %loggable(handle), %peer, route, %error, "passport sign-in failed");
    }
}

/// Who sent a request, for the sign-in limits and the log lines.
struct Client {
    peer: String,
    /// Unspecified when unknown: all such requests then share one
    /// source's limits.
    source: IpAddr,
    /// The route, as logged (`login2.srf`, `RST.srf`, …).
    route: &'static str,
}

impl Client {
    fn of(request: &Request, route: &'static str) -> Client {
        let address = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| *addr);
        Client {
            peer: address.map_or_else(|| "-".into(), |a| a.to_string()),
            source: address.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip()),
            route,
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
    let state = Arc::new(Passport {
        hub,
        ticket_lifetime: Duration::from_secs(config.auth.ticket_lifetime_secs),
        nexus: nexus::passport_urls(&base),
        failure: login::failure_challenge(&base),
        metrics,
    });
    Router::new()
        .route("/rdr/pprdr.asp", any(nexus::handler))
        .route("/login2.srf", any(login::handler))
        .route("/RST.srf", post(rst::handler))
        .route("/RST2.srf", post(rst::handler))
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
    /// Checks a sign-in's password (the account store applies its delays
    /// and limits per account and per `source`).
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

#[cfg(test)]
mod tests {
    use super::*;

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
