//! Chats across the bridge.
//!
//! A *link* ties one live MSN conversation (switchboard session) to one
//! Matrix room. The bridge is a participant of the conversation once per
//! Matrix user in it (an *endpoint*; MSN clients see `JOI`/`IRO` for each),
//! all endpoints sharing one outbox. The room is the direct chat of an MSN
//! user and a Matrix user (persistent, reused), or a room of its own for a
//! multi-party chat, or the room a Matrix user invited a ghost into.
//!
//! Matrix → MSN goes through the inbox table: a message is stored (with its
//! event marked processed, atomically), then handed to the MSN user's
//! switchboard — ringing them (`RNG`) into a conversation first if needed,
//! or waiting until they sign in. A row is deleted only once the message was
//! queued for their client.

use super::queue::{Job, Origin, Target};
use super::{Inner, format, ids};
use crate::core::conversation::{
    Conversation, ConversationEvent, JoinError, ParticipantInfo, Receipts,
};
use crate::core::hub::Unreachable;
use crate::core::outbox::Outbox;
use bytes::Bytes;
use msnp::mime::{ImFormat, MimeMessage, PayloadKind};
use parking_lot::Mutex;
use ruma::OwnedUserId;
use ruma::api::client::typing::create_typing_event;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::api::{Actor, ApiError};
use super::db::InboxRow;

/// How long a rung MSN client has to join before the ring counts as unanswered.
const RING_TIMEOUT: Duration = Duration::from_secs(45);
/// Events one link may hold unread before its conversation calls it stuck.
const OUTBOX_LIMIT: usize = 10_000;
/// MSN clients show "is typing" for some seconds per notice: repeat it.
const TYPING_REPEAT: Duration = Duration::from_secs(4);
/// A Matrix typing notice never shows on MSN for longer than this.
const TYPING_MAX: Duration = Duration::from_secs(60);
/// How long a ghost shows typing after one MSN typing notice (clients send one every ~4 s).
const GHOST_TYPING: Duration = Duration::from_secs(6);
/// Text per MSN message: the whole payload must stay within 1664 bytes.
const MSN_TEXT_MAX: usize = 1400;

#[derive(Clone)]
struct Endpoint {
    id: u64,
    user_id: String,
    info: Arc<ParticipantInfo>,
}

struct LinkState {
    target: Target,
    room: Option<String>,
    endpoints: Vec<Endpoint>,
    /// MSN users rung into the conversation, and when.
    ringing: HashMap<String, Instant>,
    closed: bool,
}

pub(super) struct Link {
    conversation: Arc<Conversation>,
    outbox: Arc<Outbox<ConversationEvent>>,
    state: Mutex<LinkState>,
    created: Instant,
}

impl Link {
    fn target(&self) -> Target {
        self.state.lock().target.clone()
    }

    fn room(&self) -> Option<String> {
        self.state.lock().room.clone()
    }

    fn endpoint(&self, user_id: &str) -> Option<Endpoint> {
        self.state
            .lock()
            .endpoints
            .iter()
            .find(|e| e.user_id == user_id)
            .cloned()
    }

    fn is_endpoint_handle(&self, handle: &str) -> bool {
        self.state
            .lock()
            .endpoints
            .iter()
            .any(|e| &*e.info.handle == handle)
    }

    fn has_participant(&self, handle: &str) -> bool {
        self.conversation
            .participants()
            .iter()
            .any(|p| &*p.handle == handle)
    }

    fn is_closed(&self) -> bool {
        self.state.lock().closed
    }
}

#[derive(Default)]
pub(super) struct Chats {
    links: Mutex<HashMap<u32, Arc<Link>>>,
    /// Matrix users shown as typing on MSN: (conversation, user) → repeater.
    typing: Mutex<HashMap<(u32, String), tokio::task::AbortHandle>>,
    /// Last typing notice sent for a ghost in a room (MSN → Matrix).
    ghost_typing: Mutex<HashMap<(String, String), Instant>>,
    /// Conversation events taken from an outbox and not yet handled.
    in_hand: std::sync::atomic::AtomicUsize,
}

impl Chats {
    /// The room behind `target` became known (created by the queue).
    pub(super) fn room_resolved(&self, target: &Target, room: &str) {
        for link in self.links.lock().values() {
            let mut st = link.state.lock();
            if st.target == *target {
                st.room = Some(room.to_string());
            }
        }
    }

    fn by_conversation(&self, id: u32) -> Option<Arc<Link>> {
        self.links.lock().get(&id).cloned()
    }

    /// The live link for `room`, or for the direct chat `dm` (whose room may
    /// not be known to the link yet).
    fn find(&self, room: &str, dm: Option<&(String, String)>) -> Option<Arc<Link>> {
        let links = self.links.lock();
        let mut found: Option<&Arc<Link>> = None;
        for link in links.values() {
            let st = link.state.lock();
            if st.closed {
                continue;
            }
            let by_room = !room.is_empty() && st.room.as_deref() == Some(room);
            let by_dm = matches!((&st.target, dm), (Target::Dm { local, remote }, Some((l, r))) if local == l && remote == r);
            // Of several chats with the same person, the newest window is the one in use.
            if (by_room || by_dm) && found.is_none_or(|f| f.created < link.created) {
                found = Some(link);
            }
        }
        found.cloned()
    }

