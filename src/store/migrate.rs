//! Embedded migrations (`migrations/`), run at every start.

use sqlx::{AnyConnection, AnyPool};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Applies the migrations not yet applied, on a connection of the pool.
pub async fn run(pool: &AnyPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// The same on one connection (on SQLite, inside an exclusive transaction).
///
/// Through `run_direct`: `run` with a `&mut` connection makes the future
/// not provably `Send` for every lifetime ("implementation of `Acquire` is
/// not general enough") in callers that spawn the server; sqlx keeps
/// `run_direct` public for exactly this.
pub async fn run_on(conn: &mut AnyConnection) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run_direct(None, conn, false).await
}
