//! One MSN user's chat with one IRC nick or channel: the switchboard
//! conversation behind it, opened from either side.
//!
//! A chat task owns the conversation's bridge endpoint. Messages from IRC
//! wait in `pending` until the MSN user has joined (after `RNG`/`ANS`);
//! what cannot be delivered goes to the persistent inbox for the next
//! sign-in, and the IRC sender is told. Messages from MSN participants are
//! queued for their IRC connections.

use super::IrcNetwork;
use crate::core::conversation::{
    Conversation, ConversationEvent, EndpointOutbox, ParticipantInfo, Receipts,
};
use crate::core::outbox::Outbox;
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Capabilities reported for IRC users and channels (notification.md §3.1).
pub const BRIDGED_CAPS: u32 = 0x4000_0000;

pub enum ChatInput {
    /// A message from IRC (already in MSN form), with the nick to tell if
    /// it cannot be delivered.
    Irc {
        text: String,
        reply_to: Option<String>,
    },
    /// A message from the persistent inbox; the row is deleted once delivered.
    Inbox { text: String, id: i64 },
    /// The MSN user invited the contact (`CAL`): the bridge joined already.
    Attach(Attached),
    /// A bridge notice for the MSN user.
    System(String),
    /// The MSN user signed out: stop waiting for them to answer an invitation.
    SignedOut,
}

pub struct Attached {
    pub conversation: Arc<Conversation>,
    pub endpoint: u64,
    pub outbox: EndpointOutbox,
    pub me: Arc<ParticipantInfo>,
    /// Whether the chat's MSN user is in the conversation yet.
    pub owner_joined: bool,
}

struct Pending {
    text: String,
    reply_to: Option<String>,
    inbox_id: Option<i64>,
}

/// The sending side of a chat task.
#[derive(Clone)]
pub struct ChatHandle {
    pub tx: mpsc::UnboundedSender<ChatInput>,
}

pub struct Chat {
    pub net: Arc<IrcNetwork>,
    pub local: String,
    pub contact: String,
    pub rx: mpsc::UnboundedReceiver<ChatInput>,
    attached: Option<Attached>,
    pending: VecDeque<Pending>,
    join_deadline: Option<Instant>,
    /// Failed attempts to open a conversation for the current pending messages.
    failures: u32,
}

/// Longest text put in one MSN message (leaves room for the MIME headers).
const MAX_MSN_TEXT: usize = 1400;
/// How long the MSN client may take to answer an invitation.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
/// A chat with no conversation and nothing pending ends after this.
const IDLE_END: Duration = Duration::from_secs(60);

impl Chat {
    pub fn new(
        net: Arc<IrcNetwork>,
        local: String,
        contact: String,
        rx: mpsc::UnboundedReceiver<ChatInput>,
    ) -> Chat {
        Chat {
            net,
            local,
            contact,
            rx,
            attached: None,
            pending: VecDeque::new(),
            join_deadline: None,
            failures: 0,
        }
    }

