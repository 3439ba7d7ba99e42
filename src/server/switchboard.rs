//! Switchboard server: chat sessions (USR/ANS/IRO/CAL/JOI/MSG/ACK/NAK/BYE/OUT).
//!
//! Payloads are relayed byte for byte. `ACK` is sent only after the copy of
//! every other MSN participant has been written to its socket and every
//! bridge in the chat has stored its copy; a participant that cannot take a
//! message (closed, so far behind that it is being disconnected, a client
//! that stopped reading, or a bridge that could not store it in time)
//! turns the sender's acknowledgement into `NAK`. The sender's connection
//! goes on meanwhile, and its replies keep the order of its messages.
//!
//! Memory per connection is bounded: what is queued for a client and not
//! yet written may not exceed `msn.max_queued_bytes`, and a client that
//! accepts no byte for `msn.write_timeout_secs` is removed (`BYE handle 1`
//! to the others).

use crate::core::conversation::{
    Admission, Conversation, ConversationEvent, CookiePurpose, Custody, EndpointOutbox,
    ParticipantInfo, Receipts, Settling,
};
use crate::core::handle;
use crate::core::hub::{CallError, Session};
use crate::core::outbox::Outbox;
use crate::server::Context;
use crate::server::connection::{Connection, ReadOutcome};
use msnp::codec::{Command, Decoder};
use msnp::dialect::Dialect;
use msnp::error::ErrorCode;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    /// The client left (`OUT`, EOF) or broke the protocol: the others see `BYE handle`.
    Close,
    /// Removed by the server (idle time-out, shutdown): the others see `BYE handle 1`.
    Removed,
    /// The client stopped reading (its queue overflowed, or it accepted
    /// nothing within the write deadline): removed like [`Flow::Removed`],
    /// without waiting for it to take what is queued.
    Stuck,
}

/// How long a closing connection may take to accept what is still queued for it.
const CLOSING_FLUSH_LIMIT: Duration = Duration::from_secs(5);

/// `CAL`s to one handle answered 217 before further ones get 713 (calling
/// too rapidly), as the original service did with someone who keeps calling
/// a user who blocks them (switchboard.md §4).
const UNREACHABLE_CALLS_BEFORE_713: u8 = 3;

/// How long a bridge may take to store a message before the sender gets `NAK`.
const CUSTODY_LIMIT: Duration = Duration::from_secs(20);

/// How many write deadlines an MSN recipient may take to confirm a copy.
/// It answers once the copy is written or its connection ends, and a
/// connection that accepts nothing for one deadline ends: this only bounds
/// one that keeps accepting a byte at a time.
const RECEIPT_DEADLINES: u32 = 4;

struct Joined {
    conversation: Arc<Conversation>,
    endpoint: u64,
    me: Arc<ParticipantInfo>,
    dialect: Dialect,
    /// The user's notification session, for the current friendly name.
    session: Weak<Session>,
}

struct SbConnection {
    ctx: Context,
    conn: Connection,
    outbox: EndpointOutbox,
    joined: Option<Joined>,
    connected_at: Instant,
    /// Last message the user sent or received in the session.
    last_message: Instant,
    /// An outbox wake-up was consumed while writing: render before waiting.
    events_pending: bool,
    /// The `MSG handle name` head last rendered, and whose it is.
    last_sender: Option<(Arc<ParticipantInfo>, String)>,
    /// Messages waiting for their recipients to confirm them, in the order
    /// they were sent: each yields its reply line (`ACK`/`NAK trid`), if the
    /// mode asks for one.
    awaiting_replies: VecDeque<AwaitingReply>,
    /// Bytes of events rendered into the output and not yet written.
    unwritten_bytes: usize,
    /// Confirmations owed for messages rendered and not yet written, with
    /// the output position where each copy ends: answered once the socket
    /// took the copy, refused if the connection ends first.
    unwritten_receipts: VecDeque<(u64, Custody)>,
    /// How long the client may accept no byte of pending output.
    write_timeout: Duration,
    /// Recipients of this client's messages whose queues are crowded: the
    /// client's further commands are not read until they have room (or
    /// are removed, at their write deadline at the latest).
    waiting_for_room: Vec<EndpointOutbox>,
    /// Handles this connection called in vain (217), with the count.
    unreachable_calls: Vec<(String, u8)>,
}

