//! The catalog, approval, destruction and posture stores on both databases: every check runs
//! on a SQLite data directory and on a PostgreSQL database migrated as `keygate migrate` does,
//! so the one SQL text each store has is shown to behave alike on both. Two handles on one
//! database stand for two replicas. Runs on a private cluster (`tests/run.sh postgres_stores`
//! installs PostgreSQL).

use keygate::approvals::{
    ApprovalError, ApprovalRequest, ApprovalStore, ListFilter, PendingChange, RequestState,
};
use keygate::catalog::{
    Catalog, CatalogError, KeyCopy, KeyFamily, KeyRecord, KeyState, VersionRecord,
};
use keygate::db::Db;
use keygate::lifecycle::destruction::{
    Check, CopyDestruction, DestructionRecord, DestructionRecords, Ending,
};
use keygate::posture::store::{FindingFilter, InventoryFilter, ScanRecord};
use keygate::posture::{
    Acknowledgement, PostureError, PostureStore, ProviderListing, Rule, ScannedKey, Severity,
    Violation,
};
use keygate_provider::{Algorithm, KeyPurpose, KeyUri};
use keygate_test_backends::postgres::Postgres;
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::time::Duration;

/// Runs `check` on a fresh SQLite database, then on a fresh PostgreSQL database (named `name`
/// in a private cluster); `check` gets which one it runs on, for its messages.
async fn on_both<F, Fut>(name: &str, check: F)
where
    F: Fn(&'static str, Db) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = keygate::db::open(dir.path()).await.expect("open SQLite");
    check("sqlite", sqlite.clone().into()).await;
    sqlite.close().await;

    let pg = tokio::task::spawn_blocking(Postgres::start)
        .await
        .expect("join")
        .expect("start postgres");
    pg.create_database(name).expect("create database");
    let pool = sqlx::PgPool::connect(&pg.url(name))
        .await
        .expect("connect to postgres");
    keygate::db::postgres::migrate(&pool)
        .await
        .expect("migrate postgres");
    check("postgres", pool.clone().into()).await;
    pool.close().await;
}

fn key_record(name: &str, uri: &str) -> KeyRecord {
    KeyRecord {
        id: format!("id-{name}"),
        name: name.into(),
        owner: "alice".into(),
        purpose: KeyPurpose::Encrypt,
        environment: "prod".into(),
        algorithm: Algorithm::Aes256Gcm,
        provider: "local".into(),
        provider_uri: KeyUri::new(uri.to_string()),
        state: KeyState::Enabled,
        crypto_period: Duration::from_secs(86_400),
        created_at_ms: 1_000,
        rotation_due_at_ms: 1_000 + 86_400_000,
        destruction_at_ms: None,
        labels: BTreeMap::new(),
        versions: vec![VersionRecord {
            version: 1,
            provider_version: "pv-1".into(),
            created_at_ms: 1_000,
        }],
        retired_below: 0,
        expires_at_ms: None,
        primary_version: None,
    }
}

async fn insert(catalog: &Catalog, record: KeyRecord) {
    let name = catalog
        .reserve_name(&record.name)
        .await
        .expect("reserve name");
    catalog.insert(&name, record).await.expect("insert key");
}

