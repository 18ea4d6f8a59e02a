//! The audit log on PostgreSQL shared by several replicas: each replica's writer appends to
//! one hash chain, so concurrent batches from three writers come out as one chain with no gap
//! or fork, which verification accepts. Runs on a private cluster (`tests/run.sh postgres`).

use keygate::audit::store::sql::SqlAuditStore;
use keygate::audit::{AuditLog, AuditOptions, AuditRecord};
use keygate_test_backends::postgres::Postgres;
use std::collections::BTreeSet;
use std::sync::Arc;

async fn migrated_pool(pg: &Postgres, db: &str) -> sqlx::PgPool {
    pg.create_database(db).expect("create database");
    let pool = sqlx::PgPool::connect(&pg.url(db)).await.expect("connect");
    keygate::db::postgres::migrate(&pool)
        .await
        .expect("migrate");
    pool
}

fn record(writer: usize, n: usize) -> AuditRecord {
    AuditRecord {
        time_ms: keygate::time::now_ms(),
        source: "gateway".into(),
        actor: format!("svc-writer-{writer}"),
        actor_kind: "service-account".into(),
        action: "Encrypt".into(),
        outcome: "ok".into(),
        request_id: format!("w{writer}-{n}"),
        details: "{}".into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_writers_append_to_one_verifiable_chain() {
    let pg = Postgres::start().expect("start postgres");
    let pool = migrated_pool(&pg, "kg_audit_chain").await;
    // Three logs on one database, as three replicas have: each its own writer and pool.
    let mut logs = Vec::new();
    for _ in 0..3 {
        let replica_pool = sqlx::PgPool::connect(&pg.url("kg_audit_chain"))
            .await
            .expect("connect");
        logs.push(
            AuditLog::start(
                Arc::new(SqlAuditStore::new(replica_pool)),
                AuditOptions::default(),
            )
            .await
            .expect("start log"),
        );
    }
    const CALLERS: usize = 4;
    const PER_CALLER: usize = 50;
    let mut tasks = Vec::new();
    for (w, log) in logs.iter().enumerate() {
        for c in 0..CALLERS {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                for n in 0..PER_CALLER {
                    got.push(
                        log.append(record(w, c * PER_CALLER + n))
                            .await
                            .expect("append"),
                    );
                }
                got
            }));
        }
    }
    let mut sequences = BTreeSet::new();
    for t in tasks {
        for s in t.await.expect("task") {
            assert!(sequences.insert(s), "sequence {s} handed out twice");
        }
    }
    let total = (3 * CALLERS * PER_CALLER) as u64;
    assert_eq!(sequences.len() as u64, total);
    assert_eq!(sequences.first(), Some(&1));
    assert_eq!(sequences.last(), Some(&total), "a gap in the sequences");

    // Every event is stored where its writer said, and each links to the one before it.
    let report = logs[0].reader().verify().await.expect("verify");
    assert!(report.ok, "{report:?}");
    assert_eq!(report.head_sequence, total);
    assert_eq!(report.events_checked, total);
    let head: (i64, String) =
        sqlx::query_as("SELECT sequence, hash FROM audit_chain_head WHERE id = 1")
            .fetch_one(&pool)
            .await
            .expect("head row");
    assert_eq!(head.0 as u64, total);
    assert_eq!(head.1, report.head_hash);
    let request_ids: Vec<(i64, String)> =
        sqlx::query_as("SELECT sequence, request_id FROM audit_events ORDER BY sequence")
            .fetch_all(&pool)
            .await
            .expect("events");
    let distinct: BTreeSet<&str> = request_ids.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(distinct.len() as u64, total, "an event was lost or doubled");

    // A writer started later continues the same chain.
    let late = AuditLog::start(
        Arc::new(SqlAuditStore::new(pool.clone())),
        AuditOptions::default(),
    )
    .await
    .expect("start log");
    assert_eq!(late.append(record(9, 0)).await.expect("append"), total + 1);
    assert!(late.reader().verify().await.expect("verify").ok);
}
