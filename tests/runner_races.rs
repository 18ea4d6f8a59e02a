//! The runner's promises where calls race or the audit store fails, in process, with a
//! provider whose `rotate` and `cancel_destroy` wait on a gate the test opens, so nothing here
//! depends on how fast the machine is.

use keygate::approvals::{ApprovalSettings, ApprovalStore};
use keygate::audit::AuditLog;
use keygate::auth::{Principal, TokenTable};
use keygate::catalog::Catalog;
use keygate::config::PrincipalKind;
use keygate::gateway::ops::{
    CancelKeyDestruction, CreateKey, DurationInput, GetKey, RotateKey, ScheduleKeyDestruction,
    SetKeyEnabled,
};
use keygate::gateway::runner::GatewayParts;
use keygate::gateway::{Call, Credentials, Gateway, Limits};
use keygate::lifecycle::LifecycleSettings;
use keygate::lifecycle::destruction::DestructionRecords;
use keygate::policy::{PolicyEngine, PolicyStore};
use keygate::providers::ProviderRegistry;
use keygate_provider::{
    Capabilities, KeyProvider, KeySpec, KeyUri, KeyVersionInfo, ProviderKey, Replied, Result,
};
use keygate_provider_local::{LocalProvider, MasterKeySource};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};
use zeroize::Zeroizing;

const TOKEN: &[u8] = b"races-token-0123456789abcdef";

/// The local provider, with `rotate` held until the test opens the gate.
struct Gated {
    inner: LocalProvider,
    entered: Notify,
    gate: Semaphore,
}

#[async_trait::async_trait]
impl KeyProvider for Gated {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn create_key(&self, spec: &KeySpec) -> Result<Replied<ProviderKey>> {
        self.inner.create_key(spec).await
    }
    async fn describe(&self, key: &KeyUri) -> Result<Replied<ProviderKey>> {
        self.inner.describe(key).await
    }
    async fn rotate(&self, key: &KeyUri) -> Result<Replied<KeyVersionInfo>> {
        self.entered.notify_one();
        let _permit = self.gate.acquire().await.expect("gate");
        self.inner.rotate(key).await
    }
    async fn set_enabled(&self, key: &KeyUri, enabled: bool) -> Result<Replied<()>> {
        self.inner.set_enabled(key, enabled).await
    }
    async fn schedule_destroy(&self, key: &KeyUri, window: Duration) -> Result<Replied<()>> {
        self.inner.schedule_destroy(key, window).await
    }
    async fn cancel_destroy(&self, key: &KeyUri) -> Result<Replied<()>> {
        self.entered.notify_one();
        let _permit = self.gate.acquire().await.expect("gate");
        self.inner.cancel_destroy(key).await
    }
    async fn destroy(&self, key: &KeyUri) -> Result<Replied<()>> {
        self.inner.destroy(key).await
    }
}

async fn gateway(data: &Path) -> (Arc<Gateway>, Arc<Gated>, sqlx::SqlitePool) {
    let db = keygate::db::open(data).await.unwrap();
    let catalog = Catalog::load(db.clone().into()).await.unwrap();
    let audit = AuditLog::start_sqlite(db.clone()).await.unwrap();
    let mut tokens = TokenTable::default();
    tokens.insert(
        TOKEN,
        Principal {
            name: "root".into(),
            kind: PrincipalKind::User,
            // As `serve --dev`'s root: every action the rules allow.
            roles: vec!["dev-root".into()],
            team: String::new(),
            environments: vec!["*".into()],
            certificate: None,
        },
    );
    let gated = Arc::new(Gated {
        inner: LocalProvider::open("gated", &data.join("local"), MasterKeySource::DevGenerated)
            .unwrap(),
        entered: Notify::new(),
        gate: Semaphore::new(0),
    });
    let mut providers = ProviderRegistry::new("gated");
    providers.insert(gated.clone());
    let gateway = Gateway::new(GatewayParts {
        catalog,
        providers,
        policy: Arc::new(PolicyStore::fixed(PolicyEngine::defaults().unwrap())),
        audit,
        tokens,
        limits: Limits::default(),
        lifecycle: LifecycleSettings::default(),
        approvals: ApprovalStore::new(db.clone().into()),
        approval_settings: ApprovalSettings::default(),
        destructions: DestructionRecords::new(db.clone().into()),
        posture: keygate::posture::Posture {
            store: keygate::posture::PostureStore::new(db.clone().into()),
            settings: Default::default(),
            system_keys: Vec::new(),
        },
        telemetry: Default::default(),
    });
    (Arc::new(gateway), gated, db)
}

