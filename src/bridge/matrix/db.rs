//! The bridge's tables (migrations/0002_matrix_bridge.sql), on the store's
//! pool: portable SQL with `$n` placeholders for SQLite and PostgreSQL.

use crate::store::now_millis;
use sqlx::{AnyPool, Row};
use std::sync::atomic::{AtomicI64, Ordering};

pub type DbResult<T> = Result<T, sqlx::Error>;

#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub job: String,
    pub attempts: i64,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct InboxRow {
    pub id: i64,
    pub local_handle: String,
    pub room_id: String,
    pub sender: String,
    pub sender_name: String,
    pub kind: String,
    pub payload: String,
    pub created_at: i64,
}

pub struct Db {
    pool: AnyPool,
    next_id: AtomicI64,
}

impl Db {
    /// Ids grow with time and past every stored one, so they order rows by
    /// arrival across restarts.
    pub async fn open(pool: AnyPool) -> DbResult<Db> {
        let mut max: i64 = 0;
        for table in ["matrix_outbox", "matrix_inbox"] {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT COALESCE(MAX(id), 0) FROM {table}"
            )))
            .fetch_one(&pool)
            .await?;
            max = max.max(row.try_get::<i64, _>(0)?);
        }
        let start = (now_millis() * 1000).max(max + 1);
        Ok(Db {
            pool,
            next_id: AtomicI64::new(start),
        })
    }

    /// Renames stored contacts whose handle is an old spelling (`current`
    /// gives the new one) on every account's lists, group memberships
    /// included, and bumps those accounts' list versions so MSNP2–9 clients
    /// fetch the lists again. A contact stored under both spellings is
    /// merged. Idempotent: a second run finds nothing. Returns how many
    /// contacts were renamed.
    pub async fn migrate_contact_handles(
        &self,
        domain: &str,
        current: impl Fn(&str) -> Option<String>,
    ) -> DbResult<usize> {
        // Old spellings contain `=`; current ones never do.
        let rows = sqlx::query("SELECT account_id, handle FROM contacts WHERE handle LIKE $1")
            .bind(format!("%=%@{domain}"))
            .fetch_all(&self.pool)
            .await?;
        let mut renamed = 0;
        for row in rows {
            let (account_id, old): (i64, String) = (row.try_get(0)?, row.try_get(1)?);
            let Some(new) = current(&old) else { continue };
            let mut tx = crate::store::begin_write(&self.pool).await?;
            // Copy to the new spelling (merging with a row already there),
            // then drop the old one.
            for copy in [
                "INSERT INTO contacts (account_id, handle, guid, stored_name, lists) \
                 SELECT account_id, $3, guid, stored_name, lists FROM contacts \
                 WHERE account_id = $1 AND handle = $2 \
                 ON CONFLICT (account_id, handle) DO UPDATE SET lists = contacts.lists | excluded.lists",
                "INSERT INTO group_members (account_id, handle, group_number) \
                 SELECT account_id, $3, group_number FROM group_members \
                 WHERE account_id = $1 AND handle = $2 ON CONFLICT DO NOTHING",
            ] {
                sqlx::query(copy)
                    .bind(account_id)
                    .bind(&old)
                    .bind(&new)
                    .execute(&mut *tx)
                    .await?;
            }
            for delete in [
                "DELETE FROM group_members WHERE account_id = $1 AND handle = $2",
                "DELETE FROM contacts WHERE account_id = $1 AND handle = $2",
            ] {
                sqlx::query(delete)
                    .bind(account_id)
                    .bind(&old)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("UPDATE accounts SET list_version = list_version + 1 WHERE id = $1")
                .bind(account_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            renamed += 1;
        }
        Ok(renamed)
    }

    pub fn new_id(&self) -> i64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    // ---- processed events

    pub async fn is_processed(&self, event_id: &str) -> DbResult<bool> {
        Ok(
            sqlx::query("SELECT 1 FROM matrix_processed_events WHERE event_id = $1")
                .bind(event_id)
                .fetch_optional(&self.pool)
                .await?
                .is_some(),
        )
    }

    pub async fn mark_processed(&self, event_id: &str) -> DbResult<()> {
        sqlx::query("INSERT INTO matrix_processed_events (event_id, processed_at) VALUES ($1, $2) ON CONFLICT (event_id) DO NOTHING")
            .bind(event_id)
            .bind(now_millis())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets processed events older than `max_age_ms` (a homeserver resends
    /// within minutes, not weeks).
    pub async fn prune_processed(&self, max_age_ms: i64) -> DbResult<u64> {
        Ok(
            sqlx::query("DELETE FROM matrix_processed_events WHERE processed_at < $1")
                .bind(now_millis() - max_age_ms)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    // ---- ghosts

    /// Every registered ghost with the display name last set.
    pub async fn ghosts(&self) -> DbResult<Vec<(String, Option<String>)>> {
        let rows = sqlx::query("SELECT handle, display_name FROM matrix_ghosts")
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    pub async fn save_ghost(
        &self,
        handle: &str,
        user_id: &str,
        display_name: Option<&str>,
    ) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO matrix_ghosts (handle, user_id, display_name, registered_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (handle) DO UPDATE SET display_name = excluded.display_name, user_id = excluded.user_id",
        )
        .bind(handle)
        .bind(user_id)
        .bind(display_name)
        .bind(now_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Accounts (handle, friendly name): what the ghosts must mirror.
    pub async fn accounts(&self) -> DbResult<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT handle, friendly_name FROM accounts")
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    pub async fn account_name(&self, handle: &str) -> DbResult<Option<String>> {
        let row = sqlx::query("SELECT friendly_name FROM accounts WHERE handle = $1")
            .bind(handle)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get(0)).transpose()
    }

    /// Remote handles of this network that someone has on a forward list.
    pub async fn watched_contacts(&self, domain_suffix: &str) -> DbResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT DISTINCT handle FROM contacts WHERE handle LIKE $1 AND (lists & 1) <> 0",
        )
        .bind(format!("%{domain_suffix}"))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(|r| r.try_get(0)).collect()
    }

    // ---- rooms

    pub async fn dm_room(&self, local: &str, matrix_user: &str) -> DbResult<Option<String>> {
        let row = sqlx::query(
            "SELECT room_id FROM matrix_dm_rooms WHERE local_handle = $1 AND matrix_user = $2",
        )
        .bind(local)
        .bind(matrix_user)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| r.try_get(0)).transpose()
    }

    /// The (MSN user, Matrix user) pair whose current direct chat is `room_id`.
    pub async fn dm_of_room(&self, room_id: &str) -> DbResult<Option<(String, String)>> {
        let row =
            sqlx::query("SELECT local_handle, matrix_user FROM matrix_dm_rooms WHERE room_id = $1")
                .bind(room_id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    pub async fn set_dm(&self, local: &str, matrix_user: &str, room_id: &str) -> DbResult<()> {
        let mut tx = crate::store::begin_write(&self.pool).await?;
        sqlx::query(
            "INSERT INTO matrix_dm_rooms (local_handle, matrix_user, room_id, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (local_handle, matrix_user) DO UPDATE SET room_id = excluded.room_id, created_at = excluded.created_at",
        )
        .bind(local)
        .bind(matrix_user)
        .bind(room_id)
        .bind(now_millis())
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO matrix_rooms (room_id, kind, group_key, created_at) VALUES ($1, 'dm', NULL, $2) ON CONFLICT (room_id) DO NOTHING")
            .bind(room_id)
            .bind(now_millis())
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO matrix_room_members (room_id, local_handle) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(room_id)
            .bind(local)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    /// The Matrix user left or the room is unusable: the next chat makes a new one.
    pub async fn forget_dm_room(&self, room_id: &str) -> DbResult<()> {
        sqlx::query("DELETE FROM matrix_dm_rooms WHERE room_id = $1")
            .bind(room_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn room_kind(&self, room_id: &str) -> DbResult<Option<String>> {
        let row = sqlx::query("SELECT kind FROM matrix_rooms WHERE room_id = $1")
            .bind(room_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get(0)).transpose()
    }

    pub async fn add_room(
        &self,
        room_id: &str,
        kind: &str,
        group_key: Option<&str>,
    ) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO matrix_rooms (room_id, kind, group_key, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (room_id) DO NOTHING",
        )
        .bind(room_id)
        .bind(kind)
        .bind(group_key)
        .bind(now_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn room_by_group_key(&self, key: &str) -> DbResult<Option<String>> {
        let row = sqlx::query("SELECT room_id FROM matrix_rooms WHERE group_key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get(0)).transpose()
    }

    pub async fn add_member(&self, room_id: &str, local: &str) -> DbResult<()> {
        sqlx::query("INSERT INTO matrix_room_members (room_id, local_handle) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(room_id)
            .bind(local)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn remove_member(&self, room_id: &str, local: &str) -> DbResult<()> {
        sqlx::query("DELETE FROM matrix_room_members WHERE room_id = $1 AND local_handle = $2")
            .bind(room_id)
            .bind(local)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn members(&self, room_id: &str) -> DbResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT local_handle FROM matrix_room_members WHERE room_id = $1 ORDER BY local_handle",
        )
        .bind(room_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(|r| r.try_get(0)).collect()
    }

    // ---- outgoing queue

    pub async fn outbox_insert(&self, id: i64, lane: &str, job: &str) -> DbResult<()> {
        sqlx::query("INSERT INTO matrix_outbox (id, lane, job, attempts, created_at, last_error) VALUES ($1, $2, $3, 0, $4, NULL)")
            .bind(id)
            .bind(lane)
            .bind(job)
            .bind(now_millis())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn outbox_all(&self) -> DbResult<Vec<(String, OutboxRow)>> {
        let rows = sqlx::query(
            "SELECT id, lane, job, attempts, created_at FROM matrix_outbox ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok((
                    r.try_get(1)?,
                    OutboxRow {
                        id: r.try_get(0)?,
                        job: r.try_get(2)?,
                        attempts: r.try_get(3)?,
                        created_at: r.try_get(4)?,
                    },
                ))
            })
            .collect()
    }

    pub async fn outbox_failed_attempt(&self, id: i64, attempts: i64, error: &str) -> DbResult<()> {
        sqlx::query("UPDATE matrix_outbox SET attempts = $2, last_error = $3 WHERE id = $1")
            .bind(id)
            .bind(attempts)
            .bind(error)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn outbox_delete(&self, id: i64) -> DbResult<()> {
        sqlx::query("DELETE FROM matrix_outbox WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- inbox (Matrix → MSN, waiting for the MSN user)

    /// Queues a delivery and marks its event handled, atomically: a
    /// homeserver resending the event finds it done, and a crash before the
    /// commit leaves the event for the homeserver to resend.
    pub async fn inbox_insert(&self, rows: &[InboxRow], event_id: &str) -> DbResult<()> {
        let mut tx = crate::store::begin_write(&self.pool).await?;
        for row in rows {
            sqlx::query(
                "INSERT INTO matrix_inbox (id, local_handle, room_id, sender, sender_name, kind, payload, event_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(row.id)
            .bind(&row.local_handle)
            .bind(&row.room_id)
            .bind(&row.sender)
            .bind(&row.sender_name)
            .bind(&row.kind)
            .bind(&row.payload)
            .bind(event_id)
            .bind(row.created_at)
            .execute(&mut *tx)
            .await?;
        }
        if !event_id.is_empty() {
            sqlx::query("INSERT INTO matrix_processed_events (event_id, processed_at) VALUES ($1, $2) ON CONFLICT (event_id) DO NOTHING")
                .bind(event_id)
                .bind(now_millis())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    pub async fn inbox_for(&self, local: &str) -> DbResult<Vec<InboxRow>> {
        let rows = sqlx::query(
            "SELECT id, local_handle, room_id, sender, sender_name, kind, payload, created_at FROM matrix_inbox \
             WHERE local_handle = $1 ORDER BY id",
        )
        .bind(local)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(InboxRow {
                    id: r.try_get(0)?,
                    local_handle: r.try_get(1)?,
                    room_id: r.try_get(2)?,
                    sender: r.try_get(3)?,
                    sender_name: r.try_get(4)?,
                    kind: r.try_get(5)?,
                    payload: r.try_get(6)?,
                    created_at: r.try_get(7)?,
                })
            })
            .collect()
    }

    pub async fn inbox_handles(&self) -> DbResult<Vec<String>> {
        let rows = sqlx::query("SELECT DISTINCT local_handle FROM matrix_inbox")
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(|r| r.try_get(0)).collect()
    }

    pub async fn inbox_delete(&self, id: i64) -> DbResult<()> {
        sqlx::query("DELETE FROM matrix_inbox WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Rows older than `max_age_ms`, removed and returned (their senders are told).
    pub async fn inbox_take_expired(&self, max_age_ms: i64) -> DbResult<Vec<InboxRow>> {
        let cutoff = now_millis() - max_age_ms;
        let rows = sqlx::query(
            "SELECT id, local_handle, room_id, sender, sender_name, kind, payload, created_at FROM matrix_inbox WHERE created_at < $1 ORDER BY id",
        )
        .bind(cutoff)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for r in rows {
            let row = InboxRow {
                id: r.try_get(0)?,
                local_handle: r.try_get(1)?,
                room_id: r.try_get(2)?,
                sender: r.try_get(3)?,
                sender_name: r.try_get(4)?,
                kind: r.try_get(5)?,
                payload: r.try_get(6)?,
                created_at: r.try_get(7)?,
            };
            self.inbox_delete(row.id).await?;
            out.push(row);
        }
        Ok(out)
    }

    // ---- double puppets

    pub async fn puppet(&self, local: &str) -> DbResult<Option<(String, String)>> {
        let row =
            sqlx::query("SELECT user_id, access_token FROM matrix_puppets WHERE local_handle = $1")
                .bind(local)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    /// The MSN user whose linked Matrix account `user_id` is.
    pub async fn puppet_owner(&self, user_id: &str) -> DbResult<Option<String>> {
        let row = sqlx::query("SELECT local_handle FROM matrix_puppets WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get(0)).transpose()
    }

    pub async fn set_puppet(&self, local: &str, user_id: &str, token: &str) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO matrix_puppets (local_handle, user_id, access_token, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (local_handle) DO UPDATE SET user_id = excluded.user_id, access_token = excluded.access_token",
        )
        .bind(local)
        .bind(user_id)
        .bind(token)
        .bind(now_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn remove_puppet(&self, local: &str) -> DbResult<bool> {
        Ok(
            sqlx::query("DELETE FROM matrix_puppets WHERE local_handle = $1")
                .bind(local)
                .execute(&self.pool)
                .await?
                .rows_affected()
                > 0,
        )
    }
}
