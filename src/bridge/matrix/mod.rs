//! The Matrix bridge: msngate as a Matrix application service.
//!
//! * Every MSN account has a ghost on the homeserver (`@_msn_alice=40example.com:server`)
//!   whose display name and presence follow the MSN user.
//! * Matrix users are MSN contacts under handles such as
//!   `bob_3aexample.org@matrix.msngate` ([`ids`]), with their display name and presence.
//! * A switchboard chat with a Matrix contact is their direct chat room; a
//!   multi-party chat is a room of its own; a Matrix user who invites a ghost
//!   to a room rings the MSN user ([`chats`]).
//! * Outgoing requests go through a persistent queue ([`queue`]); incoming
//!   transactions are deduplicated by event id ([`appservice`]).
//!
//! docs/matrix.md is the operator's and user's guide.

pub mod api;
mod appservice;
mod chats;
pub mod db;
pub mod format;
pub mod ids;
pub mod queue;
pub mod registration;

use crate::config::MatrixConfig;
use crate::core::conversation::{Conversation, ParticipantInfo};
use crate::core::hub::{Hub, Unreachable};
use crate::core::presence::{Presence, Status};
use crate::core::remote::{BoxFuture, Network};
use crate::metrics::Metrics;
use anyhow::Context as _;
use api::{Actor, ApiError, Homeserver};
use parking_lot::Mutex;
use registration::Registration;
use ruma::OwnedUserId;
use ruma::api::client::{account, appservice as cs_appservice, presence as cs_presence, profile};
use ruma::presence::PresenceState;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};

/// Ghost presence is re-sent this often: Synapse turns a ghost nobody syncs
/// for offline after about 30 s.
pub const PRESENCE_REFRESH: Duration = Duration::from_secs(20);
/// Accounts are compared with their ghosts this often (accounts created or
/// renamed by the `user` command in another process show up within this).
const GHOST_SCAN: Duration = Duration::from_secs(10);
/// Housekeeping: retrying waiting deliveries, expiring old ones.
const SWEEP: Duration = Duration::from_secs(30);
/// A Matrix message waits this long for its MSN user to sign in; then its
/// sender is told it was not delivered.
const INBOX_MAX_AGE: Duration = Duration::from_secs(14 * 24 * 3600);
/// Processed event ids are kept this long (homeservers resend within minutes).
const PROCESSED_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// What the ghost of an MSN user shows.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GhostPresence {
    state: PresenceState,
    status_msg: Option<String>,
}

/// A Matrix user as the bridge last saw them.
#[derive(Debug, Clone, Default)]
struct RemoteUser {
    display_name: Option<String>,
    presence: Option<PresenceState>,
    status_msg: Option<String>,
}

pub(crate) struct Inner {
    hub: Weak<Hub>,
    metrics: Arc<Metrics>,
    hs: Homeserver,
    reg: Registration,
    registration_path: std::path::PathBuf,
    ids: ids::Ghosts,
    db: db::Db,
    queue: queue::Queue,
    chats: chats::Chats,
    /// Registered ghosts and the display name last set for each.
    ghost_names: Mutex<HashMap<String, Option<String>>>,
    /// Serialises the registration of each ghost (per ghost: one slow
    /// registration does not hold up the others).
    ghost_locks: crate::keyed_lock::KeyedLocks,
    /// One event of a room handled at a time (transactions and backfill), so
    /// the processed-event check and the handling cannot interleave; per
    /// room, so a slow join or backfill stalls only its own room.
    room_locks: crate::keyed_lock::KeyedLocks,
    /// Presence each online ghost must show; `dirty` ones are sent at once.
    presence: Mutex<HashMap<String, (GhostPresence, bool)>>,
    presence_wake: Notify,
    remote: Mutex<HashMap<String, RemoteUser>>,
    scan_wake: Notify,
    /// Accounts with Matrix messages waiting to be handed over: a set, so a
    /// burst of requests for one user is one pass and memory is bounded by
    /// the number of accounts.
    deliveries: Mutex<HashSet<String>>,
    deliveries_wake: Notify,
    /// The last request failed as transient (for the reconnect counter).
    hs_down: AtomicBool,
    ready: AtomicBool,
    problem: Mutex<Option<String>>,
    /// Flips at shutdown; supervised tasks are not started again after it.
    shutdown: watch::Receiver<bool>,
}

