//! PostgreSQL, the shared store of several replicas: the connection from `[storage]`, the
//! migrations `keygate migrate` applies, and the schema check `serve` runs instead of
//! migrating (replicas of different versions must not race to change a shared schema).

use crate::config::{PgTlsMode, SecretRefError, StorageConfig};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use std::collections::HashMap;
use std::str::FromStr as _;
use std::time::Duration;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a call waits for a pooled connection before failing (UNAVAILABLE at the edge).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// What went wrong reaching or checking the database. No variant carries the URL or the
/// password.
#[derive(Debug, thiserror::Error)]
pub enum PgStoreError {
    #[error("storage.url is missing or not a valid PostgreSQL URL")]
    Url,
    #[error(transparent)]
    Password(#[from] SecretRefError),
    #[error("storage.password is not valid UTF-8")]
    PasswordEncoding,
    #[error("PostgreSQL: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("PostgreSQL migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the database has no keygate schema: run `keygate migrate` first")]
    NoSchema,
    #[error(
        "the database's schema is older than this keygate (migration {version} `{description}` is not applied): run `keygate migrate`"
    )]
    Behind { version: i64, description: String },
    #[error(
        "the database's schema has migration {0}, which this keygate does not know (a newer keygate migrated it): refusing to start"
    )]
    Unknown(i64),
    #[error(
        "migration {0} in the database differs from this keygate's (checksum mismatch): refusing to start"
    )]
    Modified(i64),
    #[error("migration {0} failed part-way in the database: repair it, then run `keygate migrate`")]
    Dirty(i64),
}

/// Connection options from `[storage]`: the URL, the password resolved from its reference,
/// TLS. `storage.tls` overrides any `sslmode` in the URL, so the config file says it once.
pub fn connect_options(config: &StorageConfig) -> Result<PgConnectOptions, PgStoreError> {
    let url = config.url.as_deref().ok_or(PgStoreError::Url)?;
    // The parse error is dropped: its text could quote the URL.
    let mut options = PgConnectOptions::from_str(url).map_err(|_| PgStoreError::Url)?;
    if let Some(reference) = &config.password {
        let secret = reference.resolve("storage.password")?;
        let password =
            std::str::from_utf8(secret.expose()).map_err(|_| PgStoreError::PasswordEncoding)?;
        options = options.password(password);
    }
    options = options.ssl_mode(match config.tls {
        PgTlsMode::Disable => PgSslMode::Disable,
        PgTlsMode::Require => PgSslMode::Require,
        PgTlsMode::VerifyCa => PgSslMode::VerifyCa,
        PgTlsMode::VerifyFull => PgSslMode::VerifyFull,
    });
    if let Some(ca) = &config.tls_ca_file {
        options = options.ssl_root_cert(ca);
    }
    Ok(options.application_name("keygate").options([
        // A replica that stops mid-transaction (its network gone) must not hold a row (the
        // audit chain's head, a key) for hours until TCP notices: PostgreSQL ends the session.
        ("idle_in_transaction_session_timeout", "10s"),
        // A statement waits at most this long for a row lock, then fails: calls see
        // UNAVAILABLE rather than queueing behind a stuck replica until their deadline.
        ("lock_timeout", "5s"),
    ]))
}

/// A pool of `storage.pool_size` connections. Connects lazily: a replica starts (and reports
/// NOT_SERVING) while the database is down, rather than not starting.
pub async fn connect(config: &StorageConfig) -> Result<PgPool, PgStoreError> {
    let options = connect_options(config)?;
    let pool = PgPoolOptions::new()
        .max_connections(config.pool_size())
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await?;
    Ok(pool)
}

/// Applies the migrations this keygate has and the database lacks (`keygate migrate`).
/// Returns the versions applied now. sqlx takes an advisory lock for the run, so two
/// `migrate` runs at once do not interleave.
pub async fn migrate(pool: &PgPool) -> Result<Vec<i64>, PgStoreError> {
    let before = applied(pool).await?;
    MIGRATOR.run(pool).await?;
    let after = applied(pool).await?;
    let mut now: Vec<i64> = after
        .keys()
        .filter(|v| !before.contains_key(v))
        .copied()
        .collect();
    now.sort_unstable();
    Ok(now)
}

/// Refuses a schema this keygate does not know: none, older (not migrated yet), newer (a
/// migration this binary lacks), changed or half-applied.
pub async fn check_schema(pool: &PgPool) -> Result<(), PgStoreError> {
    let applied = applied(pool).await?;
    if applied.is_empty() {
        return Err(PgStoreError::NoSchema);
    }
    for (version, (success, checksum)) in &applied {
        if !success {
            return Err(PgStoreError::Dirty(*version));
        }
        match MIGRATOR.iter().find(|m| m.version == *version) {
            None => return Err(PgStoreError::Unknown(*version)),
            Some(m) if m.checksum.as_ref() != checksum.as_slice() => {
                return Err(PgStoreError::Modified(*version));
            }
            Some(_) => {}
        }
    }
    if let Some(m) = MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .find(|m| !applied.contains_key(&m.version))
    {
        return Err(PgStoreError::Behind {
            version: m.version,
            description: m.description.to_string(),
        });
    }
    Ok(())
}

/// The migrations recorded in the database: version → (success, checksum).
async fn applied(pool: &PgPool) -> Result<HashMap<i64, (bool, Vec<u8>)>, PgStoreError> {
    let exists: bool =
        sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL")
            .fetch_one(pool)
            .await?;
    if !exists {
        return Ok(HashMap::new());
    }
    let rows: Vec<(i64, bool, Vec<u8>)> =
        sqlx::query_as("SELECT version, success, checksum FROM _sqlx_migrations")
            .fetch_all(pool)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(version, success, checksum)| (version, (success, checksum)))
        .collect())
}
