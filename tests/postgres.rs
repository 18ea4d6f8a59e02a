//! PostgreSQL storage: `keygate migrate` brings a shared database's schema up to this
//! keygate's, `serve` never migrates it and refuses a schema it does not know, and the
//! password reaches PostgreSQL from a reference without ever appearing in output. Runs on a
//! private cluster (`tests/run.sh postgres` installs PostgreSQL).

mod common;

use common::team;
use keygate_test_backends::postgres::Postgres;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const PASSWORD_VAR: &str = "KG_TEST_PG_PASSWORD";

/// A team configuration storing in database `db` of `pg`, the password by reference.
fn pg_config(dir: &Path, pg: &Postgres, db: &str) -> PathBuf {
    let path = dir.join("keygate.toml");
    std::fs::write(
        &path,
        format!(
            "[storage]\nkind = \"postgres\"\nurl = \"{}\"\npassword = {{ env = \"{PASSWORD_VAR}\" }}\npool_size = 4\ntls = \"disable\"\ndata_dir = \"{}\"\n\n[providers.local]\nkind = \"local\"\npassphrase = {{ env = \"KG_TEST_PASSPHRASE\" }}\n\n{}",
            pg.url_without_password(db),
            dir.join("data").display(),
            team::tokens_config()
        ),
    )
    .expect("write config");
    path
}

/// Runs `keygate ARGS`, which must exit by itself (a `serve` that starts listening instead
/// fails the test).
fn keygate(dir: &Path, args: &[&str], password: &str) -> common::Exited {
    let mut cmd = Command::new(common::keygate_bin());
    cmd.args(args)
        .env_remove("KEYGATE_CONFIG")
        .envs(team::token_env())
        .env(PASSWORD_VAR, password)
        .env("KG_TEST_PASSPHRASE", "a passphrase for the postgres tests");
    common::run_to_exit(cmd, dir, Duration::from_secs(120))
}

/// Runs `keygate migrate --config CONFIG`.
fn migrate(dir: &Path, config: &str, password: &str) -> common::Exited {
    keygate(dir, &["migrate", "--config", config], password)
}

fn serve_args(config: &Path) -> Vec<String> {
    vec![
        "serve".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--config".into(),
        config.display().to_string(),
    ]
}

#[test]
fn postgres_schema_is_migrated_only_by_migrate_and_unknown_schemas_are_refused() {
    let pg = Postgres::start().expect("start postgres");
    pg.create_database("kg_schema").expect("create database");
    let dir = tempfile::tempdir().unwrap();
    let config = pg_config(dir.path(), &pg, "kg_schema");
    let config_arg = config.display().to_string();
    let serve: Vec<String> = serve_args(&config);
    let serve: Vec<&str> = serve.iter().map(String::as_str).collect();
    let password = pg.password().to_string();

    // A fresh database: serve neither migrates nor starts.
    let ran = keygate(dir.path(), &serve, &password);
    assert!(!ran.status.success());
    assert!(
        ran.stderr.contains("no keygate schema") && ran.stderr.contains("keygate migrate"),
        "{}",
        ran.stderr
    );
    let tables = pg
        .psql(
            "kg_schema",
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
        )
        .expect("count tables");
    assert_eq!(tables.trim(), "0", "serve created tables");

    // migrate applies the schema once; a second run has nothing to do.
    let ran = migrate(dir.path(), &config_arg, &password);
    assert!(ran.status.success(), "migrate failed: {}", ran.stderr);
    // Every migration, in order (0033 is the schema up to that point, later ones follow).
    assert!(ran.stdout.contains("applied 33, 34"), "{}", ran.stdout);
    let ran = migrate(dir.path(), &config_arg, &password);
    assert!(
        ran.status.success(),
        "second migrate failed: {}",
        ran.stderr
    );
    assert!(ran.stdout.contains("up to date"), "{}", ran.stdout);
    for table in [
        "keys",
        "key_versions",
        "audit_events",
        "audit_chain_head",
        "audit_checkpoints",
        "audit_ingest_cursors",
        "approval_requests",
        "destruction_records",
        "key_families",
        "key_copies",
    ] {
        let n = pg
            .psql("kg_schema", &format!("SELECT count(*) FROM {table}"))
            .unwrap_or_else(|e| panic!("table {table}: {e}"));
        assert_eq!(n.trim(), "0");
    }

    // The schema is known now: serve gets past the check, and asks for the audit HMAC key
    // every replica must share (rather than generating one of its own, or using SQLite).
    let ran = keygate(dir.path(), &serve, &password);
    assert!(!ran.status.success());
    assert!(
        ran.stderr.contains("audit.hmac_key") && !ran.stderr.contains("keygate migrate"),
        "{}",
        ran.stderr
    );
    assert!(
        !dir.path().join("data").join("keygate.db").exists(),
        "a SQLite database was created"
    );

    // A migration this keygate does not have (a newer keygate ran migrate): refused.
    pg.psql(
        "kg_schema",
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (9999, 'from the future', true, '\\x00', 0)",
    )
    .expect("add a future migration");
    let ran = keygate(dir.path(), &serve, &password);
    assert!(!ran.status.success());
    assert!(
        ran.stderr.contains("migration 9999") && ran.stderr.contains("does not know"),
        "{}",
        ran.stderr
    );

    for out in [&ran.stdout, &ran.stderr] {
        assert!(!out.contains(&password), "the password was printed");
    }
}