    /// Whether every MSN message accepted so far is in the outgoing queue
    /// (graceful shutdown waits for this before draining the queue).
    pub(super) fn settled(&self) -> bool {
        self.in_hand.load(std::sync::atomic::Ordering::Acquire) == 0
            && self.links.lock().values().all(|l| l.outbox.is_empty())
    }

    fn links_for_room(&self, room: &str) -> Vec<Arc<Link>> {
        self.links
            .lock()
            .values()
            .filter(|l| l.state.lock().room.as_deref() == Some(room))
            .cloned()
            .collect()
    }
}

fn excerpt(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= 60 {
        one_line
    } else {
        format!("{}…", one_line.chars().take(59).collect::<String>())
    }
}

/// Pointer identity of an event: every endpoint of a link gets its own copy
/// of each conversation event, in a row, in the shared outbox.
fn identity(event: &ConversationEvent) -> (usize, usize) {
    match event {
        ConversationEvent::Joined(p) => (Arc::as_ptr(p) as usize, 0),
        ConversationEvent::Left { handle, .. } => (Arc::as_ptr(handle) as *const u8 as usize, 1),
        ConversationEvent::Message { from, payload, .. } => {
            (Arc::as_ptr(from) as usize, payload.as_ptr() as usize)
        }
    }
}

impl Inner {
    /// An MSN user of this server (someone who gets a ghost), as opposed to
    /// a Matrix endpoint or another network's user.
    fn is_local(&self, handle: &str) -> bool {
        if ids::user_id_of_contact(handle).is_some() {
            return false;
        }
        self.ghost_names.lock().contains_key(handle)
            || self.hub().is_some_and(|h| h.session(handle).is_some())
    }

    fn new_link(
        self: &Arc<Self>,
        conversation: Arc<Conversation>,
        target: Target,
        room: Option<String>,
    ) -> Arc<Link> {
        let link = Arc::new(Link {
            conversation,
            outbox: Arc::new(Outbox::new(OUTBOX_LIMIT)),
            state: Mutex::new(LinkState {
                target,
                room,
                endpoints: Vec::new(),
                ringing: HashMap::new(),
                closed: false,
            }),
            created: Instant::now(),
        });
        self.chats
            .links
            .lock()
            .insert(link.conversation.id, link.clone());
        tokio::spawn(self.clone().consume(link.clone()));
        link
    }

    /// Puts Matrix user `user_id` into the link's conversation (once).
    fn add_endpoint(
        &self,
        link: &Arc<Link>,
        user_id: &str,
        require_existing: bool,
    ) -> Result<Endpoint, JoinError> {
        if let Some(ep) = link.endpoint(user_id) {
            return Ok(ep);
        }
        let (Some(hub), Some(handle)) = (self.hub(), ids::contact_handle(user_id)) else {
            return Err(JoinError::Closed);
        };
        let info = Arc::new(ParticipantInfo {
            handle: handle.into(),
            friendly_name: self.display_name_of(user_id).into(),
            capabilities: ids::MATRIX_CAPABILITIES,
        });
        let id = hub.conversations.new_endpoint_id();
        link.conversation.join(
            id,
            info.clone(),
            link.outbox.clone(),
            Receipts::Custodian,
            require_existing,
        )?;
        let ep = Endpoint {
            id,
            user_id: user_id.to_string(),
            info,
        };
        link.state.lock().endpoints.push(ep.clone());
        Ok(ep)
    }

    fn remove_endpoint(&self, link: &Arc<Link>, user_id: &str) {
        let ep = {
            let mut st = link.state.lock();
            let Some(pos) = st.endpoints.iter().position(|e| e.user_id == user_id) else {
                return;
            };
            st.endpoints.remove(pos)
        };
        self.stop_matrix_typing(link.conversation.id, user_id);
        if link.conversation.leave(ep.id, false)
            && let Some(hub) = self.hub()
        {
            hub.conversations.forget_if_closed(link.conversation.id);
        }
    }

    fn close_link(&self, link: &Arc<Link>) {
        let endpoints = {
            let mut st = link.state.lock();
            st.closed = true;
            std::mem::take(&mut st.endpoints)
        };
        self.chats.links.lock().remove(&link.conversation.id);
        link.outbox.close();
        for ep in endpoints {
            self.stop_matrix_typing(link.conversation.id, &ep.user_id);
            if link.conversation.leave(ep.id, false)
                && let Some(hub) = self.hub()
            {
                hub.conversations.forget_if_closed(link.conversation.id);
            }
        }
    }

