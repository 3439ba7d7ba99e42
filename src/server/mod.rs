//! The MSN network: dispatch/notification, switchboard and Passport HTTP.

pub mod connection;
pub mod notification;
pub mod ops;
pub mod passport;
pub mod setup;
pub mod soap;
pub mod switchboard;

use crate::config::Config;
use crate::core::hub::Hub;
use std::sync::Arc;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

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

/// Accepts connections on `listener` and runs `handler` for each until
/// shutdown, then waits for the connections it started to end.
///
/// Each connection holds one of `slots` while it runs. When none is free,
/// the connection just accepted waits for one and the loop accepts no more,
/// so further clients wait in the kernel's backlog instead of each costing a
/// task and its buffers. Connection tasks are tracked here, so a panic in one
/// is logged (not lost with a detached task) and shutdown can drain them.
pub async fn accept_loop<F, Fut>(
    listener: tokio::net::TcpListener,
    ctx: Context,
    slots: Arc<Semaphore>,
    handler: F,
) where
    F: Fn(tokio::net::TcpStream, std::net::SocketAddr, Context) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut shutdown = ctx.shutdown.clone();
    let mut connections = JoinSet::new();
    let mut full_logged = false;
    'accepting: loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            Some(ended) = connections.join_next(), if !connections.is_empty() => {
                report(&ctx.metrics, ended);
                continue;
            }
            _ = shutdown.changed() => break,
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                full_logged = false;
                slot
            }
            Err(_) => {
                if !full_logged {
                    tracing::warn!(
                        max = ctx.config.msn.max_connections,
                        "msn.max_connections reached: new clients wait until a connection closes"
                    );
                    full_logged = true;
                }
                loop {
                    tokio::select! {
                        slot = slots.clone().acquire_owned() => match slot {
                            Ok(slot) => break slot,
                            Err(_) => break 'accepting,
                        },
                        Some(ended) = connections.join_next(), if !connections.is_empty() => {
                            report(&ctx.metrics, ended);
                        }
                        _ = shutdown.changed() => break 'accepting,
                    }
                }
            }
        };
        let run = handler(stream, peer, ctx.clone());
        connections.spawn(async move {
            run.await;
            drop(slot);
        });
    }
    // Every handler watches the same shutdown signal and says goodbye to its
    // client (`OUT SSD`); wait for them so the caller's grace period covers
    // the whole drain.
    drop(listener);
    while let Some(ended) = connections.join_next().await {
        report(&ctx.metrics, ended);
    }
}

fn report(metrics: &crate::metrics::Metrics, ended: Result<(), tokio::task::JoinError>) {
    if let Err(e) = ended
        && e.is_panic()
    {
        crate::metrics::Metrics::inc(&metrics.task_panics);
        tracing::error!(error = %e, "a connection task panicked; its connection is closed");
    }
}
