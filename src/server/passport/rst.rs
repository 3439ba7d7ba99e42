//! The WS-Trust token service, `POST /RST.srf` and `/RST2.srf`. The
//! documents themselves are read and written by [`msnp::soap`]; this file
//! decides who signs in and what each requested token carries.
//!
//! Request (libpurple, KMess, Miranda; prefixes and the list of tokens vary):
//!
//! ```text
//! POST /RST.srf HTTP/1.1
//! Content-Type: text/xml; charset=utf-8
//!
//! <Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/" xmlns:wsse=… xmlns:wst=… xmlns:wsp=… xmlns:wsa=…>
//!   <Header>
//!     <ps:AuthInfo …>…</ps:AuthInfo>
//!     <wsse:Security><wsse:UsernameToken Id="user">
//!       <wsse:Username>alice@example.com</wsse:Username>
//!       <wsse:Password>s3cret!</wsse:Password>
//!     </wsse:UsernameToken></wsse:Security>
//!   </Header>
//!   <Body><ps:RequestMultipleSecurityTokens …>
//!     <wst:RequestSecurityToken Id="RST0"> … <wsa:Address>http://Passport.NET/tb</wsa:Address> …
//!     <wst:RequestSecurityToken Id="RST1"> … <wsa:Address>messengerclear.live.com</wsa:Address>
//!        <wsse:PolicyReference URI="…"/> …
//!   </ps:RequestMultipleSecurityTokens></Body>
//! </Envelope>
//! ```
//!
//! Success — `200`, `Content-Type: text/xml; charset=utf-8`, one
//! `RequestSecurityTokenResponse` per requested token, in request order:
//!
//! ```text
//! <?xml version="1.0" encoding="utf-8"?>
//! <S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/">
//!   <S:Header><psf:pp xmlns:psf="…/SOAPFault">
//!     <psf:serverVersion>1</psf:serverVersion><psf:PUID>…</psf:PUID> … <psf:reqstatus>0x0</psf:reqstatus> …
//!   </psf:pp></S:Header>
//!   <S:Body>
//!     <wst:RequestSecurityTokenResponseCollection xmlns:wst=… xmlns:wsse=… xmlns:wsu=… xmlns:wsp=… …>
//!       <wst:RequestSecurityTokenResponse>   (http://Passport.NET/tb: an opaque
//!          EncryptedData/CipherData/CipherValue and a RequestedProofToken/BinarySecret)
//!       <wst:RequestSecurityTokenResponse>
//!         <wst:TokenType>urn:passport:compact</wst:TokenType>
//!         <wsp:AppliesTo><wsa:EndpointReference><wsa:Address>messengerclear.live.com</wsa:Address>…
//!         <wst:LifeTime><wsu:Created>…</wsu:Created><wsu:Expires>…</wsu:Expires></wst:LifeTime>
//!         <wst:RequestedSecurityToken>
//!           <wsse:BinarySecurityToken Id="Compact1">t=…&amp;p=…</wsse:BinarySecurityToken>
//!         </wst:RequestedSecurityToken>
//!         <wst:RequestedTokenReference>…<wsse:Reference URI="#Compact1"/></wst:RequestedTokenReference>
//!         <wst:RequestedProofToken><wst:BinarySecret>…</wst:BinarySecret></wst:RequestedProofToken>
//!       </wst:RequestSecurityTokenResponse>
//!       …
//!     </wst:RequestSecurityTokenResponseCollection>
//!   </S:Body>
//! </S:Envelope>
//! ```
//!
//! The token of `messengerclear.live.com` and `messenger.msn.com` (`Id`
//! `Compact<n>`/`PPToken<n>` after `RST<n>`: libpurple indexes by it) is a
//! Passport ticket from [`crate::core::tickets`], which `USR … TWN S`
//! redeems; other addresses get an opaque token that signs nothing in. What
//! the clients read: libpurple walks the collection by `Address` and splits
//! `BinarySecurityToken` at `&`; KMess wants the `wst:` prefix on the
//! collection; Miranda takes the text of the first `<wsse:BinarySecurityToken`
//! (hence the `tb` entry carries none) and splits it at `&p=`.
//!
//! Failure (unknown account, wrong password, no credentials) — `200` (Miranda
//! treats any other status as "server unreachable") with the fault the live
//! service sent, `S:Fault` directly in `S:Envelope` (where libpurple looks):
//!
//! ```text
//! <?xml version="1.0" encoding="utf-8"?>
//! <S:Envelope xmlns:S=… xmlns:wsse=… xmlns:psf=…>
//!   <S:Header><psf:pp …>…<psf:reqstatus>0x80048821</psf:reqstatus>…</psf:pp></S:Header>
//!   <S:Fault>
//!     <faultcode>wsse:FailedAuthentication</faultcode>
//!     <faultstring>Authentication Failure</faultstring>
//!   </S:Fault>
//! </S:Envelope>
//! ```
//!
//! A body over [`MAX_RST_BODY`] gets `413`, a store outage `500`.

