//! Persistence over SQLite (the embedded default) and PostgreSQL, through
//! sqlx's runtime `Any` driver so one set of queries and one set of
//! migrations serve both. Placeholders are `$n`, which both backends accept.
//!
//! Every change a client is told about goes through [`Store::apply`]: one
//! transaction, committed before the reply is written.

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor, FromRow, Row};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

pub mod migrate;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("already exists")]
    Conflict,
    #[error("cannot prepare the database location: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Starts a transaction that will write. On SQLite it takes the write lock
/// at once (`BEGIN IMMEDIATE`): a deferred transaction that reads and then
/// writes gets SQLITE_BUSY straight away, without the busy timeout, when
/// another connection wrote in between.
pub async fn begin_write(
    pool: &AnyPool,
) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
    if pool
        .connect_options()
        .database_url
        .scheme()
        .starts_with("sqlite")
    {
        pool.begin_with("BEGIN IMMEDIATE").await
    } else {
        pool.begin().await
    }
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct AccountRow {
    pub id: i64,
    pub handle: String,
    pub friendly_name: String,
    pub password_hash: String,
    pub legacy_salt: Option<String>,
    pub legacy_digest: Option<String>,
    pub blp: String,
    pub gtc: String,
    pub list_version: i64,
    pub personal_message: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ContactRow {
    pub handle: String,
    pub guid: String,
    pub stored_name: String,
    pub lists: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct GroupRow {
    pub number: i64,
    pub guid: String,
    pub name: String,
}

/// Everything stored about one account's lists, loaded at sign-in.
#[derive(Debug, Clone, Default)]
pub struct RosterRows {
    pub contacts: Vec<ContactRow>,
    pub groups: Vec<GroupRow>,
    pub memberships: Vec<(String, i64)>,
    pub properties: Vec<(String, String)>,
}

/// Account fields that change after creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountField {
    FriendlyName,
    Blp,
    Gtc,
    PersonalMessage,
    PasswordHash,
}

impl AccountField {
    fn update_statement(self) -> &'static str {
        match self {
            AccountField::FriendlyName => "UPDATE accounts SET friendly_name = $2 WHERE id = $1",
            AccountField::Blp => "UPDATE accounts SET blp = $2 WHERE id = $1",
            AccountField::Gtc => "UPDATE accounts SET gtc = $2 WHERE id = $1",
            AccountField::PersonalMessage => {
                "UPDATE accounts SET personal_message = $2 WHERE id = $1"
            }
            AccountField::PasswordHash => "UPDATE accounts SET password_hash = $2 WHERE id = $1",
        }
    }
}

