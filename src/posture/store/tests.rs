//! The posture store against a real SQLite database.

use super::*;
use crate::posture::{Rule, Severity};

fn key(uri: &str) -> ScannedKey {
    ScannedKey {
        provider: "p".into(),
        provider_uri: uri.into(),
        algorithm: String::new(),
        state: "enabled".into(),
        key_id: String::new(),
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

async fn scan(
    store: &PostureStore,
    at: i64,
    uris: &[&str],
    error: &str,
) -> (ScanSummary, Vec<ScannedKey>) {
    let listed: HashSet<String> = if error.is_empty() {
        HashSet::from(["p".to_string()])
    } else {
        HashSet::new()
    };
    let keys = store
        .mark_changes(uris.iter().map(|u| key(u)).collect(), &listed)
        .await
        .unwrap();
    let violations: Vec<Violation> = keys
        .iter()
        .filter(|k| k.change != "vanished")
        .map(|k| unmanaged(&k.provider_uri))
        .collect();
    let listings = [ProviderListing {
        provider: "p".into(),
        keys: uris.len() as u64,
        elapsed_ms: 1,
        error: error.into(),
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
        .unwrap();
    (summary, keys)
}

#[tokio::test]
async fn findings_open_refresh_and_close_with_the_scans() {
    let dir = tempfile::tempdir().unwrap();
    let store = PostureStore::new(crate::db::open(dir.path()).await.unwrap().into());
    let (first, _) = scan(&store, 1, &["a", "b"], "").await;
    // The first listing is the baseline: nothing appeared.
    assert_eq!((first.appeared, first.vanished, first.opened), (0, 0, 2));
    let (second, keys) = scan(&store, 2, &["b", "c"], "").await;
    assert_eq!(
        (
            second.appeared,
            second.vanished,
            second.opened,
            second.closed
        ),
        (1, 1, 1, 1)
    );
    assert!(
        keys.iter()
            .any(|k| k.provider_uri == "a" && k.change == "vanished")
    );
    let open = store
        .findings(&FindingFilter::default(), 0, 100)
        .await
        .unwrap();
    let uris: Vec<&str> = open.iter().map(|f| f.provider_uri.as_str()).collect();
    assert_eq!(uris, ["b", "c"]);
    // b was seen again: same finding, refreshed.
    assert_eq!((open[0].opened_at_ms, open[0].last_seen_ms), (1, 2));
    // A failed listing closes nothing.
    let (failed, _) = scan(&store, 3, &[], "unavailable").await;
    assert_eq!(failed.closed, 0);
    let ack = Acknowledgement {
        by: "sol".into(),
        at_ms: 4,
        reason: "known".into(),
    };
    let acked = store.acknowledge(open[0].id, &ack).await.unwrap();
    assert_eq!(acked.acknowledgement, Some(ack.clone()));
    let closed = FindingFilter {
        state: "closed".into(),
        ..Default::default()
    };
    let gone = store.findings(&closed, 0, 100).await.unwrap();
    assert_eq!(gone.len(), 1);
    assert!(matches!(
        store.acknowledge(gone[0].id, &ack).await,
        Err(PostureError::Closed(_))
    ));
    assert!(matches!(
        store.acknowledge(999, &ack).await,
        Err(PostureError::NotFound(999))
    ));
    // Adoption closes the unmanaged finding of exactly that key.
    assert_eq!(store.close_adopted("p", "c", "app/c", 5).await.unwrap(), 1);
    let open = store
        .findings(&FindingFilter::default(), 0, 100)
        .await
        .unwrap();
    assert_eq!(open.len(), 1);
}

#[tokio::test]
async fn old_inventories_go_but_each_providers_newest_listing_stays() {
    let dir = tempfile::tempdir().unwrap();
    let store = PostureStore::new(crate::db::open(dir.path()).await.unwrap().into());
    let (first, _) = scan(&store, 1, &["a"], "").await;
    // Then only failed listings, past the number of scans kept.
    for at in 0..KEEP_SCANS + 1 {
        scan(&store, 2 + at, &[], "unavailable").await;
    }
    let kept = store
        .inventory(first.scan_id, &InventoryFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(
        kept.len(),
        1,
        "the provider's newest successful listing stays"
    );
    let (next, _) = scan(&store, 1000, &["a"], "").await;
    assert_eq!((next.appeared, next.vanished), (0, 0));
    for at in 0..KEEP_SCANS + 1 {
        scan(&store, 1001 + at, &["a"], "").await;
    }
    let gone = store
        .inventory(next.scan_id, &InventoryFilter::default(), None, 10)
        .await
        .unwrap();
    assert!(gone.is_empty(), "an old scan's inventory is deleted");
}

#[tokio::test]
async fn an_undecided_finding_stays_open_and_closes_once_decided() {
    let dir = tempfile::tempdir().unwrap();
    let store = PostureStore::new(crate::db::open(dir.path()).await.unwrap().into());
    scan(&store, 1, &["a"], "").await;
    let listings = [ProviderListing {
        provider: "p".into(),
        keys: 0,
        elapsed_ms: 1,
        error: String::new(),
    }];
    let record = |at: i64, undecided: &HashSet<(String, String)>| {
        let undecided = undecided.clone();
        let store = store.clone();
        let listings = listings.clone();
        async move {
            store
                .record_scan(ScanRecord {
                    started_at_ms: at,
                    finished_at_ms: at,
                    started_by: "test",
                    listings: &listings,
                    keys: &[],
                    violations: &[],
                    undecided: &undecided,
                })
                .await
                .unwrap()
        }
    };
    // The violation is gone but this scan could not decide it: the finding stays open.
    let pending = HashSet::from([(Rule::UnmanagedKey.as_str().to_string(), "p|a".to_string())]);
    assert_eq!(record(2, &pending).await.closed, 0);
    // Decided (no violation, nothing undecided): it closes.
    assert_eq!(record(3, &HashSet::new()).await.closed, 1);
}
