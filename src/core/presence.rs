//! What others see of a signed-in user.

use std::sync::Arc;

/// A user's availability, in network-neutral terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Online,
    Busy,
    Idle,
    BeRightBack,
    Away,
    OnThePhone,
    OutToLunch,
    /// Signed in but appearing offline.
    Hidden,
    Offline,
}

impl Status {
    /// Whether contacts see the user as present at all.
    pub fn is_visible(self) -> bool {
        !matches!(self, Status::Hidden | Status::Offline)
    }
}

/// A snapshot of one user's presence, shared (not copied) by every watcher's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    pub handle: Arc<str>,
    pub status: Status,
    pub friendly_name: Arc<str>,
    /// Client capability bits (MSN clients; bridged users report their own value).
    pub capabilities: u32,
    /// The client's display-picture descriptor, opaque here.
    pub avatar: Option<Arc<str>>,
    pub personal_message: Arc<str>,
}
