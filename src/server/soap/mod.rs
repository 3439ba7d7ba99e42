//! The HTTP SOAP services a Windows Live Messenger client (MSNP13–18) calls
//! after the token service, on the Passport listener:
//!
//! * `POST /abservice/abservice.asmx` — the address book (`ABFindAll`,
//!   `ABFindContactsPaged`, `ABContact*`, `ABGroup*`, `ABAdd`), see
//!   [`abservice`];
//! * `POST /abservice/SharingService.asmx` — memberships (`FindMembership`,
//!   `AddMember`, `DeleteMember`), see [`sharing`]. Both paths accept every
//!   operation: the first element of `Body` decides, not the path;
//! * `POST /storageservice/SchematizedStore.asmx` — the roaming profile,
//!   see [`storage`];
//! * `/Config/MsgrConfig.asmx`, any method — the client configuration, see
//!   [`config`].
//!
//! Each path is also served with a doubled leading slash (`//abservice/…`),
//! which is what retro-prpl sends.
//!
//! The documents are read and written by [`msnp::abch`]. The contact list
//! is the same [`Roster`](crate::core::roster::Roster) every other dialect
//! reads, and every change goes through [`Hub::edit`], so other users'
//! sessions see it at once (`ADC … RL`, `REM … RL`, presence).
//!
//! Authentication: the `TicketToken` of the `ABAuthHeader` (or
//! `StorageUserHeader`) must be a service token the token service issued
//! ([`crate::core::tickets::TicketIssuer::service_token_owner`]) for an
//! account that still exists; otherwise the answer is `500` with the
//! `q0:BadContextToken` fault. A body over the route's limit gets `413`.

mod abservice;
mod config;
mod sharing;
mod storage;

use crate::config::Config;
use crate::core::hub::{Hub, HubError, Session};
use crate::store::AccountRow;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use axum::routing::{any, post};
use msnp::cid::Cid;
use std::sync::Arc;
use tracing::{info, warn};

/// Largest address-book or sharing request (413 beyond): the biggest real
/// one, an `ABContactAdd` or `AddMember` with a few dozen entries, is a few KiB.
pub const MAX_CONTACTS_BODY: usize = 64 * 1024;
/// Largest storage request (413 beyond): a display picture travels base64
/// encoded in `CreateDocument`/`UpdateDocument`.
pub const MAX_STORAGE_BODY: usize = 512 * 1024;

/// What every SOAP route shares.
struct Soap {
    hub: Arc<Hub>,
    /// `PreferredHostName` when a request names no `Host`.
    default_host: String,
}

/// The SOAP routes, ready to be merged with the Passport router.
pub fn router(hub: Arc<Hub>, config: Arc<Config>) -> Router {
    let default_host = host_of(&config.http.public_url);
    let state = Arc::new(Soap { hub, default_host });
    let mut router = Router::new();
    for prefix in ["", "/"] {
        router = router
            .route(
                &format!("{prefix}/abservice/abservice.asmx"),
                post(contacts_handler),
            )
            .route(
                &format!("{prefix}/abservice/SharingService.asmx"),
                post(contacts_handler),
            )
            .route(
                &format!("{prefix}/storageservice/SchematizedStore.asmx"),
                post(storage::handler),
            )
            .route(
                &format!("{prefix}/Config/MsgrConfig.asmx"),
                any(config::handler),
            );
    }
    router.with_state(state)
}

/// The host part of a URL (`https://h:8080/x` → `h:8080`).
fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?', '#'])
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .collect()
}

/// A request's body and the headers the services read.
struct SoapRequest {
    soap_action: Option<String>,
    host: String,
    body: String,
}