use super::header_case::with_header_case;
use super::{Client, Passport, Refusal, empty, xml_response};
use crate::store::AccountRow;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Response, StatusCode, header};
use msnp::soap::{
    IssuedToken, Member, RstRequest, TokenKind, TokenRequest, TokenResponse, TokenResponses,
};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Largest `RST.srf` request body accepted (413 beyond).
pub const MAX_RST_BODY: usize = 64 * 1024;

/// The AppliesTo address whose token is only a session key for token renewal.
const PASSPORT_TB: &str = "http://Passport.NET/tb";
/// AppliesTo addresses whose token is the ticket `USR … TWN S` presents.
const MESSENGER_ADDRESSES: [&str; 2] = ["messengerclear.live.com", "messenger.msn.com"];
/// Lifetime of the tokens that sign nothing in.
const OPAQUE_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

pub(super) async fn handler(
    State(passport): State<Arc<Passport>>,
    request: Request,
) -> Response<Body> {
    let route = if request.uri().path().eq_ignore_ascii_case("/RST2.srf") {
        "RST2.srf"
    } else {
        "RST.srf"
    };
    let client = Client::of(&request, route);
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let response = if declared.is_some_and(|n| n > MAX_RST_BODY as u64) {
        passport.refused(&client, "", &"request body too large");
        empty(StatusCode::PAYLOAD_TOO_LARGE)
    } else {
        match axum::body::to_bytes(request.into_body(), MAX_RST_BODY).await {
            Ok(body) => answer(&passport, &client, &body).await,
            Err(e) => {
                let reason = format!("request body unreadable or too large: {e}");
                passport.refused(&client, "", &reason);
                empty(StatusCode::PAYLOAD_TOO_LARGE)
            }
        }
    };
    with_header_case(response).await
}

/// Answers a request body that fits the limit.
async fn answer(passport: &Passport, client: &Client, body: &[u8]) -> Response<Body> {
    let now = SystemTime::now();
    let text = String::from_utf8_lossy(body);
    let Some(request) = RstRequest::parse(&text) else {
        passport.refused(client, "", &"malformed request: no Username or Password");
        return xml_response(msnp::soap::failed_authentication(unix_secs(now)));
    };
    match passport
        .check(&request.username, &request.password, client.source)
        .await
    {
        Ok(account) => {
            // The proof key goes out as the BinarySecret of
            // messengerclear.live.com; MSNP15+ clients answer USR SSO's nonce
            // with it (the MBI response), older ones ignore it.
            let (ticket, proof_key) = passport.hub.tickets.issue_with_proof(&account.handle);
            passport.accepted(client, &account.handle);
            let issuer = Issuer {
                ticket: &ticket,
                proof_key: &proof_key,
                tickets: &passport.hub.tickets,
                now: unix_secs(now),
                ticket_lifetime: passport.ticket_lifetime,
            };
            xml_response(issuer.answer(&account, &request.tokens))
        }
        Err(refusal @ Refusal::Unavailable(_)) => {
            passport.failed(client, &request.username, &refusal);
            empty(StatusCode::INTERNAL_SERVER_ERROR)
        }
        Err(refusal) => {
            passport.refused(client, &request.username, &refusal);
            xml_response(msnp::soap::failed_authentication(unix_secs(now)))
        }
    }
}

fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What a requested token is for, which decides what it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Audience {
    /// `http://Passport.NET/tb`: a session key for token renewal.
    SessionKey,
    /// The Messenger service: the ticket `USR … TWN S` redeems.
    /// `messenger.msn.com` was a "legacy" PPToken in the MSNP12 era,
    /// `messengerclear.live.com` a "compact" token; clients only read the
    /// text.
    Messenger(TokenKind),
    /// Anything else (contacts, storage, spaces, …): a service token the
    /// SOAP services accept for this account until it expires.
    Other,
}

impl Audience {
    fn of(address: &str) -> Audience {
        if address.eq_ignore_ascii_case(PASSPORT_TB) {
            Audience::SessionKey
        } else if address.eq_ignore_ascii_case(MESSENGER_ADDRESSES[0]) {
            Audience::Messenger(TokenKind::Compact)
        } else if address.eq_ignore_ascii_case(MESSENGER_ADDRESSES[1]) {
            Audience::Messenger(TokenKind::Legacy)
        } else {
            Audience::Other
        }
    }
}

/// Builds the success answer for one signed-in account.
struct Issuer<'a> {
    /// The Passport ticket just issued (`t=…&p=…`).
    ticket: &'a str,
    /// The ticket's proof key (the MBI key of `USR SSO S`).
    proof_key: &'a crate::core::tickets::ProofKey,
    /// Where the service tokens come from.
    tickets: &'a crate::core::tickets::TicketIssuer,
    /// Seconds since the Unix epoch.
    now: u64,
    ticket_lifetime: Duration,
}

