//! The persistent queue of outgoing homeserver requests.
//!
//! Every request that changes something on the homeserver (messages, rooms,
//! invitations) is a [`Job`], written to `matrix_outbox` before it is tried.
//! Jobs run in order within a lane (one room), lanes run side by side.
//! Transient failures (homeserver down or restarting, 5xx, 429 with
//! `retry_after_ms`) are retried with backoff for up to [`GIVE_UP_AFTER`];
//! a job is deleted only once it succeeded or its failure was reported to
//! the MSN sender. Jobs left at shutdown run at the next start.
//!
//! Typing and presence are not queued: they are refreshed continuously, and
//! a stale one is worse than none.

use super::Inner;
use super::api::{Actor, ApiError};
use crate::store::now_millis;
use parking_lot::Mutex;
use ruma::api::client::{config, membership, message, room};
use ruma::events::GlobalAccountDataEventType;
use ruma::serde::Raw;
use ruma::{OwnedRoomId, OwnedTransactionId, OwnedUserId};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::Notify;

/// How long transient failures are retried before the job is given up and
/// its sender told.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(15 * 60);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where a job acts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// The direct chat between MSN user `local` and Matrix user `remote`,
    /// created when first needed.
    Dm { local: String, remote: String },
    /// An existing room.
    Room { room: String },
    /// The room made for a multi-party switchboard (by a `CreateGroup` job
    /// earlier in the same lane).
    Group { key: String },
}

impl Target {
    pub fn lane(&self) -> String {
        match self {
            Target::Dm { local, remote } => format!("dm:{local}:{remote}"),
            Target::Room { room } => format!("room:{room}"),
            Target::Group { key } => format!("group:{key}"),
        }
    }
}

/// Who to tell when a message cannot be delivered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Origin {
    /// The MSN sender.
    pub local: String,
    /// The Matrix user the notice comes from (the chat partner, or the bot).
    pub notify_as: String,
    /// The start of the message, to name it.
    pub excerpt: String,
    /// The room of a multi-party chat (the notice goes there), if not a direct chat.
    #[serde(default)]
    pub room: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Job {
    /// An `m.room.message` from MSN user `from`'s ghost.
    Send {
        target: Target,
        from: String,
        content: serde_json::Value,
        #[serde(default)]
        origin: Option<Origin>,
    },
    /// The direct chat exists and the Matrix user is invited.
    EnsureDm { local: String, remote: String },
    /// Creates a multi-party room: `creator`'s ghost makes it, invites the
    /// Matrix users and the other ghosts, which join.
    CreateGroup {
        key: String,
        creator: String,
        locals: Vec<String>,
        remotes: Vec<String>,
    },
    /// `by`'s ghost invites `user` (a Matrix user ID); a ghost invitee joins at once.
    Invite {
        target: Target,
        by: String,
        user: String,
    },
    /// `local`'s ghost accepts an invitation (and records a direct chat in `m.direct`).
    Join {
        room: String,
        local: String,
        #[serde(default)]
        direct_with: Option<String>,
    },
    /// `local`'s ghost leaves.
    Leave { room: String, local: String },
}

impl Job {
    pub fn lane(&self) -> String {
        match self {
            Job::Send { target, .. } | Job::Invite { target, .. } => target.lane(),
            Job::EnsureDm { local, remote } => Target::Dm {
                local: local.clone(),
                remote: remote.clone(),
            }
            .lane(),
            Job::CreateGroup { key, .. } => Target::Group { key: key.clone() }.lane(),
            Job::Join { room, .. } | Job::Leave { room, .. } => {
                Target::Room { room: room.clone() }.lane()
            }
        }
    }
}

struct Queued {
    id: i64,
    job: Job,
    attempts: i64,
    created_at: i64,
}

#[derive(Default)]
pub struct Queue {
    lanes: Mutex<HashMap<String, VecDeque<Queued>>>,
    /// Signalled whenever a lane runs dry (for `flush`).
    drained: Notify,
}