impl Soap {
    /// Reads a request body of at most `limit` bytes; `Err` is the 413.
    async fn read(&self, request: Request, limit: usize) -> Result<SoapRequest, Response<Body>> {
        let headers = request.headers().clone();
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let path = request.uri().path().to_string();
        if declared.is_some_and(|n| n > limit as u64) {
            info!(path, "SOAP request refused: body too large");
            return Err(empty(StatusCode::PAYLOAD_TOO_LARGE));
        }
        let body = match axum::body::to_bytes(request.into_body(), limit).await {
            Ok(body) => body,
            Err(e) => {
                info!(path, error = %e, "SOAP request refused: body unreadable or too large");
                return Err(empty(StatusCode::PAYLOAD_TOO_LARGE));
            }
        };
        Ok(SoapRequest {
            soap_action: header_text(&headers, "soapaction"),
            host: header_text(&headers, "host")
                .map(|h| {
                    h.chars()
                        .filter(|c| c.is_ascii_graphic())
                        .take(255)
                        .collect()
                })
                .filter(|h: &String| !h.is_empty())
                .unwrap_or_else(|| self.default_host.clone()),
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// The account a ticket token belongs to; `Err` is the fault to send.
    async fn authenticate(&self, token: Option<&str>) -> Result<AccountRow, Response<Body>> {
        let Some(handle) = token.and_then(|t| self.hub.tickets.service_token_owner(t)) else {
            info!("SOAP request refused: missing, unknown or expired ticket token");
            return Err(fault_response(msnp::abch::bad_context_token()));
        };
        match self.hub.store().account_by_handle(&handle).await {
            Ok(Some(account)) => Ok(account),
            Ok(None) => {
                info!(%handle, "SOAP request refused: the token's account is gone");
                self.hub.tickets.revoke_service_tokens(&handle);
                Err(fault_response(msnp::abch::bad_context_token()))
            }
            Err(e) => Err(server_fault(&handle, &e)),
        }
    }

    /// The account's session, or a stand-in (see [`Hub::session_or_stand_in`]).
    async fn session(&self, account: &AccountRow) -> Result<Arc<Session>, Response<Body>> {
        self.hub
            .session_or_stand_in(account)
            .await
            .map_err(|e| server_fault(&account.handle, &e))
    }

    /// The CID documents show for `handle`: a local account's own CID (its
    /// id, as the token service's `CID` property says), else one made of the
    /// contact's GUID (bridged contacts), stable either way.
    async fn cid_of(&self, handle: &str, guid: &str) -> Cid {
        match self.hub.store().account_by_handle(handle).await {
            Ok(Some(account)) => account_cid(&account),
            _ => guid_cid(guid),
        }
    }
}

/// An account's CID: its id, the number the token service's `CID` shows.
fn account_cid(account: &AccountRow) -> Cid {
    Cid(u64::try_from(account.id).unwrap_or(0))
}

/// A CID made of a GUID's last 8 bytes (0 for text that is no GUID).
fn guid_cid(guid: &str) -> Cid {
    uuid::Uuid::parse_str(guid).map_or(Cid(0), |u| Cid::from_uuid_bytes(u.as_bytes()))
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
}

/// The address book and the sharing service, whichever path was used.
async fn contacts_handler(State(soap): State<Arc<Soap>>, request: Request) -> Response<Body> {
    let request = match soap.read(request, MAX_CONTACTS_BODY).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    let (envelope, parsed) = match msnp::abch::parse(request.soap_action.as_deref(), &request.body)
    {
        Ok(p) => p,
        Err(error) => {
            // Authenticate first: an unknown client learns nothing.
            let token = msnp::abch::envelope(request.soap_action.as_deref(), &request.body)
                .ok()
                .and_then(|e| e.ticket_token);
            if let Err(response) = soap.authenticate(token.as_deref()).await {
                return response;
            }
            info!(?error, "SOAP request refused: unsupported or malformed");
            return fault_response(msnp::abch::fault(
                "soap:Client",
                &format!("Unsupported request: {error:?}"),
                "BadArgument",
            ));
        }
    };
    let account = match soap.authenticate(envelope.ticket_token.as_deref()).await {
        Ok(a) => a,
        Err(response) => return response,
    };
    let session_id = uuid::Uuid::new_v4().to_string();
    let header = msnp::abch::ServiceHeader {
        host: &request.host,
        session_id: &session_id,
    };
    let session = match soap.session(&account).await {
        Ok(s) => s,
        Err(response) => return response,
    };
    let result = match sharing::answers(&parsed) {
        true => sharing::answer(&soap, &account, &session, parsed).await,
        false => abservice::answer(&soap, &account, &session, parsed).await,
    };
    match result {
        Ok(body) => xml(StatusCode::OK, msnp::abch::answer(&header, &body)),
        Err(response) => response,
    }
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

fn xml(status: StatusCode, document: String) -> Response<Body> {
    let mut response = Response::new(Body::from(document));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    response
}

/// A SOAP fault document, sent as SOAP 1.1 wants: HTTP 500.
fn fault_response(document: String) -> Response<Body> {
    xml(StatusCode::INTERNAL_SERVER_ERROR, document)
}

/// The fault for a failure on our side (store outage).
fn server_fault(handle: &str, error: &dyn std::fmt::Display) -> Response<Body> {
    warn!(%handle, %error, "SOAP request failed");
    fault_response(msnp::abch::fault(
        "soap:Server",
        "The service is temporarily unavailable",
        "InternalError",
    ))
}

/// The fault for a refused list edit.
fn client_fault(faultstring: &str, errorcode: &str) -> Response<Body> {
    fault_response(msnp::abch::fault("soap:Client", faultstring, errorcode))
}

/// Seconds since the Unix epoch.
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The answer to a hub error outside the list rules (store outage, or an
/// account that vanished meanwhile).
fn hub_fault(handle: &str, error: HubError) -> Response<Body> {
    server_fault(handle, &error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_come_from_urls() {
        assert_eq!(
            host_of("https://contacts.example.com/"),
            "contacts.example.com"
        );
        assert_eq!(host_of("http://h:8080/x?y"), "h:8080");
        assert_eq!(host_of("h"), "h");
    }

    #[test]
    fn guid_cids_are_stable() {
        let cid = guid_cid("3f2504e0-4f89-11d3-9a0c-0305e82c3301");
        assert_eq!(cid.to_hex(), "9a0c0305e82c3301");
        assert_eq!(guid_cid("not a guid"), Cid(0));
    }
}
