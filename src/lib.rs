//! msngate: an MSN Messenger network (dispatch, notification, switchboard,
//! Passport) whose users can talk to Matrix and IRC.

pub mod app;
pub mod bridge;
pub mod certs;
pub mod client_setup;
pub mod config;
pub mod core;
pub mod keyed_lock;
pub mod metrics;
pub mod server;
pub mod store;
pub mod supervise;
pub mod tls;

pub use msnp;