/// The running bridge.
pub struct MatrixBridge {
    inner: Arc<Inner>,
    listener: tokio::task::JoinHandle<()>,
}

impl MatrixBridge {
    /// The self-check passed: the homeserver is reachable, accepts the
    /// appservice token and can reach the appservice.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Relaxed)
    }

    /// What the last failed self-check found, in words for the operator.
    pub fn problem(&self) -> Option<String> {
        self.inner.problem.lock().clone()
    }

    /// Requests waiting in the outgoing queue.
    pub fn queue_len(&self) -> usize {
        self.inner.queue.len()
    }

    /// Graceful shutdown: waits up to `within` for the outgoing queue to
    /// drain; true when it did. What is left stays in the database and is
    /// sent at the next start.
    pub async fn flush(&self, within: Duration) -> bool {
        // First what MSN clients sent (and were told was accepted) must reach the queue.
        let deadline = tokio::time::Instant::now() + within;
        while !self.inner.chats.settled() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let drained = self.inner.queue.flush(left).await;
        if !drained {
            tracing::warn!(
                waiting = self.inner.queue.len(),
                "Matrix requests still queued at shutdown; they are kept and sent at the next start"
            );
        }
        drained
    }

    /// Waits for the appservice listener to stop (after the shutdown signal).
    pub async fn stopped(self) {
        let _ = self.listener.await;
    }
}

/// What the homeserver, the registration and the appservice URL look like
/// from here: `Err` is a sentence for the operator.
pub async fn self_check(
    hs: &Homeserver,
    reg: &Registration,
    registration_path: &std::path::Path,
    bot: &str,
) -> Result<(), String> {
    let base = hs.base_url();
    if let Err(e) = hs.discover_versions().await {
        return Err(match e {
            ApiError::Transport(reason) => format!(
                "cannot reach the Matrix homeserver at {base} ({reason}); check matrix.homeserver_url and that the homeserver is running"
            ),
            other => format!(
                "{base} does not answer like a Matrix homeserver ({other}); check matrix.homeserver_url"
            ),
        });
    }
    match hs
        .send(account::whoami::v3::Request::new(), Actor::Bot)
        .await
    {
        Ok(me) if me.user_id.as_str() == bot => {}
        Ok(me) => {
            return Err(format!(
                "the homeserver says the appservice token belongs to {}, but msngate expects {bot}; matrix.server_name must be the homeserver's server name",
                me.user_id
            ));
        }
        Err(ApiError::Status { errcode, .. })
            if errcode == "M_UNKNOWN_TOKEN"
                || errcode == "M_MISSING_TOKEN"
                || errcode == "M_FORBIDDEN" =>
        {
            return Err(format!(
                "the homeserver at {base} rejected the appservice token: it has not loaded the registration {} (add it to app_service_config_files and restart the homeserver), or the file changed since it was loaded",
                registration_path.display()
            ));
        }
        Err(e) => {
            return Err(format!(
                "the homeserver at {base} refused the appservice: {e}"
            ));
        }
    }
    let ping = cs_appservice::request_ping::v1::Request::new(reg.id.clone());
    match hs.send(ping, Actor::Bot).await {
        Ok(_) => Ok(()),
        Err(ApiError::Status {
            errcode, message, ..
        }) => Err(match errcode.as_str() {
            "M_URL_NOT_SET" => format!(
                "the registration {} has no url: run `msngate matrix registration` again and restart the homeserver",
                registration_path.display()
            ),
            "M_CONNECTION_FAILED" | "M_CONNECTION_TIMEOUT" => format!(
                "the homeserver cannot reach the appservice at {} ({message}); check matrix.listen and matrix.appservice_url, then run `msngate matrix registration` and restart the homeserver",
                reg.url
            ),
            "M_BAD_STATUS" => format!(
                "the appservice at {} answered the homeserver's ping with an error ({message}); the homeserver may hold an older registration: restart it",
                reg.url
            ),
            // Homeservers older than Matrix v1.7 have no ping: the rest checked out.
            "M_UNRECOGNIZED" | "M_NOT_FOUND" => return Ok(()),
            _ => format!("the homeserver's ping of the appservice failed: {errcode} {message}"),
        }),
        Err(e) => Err(format!(
            "the homeserver's ping of the appservice failed: {e}"
        )),
    }
}

