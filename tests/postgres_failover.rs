//! Replicas on one PostgreSQL doing the same thing at once, or stopping: a leader stopped
//! gracefully hands over at once; two replicas asked for one critical change open one
//! approval request; an approved change a stopped replica left unfinished is closed by the
//! leader; scans on two replicas at once both succeed; `serve` refuses a witness in each
//! replica's data directory. Runs on private PostgreSQL and OpenBao servers
//! (`tests/run.sh postgres`).

mod common;

use common::cluster::{Cluster, NOTIFIED};
use common::team::{self, create_in, opened};
use common::{Server, ServerOptions, within};
use keygate::pb;
use std::process::Command;
use std::time::{Duration, Instant};

/// A prod key in Vault, owned by `svc-pay`, that `henry` may ask to destroy.
fn prod_key(name: &str) -> pb::CreateKeyRequest {
    let mut req = create_in(name, "aes-256-gcm", "svc-pay", "prod");
    req.provider = "vault".into();
    req
}

fn schedule(key: &str) -> pb::ScheduleKeyDestructionRequest {
    pb::ScheduleKeyDestructionRequest {
        family: false,
        key: key.into(),
        pending_window: Some(prost_types::Duration {
            seconds: 30 * 86_400,
            nanos: 0,
        }),
    }
}