#[tokio::test]
async fn catalog_keys_versions_and_compare_and_set_on_both_databases() {
    on_both("kg_catalog", |db_name, db| async move {
        let catalog = Catalog::load(db.clone()).await.expect("load catalog");
        let mut payments = key_record("app/payments", "local://payments");
        payments.labels = BTreeMap::from([
            ("team".to_string(), "payments".to_string()),
            ("tier".to_string(), "1".to_string()),
        ]);
        payments.expires_at_ms = Some(9_000_000_000);
        insert(&catalog, payments).await;
        insert(&catalog, key_record("app/ledger", "local://ledger")).await;

        let id = "id-app/payments";
        let lock = catalog.lock(id).await;
        catalog
            .add_version(&lock, "pv-2".into(), 2_000, false)
            .await
            .expect("add version 2");
        // Staged: version 2 keeps signing until promoted.
        let staged = catalog
            .add_version(&lock, "pv-3".into(), 3_000, true)
            .await
            .expect("stage version 3");
        assert_eq!(staged.primary_version, Some(2), "{db_name}");
        drop(lock);

        // Another replica reads everything back from the database.
        let replica = Catalog::load(db.clone()).await.expect("load replica");
        let loaded = replica.get("app/payments").expect("payments loaded");
        assert_eq!(loaded.id, id, "{db_name}");
        assert_eq!(
            loaded.versions,
            vec![
                VersionRecord {
                    version: 1,
                    provider_version: "pv-1".into(),
                    created_at_ms: 1_000,
                },
                VersionRecord {
                    version: 2,
                    provider_version: "pv-2".into(),
                    created_at_ms: 2_000,
                },
                VersionRecord {
                    version: 3,
                    provider_version: "pv-3".into(),
                    created_at_ms: 3_000,
                },
            ],
            "{db_name}"
        );
        assert_eq!(
            loaded.labels.get("team").map(String::as_str),
            Some("payments")
        );
        assert_eq!(loaded.labels.len(), 2, "{db_name}");
        assert_eq!(loaded.primary_version, Some(2), "{db_name}");
        assert_eq!(loaded.rotation_due_at_ms, 3_000 + 86_400_000, "{db_name}");
        assert_eq!(loaded.expires_at_ms, Some(9_000_000_000), "{db_name}");
        assert_eq!(loaded.crypto_period, Duration::from_secs(86_400));
        assert_eq!(loaded.purpose, KeyPurpose::Encrypt);
        assert_eq!(loaded.algorithm, Algorithm::Aes256Gcm);
        assert_eq!(loaded.provider_uri.as_str(), "local://payments");
        assert_eq!(loaded.state, KeyState::Enabled);
        assert_eq!(loaded.owner, "alice");
        let ledger = replica.get("app/ledger").expect("ledger loaded");
        assert_eq!(ledger.versions.len(), 1, "{db_name}: versions stay per key");
        assert_eq!(ledger.primary_version, None);

        // Compare-and-set: the first writer wins; the replica, still holding the old state,
        // changes nothing.
        let lock = catalog.lock(id).await;
        catalog
            .set_state(&lock, KeyState::Enabled, KeyState::Disabled, None)
            .await
            .expect("disable");
        let replica_lock = replica.lock(id).await;
        match replica
            .set_state(
                &replica_lock,
                KeyState::Enabled,
                KeyState::PendingDestruction,
                Some(5_000),
            )
            .await
        {
            Err(CatalogError::Conflict { found, .. }) => {
                assert!(found.contains("another writer"), "{db_name}: {found}")
            }
            other => panic!(
                "{db_name}: expected a conflict, got {:?}",
                other.map(|_| ())
            ),
        }
        replica
            .set_owner(&replica_lock, "alice", "mallory")
            .await
            .expect("the replica hands the key on");
        // The replica's owner change applied (nobody else changed the owner); the writer's
        // own compare-and-set on the owner now fails.
        assert!(matches!(
            catalog.set_owner(&lock, "alice", "bob").await,
            Err(CatalogError::Conflict { .. })
        ));
        catalog.promote(&lock, 2).await.expect("promote");
        catalog
            .set_retired_below(&lock, 0, 2)
            .await
            .expect("retire below 2");
        drop((lock, replica_lock));

        let third = Catalog::load(db).await.expect("load again");
        let now = third.get(id).expect("payments");
        assert_eq!(now.state, KeyState::Disabled, "{db_name}");
        assert_eq!(
            now.destruction_at_ms, None,
            "{db_name}: the loser wrote nothing"
        );
        assert_eq!(now.owner, "mallory", "{db_name}");
        assert_eq!(now.primary_version, None, "{db_name}");
        assert_eq!(now.primary().version, 3);
        assert_eq!(now.retired_below, 2, "{db_name}");
    })
    .await;
}

