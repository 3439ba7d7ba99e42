//! Events delivered to a signed-in user's session.

use crate::core::presence::Presence;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub enum SessionEvent {
    /// A watched contact is present or changed name, status, capabilities or avatar.
    ContactPresence(Arc<Presence>),
    /// A watched contact's personal message changed (presence unchanged).
    ContactPersonalMessage(Arc<Presence>),
    /// A watched contact went offline, hid, or blocked the user.
    ContactOffline(Arc<str>),
    /// A watched contact changed a phone property the user may see.
    ContactPhone {
        handle: Arc<str>,
        key: Arc<str>,
        /// `None` when cleared.
        value: Option<Arc<str>>,
        /// The receiving user's own list version (MSNP5–9 number `BPR` with it).
        list_version: i64,
    },
    /// Someone put the user on their forward list.
    AddedBy {
        handle: Arc<str>,
        friendly_name: Arc<str>,
        list_version: i64,
    },
    /// Someone removed the user from their forward list.
    RemovedBy { handle: Arc<str>, list_version: i64 },
    /// An invitation into a conversation.
    Invited(Arc<Invitation>),
    /// The session must end.
    Disconnect(DisconnectReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The same account signed in elsewhere.
    SignedInElsewhere,
    ServerShutdown,
}

#[derive(Debug, Clone)]
pub struct Invitation {
    pub conversation_id: u32,
    pub cookie: String,
    pub inviter_handle: Arc<str>,
    pub inviter_name: Arc<str>,
}

impl crate::core::outbox::QueuedSize for SessionEvent {
    /// About what the event becomes on the wire. The presence it names is
    /// shared with other queues, but its rendering is this client's alone.
    fn queued_size(&self) -> usize {
        let presence = |p: &Presence| {
            p.handle.len() + p.friendly_name.len() + p.avatar.as_deref().map_or(0, str::len)
        };
        crate::core::outbox::EVENT_OVERHEAD
            + match self {
                SessionEvent::ContactPresence(p) => presence(p),
                SessionEvent::ContactPersonalMessage(p) => {
                    p.handle.len()
                        + p.personal_message.len()
                        + p.now_playing.as_ref().map_or(0, |n| {
                            n.text.len() + n.msn_form.as_deref().map_or(0, str::len)
                        })
                }
                SessionEvent::ContactOffline(handle) => handle.len(),
                SessionEvent::ContactPhone { handle, value, .. } => {
                    handle.len() + value.as_deref().map_or(0, str::len)
                }
                SessionEvent::AddedBy {
                    handle,
                    friendly_name,
                    ..
                } => handle.len() + friendly_name.len(),
                SessionEvent::RemovedBy { handle, .. } => handle.len(),
                SessionEvent::Invited(inv) => {
                    inv.cookie.len() + inv.inviter_handle.len() + inv.inviter_name.len()
                }
                SessionEvent::Disconnect(_) => 0,
            }
    }
}
