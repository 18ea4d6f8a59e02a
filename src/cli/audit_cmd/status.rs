//! checkpoints, ingesters.

use super::super::client::{Connection, describe};
use super::super::{CliResult, output};
use super::CheckpointArgs;
use crate::cli::output::Format;
use crate::pb;
use serde_json::json;
use std::process::ExitCode;

fn time(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref()
        .map(|t| crate::time::rfc3339(crate::time::from_timestamp(t)))
        .unwrap_or_default()
}

pub async fn checkpoints(conn: &Connection, fmt: Format, c: CheckpointArgs) -> CliResult {
    let mut audit = conn.audit().await?;
    let r = audit
        .list_checkpoints(pb::ListCheckpointsRequest { limit: c.limit })
        .await
        .map_err(describe)?
        .into_inner();
    if let Some(data) = fmt.data() {
        for cp in &r.checkpoints {
            data.print(&json!({
                    "sequence": cp.sequence,
                    "head_hash": cp.head_hash,
                    "time": time(&cp.time),
                    "previous_digest": cp.previous_digest,
                    "key_id": cp.key_id,
                    "key_name": cp.key_name,
                    "key_version": cp.key_version,
                    "algorithm": cp.algorithm,
                    "public_key_fingerprint": crate::audit::anchor::statement::fingerprint(&cp.public_key),
                }));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = r
        .checkpoints
        .iter()
        .map(|cp| {
            vec![
                cp.sequence.to_string(),
                time(&cp.time),
                cp.head_hash.clone(),
                format!("{} v{}", cp.key_name, cp.key_version),
                crate::audit::anchor::statement::fingerprint(&cp.public_key),
            ]
        })
        .collect();
    print!(
        "{}",
        output::table(&["SEQ", "SIGNED", "HEAD", "KEY", "KEY FINGERPRINT"], &rows)
    );
    for w in &r.witnesses {
        println!("witnessed in {w}");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn ingesters(conn: &Connection, fmt: Format) -> CliResult {
    let mut audit = conn.audit().await?;
    let r = audit
        .list_ingesters(pb::ListIngestersRequest {})
        .await
        .map_err(describe)?
        .into_inner();
    if let Some(data) = fmt.data() {
        for i in &r.ingesters {
            data.print(&json!({
                    "name": i.name,
                    "source": i.source,
                    "input": i.input,
                    "ingested": i.ingested,
                    "linked": i.linked,
                    "bypass": i.bypass,
                    "ignored": i.ignored,
                    "duplicates": i.duplicates,
                    "malformed": i.malformed,
                    "last_malformed": i.last_malformed,
                    "position": serde_json::from_str::<serde_json::Value>(&i.position).unwrap_or_default(),
                    "updated": time(&i.updated),
                }));
        }
        return Ok(ExitCode::SUCCESS);
    }
    if r.ingesters.is_empty() {
        println!("no ingester is configured ([[audit.ingest]] in the configuration)");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = r
        .ingesters
        .iter()
        .map(|i| {
            vec![
                i.name.clone(),
                i.source.clone(),
                i.input.clone(),
                i.ingested.to_string(),
                i.linked.to_string(),
                i.bypass.to_string(),
                i.ignored.to_string(),
                i.duplicates.to_string(),
                i.malformed.to_string(),
                time(&i.updated),
            ]
        })
        .collect();
    print!(
        "{}",
        output::table(
            &[
                "NAME",
                "SOURCE",
                "INPUT",
                "INGESTED",
                "LINKED",
                "BYPASS",
                "IGNORED",
                "DUPLICATE",
                "MALFORMED",
                "UPDATED"
            ],
            &rows
        )
    );
    for i in r.ingesters.iter().filter(|i| !i.last_malformed.is_empty()) {
        println!(
            "{}: last malformed record skipped: {}",
            i.name, i.last_malformed
        );
    }
    Ok(ExitCode::SUCCESS)
}
