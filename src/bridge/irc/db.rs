//! The bridge's tables (migrations/0003_irc_bridge.sql).

use super::text::LineKind;
use crate::store::now_millis;
use parking_lot::Mutex;
use sqlx::{AnyPool, Row};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// One queued IRC line of an MSN user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRow {
    pub id: i64,
    pub contact: String,
    pub kind: LineKind,
    pub body: String,
    /// When the MSN user sent it (Unix ms).
    pub created_at: i64,
}

/// A message from IRC waiting for its MSN recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InRow {
    pub id: i64,
    pub contact: String,
    pub contact_name: String,
    pub body: String,
}

/// How a user's IRC connection proves its identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// SASL PLAIN during registration.
    Sasl { account: String, password: String },
    /// `PRIVMSG NickServ :IDENTIFY account password` after registration.
    NickServ { account: String, password: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialEntry {
    pub handle: String,
    pub network: String,
    pub method: String,
    pub account: String,
}

pub struct Db {
    pool: AnyPool,
    next_id: AtomicI64,
    /// Serialises id allocation and insertion per (user, network), so a
    /// user's rows commit in id order and a reader's cursor never skips one.
    enqueue_locks: Mutex<HashMap<(String, String), UserLock>>,
}

type Result<T> = std::result::Result<T, sqlx::Error>;
type UserLock = Arc<tokio::sync::Mutex<()>>;

impl Db {
    pub async fn open(pool: AnyPool) -> Result<Db> {
        let mut next = 1i64;
        for table in ["irc_outbox", "irc_inbox"] {
            let max: Option<i64> =
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT MAX(id) FROM {table}")))
                    .fetch_one(&pool)
                    .await?;
            next = next.max(max.unwrap_or(0) + 1);
        }
        Ok(Db {
            pool,
            next_id: AtomicI64::new(next),
            enqueue_locks: Mutex::new(HashMap::new()),
        })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    fn lock_for(&self, handle: &str, network: &str) -> UserLock {
        let mut locks = self.enqueue_locks.lock();
        if locks.len() > 4096 {
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        locks
            .entry((handle.to_string(), network.to_string()))
            .or_default()
            .clone()
    }

    /// Queues lines in one transaction; returns them with their ids.
    pub async fn enqueue(
        &self,
        handle: &str,
        network: &str,
        contact: &str,
        kind: LineKind,
        bodies: &[String],
    ) -> Result<Vec<OutRow>> {
        let lock = self.lock_for(handle, network);
        let _guard = lock.lock().await;
        let mut tx = crate::store::begin_write(&self.pool).await?;
        let mut rows = Vec::with_capacity(bodies.len());
        let now = now_millis();
        for body in bodies {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            sqlx::query("INSERT INTO irc_outbox (id, handle, network, contact, kind, body, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .bind(id)
                .bind(handle)
                .bind(network)
                .bind(contact)
                .bind(kind.as_str())
                .bind(body)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            rows.push(OutRow {
                id,
                contact: contact.to_string(),
                kind,
                body: body.clone(),
                created_at: now,
            });
        }
        tx.commit().await?;
        Ok(rows)
    }

    /// A user's queued lines after `after` (an id), oldest first.
    pub async fn pending(
        &self,
        handle: &str,
        network: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<OutRow>> {
        let rows = sqlx::query(
            "SELECT id, contact, kind, body, created_at FROM irc_outbox WHERE handle = $1 AND network = $2 AND id > $3 ORDER BY id LIMIT $4",
        )
        .bind(handle)
        .bind(network)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OutRow {
                    id: r.try_get(0)?,
                    contact: r.try_get(1)?,
                    kind: LineKind::from_stored(&r.try_get::<String, _>(2)?),
                    body: r.try_get(3)?,
                    created_at: r.try_get(4)?,
                })
            })
            .collect()
    }

    pub async fn delete_out(&self, ids: &[i64]) -> Result<()> {
        for chunk in ids.chunks(200) {
            let list = chunk
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",");
            // Only integers are formatted into the statement.
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM irc_outbox WHERE id IN ({list})"
            )))
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    pub async fn count_out(&self) -> Result<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM irc_outbox")
            .fetch_one(&self.pool)
            .await
    }

    pub async fn inbox_add(
        &self,
        handle: &str,
        network: &str,
        contact: &str,
        contact_name: &str,
        body: &str,
    ) -> Result<()> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        sqlx::query(
            "INSERT INTO irc_inbox (id, handle, network, contact, contact_name, body, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(handle)
        .bind(network)
        .bind(contact)
        .bind(contact_name)
        .bind(body)
        .bind(now_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn inbox(&self, handle: &str, network: &str) -> Result<Vec<InRow>> {
        let rows = sqlx::query("SELECT id, contact, contact_name, body FROM irc_inbox WHERE handle = $1 AND network = $2 ORDER BY id LIMIT 1000")
            .bind(handle)
            .bind(network)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(InRow {
                    id: r.try_get(0)?,
                    contact: r.try_get(1)?,
                    contact_name: r.try_get(2)?,
                    body: r.try_get(3)?,
                })
            })
            .collect()
    }

    pub async fn inbox_delete(&self, id: i64) -> Result<()> {
        sqlx::query("DELETE FROM irc_inbox WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn credentials(&self, handle: &str, network: &str) -> Result<Option<Credentials>> {
        let row = sqlx::query("SELECT method, account, secret FROM irc_credentials WHERE handle = $1 AND network = $2")
            .bind(handle)
            .bind(network)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let (method, account, password): (String, String, String) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        Ok(match method.as_str() {
            "sasl" => Some(Credentials::Sasl { account, password }),
            "nickserv" => Some(Credentials::NickServ { account, password }),
            _ => None,
        })
    }

    pub async fn puppets(&self, network: &str) -> Result<Vec<String>> {
        sqlx::query_scalar("SELECT handle FROM irc_puppets WHERE network = $1 ORDER BY handle")
            .bind(network)
            .fetch_all(&self.pool)
            .await
    }

    pub async fn set_puppet(&self, handle: &str, network: &str, nick: Option<&str>) -> Result<()> {
        let mut tx = crate::store::begin_write(&self.pool).await?;
        sqlx::query("DELETE FROM irc_puppets WHERE handle = $1 AND network = $2")
            .bind(handle)
            .bind(network)
            .execute(&mut *tx)
            .await?;
        if let Some(nick) = nick {
            sqlx::query("INSERT INTO irc_puppets (handle, network, nick) VALUES ($1, $2, $3)")
                .bind(handle)
                .bind(network)
                .bind(nick)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    /// Records that `channel` was offered to `handle`; false if it already was.
    pub async fn mark_offered(&self, handle: &str, network: &str, channel: &str) -> Result<bool> {
        let done = sqlx::query("INSERT INTO irc_offers (handle, network, channel) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(handle)
            .bind(network)
            .bind(channel)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

/// `msngate irc credentials set`: stores a user's credentials for a network.
pub async fn set_credentials(
    pool: &AnyPool,
    handle: &str,
    network: &str,
    credentials: &Credentials,
) -> Result<()> {
    let (method, account, secret) = match credentials {
        Credentials::Sasl { account, password } => ("sasl", account, password),
        Credentials::NickServ { account, password } => ("nickserv", account, password),
    };
    let mut tx = crate::store::begin_write(pool).await?;
    sqlx::query("DELETE FROM irc_credentials WHERE handle = $1 AND network = $2")
        .bind(handle)
        .bind(network)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO irc_credentials (handle, network, method, account, secret) VALUES ($1, $2, $3, $4, $5)")
        .bind(handle)
        .bind(network)
        .bind(method)
        .bind(account)
        .bind(secret)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// `msngate irc credentials del`: true if there were credentials.
pub async fn delete_credentials(pool: &AnyPool, handle: &str, network: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM irc_credentials WHERE handle = $1 AND network = $2")
        .bind(handle)
        .bind(network)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// `msngate irc credentials list`: who has credentials where (no secrets).
pub async fn list_credentials(pool: &AnyPool) -> Result<Vec<CredentialEntry>> {
    let rows = sqlx::query(
        "SELECT handle, network, method, account FROM irc_credentials ORDER BY handle, network",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(CredentialEntry {
                handle: r.try_get(0)?,
                network: r.try_get(1)?,
                method: r.try_get(2)?,
                account: r.try_get(3)?,
            })
        })
        .collect()
}