    pub async fn run(mut self) {
        let mut shutdown = self.net.shared.shutdown.clone();
        let mut idle_since = Instant::now();
        loop {
            self.flush().await;
            if self.attached.is_some() || !self.pending.is_empty() {
                idle_since = Instant::now();
            }
            let outbox = self.attached.as_ref().map(|a| a.outbox.clone());
            let join_deadline = self.join_deadline;
            tokio::select! {
                input = self.rx.recv() => match input {
                    Some(input) => self.input(input).await,
                    None => break,
                },
                _ = async { match &outbox { Some(o) => o.notified().await, None => std::future::pending().await } } => {
                    self.conversation_events().await;
                }
                _ = async { match join_deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {
                    tracing::info!(user = %self.local, contact = %self.contact, "MSN client did not answer the invitation");
                    self.detach();
                    self.failures += 1;
                    self.park().await;
                }
                _ = tokio::time::sleep_until(idle_since + IDLE_END), if self.attached.is_none() && self.pending.is_empty() => {
                    if self.net.end_chat_if_idle(&self.local, &self.contact, &mut self.rx) {
                        return;
                    }
                    idle_since = Instant::now();
                }
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        break;
                    }
                }
            }
        }
        // Shutting down: keep what was not delivered for the next sign-in.
        self.detach();
        self.park().await;
    }

    async fn input(&mut self, input: ChatInput) {
        match input {
            ChatInput::Irc { text, reply_to } => {
                // An MSN payload must stay within 1664 bytes (switchboard.md
                // §6); only servers with long lines (IRCv3) come near it.
                let pieces = if text.len() > MAX_MSN_TEXT {
                    super::text::split(&text, MAX_MSN_TEXT)
                } else {
                    vec![text]
                };
                for text in pieces {
                    self.pending.push_back(Pending {
                        text,
                        reply_to: reply_to.clone(),
                        inbox_id: None,
                    });
                }
            }
            ChatInput::Inbox { text, id } => self.pending.push_back(Pending {
                text,
                reply_to: None,
                inbox_id: Some(id),
            }),
            ChatInput::System(text) => self.pending.push_back(Pending {
                text: format!("[msngate] {text}"),
                reply_to: None,
                inbox_id: None,
            }),
            ChatInput::SignedOut => {
                if self.attached.as_ref().is_some_and(|a| !a.owner_joined) {
                    self.detach();
                    self.failures = 2;
                }
            }
            ChatInput::Attach(attached) => {
                self.detach();
                self.failures = 0;
                self.attached = Some(attached);
                // Messages already sent to the conversation's outbox before
                // this task took it are picked up here.
                self.conversation_events().await;
            }
        }
    }

    /// Relays pending messages once the MSN user is in the conversation,
    /// opening one (an invitation) when there is none.
    async fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        if self.attached.is_none() {
            if self.failures < 2 {
                self.open().await;
            }
            if self.attached.is_none() {
                self.park().await;
                return;
            }
        }
        let Some(a) = self.attached.as_ref().filter(|a| a.owner_joined) else {
            return;
        };
        let (conversation, endpoint, me) = (a.conversation.clone(), a.endpoint, a.me.clone());
        while let Some(p) = self.pending.front() {
            let payload = Bytes::from(msnp::mime::text_message(&p.text, None));
            let delivery = conversation.relay(endpoint, &me, &payload, Some(&self.local));
            if delivery.delivered == 0 {
                // The MSN user's switchboard connection went away: open a new one.
                self.detach();
                self.failures += 1;
                return;
            }
            if let Some(id) = p.inbox_id
                && let Err(e) = self.net.shared.db.inbox_delete(id).await
            {
                tracing::warn!(error = %e, "cannot delete a delivered inbox row; it may be delivered again");
            }
            self.pending.pop_front();
            self.failures = 0;
        }
    }

    /// Creates a conversation with the contact in it and rings the MSN user.
    async fn open(&mut self) {
        let hub = self.net.shared.hub.clone();
        let me = self.net.participant(&self.contact);
        let conversation = hub.conversations.create();
        let endpoint = hub.conversations.new_endpoint_id();
        let outbox: EndpointOutbox = Arc::new(Outbox::new(hub.settings().max_queued_events));
        if conversation
            .join(
                endpoint,
                me.clone(),
                outbox.clone(),
                Receipts::Custodian,
                false,
            )
            .is_err()
        {
            self.failures += 1;
            return;
        }
        match hub
            .invite_local(&conversation, me.clone(), &self.local)
            .await
        {
            Ok(()) => {
                self.attached = Some(Attached {
                    conversation,
                    endpoint,
                    outbox,
                    me,
                    owner_joined: false,
                });
                self.join_deadline = Some(Instant::now() + JOIN_TIMEOUT);
            }
            Err(_) => {
                if conversation.leave(endpoint, false) {
                    hub.conversations.forget_if_closed(conversation.id);
                }
                // Offline, hidden or blocking: keep it for later.
                self.failures = 2;
            }
        }
    }

    /// Moves pending messages to the persistent inbox and tells IRC senders.
    async fn park(&mut self) {
        let mut told = Vec::new();
        while let Some(p) = self.pending.pop_front() {
            if p.inbox_id.is_some() {
                continue;
            }
            if p.text.starts_with("[msngate] ") && p.reply_to.is_none() {
                // Bridge notices are only useful now.
                continue;
            }
            let name = self
                .net
                .participant(&self.contact)
                .friendly_name
                .to_string();
            match self
                .net
                .shared
                .db
                .inbox_add(
                    &self.local,
                    &self.net.config.name,
                    &self.contact,
                    &name,
                    &p.text,
                )
                .await
            {
                Ok(()) => {
                    if let Some(nick) = p.reply_to
                        && !told.contains(&nick)
                    {
                        self.net.tell_offline(&self.local, &nick);
                        told.push(nick);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, user = %self.local, "cannot keep an IRC message for later");
                    crate::metrics::Metrics::inc(&self.net.shared.metrics.bridge_delivery_failures);
                    if let Some(nick) = p.reply_to {
                        self.net.tell_undelivered(&self.local, &nick);
                    }
                }
            }
        }
        self.failures = 0;
    }

    fn detach(&mut self) {
        self.join_deadline = None;
        if let Some(a) = self.attached.take() {
            a.outbox.close();
            if a.conversation.leave(a.endpoint, false) {
                self.net
                    .shared
                    .hub
                    .conversations
                    .forget_if_closed(a.conversation.id);
            }
        }
    }

    async fn conversation_events(&mut self) {
        let Some(a) = self.attached.as_mut() else {
            return;
        };
        let mut events = Vec::new();
        a.outbox.drain_into(&mut events);
        let conversation = a.conversation.clone();
        for event in events {
            match event {
                ConversationEvent::Joined(p) => {
                    if p.handle.eq_ignore_ascii_case(&self.local)
                        && let Some(a) = self.attached.as_mut()
                    {
                        a.owner_joined = true;
                        self.join_deadline = None;
                    }
                }
                ConversationEvent::Left { handle, .. } => {
                    let owner_left = handle.eq_ignore_ascii_case(&self.local);
                    let msn_left = conversation
                        .participants()
                        .iter()
                        .any(|p| !self.net.owns_handle(&p.handle));
                    if owner_left || !msn_left {
                        self.detach();
                        return;
                    }
                }
                ConversationEvent::Message {
                    from,
                    payload,
                    custody,
                } => {
                    if self.net.owns_handle(&from.handle) {
                        continue;
                    }
                    let notice = self
                        .net
                        .outgoing(&from.handle, &self.contact, &payload)
                        .await;
                    // Stored in the IRC queue (or deliberately not bridged,
                    // like typing): the sender's ACK may go out.
                    if let Some(custody) = custody {
                        if notice.is_none() {
                            custody.accept();
                        } else {
                            custody.refuse();
                        }
                    }
                    if let Some(notice) = notice
                        && let Some(a) = self.attached.as_ref()
                    {
                        // An invitation also gets its decline, so that the
                        // client stops waiting for an answer.
                        if let Some(cancel) = msnp::mime::decline_unsupported_invitation(&payload) {
                            a.conversation.relay(
                                a.endpoint,
                                &a.me,
                                &Bytes::from(cancel),
                                Some(&from.handle),
                            );
                        }
                        let text = Bytes::from(msnp::mime::text_message(
                            &format!("[msngate] {notice}"),
                            None,
                        ));
                        a.conversation
                            .relay(a.endpoint, &a.me, &text, Some(&from.handle));
                    }
                }
            }
        }
        if self
            .attached
            .as_ref()
            .is_some_and(|a| a.outbox.has_overflowed())
        {
            tracing::warn!(user = %self.local, contact = %self.contact, "bridge endpoint fell behind; leaving the conversation");
            self.detach();
        }
    }
}
