//! Embedded migrations (`migrations/`), run at every start.

use sqlx::AnyPool;

pub async fn run(pool: &AnyPool) -> Result<(), sqlx::migrate::MigrateError> {
    sqlx::migrate!("./migrations").run(pool).await
}