pub async fn handle(stream: TcpStream, peer: SocketAddr, ctx: Context) {
    let metrics = ctx.metrics.clone();
    let _connection = crate::metrics::GaugeGuard::new(&metrics.switchboard_connections);
    let decoder = Decoder::client_to_server(ctx.config.msn.max_message_bytes);
    let now = Instant::now();
    let mut sb = Box::new(SbConnection {
        outbox: Arc::new(Outbox::with_byte_limit(
            ctx.config.msn.max_queued_events,
            ctx.config.msn.max_queued_bytes,
        )),
        write_timeout: Duration::from_secs(ctx.config.msn.write_timeout_secs),
        unwritten_bytes: 0,
        unwritten_receipts: VecDeque::new(),
        waiting_for_room: Vec::new(),
        conn: Connection::new(stream, peer, decoder),
        ctx,
        joined: None,
        connected_at: now,
        last_message: now,
        events_pending: false,
        last_sender: None,
        awaiting_replies: VecDeque::new(),
        unreachable_calls: Vec::new(),
    });
    let flow = sb.run().await;
    sb.finish(flow).await;
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
        // One timer for the connection's life: it is moved earlier when the
        // deadline shrinks and re-armed lazily when it fires early.
        let mut armed = self.deadline();
        let timer = tokio::time::sleep_until(armed.into());
        tokio::pin!(timer);
        loop {
            while self.waiting_for_room.is_empty() {
                match self.conn.next_command() {
                    Ok(Some(cmd)) => {
                        let flow = if cmd.name == "MSG" && self.joined.is_some() {
                            self.msg(&cmd)
                        } else {
                            Box::pin(self.dispatch(cmd)).await
                        };
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
            let flow = self.render_events();
            if flow != Flow::Continue {
                return flow;
            }
            let flow = self.flush().await;
            if flow != Flow::Continue {
                return flow;
            }
            if self.ctx.shutting_down() {
                return Flow::Removed;
            }
            if std::mem::take(&mut self.events_pending) {
                continue;
            }
            let deadline = self.deadline();
            if deadline < armed {
                armed = deadline;
                timer.as_mut().reset(armed.into());
            }
            tokio::select! {
                ready = self.conn.readable(), if self.waiting_for_room.is_empty() => {
                    if ready.is_err() { return Flow::Close; }
                    match self.conn.read_available() {
                        Ok(ReadOutcome::Data | ReadOutcome::WouldBlock) => {}
                        Ok(ReadOutcome::Eof) | Err(_) => return Flow::Close,
                    }
                }
                _ = self.outbox.notified() => {}
                _ = &mut timer => {
                    let deadline = self.deadline();
                    if Instant::now() >= deadline {
                        tracing::info!(peer = %self.conn.peer, "closing switchboard connection: timeout");
                        return if self.joined.is_some() { Flow::Removed } else { Flow::Close };
                    }
                    armed = deadline;
                    timer.as_mut().reset(armed.into());
                }
                changed = shutdown.changed() => {
                    if changed.is_err() { return Flow::Removed; }
                }
                _ = room_at(&self.waiting_for_room), if !self.waiting_for_room.is_empty() => {
                    self.waiting_for_room.clear();
                }
                delivered = oldest_outcome(&mut self.awaiting_replies) => {
                    if let Some(settled) = self.awaiting_replies.pop_front() {
                        self.send_reply(settled.mode, settled.trid, delivered);
                    }
                    // Replies settled meanwhile go out in the same write.
                    while let Some(next) = self.awaiting_replies.front_mut()
                        && let Some(delivered) = next.settling.outcome_now()
                    {
                        if let Some(settled) = self.awaiting_replies.pop_front() {
                            self.send_reply(settled.mode, settled.trid, delivered);
                        }
                    }
                }
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

    /// Writes what is queued, then confirms the messages written. A client
    /// that does not read blocks the write; it is removed when it accepts
    /// nothing within the write deadline, or at once when its outbox
    /// overflows meanwhile.
    async fn flush(&mut self) -> Flow {
        let (outbox, peer) = (&self.outbox, self.conn.peer);
        let written = {
            let write = self.conn.flush(self.write_timeout);
            tokio::pin!(write);
            loop {
                tokio::select! {
                    biased;
                    written = &mut write => break written,
                    _ = outbox.notified() => {
                        if outbox.has_overflowed() {
                            tracing::warn!(peer = %peer, "closing switchboard connection: client is not reading");
                            return Flow::Stuck;
                        }
                        self.events_pending = true;
                    }
                }
            }
        };
        // Copies the socket took are delivered, even if the rest is stuck.
        self.confirm_written();
        match written {
            Ok(()) => Flow::Continue,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                tracing::warn!(peer = %peer, "closing switchboard connection: client is not reading (write deadline)");
                Flow::Stuck
            }
            Err(_) => Flow::Close,
        }
    }

    /// Confirms the copies the socket has taken (their senders may be told
    /// `ACK`); once everything rendered is written, its bytes leave the
    /// queue's budget.
    fn confirm_written(&mut self) {
        let written = self.conn.written_position();
        while let Some((end, _)) = self.unwritten_receipts.front()
            && *end <= written
        {
            if let Some((_, receipt)) = self.unwritten_receipts.pop_front() {
                receipt.accept();
            }
        }
        if !self.conn.has_pending_output() {
            self.outbox
                .written(std::mem::take(&mut self.unwritten_bytes));
            if self.unwritten_receipts.capacity() > 64 {
                self.unwritten_receipts = VecDeque::new();
            }
        }
    }

    async fn finish(&mut self, flow: Flow) {
        self.outbox.close();
        let removed_by_server = matches!(flow, Flow::Removed | Flow::Stuck);
        let Some(j) = self.joined.take() else {
            let _ =
                tokio::time::timeout(CLOSING_FLUSH_LIMIT, self.conn.shutdown(self.write_timeout))
                    .await;
            return;
        };
        // The others learn at once, however slowly this client reads.
        if j.conversation.leave(j.endpoint, removed_by_server) {
            self.ctx
                .hub
                .conversations
                .forget_if_closed(j.conversation.id);
        }
        if flow == Flow::Stuck {
            // Dropping the connection closes the socket; nothing more is
            // written, and what was not written is refused now (senders get
            // NAK), not whenever the last reference to the outbox goes.
            self.outbox.drain_into(&mut Vec::new());
            self.unwritten_receipts.clear();
            return;
        }
        // Deliver what was queued before the close (e.g. the last messages).
        self.render_queued(j.dialect);
        let _ =
            tokio::time::timeout(CLOSING_FLUSH_LIMIT, self.conn.flush(self.write_timeout)).await;
        self.confirm_written();
        // Anything not written by now, or queued after the close, cannot be
        // delivered: refused now.
        self.unwritten_receipts.clear();
        self.outbox.drain_into(&mut Vec::new());
        let _ =
            tokio::time::timeout(CLOSING_FLUSH_LIMIT, self.conn.shutdown(self.write_timeout)).await;
    }

    fn render_events(&mut self) -> Flow {
        if self.outbox.has_overflowed() {
            tracing::warn!(peer = %self.conn.peer, "closing switchboard connection: client is not reading");
            return Flow::Stuck;
        }
        if let Some(dialect) = self.joined.as_ref().map(|j| j.dialect) {
            self.render_queued(dialect);
        }
        Flow::Continue
    }

    fn render_queued(&mut self, dialect: Dialect) {
        let mut events = Vec::new();
        self.unwritten_bytes += self.outbox.drain_unwritten(&mut events);
        for event in events {
            match event {
                ConversationEvent::Joined(p) => self
                    .conn
                    .send_line(&format!("JOI {}", participant_fields(&p, dialect))),
                ConversationEvent::Left {
                    handle,
                    removed_by_server,
                } => {
                    let line = if removed_by_server {
                        format!("BYE {handle} 1")
                    } else {
                        format!("BYE {handle}")
                    };
                    self.conn.send_line(&line);
                }
                ConversationEvent::Message {
                    from,
                    payload,
                    custody,
                } => {
                    // Receiving counts as activity: a reader is not idle.
                    self.last_message = Instant::now();
                    let cached = self
                        .last_sender
                        .as_ref()
                        .filter(|(p, _)| Arc::ptr_eq(p, &from));
                    if cached.is_none() {
                        let head = format!(
                            "MSG {} {}",
                            from.handle,
                            msnp::urlenc::encode(&from.friendly_name)
                        );
                        self.last_sender = Some((from, head));
                    }
                    if let Some((_, head)) = &self.last_sender {
                        self.conn.send_payload(head, &payload);
                    }
                    if let Some(custody) = custody {
                        let end = self.conn.output_position();
                        self.unwritten_receipts.push_back((end, custody));
                    }
                }
            }
        }
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
            ("MSG", true) => self.msg(&cmd),
            (name, _) => {
                tracing::info!(peer = %self.conn.peer, command = %name, "closing switchboard connection: command not valid now");
                Flow::Close
            }
        }
    }

    /// Admits the holder of a cookie, or answers 911 (the caller closes).
    fn admit(
        &mut self,
        trid: u32,
        raw_handle: &str,
        cookie: &str,
    ) -> Option<(Admission, Arc<ParticipantInfo>, Weak<Session>)> {
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
        let (name, caps, session) = match hub.session(&handle) {
            Some(s) => {
                let p = s.presence();
                (p.friendly_name.clone(), p.capabilities, Arc::downgrade(&s))
            }
            None => (handle.as_str().into(), 0, Weak::new()),
        };
        let me = Arc::new(ParticipantInfo {
            handle: handle.into(),
            friendly_name: name,
            capabilities: caps,
        });
        Some((admission, me, session))
    }

    fn usr(&mut self, trid: u32, cmd: &Command) -> Flow {
        let (Some(raw_handle), Some(cookie)) = (cmd.arg(1), cmd.arg(2)) else {
            return Flow::Close;
        };
        let Some((admission, me, session)) = self.admit(trid, raw_handle, cookie) else {
            return Flow::Close;
        };
        if admission.purpose != CookiePurpose::Create {
            self.conn.send_error(ErrorCode::AuthFailed, trid);
            return Flow::Close;
        }
        let dialect = Dialect::new(admission.context as u8).unwrap_or(Dialect::MIN);
        let conversation = self.ctx.hub.conversations.create();
        let endpoint = self.ctx.hub.conversations.new_endpoint_id();
        if conversation
            .join(
                endpoint,
                me.clone(),
                self.outbox.clone(),
                Receipts::Written,
                false,
            )
            .is_err()
        {
            return Flow::Close;
        }
        self.conn.send_line(&format!(
            "USR {trid} OK {} {}",
            me.handle,
            msnp::urlenc::encode(&me.friendly_name)
        ));
        self.joined = Some(Joined {
            conversation,
            endpoint,
            me,
            dialect,
            session,
        });
        self.last_message = Instant::now();
        Flow::Continue
    }

    fn ans(&mut self, trid: u32, cmd: &Command) -> Flow {
        let (Some(raw_handle), Some(cookie), Some(session_id)) =
            (cmd.arg(1), cmd.arg(2), cmd.arg(3))
        else {
            return Flow::Close;
        };
        let Some((admission, me, session)) = self.admit(trid, raw_handle, cookie) else {
            return Flow::Close;
        };
        let CookiePurpose::Join { conversation_id } = admission.purpose else {
            // A cookie for starting a session is not an invitation.
            self.conn.send_error(ErrorCode::AuthFailed, trid);
            return Flow::Close;
        };
        if session_id.parse::<u32>().ok() != Some(conversation_id) {
            return Flow::Close;
        }
        let dialect = Dialect::new(admission.context as u8).unwrap_or(Dialect::MIN);
        let Some(conversation) = self.ctx.hub.conversations.get(conversation_id) else {
            return Flow::Close;
        };
        let endpoint = self.ctx.hub.conversations.new_endpoint_id();
        let others = match conversation.join(
            endpoint,
            me.clone(),
            self.outbox.clone(),
            Receipts::Written,
            true,
        ) {
            Ok(others) => others,
            Err(e) => {
                tracing::info!(peer = %self.conn.peer, reason = %e, "switchboard join refused");
                return Flow::Close;
            }
        };
        let total = others.len();
        for (i, p) in others.iter().enumerate() {
            self.conn.send_line(&format!(
                "IRO {trid} {} {total} {}",
                i + 1,
                participant_fields(p, dialect)
            ));
        }
        self.conn.send_line(&format!("ANS {trid} OK"));
        self.joined = Some(Joined {
            conversation,
            endpoint,
            me,
            dialect,
            session,
        });
        self.last_message = Instant::now();
        Flow::Continue
    }

    async fn cal(&mut self, trid: u32, cmd: &Command) -> Flow {
        let Some(raw) = cmd.arg(1) else {
            return Flow::Close;
        };
        let Some(j) = self.joined.as_ref() else {
            return Flow::Close;
        };
        let Some(invitee) = handle::normalize(raw) else {
            self.conn.send_error(ErrorCode::InvalidUsername, trid);
            return Flow::Continue;
        };
        let (conversation, me) = (j.conversation.clone(), j.me.clone());
        // 215 (self, already in, already invited) comes before 217 (switchboard.md §4).
        if *me.handle == *invitee || conversation.is_member_or_invited(&invitee) {
            self.conn.send_error(ErrorCode::AlreadyThere, trid);
            return Flow::Continue;
        }
        let refused = self
            .unreachable_calls
            .iter()
            .find(|(h, _)| *h == invitee)
            .map_or(0, |(_, n)| *n);
        if refused >= UNREACHABLE_CALLS_BEFORE_713 {
            self.conn.send_error(ErrorCode::TooActive, trid);
            return Flow::Continue;
        }
        let code = match self.ctx.hub.call(&conversation, me, &invitee).await {
            Ok(()) => None,
            Err(CallError::Unreachable) => {
                match self
                    .unreachable_calls
                    .iter_mut()
                    .find(|(h, _)| *h == invitee)
                {
                    Some((_, n)) => *n += 1,
                    None => self.unreachable_calls.push((invitee.clone(), 1)),
                }
                Some(ErrorCode::NotOnline)
            }
            Err(CallError::AlreadyThere) => Some(ErrorCode::AlreadyThere),
            Err(CallError::Full) => Some(ErrorCode::TooActive),
            Err(CallError::Closed) => return Flow::Close,
        };
        if let Some(code) = code {
            self.conn.send_error(code, trid);
            return Flow::Continue;
        }
        self.conn
            .send_line(&format!("CAL {trid} RINGING {}", conversation.id));
        Flow::Continue
    }

    fn msg(&mut self, cmd: &Command) -> Flow {
        let Some(trid) = cmd.trid() else {
            tracing::info!(peer = %self.conn.peer, "closing switchboard connection: MSG without transaction id");
            return Flow::Close;
        };
        let Some(j) = self.joined.as_mut() else {
            return Flow::Close;
        };
        let Some(payload) = cmd.payload.as_ref() else {
            return Flow::Close;
        };
        // 'static: the reply is decided later, maybe after a bridge answered.
        let mode: &'static str = match cmd.arg(1).unwrap_or("") {
            "U" => "U",
            "N" => "N",
            "A" => "A",
            "D" => "D",
            "S" => "S",
            other => {
                tracing::info!(peer = %self.conn.peer, mode = other, "closing switchboard connection: unknown MSG mode");
                return Flow::Close;
            }
        };
        // P2P data (always mode D) goes only to the participant it names: in
        // a group chat the others, a bridge above all, have no use for it.
        let mut p2p_dest = None;
        if mode == "D" {
            match msnp::mime::MimeMessage::parse(payload) {
                Some(m) => p2p_dest = m.p2p_destination().map(str::to_string),
                None => {
                    self.conn.send_error(ErrorCode::P2pError, trid);
                    return Flow::Continue;
                }
            }
        }
        self.last_message = Instant::now();
        // Relays carry the sender's current friendly name (IRO/JOI keep the one at join time).
        if let Some(session) = j.session.upgrade() {
            let name = session.presence().friendly_name.clone();
            if !Arc::ptr_eq(&name, &j.me.friendly_name) && *name != *j.me.friendly_name {
                j.me = Arc::new(ParticipantInfo {
                    friendly_name: name,
                    ..(*j.me).clone()
                });
            }
        }
        let only_to = p2p_dest.as_deref();
        let mut delivery = if mode == "U" {
            j.conversation.relay(j.endpoint, &j.me, payload, only_to)
        } else {
            j.conversation
                .relay_confirmed(j.endpoint, &j.me, payload, only_to)
        };
        self.waiting_for_room.append(&mut delivery.crowded);
        if delivery.is_pending() || !self.awaiting_replies.is_empty() {
            // The recipients confirm it once written (or stored, for a
            // bridge); the connection goes on meanwhile, and the reply waits
            // for those of earlier messages.
            let written_limit = self.write_timeout * RECEIPT_DEADLINES;
            let limit = if delivery.awaits_custodians() {
                written_limit.max(CUSTODY_LIMIT)
            } else {
                written_limit
            };
            self.awaiting_replies.push_back(AwaitingReply {
                settling: delivery.settling(limit),
                mode,
                trid,
            });
            return Flow::Continue;
        }
        self.send_reply(mode, trid, delivery.queued_everywhere());
        Flow::Continue
    }

    /// Counts a message's outcome and sends its reply, if its mode has one.
    fn send_reply(&mut self, mode: &str, trid: u32, delivered: bool) {
        count_delivery(&self.ctx.metrics, delivered);
        let reply = match (mode, delivered) {
            ("U", _) | ("N", true) | ("S", false) => None,
            ("A" | "D" | "S", true) => Some("ACK"),
            _ => Some("NAK"),
        };
        if let Some(reply) = reply {
            self.conn.send_line(&format!("{reply} {trid}"));
        }
    }
}

/// Resolves once every one of `outboxes` has room (or is closed).
async fn room_at(outboxes: &[EndpointOutbox]) {
    for outbox in outboxes {
        outbox.wait_for_room().await;
    }
}

/// A message whose reply waits for its recipients' answers.
struct AwaitingReply {
    settling: Settling,
    /// `'static`: the mode is one of the five the protocol has.
    mode: &'static str,
    trid: u32,
}

/// The outcome of the oldest message still waiting for its recipients.
async fn oldest_outcome(awaiting: &mut VecDeque<AwaitingReply>) -> bool {
    match awaiting.front_mut() {
        Some(oldest) => oldest.settling.outcome().await,
        None => std::future::pending().await,
    }
}

fn count_delivery(metrics: &crate::metrics::Metrics, delivered: bool) {
    crate::metrics::Metrics::inc(if delivered {
        &metrics.messages_relayed
    } else {
        &metrics.messages_undelivered
    });
}