fn copy(provider: &str, imported: bool) -> KeyCopy {
    KeyCopy {
        provider: provider.into(),
        provider_kind: "aws-kms".into(),
        imported,
        copy_key_id: imported.then(|| format!("copy-{provider}")),
        provider_uri: if imported {
            format!("aws-kms://{provider}/k")
        } else {
            String::new()
        },
        import_method: "rsa-aes-key-wrap-sha256".into(),
        wrapping_key_id: "wrap-1".into(),
        ephemeral_left_hsm: imported,
        imported_at_ms: imported.then_some(4_000),
        imported_by: if imported {
            "alice".into()
        } else {
            String::new()
        },
        import_expires_at_ms: Some(5_000),
        material_validity_ms: Some(86_400_000),
        material_expires_at_ms: imported.then_some(4_000 + 86_400_000),
        error: if imported {
            String::new()
        } else {
            format!("{provider}: import refused")
        },
    }
}

#[tokio::test]
async fn key_families_and_their_copies_on_both_databases() {
    on_both("kg_families", |db_name, db| async move {
        let catalog = Catalog::load(db.clone()).await.expect("load catalog");
        insert(&catalog, key_record("hsm/original", "pkcs11://original")).await;
        assert_eq!(catalog.family("id-hsm/original").await.expect("read"), None);

        let mut family = KeyFamily {
            key_id: "id-hsm/original".into(),
            created_by: "alice".into(),
            created_at_ms: 3_000,
            copies: vec![copy("aws-east", false), copy("aws-west", true)],
        };
        catalog.save_family(&family).await.expect("save family");
        let loaded = catalog.family("id-hsm/original").await.expect("read");
        assert_eq!(loaded.as_ref(), Some(&family), "{db_name}");
        assert!(!family.complete());

        // A retry overwrites the failed copy's row.
        family.copies[0] = copy("aws-east", true);
        catalog.save_family(&family).await.expect("save again");
        let replica = Catalog::load(db).await.expect("load replica");
        let loaded = replica.family("id-hsm/original").await.expect("read");
        assert_eq!(loaded.as_ref(), Some(&family), "{db_name}");
        let loaded = loaded.expect("family");
        assert!(loaded.complete(), "{db_name}");
        assert!(loaded.copies.iter().all(|c| c.ephemeral_left_hsm));
        assert_eq!(loaded.copies[0].error, "", "{db_name}");
        assert_eq!(replica.families().await.expect("families"), vec![family]);
    })
    .await;
}

fn request(id: &str, key_id: &str, change: PendingChange, quorum: u32) -> ApprovalRequest {
    let requester = "alice";
    ApprovalRequest {
        id: id.into(),
        key_id: key_id.into(),
        key_name: format!("name-{key_id}"),
        environment: "prod".into(),
        digest: change.digest(key_id, requester),
        change,
        requester: requester.into(),
        request_call_id: format!("call-{id}"),
        quorum,
        created_at_ms: 1_000,
        expires_at_ms: 100_000,
        state: RequestState::Pending,
        approvals: Vec::new(),
        closed_by: None,
        closed_at_ms: None,
        outcome: None,
        execution_call_id: None,
    }
}

fn adoption(name: &str) -> PendingChange {
    PendingChange::Adopt {
        provider: "local".into(),
        provider_uri: "local://stray".into(),
        name: name.into(),
        owner: "svc-app".into(),
        purpose: "encrypt".into(),
        algorithm: "aes-256-gcm".into(),
        environment: "prod".into(),
        crypto_period_seconds: 86_400,
        labels: BTreeMap::new(),
    }
}

