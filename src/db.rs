//! The catalog and audit database: SQLite in the data directory (the default; WAL mode, fsync
//! on commit), or PostgreSQL shared by several replicas ([`postgres`]).

pub mod leader;
pub mod postgres;

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
        // No automatic checkpoints: they would run inside an audit commit and stall every call
        // waiting on it. The audit log checkpoints off the commit path (`audit::checkpoint`).
        .pragma("wal_autocheckpoint", "0")
        // A WAL that grew during a stall is truncated back to this size once checkpointed.
        .pragma("journal_size_limit", "67108864")
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

/// Opens `DIR/keygate.db` to read only, without migrating it (`keygate audit verify
/// --offline` on a copy of a data directory).
pub async fn open_read_only(data_dir: &Path) -> Result<SqlitePool, sqlx::Error> {
    let path = data_dir.join("keygate.db");
    if !path.exists() {
        return Err(sqlx::Error::Configuration(
            format!("{} does not exist", path.display()).into(),
        ));
    }
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
        .read_only(true)
        .busy_timeout(Duration::from_secs(10));
    SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
}