/// Double puppeting: links MSN user `local` to their own Matrix account,
/// given an access token of it, so their messages come from their real
/// Matrix ID. Checks the token with the homeserver; returns the Matrix ID.
/// Works with or without a running bridge (for a CLI command).
pub async fn link_double_puppet(
    config: &MatrixConfig,
    store: &crate::store::Store,
    local: &str,
    access_token: &str,
) -> anyhow::Result<String> {
    let reg = registration::load(&config.registration)?;
    let ids = ids::Ghosts::new(config, &reg.sender_localpart);
    let local = crate::core::handle::normalize(local)
        .ok_or_else(|| anyhow::anyhow!("{local} is not an MSN handle"))?;
    let db = db::Db::open(store.pool().clone()).await?;
    if db.account_name(&local).await?.is_none() {
        anyhow::bail!("no MSN account {local}");
    }
    let hs = Homeserver::new(&config.homeserver_url, &reg.as_token)?;
    let me = hs
        .send(
            account::whoami::v3::Request::new(),
            Actor::Token(access_token),
        )
        .await
        .map_err(|e| anyhow::anyhow!("the homeserver did not accept the token: {e}"))?;
    let user_id = me.user_id.to_string();
    if ids.is_ours(&user_id) {
        anyhow::bail!("{user_id} belongs to the bridge, not to a person");
    }
    db.set_puppet(&local, &user_id, access_token).await?;
    tracing::info!(%local, %user_id, "double puppet linked");
    Ok(user_id)
}

/// Undoes [`link_double_puppet`]; true if there was a link.
pub async fn unlink_double_puppet(
    store: &crate::store::Store,
    local: &str,
) -> anyhow::Result<bool> {
    let db = db::Db::open(store.pool().clone()).await?;
    Ok(db.remove_puppet(&local.to_ascii_lowercase()).await?)
}

/// Starts the bridge: reads the registration, opens the appservice
/// listener, registers with the hub, checks the homeserver (in the
/// background if it is not reachable yet) and starts the ghosts.
pub async fn start(
    config: &MatrixConfig,
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<MatrixBridge> {
    let reg = registration::load(&config.registration)
        .with_context(|| "the Matrix bridge needs its registration: run `msngate matrix registration` and load the file into the homeserver")?;
    if reg.sender_localpart != config.bot_localpart {
        tracing::warn!(registration = %reg.sender_localpart, config = %config.bot_localpart, "matrix.bot_localpart differs from the registration's sender_localpart; using the registration's");
    }
    let ids = ids::Ghosts::new(config, &reg.sender_localpart);
    let hs = Homeserver::new(&config.homeserver_url, &reg.as_token)?;
    let db = db::Db::open(hub.store().pool().clone())
        .await
        .context("cannot read the Matrix bridge tables")?;
    // Before the bridge takes part: contacts stored under the old `=xx`
    // handle form get the current one (`ids.rs`).
    let renamed = db
        .migrate_contact_handles(ids::CONTACT_DOMAIN, ids::current_contact_handle)
        .await
        .context("cannot rename stored Matrix contacts to the current handle form")?;
    if renamed > 0 {
        tracing::info!(
            renamed,
            "Matrix contacts renamed to the current handle form"
        );
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen for the homeserver on {} (matrix.listen)",
                config.listen
            )
        })?;
    let inner = Arc::new(Inner {
        hub: Arc::downgrade(&hub),
        metrics,
        hs,
        reg,
        registration_path: config.registration.clone(),
        ids,
        db,
        queue: queue::Queue::default(),
        chats: chats::Chats::default(),
        ghost_names: Mutex::new(HashMap::new()),
        ghost_locks: Default::default(),
        room_locks: Default::default(),
        presence: Mutex::new(HashMap::new()),
        presence_wake: Notify::new(),
        remote: Mutex::new(HashMap::new()),
        scan_wake: Notify::new(),
        deliveries: Mutex::new(HashSet::new()),
        deliveries_wake: Notify::new(),
        shutdown: shutdown.clone(),
        hs_down: AtomicBool::new(false),
        ready: AtomicBool::new(false),
        problem: Mutex::new(None),
    });
    let listener = tokio::spawn(appservice::serve(
        inner.clone(),
        listener,
        config.appservice_limits.clone(),
        shutdown.clone(),
    ));

    *inner.ghost_names.lock() = inner.db.ghosts().await?.into_iter().collect();
    hub.register_network(Arc::new(MatrixNetwork(inner.clone())));
    let queued = inner.load_queue().await?;
    if queued > 0 {
        tracing::info!(
            queued,
            "resuming Matrix requests queued before the last stop"
        );
    }

    let bot = inner.ids.bot_user_id();
    let first = tokio::time::timeout(
        Duration::from_secs(10),
        self_check(&inner.hs, &inner.reg, &inner.registration_path, &bot),
    )
    .await
    .unwrap_or_else(|_| {
        Err(format!(
            "the Matrix homeserver at {} did not answer within 10 s",
            inner.hs.base_url()
        ))
    });
    inner.record_check(first);

    type Loop = fn(Arc<Inner>, watch::Receiver<bool>) -> BoxFuture<'static, ()>;
    let loops: [(&'static str, Loop); 5] = [
        ("matrix self-check", |i, s| Box::pin(i.check_loop(s))),
        ("matrix ghosts", |i, s| Box::pin(i.ghost_loop(s))),
        ("matrix presence", |i, s| Box::pin(i.presence_loop(s))),
        ("matrix delivery", |i, s| Box::pin(i.delivery_loop(s))),
        ("matrix inbox sweep", |i, s| Box::pin(i.sweep_loop(s))),
    ];
    for (name, run) in loops {
        let (inner, stop) = (inner.clone(), shutdown.clone());
        crate::supervise::supervise(name, inner.metrics.clone(), shutdown.clone(), move || {
            run(inner.clone(), stop.clone())
        });
    }
    tokio::spawn(inner.clone().load_contacts());
    for session in hub.sessions() {
        inner.set_ghost_presence(&session.presence());
    }
    tracing::info!(homeserver = %config.homeserver_url, listen = %config.listen, ready = inner.ready.load(Ordering::Relaxed), "Matrix bridge started");
    Ok(MatrixBridge { inner, listener })
}

