//! The network-neutral heart of msngate: accounts, contact lists, presence,
//! conversations, and the events that flow between sessions and bridges.
//!
//! Nothing here knows the MSN wire format, Matrix or IRC. Front ends (the MSN
//! servers, later the bridges) call into [`hub::Hub`] and receive
//! [`events::SessionEvent`]s and [`conversation::ConversationEvent`]s
//! through [`outbox::Outbox`]es.

pub mod accounts;
pub mod conversation;
pub mod events;
pub mod handle;
pub mod hashing;
pub mod hub;
pub mod outbox;
pub mod presence;
pub mod remote;
pub mod roster;
pub mod throttle;
pub mod tickets;