fn call() -> Call {
    Call {
        request_id: keygate::gateway::new_request_id(),
        client_address: "127.0.0.1:1".into(),
        credentials: Credentials::Bearer(Zeroizing::new(TOKEN.to_vec())),
    }
}

async fn create(gateway: &Arc<Gateway>, name: &str) {
    gateway
        .run(
            call(),
            CreateKey {
                name: name.into(),
                purpose: String::new(),
                algorithm: "aes-256-gcm".into(),
                owner: "alice".into(),
                environment: String::new(),
                crypto_period: Some(DurationInput {
                    seconds: 30 * 86_400,
                    nanos: 0,
                }),
                provider: String::new(),
                labels: Default::default(),
                ttl: None,
                draft: None,
            },
        )
        .await
        .expect("create");
}

fn rotate(name: &str) -> RotateKey {
    RotateKey {
        key: name.into(),
        only_if_due_at_ms: None,
        step: Default::default(),
    }
}

async fn versions(gateway: &Arc<Gateway>, name: &str) -> usize {
    gateway
        .run(
            call(),
            GetKey {
                key: name.into(),
                usage: false,
            },
        )
        .await
        .expect("get")
        .versions
        .len()
}

/// The outcomes stored for a request id, in sequence order.
async fn outcomes(db: &sqlx::SqlitePool, request_id: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT outcome FROM audit_events WHERE request_id = ? ORDER BY sequence")
        .bind(request_id)
        .fetch_all(db)
        .await
        .unwrap()
}

async fn wait_for_outcome(db: &sqlx::SqlitePool, request_id: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = outcomes(db, request_id).await;
        if found.iter().any(|o| o != "intent") {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "no outcome for {request_id}: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Once admitted, a call runs to its end; before that, a caller that gave up gets nothing done.
/// A RotateKey whose client gave up while it was queued on the key's lock must not rotate the
/// key afterwards: its client saw DEADLINE_EXCEEDED and will retry, and every retry would add a
/// version of its own. It ends audited as CALLER_GONE, with no intent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_abandoned_before_admission_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, gated, db) = gateway(dir.path()).await;
    create(&gateway, "queued").await;

    // A holds the key's lock inside the provider.
    let first = tokio::spawn({
        let gateway = gateway.clone();
        async move { gateway.run(call(), rotate("queued")).await }
    });
    gated.entered.notified().await;

    // B queues on the lock; its caller gives up before B is admitted.
    let abandoned = call();
    let abandoned_id = abandoned.request_id.clone();
    let waited = tokio::time::timeout(
        Duration::from_millis(200),
        gateway.run(abandoned, rotate("queued")),
    )
    .await;
    assert!(
        waited.is_err(),
        "B should still be queued on the key's lock"
    );
    assert!(
        outcomes(&db, &abandoned_id).await.is_empty(),
        "B was not admitted yet, so nothing is on record for it"
    );

    gated.gate.add_permits(100);
    first.await.unwrap().expect("A rotates");
    let found = wait_for_outcome(&db, &abandoned_id).await;

    assert_eq!(
        versions(&gateway, "queued").await,
        2,
        "the abandoned, never-admitted RotateKey rotated the key anyway (its events: {found:?})"
    );
    assert_eq!(
        found,
        ["error"],
        "no intent for a call that was not admitted"
    );
    let reason: String =
        sqlx::query_scalar("SELECT error_reason FROM audit_events WHERE request_id = ?")
            .bind(&abandoned_id)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(reason, "CALLER_GONE");
}

/// A change that reached the backend and the catalog never leaves only its intent on record.
/// Here the audit store fails between the intent and the outcome (a trigger stands in for a
/// full disk); the rotation is applied, the outcome cannot be written and the caller hears
/// AUDIT_UNAVAILABLE; once the store recovers, the outcome is committed right after the
/// recovery event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outcome_the_store_refused_is_written_once_it_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, gated, db) = gateway(dir.path()).await;
    create(&gateway, "outage").await;

    let request = call();
    let id = request.request_id.clone();
    let change = tokio::spawn({
        let gateway = gateway.clone();
        async move { gateway.run(request, rotate("outage")).await }
    });
    gated.entered.notified().await;
    assert_eq!(outcomes(&db, &id).await, vec!["intent".to_string()]);

    sqlx::query(
        "CREATE TRIGGER simulated_audit_outage BEFORE INSERT ON audit_events
         BEGIN SELECT RAISE(ABORT, 'simulated audit store failure'); END",
    )
    .execute(&db)
    .await
    .unwrap();
    gated.gate.add_permits(100);
    let result = change.await.unwrap();
    assert!(
        result.is_err(),
        "the outcome could not be written: {:?}",
        result.map(|_| ())
    );

    sqlx::query("DROP TRIGGER simulated_audit_outage")
        .execute(&db)
        .await
        .unwrap();
    let mut writable = gateway.audit_writable();
    tokio::time::timeout(Duration::from_secs(30), writable.wait_for(|w| *w))
        .await
        .expect("the store recovers")
        .unwrap();

    // The change happened ...
    assert_eq!(versions(&gateway, "outage").await, 2);
    // ... so its outcome must be on record.
    let found = outcomes(&db, &id).await;
    assert_eq!(
        found,
        ["intent", "ok"],
        "rotation applied (2 versions); the log holds {found:?} for request {id}"
    );
    let recovered: String =
        sqlx::query_scalar("SELECT details FROM audit_events WHERE action = 'AuditStoreRecovered'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(recovered.contains("\"late_events\":1"), "{recovered}");
}