#[test]
fn postgres_password_comes_from_its_reference_and_is_never_printed() {
    let pg = Postgres::start().expect("start postgres");
    pg.create_database("kg_password").expect("create database");
    let dir = tempfile::tempdir().unwrap();
    let config = pg_config(dir.path(), &pg, "kg_password");
    let config_arg = config.display().to_string();

    let wrong = "not-the-password-4b1d";
    let ran = migrate(dir.path(), &config_arg, wrong);
    assert!(
        !ran.status.success(),
        "migrate succeeded with a wrong password"
    );
    assert!(
        ran.stderr.contains("password authentication failed"),
        "{}",
        ran.stderr
    );
    for out in [&ran.stdout, &ran.stderr] {
        assert!(!out.contains(wrong), "the password was printed: {out}");
    }

    // An inline password in the URL is refused before any connection, without echoing it.
    let inline = dir.path().join("inline.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &pg.url_without_password("kg_password"),
        &pg.url("kg_password"),
    );
    std::fs::write(&inline, text).unwrap();
    let inline_arg = inline.display().to_string();
    let ran = migrate(dir.path(), &inline_arg, "");
    assert!(!ran.status.success());
    assert!(
        ran.stderr.contains("storage.url") && ran.stderr.contains("inline secrets are refused"),
        "{}",
        ran.stderr
    );
    assert!(!ran.stderr.contains(pg.password()), "{}", ran.stderr);

    let ran = migrate(dir.path(), &config_arg, pg.password());
    assert!(ran.status.success(), "migrate failed: {}", ran.stderr);
    assert!(!ran.stdout.contains(pg.password()) && !ran.stderr.contains(pg.password()));
}

