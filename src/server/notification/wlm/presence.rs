//! MSNP13+ presence: `CHG` with `caps:extcaps`, the extra `UUX` documents,
//! and `ILN`/`NLN`/`FLN`/`UBX` in each dialect's handle form
//! (wlm/notification.md §4–§6).

use super::super::presence::{personal_data_xml, status_code, status_from_code};
use super::super::{Flow, NsConnection, decoded, encoded};
use super::NETWORK_PASSPORT;
use crate::core::events::{DisconnectReason, SessionEvent};
use crate::core::hub::Session;
use crate::core::presence::Presence;
use msnp::adl::{ListEntry, Lists, MembershipList, NetworkId};
use msnp::codec::Command;
use msnp::dialect::Dialect;
use msnp::error::ErrorCode;
use std::sync::Arc;
use std::time::Instant;

/// What Escargot and the Microsoft service sent for "no display picture".
const NO_MSN_OBJECT: &str = "%3Cmsnobj%2F%3E";

/// `status handle name caps msnobj` of `ILN`/`NLN` in `dialect`.
///
/// Extended capabilities are not passed on (watchers see `caps:0`): they
/// advertise P2P v2 and endpoint features that need MPOP, which msngate
/// does not offer yet, so WLM 2009 falls back to what MSNP12 peers do.
pub(in crate::server::notification) fn presence_fields(p: &Presence, dialect: Dialect) -> String {
    let avatar = p
        .avatar
        .as_deref()
        .filter(|a| !a.is_empty())
        .map(encoded)
        .unwrap_or_else(|| NO_MSN_OBJECT.to_string());
    format!(
        "{} {} {} {} {avatar}",
        status_code(p.status),
        dialect.presence_handle(&p.handle, NETWORK_PASSPORT),
        encoded(&p.friendly_name),
        dialect.capabilities_field(p.capabilities, 0),
    )
}

/// `FLN` for `handle`: `bob@x` (P13), `bob@x 1 0` (P14–15),
/// `bob@x 1 0:0` (P16–17), `1:bob@x 0:0` (P18).
fn offline_line(handle: &str, dialect: Dialect) -> String {
    let who = dialect.presence_handle(handle, NETWORK_PASSPORT);
    if dialect.presence_handle_form() == msnp::dialect::PresenceHandleForm::Plain {
        format!("FLN {who}")
    } else {
        format!("FLN {who} {}", dialect.capabilities_field(0, 0))
    }
}

/// Splits `caps` or `caps:extcaps`; a plain number means extcaps 0.
fn parse_capabilities(field: &str) -> Option<(u32, u32)> {
    match field.split_once(':') {
        Some((caps, ext)) => Some((caps.parse().ok()?, ext.parse().ok()?)),
        None => Some((field.parse().ok()?, 0)),
    }
}

/// The server → client `<ml>` naming one contact on `lists`.
fn membership_document(handle: &str, lists: Lists, friendly_name: Option<&str>) -> Option<String> {
    let mut entry = ListEntry::from_email(handle, lists, Some(NetworkId::PASSPORT))?;
    entry.friendly_name = friendly_name.map(encoded);
    Some(
        MembershipList {
            initial: false,
            entries: vec![entry],
        }
        .to_xml(),
    )
}

impl NsConnection {
    /// `CHG trid status caps[:extcaps] [msnobj]`, echoed as sent; the first
    /// one is followed by the presence of every visible contact.
    pub(super) async fn wlm_chg(&mut self, trid: u32, cmd: &Command) -> Flow {
        let Some(session) = self.session.clone() else {
            return Flow::Close;
        };
        let Some(code) = cmd.arg(1) else {
            return Flow::Close;
        };
        let Some(status) = status_from_code(code) else {
            return self.reply_error(ErrorCode::InvalidParameter, trid);
        };
        let caps_field = cmd.arg(2).unwrap_or("0");
        let Some((capabilities, _extended)) = parse_capabilities(caps_field) else {
            return self.reply_error(ErrorCode::InvalidParameter, trid);
        };
        // retro-prpl sends `0` for "no display picture".
        let avatar_raw = cmd.arg(3).filter(|o| *o != "0");
        let current = session.presence();
        let changes_something = current.status != status
            || current.capabilities != capabilities
            || current.avatar.as_deref() != avatar_raw.map(decoded).as_deref();
        if changes_something && self.presence_started && !self.rate.allow() {
            return self.reply_error(ErrorCode::RateLimited, trid);
        }
        // Presence queued before the first CHG is superseded by the burst.
        if !self.presence_started && self.render_events() == Flow::Close {
            return Flow::Close;
        }
        let avatar: Option<Arc<str>> = avatar_raw.map(|raw| decoded(raw).into());
        if let Err(e) = self
            .ctx
            .hub
            .set_presence(&session, status, capabilities, avatar)
            .await
        {
            tracing::error!(user = %session.handle, error = %e, "status change failed");
            return self.reply_error(ErrorCode::InternalError, trid);
        }
        let mut echo = format!("CHG {trid} {code} {caps_field}");
        if let Some(raw) = cmd.arg(3) {
            echo.push(' ');
            echo.push_str(raw);
        }
        self.conn.send_line(&echo);
        if !self.presence_started {
            self.presence_started = true;
            match self.ctx.hub.initial_presence(&session).await {
                Ok(contacts) => {
                    for p in contacts {
                        self.send_wlm_presence(Some(trid), &p);
                    }
                }
                Err(e) => {
                    tracing::error!(user = %session.handle, error = %e, "initial presence failed")
                }
            }
            if self.ctx.config.msn.challenges {
                let challenge = msnp::auth::new_challenge(rand::random::<u64>());
                self.conn.send_line(&format!("CHL 0 {challenge}"));
                self.challenge = Some((challenge, Instant::now()));
            }
        }
        Flow::Continue
    }