impl Queue {
    pub fn len(&self) -> usize {
        self.lanes.lock().values().map(VecDeque::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until every job ran or `within` passed; true when empty.
    pub async fn flush(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let drained = self.drained.notified();
            if self.is_empty() {
                return true;
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                return self.is_empty();
            }
        }
    }
}

fn backoff(attempts: i64) -> Duration {
    let exp = attempts.clamp(1, 8) as u32 - 1;
    (Duration::from_millis(250) * 2u32.pow(exp)).min(MAX_BACKOFF)
}

impl Inner {
    /// Persists `job` and starts it (in order after earlier jobs of its lane).
    /// When it cannot be persisted it still runs: losing durability beats
    /// losing the request.
    pub(super) async fn enqueue(self: &Arc<Self>, job: Job) {
        self.enqueue_with(job, true).await;
    }

    /// Persists `job` and starts it; false (and nothing runs) when it cannot
    /// be persisted, so that the sender can be told it was not sent.
    pub(super) async fn enqueue_durable(self: &Arc<Self>, job: Job) -> bool {
        self.enqueue_with(job, false).await
    }

    async fn enqueue_with(self: &Arc<Self>, job: Job, run_unpersisted: bool) -> bool {
        let id = self.db.new_id();
        let lane = job.lane();
        let persisted = match serde_json::to_string(&job) {
            Ok(text) => match self.db.outbox_insert(id, &lane, &text).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(error = %e, %lane, run_unpersisted, "cannot persist a Matrix request");
                    false
                }
            },
            Err(e) => {
                tracing::error!(error = %e, run_unpersisted, "cannot serialise a Matrix request");
                false
            }
        };
        if persisted || run_unpersisted {
            self.push_job(
                lane,
                Queued {
                    id,
                    job,
                    attempts: 0,
                    created_at: now_millis(),
                },
            );
        }
        persisted
    }

    /// Re-queues the jobs a previous run left.
    pub(super) async fn load_queue(self: &Arc<Self>) -> Result<usize, sqlx::Error> {
        let rows = self.db.outbox_all().await?;
        let n = rows.len();
        for (lane, row) in rows {
            match serde_json::from_str::<Job>(&row.job) {
                Ok(job) => self.push_job(
                    lane,
                    Queued {
                        id: row.id,
                        job,
                        attempts: row.attempts,
                        created_at: row.created_at,
                    },
                ),
                Err(e) => {
                    tracing::error!(id = row.id, error = %e, job = %row.job, "unreadable queued Matrix request dropped");
                    crate::metrics::Metrics::inc(&self.metrics.bridge_delivery_failures);
                    self.db.outbox_delete(row.id).await?;
                }
            }
        }
        Ok(n)
    }

    fn push_job(self: &Arc<Self>, lane: String, job: Queued) {
        self.metrics
            .bridge_queue_depth
            .fetch_add(1, Ordering::Relaxed);
        let start = {
            let mut lanes = self.queue.lanes.lock();
            match lanes.get_mut(&lane) {
                Some(q) => {
                    q.push_back(job);
                    false
                }
                None => {
                    lanes.insert(lane.clone(), VecDeque::from([job]));
                    true
                }
            }
        };
        if start {
            // Supervised: a lane whose task died would keep its jobs queued
            // and never run them (a lane starts only when it is new).
            let inner = self.clone();
            let shutdown = inner.shutdown.clone();
            crate::supervise::supervise(
                "matrix request lane",
                inner.metrics.clone(),
                shutdown,
                move || inner.clone().run_lane(lane.clone()),
            );
        }
    }

    async fn run_lane(self: Arc<Self>, lane: String) {
        loop {
            let next = {
                let mut lanes = self.queue.lanes.lock();
                match lanes.get_mut(&lane).and_then(|q| q.front_mut()) {
                    Some(q) => Some((q.id, q.job.clone(), q.attempts, q.created_at)),
                    None => {
                        lanes.remove(&lane);
                        None
                    }
                }
            };
            let Some((id, job, mut attempts, created_at)) = next else {
                self.queue.drained.notify_waiters();
                return;
            };
            loop {
                let result = self.execute(id, &job).await;
                match result {
                    Ok(()) => {
                        tracing::debug!(%lane, id, "Matrix request done");
                        if self.hs_down.swap(false, Ordering::Relaxed) {
                            crate::metrics::Metrics::inc(&self.metrics.bridge_reconnects);
                            tracing::info!("the homeserver accepts requests again");
                        }
                        break;
                    }
                    Err(e)
                        if e.is_transient()
                            && now_millis() - created_at < GIVE_UP_AFTER.as_millis() as i64 =>
                    {
                        attempts += 1;
                        let wait = e.retry_after().unwrap_or_else(|| backoff(attempts));
                        if !self.hs_down.swap(true, Ordering::Relaxed) || attempts == 1 {
                            tracing::warn!(%lane, error = %e, retry_in_ms = wait.as_millis() as u64, "Matrix request failed; will retry");
                        }
                        if let Err(db) = self
                            .db
                            .outbox_failed_attempt(id, attempts, &e.to_string())
                            .await
                        {
                            tracing::debug!(error = %db, "cannot record a failed attempt");
                        }
                        tokio::time::sleep(wait).await;
                    }
                    Err(e) => {
                        tracing::warn!(%lane, error = %e, ?job, "Matrix request failed for good");
                        self.report_failed_job(&job, &e).await;
                        break;
                    }
                }
            }
            if let Err(e) = self.db.outbox_delete(id).await {
                tracing::error!(error = %e, id, "cannot delete a finished Matrix request; it will run again at the next start");
            }
            {
                let mut lanes = self.queue.lanes.lock();
                if let Some(q) = lanes.get_mut(&lane) {
                    q.pop_front();
                }
            }
            self.metrics
                .bridge_queue_depth
                .fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// A job that will never succeed: the MSN sender of a message is told.
    async fn report_failed_job(self: &Arc<Self>, job: &Job, error: &ApiError) {
        if let Job::Send { origin, target, .. } = job {
            crate::metrics::Metrics::inc(&self.metrics.bridge_delivery_failures);
            let Some(origin) = origin else { return };
            let mut origin = origin.clone();
            if origin.room.is_none() {
                origin.room = match target {
                    Target::Room { room } => Some(room.clone()),
                    Target::Group { key } => self.db.room_by_group_key(key).await.ok().flatten(),
                    Target::Dm { .. } => None,
                };
            }
            let reason = match error {
                ApiError::Transport(_) => {
                    "the Matrix homeserver has been unreachable for too long".to_string()
                }
                ApiError::Status {
                    errcode, message, ..
                } if errcode == "M_FORBIDDEN" => format!("not allowed ({message})"),
                e => e.to_string(),
            };
            self.notify_undelivered(&origin, &reason).await;
        }
    }

    fn user_id(s: &str) -> Result<OwnedUserId, ApiError> {
        OwnedUserId::try_from(s).map_err(|e| ApiError::Invalid(format!("{s}: {e}")))
    }

    fn room_id(s: &str) -> Result<OwnedRoomId, ApiError> {
        OwnedRoomId::try_from(s).map_err(|e| ApiError::Invalid(format!("{s}: {e}")))
    }

    fn db_err(e: sqlx::Error) -> ApiError {
        // Transient: the database comes back, and the job must not be lost.
        ApiError::Transport(format!("database: {e}"))
    }

    async fn execute(self: &Arc<Self>, id: i64, job: &Job) -> Result<(), ApiError> {
        match job {
            Job::Send {
                target,
                from,
                content,
                ..
            } => {
                let mut room = self.resolve_target(target).await?;
                let ghost = self.ensure_ghost(from).await?;
                let body = serde_json::value::to_raw_value(content)
                    .map_err(|e| ApiError::Invalid(e.to_string()))?;
                if let Some((puppet, token)) = self.db.puppet(from).await.map_err(Self::db_err)?
                    && self
                        .send_as_puppet(id, &room, &ghost, &puppet, &token, &body)
                        .await?
                {
                    return Ok(());
                }
                let mut retried = false;
                loop {
                    let request = message::send_message_event::v3::Request::new_raw(
                        Self::room_id(&room)?,
                        OwnedTransactionId::from(format!("msngate.{id}")),
                        "m.room.message".into(),
                        Raw::from_json(body.clone()),
                    );
                    match self.hs.send(request, Actor::Ghost(&ghost)).await {
                        Ok(_) => break,
                        // The direct chat was left or lost: start a new one, once.
                        Err(e)
                            if !retried
                                && matches!(target, Target::Dm { .. })
                                && e.errcode() == Some("M_FORBIDDEN") =>
                        {
                            tracing::info!(%room, error = %e, "direct chat unusable; creating a new one");
                            self.db.forget_dm_room(&room).await.map_err(Self::db_err)?;
                            room = self.resolve_target(target).await?;
                            retried = true;
                        }
                        Err(e) => return Err(e),
                    }
                }
                self.after_ghost_action(from);
                Ok(())
            }
            Job::EnsureDm { local, remote } => {
                self.resolve_target(&Target::Dm {
                    local: local.clone(),
                    remote: remote.clone(),
                })
                .await?;
                Ok(())
            }
            Job::CreateGroup {
                key,
                creator,
                locals,
                remotes,
            } => {
                if self
                    .db
                    .room_by_group_key(key)
                    .await
                    .map_err(Self::db_err)?
                    .is_some()
                {
                    return Ok(());
                }
                let creator_id = self.ensure_ghost(creator).await?;
                let mut invite = Vec::new();
                for r in remotes {
                    invite.push(Self::user_id(r)?);
                }
                for l in locals.iter().filter(|l| *l != creator) {
                    invite.push(self.ensure_ghost(l).await?);
                }
                let mut request = room::create_room::v3::Request::new();
                request.invite = invite;
                request.preset = Some(room::create_room::v3::RoomPreset::TrustedPrivateChat);
                let created = self.hs.send(request, Actor::Ghost(&creator_id)).await?;
                let room = created.room_id.to_string();
                self.db
                    .add_room(&room, "group", Some(key))
                    .await
                    .map_err(Self::db_err)?;
                self.db
                    .add_member(&room, creator)
                    .await
                    .map_err(Self::db_err)?;
                self.chats
                    .room_resolved(&Target::Group { key: key.clone() }, &room);
                for l in locals.iter().filter(|l| *l != creator) {
                    self.join_ghost(&room, l).await?;
                }
                self.after_ghost_action(creator);
                Ok(())
            }
            Job::Invite { target, by, user } => {
                let room = self.resolve_target(target).await?;
                let inviter = self.ensure_ghost(by).await?;
                let invitee = match self.ids.handle_of(user) {
                    Some(local) => self.ensure_ghost(&local).await?,
                    None => Self::user_id(user)?,
                };
                let request = membership::invite_user::v3::Request::new(
                    Self::room_id(&room)?,
                    membership::invite_user::v3::InvitationRecipient::UserId(
                        membership::invite_user::v3::InviteUserId::new(invitee),
                    ),
                );
                match self.hs.send(request, Actor::Ghost(&inviter)).await {
                    Ok(_) => {}
                    // Already invited or joined: nothing to do.
                    Err(ApiError::Status {
                        status: 403,
                        message,
                        ..
                    }) if message.contains("already") => {}
                    Err(e) => return Err(e),
                }
                if let Some(local) = self.ids.handle_of(user) {
                    self.join_ghost(&room, &local).await?;
                }
                Ok(())
            }
            Job::Join {
                room,
                local,
                direct_with,
            } => {
                // Events of the room that arrive meanwhile wait, so they are
                // handled after the earlier ones read by the backfill.
                let turn = self.room_locks.lock(room).await;
                self.join_ghost(room, local).await?;
                self.backfill(room, local).await;
                drop(turn);
                if let Some(remote) = direct_with {
                    self.add_direct(local, remote, room).await;
                } else {
                    // A ring into this room waited for the ghost to be in it
                    // (to list the room's members).
                    self.request_delivery(local);
                }
                self.after_ghost_action(local);
                Ok(())
            }
            Job::Leave { room, local } => {
                let ghost = self.ensure_ghost(local).await?;
                let request = membership::leave_room::v3::Request::new(Self::room_id(room)?);
                match self.hs.send(request, Actor::Ghost(&ghost)).await {
                    Ok(_)
                    | Err(ApiError::Status {
                        status: 403 | 404, ..
                    }) => {}
                    Err(e) => return Err(e),
                }
                self.db
                    .remove_member(room, local)
                    .await
                    .map_err(Self::db_err)?;
                Ok(())
            }
        }
    }

    /// Double puppeting: sends from the MSN user's own Matrix account,
    /// which the ghost first invites into the room. `Ok(false)`: that
    /// account cannot send here (token revoked, not allowed in): the ghost
    /// sends instead.
    async fn send_as_puppet(
        self: &Arc<Self>,
        id: i64,
        room: &str,
        ghost: &OwnedUserId,
        puppet: &str,
        token: &str,
        body: &serde_json::value::RawValue,
    ) -> Result<bool, ApiError> {
        for attempt in 0..2 {
            let request = message::send_message_event::v3::Request::new_raw(
                Self::room_id(room)?,
                OwnedTransactionId::from(format!("msngate.{id}")),
                "m.room.message".into(),
                Raw::from_json(body.to_owned()),
            );
            match self.hs.send(request, Actor::Token(token)).await {
                Ok(_) => return Ok(true),
                Err(e) if matches!(e.errcode(), Some("M_UNKNOWN_TOKEN" | "M_MISSING_TOKEN")) => {
                    tracing::warn!(%puppet, "the linked Matrix account's token is refused; sending as the ghost");
                    return Ok(false);
                }
                Err(e) if attempt == 0 && e.errcode() == Some("M_FORBIDDEN") => {
                    let invite = membership::invite_user::v3::Request::new(
                        Self::room_id(room)?,
                        membership::invite_user::v3::InvitationRecipient::UserId(
                            membership::invite_user::v3::InviteUserId::new(Self::user_id(puppet)?),
                        ),
                    );
                    match self.hs.send(invite, Actor::Ghost(ghost)).await {
                        Ok(_) => {}
                        Err(ApiError::Status {
                            status: 403,
                            message,
                            ..
                        }) if message.contains("already") => {}
                        Err(e) if e.is_transient() => return Err(e),
                        Err(_) => return Ok(false),
                    }
                    let join = membership::join_room_by_id::v3::Request::new(Self::room_id(room)?);
                    match self.hs.send(join, Actor::Token(token)).await {
                        Ok(_) => {}
                        Err(e) if e.is_transient() && e.status() != Some(401) => return Err(e),
                        Err(_) => return Ok(false),
                    }
                }
                Err(e) if e.is_transient() => return Err(e),
                Err(_) => return Ok(false),
            }
        }
        Ok(false)
    }

    async fn join_ghost(self: &Arc<Self>, room: &str, local: &str) -> Result<(), ApiError> {
        let ghost = self.ensure_ghost(local).await?;
        let request = membership::join_room_by_id::v3::Request::new(Self::room_id(room)?);
        self.hs.send(request, Actor::Ghost(&ghost)).await?;
        self.db
            .add_member(room, local)
            .await
            .map_err(Self::db_err)?;
        Ok(())
    }

    /// Messages sent to a room before the ghost joined never reached the
    /// appservice (the homeserver sends a room's events only once one of our
    /// users is in it): read them now. Handled ones are skipped by event id.
    /// The caller holds the room's lock (`room_locks`).
    async fn backfill(self: &Arc<Self>, room: &str, local: &str) {
        let result: Result<(), ApiError> = async {
            let ghost = self.ensure_ghost(local).await?;
            let mut request =
                message::get_message_events::v3::Request::backward(Self::room_id(room)?);
            request.limit = ruma::UInt::from(50u32);
            let response = self.hs.send(request, Actor::Ghost(&ghost)).await?;
            for raw in response.chunk.iter().rev() {
                let Ok(mut event) = serde_json::from_str::<serde_json::Value>(raw.json().get())
                else {
                    continue;
                };
                if event.get("type").and_then(|t| t.as_str()) != Some("m.room.message") {
                    continue;
                }
                if event.get("room_id").is_none() {
                    event["room_id"] = room.into();
                }
                self.handle_event(&event).await.map_err(Self::db_err)?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(%room, %local, error = %e, "cannot read the messages sent before the ghost joined");
        }
    }

    /// The room a target names, creating the direct chat if there is none.
    pub(super) async fn resolve_target(
        self: &Arc<Self>,
        target: &Target,
    ) -> Result<String, ApiError> {
        match target {
            Target::Room { room } => Ok(room.clone()),
            Target::Group { key } => self
                .db
                .room_by_group_key(key)
                .await
                .map_err(Self::db_err)?
                .ok_or_else(|| ApiError::Invalid(format!("group room {key} was never created"))),
            Target::Dm { local, remote } => {
                if let Some(room) = self.db.dm_room(local, remote).await.map_err(Self::db_err)? {
                    return Ok(room);
                }
                let ghost = self.ensure_ghost(local).await?;
                let mut request = room::create_room::v3::Request::new();
                request.invite = vec![Self::user_id(remote)?];
                request.is_direct = true;
                request.preset = Some(room::create_room::v3::RoomPreset::TrustedPrivateChat);
                let created = self.hs.send(request, Actor::Ghost(&ghost)).await?;
                let room = created.room_id.to_string();
                self.db
                    .set_dm(local, remote, &room)
                    .await
                    .map_err(Self::db_err)?;
                tracing::info!(%local, %remote, %room, "direct chat created");
                self.add_direct(local, remote, &room).await;
                self.chats.room_resolved(target, &room);
                self.after_ghost_action(local);
                Ok(room)
            }
        }
    }

    /// Records `room` as the direct chat with `remote` in the ghost's
    /// `m.direct` account data, so Matrix clients list it under people.
    /// Best effort: a failure only affects how clients file the room.
    async fn add_direct(self: &Arc<Self>, local: &str, remote: &str, room: &str) {
        let result: Result<(), ApiError> = async {
            let ghost = self.ensure_ghost(local).await?;
            let get = config::get_global_account_data::v3::Request::new(
                ghost.clone(),
                GlobalAccountDataEventType::Direct,
            );
            let mut map: serde_json::Map<String, serde_json::Value> =
                match self.hs.send(get, Actor::Ghost(&ghost)).await {
                    Ok(response) => {
                        serde_json::from_str(response.account_data.json().get()).unwrap_or_default()
                    }
                    Err(ApiError::Status { status: 404, .. }) => serde_json::Map::new(),
                    Err(e) => return Err(e),
                };
            let rooms = map
                .entry(remote.to_string())
                .or_insert_with(|| serde_json::Value::Array(Vec::new()));
            if let Some(list) = rooms.as_array_mut() {
                if list.iter().any(|r| r.as_str() == Some(room)) {
                    return Ok(());
                }
                list.push(serde_json::Value::String(room.to_string()));
            }
            let raw = serde_json::value::to_raw_value(&map)
                .map_err(|e| ApiError::Invalid(e.to_string()))?;
            let set = config::set_global_account_data::v3::Request::new_raw(
                ghost.clone(),
                GlobalAccountDataEventType::Direct,
                Raw::from_json(raw),
            );
            self.hs.send(set, Actor::Ghost(&ghost)).await?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(%local, %remote, %room, error = %e, "cannot record the direct chat in m.direct");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_round_trip_and_lanes_keep_room_order() {
        let job = Job::Send {
            target: Target::Dm {
                local: "a@x.com".into(),
                remote: "@b:x.org".into(),
            },
            from: "a@x.com".into(),
            content: serde_json::json!({"msgtype": "m.text", "body": "hi ✓"}),
            origin: None,
        };
        let text = serde_json::to_string(&job).unwrap();
        let back: Job = serde_json::from_str(&text).unwrap();
        assert_eq!(back.lane(), "dm:a@x.com:@b:x.org");
        assert_eq!(
            Job::EnsureDm {
                local: "a@x.com".into(),
                remote: "@b:x.org".into()
            }
            .lane(),
            back.lane()
        );
        assert_eq!(backoff(1), Duration::from_millis(250));
        assert_eq!(backoff(20), MAX_BACKOFF);
    }
}
