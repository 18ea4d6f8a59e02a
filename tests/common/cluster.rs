//! Several keygate replicas on one private PostgreSQL, in front of one Vault (OpenBao): the
//! cluster of the replica tests (`tests/postgres_replicas.rs` and the like).

use super::{ROOT_TOKEN, Server, ServerOptions, team};
use keygate::pb;
use keygate_test_backends::openbao::OpenBao;
use keygate_test_backends::postgres::Postgres;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub const PG_PASSWORD_ENV: &str = "KG_TEST_PG_PASSWORD";
pub const VAULT_TOKEN_ENV: &str = "KG_TEST_VAULT_TOKEN";
/// The catalog's periodic resync in these replicas: far beyond every bound the tests check, so
/// a change that reaches another replica in time came by its notification.
pub const RESYNC: Duration = Duration::from_secs(3600);
/// How long a notified change may take to reach another replica: generous for a busy machine,
/// and nothing near RESYNC.
pub const NOTIFIED: Duration = Duration::from_secs(30);

/// Replicas first, then the servers they use.
pub struct Cluster {
    pub replicas: Vec<Server>,
    pub config: PathBuf,
    pub env: Vec<(String, String)>,
    pub dir: tempfile::TempDir,
    pub bao: OpenBao,
    pub pg: Postgres,
}

impl Cluster {
    pub fn start(replicas: usize) -> Cluster {
        Self::start_with(replicas, "")
    }

    /// `extra`: more configuration (whole sections). The replicas share a witness directory
    /// ([`Cluster::witness_section`]) and know [`team::PEOPLE`]'s tokens beside the dev root.
    pub fn start_with(replicas: usize, extra: &str) -> Cluster {
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
                 [audit.checkpoints]\nprovider = \"vault\"\nevery = \"1s\"\n\n\
                 {witness}\n\
                 [providers.vault]\nkind = \"vault\"\naddress = \"{addr}\"\nmount = \"transit\"\n\
                 auth = {{ method = \"token\", token = {{ env = \"{VAULT_TOKEN_ENV}\" }} }}\n\n{tokens}{extra}\n",
                url = pg.url_without_password("kg_replicas"),
                resync = RESYNC.as_secs(),
                hmac = hmac.display(),
                witness = Self::witness_section(dir.path()),
                addr = bao.addr(),
                tokens = team::tokens_config(),
            ),
        )
        .expect("write config");
        let mut env = vec![
            (PG_PASSWORD_ENV.to_string(), pg.password().to_string()),
            (VAULT_TOKEN_ENV.to_string(), bao.token().to_string()),
        ];
        env.extend(team::token_env());
        migrate(dir.path(), &config, &env);
        let mut cluster = Cluster {
            replicas: Vec::new(),
            config,
            env,
            dir,
            bao,
            pg,
        };
        for i in 0..replicas {
            let server = cluster.start_replica(i);
            cluster.replicas.push(server);
        }
        cluster
    }

    /// The configuration's `[audit.witness]`: one directory all replicas write (as one
    /// mounted on every host would be).
    pub fn witness_section(dir: &Path) -> String {
        format!(
            "[audit.witness]\ndir = \"{}\"\n",
            dir.join("shared-witness").display()
        )
    }

    pub fn start_replica(&self, i: usize) -> Server {
        Server::start_with(
            &self.dir.path().join(format!("replica-{i}")),
            ServerOptions {
                config: Some(self.config.clone()),
                env: self.env.clone(),
                ..Default::default()
            },
        )
    }

    pub async fn keys(&self, i: usize) -> super::Keys {
        self.replicas[i].keys(ROOT_TOKEN).await
    }

    /// The replica holding the leader lock, if one does (by its session's
    /// `application_name`, `keygate-PID`).
    pub fn leader(&self) -> Option<usize> {
        let holder = self
            .pg
            .psql(
                "kg_replicas",
                // The leader key only: other advisory locks (a posture scan's) are not it.
                &format!("SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE 'keygate-%' \
                 AND l.objsubid = 1 AND l.classid::bigint * 4294967296 + l.objid::bigint = {}",
                keygate::db::leader::LEADER_LOCK_KEY),
            )
            .expect("psql");
        let pid: u32 = holder.trim().strip_prefix("keygate-")?.parse().ok()?;
        self.replicas.iter().position(|r| r.child.id() == Some(pid))
    }

    /// How many keys Vault's transit engine holds.
    pub fn transit_keys(&self) -> usize {
        let (status, body) = self
            .bao
            .request("LIST", "/v1/transit/keys", None)
            .expect("list transit keys");
        assert_eq!(status, 200, "{body}");
        let listed: serde_json::Value = serde_json::from_str(&body).expect("a JSON listing");
        listed["data"]["keys"].as_array().map_or(0, Vec::len)
    }

    /// A number from the database.
    pub fn count(&self, sql: &str) -> u64 {
        self.pg
            .psql("kg_replicas", sql)
            .expect("psql")
            .trim()
            .parse()
            .expect("a number")
    }
}

fn migrate(dir: &Path, config: &Path, env: &[(String, String)]) {
    let mut cmd = Command::new(super::keygate_bin());
    cmd.args(["migrate", "--config"])
        .arg(config)
        .env_remove("KEYGATE_CONFIG")
        .envs(env.iter().cloned());
    let ran = super::run_to_exit(cmd, dir, Duration::from_secs(120));
    assert!(ran.status.success(), "migrate: {}", ran.stderr);
}

/// A CreateKey request for an AES key in Vault.
pub fn on_vault(name: &str) -> pb::CreateKeyRequest {
    let mut req = super::create(name, "aes-256-gcm", "root");
    req.provider = "vault".into();
    req
}
