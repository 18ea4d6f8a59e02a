//! `keygate bench-audit` (hidden): the audit log measured in-process, without gRPC, for
//! `benches/audit.sh`. Each prints one JSON object.
//!
//! - `append`: sustained durable appends (group commit, `synchronous=FULL`) from many
//!   producers, as calls make them;
//! - `fill`: a store of N events over D days across K keys, checkpointed every 10,000 events;
//! - `query`: one key over a 24-hour window of a filled store;
//! - `verify`: incremental verification of a filled store, right after a checkpoint and with a
//!   checkpoint interval of events after it;
//! - `ingest`: OpenBao audit records ingested from a file (bypass findings: no gateway call).

use super::CliResult;
use crate::audit::anchor::statement;
use crate::audit::anchor::witness::{DirWitness, Witness as _};
use crate::audit::ingest::file::FileFeed;
use crate::audit::ingest::{IngestSettings, Ingester, KeyDirectory, ManagedKey, Step, sources};
use crate::audit::store::{AuditStore, Checkpoint, SideRows};
use crate::audit::verify::{self, Mode, Trust};
use crate::audit::{AuditFilter, AuditLog, AuditRecord, Batch};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _};
use clap::{Args, Subcommand};
use serde_json::json;
use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Subcommand, Debug)]
pub enum BenchAudit {
    Append(AppendArgs),
    Fill(FillArgs),
    Query(DirArgs),
    Verify(DirArgs),
    Ingest(IngestArgs),
}

#[derive(Args, Debug)]
pub struct AppendArgs {
    #[arg(long, required_unless_present = "postgres")]
    pub data_dir: Option<PathBuf>,
    /// Append to this migrated PostgreSQL database instead (`postgres://USER@HOST:PORT/DB`;
    /// a password from PGPASSWORD), as a replica's writer does.
    #[arg(long)]
    pub postgres: Option<String>,
    /// With --postgres: writers appending at once to the one chain, as that many replicas.
    #[arg(long, default_value_t = 1)]
    pub writers: usize,
    /// Tasks appending at once, each waiting for its event to be durable.
    #[arg(long, default_value_t = 256)]
    pub producers: usize,
    #[arg(long, default_value = "10s")]
    pub duration: String,
}

#[derive(Args, Debug)]
pub struct FillArgs {
    #[arg(long)]
    pub data_dir: PathBuf,
    #[arg(long, default_value_t = 5_000_000)]
    pub events: u64,
    #[arg(long, default_value_t = 100)]
    pub keys: u64,
    #[arg(long, default_value_t = 10)]
    pub days: u64,
}

#[derive(Args, Debug)]
pub struct DirArgs {
    #[arg(long)]
    pub data_dir: PathBuf,
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
}

#[derive(Args, Debug)]
pub struct IngestArgs {
    #[arg(long)]
    pub data_dir: PathBuf,
    /// OpenBao records (request and response halves) in the file.
    #[arg(long, default_value_t = 100_000)]
    pub records: u64,
}

/// Events between two checkpoints of a filled store.
const CHECKPOINT_EVERY: u64 = 10_000;
const DAY_MS: i64 = 86_400_000;

fn record(i: u64, keys: u64, time_ms: i64) -> AuditRecord {
    let k = i % keys;
    AuditRecord {
        time_ms,
        source: "gateway".into(),
        actor: "svc-payments".into(),
        actor_kind: "service-account".into(),
        action: "Encrypt".into(),
        key_id: format!("bench-key-{k:04}"),
        key_name: format!("bench/key-{k:04}"),
        key_version: 1,
        key_uri: format!("local://bench.key-{k:04}"),
        outcome: "ok".into(),
        policy: "allow by key-users-use-keys".into(),
        request_id: uuid::Uuid::now_v7().to_string(),
        client_address: "10.0.0.5:51234".into(),
        details: "{\"algorithm\":\"aes-256-gcm\",\"plaintext_bytes\":32}".into(),
        ..Default::default()
    }
}

