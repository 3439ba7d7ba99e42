//! Switchboard server: chat sessions (USR/ANS/IRO/CAL/JOI/MSG/ACK/NAK/BYE/OUT).
//!
//! Payloads are relayed byte for byte. `ACK` is sent only after the copies
//! are queued for every other participant; a participant that cannot take
//! a message (closed, or so far behind that it is being disconnected)
//! turns the sender's acknowledgement into `NAK`.

use crate::core::conversation::{Conversation, ConversationEvent, CookiePurpose, EndpointOutbox, ParticipantInfo};
use crate::core::events::Invitation;
use crate::core::handle;
use crate::core::outbox::Outbox;
use crate::server::Context;
use crate::server::connection::{Connection, ReadOutcome};
use msnp::codec::{Command, Decoder};
use msnp::dialect::Dialect;
use msnp::error::ErrorCode;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
    /// Removed by the server (idle): the others see `BYE handle 1`.
    Removed,
}

struct Joined {
    conversation: Arc<Conversation>,
    endpoint: u64,
    me: Arc<ParticipantInfo>,
    dialect: Dialect,
}

struct SbConnection {
    ctx: Context,
    conn: Connection,
    outbox: EndpointOutbox,
    joined: Option<Joined>,
    connected_at: Instant,
    last_message: Instant,
}

pub async fn handle(stream: TcpStream, peer: SocketAddr, ctx: Context) {
    let decoder = Decoder::client_to_server(ctx.config.msn.max_message_bytes);
    let now = Instant::now();
    let mut sb = Box::new(SbConnection {
        outbox: Arc::new(Outbox::new(ctx.config.msn.max_queued_events)),
        conn: Connection::new(stream, peer, decoder),
        ctx,
        joined: None,
        connected_at: now,
        last_message: now,
    });
    let flow = sb.run().await;
    sb.finish(flow == Flow::Removed).await;
}

fn participant_fields(p: &ParticipantInfo, dialect: Dialect) -> String {
    let mut s = format!("{} {}", p.handle, msnp::urlenc::encode(&p.friendly_name));
    if dialect.has_network_ids() {
        s.push_str(&format!(" {}", p.capabilities));
    }
    s
}

