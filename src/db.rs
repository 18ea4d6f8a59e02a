//! The catalog and audit database: SQLite in the data directory (the default; WAL mode, fsync
//! on commit), or PostgreSQL shared by several replicas ([`postgres`]).

pub mod leader;
pub mod postgres;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};
use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

/// The database of the catalog, approval, destruction and posture stores: SQLite in the data
/// directory, or PostgreSQL shared by replicas. Their queries are written once, in SQL both
/// accept with `$1…` placeholders, and [`on_db!`](crate::on_db) runs each on whichever pool
/// this holds.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Db {
    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }
}

impl From<SqlitePool> for Db {
    fn from(pool: SqlitePool) -> Self {
        Db::Sqlite(pool)
    }
}

impl From<PgPool> for Db {
    fn from(pool: PgPool) -> Self {
        Db::Postgres(pool)
    }
}

/// Runs `$body` with `$pool` bound to the pool `$db` (a `&Db`) holds: the body is compiled
/// once per database, so one query text serves both.
#[macro_export]
macro_rules! on_db {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($pool) => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
    // `$database` names the sqlx database type in the body (for a `QueryBuilder<$database>`).
    ($db:expr, |$pool:ident, $database:ident| $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($pool) => {
                type $database = ::sqlx::Sqlite;
                $body
            }
            $crate::db::Db::Postgres($pool) => {
                type $database = ::sqlx::Postgres;
                $body
            }
        }
    };
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// A WAL that grew during a stall is truncated back to this size (bytes) once checkpointed.
pub const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

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
        .pragma("journal_size_limit", WAL_SIZE_LIMIT.to_string())
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