async fn open(dir: &Path) -> Result<(AuditLog, Arc<dyn AuditStore>), String> {
    let db = crate::db::open(dir).await.map_err(|e| e.to_string())?;
    let log = AuditLog::start_sqlite(db)
        .await
        .map_err(|e| e.to_string())?;
    let store = log.store();
    Ok((log, store))
}

fn print(value: serde_json::Value) -> CliResult {
    println!("{value}");
    let _ = std::io::stdout().flush();
    Ok(ExitCode::SUCCESS)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// The bench's checkpoint key (P-256), kept in the data directory.
struct BenchSigner {
    pair: EcdsaKeyPair,
    spki: Vec<u8>,
}

impl BenchSigner {
    fn load(dir: &Path) -> Result<Self, String> {
        let path = dir.join("bench-signing.pk8");
        let pkcs8 = match std::fs::read(&path) {
            Ok(b) => b,
            Err(_) => {
                let doc = EcdsaKeyPair::generate_pkcs8(
                    &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                    &SystemRandom::new(),
                )
                .map_err(|_| "cannot generate a key")?;
                std::fs::write(&path, doc.as_ref()).map_err(|e| e.to_string())?;
                doc.as_ref().to_vec()
            }
        };
        let pair = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8)
            .map_err(|_| "bad bench key")?;
        // SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING point }
        let mut spki =
            hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap_or_default();
        spki.extend_from_slice(pair.public_key().as_ref());
        Ok(Self { pair, spki })
    }

    fn checkpoint(
        &self,
        sequence: u64,
        head_hash: String,
        previous: &Option<Checkpoint>,
    ) -> Result<Checkpoint, String> {
        let mut cp = Checkpoint {
            sequence,
            head_hash,
            time_ms: crate::time::now_ms(),
            previous_digest: previous
                .as_ref()
                .map_or_else(|| statement::NO_PREVIOUS.to_string(), statement::digest_of),
            key_id: "bench".into(),
            key_name: "bench/checkpoints".into(),
            key_version: 1,
            algorithm: "ecdsa-p256".into(),
            public_key: self.spki.clone(),
            signature: Vec::new(),
        };
        cp.signature = self
            .pair
            .sign(&SystemRandom::new(), &statement::statement(&cp))
            .map_err(|_| "signing failed")?
            .as_ref()
            .to_vec();
        Ok(cp)
    }
}

async fn checkpoint(
    log: &AuditLog,
    store: &Arc<dyn AuditStore>,
    signer: &BenchSigner,
    witness: &DirWitness,
) -> Result<(), String> {
    let previous = store.checkpoints().await.map_err(|e| e.to_string())?.pop();
    let Some((head, hash)) = store.head().await.map_err(|e| e.to_string())? else {
        return Ok(());
    };
    if previous.as_ref().is_some_and(|p| p.sequence == head) {
        return Ok(());
    }
    let cp = signer.checkpoint(head, hash, &previous)?;
    // As the runner does: the signing's own event first, then the checkpoint.
    log.append(AuditRecord {
        time_ms: crate::time::now_ms(),
        source: "gateway".into(),
        actor: "keygate:audit".into(),
        actor_kind: "system".into(),
        action: crate::audit::SIGN_CHECKPOINT_ACTION.into(),
        key_id: "bench".into(),
        key_name: "bench/checkpoints".into(),
        outcome: "ok".into(),
        details: json!({"checkpoint_sequence": head, "head_hash": cp.head_hash}).to_string(),
        ..Default::default()
    })
    .await
    .map_err(|e| e.to_string())?;
    log.commit_side(SideRows {
        checkpoints: vec![cp.clone()],
        witnessed: vec![cp.sequence],
        ..Default::default()
    })
    .await
    .map_err(|e| e.to_string())?;
    witness.append(&[cp]).await
}

