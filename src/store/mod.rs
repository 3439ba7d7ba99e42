//! Persistence over SQLite (the embedded default) and PostgreSQL, through
//! sqlx's runtime `Any` driver so one set of queries and one set of
//! migrations serve both. Placeholders are `$n`, which both backends accept.
//!
//! Every change a client is told about goes through [`Store::apply`]: one
//! transaction, committed before the reply is written.

use crate::config::SqliteJournal;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Executor, FromRow, Row};
use std::path::Path;
use std::sync::Arc;
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
pub async fn begin_write(pool: &AnyPool) -> Result<WriteTransaction, sqlx::Error> {
    let sqlite = pool
        .connect_options()
        .database_url
        .scheme()
        .starts_with("sqlite");
    let mut tx = WriteTransaction {
        conn: pool.acquire().await?,
        open: true,
    };
    // On failure `tx` is dropped still open: whether a half-started
    // transaction is left behind is unknown, so the connection is closed.
    tx.conn
        .execute(if sqlite { "BEGIN IMMEDIATE" } else { "BEGIN" })
        .await?;
    Ok(tx)
}

/// A write transaction on a pooled connection, started by [`begin_write`].
///
/// The statements run through `&mut *tx`. Only a successful
/// [`commit`](WriteTransaction::commit) or
/// [`rollback`](WriteTransaction::rollback) hands the connection back to
/// the pool: one dropped in between (an error returned with `?`, a
/// cancelled request), or whose `COMMIT` or `ROLLBACK` failed, is closed
/// instead. After a disk-full or I/O error SQLite may already have rolled
/// the transaction back by itself, and a connection returned in that
/// unknown state refused every later transaction until a restart.
pub struct WriteTransaction {
    conn: PoolConnection<Any>,
    /// A transaction may still be open on `conn`.
    open: bool,
}

impl WriteTransaction {
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        self.conn.execute("COMMIT").await?;
        self.open = false;
        Ok(())
    }

    /// Undoes every statement since [`begin_write`].
    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        self.conn.execute("ROLLBACK").await?;
        self.open = false;
        Ok(())
    }
}

impl Drop for WriteTransaction {
    fn drop(&mut self) {
        if self.open {
            // Closing the connection ends whatever transaction is left on it
            // (SQLite and PostgreSQL both roll back at close).
            self.conn.close_on_drop();
        }
    }
}

impl std::ops::Deref for WriteTransaction {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for WriteTransaction {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.conn
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
    write_health: Arc<WriteHealth>,
}

/// The last write the database refused, until one succeeds again: what
/// `/ready` reports while the disk is full or failing.
#[derive(Default)]
struct WriteHealth {
    failing: parking_lot::Mutex<Option<WriteFailure>>,
}

/// Writes have been refused since `since`; `error` is the latest refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteFailure {
    pub since: SystemTime,
    pub error: String,
}

impl StoreError {
    /// The database could not store the change (full disk, I/O error, lost
    /// connection…), as opposed to a refusal of the change itself.
    fn is_storage_failure(&self) -> bool {
        match self {
            StoreError::Conflict => false,
            StoreError::Database(sqlx::Error::Database(e)) => !matches!(
                e.kind(),
                sqlx::error::ErrorKind::UniqueViolation
                    | sqlx::error::ErrorKind::ForeignKeyViolation
                    | sqlx::error::ErrorKind::NotNullViolation
                    | sqlx::error::ErrorKind::CheckViolation
            ),
            _ => true,
        }
    }
}

pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `2026-12-03T07:41:05Z`: a moment in UTC for messages.
pub fn utc_timestamp(at: SystemTime) -> String {
    let secs = at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        (rest / 60) % 60,
        rest % 60
    )
}

/// How long a connection waits for another one's lock (SQLite) before the
/// statement fails with "database is locked".
const SQLITE_BUSY_TIMEOUT_MS: u64 = 10_000;

