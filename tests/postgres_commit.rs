//! An audit batch whose COMMIT reached PostgreSQL but whose answer never came back (the
//! connection was lost in between): the writer asks the database whether the batch was
//! written, so the call succeeds and its event is in the log once, not written a second time
//! as a late event after an outage that never was. Runs on a private cluster behind a proxy
//! that loses the connection on cue (`tests/run.sh postgres`).

mod common;

use common::pg_proxy::PgProxy;
use common::{Server, ServerOptions, create, seal};
use keygate_test_backends::postgres::Postgres;
use std::time::Duration;

const PASSWORD_VAR: &str = "KG_TEST_PG_PASSWORD";
const KEY: &str = "commit-lost/key";

#[tokio::test(flavor = "multi_thread")]
async fn a_commit_whose_answer_was_lost_is_recorded_once() {
    let pg = Postgres::start().expect("start postgres");
    pg.create_database("kg_commit").expect("create database");
    let proxy = PgProxy::start(pg.port()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("keygate.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\nkind = \"postgres\"\nurl = \"postgres://{user}@127.0.0.1:{port}/kg_commit\"\n\
             password = {{ env = \"{PASSWORD_VAR}\" }}\npool_size = 4\ntls = \"disable\"\n\
             catalog_resync = \"1h\"\n\n[audit.checkpoints]\nenabled = false\n",
            user = Postgres::USER,
            port = proxy.port,
        ),
    )
    .expect("write config");
    let env = vec![(PASSWORD_VAR.to_string(), pg.password().to_string())];
    let mut migrate = std::process::Command::new(common::keygate_bin());
    migrate
        .args(["migrate", "--config"])
        .arg(&config)
        .env_remove("KEYGATE_CONFIG")
        .envs(env.iter().map(|(k, v)| (k, v)));
    let migrated = common::run_to_exit(migrate, dir.path(), Duration::from_secs(120));
    assert!(migrated.status.success(), "{}", migrated.stderr);
    let server = Server::start_with(
        &dir.path().join("data"),
        ServerOptions {
            config: Some(config),
            env,
            ..Default::default()
        },
    );
    let mut keys = server.root().await;
    keys.create_key(create(KEY, "aes-256-gcm", "root"))
        .await
        .expect("create key");
    seal(&mut keys, KEY, b"before").await;

    // The next transaction carrying the key's name commits, and its answer is lost: the
    // audit batch of this call (the key name is one of its event's columns).
    proxy.cut_after_commit_of(KEY);
    let sealed = keys
        .encrypt(keygate::pb::EncryptRequest {
            key: KEY.into(),
            plaintext: b"during".to_vec(),
            associated_data: vec![],
        })
        .await;
    assert_eq!(proxy.cuts(), 1, "the proxy lost no COMMIT's answer");
    sealed.expect("a call whose audit batch was written succeeds");
    assert!(
        server
            .output()
            .contains("an audit batch's COMMIT got no answer, but the batch was written"),
        "the cut COMMIT was not the audit batch's:\n{}",
        server.output()
    );
    seal(&mut keys, KEY, b"after").await;

    // Three calls, three events; no outage recorded; one chain.
    let count = |sql: &str| -> u64 {
        pg.psql("kg_commit", sql)
            .expect("psql")
            .trim()
            .parse()
            .expect("a count")
    };
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM audit_events WHERE key_name = '{KEY}' AND action = 'Encrypt'"
        )),
        3
    );
    assert_eq!(
        count("SELECT count(*) FROM audit_events WHERE action = 'AuditStoreRecovered'"),
        0
    );
    let verified = server
        .cli()
        .args(["audit", "verify"])
        .output()
        .expect("audit verify");
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );
}