    /// Reads the link's outbox: what MSN participants say and do.
    async fn consume(self: Arc<Self>, link: Arc<Link>) {
        let mut events = Vec::new();
        loop {
            tokio::select! {
                _ = link.outbox.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
            if link.is_closed() {
                return;
            }
            if link.outbox.has_overflowed() {
                tracing::error!(
                    conversation = link.conversation.id,
                    "Matrix side of a conversation fell behind; leaving it"
                );
                self.close_link(&link);
                return;
            }
            self.chats
                .in_hand
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            link.outbox.drain_into(&mut events);
            let mut pending = events.drain(..).peekable();
            while let Some(event) = pending.next() {
                // Copies for the link's other endpoints: one answer covers them.
                let id = identity(&event);
                while let Some(copy) = pending.next_if(|e| identity(e) == id) {
                    if let (
                        ConversationEvent::Message {
                            custody: Some(first),
                            ..
                        },
                        ConversationEvent::Message {
                            custody: Some(other),
                            ..
                        },
                    ) = (&event, &copy)
                    {
                        first.absorb(other);
                    }
                }
                self.on_conversation_event(&link, event).await;
            }
            drop(pending);
            self.chats
                .in_hand
                .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            let (unanswered, idle) = {
                let mut st = link.state.lock();
                let before = st.ringing.len();
                st.ringing.retain(|_, at| at.elapsed() < RING_TIMEOUT);
                (before > st.ringing.len(), st.ringing.is_empty())
            };
            if unanswered {
                tracing::info!(
                    conversation = link.conversation.id,
                    "an MSN user did not answer a ring; their messages keep waiting"
                );
            }
            let locals_left = link
                .conversation
                .participants()
                .iter()
                .any(|p| self.is_local(&p.handle));
            if !locals_left && idle && link.created.elapsed() > Duration::from_secs(10) {
                self.close_link(&link);
                return;
            }
        }
    }

    async fn on_conversation_event(self: &Arc<Self>, link: &Arc<Link>, event: ConversationEvent) {
        match event {
            ConversationEvent::Joined(info) => {
                if link.is_endpoint_handle(&info.handle) || !self.is_local(&info.handle) {
                    return;
                }
                link.state.lock().ringing.remove(&*info.handle);
                self.request_delivery(&info.handle);
                match link.target() {
                    Target::Dm { .. } => {
                        if link.conversation.participants().len() > 2 {
                            self.upgrade_to_group(link).await;
                        }
                    }
                    target => {
                        let by = link
                            .conversation
                            .participants()
                            .iter()
                            .find(|p| p.handle != info.handle && self.is_local(&p.handle))
                            .map(|p| p.handle.to_string());
                        match by {
                            Some(by) => {
                                self.enqueue(Job::Invite {
                                    target,
                                    by,
                                    user: self.ids.user_id(&info.handle),
                                })
                                .await
                            }
                            // Rung in by a Matrix user: the ghost is normally a member
                            // already (it accepted the invitation); join if not.
                            None => {
                                if let Some(room) = link.room()
                                    && !self
                                        .db
                                        .members(&room)
                                        .await
                                        .unwrap_or_default()
                                        .iter()
                                        .any(|m| m.as_str() == &*info.handle)
                                {
                                    self.enqueue(Job::Join {
                                        room,
                                        local: info.handle.to_string(),
                                        direct_with: None,
                                    })
                                    .await;
                                }
                            }
                        }
                    }
                }
            }
            ConversationEvent::Left { .. } => {}
            ConversationEvent::Message {
                from,
                payload,
                custody,
            } => {
                if link.is_endpoint_handle(&from.handle) || !self.is_local(&from.handle) {
                    return;
                }
                let stored = self.msn_message(link, &from, &payload).await;
                if let Some(custody) = custody {
                    if stored {
                        custody.accept();
                    } else {
                        custody.refuse();
                    }
                }
            }
        }
    }

    /// A direct chat became a multi-party one: it moves to a room of its own.
    async fn upgrade_to_group(self: &Arc<Self>, link: &Arc<Link>) {
        let locals: Vec<String> = link
            .conversation
            .participants()
            .iter()
            .filter(|p| self.is_local(&p.handle))
            .map(|p| p.handle.to_string())
            .collect();
        let job = {
            let mut st = link.state.lock();
            if !matches!(st.target, Target::Dm { .. }) || locals.is_empty() {
                return;
            }
            let key = format!("g{}", crate::core::tickets::random_hex());
            st.target = Target::Group { key: key.clone() };
            st.room = None;
            let remotes = st.endpoints.iter().map(|e| e.user_id.clone()).collect();
            Job::CreateGroup {
                key,
                creator: locals[0].clone(),
                locals,
                remotes,
            }
        };
        tracing::info!(
            conversation = link.conversation.id,
            "chat became multi-party; it gets a Matrix room of its own"
        );
        self.enqueue(job).await;
    }

    /// What an MSN participant sent, on its way to Matrix.
    async fn msn_message(
        self: &Arc<Self>,
        link: &Arc<Link>,
        from: &Arc<ParticipantInfo>,
        payload: &Bytes,
    ) -> bool {
        let local = from.handle.to_string();
        let target = link.target();
        let partner = link
            .state
            .lock()
            .endpoints
            .first()
            .map(|e| e.user_id.clone());
        let Some(msg) = MimeMessage::parse(payload) else {
            return false;
        };
        match msnp::mime::classify(payload) {
            PayloadKind::Text => {
                let Some(text) = msnp::mime::text_body(&msg) else {
                    return false;
                };
                let format = msg.header("X-MMS-IM-Format").map(ImFormat::parse);
                let (body, html) = format::msn_to_matrix(&text, format.as_ref());
                let mut content = serde_json::json!({"msgtype": "m.text", "body": body});
                if let Some(html) = html {
                    content["format"] = "org.matrix.custom.html".into();
                    content["formatted_body"] = html.into();
                }
                let origin = Origin {
                    local: local.clone(),
                    notify_as: partner.unwrap_or_else(|| self.ids.bot_user_id()),
                    excerpt: excerpt(&text),
                    room: None,
                };
                let stored = self
                    .enqueue_durable(Job::Send {
                        target,
                        from: local.clone(),
                        content,
                        origin: Some(origin),
                    })
                    .await;
                self.ghost_typing(link, &local, false).await;
                stored
            }
            PayloadKind::Typing => {
                self.ghost_typing(link, &local, true).await;
                true
            }
            PayloadKind::Nudge => {
                let body = if matches!(target, Target::Dm { .. }) {
                    "nudged you!"
                } else {
                    "sent a nudge!"
                };
                let content = serde_json::json!({"msgtype": "m.emote", "body": body});
                let origin = Origin {
                    local: local.clone(),
                    notify_as: partner.unwrap_or_else(|| self.ids.bot_user_id()),
                    excerpt: "(nudge)".into(),
                    room: None,
                };
                self.enqueue_durable(Job::Send {
                    target,
                    from: local,
                    content,
                    origin: Some(origin),
                })
                .await
            }
            PayloadKind::Invite => {
                // File transfers and other invitations have no Matrix side: decline
                // at once so the client does not wait (messages.md §12).
                if let Some(cancel) = msnp::mime::decline_unsupported_invitation(payload)
                    && let Some(ep) = link.state.lock().endpoints.first().cloned()
                {
                    link.conversation
                        .relay(ep.id, &ep.info, &Bytes::from(cancel), Some(&local));
                }
                // Not delivered: the sender gets NAK besides the decline.
                false
            }
            // Client capabilities, keep-alives, emoticon and P2P data are
            // between MSN clients: nothing for Matrix, and nothing to report.
            _ => true,
        }
    }

    /// MSN typing → the ghost types in the room for a few seconds.
    async fn ghost_typing(self: &Arc<Self>, link: &Arc<Link>, local: &str, typing: bool) {
        let room = match link.room() {
            Some(r) => Some(r),
            None => match link.target() {
                Target::Dm { local, remote } => {
                    self.db.dm_room(&local, &remote).await.ok().flatten()
                }
                _ => None,
            },
        };
        let Some(room) = room else { return };
        let key = (local.to_string(), room.clone());
        {
            let mut sent = self.chats.ghost_typing.lock();
            let last = sent.get(&key).copied();
            if typing {
                if last.is_some_and(|t| t.elapsed() < Duration::from_millis(2500)) {
                    return;
                }
                sent.insert(key, Instant::now());
            } else {
                // Only stop what is showing.
                if last.is_none_or(|t| t.elapsed() >= GHOST_TYPING) {
                    return;
                }
                sent.remove(&key);
            }
        }
        let (Ok(ghost), Ok(room_id)) = (
            OwnedUserId::try_from(self.ids.user_id(local)),
            ruma::OwnedRoomId::try_from(room.as_str()),
        ) else {
            return;
        };
        let state = if typing {
            create_typing_event::v3::Typing::Yes(create_typing_event::v3::TypingInfo::new(
                GHOST_TYPING,
            ))
        } else {
            create_typing_event::v3::Typing::No
        };
        let inner = self.clone();
        let local = local.to_string();
        tokio::spawn(async move {
            // A linked Matrix account types itself once it is in the room
            // (it joins with its first message); until then the ghost does.
            if let Ok(Some((puppet, token))) = inner.db.puppet(&local).await
                && let Ok(puppet) = OwnedUserId::try_from(puppet)
            {
                let request = create_typing_event::v3::Request::new(puppet, room_id.clone(), state);
                if inner.hs.send(request, Actor::Token(&token)).await.is_ok() {
                    return;
                }
            }
            let request = create_typing_event::v3::Request::new(ghost.clone(), room_id, state);
            match inner.hs.send(request, Actor::Ghost(&ghost)).await {
                Ok(_) => inner.after_ghost_action(&local),
                Err(e) => tracing::debug!(%local, error = %e, "ghost typing not shown"),
            }
        });
    }

    /// Matrix users typing in `room` (the full current list).
    pub(super) fn matrix_typing(self: &Arc<Self>, room: &str, users: &[String]) {
        for link in self.chats.links_for_room(room) {
            let endpoints = link.state.lock().endpoints.clone();
            for ep in endpoints {
                let key = (link.conversation.id, ep.user_id.clone());
                if !users.contains(&ep.user_id) {
                    self.stop_matrix_typing(link.conversation.id, &ep.user_id);
                    continue;
                }
                let mut typing = self.chats.typing.lock();
                if typing.get(&key).is_some_and(|h| !h.is_finished()) {
                    continue;
                }
                let link2 = link.clone();
                let task = tokio::spawn(async move {
                    let payload = Bytes::from(msnp::mime::typing_message(&ep.info.handle));
                    let until = Instant::now() + TYPING_MAX;
                    while Instant::now() < until && !link2.is_closed() {
                        link2.conversation.relay(ep.id, &ep.info, &payload, None);
                        tokio::time::sleep(TYPING_REPEAT).await;
                    }
                });
                typing.insert(key, task.abort_handle());
            }
        }
    }

    fn stop_matrix_typing(&self, conversation: u32, user_id: &str) {
        if let Some(h) = self
            .chats
            .typing
            .lock()
            .remove(&(conversation, user_id.to_string()))
        {
            h.abort();
        }
    }

    /// The hub asks a Matrix user into a conversation (a switchboard `CAL`).
    pub(super) async fn invite_remote(
        self: &Arc<Self>,
        conversation: Arc<Conversation>,
        inviter: Arc<ParticipantInfo>,
        remote: &str,
    ) -> Result<(), Unreachable> {
        let user_id = ids::user_id_of_contact(remote).ok_or(Unreachable)?;
        if self.ids.is_ours(&user_id) {
            return Err(Unreachable);
        }
        if let Err(true) = self.fetch_profile(&user_id).await {
            return Err(Unreachable); // no such Matrix user
        }
        let inviter_local = if self.is_local(&inviter.handle) {
            inviter.handle.to_string()
        } else {
            conversation
                .participants()
                .iter()
                .find(|p| self.is_local(&p.handle))
                .map(|p| p.handle.to_string())
                .ok_or(Unreachable)?
        };
        let (link, fresh) = match self.chats.by_conversation(conversation.id) {
            Some(link) => (link, false),
            None => {
                let participants = conversation.participants();
                let target = if participants.len() == 1 {
                    Target::Dm {
                        local: inviter_local.clone(),
                        remote: user_id.clone(),
                    }
                } else {
                    Target::Group {
                        key: format!("g{}", crate::core::tickets::random_hex()),
                    }
                };
                let room = match &target {
                    Target::Dm { local, remote } => {
                        self.db.dm_room(local, remote).await.ok().flatten()
                    }
                    _ => None,
                };
                (self.new_link(conversation.clone(), target, room), true)
            }
        };
        let target_before = link.target();
        self.add_endpoint(&link, &user_id, true)
            .map_err(|_| Unreachable)?;
        match (fresh, target_before) {
            (true, Target::Dm { local, remote }) => {
                self.enqueue(Job::EnsureDm { local, remote }).await
            }
            (true, Target::Group { key }) => {
                let locals: Vec<String> = conversation
                    .participants()
                    .iter()
                    .filter(|p| self.is_local(&p.handle))
                    .map(|p| p.handle.to_string())
                    .collect();
                self.enqueue(Job::CreateGroup {
                    key,
                    creator: inviter_local.clone(),
                    locals,
                    remotes: vec![user_id.clone()],
                })
                .await;
            }
            (false, Target::Dm { remote, .. }) if remote != user_id => {
                self.upgrade_to_group(&link).await
            }
            (false, Target::Dm { .. }) => {}
            (_, target) => {
                self.enqueue(Job::Invite {
                    target,
                    by: inviter_local.clone(),
                    user: user_id.clone(),
                })
                .await
            }
        }
        self.request_delivery(&inviter_local);
        Ok(())
    }

    /// Hands `local` what waits for them in the inbox, ringing them into a
    /// conversation where needed. Offline users keep their messages.
    pub(super) async fn deliver_inbox(self: &Arc<Self>, local: &str) -> Result<(), sqlx::Error> {
        let Some(hub) = self.hub() else { return Ok(()) };
        if !hub
            .session(local)
            .is_some_and(|s| s.presence().status.is_visible())
        {
            return Ok(());
        }
        let rows = self.db.inbox_for(local).await?;
        // Rows of a chat wait behind an earlier undelivered one (order).
        let mut waiting: HashSet<(String, String)> = HashSet::new();
        for row in rows {
            let dm = if row.room_id.is_empty() {
                Some((local.to_string(), row.sender.clone()))
            } else {
                self.db
                    .dm_of_room(&row.room_id)
                    .await?
                    .filter(|(l, m)| l == local && *m == row.sender)
            };
            let chat = (
                row.room_id.clone(),
                if dm.is_some() {
                    row.sender.clone()
                } else {
                    String::new()
                },
            );
            if waiting.contains(&chat) {
                continue;
            }
            // A room's other Matrix members are in the chat from the start
            // (the MSN client's IRO), not only the one who spoke.
            let mut members = Vec::new();
            let link = match self.chats.find(&row.room_id, dm.as_ref()) {
                Some(link) => link,
                None => {
                    if dm.is_none() && !row.room_id.is_empty() {
                        match self.joined_matrix_users(&row.room_id, local).await {
                            Ok(joined) => members = joined,
                            // The ghost has not joined yet: its Join job
                            // asks for delivery again once it has.
                            Err(e) if e.status() == Some(403) => {
                                waiting.insert(chat);
                                continue;
                            }
                            // Anything else must not hold the message up:
                            // the chat starts with the one who spoke.
                            Err(e) => {
                                tracing::warn!(room = %row.room_id, %local, error = %e, "cannot read the room's members; the chat starts with the sender only");
                            }
                        }
                    }
                    let target = match &dm {
                        Some((l, r)) => Target::Dm {
                            local: l.clone(),
                            remote: r.clone(),
                        },
                        None => Target::Room {
                            room: row.room_id.clone(),
                        },
                    };
                    let room = if row.room_id.is_empty() {
                        None
                    } else {
                        Some(row.room_id.clone())
                    };
                    self.new_link(hub.conversations.create(), target, room)
                }
            };
            let Ok(ep) = self.add_endpoint(&link, &row.sender, false) else {
                waiting.insert(chat);
                continue;
            };
            for member in members.iter().filter(|m| **m != row.sender) {
                if let Err(e) = self.add_endpoint(&link, member, false) {
                    tracing::debug!(room = %row.room_id, %member, error = ?e, "room member not put into the chat");
                }
            }
            if link.has_participant(local) {
                if row.kind == "invite" {
                    self.db.inbox_delete(row.id).await?;
                    continue;
                }
                let delivery = link.conversation.relay(
                    ep.id,
                    &ep.info,
                    &Bytes::from(row.payload.clone().into_bytes()),
                    Some(local),
                );
                if delivery.delivered > 0 {
                    self.db.inbox_delete(row.id).await?;
                } else {
                    waiting.insert(chat);
                }
                continue;
            }
            waiting.insert(chat);
            if link.state.lock().ringing.contains_key(local) {
                continue;
            }
            match hub
                .invite_local(&link.conversation, ep.info.clone(), local)
                .await
            {
                Ok(()) => {
                    link.state
                        .lock()
                        .ringing
                        .insert(local.to_string(), Instant::now());
                }
                Err(Unreachable) => {
                    // Hidden, or not allowing this contact: keep everything for later.
                    if !link
                        .conversation
                        .participants()
                        .iter()
                        .any(|p| self.is_local(&p.handle))
                        && link.state.lock().ringing.is_empty()
                    {
                        self.close_link(&link);
                    }
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// The Matrix users joined to `room` (not the bridge's own users, not
    /// MSN users' double puppets), as `local`'s ghost sees them. A 403 means
    /// the ghost is not in the room yet.
    async fn joined_matrix_users(
        self: &Arc<Self>,
        room: &str,
        local: &str,
    ) -> Result<Vec<String>, ApiError> {
        use ruma::api::client::membership::joined_members;
        let ghost = self.ensure_ghost(local).await?;
        let room_id = ruma::OwnedRoomId::try_from(room)
            .map_err(|e| ApiError::Invalid(format!("{room}: {e}")))?;
        let request = joined_members::v3::Request::new(room_id);
        let response = self.hs.send(request, Actor::Ghost(&ghost)).await?;
        let mut users = Vec::new();
        for user in response.joined.keys().map(|u| u.to_string()) {
            let puppet = self
                .db
                .puppet_owner(&user)
                .await
                .map_err(|e| ApiError::Transport(format!("database: {e}")))?;
            if !self.ids.is_ours(&user) && puppet.is_none() {
                users.push(user);
            }
        }
        Ok(users)
    }

    /// A message could not reach Matrix: its MSN sender reads why, in the
    /// chat with the Matrix user (rung into a new one if it was closed, or at
    /// the next sign-in).
    pub(super) async fn notify_undelivered(self: &Arc<Self>, origin: &Origin, reason: &str) {
        let text = format!(
            "⚠ msngate could not deliver your message \u{201c}{}\u{201d} to Matrix: {reason}",
            origin.excerpt
        );
        let payload = msnp::mime::text_message(
            &text,
            Some(&ImFormat {
                font: "Segoe UI".into(),
                color_rgb: (0x99, 0, 0),
                ..ImFormat::default()
            }),
        );
        let room = match &origin.room {
            Some(room) => room.clone(),
            None => self
                .db
                .dm_room(&origin.local, &origin.notify_as)
                .await
                .ok()
                .flatten()
                .unwrap_or_default(),
        };
        let row = InboxRow {
            id: self.db.new_id(),
            local_handle: origin.local.clone(),
            room_id: room,
            sender: origin.notify_as.clone(),
            sender_name: self.display_name_of(&origin.notify_as),
            kind: "notice".into(),
            payload: String::from_utf8_lossy(&payload).into_owned(),
            created_at: crate::store::now_millis(),
        };
        match self.db.inbox_insert(&[row], "").await {
            Ok(()) => self.request_delivery(&origin.local),
            Err(e) => {
                tracing::error!(local = %origin.local, error = %e, "cannot queue an undelivered-message notice")
            }
        }
    }

    // ---- Matrix events

    /// Converts a Matrix message's content for MSN: one or more payloads.
    fn matrix_content_to_msn(&self, content: &serde_json::Value, sender_name: &str) -> Vec<String> {
        let edited = content
            .pointer("/m.relates_to/rel_type")
            .and_then(|v| v.as_str())
            == Some("m.replace");
        let content = if edited {
            content.get("m.new_content").unwrap_or(content)
        } else {
            content
        };
        let msgtype = content
            .get("msgtype")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let body = content.get("body").and_then(|v| v.as_str()).unwrap_or("");
        let html = (content.get("format").and_then(|v| v.as_str())
            == Some("org.matrix.custom.html"))
        .then(|| content.get("formatted_body").and_then(|v| v.as_str()))
        .flatten();
        let (mut text, fmt) = match msgtype {
            "m.text" | "m.notice" => format::matrix_to_msn(body, html),
            "m.emote" => {
                let (t, f) = format::matrix_to_msn(body, html);
                (format!("* {sender_name} {t}"), f)
            }
            "m.image" | "m.file" | "m.video" | "m.audio" => {
                let url = content
                    .get("url")
                    .and_then(|v| v.as_str())
                    .map(|mxc| self.media_url(mxc))
                    .unwrap_or_default();
                let kind = &msgtype[2..];
                format::matrix_to_msn(&format!("[{kind}] {body} {url}"), None)
            }
            _ if !body.is_empty() => format::matrix_to_msn(body, None),
            _ => return Vec::new(),
        };
        if edited {
            text = format!("(edit) {text}");
        }
        if text.is_empty() {
            return Vec::new();
        }
        format::split_for_msn(&text, MSN_TEXT_MAX)
            .into_iter()
            .map(|part| {
                String::from_utf8_lossy(&msnp::mime::text_message(&part, Some(&fmt))).into_owned()
            })
            .collect()
    }

    /// An HTTP address for an `mxc://server/id` file.
    fn media_url(&self, mxc: &str) -> String {
        match mxc.strip_prefix("mxc://") {
            Some(rest) => format!("{}/_matrix/media/v3/download/{rest}", self.hs.base_url()),
            None => mxc.to_string(),
        }
    }

    pub(super) async fn on_room_message(
        self: &Arc<Self>,
        event_id: &str,
        room: &str,
        sender: &str,
        content: &serde_json::Value,
    ) -> Result<(), sqlx::Error> {
        let dm = self.db.dm_of_room(room).await?;
        let locals = match &dm {
            Some((l, m)) if m == sender => vec![l.clone()],
            _ => self.db.members(room).await?,
        };
        if locals.is_empty() {
            return self.db.mark_processed(event_id).await;
        }
        // An MSN user's own Matrix account (double puppeting): their own words.
        if let Some(owner) = self.db.puppet_owner(sender).await?
            && locals.contains(&owner)
        {
            return self.db.mark_processed(event_id).await;
        }
        if !self.remote.lock().contains_key(sender) {
            let _ = self.fetch_profile(sender).await;
        }
        let name = self.display_name_of(sender);
        let payloads = self.matrix_content_to_msn(content, &name);
        if payloads.is_empty() {
            return self.db.mark_processed(event_id).await;
        }
        let mut rows = Vec::new();
        let mut gone = Vec::new();
        for local in &locals {
            if self.db.account_name(local).await?.is_none() {
                gone.push(local.clone());
                continue;
            }
            for payload in &payloads {
                rows.push(InboxRow {
                    id: self.db.new_id(),
                    local_handle: local.clone(),
                    room_id: room.to_string(),
                    sender: sender.to_string(),
                    sender_name: name.clone(),
                    kind: "message".into(),
                    payload: payload.clone(),
                    created_at: crate::store::now_millis(),
                });
            }
        }
        self.db.inbox_insert(&rows, event_id).await?;
        for link in self.chats.links_for_room(room) {
            self.stop_matrix_typing(link.conversation.id, sender);
        }
        for local in &locals {
            self.request_delivery(local);
        }
        for local in gone {
            crate::metrics::Metrics::inc(&self.metrics.bridge_delivery_failures);
            self.notice_to_room(room, &local, &format!("⚠ msngate: {local} no longer has an MSN account; your message was not delivered.")).await;
        }
        Ok(())
    }

    pub(super) async fn on_member(
        self: &Arc<Self>,
        room: &str,
        sender: &str,
        state_key: &str,
        content: &serde_json::Value,
    ) -> Result<(), sqlx::Error> {
        let membership = content
            .get("membership")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        if let Some(local) = self.ids.handle_of(state_key) {
            // About a ghost.
            match membership {
                "invite" if !self.ids.is_ours(sender) => {
                    if self.db.account_name(&local).await?.is_none() {
                        tracing::info!(%room, %local, "invitation for the ghost of an unknown account ignored");
                        return Ok(());
                    }
                    if !self.remote.lock().contains_key(sender) {
                        let _ = self.fetch_profile(sender).await;
                    }
                    let name = self.display_name_of(sender);
                    let direct = content
                        .get("is_direct")
                        .and_then(|v| v.as_bool())
                        .unwrap_or(false);
                    if direct {
                        self.db.set_dm(&local, sender, room).await?;
                        self.enqueue(Job::Join {
                            room: room.to_string(),
                            local: local.clone(),
                            direct_with: Some(sender.to_string()),
                        })
                        .await;
                        if let (Some(hub), Some(handle)) = (self.hub(), ids::contact_handle(sender))
                            && let Err(e) = hub.remote_added_local(&handle, &name, &local).await
                        {
                            tracing::warn!(%local, %handle, error = %e, "cannot put the Matrix user on the reverse list");
                        }
                        self.fetch_presence(sender, Some(&local)).await;
                        self.publish_contact(sender);
                    } else {
                        self.db.add_room(room, "group", None).await?;
                        self.db.add_member(room, &local).await?;
                        self.enqueue(Job::Join {
                            room: room.to_string(),
                            local: local.clone(),
                            direct_with: None,
                        })
                        .await;
                        // Ring the MSN user into a chat with the inviter.
                        let row = InboxRow {
                            id: self.db.new_id(),
                            local_handle: local.clone(),
                            room_id: room.to_string(),
                            sender: sender.to_string(),
                            sender_name: name,
                            kind: "invite".into(),
                            payload: String::new(),
                            created_at: crate::store::now_millis(),
                        };
                        self.db.inbox_insert(&[row], "").await?;
                        self.request_delivery(&local);
                    }
                }
                "leave" | "ban" if sender != state_key => {
                    // Kicked or banned.
                    self.db.remove_member(room, &local).await?;
                    if self
                        .db
                        .dm_of_room(room)
                        .await?
                        .is_some_and(|(l, _)| l == local)
                    {
                        self.db.forget_dm_room(room).await?;
                    }
                }
                _ => {}
            }
            return Ok(());
        }
        if self.ids.is_ours(state_key) {
            return Ok(());
        }
        // About a Matrix user.
        let dm = self
            .db
            .dm_of_room(room)
            .await?
            .filter(|(_, m)| m == state_key);
        match membership {
            "join" => {
                let name = content.get("displayname").and_then(|v| v.as_str());
                let renamed = self.note_display_name(state_key, name);
                if let Some((local, _)) = &dm {
                    // They accepted the direct chat: now their presence is visible.
                    self.fetch_presence(state_key, Some(local)).await;
                    self.publish_contact(state_key);
                } else if renamed {
                    self.publish_contact(state_key);
                }
                if self.db.dm_of_room(room).await?.is_none()
                    && self.db.puppet_owner(state_key).await?.is_none()
                {
                    // Joining a room with a live chat joins the chat (JOI now,
                    // not at their first message).
                    for link in self.chats.links_for_room(room) {
                        let _ = self.add_endpoint(&link, state_key, true);
                    }
                }
            }
            "leave" | "ban" => {
                if let Some((local, _)) = &dm {
                    tracing::info!(%room, user = %state_key, "Matrix user left the direct chat; the next chat starts a new one");
                    self.db.forget_dm_room(room).await?;
                    self.enqueue(Job::Leave {
                        room: room.to_string(),
                        local: local.clone(),
                    })
                    .await;
                }
                for link in self.chats.links_for_room(room) {
                    self.remove_endpoint(&link, state_key);
                }
            }
            _ => {}
        }
        Ok(())
    }

    pub(super) fn on_presence(&self, sender: &str, content: &serde_json::Value) {
        if self.ids.is_ours(sender) {
            return;
        }
        let state = match content.get("presence").and_then(|v| v.as_str()) {
            Some("online") => ruma::presence::PresenceState::Online,
            Some("unavailable") => ruma::presence::PresenceState::Unavailable,
            _ => ruma::presence::PresenceState::Offline,
        };
        let status_msg = content
            .get("status_msg")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        if let Some(name) = content.get("displayname").and_then(|v| v.as_str()) {
            self.note_display_name(sender, Some(name));
        }
        self.note_presence(sender, state, status_msg);
        self.publish_contact(sender);
    }
}