impl Store {
    /// Connects, creating the SQLite file and its folder when needed, and
    /// runs the embedded migrations. Safe when several processes (`serve`
    /// and `msngate user …`) open the same new database at once. SQLite
    /// gets the default journal ([`SqliteJournal::Rollback`]).
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        Store::connect_with(url, max_connections, SqliteJournal::default()).await
    }

    /// [`Store::connect`] with the SQLite journal chosen (`database.sqlite_journal`).
    pub async fn connect_with(
        url: &str,
        max_connections: u32,
        journal: SqliteJournal,
    ) -> Result<Store, StoreError> {
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
        if backend == Backend::Sqlite {
            set_up_sqlite(&url, journal).await?;
        }
        let mut options = AnyPoolOptions::new().max_connections(max_connections);
        if backend == Backend::Sqlite {
            options = options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    // First, so that everything after it waits for other
                    // connections' locks instead of failing at once.
                    conn.execute(sqlx::AssertSqlSafe(format!(
                        "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}"
                    )))
                    .await?;
                    // FULL sync makes a commit survive power loss, not only a
                    // killed process.
                    conn.execute("PRAGMA synchronous = FULL").await?;
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
        let store = Store {
            pool,
            backend,
            write_health: Arc::default(),
        };
        if backend == Backend::Postgres {
            // sqlx holds a PostgreSQL advisory lock while it migrates, so
            // a second process waits and then finds the work done.
            migrate::run(&store.pool).await?;
        }
        Ok(store)
    }

    /// Since when, and why, writes are refused; `None` once one succeeded.
    pub fn write_failure(&self) -> Option<WriteFailure> {
        self.write_health.failing.lock().clone()
    }

    /// Records the outcome of a write for [`Store::write_failure`].
    fn note_write<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        match &result {
            Ok(_) => *self.write_health.failing.lock() = None,
            Err(e) if e.is_storage_failure() => {
                let mut failing = self.write_health.failing.lock();
                let since = failing.as_ref().map_or_else(SystemTime::now, |f| f.since);
                *failing = Some(WriteFailure {
                    since,
                    error: e.to_string(),
                });
            }
            Err(_) => {}
        }
        result
    }

    /// A write that is rolled back: tells `/ready` whether the database
    /// takes writes again (space freed), without waiting for a client to
    /// change something. It inserts a row (never committed, so never
    /// there): SQLite writes nothing to disk for an update that leaves the
    /// bytes as they were, or matches no row.
    pub async fn probe_write(&self) -> Result<(), StoreError> {
        let result = self.insert_and_roll_back().await;
        self.note_write(result)
    }

    async fn insert_and_roll_back(&self) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO server_secrets (name, value) VALUES ('write-probe', '') \
             ON CONFLICT (name) DO NOTHING",
        )
        .execute(&mut *tx)
        .await?;
        tx.rollback().await?;
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn begin_write(&self) -> Result<WriteTransaction, sqlx::Error> {
        begin_write(&self.pool).await
    }

    /// Cheap liveness probe for `/ready`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn create_account(&self, account: &AccountRow) -> Result<(), StoreError> {
        let result = self.insert_account(account).await;
        self.note_write(result)
    }

    async fn insert_account(&self, account: &AccountRow) -> Result<(), StoreError> {
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
        let result = self.delete_account_rows(handle).await;
        self.note_write(result)
    }

    async fn delete_account_rows(&self, handle: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM accounts WHERE handle = $1")
            .bind(handle)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(id) = id else {
            tx.rollback().await?;
            return Ok(false);
        };
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
        let result = self.apply_in_transaction(changes).await;
        self.note_write(result)
    }

    async fn apply_in_transaction(&self, changes: &[Change]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for change in changes {
            apply_one(&mut tx, change).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

async fn apply_one(tx: &mut WriteTransaction, change: &Change) -> Result<(), sqlx::Error> {
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

/// Brings a SQLite database to the current schema, on a connection of its
/// own, before the pool opens. Several processes may do this at once on a
/// new file (`serve` and `msngate user add`): each takes the database's
/// exclusive lock first, waiting up to the busy timeout for the others,
/// and finds the migrations another one applied (sqlx's migrator checks
/// them outside any lock on SQLite, so two processes used to apply the
/// same migration and one failed with "table … already exists").
///
/// The journal mode is set here too, once, since it is a property of the
/// file. By default a rollback journal, not WAL: WAL maps the `-shm` file
/// into memory, and when that file is truncated under a running server
/// (by another program, a clean-up of "temporary" files) the next access
/// kills the process with SIGBUS, without a log line.
async fn set_up_sqlite(url: &str, journal: SqliteJournal) -> Result<(), StoreError> {
    use sqlx::Connection;
    let mut conn = AnyConnection::connect(url).await?;
    conn.execute(sqlx::AssertSqlSafe(format!(
        "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}"
    )))
    .await?;
    set_journal_mode(&mut conn, journal).await?;
    let mut tx = conn.begin_with("BEGIN EXCLUSIVE").await?;
    migrate::run_on(&mut tx).await?;
    tx.commit().await?;
    conn.close().await?;
    Ok(())
}

/// Switches the journal to `DELETE` (SQLite's default, so a no-op on a new
/// database) or to `WAL`. Entering or leaving WAL needs every other
/// connection closed, and SQLite does not wait for that with the busy
/// timeout, so "database is locked" is retried here for as long.
async fn set_journal_mode(
    conn: &mut AnyConnection,
    journal: SqliteJournal,
) -> Result<(), StoreError> {
    let wanted = match journal {
        SqliteJournal::Rollback => "delete",
        SqliteJournal::Wal => "wal",
    };
    let deadline =
        std::time::Instant::now() + std::time::Duration::from_millis(SQLITE_BUSY_TIMEOUT_MS);
    loop {
        // SQLite answers with the mode it is in, the old one when it could
        // not switch.
        match sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!(
            "PRAGMA journal_mode = {wanted}"
        )))
        .fetch_one(&mut *conn)
        .await
        {
            Ok(mode) if mode.eq_ignore_ascii_case(wanted) => return Ok(()),
            // `memory` for an in-memory database, whatever was asked.
            Ok(mode) if mode.eq_ignore_ascii_case("memory") => return Ok(()),
            Ok(_) => {}
            Err(e) if is_sqlite_busy(&e) => {}
            Err(e) => return Err(e.into()),
        }
        if std::time::Instant::now() >= deadline {
            tracing::warn!(
                journal = wanted,
                "the SQLite journal mode stays as it was: another process keeps the database \
                 open; it is switched at the next start"
            );
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// SQLITE_BUSY or SQLITE_LOCKED, with or without an extended code.
fn is_sqlite_busy(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| matches!(code & 0xff, 5 | 6))
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

#[cfg(test)]
mod tests {
    use super::utc_timestamp;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn utc_timestamps_match_the_calendar() {
        for (secs, text) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_796_283_665, "2026-12-03T07:41:05Z"),
            (4_102_444_799, "2099-12-31T23:59:59Z"),
        ] {
            assert_eq!(utc_timestamp(UNIX_EPOCH + Duration::from_secs(secs)), text);
        }
    }
}