impl Inner {
    fn hub(&self) -> Option<Arc<Hub>> {
        self.hub.upgrade()
    }

    fn record_check(&self, result: Result<(), String>) {
        match result {
            Ok(()) => {
                if !self.ready.swap(true, Ordering::Relaxed) {
                    tracing::info!(homeserver = %self.hs.base_url(), "Matrix self-check passed: homeserver reachable, token accepted, appservice reachable");
                }
                *self.problem.lock() = None;
            }
            Err(problem) => {
                self.ready.store(false, Ordering::Relaxed);
                let mut last = self.problem.lock();
                if last.as_deref() != Some(problem.as_str()) {
                    tracing::error!("Matrix bridge not working: {problem}");
                }
                *last = Some(problem);
            }
        }
    }

    /// Repeats the self-check until it passes (and every few minutes after,
    /// so a homeserver that lost the registration is noticed).
    async fn check_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let bot = self.ids.bot_user_id();
        loop {
            let wait = if self.ready.load(Ordering::Relaxed) {
                Duration::from_secs(300)
            } else {
                Duration::from_secs(5)
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
            let result = self_check(&self.hs, &self.reg, &self.registration_path, &bot).await;
            let was_ready = self.ready.load(Ordering::Relaxed);
            self.record_check(result);
            if !was_ready && self.ready.load(Ordering::Relaxed) {
                crate::metrics::Metrics::inc(&self.metrics.bridge_reconnects);
                self.scan_wake.notify_one();
                self.presence_wake.notify_one();
            }
        }
    }

    // ---- ghosts

