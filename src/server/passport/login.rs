//! The Passport 1.4 ("Tweener") login, `/login2.srf` (login.md §7.2).

use super::header_case::with_header_case;
use super::{Client, Passport, Refusal, empty, header_value};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Response, StatusCode, header};
use std::sync::Arc;
use tracing::warn;

/// The `cbtxt` of a refusal, URL-encoded as clients expect.
const FAILURE_TEXT: &str = "Wrong%20e-mail%20address%20or%20password";

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

pub(super) async fn handler(
    State(passport): State<Arc<Passport>>,
    request: Request,
) -> Response<Body> {
    let client = Client::of(&request, "login2.srf");
    let credentials = match request.headers().get(header::AUTHORIZATION) {
        Some(value) => parse_authorization(value.as_bytes())
            .ok_or(Refusal::Malformed("no sign-in or pwd field")),
        None => Err(Refusal::Malformed("no Authorization header")),
    };
    let response = match credentials {
        Err(refusal) => refuse(&passport, &client, "", &refusal),
        Ok(c) => match passport.check(&c.handle, &c.password, client.source).await {
            Ok(account) => {
                let ticket = passport.hub.tickets.issue(&account.handle);
                passport.accepted(&client, &account.handle);
                success(&client, &ticket)
            }
            Err(refusal @ Refusal::Unavailable(_)) => {
                passport.failed(&client, &c.handle, &refusal);
                empty(StatusCode::INTERNAL_SERVER_ERROR)
            }
            Err(refusal) => refuse(&passport, &client, &c.handle, &refusal),
        },
    };
    with_header_case(response).await
}

/// `200` with the ticket in `Authentication-Info`.
fn success(client: &Client, ticket: &str) -> Response<Body> {
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
        Err(e) => {
            // Tickets are hex and ASCII punctuation: this is a bug here.
            warn!(peer = %client.peer, route = client.route, error = %e, "passport ticket does not fit a header; answering 500");
            empty(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

/// `401` with the Passport challenge, logged and counted.
fn refuse(passport: &Passport, client: &Client, handle: &str, refusal: &Refusal) -> Response<Body> {
    passport.refused(client, handle, refusal);
    let mut response = empty(StatusCode::UNAUTHORIZED);
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, passport.failure.clone());
    response
}

/// The `WWW-Authenticate` value of every refusal, for a server whose
/// public URL is `base` (sanitised).
pub(super) fn failure_challenge(base: &str) -> HeaderValue {
    header_value(
        format!(
            "Passport1.4 da-status=failed,srealm=Passport.NET,ts=-3,prompt,cburl={base}/logo.png,cbtxt={FAILURE_TEXT}"
        ),
        "Passport1.4 da-status=failed,srealm=Passport.NET,ts=-3,prompt",
    )
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
}
