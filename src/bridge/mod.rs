//! Bridges to other networks. Each is a connector behind the core's
//! network-neutral interface; the MSN server knows nothing of them.

pub mod irc;
pub mod matrix;