    /// Registers `local`'s ghost if it is not yet (idempotent: "user in use"
    /// is success) and returns its user ID.
    async fn ensure_ghost(self: &Arc<Self>, local: &str) -> Result<OwnedUserId, ApiError> {
        let user_id = OwnedUserId::try_from(self.ids.user_id(local))
            .map_err(|e| ApiError::Invalid(e.to_string()))?;
        if self.ghost_names.lock().contains_key(local) {
            return Ok(user_id);
        }
        let _turn = self.ghost_locks.lock(local).await;
        if self.ghost_names.lock().contains_key(local) {
            return Ok(user_id);
        }
        let mut request = account::register::v3::Request::new();
        request.username = Some(self.ids.localpart(local));
        request.login_type = Some(account::register::LoginType::ApplicationService);
        request.inhibit_login = true;
        match self.hs.send(request, Actor::Bot).await {
            Ok(_) => tracing::info!(ghost = %user_id, "ghost registered"),
            Err(ApiError::Status { errcode, .. }) if errcode == "M_USER_IN_USE" => {}
            Err(e) => return Err(e),
        }
        self.db
            .save_ghost(local, user_id.as_str(), None)
            .await
            .map_err(|e| ApiError::Transport(format!("database: {e}")))?;
        self.ghost_names.lock().insert(local.to_string(), None);
        Ok(user_id)
    }

    async fn set_ghost_name(self: &Arc<Self>, local: &str, name: &str) -> Result<(), ApiError> {
        let ghost = self.ensure_ghost(local).await?;
        let request = profile::set_profile_field::v3::Request::new(
            ghost.clone(),
            ruma::profile::ProfileFieldValue::DisplayName(name.to_string()),
        );
        self.hs.send(request, Actor::Ghost(&ghost)).await?;
        self.db
            .save_ghost(local, ghost.as_str(), Some(name))
            .await
            .map_err(|e| ApiError::Transport(format!("database: {e}")))?;
        self.ghost_names
            .lock()
            .insert(local.to_string(), Some(name.to_string()));
        Ok(())
    }