impl Issuer<'_> {
    /// One response per requested token, in request order; a request that
    /// names none gets the three an MSNP12 client needs.
    fn answer(&self, account: &AccountRow, requested: &[TokenRequest]) -> String {
        let id = u64::try_from(account.id).unwrap_or(0);
        let member = Member {
            puid: 0x0006_0000_0000_0000_u64 | (id & 0xFFFF_FFFF_FFFF),
            cid: id,
            membername: &account.handle,
        };
        let mut responses = TokenResponses::new(member, self.now);
        let fallback;
        let requested = if requested.is_empty() {
            fallback = default_tokens();
            &fallback[..]
        } else {
            requested
        };
        for token in requested {
            responses.push(self.token(&account.handle, token));
        }
        responses.render()
    }

    fn token(&self, handle: &str, request: &TokenRequest) -> TokenResponse {
        let audience = Audience::of(&request.address);
        let lifetime = match audience {
            Audience::Messenger(_) => self.ticket_lifetime,
            Audience::Other => crate::core::tickets::SERVICE_TOKEN_LIFETIME,
            Audience::SessionKey => OPAQUE_TOKEN_LIFETIME,
        };
        let token = match audience {
            Audience::SessionKey => IssuedToken::Encrypted {
                cipher_value: random_base64(),
            },
            Audience::Messenger(kind) => IssuedToken::Binary {
                kind,
                value: self.ticket.to_string(),
            },
            Audience::Other => IssuedToken::Binary {
                kind: TokenKind::Compact,
                value: self.tickets.issue_service_token(handle),
            },
        };
        let proof_key = match audience {
            Audience::Messenger(TokenKind::Compact) => base64_of(self.proof_key),
            _ => random_base64(),
        };
        TokenResponse {
            number: request.number,
            address: request.address.clone(),
            created: self.now,
            expires: self.now.saturating_add(lifetime.as_secs()),
            token,
            proof_key,
        }
    }
}

/// What a request without `RequestSecurityToken`s gets.
fn default_tokens() -> [TokenRequest; 3] {
    let token = |number, address: &str| TokenRequest {
        number,
        address: address.into(),
        policy: None,
    };
    [
        token(0, PASSPORT_TB),
        token(1, MESSENGER_ADDRESSES[0]),
        token(2, MESSENGER_ADDRESSES[1]),
    ]
}

/// 24 random bytes in base64, the size of the proof keys clients derive
/// 3DES keys from; only the messengerclear.live.com key is ever checked.
fn random_base64() -> String {
    let mut key = [0u8; 24];
    rand::fill(&mut key);
    base64_of(&key)
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_pick_their_token() {
        assert_eq!(Audience::of("http://passport.net/TB"), Audience::SessionKey);
        assert_eq!(
            Audience::of("MessengerClear.Live.com"),
            Audience::Messenger(TokenKind::Compact)
        );
        assert_eq!(
            Audience::of("messenger.msn.com"),
            Audience::Messenger(TokenKind::Legacy)
        );
        assert_eq!(Audience::of("contacts.msn.com"), Audience::Other);
        assert_eq!(Audience::of(""), Audience::Other);
    }

    #[test]
    fn messenger_tokens_carry_the_ticket_and_its_proof_key() {
        use base64::Engine as _;
        let tickets = crate::core::tickets::TicketIssuer::new(Duration::from_secs(60));
        let key = [7u8; 24];
        let issuer = Issuer {
            ticket: "t=T&p=P",
            proof_key: &key,
            tickets: &tickets,
            now: 1000,
            ticket_lifetime: Duration::from_secs(60),
        };
        let request = |address: &str| TokenRequest {
            number: 5,
            address: address.into(),
            policy: None,
        };
        let alice = "alice@example.com";
        let messenger = issuer.token(alice, &request("messengerclear.live.com"));
        assert_eq!(
            messenger.token,
            IssuedToken::Binary {
                kind: TokenKind::Compact,
                value: "t=T&p=P".into()
            }
        );
        assert_eq!((messenger.number, messenger.expires), (5, 1060));
        assert_eq!(
            base64::engine::general_purpose::STANDARD.decode(&messenger.proof_key),
            Ok(key.to_vec())
        );
        let other = issuer.token(alice, &request("contacts.msn.com"));
        assert_eq!(other.expires, 1000 + 8 * 3600);
        let IssuedToken::Binary { value, .. } = &other.token else {
            panic!("a compact token for contacts.msn.com");
        };
        assert_eq!(tickets.service_token_owner(value).as_deref(), Some(alice));
        assert_ne!(other.proof_key, messenger.proof_key);
        let tb = issuer.token(alice, &request("http://Passport.NET/tb"));
        assert!(matches!(tb.token, IssuedToken::Encrypted { .. }));
    }
}
