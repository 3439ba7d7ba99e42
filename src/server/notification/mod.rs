//! Dispatch and notification server: sign-in, contact lists, presence.
//!
//! One task per connection owns the socket and the [`NsConnection`] state.
//! Commands are handled strictly in order; events from the hub (presence of
//! contacts, reverse-list additions, chat invitations) are rendered in the
//! client's dialect between commands, and all output of one wake-up is
//! written with one system call.
//!
//! A client that stops reading is not kept: it is closed when it accepts
//! no byte for `msn.write_timeout_secs`, when what is queued for it and not
//! yet written exceeds `msn.max_queued_bytes`, or when a newer sign-in
//! (`OUT OTH`) or the shutdown ends its session; its watchers then see it
//! go offline.

mod lists;
mod login;
mod presence;
mod session;
mod wlm;

use crate::core::hub::Session;
use crate::server::connection::{Connection, ReadOutcome};
use crate::server::{Context, Role};
use msnp::codec::{Command, Decoder};
use msnp::dialect::Dialect;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// How long a closing connection may take to accept what is still queued for it.
const CLOSING_FLUSH_LIMIT: Duration = Duration::from_secs(5);

/// What the connection does after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    Close,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LoginState {
    /// Nothing yet: only `VER` is accepted.
    Fresh,
    /// Dialect agreed; `CVR`, `INF`, `USR … I` expected.
    Versioned,
    /// `USR … I` answered; waiting for `USR … S`.
    Challenged {
        handle: String,
        method: LoginMethod,
        /// The account read at `USR MD5 I`, so `USR MD5 S` and the sign-in
        /// need not read it again (boxed: most connections never hold one).
        account: Option<Box<crate::store::AccountRow>>,
        /// The nonce sent in `USR … SSO S` (MSNP15+), answered with the MBI response.
        nonce: Option<Box<str>>,
    },
    SignedIn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoginMethod {
    Md5,
    /// `USR TWN` with a Passport 1.4 or RST ticket (MSNP8–14).
    Passport,
    /// `USR SSO` with an RST ticket and the MBI response (MSNP15+).
    Sso,
}

pub(crate) struct NsConnection {
    pub ctx: Context,
    pub conn: Connection,
    pub role: Role,
    pub dialect: Dialect,
    pub state: LoginState,
    pub session: Option<Arc<Session>>,
    pub synced: bool,
    /// Set by the first `CHG`; presence events are rendered only after it
    /// (the `ILN` burst then carries the current state).
    pub presence_started: bool,
    pub challenge: Option<(String, Instant)>,
    pub last_activity: Instant,
    pub connected_at: Instant,
    pub rate: RateLimiter,
    /// Wrong passwords on this connection (closed at `signin_limits.failures_per_connection`).
    pub login_failures: u32,
    /// Bytes of session events rendered into the output and not yet written.
    pub unwritten_bytes: usize,
    /// An outbox wake-up was consumed while writing: render before waiting.
    pub events_pending: bool,
    /// The client stopped reading: close without trying to write more.
    pub stuck: bool,
    /// How long the client may accept no byte of pending output.
    pub write_timeout: Duration,
}

/// Counts changes in a sliding window; over the limit the server answers 800.
pub(crate) struct RateLimiter {
    window_start: Instant,
    count: u32,
    limit: u32,
    window: Duration,
}

impl RateLimiter {
    fn new(limit: u32, window: Duration) -> RateLimiter {
        RateLimiter {
            window_start: Instant::now(),
            count: 0,
            limit,
            window,
        }
    }

    /// Records one change; false when the limit is exceeded.
    pub fn allow(&mut self) -> bool {
        let now = Instant::now();
        if now.duration_since(self.window_start) >= self.window {
            self.window_start = now;
            self.count = 0;
        }
        self.count += 1;
        self.count <= self.limit
    }
}

pub async fn handle(stream: TcpStream, peer: SocketAddr, ctx: Context, role: Role) {
    let metrics = ctx.metrics.clone();
    let _connection = crate::metrics::GaugeGuard::new(match role {
        Role::Dispatch => &metrics.dispatch_connections,
        Role::Notification => &metrics.notification_connections,
    });
    let decoder = Decoder::client_to_server(msnp::codec::MAX_NOTIFICATION_PAYLOAD);
    let rate = RateLimiter::new(
        ctx.config.msn.rate_limit_changes,
        Duration::from_secs(ctx.config.msn.rate_window_secs),
    );
    let now = Instant::now();
    let write_timeout = Duration::from_secs(ctx.config.msn.write_timeout_secs);
    let mut ns = Box::new(NsConnection {
        conn: Connection::new(stream, peer, decoder),
        ctx,
        role,
        dialect: Dialect::MIN,
        state: LoginState::Fresh,
        session: None,
        synced: false,
        presence_started: false,
        challenge: None,
        last_activity: now,
        connected_at: now,
        rate,
        login_failures: 0,
        unwritten_bytes: 0,
        events_pending: false,
        stuck: false,
        write_timeout,
    });
    ns.run().await;
    // Boxed: keeps the idle task's future small (~240 B per connection).
    Box::pin(ns.finish()).await;
}

