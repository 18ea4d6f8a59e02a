//! verify: incremental (in one call), full (a background job, polled), offline (a copy of a
//! data directory, no gateway).

use super::super::CliResult;
use super::super::client::{Connection, describe};
use super::verdict;
use crate::audit::anchor::statement;
use crate::audit::anchor::witness::{WITNESS_FILE, read_file};
use crate::audit::store::sql::SqlAuditStore;
use crate::audit::verify::{self, Mode, Trust};
use crate::cli::output::Format;
use crate::pb;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn print(r: &pb::AuditVerifyResponse, fmt: Format) {
    if let Some(data) = fmt.data() {
        data.print(&serde_json::json!({
            "ok": r.ok,
            "mode": r.mode,
            "events_checked": r.events_checked,
            "first_broken_sequence": r.first_broken_sequence,
            "reason": r.reason,
            "head_sequence": r.head_sequence,
            "head_hash": r.head_hash,
            "checkpoints_checked": r.checkpoints_checked,
            "last_good_checkpoint": r.last_good_checkpoint,
            "witness_sequence": r.witness_sequence,
            "verified_from": r.verified_from,
            "problems": r.problems,
            "notes": r.notes,
        }));
        return;
    }
    if r.ok {
        let from = if r.verified_from == 0 {
            "its start".to_string()
        } else {
            format!("checkpoint {}", r.verified_from)
        };
        println!(
            "audit chain OK ({}): {} events recomputed from {from} to the head {} ({}); {} checkpoints verified, the newest witnessed at {}",
            r.mode,
            r.events_checked,
            r.head_sequence,
            r.head_hash,
            r.checkpoints_checked,
            r.witness_sequence
        );
    } else {
        println!(
            "audit chain BROKEN at event {} ({}): {}",
            r.first_broken_sequence, r.mode, r.reason
        );
        for p in r.problems.iter().skip(1) {
            if p != &r.reason {
                println!("  also: {p}");
            }
        }
    }
    for n in &r.notes {
        println!("  note: {n}");
    }
}

pub async fn incremental(conn: &Connection, fmt: Format) -> CliResult {
    let mut audit = conn.audit().await?;
    let r = audit
        .verify(pb::AuditVerifyRequest {})
        .await
        .map_err(describe)?
        .into_inner();
    print(&r, fmt);
    Ok(verdict(r.ok))
}

fn progress(checked: u64, total: u64) {
    if total > 0 {
        eprint!(
            "\rverifying: {checked} of {total} events ({:.0}%)   ",
            checked as f64 * 100.0 / total as f64
        );
    } else {
        eprint!("\rverifying: {checked} events   ");
    }
}

pub async fn full(conn: &Connection, fmt: Format) -> CliResult {
    let mut audit = conn.audit().await?;
    let job = audit
        .start_verification(pb::StartVerificationRequest {})
        .await
        .map_err(describe)?
        .into_inner()
        .job;
    let show = std::io::IsTerminal::is_terminal(&std::io::stderr()) && fmt.is_table();
    loop {
        let status = audit
            .get_verification(pb::GetVerificationRequest { job: job.clone() })
            .await
            .map_err(describe)?
            .into_inner();
        if show {
            progress(status.events_checked, status.events_total);
        }
        if status.done {
            if show {
                eprintln!();
            }
            if !status.error.is_empty() {
                return Err(format!(
                    "the verification could not finish: {}",
                    status.error
                ));
            }
            let report = status.report.unwrap_or_default();
            print(&report, fmt);
            return Ok(verdict(report.ok));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

pub async fn offline(
    fmt: Format,
    dir: &Path,
    public_keys: &[PathBuf],
    witnesses: &[PathBuf],
) -> CliResult {
    if public_keys.is_empty() {
        return Err(
            "--offline needs --public-key PEM: the audit signing key's public key, from `keygate public-key --key keygate/audit-checkpoints` (one per version), kept apart from the data"
                .into(),
        );
    }
    let mut keys = Vec::new();
    for path in public_keys {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--public-key {}: {e}", path.display()))?;
        keys.extend(
            statement::public_keys_from_pem(&text)
                .map_err(|e| format!("--public-key {}: {e}", path.display()))?,
        );
    }
    let mut dirs: Vec<PathBuf> = witnesses.to_vec();
    let default = dir.join("audit-witness");
    if dirs.is_empty() && default.join(WITNESS_FILE).exists() {
        dirs.push(default);
    }
    let mut witnessed = Vec::new();
    for w in &dirs {
        let file = w.join(WITNESS_FILE);
        if !file.exists() {
            return Err(format!(
                "--witness {}: no {WITNESS_FILE} there",
                w.display()
            ));
        }
        witnessed.push((file.display().to_string(), read_file(&file)?));
    }
    let db = crate::db::open_read_only(dir)
        .await
        .map_err(|e| format!("--offline {}: {e}", dir.display()))?;
    let store = SqlAuditStore::new(db);
    let trust = Trust {
        keys,
        witnessed,
        anchored: true,
        verified: None,
    };
    let show = std::io::IsTerminal::is_terminal(&std::io::stderr()) && fmt.is_table();
    let report = verify::verify(
        &store,
        &trust,
        Mode::Full,
        Some(&|checked, total| {
            if show {
                progress(checked, total);
            }
        }),
    )
    .await
    .map_err(|e| e.to_string())?;
    if show {
        eprintln!();
    }
    let r: pb::AuditVerifyResponse = report.into();
    print(&r, fmt);
    if dirs.is_empty() && fmt.is_table() {
        println!(
            "  note: no witness was given (--witness DIR): a database replaced by an older copy together with its checkpoints cannot be told apart"
        );
    }
    Ok(verdict(r.ok))
}
