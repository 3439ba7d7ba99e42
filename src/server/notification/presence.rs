//! Presence: CHG, the ILN burst, UUX, CHL/QRY, and rendering hub events
//! (NLN, FLN, UBX, reverse-list notices, RNG, OUT) in the client's dialect.

use super::{Flow, NsConnection, decoded, encoded};
use crate::core::events::{DisconnectReason, SessionEvent};
use crate::core::hub::HubError;
use crate::core::presence::{NowPlaying, Presence, Status};
use msnp::codec::Command;
use msnp::dialect::Dialect;
use msnp::error::ErrorCode;
use std::sync::Arc;
use std::time::Instant;

pub(crate) fn status_from_code(code: &str) -> Option<Status> {
    Some(match code {
        "NLN" => Status::Online,
        "BSY" => Status::Busy,
        "IDL" => Status::Idle,
        "BRB" => Status::BeRightBack,
        "AWY" => Status::Away,
        "PHN" => Status::OnThePhone,
        "LUN" => Status::OutToLunch,
        "HDN" => Status::Hidden,
        _ => return None,
    })
}

pub(crate) fn status_code(status: Status) -> &'static str {
    match status {
        Status::Online => "NLN",
        Status::Busy => "BSY",
        Status::Idle => "IDL",
        Status::BeRightBack => "BRB",
        Status::Away => "AWY",
        Status::OnThePhone => "PHN",
        Status::OutToLunch => "LUN",
        Status::Hidden => "HDN",
        Status::Offline => "FLN",
    }
}

/// `status handle name [caps] [msnobj]` as `ILN`/`NLN` carry it in `dialect`.
pub(crate) fn presence_fields(p: &Presence, dialect: Dialect) -> String {
    let mut line = format!(
        "{} {} {}",
        status_code(p.status),
        p.handle,
        encoded(&p.friendly_name)
    );
    if dialect.has_capabilities() {
        line.push_str(&format!(" {}", p.capabilities));
    }
    if dialect.has_msn_objects()
        && let Some(avatar) = p.avatar.as_deref().filter(|a| !a.is_empty())
    {
        line.push(' ');
        line.push_str(&encoded(avatar));
    }
    line
}

/// The `UBX` document for a contact's personal message and media.
pub(crate) fn personal_data_xml(p: &Presence) -> String {
    // An MSN client's own rendering is kept as it was; other networks'
    // text gets the simplest layout.
    let media = match &p.now_playing {
        Some(n) => match &n.msn_form {
            Some(form) => form.to_string(),
            None => msnp::psm::CurrentMedia::from_text(&n.category, &n.text).render(),
        },
        None => String::new(),
    };
    msnp::psm::document_with(&p.personal_message, &media)
}

/// What an MSN client's `CurrentMedia` means, network-neutral.
fn now_playing_of(media: &msnp::psm::CurrentMedia) -> NowPlaying {
    NowPlaying {
        category: media.category.as_str().into(),
        text: media.display().into(),
        msn_form: Some(media.render().into()),
    }
}

impl NsConnection {
    pub(super) async fn chg(&mut self, trid: u32, cmd: &Command) -> Flow {
        let Some(session) = self.session.clone() else {
            return Flow::Close;
        };
        let Some(code) = cmd.arg(1) else {
            return Flow::Close;
        };
        let Some(status) = status_from_code(code) else {
            return self.reply_error(ErrorCode::InvalidParameter, trid);
        };
        let capabilities = if self.dialect.has_capabilities() {
            match cmd.arg(2) {
                Some(c) => match c.parse::<u32>() {
                    Ok(c) => c,
                    Err(_) => return self.reply_error(ErrorCode::InvalidParameter, trid),
                },
                None => 0,
            }
        } else {
            0
        };
        let avatar_raw = if self.dialect.has_msn_objects() {
            cmd.arg(3).filter(|o| *o != "0")
        } else {
            None
        };
        let current = session.presence();
        let changes_something = current.status != status
            || current.capabilities != capabilities
            || current.avatar.as_deref() != avatar_raw.map(decoded).as_deref();
        if changes_something && self.presence_started && !self.rate.allow() {
            return self.reply_error(ErrorCode::RateLimited, trid);
        }
        // Presence queued before the first CHG is superseded by the ILN burst:
        // drop it now, so it is not rendered after the burst in this wake-up.
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
        let mut echo = format!("CHG {trid} {code}");
        if self.dialect.has_capabilities() {
            echo.push_str(&format!(" {capabilities}"));
            if let Some(raw) = avatar_raw {
                echo.push(' ');
                echo.push_str(raw);
            }
        }
        self.conn.send_line(&echo);
        if !self.presence_started {
            self.presence_started = true;
            match self.ctx.hub.initial_presence(&session).await {
                Ok(contacts) => {
                    for p in contacts {
                        self.conn.send_line(&format!(
                            "ILN {trid} {}",
                            presence_fields(&p, self.dialect)
                        ));
                        self.send_personal_message(&p, false);
                    }
                }
                Err(e) => {
                    tracing::error!(user = %session.handle, error = %e, "initial presence failed")
                }
            }
            if self.ctx.config.msn.challenges && self.dialect.has_challenges() {
                let challenge = msnp::auth::new_challenge(rand::random::<u64>());
                self.conn.send_line(&format!("CHL 0 {challenge}"));
                self.challenge = Some((challenge, Instant::now()));
            }
        }
        Flow::Continue
    }