impl NsConnection {
    async fn run(&mut self) {
        let mut shutdown = self.ctx.shutdown.clone();
        loop {
            loop {
                match self.conn.next_command() {
                    Ok(Some(command)) => {
                        self.last_activity = Instant::now();
                        // Notices queued before this command go out before its
                        // reply, so the client sees events in the order they happened.
                        if self.render_events() == Flow::Close {
                            return;
                        }
                        if Box::pin(self.dispatch(command)).await == Flow::Close {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::info!(peer = %self.conn.peer, error = %e, "closing notification connection: framing violation");
                        return;
                    }
                }
            }
            if self.render_events() == Flow::Close {
                return;
            }
            if self.flush().await == Flow::Close {
                return;
            }
            if self.ctx.shutting_down() {
                self.conn.send_line("OUT SSD");
                return;
            }
            if std::mem::take(&mut self.events_pending) {
                continue;
            }
            let deadline = self.next_deadline();
            let outbox = self.session.clone();
            tokio::select! {
                ready = self.conn.readable() => {
                    if ready.is_err() { return; }
                    match self.conn.read_available() {
                        Ok(ReadOutcome::Data | ReadOutcome::WouldBlock) => {}
                        Ok(ReadOutcome::Eof) | Err(_) => return,
                    }
                }
                _ = async { match &outbox { Some(s) => s.outbox.notified().await, None => std::future::pending().await } } => {}
                _ = tokio::time::sleep_until(deadline.into()) => {
                    if self.on_deadline() == Flow::Close { return; }
                }
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Writes what is queued. A client that does not read blocks the write:
    /// it is closed when it accepts nothing within the write deadline, when
    /// its queue overflows meanwhile, or shortly after its session is ended
    /// (newer sign-in, shutdown) if the write still does not finish.
    async fn flush(&mut self) -> Flow {
        let (session, peer) = (self.session.clone(), self.conn.peer);
        let write = self.conn.flush(self.write_timeout);
        tokio::pin!(write);
        let grace = tokio::time::sleep(CLOSING_FLUSH_LIMIT);
        tokio::pin!(grace);
        let mut ending = false;
        let written = loop {
            tokio::select! {
                biased;
                written = &mut write => break written,
                _ = &mut grace, if ending => {
                    tracing::info!(peer = %peer, "closing notification connection: session ended while the client was not reading");
                    self.stuck = true;
                    return Flow::Close;
                }
                _ = async { match &session { Some(s) => s.outbox.notified().await, None => std::future::pending().await } }, if !ending => {
                    let Some(s) = &session else { continue };
                    if s.outbox.has_overflowed() {
                        tracing::warn!(peer = %peer, user = %s.handle, "closing notification connection: client is not reading (queue full)");
                        self.stuck = true;
                        return Flow::Close;
                    }
                    if s.outbox.is_ending() {
                        // Time to take what is being written, then `OUT`.
                        ending = true;
                        grace.as_mut().reset((Instant::now() + CLOSING_FLUSH_LIMIT).into());
                    }
                    self.events_pending = true;
                }
            }
        };
        match written {
            Ok(()) => {
                if let Some(s) = &session {
                    s.outbox.written(std::mem::take(&mut self.unwritten_bytes));
                }
                Flow::Continue
            }
            Err(e) => {
                if e.kind() == std::io::ErrorKind::TimedOut {
                    tracing::warn!(peer = %peer, user = ?session.as_ref().map(|s| s.handle.clone()),
                        "closing notification connection: client is not reading (write deadline)");
                }
                self.stuck = true;
                Flow::Close
            }
        }
    }

    fn next_deadline(&self) -> Instant {
        let msn = &self.ctx.config.msn;
        let mut deadline = if self.state == LoginState::SignedIn {
            self.last_activity + Duration::from_secs(msn.idle_timeout_secs)
        } else {
            self.connected_at + Duration::from_secs(msn.login_timeout_secs)
        };
        if let Some((_, sent)) = &self.challenge {
            deadline = deadline.min(*sent + Duration::from_secs(msn.challenge_timeout_secs));
        }
        deadline
    }

    fn on_deadline(&mut self) -> Flow {
        let now = Instant::now();
        if now < self.next_deadline() {
            return Flow::Continue;
        }
        let reason = if self.state != LoginState::SignedIn {
            "no sign-in within the login timeout"
        } else if self.challenge.is_some() {
            "challenge not answered in time"
        } else {
            "idle timeout"
        };
        tracing::info!(peer = %self.conn.peer, user = ?self.session.as_ref().map(|s| s.handle.clone()), reason, "closing notification connection");
        Flow::Close
    }

    async fn finish(&mut self) {
        if !self.stuck {
            let _ =
                tokio::time::timeout(CLOSING_FLUSH_LIMIT, self.conn.shutdown(self.write_timeout))
                    .await;
        }
        if let Some(session) = self.session.take() {
            if let Some(gauge) = self.ctx.metrics.session_gauge(self.dialect.number()) {
                gauge.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            }
            self.ctx.hub.sign_out(&session).await;
            tracing::info!(user = %session.handle, "signed out");
        }
    }

    async fn dispatch(&mut self, cmd: Command) -> Flow {
        if self.state != LoginState::SignedIn {
            return self.dispatch_login(cmd).await;
        }
        self.dispatch_session(cmd).await
    }

    pub(crate) fn reply_error(&mut self, code: msnp::error::ErrorCode, trid: u32) -> Flow {
        if self.dialect.has_soap_address_book() {
            self.send_wlm_error(code.code(), trid);
            return Flow::Continue;
        }
        self.conn.send_error(code, trid);
        Flow::Continue
    }
}

/// Decodes a URL-encoded parameter.
pub(crate) fn decoded(raw: &str) -> String {
    msnp::urlenc::decode(raw)
}

/// URL-encodes a value for the wire.
pub(crate) fn encoded(value: &str) -> String {
    msnp::urlenc::encode(value)
}