/// RotateKey ∥ DisableKey ends disabled with the new version, in memory and in SQLite: the
/// disable waits for the rotation's lock and applies to the key as the rotation left it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_racing_disable_ends_disabled_with_the_new_version() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, gated, db) = gateway(dir.path()).await;
    create(&gateway, "race").await;
    let rotation = tokio::spawn({
        let gateway = gateway.clone();
        async move { gateway.run(call(), rotate("race")).await }
    });
    gated.entered.notified().await;
    let disable = tokio::spawn({
        let gateway = gateway.clone();
        async move {
            gateway
                .run(
                    call(),
                    SetKeyEnabled {
                        key: "race".into(),
                        enabled: false,
                    },
                )
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    gated.gate.add_permits(100);
    rotation.await.unwrap().expect("rotate");
    disable.await.unwrap().expect("disable");
    let key = gateway
        .run(
            call(),
            GetKey {
                key: "race".into(),
                usage: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(key.state.as_str(), "disabled");
    assert_eq!(key.versions.len(), 2);
    let (state, versions): (String, i64) = sqlx::query_as(
        "SELECT state, (SELECT COUNT(*) FROM key_versions WHERE key_id = keys.id) FROM keys WHERE id = ?",
    )
    .bind(&key.id)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!((state.as_str(), versions), ("disabled", 2));
}

/// CancelKeyDestruction in flight while the scheduler scans: the scan's DestroyKey re-reads
/// the key under its lock and leaves it alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_during_a_scan_keeps_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, gated, _db) = gateway(dir.path()).await;
    create(&gateway, "doomed").await;
    gateway
        .run(
            call(),
            ScheduleKeyDestruction {
                key: "doomed".into(),
                pending_window: None,
                family: false,
            },
        )
        .await
        .expect("schedule");
    let cancel = tokio::spawn({
        let gateway = gateway.clone();
        async move {
            gateway
                .run(
                    call(),
                    CancelKeyDestruction {
                        key: "doomed".into(),
                    },
                )
                .await
        }
    });
    gated.entered.notified().await;
    let scan = tokio::spawn({
        let gateway = gateway.clone();
        async move {
            gateway
                .run_due_work(
                    keygate::time::now_ms() + 400 * 86_400_000,
                    &tokio_util::sync::CancellationToken::new(),
                )
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    gated.gate.add_permits(100);
    cancel.await.unwrap().expect("cancel");
    let work = scan.await.unwrap();
    assert_eq!(work.destroyed, 0, "{work:?}");
    let key = gateway
        .run(
            call(),
            GetKey {
                key: "doomed".into(),
                usage: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(key.state.as_str(), "disabled");
}