/// One durable change; a batch of them is applied in a single transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Sets list bits on a contact row, creating it with `guid`/`stored_name` if absent.
    /// Bits are OR-ed in SQL so concurrent edits of different bits never overwrite each other.
    AddLists {
        account_id: i64,
        handle: String,
        guid: String,
        stored_name: String,
        bits: i64,
    },
    /// Clears list bits; a row left on no list is deleted with its group memberships.
    RemoveLists {
        account_id: i64,
        handle: String,
        bits: i64,
    },
    SetStoredName {
        account_id: i64,
        handle: String,
        name: String,
    },
    AddMembership {
        account_id: i64,
        handle: String,
        group: i64,
    },
    RemoveMembership {
        account_id: i64,
        handle: String,
        group: i64,
    },
    /// Removes every group membership of a contact (it left the forward list).
    ClearMemberships {
        account_id: i64,
        handle: String,
    },
    UpsertGroup {
        account_id: i64,
        group: GroupRow,
    },
    /// Deletes a group and its memberships.
    DeleteGroup {
        account_id: i64,
        number: i64,
    },
    SetField {
        account_id: i64,
        field: AccountField,
        value: String,
    },
    /// Increments the MSNP2-9 list version.
    BumpListVersion {
        account_id: i64,
    },
    SetLegacyDigest {
        account_id: i64,
        salt: Option<String>,
        digest: Option<String>,
    },
    SetProperty {
        account_id: i64,
        name: String,
        value: String,
    },
    DeleteProperty {
        account_id: i64,
        name: String,
    },
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Connects, creating the SQLite file and its folder when needed, and
    /// runs the embedded migrations.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let url = if backend == Backend::Sqlite {
            prepare_sqlite_url(url)?
        } else {
            url.to_string()
        };
        let mut options = AnyPoolOptions::new().max_connections(max_connections);
        if backend == Backend::Sqlite {
            options = options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    // WAL lets readers run beside the writer; FULL sync makes a
                    // commit survive power loss, not only a killed process.
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = FULL").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    // 512 KiB of page cache per connection instead of SQLite's
                    // 2 MiB: the kernel caches the file anyway, and with 8
                    // pooled connections the default would hold 16 MiB of the
                    // server's memory after a sign-in wave.
                    conn.execute("PRAGMA cache_size = -512").await?;
                    Ok(())
                })
            });
        }
        let pool = options.connect(&url).await?;
        let store = Store { pool, backend };
        migrate::run(&store.pool).await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        begin_write(&self.pool).await
    }

    /// Cheap liveness probe for `/ready`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn create_account(&self, account: &AccountRow) -> Result<(), StoreError> {
        let result = sqlx::query(
            "INSERT INTO accounts (id, handle, friendly_name, password_hash, legacy_salt, legacy_digest, \
             blp, gtc, list_version, personal_message, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (handle) DO NOTHING",
        )
        .bind(account.id)
        .bind(&account.handle)
        .bind(&account.friendly_name)
        .bind(&account.password_hash)
        .bind(&account.legacy_salt)
        .bind(&account.legacy_digest)
        .bind(&account.blp)
        .bind(&account.gtc)
        .bind(account.list_version)
        .bind(&account.personal_message)
        .bind(account.created_at)
        .execute(&self.pool)
        .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::Conflict);
        }
        Ok(())
    }

    pub async fn account_by_handle(&self, handle: &str) -> Result<Option<AccountRow>, StoreError> {
        Ok(
            sqlx::query_as::<_, AccountRow>("SELECT * FROM accounts WHERE handle = $1")
                .bind(handle)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn list_accounts(&self) -> Result<Vec<AccountRow>, StoreError> {
        Ok(
            sqlx::query_as::<_, AccountRow>("SELECT * FROM accounts ORDER BY handle")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Deletes an account and everything it owns; other users keep it on
    /// their lists as an ordinary (now unknown) handle.
    pub async fn delete_account(&self, handle: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM accounts WHERE handle = $1")
            .bind(handle)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(id) = id else { return Ok(false) };
        for statement in [
            "DELETE FROM group_members WHERE account_id = $1",
            "DELETE FROM contact_groups WHERE account_id = $1",
            "DELETE FROM contacts WHERE account_id = $1",
            "DELETE FROM account_properties WHERE account_id = $1",
        ] {
            sqlx::query(statement).bind(id).execute(&mut *tx).await?;
        }
        sqlx::query("DELETE FROM accounts WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Handles of the accounts that have `handle` on their forward list.
    pub async fn forward_list_owners(&self, handle: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.handle FROM contacts c JOIN accounts a ON a.id = c.account_id \
             WHERE c.handle = $1 AND (c.lists & 1) = 1 ORDER BY a.handle",
        )
        .bind(handle)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<Result<Vec<_>, _>>()?)
    }

    pub async fn load_roster(&self, account_id: i64) -> Result<RosterRows, StoreError> {
        let contacts = sqlx::query_as::<_, ContactRow>(
            "SELECT handle, guid, stored_name, lists FROM contacts WHERE account_id = $1 ORDER BY handle",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?;
        let groups = sqlx::query_as::<_, GroupRow>(
            "SELECT number, guid, name FROM contact_groups WHERE account_id = $1 ORDER BY number",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?;
        let memberships =
            sqlx::query("SELECT handle, group_number FROM group_members WHERE account_id = $1")
                .bind(account_id)
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(|row| Ok((row.try_get::<String, _>(0)?, row.try_get::<i64, _>(1)?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let properties =
            sqlx::query("SELECT name, value FROM account_properties WHERE account_id = $1")
                .bind(account_id)
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(|row| Ok((row.try_get::<String, _>(0)?, row.try_get::<String, _>(1)?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(RosterRows {
            contacts,
            groups,
            memberships,
            properties,
        })
    }

    /// Applies `changes` atomically: all of them are committed, or none.
    pub async fn apply(&self, changes: &[Change]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for change in changes {
            apply_one(&mut tx, change).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

async fn apply_one(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    change: &Change,
) -> Result<(), sqlx::Error> {
    match change {
        Change::AddLists {
            account_id,
            handle,
            guid,
            stored_name,
            bits,
        } => {
            sqlx::query(
                "INSERT INTO contacts (account_id, handle, guid, stored_name, lists) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (account_id, handle) DO UPDATE SET lists = contacts.lists | excluded.lists",
            )
            .bind(account_id)
            .bind(handle)
            .bind(guid)
            .bind(stored_name)
            .bind(bits)
            .execute(&mut **tx)
            .await?;
        }
        Change::RemoveLists {
            account_id,
            handle,
            bits,
        } => {
            sqlx::query(
                "UPDATE contacts SET lists = lists & $3 WHERE account_id = $1 AND handle = $2",
            )
            .bind(account_id)
            .bind(handle)
            .bind(!bits)
            .execute(&mut **tx)
            .await?;
            let gone = sqlx::query(
                "DELETE FROM contacts WHERE account_id = $1 AND handle = $2 AND lists = 0",
            )
            .bind(account_id)
            .bind(handle)
            .execute(&mut **tx)
            .await?;
            if gone.rows_affected() > 0 {
                sqlx::query("DELETE FROM group_members WHERE account_id = $1 AND handle = $2")
                    .bind(account_id)
                    .bind(handle)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        Change::SetStoredName {
            account_id,
            handle,
            name,
        } => {
            sqlx::query(
                "UPDATE contacts SET stored_name = $3 WHERE account_id = $1 AND handle = $2",
            )
            .bind(account_id)
            .bind(handle)
            .bind(name)
            .execute(&mut **tx)
            .await?;
        }
        Change::AddMembership {
            account_id,
            handle,
            group,
        } => {
            sqlx::query(
                "INSERT INTO group_members (account_id, handle, group_number) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(account_id)
            .bind(handle)
            .bind(group)
            .execute(&mut **tx)
            .await?;
        }
        Change::RemoveMembership {
            account_id,
            handle,
            group,
        } => {
            sqlx::query("DELETE FROM group_members WHERE account_id = $1 AND handle = $2 AND group_number = $3")
                .bind(account_id)
                .bind(handle)
                .bind(group)
                .execute(&mut **tx)
                .await?;
        }
        Change::ClearMemberships { account_id, handle } => {
            sqlx::query("DELETE FROM group_members WHERE account_id = $1 AND handle = $2")
                .bind(account_id)
                .bind(handle)
                .execute(&mut **tx)
                .await?;
        }
        Change::UpsertGroup { account_id, group } => {
            sqlx::query(
                "INSERT INTO contact_groups (account_id, number, guid, name) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (account_id, number) DO UPDATE SET name = excluded.name",
            )
            .bind(account_id)
            .bind(group.number)
            .bind(&group.guid)
            .bind(&group.name)
            .execute(&mut **tx)
            .await?;
        }
        Change::DeleteGroup { account_id, number } => {
            sqlx::query("DELETE FROM group_members WHERE account_id = $1 AND group_number = $2")
                .bind(account_id)
                .bind(number)
                .execute(&mut **tx)
                .await?;
            sqlx::query("DELETE FROM contact_groups WHERE account_id = $1 AND number = $2")
                .bind(account_id)
                .bind(number)
                .execute(&mut **tx)
                .await?;
        }
        Change::SetField {
            account_id,
            field,
            value,
        } => {
            sqlx::query(field.update_statement())
                .bind(account_id)
                .bind(value)
                .execute(&mut **tx)
                .await?;
        }
        Change::BumpListVersion { account_id } => {
            sqlx::query("UPDATE accounts SET list_version = list_version + 1 WHERE id = $1")
                .bind(account_id)
                .execute(&mut **tx)
                .await?;
        }
        Change::SetLegacyDigest {
            account_id,
            salt,
            digest,
        } => {
            sqlx::query("UPDATE accounts SET legacy_salt = $2, legacy_digest = $3 WHERE id = $1")
                .bind(account_id)
                .bind(salt)
                .bind(digest)
                .execute(&mut **tx)
                .await?;
        }
        Change::SetProperty {
            account_id,
            name,
            value,
        } => {
            sqlx::query(
                "INSERT INTO account_properties (account_id, name, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (account_id, name) DO UPDATE SET value = excluded.value",
            )
            .bind(account_id)
            .bind(name)
            .bind(value)
            .execute(&mut **tx)
            .await?;
        }
        Change::DeleteProperty { account_id, name } => {
            sqlx::query("DELETE FROM account_properties WHERE account_id = $1 AND name = $2")
                .bind(account_id)
                .bind(name)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

/// Makes sure the SQLite file's folder exists and the file is created on
/// first start (`mode=rwc`).
fn prepare_sqlite_url(url: &str) -> Result<String, StoreError> {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path != ":memory:"
        && !path.is_empty()
        && let Some(parent) = Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)?;
    }
    let query = if query.contains("mode=") {
        query.to_string()
    } else if query.is_empty() {
        "mode=rwc".into()
    } else {
        format!("{query}&mode=rwc")
    };
    Ok(format!("sqlite://{path}?{query}"))
}
