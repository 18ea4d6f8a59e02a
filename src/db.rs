//! The catalog and audit database: SQLite in the data directory, WAL mode, fsync on commit.

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Opens (creating if needed) `DIR/keygate.db` and applies migrations.
pub async fn open(data_dir: &Path) -> Result<SqlitePool, sqlx::Error> {
    std::fs::create_dir_all(data_dir).map_err(sqlx::Error::Io)?;
    let path = data_dir.join("keygate.db");
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: a commit is on disk before the audit append returns, so an acknowledged call
        // survives a crash or power loss.
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        // Checkpoint the WAL every ~64 MiB instead of every 4 MiB: checkpoints run inside the
        // audit writer's commit and stall every call waiting on it.
        .pragma("wal_autocheckpoint", "16384")
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}
