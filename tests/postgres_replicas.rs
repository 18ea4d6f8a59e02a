//! Three keygate replicas on one PostgreSQL, in front of one Vault (OpenBao): a key made on
//! one replica is used on the others, a key disabled on one is refused on the others within
//! the catalog's sync bound, and the calls of all three are one verifiable audit chain.
//! Runs on private PostgreSQL and OpenBao servers (`tests/run.sh postgres`).

mod common;

use common::cluster::{Cluster, NOTIFIED, on_vault};
use common::{ROOT_TOKEN, Server, open, seal, verify_full, within};
use keygate::pb;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_made_on_one_replica_serves_on_all_and_a_disable_reaches_every_replica() {
    let cluster = Cluster::start(3);
    let mut r1 = cluster.keys(0).await;
    let mut r2 = cluster.keys(1).await;
    let mut r3 = cluster.keys(2).await;
    let bound = NOTIFIED;

    let created = r1
        .create_key(on_vault("shared/orders"))
        .await
        .expect("create on replica 1");
    let create_request = common::request_id(&created);
    let seen = within(bound, "the new key on replica 2", || {
        let mut r2 = r2.clone();
        async move { knows_key(&mut r2, "shared/orders").await }
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

    // Two replicas creating one new name at once, before either hears of the other's: one
    // key, the other call told it exists, and only one key made in Vault (the loser is refused
    // before its provider call, by the name's claim in the database).
    let transit_before = cluster.transit_keys();
    const RACES: usize = 4;
    for i in 0..RACES {
        let name = format!("shared/twice-{i}");
        let (mut c1, mut c2) = (r1.clone(), r2.clone());
        let (a, b) = tokio::join!(
            c1.create_key(on_vault(&name)),
            c2.create_key(on_vault(&name))
        );
        let codes = [&a, &b].map(|r| r.as_ref().map_or_else(|s| s.code(), |_| tonic::Code::Ok));
        assert!(
            codes.contains(&tonic::Code::Ok) && codes.contains(&tonic::Code::AlreadyExists),
            "{a:?} {b:?}"
        );
    }
    assert_eq!(
        cluster.transit_keys() - transit_before,
        RACES,
        "one Vault key per name created, none left behind by the losing replicas"
    );

    // A Tail on replica 3 sees a call answered by replica 1.
    let mut tail = cluster.replicas[2]
        .audit(ROOT_TOKEN)
        .await
        .tail(pb::AuditTailRequest {
            key: "shared/orders".into(),
            action: "Encrypt".into(),
            ..Default::default()
        })
        .await
        .expect("tail on replica 3")
        .into_inner();
    let sealed_on_1 = r1
        .encrypt(pb::EncryptRequest {
            key: "shared/orders".into(),
            plaintext: b"order 2".to_vec(),
            associated_data: vec![],
        })
        .await
        .expect("encrypt on replica 1");
    let wanted = common::request_id(&sealed_on_1);
    let tailed = tokio::time::timeout(NOTIFIED, async {
        loop {
            let event = tail
                .message()
                .await
                .expect("tail stream")
                .expect("tail open");
            if event.request_id == wanted {
                return event;
            }
        }
    })
    .await
    .expect("replica 1's call on replica 3's tail");
    assert_eq!(tailed.outcome, "ok");

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

/// Runs `keygate bench` against `server` (a fixed number of calls), writing the ids of the
/// calls that returned OK to `record`, and its report beside it (`.out`).
fn bench(server: &Server, key: &str, requests: u64, record: &Path) -> std::process::Child {
    server
        .cli()
        .args([
            "bench",
            "--op",
            "encrypt",
            "--key",
            key,
            "--concurrency",
            "8",
        ])
        .args(["--channels", "2", "--requests", &requests.to_string()])
        .arg("--record-ok")
        .arg(record)
        .stdout(std::fs::File::create(record.with_extension("out")).expect("bench report file"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn keygate bench")
}

/// `keygate bench` on every replica of a cluster at once, each with its record of the calls
/// that returned OK.
struct Load {
    records: Vec<PathBuf>,
    benches: Vec<std::process::Child>,
}

impl Load {
    /// Starts `requests` encrypts with `key` on each replica; returns once `events` more audit
    /// events are stored (the load is well under way), the benches still running.
    async fn start(cluster: &Cluster, key: &str, requests: u64, events: u64) -> Load {
        let before = cluster.count("SELECT count(*) FROM audit_events");
        let records: Vec<PathBuf> = (0..cluster.replicas.len())
            .map(|i| cluster.dir.path().join(format!("ok-{i}.txt")))
            .collect();
        let benches = cluster
            .replicas
            .iter()
            .zip(&records)
            .map(|(replica, record)| bench(replica, key, requests, record))
            .collect();
        let started = Instant::now();
        while cluster.count("SELECT count(*) FROM audit_events") < before + events {
            assert!(
                started.elapsed() < Duration::from_secs(300),
                "the load did not get going"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Load { records, benches }
    }

    /// Waits for every bench to end.
    fn finish(&mut self) {
        for b in &mut self.benches {
            b.wait().expect("bench ends");
        }
    }

    /// The ids of the calls that returned OK, by replica index.
    fn acknowledged(&self) -> Vec<(usize, String)> {
        let mut ids = Vec::new();
        for (i, record) in self.records.iter().enumerate() {
            let text = std::fs::read_to_string(record).unwrap_or_default();
            ids.extend(
                text.lines()
                    .filter(|l| !l.is_empty())
                    .map(|l| (i, l.to_string())),
            );
        }
        ids
    }

    /// What the benches printed.
    fn reports(&self) -> String {
        self.records
            .iter()
            .map(|r| std::fs::read_to_string(r.with_extension("out")).unwrap_or_default())
            .collect()
    }
}

/// How many Encrypt events that succeeded each request id has.
fn ok_encrypt_events(cluster: &Cluster) -> std::collections::HashMap<String, u32> {
    let mut events = std::collections::HashMap::new();
    for id in cluster
        .pg
        .psql(
            "kg_replicas",
            "SELECT request_id FROM audit_events WHERE action = 'Encrypt' AND outcome = 'ok'",
        )
        .expect("psql")
        .lines()
    {
        *events.entry(id.trim().to_string()).or_insert(0) += 1;
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_under_load_loses_no_acknowledged_call_and_the_others_keep_serving() {
    let mut cluster = Cluster::start(3);
    let mut r1 = cluster.keys(0).await;
    r1.create_key(on_vault("load/orders"))
        .await
        .expect("create");
    for i in 1..3 {
        let mut keys = cluster.keys(i).await;
        within(NOTIFIED, "the key on every replica", || {
            let mut k = keys.clone();
            async move { knows_key(&mut k, "load/orders").await }
        })
        .await;
        let _ = seal(&mut keys, "load/orders", b"warm").await;
    }
    // kill -9 replica 2 once the load is well under way.
    let mut load = Load::start(&cluster, "load/orders", 1500, 600).await;
    cluster.replicas[1].kill9();
    load.finish();

    // Every call any replica acknowledged, the killed one's included, has its event.
    let audited = ok_encrypt_events(&cluster);
    let mut acknowledged = 0;
    for (i, id) in load.acknowledged() {
        acknowledged += 1;
        assert!(
            audited.contains_key(&id),
            "replica {} acknowledged call {id}, which has no audit event",
            i + 1
        );
    }
    assert!(acknowledged >= 3000, "only {acknowledged} calls succeeded");
    println!("{acknowledged} acknowledged calls, each audited");

    // The survivors still serve, and the merged chain verifies.
    for i in [0, 2] {
        let mut keys = cluster.keys(i).await;
        seal(&mut keys, "load/orders", b"after the kill").await;
    }
    let mut audit = cluster.replicas[2].audit(ROOT_TOKEN).await;
    let report = verify_full(&mut audit).await;
    assert!(report.ok, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_leader_dies_another_replica_leads_and_a_due_rotation_happens_once() {
    let mut cluster = Cluster::start_with(
        3,
        "[lifecycle]\nmin_crypto_period = \"1s\"\nscan_interval = \"300ms\"\n\n[posture]\nscan_interval = \"0s\"\n",
    );
    within(Duration::from_secs(30), "a leader", || {
        let led = cluster.leader().is_some();
        async move { led }
    })
    .await;
    let leader = cluster.leader().expect("a leader");
    // Due 15 s from now: after the leader is gone.
    let mut keys = cluster.keys((leader + 1) % 3).await;
    let mut req = on_vault("sched/rotating");
    req.crypto_period = Some(prost_types::Duration {
        seconds: 15,
        nanos: 0,
    });
    keys.create_key(req).await.expect("create");
    cluster.replicas[leader].kill9();
    let took = within(Duration::from_secs(30), "a new leader", || {
        let now = cluster.leader();
        async move { now.is_some_and(|l| l != leader) }
    })
    .await;
    println!("a new leader took over {took:?} after the old one died");

    let versions = || {
        cluster.count(
            "SELECT count(*) FROM key_versions v JOIN keys k ON k.id = v.key_id \
             WHERE k.name = 'sched/rotating'",
        )
    };
    within(Duration::from_secs(60), "the due rotation", || {
        let rotated = versions() >= 2;
        async move { rotated }
    })
    .await;
    // Several scans later, still one rotation: no second replica ran it too.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(versions(), 2);
    let rotations = cluster.count(
        "SELECT count(*) FROM audit_events WHERE key_name = 'sched/rotating' \
         AND action = 'RotateKey' AND outcome = 'ok'",
    );
    assert_eq!(rotations, 1);

    // The new leader's checkpoints link to the old leader's: the checkpoint line holds.
    let survivor = (leader + 1) % 3;
    let checkpoints = || cluster.count("SELECT count(*) FROM audit_checkpoints");
    let before = checkpoints();
    within(
        Duration::from_secs(60),
        "a checkpoint by the new leader",
        || {
            let more = checkpoints() > before;
            async move { more }
        },
    )
    .await;
    let mut audit = cluster.replicas[survivor].audit(ROOT_TOKEN).await;
    let report = verify_full(&mut audit).await;
    assert!(report.ok, "{report:?}");
    assert!(report.checkpoints_checked >= 2, "{report:?}");

    // The audit signing key rotated on the follower: the leader signs with the new version,
    // and the follower, which did not sign, still verifies those checkpoints.
    let new_leader = cluster.leader().expect("a leader");
    let follower = (0..3)
        .find(|&i| i != leader && i != new_leader)
        .expect("a follower");
    let mut follower_keys = cluster.keys(follower).await;
    common::rotate(&mut follower_keys, "keygate/audit-checkpoints").await;
    within(
        Duration::from_secs(60),
        "a checkpoint signed with version 2",
        || {
            let signed =
                cluster.count("SELECT count(*) FROM audit_checkpoints WHERE key_version = 2") > 0;
            async move { signed }
        },
    )
    .await;
    let mut audit = cluster.replicas[follower].audit(ROOT_TOKEN).await;
    let started = Instant::now();
    loop {
        let report = verify_full(&mut audit).await;
        if report.ok {
            break;
        }
        // The follower reloads the key's public keys within seconds of hearing of the
        // rotation; until then it cannot check the new checkpoints.
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the follower cannot verify: {report:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(
        "the follower verified the new version's checkpoints after {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_unavailable_while_postgres_is_down_and_recover_without_a_restart() {
    let mut cluster = Cluster::start(2);
    let mut r1 = cluster.keys(0).await;
    r1.create_key(on_vault("outage/orders"))
        .await
        .expect("create");
    seal(&mut r1, "outage/orders", b"before").await;

    let mut health =
        tonic_health::pb::health_client::HealthClient::new(cluster.replicas[1].channel().await);
    cluster.pg.stop();
    // Replica 2 takes no call meanwhile: it finds out by itself, and says so.
    within(
        Duration::from_secs(30),
        "replica 2 reporting NOT_SERVING",
        || {
            let mut h = health.clone();
            async move {
                h.check(tonic_health::pb::HealthCheckRequest::default())
                    .await
                    .is_ok_and(|r| {
                        r.into_inner().status()
                            == tonic_health::pb::health_check_response::ServingStatus::NotServing
                    })
            }
        },
    )
    .await;
    let refused = r1
        .encrypt(pb::EncryptRequest {
            key: "outage/orders".into(),
            plaintext: b"during".to_vec(),
            associated_data: vec![],
        })
        .await
        .expect_err("a call with nowhere to audit it");
    assert_eq!(
        refused.code(),
        tonic::Code::Unavailable,
        "{refused:?}\n{}",
        cluster.replicas[0].output()
    );

    cluster.pg.restart().expect("restart postgres");
    // Both replicas serve again by themselves, each within its recovery probe.
    for i in 0..2 {
        let keys = cluster.keys(i).await;
        let took = within(Duration::from_secs(60), "service after the restart", || {
            let mut k = keys.clone();
            async move {
                k.encrypt(pb::EncryptRequest {
                    key: "outage/orders".into(),
                    plaintext: b"after".to_vec(),
                    associated_data: vec![],
                })
                .await
                .is_ok()
            }
        })
        .await;
        println!(
            "replica {} served again {took:?} after PostgreSQL came back",
            i + 1
        );
    }
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("health")
        .into_inner();
    assert_eq!(
        serving.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
    // Once the store was back, each replica recorded its outage, and the refused call is in
    // the log: its own event if it reached the writer, else counted among the calls refused
    // while the replica already knew the store was gone.
    let mut audit = cluster.replicas[0].audit(ROOT_TOKEN).await;
    let own = common::events_for(&mut audit, &common::status_request_id(&refused)).await;
    let recoveries = common::query_all(
        &mut audit,
        pb::AuditQueryRequest {
            action: "AuditStoreRecovered".into(),
            ..Default::default()
        },
    )
    .await;
    assert!(recoveries.len() >= 2, "{recoveries:?}");
    let counted: u64 = recoveries
        .iter()
        .filter_map(|e| serde_json::from_str::<serde_json::Value>(&e.details).ok())
        .filter_map(|d| d["refused_calls"].as_u64())
        .sum();
    assert!(
        own.iter().any(|e| e.action == "Encrypt") || counted >= 1,
        "{own:?} {recoveries:?}"
    );
    let report = verify_full(&mut audit).await;
    assert!(report.ok, "{report:?}");
}

/// PostgreSQL stopped and started again while both replicas are under load: calls fail
/// UNAVAILABLE meanwhile, every call that returned OK has exactly one audit event (none lost,
/// none written twice by the recovery), both replicas serve again by themselves, and the chain
/// and its checkpoints verify (a checkpoint the old leader had under way is dropped, not
/// finished after another replica took over).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_load_loses_and_doubles_no_acknowledged_call() {
    let mut cluster = Cluster::start(2);
    let mut r1 = cluster.keys(0).await;
    r1.create_key(on_vault("restart/orders"))
        .await
        .expect("create");
    let r2 = cluster.keys(1).await;
    within(NOTIFIED, "the key on replica 2", || {
        let mut k = r2.clone();
        async move { seal_ok(&mut k, "restart/orders").await }
    })
    .await;
    let mut load = Load::start(&cluster, "restart/orders", 3000, 400).await;
    // Down for longer than a batch waits for a connection (2 s), so calls are refused; a
    // shorter outage only delays them.
    cluster.pg.stop();
    tokio::time::sleep(Duration::from_secs(5)).await;
    cluster.pg.restart().expect("restart postgres");
    load.finish();
    let reports = load.reports();
    assert!(
        reports.contains("Unavailable"),
        "no call was refused:\n{reports}"
    );

    // Both serve again by themselves.
    for i in 0..2 {
        let keys = cluster.keys(i).await;
        within(Duration::from_secs(60), "service after the restart", || {
            let mut k = keys.clone();
            async move { seal_ok(&mut k, "restart/orders").await }
        })
        .await;
    }
    // Every acknowledged call has exactly one event.
    let audited = ok_encrypt_events(&cluster);
    let mut acknowledged = 0;
    for (_, id) in load.acknowledged() {
        acknowledged += 1;
        assert_eq!(
            audited.get(&id).copied().unwrap_or(0),
            1,
            "acknowledged call {id} has not exactly one audit event"
        );
    }
    assert!(acknowledged >= 400, "only {acknowledged} calls succeeded");
    println!("{acknowledged} acknowledged calls across the restart, each audited once");
    // One chain, and one line of checkpoints though leadership changed hands in the outage.
    let mut audit = cluster.replicas[1].audit(ROOT_TOKEN).await;
    let report = verify_full(&mut audit).await;
    assert!(report.ok, "{report:?}");
}

/// Whether the replica behind `keys` knows `key`.
async fn knows_key(keys: &mut common::Keys, key: &str) -> bool {
    keys.get_key(pb::GetKeyRequest {
        key: key.into(),
        usage: false,
    })
    .await
    .is_ok()
}

/// Whether an encrypt with `key` succeeds.
async fn seal_ok(keys: &mut common::Keys, key: &str) -> bool {
    keys.encrypt(pb::EncryptRequest {
        key: key.into(),
        plaintext: b"probe".to_vec(),
        associated_data: vec![],
    })
    .await
    .is_ok()
}

/// The provider conformance suite (every operation, rotation, re-encryption, refusals)
/// through a replica on PostgreSQL, while a second replica shares its database; then the
/// second replica sees every key the suite made, in the state the suite left it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_suite_passes_on_postgres() {
    let cluster = Cluster::start(2);
    let mut keys = cluster.keys(0).await;
    common::suite::run(
        &mut keys,
        "vault",
        "pg",
        &[
            "aes-256-gcm",
            "ecdsa-p256",
            "ed25519",
            "hmac-sha256",
            "rsa-2048-oaep",
        ],
    )
    .await;
    let listed = |k: &mut common::Keys| {
        let mut k = k.clone();
        async move {
            let mut all: Vec<(String, String, u32)> = k
                .list_keys(pb::ListKeysRequest {
                    page_size: 1000,
                    ..Default::default()
                })
                .await
                .expect("list")
                .into_inner()
                .keys
                .into_iter()
                .map(|key| (key.name, key.state, key.primary_version))
                .collect();
            all.sort();
            all
        }
    };
    let here = listed(&mut keys).await;
    let mut other = cluster.keys(1).await;
    within(NOTIFIED, "the suite's keys on replica 2", || {
        let here = here.clone();
        let list = listed(&mut other);
        async move { list.await == here }
    })
    .await;
}