    /// Makes every account's ghost exist with the account's friendly name.
    async fn reconcile_ghosts(self: &Arc<Self>) {
        let accounts = match self.db.accounts().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list accounts for their Matrix ghosts");
                return;
            }
        };
        for (handle, name) in accounts {
            let current = self.ghost_names.lock().get(&handle).cloned();
            if current.as_ref().and_then(|n| n.as_deref()) == Some(name.as_str()) {
                continue;
            }
            if let Err(e) = self.set_ghost_name(&handle, &name).await {
                tracing::warn!(%handle, error = %e, "cannot prepare the Matrix ghost; will retry");
                if e.is_transient() {
                    return; // the homeserver is away: try all again at the next scan
                }
            }
        }
    }

    async fn ghost_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            if self.ready.load(Ordering::Relaxed) {
                self.reconcile_ghosts().await;
            }
            tokio::select! {
                _ = tokio::time::sleep(GHOST_SCAN) => {}
                _ = self.scan_wake.notified() => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    // ---- ghost presence

    fn ghost_presence_of(p: &Presence) -> GhostPresence {
        let label = match p.status {
            Status::Busy => Some("Busy"),
            Status::OnThePhone => Some("On the phone"),
            Status::BeRightBack => Some("Be right back"),
            Status::OutToLunch => Some("Out to lunch"),
            _ => None,
        };
        let state = match p.status {
            Status::Online => PresenceState::Online,
            Status::Busy
            | Status::OnThePhone
            | Status::Away
            | Status::BeRightBack
            | Status::Idle
            | Status::OutToLunch => PresenceState::Unavailable,
            Status::Hidden | Status::Offline => PresenceState::Offline,
        };
        if state == PresenceState::Offline {
            // Hidden must look exactly like signed out.
            return GhostPresence {
                state,
                status_msg: None,
            };
        }
        let text = p.status_text();
        let psm = text.trim();
        let status_msg = match (label, psm.is_empty()) {
            (Some(l), true) => Some(l.to_string()),
            (Some(l), false) => Some(format!("{l} — {psm}")),
            (None, false) => Some(psm.to_string()),
            (None, true) => None,
        };
        GhostPresence { state, status_msg }
    }

    fn set_ghost_presence(&self, p: &Presence) {
        let want = Self::ghost_presence_of(p);
        let mut map = self.presence.lock();
        let changed = map.get(&*p.handle).is_none_or(|(old, _)| *old != want);
        if changed {
            map.insert(p.handle.to_string(), (want, true));
            drop(map);
            self.presence_wake.notify_one();
        }
    }

    /// Synapse turns an "unavailable" ghost "online" when it acts: put the
    /// MSN status back right after.
    fn after_ghost_action(&self, local: &str) {
        let mut map = self.presence.lock();
        if let Some((p, dirty)) = map.get_mut(local)
            && p.state != PresenceState::Online
        {
            *dirty = true;
            drop(map);
            self.presence_wake.notify_one();
        }
    }

    async fn send_ghost_presence(
        self: &Arc<Self>,
        local: &str,
        p: &GhostPresence,
    ) -> Result<(), ApiError> {
        let ghost = self.ensure_ghost(local).await?;
        let mut request =
            cs_presence::set_presence::v3::Request::new(ghost.clone(), p.state.clone());
        request.status_msg = p.status_msg.clone();
        self.hs.send(request, Actor::Ghost(&ghost)).await?;
        Ok(())
    }

    async fn presence_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut next_refresh = Instant::now() + PRESENCE_REFRESH;
        loop {
            let refresh_all = Instant::now() >= next_refresh;
            if refresh_all {
                next_refresh = Instant::now() + PRESENCE_REFRESH;
            }
            let due: Vec<(String, GhostPresence)> = {
                let mut map = self.presence.lock();
                let due = map
                    .iter_mut()
                    .filter(|(_, (_, dirty))| *dirty || refresh_all)
                    .map(|(h, (p, dirty))| {
                        *dirty = false;
                        (h.clone(), p.clone())
                    })
                    .collect();
                // Offline ghosts need saying once, not refreshing.
                map.retain(|_, (p, dirty)| p.state != PresenceState::Offline || *dirty);
                due
            };
            let mut tasks = tokio::task::JoinSet::new();
            for (local, p) in due {
                if refresh_all && p.state == PresenceState::Offline {
                    continue;
                }
                let inner = self.clone();
                tasks.spawn(async move {
                    if let Err(e) = inner.send_ghost_presence(&local, &p).await {
                        tracing::debug!(%local, error = %e, "ghost presence not sent; retried at the next refresh");
                    }
                });
                // A bounded number at once: a refresh of thousands must not flood the homeserver.
                while tasks.len() >= 8 {
                    tasks.join_next().await;
                }
            }
            while tasks.join_next().await.is_some() {}
            tokio::select! {
                _ = tokio::time::sleep_until(next_refresh.into()) => {}
                _ = self.presence_wake.notified() => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    // ---- Matrix users (MSN contacts)

    fn contact_presence(&self, user_id: &str, handle: &str) -> Arc<Presence> {
        let user = self.remote.lock().get(user_id).cloned().unwrap_or_default();
        let status = match user.presence {
            Some(PresenceState::Online) => Status::Online,
            Some(PresenceState::Unavailable) => Status::Away,
            _ => Status::Offline,
        };
        let name = user
            .display_name
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| {
                ids::split_user_id(user_id)
                    .map(|(l, _)| l.to_string())
                    .unwrap_or_default()
            });
        Arc::new(Presence {
            handle: handle.into(),
            status,
            friendly_name: name.into(),
            capabilities: ids::MATRIX_CAPABILITIES,
            avatar: None,
            personal_message: user.status_msg.unwrap_or_default().into(),
            now_playing: None,
        })
    }

    /// Tells the hub (and so the MSN users watching) about a Matrix user.
    fn publish_contact(&self, user_id: &str) {
        let (Some(hub), Some(handle)) = (self.hub(), ids::contact_handle(user_id)) else {
            return;
        };
        hub.remote_presence(self.contact_presence(user_id, &handle));
    }

    fn display_name_of(&self, user_id: &str) -> String {
        self.remote
            .lock()
            .get(user_id)
            .and_then(|u| u.display_name.clone())
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| {
                ids::split_user_id(user_id)
                    .map(|(l, _)| l.to_string())
                    .unwrap_or_else(|| user_id.to_string())
            })
    }

    fn note_display_name(&self, user_id: &str, name: Option<&str>) -> bool {
        let mut remote = self.remote.lock();
        let user = remote.entry(user_id.to_string()).or_default();
        let name = name.map(str::to_string);
        if user.display_name != name {
            user.display_name = name;
            true
        } else {
            false
        }
    }

    fn note_presence(&self, user_id: &str, state: PresenceState, status_msg: Option<String>) {
        let mut remote = self.remote.lock();
        let user = remote.entry(user_id.to_string()).or_default();
        user.presence = Some(state);
        user.status_msg = status_msg;
    }

    /// A Matrix user's display name from their profile: `Ok(None)` no name
    /// set, `Err(true)` no such user, `Err(false)` cannot tell now.
    async fn fetch_profile(&self, user_id: &str) -> Result<Option<String>, bool> {
        let Ok(uid) = OwnedUserId::try_from(user_id) else {
            return Err(true);
        };
        let request = profile::get_profile_field::v3::Request::new(
            uid,
            ruma::profile::ProfileFieldName::DisplayName,
        );
        match self.hs.send(request, Actor::Bot).await {
            Ok(response) => {
                let name = match response.value {
                    Some(ruma::profile::ProfileFieldValue::DisplayName(n)) => Some(n),
                    _ => None,
                };
                self.note_display_name(user_id, name.as_deref());
                Ok(name)
            }
            Err(ApiError::Status {
                status: 404,
                errcode,
                ..
            }) if errcode == "M_NOT_FOUND" => {
                // A user without a display name also answers 404 on some homeservers;
                // the whole profile tells the two apart.
                let Ok(uid) = OwnedUserId::try_from(user_id) else {
                    return Err(true);
                };
                match self
                    .hs
                    .send(profile::get_profile::v3::Request::new(uid), Actor::Bot)
                    .await
                {
                    Ok(_) => Ok(None),
                    Err(ApiError::Status { status: 404, .. }) => Err(true),
                    Err(_) => Err(false),
                }
            }
            Err(_) => Err(false),
        }
    }

    /// A Matrix user's presence, asked as a ghost that shares a room with
    /// them (Synapse shows presence only to users sharing a room).
    async fn fetch_presence(&self, user_id: &str, as_local: Option<&str>) {
        let Ok(uid) = OwnedUserId::try_from(user_id) else {
            return;
        };
        let ghost = as_local.and_then(|l| OwnedUserId::try_from(self.ids.user_id(l)).ok());
        let actor = ghost.as_deref().map(Actor::Ghost).unwrap_or(Actor::Bot);
        match self
            .hs
            .send(cs_presence::get_presence::v3::Request::new(uid), actor)
            .await
        {
            Ok(p) => self.note_presence(user_id, p.presence, p.status_msg),
            Err(e) => tracing::debug!(user = %user_id, error = %e, "presence not available yet"),
        }
    }

    /// At start: the name and presence of every Matrix user on someone's list.
    async fn load_contacts(self: Arc<Self>) {
        let Ok(handles) = self
            .db
            .watched_contacts(&format!("@{}", ids::CONTACT_DOMAIN))
            .await
        else {
            return;
        };
        for handle in handles {
            let Some(user_id) = ids::user_id_of_contact(&handle) else {
                continue;
            };
            let _ = self.fetch_profile(&user_id).await;
            let watcher = match self.hub() {
                Some(hub) => hub
                    .watchers_of(&handle)
                    .await
                    .ok()
                    .and_then(|w| w.into_iter().next()),
                None => None,
            };
            self.fetch_presence(&user_id, watcher.as_deref()).await;
            self.publish_contact(&user_id);
        }
    }

    // ---- MSN deliveries (Matrix → MSN)

    /// Asks the delivery task to hand `local` what waits for them.
    fn request_delivery(&self, local: &str) {
        if self.deliveries.lock().insert(local.to_string()) {
            self.deliveries_wake.notify_one();
        }
    }

    async fn delivery_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            let batch: Vec<String> = self.deliveries.lock().drain().collect();
            if batch.is_empty() {
                // notify_one keeps a wake-up given while nobody waits, so a
                // request made since the drain is not missed.
                tokio::select! {
                    _ = self.deliveries_wake.notified() => continue,
                    _ = shutdown.changed() => return,
                }
            }
            for local in batch {
                if let Err(e) = self.deliver_inbox(&local).await {
                    tracing::warn!(%local, error = %e, "cannot read waiting Matrix messages; will retry");
                }
            }
        }
    }

    async fn sweep_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(SWEEP) => {}
                _ = shutdown.changed() => return,
            }
            if let Ok(handles) = self.db.inbox_handles().await
                && let Some(hub) = self.hub()
            {
                for h in handles {
                    if hub
                        .session(&h)
                        .is_some_and(|s| s.presence().status.is_visible())
                    {
                        self.request_delivery(&h);
                    }
                }
            }
            match self
                .db
                .inbox_take_expired(INBOX_MAX_AGE.as_millis() as i64)
                .await
            {
                Ok(rows) => {
                    for row in rows {
                        crate::metrics::Metrics::inc(&self.metrics.bridge_delivery_failures);
                        if row.kind == "message" {
                            let text = format!(
                                "⚠ msngate: a message to {} was not delivered: they did not sign in to MSN within {} days.",
                                row.local_handle,
                                INBOX_MAX_AGE.as_secs() / 86_400
                            );
                            self.notice_to_room(&row.room_id, &row.local_handle, &text)
                                .await;
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot expire old Matrix deliveries"),
            }
            if let Err(e) = self
                .db
                .prune_processed(PROCESSED_MAX_AGE.as_millis() as i64)
                .await
            {
                tracing::debug!(error = %e, "cannot prune processed Matrix events");
            }
        }
    }

    /// An `m.notice` from `local`'s ghost into `room`, for Matrix senders.
    async fn notice_to_room(self: &Arc<Self>, room: &str, local: &str, text: &str) {
        self.enqueue(queue::Job::Send {
            target: queue::Target::Room {
                room: room.to_string(),
            },
            from: local.to_string(),
            content: serde_json::json!({"msgtype": "m.notice", "body": text}),
            origin: None,
        })
        .await;
    }
}