    /// `UBX` for a contact. An empty message is sent only as a change (it
    /// clears the old one); an `ILN` is followed only by a message that exists.
    fn send_personal_message(&mut self, p: &Presence, changed: bool) {
        if self.dialect.has_personal_message() && (changed || p.has_personal_data()) {
            let xml = personal_data_xml(p);
            self.conn
                .send_payload(&format!("UBX {}", p.handle), xml.as_bytes());
        }
    }

    pub(super) async fn uux(&mut self, trid: u32, cmd: &Command) -> Flow {
        let Some(session) = self.session.clone() else {
            return Flow::Close;
        };
        let payload = cmd.payload.clone().unwrap_or_default();
        let Some(data) = msnp::psm::parse(&payload) else {
            tracing::info!(peer = %self.conn.peer, "closing: malformed UUX document");
            return Flow::Close;
        };
        if !self.rate.allow() {
            return self.reply_error(ErrorCode::RateLimited, trid);
        }
        let playing = data.media.as_ref().map(|m| Arc::new(now_playing_of(m)));
        if let Err(e) = self
            .ctx
            .hub
            .set_personal_message(&session, &data.message, playing)
            .await
        {
            tracing::error!(user = %session.handle, error = %e, "personal message change failed");
            // A refused write is the database's error (501), as for lists.
            let code = match e {
                HubError::Store(_) => ErrorCode::DatabaseError,
                HubError::List(_) => ErrorCode::InternalError,
            };
            return self.reply_error(code, trid);
        }
        self.conn.send_payload(&format!("UUX {trid}"), b"");
        Flow::Continue
    }

    pub(super) fn qry(&mut self, trid: u32, cmd: &Command) -> Flow {
        let product = cmd.arg(1).unwrap_or("");
        let answer = cmd.payload.clone().unwrap_or_default();
        let ok = match self.challenge.take() {
            Some((challenge, _)) => {
                msnp::auth::verify_qry(&challenge, product, &answer, self.dialect.number())
            }
            None => false,
        };
        if ok {
            self.conn.send_line(&format!("QRY {trid}"));
            Flow::Continue
        } else {
            tracing::info!(peer = %self.conn.peer, product, "closing: challenge failed");
            self.conn.send_error(ErrorCode::ChallengeFailed, trid);
            Flow::Close
        }
    }

    /// Renders every queued hub event. Returns `Close` when the session must end.
    pub(super) fn render_events(&mut self) -> Flow {
        let Some(session) = self.session.clone() else {
            return Flow::Continue;
        };
        if session.outbox.has_overflowed() {
            tracing::warn!(user = %session.handle, queued = session.outbox.len(),
                unwritten_bytes = session.outbox.unwritten_bytes(),
                "closing: client is not reading its notifications");
            self.stuck = true;
            return Flow::Close;
        }
        let mut events = Vec::new();
        self.unwritten_bytes += session.outbox.drain_unwritten(&mut events);
        if self.dialect.has_soap_address_book() {
            return self.render_wlm_events(&session, events);
        }
        let d = self.dialect;
        for event in events {
            match event {
                SessionEvent::ContactPresence(p) if self.presence_started => {
                    self.conn
                        .send_line(&format!("NLN {}", presence_fields(&p, d)));
                }
                SessionEvent::ContactPersonalMessage(p) if self.presence_started => {
                    self.send_personal_message(&p, true)
                }
                SessionEvent::ContactOffline(handle) if self.presence_started => {
                    self.conn.send_line(&format!("FLN {handle}"));
                }
                SessionEvent::ContactPhone {
                    handle,
                    key,
                    value,
                    list_version,
                } if self.synced && d.has_phone_properties() => {
                    let value = match (&*key, value) {
                        (_, Some(v)) => format!(" {}", encoded(&v)),
                        ("MOB", None) => " N".to_string(),
                        (_, None) => String::new(),
                    };
                    let line = if d.uses_guids() {
                        format!("BPR {handle} {key}{value}")
                    } else {
                        format!("BPR {list_version} {handle} {key}{value}")
                    };
                    self.conn.send_line(&line);
                }
                SessionEvent::AddedBy {
                    handle,
                    friendly_name,
                    list_version,
                } if self.synced => {
                    let line = if d.uses_guids() {
                        format!("ADC 0 RL N={handle} F={}", encoded(&friendly_name))
                    } else {
                        format!(
                            "ADD 0 RL {list_version} {handle} {}",
                            encoded(&friendly_name)
                        )
                    };
                    self.conn.send_line(&line);
                }
                SessionEvent::RemovedBy {
                    handle,
                    list_version,
                } if self.synced => {
                    let line = if d.uses_guids() {
                        format!("REM 0 RL {handle}")
                    } else {
                        format!("REM 0 RL {list_version} {handle}")
                    };
                    self.conn.send_line(&line);
                }
                SessionEvent::Invited(inv) => {
                    let address = self.ctx.config.switchboard_address();
                    self.conn.send_line(&format!(
                        "RNG {} {address} CKI {} {} {}",
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
                // Before SYN / the first CHG the dump and the ILN burst carry
                // the current state, so earlier notices are superseded, not lost.
                _ => {}
            }
        }
        Flow::Continue
    }
}