/// Creates `names` on replica `i` as alice and waits until every replica knows them.
async fn prod_keys(cluster: &Cluster, i: usize, names: &[String]) {
    let mut alice = cluster.replicas[i].keys_as("alice").await;
    for name in names {
        alice.create_key(prod_key(name)).await.expect("create");
    }
    for replica in &cluster.replicas {
        let keys = replica.keys_as("alice").await;
        within(NOTIFIED, "the keys on every replica", || {
            let mut keys = keys.clone();
            let names = names.to_vec();
            async move {
                for name in names {
                    let found = keys
                        .get_key(pb::GetKeyRequest {
                            key: name,
                            usage: false,
                        })
                        .await;
                    if found.is_err() {
                        return false;
                    }
                }
                true
            }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_stopped_gracefully_hands_over_at_once() {
    let mut cluster = Cluster::start_with(3, "[posture]\nscan_interval = \"0s\"\n");
    within(Duration::from_secs(30), "a leader", || {
        let led = cluster.leader().is_some();
        async move { led }
    })
    .await;
    let leader = cluster.leader().expect("a leader");
    let signalled = Instant::now();
    cluster.replicas[leader].stop_gracefully();
    let stopping = signalled.elapsed();
    let took = within(Duration::from_secs(30), "a new leader", || {
        let now = cluster.leader();
        async move { now.is_some_and(|l| l != leader) }
    })
    .await;
    println!(
        "graceful stop of the leader: it exited {stopping:?} after SIGTERM; a new leader held the lock {took:?} after that ({:?} after SIGTERM)",
        stopping + took
    );
    // The followers wait on the lock: one holds it as soon as the old leader's session
    // closes, not at its next try (every 2 s).
    assert!(took < Duration::from_millis(1500), "{took:?}");

    // The old leader's final checkpoint and the new leader's link up.
    let survivor = (leader + 1) % 3;
    let mut audit = cluster.replicas[survivor].audit(common::ROOT_TOKEN).await;
    let report = common::verify_full(&mut audit).await;
    assert!(report.ok, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_asked_for_one_change_at_once_open_one_request() {
    let cluster = Cluster::start(2);
    let names: Vec<String> = (0..12).map(|i| format!("prod/race-{i}")).collect();
    prod_keys(&cluster, 0, &names).await;
    let h1 = cluster.replicas[0].keys_as("henry").await;
    let h2 = cluster.replicas[1].keys_as("henry").await;
    for name in &names {
        let (mut a, mut b) = (h1.clone(), h2.clone());
        let (x, y) = tokio::join!(
            a.schedule_key_destruction(schedule(name)),
            b.schedule_key_destruction(schedule(name))
        );
        let x = opened(x.expect_err("an approval request"));
        let y = opened(y.expect_err("an approval request"));
        assert_eq!(x, y, "two requests for one change of {name}");
    }
    let pending = cluster.count(
        "SELECT count(*) FROM approval_requests WHERE state = 'pending' AND key_name LIKE 'prod/race-%'",
    );
    assert_eq!(pending, names.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_change_left_unfinished_is_closed_by_the_leader() {
    let cluster = Cluster::start_with(
        2,
        "[lifecycle]\nscan_interval = \"300ms\"\n\n[posture]\nscan_interval = \"0s\"\n",
    );
    let names = ["prod/abandoned".to_string(), "prod/under-way".to_string()];
    prod_keys(&cluster, 0, &names).await;
    let mut henry = cluster.replicas[0].keys_as("henry").await;
    let mut ids = Vec::new();
    for name in &names {
        ids.push(opened(
            henry
                .schedule_key_destruction(schedule(name))
                .await
                .expect_err("an approval request"),
        ));
    }
    // As a replica killed while carrying them out leaves them: approved, never finished. One
    // an hour ago, one a minute ago (a replica may still be at it).
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis(),
    )
    .expect("ms");
    for (id, ago_ms) in ids.iter().zip([3_600_000, 60_000]) {
        cluster
            .pg
            .psql(
                "kg_replicas",
                &format!(
                    "UPDATE approval_requests SET state = 'approved', closed_by = 'erin', \
                     closed_at_ms = {}, execution_call_id = 'exec-{id}' WHERE id = '{id}'",
                    now_ms - ago_ms
                ),
            )
            .expect("psql");
    }
    let erin = cluster.replicas[1].approvals_as("erin").await;
    let get = |id: &str| {
        let mut erin = erin.clone();
        let id = id.to_string();
        async move {
            erin.get_approval(pb::GetApprovalRequest { id })
                .await
                .expect("get approval")
                .into_inner()
        }
    };
    let took = within(
        Duration::from_secs(30),
        "the abandoned request closed",
        || {
            let request = get(&ids[0]);
            async move { request.await.state == "failed" }
        },
    )
    .await;
    println!("the leader closed the abandoned request {took:?} after it was left");
    let closed = get(&ids[0]).await;
    assert!(closed.outcome.contains("interrupted"), "{closed:?}");
    // Several scheduler rounds later the recent one is still left to whoever carries it out.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(get(&ids[1]).await.state, "approved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_on_two_replicas_at_once_all_succeed_without_duplicate_findings() {
    let cluster = Cluster::start_with(2, "[posture]\nscan_interval = \"0s\"\n");
    // Keys in Vault that keygate does not manage: each an open finding. Many, so that each
    // scan's record (a row per key) takes long enough for the two to overlap.
    let stray = |name: String| {
        common::backends::bao(
            &cluster.bao,
            "POST",
            &format!("/v1/transit/keys/{name}"),
            Some(r#"{"type":"aes256-gcm96"}"#),
        )
    };
    for i in 0..20 {
        stray(format!("stray-{i}"));
    }
    let p1 = cluster.replicas[0].posture(&team::token("sam")).await;
    let p2 = cluster.replicas[1].posture(&team::token("sam")).await;
    let rounds = 8;
    for round in 0..rounds {
        // New strays each round: both scans find them, and each would open their findings.
        for i in 0..2 {
            stray(format!("stray-new-{round}-{i}"));
        }
        let (mut a, mut b) = (p1.clone(), p2.clone());
        let (x, y) = tokio::join!(
            a.run_scan(pb::RunScanRequest {}),
            b.run_scan(pb::RunScanRequest {})
        );
        for scan in [x, y] {
            let scan = scan.unwrap_or_else(|e| panic!("round {round}: {e:?}"));
            assert!(
                scan.get_ref().listings.iter().all(|l| l.error.is_empty()),
                "{scan:?}"
            );
        }
    }
    let strays = 20 + 2 * rounds;
    let mut sam = p1.clone();
    let unmanaged = common::posture::findings(&mut sam, "open", "unmanaged-key").await;
    let found = unmanaged
        .iter()
        .filter(|f| f.provider_uri.contains("stray-"))
        .count();
    assert_eq!(found, strays, "{unmanaged:?}");
    // Every scan recorded, no finding twice.
    assert_eq!(
        cluster.count("SELECT count(*) FROM posture_scans"),
        2 * rounds as u64
    );
    assert_eq!(
        cluster.count("SELECT count(*) FROM posture_findings WHERE provider_uri LIKE '%stray-%'"),
        strays as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_postgres_refuses_a_witness_in_each_replicas_data_directory() {
    let cluster = Cluster::start(0);
    let shared = std::fs::read_to_string(&cluster.config).expect("read config");
    let section = Cluster::witness_section(cluster.dir.path());
    assert!(shared.contains(&section));
    let own = cluster.dir.path().join("own-witness.toml");
    std::fs::write(&own, shared.replace(&section, "")).expect("write config");

    let data = cluster.dir.path().join("refused");
    let mut cmd = Command::new(common::keygate_bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .arg("--config")
        .arg(&own)
        .env_remove("KEYGATE_CONFIG")
        .envs(cluster.env.iter().cloned());
    let ran = common::run_to_exit(cmd, cluster.dir.path(), Duration::from_secs(120));
    assert!(!ran.status.success(), "{}", ran.stdout);
    assert!(
        ran.stderr.contains("audit.witness.dir") && ran.stderr.contains("audit.witness.objects"),
        "{}",
        ran.stderr
    );

    // The same replica starts with the shared witness; and in dev mode without one.
    let options = |config: &std::path::Path, dev: bool| ServerOptions {
        dev,
        config: Some(config.to_path_buf()),
        env: cluster.env.clone(),
        ..Default::default()
    };
    let mut started = Server::start_with(&data, options(&cluster.config, false));
    started.stop_gracefully();
    let mut dev = Server::start_with(&data, options(&own, true));
    dev.stop_gracefully();
}
