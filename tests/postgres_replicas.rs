//! Three keygate replicas on one PostgreSQL, in front of one Vault (OpenBao): a key made on
//! one replica is used on the others, a key disabled on one is refused on the others within
//! the catalog's sync bound, and the calls of all three are one verifiable audit chain.
//! Runs on private PostgreSQL and OpenBao servers (`tests/run.sh postgres`).

mod common;

use common::{ROOT_TOKEN, Server, ServerOptions, create, open, seal, verify_full};
use keygate::pb;
use keygate_test_backends::openbao::OpenBao;
use keygate_test_backends::postgres::Postgres;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const PG_PASSWORD_ENV: &str = "KG_TEST_PG_PASSWORD";
const VAULT_TOKEN_ENV: &str = "KG_TEST_VAULT_TOKEN";
/// The catalog's periodic resync in these replicas: the latest a change made on one replica
/// reaches another when its notification is lost.
const RESYNC: Duration = Duration::from_secs(5);

/// Replicas first, then the servers they use.
struct Cluster {
    replicas: Vec<Server>,
    config: PathBuf,
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
    _bao: OpenBao,
    _pg: Postgres,
}

impl Cluster {
    fn start(replicas: usize) -> Cluster {
        let pg = Postgres::start().expect("start postgres");
        pg.create_database("kg_replicas").expect("create database");
        let bao = OpenBao::start().expect("start openbao");
        let dir = tempfile::tempdir().expect("temp dir");
        let hmac = dir.path().join("audit-hmac.key");
        std::fs::write(&hmac, [7u8; 32]).expect("hmac key");
        let config = dir.path().join("keygate.toml");
        std::fs::write(
            &config,
            format!(
                "[storage]\nkind = \"postgres\"\nurl = \"{url}\"\npassword = {{ env = \"{PG_PASSWORD_ENV}\" }}\n\
                 pool_size = 8\ntls = \"disable\"\ncatalog_resync = \"{resync}s\"\n\n\
                 [audit]\nhmac_key = {{ file = \"{hmac}\" }}\n\n\
                 [audit.checkpoints]\nprovider = \"vault\"\n\n\
                 [providers.vault]\nkind = \"vault\"\naddress = \"{addr}\"\nmount = \"transit\"\n\
                 auth = {{ method = \"token\", token = {{ env = \"{VAULT_TOKEN_ENV}\" }} }}\n",
                url = pg.url_without_password("kg_replicas"),
                resync = RESYNC.as_secs(),
                hmac = hmac.display(),
                addr = bao.addr(),
            ),
        )
        .expect("write config");
        let env = vec![
            (PG_PASSWORD_ENV.to_string(), pg.password().to_string()),
            (VAULT_TOKEN_ENV.to_string(), bao.token().to_string()),
        ];
        migrate(dir.path(), &config, &env);
        let mut cluster = Cluster {
            replicas: Vec::new(),
            config,
            env,
            dir,
            _bao: bao,
            _pg: pg,
        };
        for i in 0..replicas {
            let server = cluster.start_replica(i);
            cluster.replicas.push(server);
        }
        cluster
    }

    fn start_replica(&self, i: usize) -> Server {
        Server::start_with(
            &self.dir.path().join(format!("replica-{i}")),
            ServerOptions {
                config: Some(self.config.clone()),
                env: self.env.clone(),
                ..Default::default()
            },
        )
    }

    async fn keys(&self, i: usize) -> common::Keys {
        self.replicas[i].keys(ROOT_TOKEN).await
    }
}

fn migrate(dir: &Path, config: &Path, env: &[(String, String)]) {
    let mut cmd = Command::new(common::keygate_bin());
    cmd.args(["migrate", "--config"])
        .arg(config)
        .env_remove("KEYGATE_CONFIG")
        .envs(env.iter().cloned());
    let ran = common::run_to_exit(cmd, dir, Duration::from_secs(120));
    assert!(ran.status.success(), "migrate: {}", ran.stderr);
}

fn on_vault(name: &str) -> pb::CreateKeyRequest {
    let mut req = create(name, "aes-256-gcm", "root");
    req.provider = "vault".into();
    req
}

/// Polls `attempt` until it returns true; how long that took. Fails past `bound`.
async fn within<F, Fut>(bound: Duration, what: &str, mut attempt: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if attempt().await {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < bound,
            "{what}: not seen within {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_made_on_one_replica_serves_on_all_and_a_disable_reaches_every_replica() {
    let cluster = Cluster::start(3);
    let mut r1 = cluster.keys(0).await;
    let mut r2 = cluster.keys(1).await;
    let mut r3 = cluster.keys(2).await;
    // The bound a replica must meet: the periodic resync, with room for a busy machine.
    let bound = RESYNC * 2;

    let created = r1
        .create_key(on_vault("shared/orders"))
        .await
        .expect("create on replica 1");
    let create_request = common::request_id(&created);
    let seen = within(bound, "the new key on replica 2", || {
        let mut r2 = r2.clone();
        async move {
            r2.get_key(pb::GetKeyRequest {
                key: "shared/orders".into(),
                usage: false,
            })
            .await
            .is_ok()
        }
    })
    .await;
    println!("a key created on replica 1 was usable on replica 2 after {seen:?}");
    let ciphertext = seal(&mut r2, "shared/orders", b"order 1").await;
    within(bound, "the new key on replica 3", || {
        let mut r3 = r3.clone();
        let ciphertext = ciphertext.clone();
        async move { open(&mut r3, &ciphertext).await.is_ok() }
    })
    .await;
    assert_eq!(
        open(&mut r3, &ciphertext)
            .await
            .expect("decrypt on 3")
            .plaintext,
        b"order 1"
    );

    // Two replicas creating one name: one key, the other call told it exists.
    let again = r2.create_key(on_vault("shared/orders")).await;
    assert_eq!(
        again.expect_err("a second key of that name").code(),
        tonic::Code::AlreadyExists
    );

    // Disabled on replica 3: refused on 1 and 2 within the bound.
    r3.disable_key(pb::DisableKeyRequest {
        key: "shared/orders".into(),
    })
    .await
    .expect("disable on replica 3");
    let disabled_at = Instant::now();
    for (name, client) in [("replica 1", &mut r1), ("replica 2", &mut r2)] {
        let took = within(bound, name, || {
            let mut c = client.clone();
            async move {
                matches!(
                    c.encrypt(pb::EncryptRequest {
                        key: "shared/orders".into(),
                        plaintext: b"x".to_vec(),
                        associated_data: vec![],
                    })
                    .await,
                    Err(s) if s.code() == tonic::Code::FailedPrecondition
                )
            }
        })
        .await;
        println!("{name} refused the disabled key after {took:?}");
    }
    println!(
        "the disable reached both replicas within {:?}",
        disabled_at.elapsed()
    );

    // One chain, whichever replica answers: replica 1's creation is in replica 3's feed, and
    // the whole chain verifies.
    let mut audit3 = cluster.replicas[2].audit(ROOT_TOKEN).await;
    let events = common::events_for(&mut audit3, &create_request).await;
    assert!(
        events
            .iter()
            .any(|e| e.action == "CreateKey" && e.outcome == "ok"),
        "{events:?}"
    );
    let mut audit2 = cluster.replicas[1].audit(ROOT_TOKEN).await;
    let report = verify_full(&mut audit2).await;
    assert!(report.ok, "{report:?}\n{}", cluster.replicas[1].output());
}
