//! Which database a test server keeps its catalog and audit log in: SQLite in its data
//! directory (the default), or, when `KEYGATE_TEST_PG_URL` is set (`tests/run.sh`'s PostgreSQL
//! pass), a database of its own on that cluster. The database is named after the data
//! directory, so a server restarted on the same directory finds its data again.

use std::path::Path;
use std::process::Command;

/// The cluster of the PostgreSQL pass: `postgres://USER@HOST:PORT`, no database, no password.
const URL_VAR: &str = "KEYGATE_TEST_PG_URL";
/// Its password (the servers get it by reference to this variable, as a deployment would).
const PASSWORD_VAR: &str = "KEYGATE_TEST_PG_PASSWORD";

/// Whether this run's servers keep their data in PostgreSQL.
pub fn on_postgres() -> bool {
    std::env::var_os(URL_VAR).is_some()
}

/// The environment that points `keygate serve` at `data_dir`'s database (created and migrated
/// here), or nothing on SQLite. Outside dev mode a server on PostgreSQL needs a configured
/// audit HMAC key: one is made beside the data directory.
pub fn server_env(data_dir: &Path, dev: bool) -> Vec<(String, String)> {
    let Ok(cluster) = std::env::var(URL_VAR) else {
        return Vec::new();
    };
    let name = database_name(data_dir);
    create_database(&cluster, &name);
    let mut env: Vec<(String, String)> = vec![
        ("KEYGATE_STORAGE__KIND".into(), "postgres".into()),
        ("KEYGATE_STORAGE__URL".into(), format!("{cluster}/{name}")),
        ("KEYGATE_STORAGE__PASSWORD__ENV".into(), PASSWORD_VAR.into()),
        ("KEYGATE_STORAGE__TLS".into(), "disable".into()),
        // Many servers share the cluster's connections.
        ("KEYGATE_STORAGE__POOL_SIZE".into(), "6".into()),
    ];
    let out = Command::new(super::keygate_bin())
        .arg("migrate")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env_remove("KEYGATE_CONFIG")
        .output()
        .expect("run keygate migrate");
    assert!(
        out.status.success(),
        "keygate migrate on {name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if !dev {
        let hmac = data_dir.with_extension("audit-hmac.key");
        if !hmac.exists() {
            let key = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()].map(|u| u.into_bytes());
            std::fs::write(&hmac, key.concat()).expect("write an audit HMAC key");
        }
        env.push((
            "KEYGATE_AUDIT__HMAC_KEY__FILE".into(),
            hmac.display().to_string(),
        ));
    }
    env
}

/// `kg_` and a hash of the directory's path (FNV-1a: stable across processes).
fn database_name(data_dir: &Path) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in data_dir.as_os_str().as_encoded_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("kg_{hash:016x}")
}

/// Creates the database unless it exists (a restarted server's).
fn create_database(cluster: &str, name: &str) {
    let psql = std::env::var_os("KEYGATE_PG_BIN_DIR")
        .map(|dir| Path::new(&dir).join("psql"))
        .unwrap_or_else(|| "psql".into());
    let out = Command::new(psql)
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(format!("{cluster}/postgres"))
        .arg("-c")
        .arg(format!("CREATE DATABASE {name}"))
        .env(
            "PGPASSWORD",
            std::env::var(PASSWORD_VAR).unwrap_or_default(),
        )
        .output()
        .expect("run psql");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || stderr.contains("already exists"),
        "CREATE DATABASE {name}: {stderr}"
    );
}

/// The key's state and version numbers as the database holds them (not the server's memory).
pub async fn stored_key(data_dir: &Path, key_id: &str) -> (String, Vec<i64>) {
    const STATE: &str = "SELECT state FROM keys WHERE id = $1";
    const VERSIONS: &str = "SELECT version FROM key_versions WHERE key_id = $1 ORDER BY version";
    if let Ok(cluster) = std::env::var(URL_VAR) {
        let options: sqlx::postgres::PgConnectOptions = cluster.parse().expect("cluster URL");
        let db = sqlx::PgPool::connect_with(
            options
                .password(&std::env::var(PASSWORD_VAR).unwrap_or_default())
                .database(&database_name(data_dir)),
        )
        .await
        .expect("connect to the server's database");
        let state = sqlx::query_scalar(STATE).bind(key_id).fetch_one(&db).await;
        let versions = sqlx::query_scalar(VERSIONS)
            .bind(key_id)
            .fetch_all(&db)
            .await;
        db.close().await;
        return (state.expect("key state"), versions.expect("key versions"));
    }
    let db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}?mode=ro",
        data_dir.join("keygate.db").display()
    ))
    .await
    .expect("open the server's SQLite database");
    let state = sqlx::query_scalar(STATE).bind(key_id).fetch_one(&db).await;
    let versions = sqlx::query_scalar(VERSIONS)
        .bind(key_id)
        .fetch_all(&db)
        .await;
    db.close().await;
    (state.expect("key state"), versions.expect("key versions"))
}