async fn append(a: AppendArgs) -> CliResult {
    let duration = crate::time::parse_duration(&a.duration)?;
    let mut logs = Vec::new();
    match &a.postgres {
        Some(url) => {
            for _ in 0..a.writers.max(1) {
                let pool = sqlx::PgPool::connect(url)
                    .await
                    .map_err(|e| format!("--postgres: {e}"))?;
                let store = crate::audit::store::sql::SqlAuditStore::new(pool);
                logs.push(
                    AuditLog::start(Arc::new(store), Default::default())
                        .await
                        .map_err(|e| e.to_string())?,
                );
            }
        }
        None => {
            let dir = a
                .data_dir
                .as_deref()
                .ok_or("--data-dir or --postgres is required")?;
            logs.push(open(dir).await?.0)
        }
    }
    let done = Arc::new(AtomicU64::new(0));
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = Instant::now() + Duration::from_secs(1) + duration;
    let mut tasks = Vec::new();
    for p in 0..a.producers {
        let log = logs[p % logs.len()].clone();
        let (done, measuring) = (done.clone(), measuring.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = p as u64;
            while Instant::now() < stop {
                if log
                    .append(record(i, 100, crate::time::now_ms()))
                    .await
                    .is_ok()
                    && measuring.load(Ordering::Relaxed)
                {
                    done.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    for t in tasks {
        let _ = t.await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let events = done.load(Ordering::Relaxed);
    print(json!({
        "producers": a.producers,
        "writers": logs.len(),
        "events": events,
        "seconds": seconds,
        "events_per_second": events as f64 / seconds,
    }))
}

/// The bench keys in the catalog, so a gateway on the filled store resolves their names.
async fn catalog_keys(dir: &Path, keys: u64) -> Result<(), String> {
    use crate::catalog::{Catalog, KeyRecord, KeyState, VersionRecord};
    let db = crate::db::open(dir).await.map_err(|e| e.to_string())?;
    let catalog = Catalog::load(db.into()).await.map_err(|e| e.to_string())?;
    let now = crate::time::now_ms();
    for k in 0..keys {
        let name = format!("bench/key-{k:04}");
        let Ok(reservation) = catalog.reserve_name(&name).await else {
            continue;
        };
        let record = KeyRecord {
            id: format!("bench-key-{k:04}"),
            name: name.clone(),
            owner: "svc-payments".into(),
            purpose: keygate_provider::KeyPurpose::Encrypt,
            environment: "dev".into(),
            algorithm: keygate_provider::Algorithm::Aes256Gcm,
            provider: "local".into(),
            provider_uri: keygate_provider::KeyUri::new(format!("local://bench.key-{k:04}")),
            state: KeyState::Enabled,
            crypto_period: Duration::from_secs(365 * 86_400),
            created_at_ms: now,
            rotation_due_at_ms: now + 365 * DAY_MS,
            destruction_at_ms: None,
            labels: Default::default(),
            versions: vec![VersionRecord {
                version: 1,
                provider_version: "1".into(),
                created_at_ms: now,
            }],
            retired_below: 0,
            expires_at_ms: None,
            primary_version: None,
        };
        catalog
            .insert(&reservation, record)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn fill(a: FillArgs) -> CliResult {
    catalog_keys(&a.data_dir, a.keys).await?;
    let (log, store) = open(&a.data_dir).await?;
    let signer = BenchSigner::load(&a.data_dir)?;
    let witness = DirWitness::new(&a.data_dir.join("audit-witness"));
    let span = a.days as i64 * DAY_MS;
    let base = crate::time::now_ms() - span;
    let started = Instant::now();
    let mut i = 0u64;
    while i < a.events {
        let n = 1024.min(a.events - i);
        let records = (i..i + n)
            .map(|j| {
                (
                    record(j, a.keys, base + (j as i64 * span / a.events as i64)),
                    None,
                )
            })
            .collect();
        log.append_batch(Batch {
            records,
            side: SideRows::default(),
        })
        .await
        .map_err(|e| e.to_string())?;
        let before = i;
        i += n;
        if before / CHECKPOINT_EVERY != i / CHECKPOINT_EVERY {
            checkpoint(&log, &store, &signer, &witness).await?;
        }
        if i % 500_000 < n {
            eprintln!("filled {i} of {} events", a.events);
        }
    }
    checkpoint(&log, &store, &signer, &witness).await?;
    let seconds = started.elapsed().as_secs_f64();
    let start = base + a.days as i64 * DAY_MS / 2;
    let facts = json!({
        "events": a.events, "keys": a.keys, "days": a.days, "base_ms": base,
        "window_start": crate::time::rfc3339(start),
        "window_end": crate::time::rfc3339(start + DAY_MS),
    });
    std::fs::write(a.data_dir.join("bench-fill.json"), facts.to_string())
        .map_err(|e| e.to_string())?;
    print(json!({
        "events": a.events,
        "seconds": seconds,
        "events_per_second": a.events as f64 / seconds,
        "window_start": facts["window_start"],
        "window_end": facts["window_end"],
    }))
}

fn fill_facts(dir: &Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(dir.join("bench-fill.json"))
        .map_err(|e| format!("{}: run `bench-audit fill` first: {e}", dir.display()))?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

async fn query(a: DirArgs) -> CliResult {
    let facts = fill_facts(&a.data_dir)?;
    let (_, store) = open(&a.data_dir).await?;
    let base = facts["base_ms"].as_i64().unwrap_or(0);
    let days = facts["days"].as_i64().unwrap_or(10);
    let start = base + days * DAY_MS / 2;
    let filter = AuditFilter {
        key: Some("bench/key-0007".into()),
        key_id: Some("bench-key-0007".into()),
        start_ms: Some(start),
        end_ms: Some(start + DAY_MS),
        ..Default::default()
    };
    let (mut first, mut all) = (Vec::new(), Vec::new());
    let mut in_window = 0;
    for _ in 0..a.runs {
        let t = Instant::now();
        let page = store
            .query(&filter, None, 100)
            .await
            .map_err(|e| e.to_string())?;
        first.push(t.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(&page);
        let t = Instant::now();
        let mut after = None;
        let mut n = 0;
        loop {
            let page = store
                .query(&filter, after, 1000)
                .await
                .map_err(|e| e.to_string())?;
            n += page.len();
            let Some(last) = page.last() else { break };
            after = Some(crate::audit::store::After {
                time_ms: last.record.time_ms,
                sequence: last.sequence,
            });
            if page.len() < 1000 {
                break;
            }
        }
        all.push(t.elapsed().as_secs_f64() * 1000.0);
        in_window = n;
    }
    print(json!({
        "store_events": facts["events"],
        "window_events": in_window,
        "first_page_ms": first,
        "first_page_ms_median": median(first.clone()),
        "whole_window_ms": all,
        "whole_window_ms_median": median(all.clone()),
    }))
}

async fn verify_bench(a: DirArgs) -> CliResult {
    fill_facts(&a.data_dir)?;
    let (log, store) = open(&a.data_dir).await?;
    let signer = BenchSigner::load(&a.data_dir)?;
    let witness = DirWitness::new(&a.data_dir.join("audit-witness"));
    // As a running gateway verifies: signatures it checked once are not checked again.
    let verified = Arc::new(statement::Verified::default());
    let trust = || async {
        Ok::<_, String>(Trust {
            keys: vec![signer.spki.clone()],
            witnessed: vec![(witness.describe(), witness.read().await?)],
            anchored: true,
            verified: Some(verified.clone()),
        })
    };
    let mut runs = Vec::new();
    // Right after a checkpoint, then with a checkpoint interval of events after it.
    for events_after in [0, CHECKPOINT_EVERY] {
        checkpoint(&log, &store, &signer, &witness).await?;
        let mut i = 0;
        while i < events_after {
            let records = (i..i + 1000)
                .map(|j| (record(j, 100, crate::time::now_ms()), None))
                .collect();
            log.append_batch(Batch {
                records,
                side: SideRows::default(),
            })
            .await
            .map_err(|e| e.to_string())?;
            i += 1000;
        }
        let mut ms = Vec::new();
        let mut last = None;
        for _ in 0..a.runs {
            let t = Instant::now();
            let report = verify::verify(store.as_ref(), &trust().await?, Mode::Incremental, None)
                .await
                .map_err(|e| e.to_string())?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            last = Some(report);
        }
        let report = last.unwrap_or_default();
        runs.push(json!({
            "events_after_checkpoint": events_after,
            "ok": report.ok,
            "reason": report.reason,
            "checkpoints_checked": report.checkpoints_checked,
            "events_recomputed": report.events_checked,
            "ms": ms,
            "ms_median": median(ms.clone()),
        }));
    }
    print(json!({"incremental_verify": runs}))
}

struct AllManaged(HashMap<String, ManagedKey>);

impl KeyDirectory for AllManaged {
    fn managed(&self) -> HashMap<String, ManagedKey> {
        self.0.clone()
    }
}

/// OpenBao's record of a Transit encrypt (the request half, or the response half).
fn bao_record(i: u64, response: bool) -> String {
    let id = uuid::Uuid::new_v4();
    json!({
        "time": crate::time::rfc3339(crate::time::now_ms() - 60_000),
        "type": if response { "response" } else { "request" },
        "auth": {"client_token": "hmac-sha256:6a5bc94473e8162535a63a4f10f090922695cdb3e27016336bf5479ac746c91e", "accessor": "hmac-sha256:237e0ca39fc5d472886a9691f4b2499366e168da09ae1f1399fee2f62206fcd7", "display_name": "token", "policies": ["app"], "token_policies": ["app"], "token_type": "service"},
        "request": {"id": id.to_string(), "operation": "update", "mount_point": "transit/", "mount_type": "transit", "mount_accessor": "transit_5c93511a", "client_token": "hmac-sha256:6a5b", "client_token_accessor": "hmac-sha256:237e", "namespace": {"id": "root"}, "path": format!("transit/encrypt/bench-{}", i % 100), "data": {"plaintext": "hmac-sha256:f7a3c57b1c902d3bd147b16a72f273ebaffd48de985c4afcf1743b93416d42ad"}, "remote_address": "10.0.0.9", "remote_port": 40000 + (i % 20000), "headers": {"x-keygate-request-id": [uuid::Uuid::now_v7().to_string()]}},
        "response": {"mount_point": "transit/", "mount_type": "transit", "data": {"ciphertext": "hmac-sha256:dd30059a2291644cdd0a1848cafd091cf0a7a2215280c16cec2789b2e26f2558", "key_version": 1}},
    })
    .to_string()
}

async fn ingest(a: IngestArgs) -> CliResult {
    std::fs::create_dir_all(&a.data_dir).map_err(|e| e.to_string())?;
    let file = a.data_dir.join("openbao-audit.log");
    {
        let mut out =
            std::io::BufWriter::new(std::fs::File::create(&file).map_err(|e| e.to_string())?);
        for i in 0..a.records / 2 {
            for response in [false, true] {
                writeln!(out, "{}", bao_record(i, response)).map_err(|e| e.to_string())?;
            }
        }
        out.flush().map_err(|e| e.to_string())?;
    }
    let (log, _) = open(&a.data_dir).await?;
    let managed = (0..100)
        .map(|k| {
            (
                format!("hashivault://transit/keys/bench-{k}"),
                ManagedKey {
                    id: format!("bench-key-{k:04}"),
                    name: format!("bench/key-{k:04}"),
                    versions: vec![(1, "1".into())],
                },
            )
        })
        .collect();
    let ingester = Ingester::new(
        IngestSettings {
            name: "bench".into(),
            normaliser: sources::normaliser("vault").ok_or("no vault normaliser")?,
            feed: Arc::new(FileFeed::new(&file)),
            poll: Duration::from_millis(10),
            grace: Duration::ZERO,
            batch: 500,
        },
        log,
        Arc::new(AllManaged(managed)),
    );
    let started = Instant::now();
    loop {
        match ingester.step().await? {
            Step::Progress(_) => {}
            Step::Idle => break,
            Step::Wait(d) => tokio::time::sleep(d).await,
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    print(json!({
        "records": a.records,
        "seconds": seconds,
        "records_per_second": a.records as f64 / seconds,
        "events_per_second": (a.records / 2) as f64 / seconds,
    }))
}

pub async fn run(cmd: BenchAudit) -> CliResult {
    match cmd {
        BenchAudit::Append(a) => append(a).await,
        BenchAudit::Fill(a) => fill(a).await,
        BenchAudit::Query(a) => query(a).await,
        BenchAudit::Verify(a) => verify_bench(a).await,
        BenchAudit::Ingest(a) => ingest(a).await,
    }
}
