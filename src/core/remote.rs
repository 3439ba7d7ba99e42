//! Remote networks (the Matrix and IRC bridges) as the core sees them.
//!
//! A bridge implements [`Network`]: the core asks it about handles it owns
//! (remote users and rooms that MSN users keep on their lists and chat
//! with), tells it what MSN users do (presence, list changes, invitations),
//! and the bridge calls back into the [`Hub`](crate::core::hub::Hub) for
//! what happens on its side (`remote_presence`, `invite_local`,
//! `remote_added_local`). Conversations are shared: a bridge joins a
//! [`Conversation`] as an ordinary participant with its own outbox.

use crate::core::conversation::{Conversation, ParticipantInfo};
use crate::core::hub::Unreachable;
use crate::core::presence::Presence;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub trait Network: Send + Sync + 'static {
    /// Short name for logs and metrics, e.g. `matrix` or `irc:libera`.
    fn name(&self) -> &str;

    /// Whether `handle` (canonical MSN form, lower case) names a user or a
    /// room on this network.
    fn owns(&self, handle: &str) -> bool;

    /// The handle this network gives `handle` now, when `handle` is an
    /// older spelling of it that clients may still have stored (an alias);
    /// `None` otherwise.
    fn current_handle(&self, _handle: &str) -> Option<String> {
        None
    }

    /// Looks a handle up when an MSN user adds it to a list. `None`: no such
    /// user or room (the MSN client is told 205/208). `Some`: its current
    /// presence (status `Offline` when unknown or away from the network).
    fn resolve<'a>(&'a self, handle: &'a str) -> BoxFuture<'a, Option<Arc<Presence>>>;

    /// `local` (an MSN handle) put `remote` on their forward list (`true`)
    /// or took it off (`false`); the bridge follows `remote`'s presence
    /// while anyone watches it.
    fn watch(&self, local: &str, remote: &str, watching: bool);

    /// `inviter`, a participant of `conversation`, asks `remote` in (a
    /// switchboard `CAL`). On success the bridge has joined the
    /// conversation as `remote` (or will within moments) and relays its
    /// messages; `Err` answers the caller "not reachable" (217).
    fn invite<'a>(
        &'a self,
        conversation: Arc<Conversation>,
        inviter: Arc<ParticipantInfo>,
        remote: &'a str,
    ) -> BoxFuture<'a, Result<(), Unreachable>>;

    /// An MSN user's presence as others may see it changed: signed in
    /// (first status), status, name or personal message changed, or signed
    /// out (status `Offline`). Puppets follow it.
    fn local_presence(&self, presence: Arc<Presence>);
}