#[tokio::test]
async fn approval_requests_from_open_to_executed_on_both_databases() {
    on_both("kg_approvals", |db_name, db| async move {
        let store = ApprovalStore::new(db.clone());
        let week = PendingChange::ScheduleDestruction {
            window_seconds: 7 * 86_400,
            family: false,
        };
        let (opened, new) = store
            .open(&request("r-01", "k1", week.clone(), 2), 2_000)
            .await
            .expect("open");
        assert!(new, "{db_name}");
        assert_eq!(opened.state, RequestState::Pending);
        assert_eq!(opened.change, week);
        assert_eq!(opened.quorum, 2);
        // The same change asked again: the open request stands.
        let (again, new) = store
            .open(&request("r-02", "k1", week.clone(), 2), 2_500)
            .await
            .expect("open again");
        assert!(!new, "{db_name}");
        assert_eq!(again.id, "r-01", "{db_name}");
        // An adoption reserves a new key id each time: it is matched on its change.
        let (adopt, _) = store
            .open(
                &request("r-03", "reserved-1", adoption("prod/stray"), 1),
                2_000,
            )
            .await
            .expect("open adoption");
        let (adopt_again, new) = store
            .open(
                &request("r-04", "reserved-2", adoption("prod/stray"), 1),
                2_100,
            )
            .await
            .expect("open adoption again");
        assert!(!new, "{db_name}");
        assert_eq!(adopt_again.id, adopt.id, "{db_name}");

        assert!(matches!(
            store.approve("r-01", "alice", None, 2, "c1", 3_000).await,
            Err(ApprovalError::SelfApproval { .. })
        ));
        let first = store
            .approve("r-01", "bob", Some(&opened.digest), 2, "c2", 3_000)
            .await
            .expect("bob approves");
        assert!(first.grant.is_none(), "{db_name}");
        assert_eq!(first.request.approvers(), vec!["bob".to_string()]);
        assert!(matches!(
            store.approve("r-01", "bob", None, 2, "c3", 3_100).await,
            Err(ApprovalError::AlreadyApproved { .. })
        ));

        // Two replicas race for the last place of the quorum: exactly one gets the grant.
        let other = ApprovalStore::new(db.clone());
        let (carol, dave) = tokio::join!(
            store.approve("r-01", "carol", None, 2, "c4", 4_000),
            other.approve("r-01", "dave", None, 2, "c5", 4_000),
        );
        let (winner, loser) = match (carol, dave) {
            (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
            (a, b) => panic!("{db_name}: expected one approval to win, got {a:?} and {b:?}"),
        };
        assert!(
            matches!(loser, ApprovalError::Closed { ref state, .. } if state == "approved"),
            "{db_name}: {loser:?}"
        );
        let grant = winner
            .grant
            .expect("the completing approval gets the grant");
        assert_eq!(grant.request_id, "r-01");
        assert_eq!(grant.change, week);
        assert_eq!(grant.approvers.len(), 2, "{db_name}");
        let approved = store.get("r-01").await.expect("get");
        assert_eq!(approved.state, RequestState::Approved, "{db_name}");
        assert_eq!(
            approved.execution_call_id.as_deref(),
            Some(grant.execution_call_id.as_str())
        );
        assert_eq!(approved.closed_at_ms, Some(4_000));

        store
            .finish("r-01", true, "destruction scheduled")
            .await
            .expect("finish");
        let done = store.get("r-01").await.expect("get");
        assert_eq!(done.state, RequestState::Executed, "{db_name}");
        assert_eq!(done.outcome.as_deref(), Some("destruction scheduled"));

        // Denied, cancelled, and interrupted by a restart.
        store
            .open(&request("r-05", "k2", PendingChange::Disable, 1), 5_000)
            .await
            .expect("open");
        let denied = store
            .deny("r-05", "bob", "not now", 5_100)
            .await
            .expect("deny");
        assert_eq!(
            (
                denied.state,
                denied.closed_by.as_deref(),
                denied.outcome.as_deref()
            ),
            (RequestState::Denied, Some("bob"), Some("not now")),
            "{db_name}"
        );
        let owner = PendingChange::SetOwner {
            owner: "svc".into(),
        };
        store
            .open(&request("r-06", "k2", owner.clone(), 1), 5_000)
            .await
            .expect("open");
        assert!(matches!(
            store.cancel("r-06", "bob", "mine", 5_200).await,
            Err(ApprovalError::NotRequester { .. })
        ));
        let cancelled = store
            .cancel("r-06", "alice", "changed my mind", 5_200)
            .await
            .expect("cancel");
        assert_eq!(cancelled.state, RequestState::Cancelled, "{db_name}");
        store
            .open(&request("r-07", "k3", PendingChange::Disable, 1), 6_000)
            .await
            .expect("open");
        store
            .approve("r-07", "bob", None, 1, "c6", 6_100)
            .await
            .expect("approve");
        assert_eq!(store.close_interrupted(7_000).await.expect("close"), 1);
        let interrupted = store.get("r-07").await.expect("get");
        assert_eq!(interrupted.state, RequestState::Failed, "{db_name}");
        assert!(
            interrupted
                .outcome
                .as_deref()
                .is_some_and(|o| o.starts_with("interrupted"))
        );

        // Listing: by state, by key, by expiry, by adopted name, newest first, paged.
        let list = |state: &str, key_id: &str, before: &str, limit: u32| ListFilter {
            state: state.into(),
            key_id: key_id.into(),
            before: before.into(),
            limit,
            ..Default::default()
        };
        let ids = |requests: Vec<ApprovalRequest>| -> Vec<String> {
            requests.into_iter().map(|r| r.id).collect()
        };
        let all = store
            .list(&list("", "", "", 10), 8_000)
            .await
            .expect("list");
        assert_eq!(
            ids(all),
            ["r-07", "r-06", "r-05", "r-03", "r-01"],
            "{db_name}"
        );
        let page = store
            .list(&list("", "", "r-05", 2), 8_000)
            .await
            .expect("page");
        assert_eq!(ids(page), ["r-03", "r-01"], "{db_name}");
        let k2 = store
            .list(&list("", "k2", "", 10), 8_000)
            .await
            .expect("k2");
        assert_eq!(ids(k2), ["r-06", "r-05"], "{db_name}");
        let pending = store
            .list(&list("pending", "", "", 10), 8_000)
            .await
            .expect("pending");
        assert_eq!(ids(pending), ["r-03"], "{db_name}");
        let expired = store
            .list(&list("expired", "", "", 10), 200_000)
            .await
            .expect("expired");
        assert_eq!(ids(expired), ["r-03"], "{db_name}");
        let none_expired = store
            .list(&list("expired", "", "", 10), 8_000)
            .await
            .expect("expired");
        assert!(none_expired.is_empty(), "{db_name}");
        let adoptions = store
            .list(
                &ListFilter {
                    adopted_name: "name-reserved-1".into(),
                    limit: 10,
                    ..Default::default()
                },
                8_000,
            )
            .await
            .expect("adoptions");
        assert_eq!(ids(adoptions), ["r-03"], "{db_name}");
    })
    .await;
}

fn scheduled(id: &str, key: &KeyRecord) -> DestructionRecord {
    DestructionRecord {
        id: id.into(),
        key_id: key.id.clone(),
        key_name: key.name.clone(),
        environment: key.environment.clone(),
        provider: key.provider.clone(),
        provider_uri: key.provider_uri.to_string(),
        requested_by: "alice".into(),
        approval_id: Some("r-01".into()),
        approved_by: vec!["bob".into(), "carol".into()],
        window_seconds: 7 * 86_400,
        scheduled_at_ms: 10_000,
        destruction_at_ms: 10_000 + 7 * 86_400_000,
        state: "scheduled".into(),
        cancelled_by: None,
        cancelled_at_ms: None,
        destroyed_at_ms: None,
        destroy_call_id: None,
        versions: Vec::new(),
        method: None,
        checklist: vec![Check::new("quiet period", "no use in 30 days")],
        copies: vec![CopyDestruction {
            key_id: "copy-1".into(),
            key_name: "aws/copy".into(),
            provider: "aws".into(),
            provider_kind: "aws-kms".into(),
            provider_uri: "aws-kms://copy".into(),
            import_method: "rsa-aes-key-wrap-sha256".into(),
            method: "schedule-key-deletion".into(),
        }],
    }
}

#[tokio::test]
async fn destruction_records_from_scheduling_to_their_end_on_both_databases() {
    on_both("kg_destruction", |db_name, db| async move {
        let records = DestructionRecords::new(db);
        let key = key_record("app/old", "local://old");
        let record = scheduled("d-1", &key);
        records.scheduled(&record).await.expect("schedule");
        assert_eq!(
            records.for_key(&key.id).await.expect("read"),
            vec![record.clone()],
            "{db_name}"
        );
        records
            .ended(
                &key,
                Ending::Destroyed {
                    at_ms: 20_000,
                    call_id: "call-destroy",
                    versions: &[1, 2],
                    method: "local-erase",
                },
            )
            .await
            .expect("destroyed");
        let destroyed = DestructionRecord {
            state: "destroyed".into(),
            destroyed_at_ms: Some(20_000),
            destroy_call_id: Some("call-destroy".into()),
            versions: vec![1, 2],
            method: Some("local-erase".into()),
            ..record
        };
        assert_eq!(
            records.for_key(&key.id).await.expect("read"),
            vec![destroyed.clone()],
            "{db_name}"
        );

        // A key scheduled before records were kept: its end is recorded on its own.
        let mut older = key_record("app/older", "local://older");
        older.destruction_at_ms = Some(30_000);
        records
            .ended(
                &older,
                Ending::Cancelled {
                    by: "bob",
                    at_ms: 25_000,
                },
            )
            .await
            .expect("cancelled");
        let cancelled = records.for_key(&older.id).await.expect("read");
        assert_eq!(cancelled.len(), 1, "{db_name}");
        let cancelled = &cancelled[0];
        assert_eq!(cancelled.state, "cancelled", "{db_name}");
        assert_eq!(cancelled.requested_by, "(not recorded)");
        assert_eq!(cancelled.cancelled_by.as_deref(), Some("bob"));
        assert_eq!(cancelled.cancelled_at_ms, Some(25_000));
        assert_eq!(cancelled.destruction_at_ms, 30_000);
        assert!(cancelled.approved_by.is_empty() && cancelled.copies.is_empty());

        // Newest first: the unrecorded one was "scheduled" at 0.
        let newest = records.newest(10).await.expect("newest");
        assert_eq!(newest.len(), 2, "{db_name}");
        assert_eq!(newest[0], destroyed, "{db_name}");
        assert_eq!(records.newest(1).await.expect("newest").len(), 1);
    })
    .await;
}

fn scanned(uri: &str, key_id: &str) -> ScannedKey {
    ScannedKey {
        provider: "p".into(),
        provider_uri: uri.into(),
        algorithm: "aes-256-gcm".into(),
        state: "enabled".into(),
        key_id: key_id.into(),
        change: String::new(),
    }
}

fn unmanaged(uri: &str) -> Violation {
    Violation {
        rule: Rule::UnmanagedKey,
        severity: Severity::High,
        provider: "p".into(),
        provider_uri: uri.into(),
        key_id: String::new(),
        key_name: String::new(),
        evidence: format!("{uri} is unmanaged"),
    }
}

/// One scan of provider `p` listing `uris` (a key id for "managed"), each unmanaged one a
/// violation.
async fn scan(
    store: &PostureStore,
    at: i64,
    uris: &[&str],
) -> (keygate::posture::ScanSummary, Vec<ScannedKey>) {
    let listed = HashSet::from(["p".to_string()]);
    let keys: Vec<ScannedKey> = uris
        .iter()
        .map(|u| match *u {
            "managed" => scanned("p://managed", "id-managed"),
            u => scanned(u, ""),
        })
        .collect();
    let keys = store.mark_changes(keys, &listed).await.expect("mark");
    let violations: Vec<Violation> = keys
        .iter()
        .filter(|k| k.change != "vanished" && k.key_id.is_empty())
        .map(|k| unmanaged(&k.provider_uri))
        .collect();
    let listings = [ProviderListing {
        provider: "p".into(),
        keys: uris.len() as u64,
        elapsed_ms: 7,
        error: String::new(),
    }];
    let summary = store
        .record_scan(ScanRecord {
            started_at_ms: at,
            finished_at_ms: at,
            started_by: "test",
            listings: &listings,
            keys: &keys,
            violations: &violations,
            undecided: &HashSet::new(),
        })
        .await
        .expect("record scan");
    (summary, keys)
}

#[tokio::test]
async fn posture_scans_inventory_and_findings_on_both_databases() {
    on_both("kg_posture", |db_name, db| async move {
        let store = PostureStore::new(db);
        assert_eq!(store.latest_scan().await.expect("latest"), None);
        let (first, _) = scan(&store, 1, &["a", "b", "managed"]).await;
        assert_eq!(
            (first.keys, first.unmanaged, first.appeared, first.opened),
            (3, 2, 0, 2),
            "{db_name}"
        );
        let (second, keys) = scan(&store, 2, &["b", "c", "managed"]).await;
        assert_eq!(
            (
                second.appeared,
                second.vanished,
                second.opened,
                second.closed
            ),
            (1, 1, 1, 1),
            "{db_name}"
        );
        assert!(second.scan_id > first.scan_id);
        assert!(
            keys.iter()
                .any(|k| k.provider_uri == "a" && k.change == "vanished")
        );
        assert_eq!(
            store.latest_scan().await.expect("latest"),
            Some((second.scan_id, 2))
        );

        // The inventory, filtered and paged by (provider, URI).
        let uris = |keys: Vec<ScannedKey>| -> Vec<String> {
            keys.into_iter().map(|k| k.provider_uri).collect()
        };
        let all = store
            .inventory(second.scan_id, &InventoryFilter::default(), None, 10)
            .await
            .expect("inventory");
        assert_eq!(uris(all), ["a", "b", "c", "p://managed"], "{db_name}");
        let unmanaged_only = InventoryFilter {
            unmanaged_only: true,
            ..Default::default()
        };
        let page = store
            .inventory(
                second.scan_id,
                &unmanaged_only,
                Some(("p".into(), "a".into())),
                10,
            )
            .await
            .expect("inventory page");
        assert_eq!(uris(page), ["b", "c"], "{db_name}");
        let changed_only = InventoryFilter {
            changed_only: true,
            ..Default::default()
        };
        let changed = store
            .inventory(second.scan_id, &changed_only, None, 10)
            .await
            .expect("changed");
        assert_eq!(
            changed
                .iter()
                .map(|k| (k.provider_uri.as_str(), k.change.as_str()))
                .collect::<Vec<_>>(),
            [("a", "vanished"), ("c", "appeared")],
            "{db_name}"
        );

        // Findings: b seen twice (refreshed), c new, a closed.
        let open = store
            .findings(&FindingFilter::default(), 0, 100)
            .await
            .expect("findings");
        let open_uris: Vec<&str> = open.iter().map(|f| f.provider_uri.as_str()).collect();
        assert_eq!(open_uris, ["b", "c"], "{db_name}");
        assert_eq!((open[0].opened_at_ms, open[0].last_seen_ms), (1, 2));
        assert_eq!(open[0].severity, "high");
        assert_eq!(open[0].rule, "unmanaged-key");
        assert_eq!(open[0].evidence, "b is unmanaged");
        let closed_filter = FindingFilter {
            state: "closed".into(),
            ..Default::default()
        };
        let closed = store
            .findings(&closed_filter, 0, 100)
            .await
            .expect("closed findings");
        assert_eq!(closed.len(), 1, "{db_name}");
        assert_eq!(closed[0].provider_uri, "a");
        assert_eq!(closed[0].closed_at_ms, Some(2));
        assert_eq!(
            closed[0].closed_because,
            format!("no longer found by scan {}", second.scan_id)
        );
        let by_key = FindingFilter {
            state: "all".into(),
            key: "c".into(),
            ..Default::default()
        };
        let c = store.findings(&by_key, 0, 100).await.expect("by key");
        assert_eq!(c.len(), 1, "{db_name}");
        let after_first = store
            .findings(&FindingFilter::default(), open[0].id, 100)
            .await
            .expect("after");
        assert_eq!(after_first.len(), 1, "{db_name}");

        let ack = Acknowledgement {
            by: "sol".into(),
            at_ms: 4,
            reason: "known".into(),
        };
        let acked = store.acknowledge(open[0].id, &ack).await.expect("ack");
        assert_eq!(acked.acknowledgement, Some(ack.clone()), "{db_name}");
        assert_eq!(
            store.finding(open[0].id).await.expect("finding"),
            acked,
            "{db_name}"
        );
        assert!(matches!(
            store.acknowledge(closed[0].id, &ack).await,
            Err(PostureError::Closed(_))
        ));
        assert!(matches!(
            store.finding(999).await,
            Err(PostureError::NotFound(999))
        ));

        // Adoption closes the unmanaged finding of exactly that key.
        assert_eq!(
            store
                .close_adopted("p", "c", "app/c", 5)
                .await
                .expect("adopt"),
            1,
            "{db_name}"
        );
        let open = store
            .findings(&FindingFilter::default(), 0, 100)
            .await
            .expect("findings");
        assert_eq!(open.len(), 1, "{db_name}");
        assert_eq!(open[0].provider_uri, "b");
    })
    .await;
}
