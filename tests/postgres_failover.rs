//! Replicas on one PostgreSQL doing the same thing at once, or stopping: a leader stopped
//! gracefully hands over at once. Runs on private PostgreSQL and OpenBao servers
//! (`tests/run.sh postgres`).

mod common;

use common::cluster::Cluster;
use common::within;
use std::time::{Duration, Instant};

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