/// Two replicas campaign for the background-job lock: exactly one leads; when it dies (its
/// database session ends without a goodbye), the other takes over; a replica that stops
/// hands over at once to one that joins later.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_one_leader_and_failover_when_it_dies() {
    use keygate::db::leader::Leadership;
    use sqlx::postgres::PgConnectOptions;
    use tokio_util::sync::CancellationToken;

    let pg = Postgres::start().expect("start postgres");
    let options = |name: &str| {
        PgConnectOptions::new()
            .host("127.0.0.1")
            .port(pg.port())
            .username(Postgres::USER)
            .password(pg.password())
            .database("postgres")
            .application_name(name)
    };
    let interval = Duration::from_millis(200);
    let replica = |name: &str| {
        let stop = CancellationToken::new();
        (
            Leadership::campaign(options(name), interval, stop.clone()),
            stop,
        )
    };
    // Generous bound for each change of leader: tries happen every 200 ms.
    let until = |what: &str, want: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !want() {
            assert!(Instant::now() < deadline, "{what}: not within 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    let (a, stop_a) = replica("kg-replica-a");
    let (b, stop_b) = replica("kg-replica-b");
    tokio::task::block_in_place(|| until("one leader", &|| a.is_leader() ^ b.is_leader()));
    let a_led = a.is_leader();
    // It stays so: the other keeps failing to take the lock.
    tokio::time::sleep(interval * 5).await;
    assert_eq!((a.is_leader(), b.is_leader()), (a_led, !a_led));

    // The leader dies: its task ends and its session is cut without releasing anything.
    let (leader_name, stop_leader, follower) = if a_led {
        ("kg-replica-a", &stop_a, &b)
    } else {
        ("kg-replica-b", &stop_b, &a)
    };
    let killed = pg
        .psql(
            "postgres",
            &format!(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '{leader_name}'"
            ),
        )
        .expect("terminate the leader's session");
    stop_leader.cancel();
    assert_eq!(killed.trim(), "1");
    tokio::task::block_in_place(|| until("failover", &|| follower.is_leader()));

    // A third replica joins; the current leader stops cleanly and the newcomer takes over.
    let (c, stop_c) = replica("kg-replica-c");
    tokio::time::sleep(interval * 5).await;
    assert!(!c.is_leader(), "two leaders");
    if a_led {
        stop_b.cancel();
    } else {
        stop_a.cancel();
    }
    tokio::task::block_in_place(|| until("hand-over", &|| c.is_leader()));
    assert!(!a.is_leader() && !b.is_leader());
    stop_c.cancel();
}

/// A leader cut off from the database (its packets vanish, no connection is reset) stops
/// calling itself leader within a few check intervals (printed), rather than when TCP notices.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_a_partitioned_leader_steps_down() {
    use keygate::db::leader::Leadership;
    use sqlx::postgres::PgConnectOptions;
    use tokio_util::sync::CancellationToken;

    let pg = Postgres::start().expect("start postgres");
    let proxy = common::pg_proxy::PgProxy::start(pg.port()).await;
    let port = proxy.port;
    let options = PgConnectOptions::new()
        .host("127.0.0.1")
        .port(port)
        .username(Postgres::USER)
        .password(pg.password())
        .database("postgres")
        .application_name("kg-partitioned");
    let interval = Duration::from_millis(200);
    let stop = CancellationToken::new();
    let leader = Leadership::campaign(options, interval, stop.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !leader.is_leader() {
        assert!(Instant::now() < deadline, "never led");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    proxy.partition();
    let cut = Instant::now();
    // TCP would notice the partition only after minutes; 10 s (50 check intervals) leaves room
    // for a busy machine without letting that pass.
    while leader.is_leader() {
        assert!(
            cut.elapsed() < Duration::from_secs(10),
            "still leader 10 s into the partition"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "a partitioned leader stepped down {:?} into the partition (checks every {interval:?})",
        cut.elapsed()
    );
    stop.cancel();
}

/// A leader that stops leading (here: its check went unanswered) keeps the lock until its
/// leader-only jobs have stopped, so the next leader's jobs never overlap its own: a job that
/// takes a while to wind down ends before the other replica leads.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_a_stepping_down_leader_keeps_the_lock_until_its_jobs_stop() {
    use keygate::db::leader::{Leadership, while_leader};
    use sqlx::postgres::PgConnectOptions;
    use std::sync::{Arc, Mutex};
    use tokio_util::sync::CancellationToken;

    const WIND_DOWN: Duration = Duration::from_millis(1500);
    let pg = Postgres::start().expect("start postgres");
    let proxy = common::pg_proxy::PgProxy::start(pg.port()).await;
    let options = |port: u16, name: &str| {
        PgConnectOptions::new()
            .host("127.0.0.1")
            .port(port)
            .username(Postgres::USER)
            .password(pg.password())
            .database("postgres")
            .application_name(name)
    };
    let interval = Duration::from_millis(200);
    let stop = CancellationToken::new();
    let a = Leadership::campaign(options(proxy.port, "kg-a"), interval, stop.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !a.is_leader() {
        assert!(Instant::now() < deadline, "a never led");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A's job winds down for a while once told to stop, and says when it has.
    let stopped_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let job_stopped = stopped_at.clone();
    tokio::spawn(while_leader(a.clone(), stop.clone(), move |term| {
        let job_stopped = job_stopped.clone();
        async move {
            term.cancelled().await;
            tokio::time::sleep(WIND_DOWN).await;
            *job_stopped.lock().expect("lock") = Some(Instant::now());
        }
    }));
    tokio::time::sleep(interval * 2).await;
    let b = Leadership::campaign(options(pg.port(), "kg-b"), interval, stop.clone());
    tokio::time::sleep(interval * 3).await;
    assert!(!b.is_leader(), "two leaders");

    // A's check goes unanswered: it steps down. The partition then heals, so a session A
    // closes is closed at the server at once (a real partition leaves that to keepalives).
    proxy.partition();
    let deadline = Instant::now() + Duration::from_secs(30);
    while a.is_leader() {
        assert!(Instant::now() < deadline, "a still leads in the partition");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    proxy.heal();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !b.is_leader() {
        assert!(Instant::now() < deadline, "b never led");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let b_led_at = Instant::now();
    let job_stopped_at = stopped_at
        .lock()
        .expect("lock")
        .expect("a's job had not stopped when b began to lead");
    assert!(job_stopped_at <= b_led_at);
    assert!(!a.is_leader());
    stop.cancel();
}

/// TLS is `verify-full` unless the configuration says otherwise, and a server that offers no
/// TLS is refused rather than spoken to in plaintext.
#[test]
fn postgres_tls_is_required_by_default() {
    let pg = Postgres::start().expect("start postgres");
    let dir = tempfile::tempdir().unwrap();
    let config = pg_config(dir.path(), &pg, "postgres");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("tls = \"disable\"\n", "");
    std::fs::write(&config, text).unwrap();
    let config_arg = config.display().to_string();
    let ran = migrate(dir.path(), &config_arg, pg.password());
    assert!(!ran.status.success(), "migrate spoke plaintext");
    assert!(ran.stderr.contains("TLS"), "{}", ran.stderr);
    let tables = pg
        .psql(
            "postgres",
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
        )
        .expect("count tables");
    assert_eq!(tables.trim(), "0");
}

/// A new certificate authority.
fn test_ca() -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// `verify-full` against a server whose certificate the configured CA signed for the URL's
/// host: migrate connects (over TLS: `verify-full` never falls back to plaintext); with
/// another CA configured it is refused.
#[test]
fn postgres_tls_verify_full_connects_with_the_configured_ca() {
    use rcgen::{CertificateParams, KeyPair};
    let ca = test_ca();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let pg = Postgres::start_with_tls(&cert.pem(), &key.serialize_pem()).expect("start postgres");
    pg.create_database("kg_tls").expect("create database");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("db-ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let config = pg_config(dir.path(), &pg, "kg_tls");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "tls = \"disable\"\n",
        &format!(
            "tls = \"verify-full\"\ntls_ca_file = \"{}\"\n",
            ca_file.display()
        ),
    );
    std::fs::write(&config, text).unwrap();
    let config_arg = config.display().to_string();
    let ran = migrate(dir.path(), &config_arg, pg.password());
    assert!(
        ran.status.success(),
        "migrate over TLS failed: {}",
        ran.stderr
    );
    let tables = pg
        .psql("kg_tls", "SELECT count(*) FROM keys")
        .expect("the schema is there");
    assert_eq!(tables.trim(), "0");

    // Another CA: verify-full refuses the server.
    std::fs::write(&ca_file, test_ca().pem()).unwrap();
    let ran = migrate(dir.path(), &config_arg, pg.password());
    assert!(
        !ran.status.success(),
        "a server signed by another CA was accepted"
    );
}