    /// A contact's presence: `ILN trid …` in the initial burst up to MSNP17
    /// (`NLN` in MSNP18, whose clients have no `ILN`), `NLN …` for a
    /// change, then its `UBX` if it has a personal message.
    pub(super) fn send_wlm_presence(&mut self, initial_trid: Option<u32>, p: &Presence) {
        let fields = presence_fields(p, self.dialect);
        match initial_trid {
            Some(trid) if self.dialect.has_initial_presence_iln() => {
                self.conn.send_line(&format!("ILN {trid} {fields}"))
            }
            _ => self.conn.send_line(&format!("NLN {fields}")),
        }
        if p.has_personal_data() {
            self.send_wlm_personal_message(p);
        }
    }

    fn send_wlm_personal_message(&mut self, p: &Presence) {
        let who = self.dialect.presence_handle(&p.handle, NETWORK_PASSPORT);
        let xml = personal_data_xml(p);
        self.conn
            .send_payload(&format!("UBX {who}"), xml.as_bytes());
    }

    /// `UUX`: `<Data>` (personal message, media; `MachineGuid` and the
    /// WLM 2009 extras ignored) as in MSNP11; `<EndpointData>` and
    /// `<PrivateEndpointData>` describe an endpoint, which only matters
    /// with MPOP, so they are accepted and not stored.
    pub(super) async fn wlm_uux(&mut self, trid: u32, cmd: &Command) -> Flow {
        let payload = cmd.payload.as_deref().unwrap_or_default();
        let text = String::from_utf8_lossy(payload);
        let text = text.trim_start();
        if text.starts_with("<EndpointData") || text.starts_with("<PrivateEndpointData") {
            self.conn.send_payload(&format!("UUX {trid}"), b"");
            return Flow::Continue;
        }
        self.uux(trid, cmd).await
    }

    /// Renders queued hub events in the MSNP13+ forms.
    pub(in crate::server::notification) fn render_wlm_events(
        &mut self,
        session: &Session,
        events: Vec<SessionEvent>,
    ) -> Flow {
        let d = self.dialect;
        for event in events {
            match event {
                SessionEvent::ContactPresence(p) if self.presence_started => {
                    self.conn
                        .send_line(&format!("NLN {}", presence_fields(&p, d)));
                }
                SessionEvent::ContactPersonalMessage(p) if self.presence_started => {
                    self.send_wlm_personal_message(&p)
                }
                SessionEvent::ContactOffline(handle) if self.presence_started => {
                    self.conn.send_line(&offline_line(&handle, d));
                }
                SessionEvent::AddedBy {
                    handle,
                    friendly_name,
                    ..
                } if self.synced => {
                    match membership_document(&handle, Lists::RL, Some(&friendly_name)) {
                        Some(xml) => self.conn.send_payload("ADL 0", xml.as_bytes()),
                        None => tracing::warn!(user = %session.handle, contact = %handle,
                            "reverse-list notice not sent: handle has no domain"),
                    }
                }
                SessionEvent::RemovedBy { handle, .. } if self.synced => {
                    match membership_document(&handle, Lists::RL, None) {
                        Some(xml) => self.conn.send_payload("RML 0", xml.as_bytes()),
                        None => tracing::warn!(user = %session.handle, contact = %handle,
                            "reverse-list notice not sent: handle has no domain"),
                    }
                }
                SessionEvent::Invited(inv) => {
                    let address = self.ctx.config.switchboard_address();
                    let tail = if d.has_fqy() { " 1" } else { "" };
                    self.conn.send_line(&format!(
                        "RNG {} {address} CKI {} {} {} U messenger.hotmail.com{tail}",
                        inv.conversation_id,
                        inv.cookie,
                        inv.inviter_handle,
                        encoded(&inv.inviter_name)
                    ));
                }
                SessionEvent::Disconnect(reason) => {
                    let (line, why) = match reason {
                        DisconnectReason::SignedInElsewhere => ("OUT OTH", "signed in elsewhere"),
                        DisconnectReason::ServerShutdown => ("OUT SSD", "server shutting down"),
                    };
                    self.conn.send_line(line);
                    tracing::info!(user = %session.handle, reason = why, "session ended by the server");
                    return Flow::Close;
                }
                // Phone numbers live in the address book from MSNP13 (no
                // BPR); presence before the first CHG is superseded by the
                // burst, as in the older dialects.
                _ => {}
            }
        }
        Flow::Continue
    }
}