impl SbConnection {
    async fn run(&mut self) -> Flow {
        let mut shutdown = self.ctx.shutdown.clone();
        loop {
            loop {
                match self.conn.next_command() {
                    Ok(Some(cmd)) => {
                        let flow = Box::pin(self.dispatch(cmd)).await;
                        if flow != Flow::Continue {
                            return flow;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::info!(peer = %self.conn.peer, error = %e, "closing switchboard connection: framing violation");
                        return Flow::Close;
                    }
                }
            }
            if self.render_events() == Flow::Close {
                return Flow::Close;
            }
            if self.conn.flush().await.is_err() || self.ctx.shutting_down() {
                return Flow::Removed;
            }
            let deadline = self.deadline();
            tokio::select! {
                ready = self.conn.readable() => {
                    if ready.is_err() { return Flow::Close; }
                    match self.conn.read_available() {
                        Ok(ReadOutcome::Data | ReadOutcome::WouldBlock) => {}
                        Ok(ReadOutcome::Eof) | Err(_) => return Flow::Close,
                    }
                }
                _ = self.outbox.notified() => {}
                _ = tokio::time::sleep_until(deadline.into()) => {
                    if Instant::now() >= self.deadline() {
                        let removed = self.joined.is_some();
                        tracing::info!(peer = %self.conn.peer, "closing switchboard connection: timeout");
                        return if removed { Flow::Removed } else { Flow::Close };
                    }
                }
                _ = shutdown.changed() => {}
            }
        }
    }

    fn deadline(&self) -> Instant {
        let msn = &self.ctx.config.msn;
        match self.joined {
            None => self.connected_at + Duration::from_secs(msn.switchboard_auth_timeout_secs),
            Some(_) => self.last_message + Duration::from_secs(msn.switchboard_idle_timeout_secs),
        }
    }

    async fn finish(&mut self, removed_by_server: bool) {
        self.outbox.close();
        // Deliver what is already queued (e.g. the last messages) before closing.
        let _ = self.render_events();
        self.conn.shutdown().await;
        if let Some(j) = self.joined.take()
            && j.conversation.leave(j.endpoint, removed_by_server) {
                self.ctx.hub.conversations.forget_if_closed(j.conversation.id);
            }
    }

    fn render_events(&mut self) -> Flow {
        if self.outbox.has_overflowed() {
            tracing::warn!(peer = %self.conn.peer, "closing switchboard connection: client is not reading");
            return Flow::Close;
        }
        let Some(dialect) = self.joined.as_ref().map(|j| j.dialect) else { return Flow::Continue };
        let mut events = Vec::new();
        self.outbox.drain_into(&mut events);
        for event in events {
            match event {
                ConversationEvent::Joined(p) => self.conn.send_line(&format!("JOI {}", participant_fields(&p, dialect))),
                ConversationEvent::Left { handle, removed_by_server } => {
                    let line = if removed_by_server { format!("BYE {handle} 1") } else { format!("BYE {handle}") };
                    self.conn.send_line(&line);
                }
                ConversationEvent::Message { from, payload } => {
                    let head = format!("MSG {} {}", from.handle, msnp::urlenc::encode(&from.friendly_name));
                    self.conn.send_payload(&head, &payload);
                }
            }
        }
        Flow::Continue
    }

    async fn dispatch(&mut self, cmd: Command) -> Flow {
        if cmd.name == "OUT" {
            return Flow::Close;
        }
        let Some(trid) = cmd.trid() else {
            tracing::info!(peer = %self.conn.peer, command = %cmd.name, "closing switchboard connection: no transaction id");
            return Flow::Close;
        };
        match (cmd.name.as_str(), self.joined.is_some()) {
            ("USR", false) => self.usr(trid, &cmd),
            ("ANS", false) => self.ans(trid, &cmd),
            ("CAL", true) => self.cal(trid, &cmd).await,
            ("MSG", true) => self.msg(trid, &cmd),
            (name, _) => {
                tracing::info!(peer = %self.conn.peer, command = %name, "closing switchboard connection: command not valid now");
                Flow::Close
            }
        }
    }

    /// Admits the holder of a cookie, or answers 911 and closes.
    fn admit(&mut self, trid: u32, raw_handle: &str, cookie: &str) -> Option<(crate::core::conversation::Admission, Arc<ParticipantInfo>)> {
        let hub = self.ctx.hub.clone();
        let Some(handle) = handle::normalize(raw_handle) else {
            self.conn.send_error(ErrorCode::AuthFailed, trid);
            return None;
        };
        let admission = match hub.conversations.redeem_cookie(cookie, &handle) {
            Ok(a) => a,
            Err(e) => {
                tracing::info!(peer = %self.conn.peer, user = %handle, reason = %e, "switchboard admission refused");
                self.conn.send_error(ErrorCode::AuthFailed, trid);
                return None;
            }
        };
        let (name, caps) = match hub.session(&handle) {
            Some(s) => {
                let p = s.presence();
                (p.friendly_name.clone(), p.capabilities)
            }
            None => (handle.as_str().into(), 0),
        };
        Some((admission, Arc::new(ParticipantInfo { handle: handle.into(), friendly_name: name, capabilities: caps })))
    }

    fn usr(&mut self, trid: u32, cmd: &Command) -> Flow {
        let (Some(raw_handle), Some(cookie)) = (cmd.arg(1), cmd.arg(2)) else { return Flow::Close };
        let Some((admission, me)) = self.admit(trid, raw_handle, cookie) else { return Flow::Close };
        if admission.purpose != CookiePurpose::Create {
            self.conn.send_error(ErrorCode::AuthFailed, trid);
            return Flow::Close;
        }
        let dialect = Dialect::new(admission.context as u8).unwrap_or(Dialect::MIN);
        let conversation = self.ctx.hub.conversations.create();
        let endpoint = self.ctx.hub.conversations.new_endpoint_id();
        if conversation.join(endpoint, me.clone(), self.outbox.clone(), false).is_err() {
            return Flow::Close;
        }
        self.conn.send_line(&format!("USR {trid} OK {} {}", me.handle, msnp::urlenc::encode(&me.friendly_name)));
        self.joined = Some(Joined { conversation, endpoint, me, dialect });
        self.last_message = Instant::now();
        Flow::Continue
    }

    fn ans(&mut self, trid: u32, cmd: &Command) -> Flow {
        let (Some(raw_handle), Some(cookie), Some(session_id)) = (cmd.arg(1), cmd.arg(2), cmd.arg(3)) else { return Flow::Close };
        let Some((admission, me)) = self.admit(trid, raw_handle, cookie) else {
            return Flow::Close;
        };
        let CookiePurpose::Join { conversation_id } = admission.purpose else { return Flow::Close };
        if session_id.parse::<u32>().ok() != Some(conversation_id) {
            return Flow::Close;
        }
        let dialect = Dialect::new(admission.context as u8).unwrap_or(Dialect::MIN);
        let Some(conversation) = self.ctx.hub.conversations.get(conversation_id) else { return Flow::Close };
        let endpoint = self.ctx.hub.conversations.new_endpoint_id();
        let others = match conversation.join(endpoint, me.clone(), self.outbox.clone(), true) {
            Ok(others) => others,
            Err(e) => {
                tracing::info!(peer = %self.conn.peer, reason = %e, "switchboard join refused");
                return Flow::Close;
            }
        };
        let total = others.len();
        for (i, p) in others.iter().enumerate() {
            self.conn.send_line(&format!("IRO {trid} {} {total} {}", i + 1, participant_fields(p, dialect)));
        }
        self.conn.send_line(&format!("ANS {trid} OK"));
        self.joined = Some(Joined { conversation, endpoint, me, dialect });
        self.last_message = Instant::now();
        Flow::Continue
    }

    async fn cal(&mut self, trid: u32, cmd: &Command) -> Flow {
        let Some(raw) = cmd.arg(1) else { return Flow::Close };
        let Some(j) = self.joined.as_ref() else { return Flow::Close };
        let Some(invitee) = handle::normalize(raw) else {
            self.conn.send_error(ErrorCode::InvalidUsername, trid);
            return Flow::Continue;
        };
        let (conversation, me) = (j.conversation.clone(), j.me.clone());
        if *me.handle == *invitee {
            self.conn.send_error(ErrorCode::AlreadyThere, trid);
            return Flow::Continue;
        }
        let hub = self.ctx.hub.clone();
        let target = match hub.reachable(&me.handle, &invitee).await {
            Ok(s) => s,
            Err(_) => {
                self.conn.send_error(ErrorCode::NotOnline, trid);
                return Flow::Continue;
            }
        };
        let invitee: Arc<str> = invitee.into();
        match conversation.invite(&invitee) {
            Ok(()) => {}
            Err(crate::core::conversation::InviteError::AlreadyThere) => {
                self.conn.send_error(ErrorCode::AlreadyThere, trid);
                return Flow::Continue;
            }
            Err(crate::core::conversation::InviteError::Full) => {
                self.conn.send_error(ErrorCode::TooActive, trid);
                return Flow::Continue;
            }
            Err(crate::core::conversation::InviteError::Closed) => return Flow::Close,
        }
        let context = target.client_tag.load(Ordering::Relaxed);
        let cookie = hub.conversations.issue_cookie(invitee.clone(), CookiePurpose::Join { conversation_id: conversation.id }, context);
        let invitation = Invitation {
            conversation_id: conversation.id,
            cookie,
            inviter_handle: me.handle.clone(),
            inviter_name: me.friendly_name.clone(),
        };
        if !hub.ring(&target, invitation) {
            self.conn.send_error(ErrorCode::NotOnline, trid);
            return Flow::Continue;
        }
        self.conn.send_line(&format!("CAL {trid} RINGING {}", conversation.id));
        Flow::Continue
    }

    fn msg(&mut self, trid: u32, cmd: &Command) -> Flow {
        let Some(j) = self.joined.as_ref() else { return Flow::Close };
        let Some(payload) = cmd.payload.as_ref() else { return Flow::Close };
        let mode = cmd.arg(1).unwrap_or("");
        if !matches!(mode, "U" | "N" | "A" | "D" | "S") {
            tracing::info!(peer = %self.conn.peer, mode, "closing switchboard connection: unknown MSG mode");
            return Flow::Close;
        }
        if mode == "D" && msnp::mime::MimeMessage::parse(payload).is_none() {
            self.conn.send_error(ErrorCode::P2pError, trid);
            return Flow::Continue;
        }
        self.last_message = Instant::now();
        let delivery = j.conversation.relay(j.endpoint, &j.me, payload, None);
        let line = match (mode, delivery.complete()) {
            ("U", _) => None,
            ("N", true) => None,
            ("A" | "D" | "S", true) => Some(format!("ACK {trid}")),
            ("S", false) => None,
            _ => Some(format!("NAK {trid}")),
        };
        if let Some(line) = line {
            self.conn.send_line(&line);
        }
        Flow::Continue
    }
}