/// The bridge as the hub sees it.
struct MatrixNetwork(Arc<Inner>);

impl Network for MatrixNetwork {
    fn name(&self) -> &str {
        "matrix"
    }

    fn owns(&self, handle: &str) -> bool {
        handle
            .to_ascii_lowercase()
            .ends_with(&format!("@{}", ids::CONTACT_DOMAIN))
    }

    fn current_handle(&self, handle: &str) -> Option<String> {
        ids::current_contact_handle(handle)
    }

    fn resolve<'a>(&'a self, handle: &'a str) -> BoxFuture<'a, Option<Arc<Presence>>> {
        Box::pin(async move {
            let user_id = ids::user_id_of_contact(handle)?;
            if self.0.ids.is_ours(&user_id) {
                return None; // a ghost: add the MSN user directly
            }
            match self.0.fetch_profile(&user_id).await {
                Err(true) => return None,
                Err(false) => {
                    tracing::info!(%user_id, "homeserver unavailable; accepting the contact unchecked")
                }
                Ok(_) => {}
            }
            Some(
                self.0
                    .contact_presence(&user_id, &handle.to_ascii_lowercase()),
            )
        })
    }

    fn watch(&self, local: &str, remote: &str, watching: bool) {
        if !watching {
            return; // the direct chat stays: the Matrix user may still write
        }
        let Some(user_id) = ids::user_id_of_contact(remote) else {
            return;
        };
        let inner = self.0.clone();
        let local = local.to_string();
        tokio::spawn(async move {
            // The direct chat is the "friend request" on Matrix, and sharing a
            // room is what lets the bridge see the user's presence.
            inner
                .enqueue(queue::Job::EnsureDm {
                    local: local.clone(),
                    remote: user_id.clone(),
                })
                .await;
            inner.fetch_presence(&user_id, Some(&local)).await;
            inner.publish_contact(&user_id);
        });
    }

    fn invite<'a>(
        &'a self,
        conversation: Arc<Conversation>,
        inviter: Arc<ParticipantInfo>,
        remote: &'a str,
    ) -> BoxFuture<'a, Result<(), Unreachable>> {
        Box::pin(async move { self.0.invite_remote(conversation, inviter, remote).await })
    }

    fn local_presence(&self, presence: Arc<Presence>) {
        let inner = &self.0;
        inner.set_ghost_presence(&presence);
        let known = inner.ghost_names.lock().get(&*presence.handle).cloned();
        if known.as_ref().and_then(|n| n.as_deref()) != Some(&*presence.friendly_name) {
            inner.scan_wake.notify_one();
        }
        if presence.status.is_visible() {
            inner.request_delivery(&presence.handle);
        }
    }
}
