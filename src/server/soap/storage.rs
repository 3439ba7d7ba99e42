//! The storage service (`SchematizedStore.asmx`), the roaming profile
//! (storage-config.md §1).
//!
//! * `GetProfile`: the friendly name and personal message, no `Photo`
//!   (display pictures travel between clients; the address book does not
//!   set `MSN.IM.RoamLiveProperties`, so MSNPSharp does not even ask).
//! * `UpdateProfile`: a new `DisplayName` / `PersonalStatus` is applied as
//!   `PRP MFN` / `UUX` would be, and watchers see it.
//! * `CreateDocument` gets a resource id; every other operation
//!   (`FindDocuments`, `UpdateDocument`, `CreateRelationships`,
//!   `DeleteRelationships`, …) an empty answer: the picture is not kept.
//!
//! Answers use the namespace the request did (`…/storage/w10` or `…/2008`).

use super::{Soap, account_cid, fault_response, hub_fault, now, xml};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Response, StatusCode};
use std::sync::Arc;

pub(super) async fn handler(State(soap): State<Arc<Soap>>, request: Request) -> Response<Body> {
    let request = match soap.read(request, super::MAX_STORAGE_BODY).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    let action = request.soap_action.as_deref();
    let envelope = msnp::abch::envelope(action, &request.body).ok();
    let account = match soap
        .authenticate(envelope.as_ref().and_then(|e| e.ticket_token.as_deref()))
        .await
    {
        Ok(a) => a,
        Err(response) => return response,
    };
    let Some(envelope) = envelope else {
        return fault_response(msnp::abch::fault(
            "soap:Client",
            "No operation in the request",
            "BadArgument",
        ));
    };
    let namespace = msnp::abch::storage_namespace(action, &request.body);
    let cid = account_cid(&account);
    let session = match soap.session(&account).await {
        Ok(s) => s,
        Err(response) => return response,
    };
    let operation = envelope.operation.as_str();
    let body = match operation {
        "GetProfile" => {
            let read = soap
                .hub
                .with_roster(&session, |r| {
                    (r.friendly_name.clone(), r.personal_message.clone())
                })
                .await;
            match read {
                Ok((name, message)) => {
                    msnp::abch::get_profile_response(namespace, cid, &name, &message, now())
                }
                Err(e) => return hub_fault(&account.handle, e),
            }
        }
        "UpdateProfile" => {
            let (name, message) = msnp::abch::update_profile(&request.body);
            if let Some(name) = name.filter(|n| !n.is_empty())
                && let Err(e) = soap.hub.set_friendly_name(&session, &name).await
            {
                return hub_fault(&account.handle, e);
            }
            if let Some(message) = message {
                let playing = session.presence().now_playing.clone();
                if let Err(e) = soap
                    .hub
                    .set_personal_message(&session, &message, playing)
                    .await
                {
                    return hub_fault(&account.handle, e);
                }
            }
            msnp::abch::storage_empty_response(namespace, "UpdateProfile")
        }
        "CreateDocument" => format!(
            "<CreateDocumentResponse xmlns=\"{namespace}\"><CreateDocumentResult>{}!205</CreateDocumentResult></CreateDocumentResponse>",
            cid.to_hex().to_ascii_uppercase()
        ),
        other => msnp::abch::storage_empty_response(namespace, other),
    };
    xml(
        StatusCode::OK,
        msnp::abch::storage_answer(namespace, cid, &body),
    )
}
