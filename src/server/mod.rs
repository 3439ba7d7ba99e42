//! The MSN network: dispatch/notification, switchboard and Passport HTTP.

pub mod connection;
pub mod notification;
pub mod ops;
pub mod passport;
pub mod switchboard;

use crate::config::Config;
use crate::core::hub::Hub;
use std::sync::Arc;
use tokio::sync::watch;

/// What every connection handler needs.
#[derive(Clone)]
pub struct Context {
    pub config: Arc<Config>,
    pub hub: Arc<Hub>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Flips to `true` when the server is shutting down.
    pub shutdown: watch::Receiver<bool>,
}

impl Context {
    pub fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// Which role a notification-port listener plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Dispatch only: answers `USR … I` with `XFR NS` and closes.
    Dispatch,
    /// Notification server (also answers as dispatch when no redirect is configured).
    Notification,
}

/// Accepts connections on `listener` and runs `handler` for each until shutdown.
pub async fn accept_loop<F, Fut>(listener: tokio::net::TcpListener, ctx: Context, handler: F)
where
    F: Fn(tokio::net::TcpStream, std::net::SocketAddr, Context) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut shutdown = ctx.shutdown.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => { tokio::spawn(handler(stream, peer, ctx.clone())); }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}
