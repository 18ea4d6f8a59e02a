//! `keygate inventory` (the newest scan across every provider, or one provider's listing now)
//! and `keygate findings …`.

use super::CliResult;
use super::client::{Connection, describe};
use super::output;
use crate::cli::output::Format;
use crate::pb;
use clap::{Args, Subcommand};
use serde_json::json;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct InventoryArgs {
    /// Run a scan of every provider instance first (otherwise: the newest scan's snapshot).
    #[arg(long)]
    scan: bool,
    /// Only this provider instance.
    #[arg(long)]
    provider: Option<String>,
    /// Only keys keygate does not manage.
    #[arg(long)]
    unmanaged: bool,
    /// Only keys that appeared or vanished since their provider's previous listing.
    #[arg(long)]
    changed: bool,
    /// The provider's own listing now (one provider: --provider, or the default one),
    /// without recording a scan.
    #[arg(long, conflicts_with_all = ["scan", "unmanaged", "changed"])]
    live: bool,
}

#[derive(Subcommand, Debug)]
pub enum FindingsCommand {
    /// Findings, open ones by default.
    List {
        /// open | closed | all
        #[arg(long, default_value = "open")]
        state: String,
        /// unmanaged-key | missing-from-provider | crypto-period-exceeded | owner-unknown |
        /// destruction-overdue | bypass-use | byok-family-incomplete | two-environments |
        /// provider-settings-contradict
        #[arg(long)]
        rule: Option<String>,
        /// low | medium | high
        #[arg(long)]
        severity: Option<String>,
        /// A key id or provider URI.
        #[arg(long)]
        key: Option<String>,
    },
    /// Acknowledge an open finding: who accepts it and why (audited). It stays open until
    /// its condition is fixed.
    Ack {
        id: i64,
        #[arg(long)]
        reason: String,
    },
}

pub async fn inventory(conn: &Connection, fmt: Format, args: InventoryArgs) -> CliResult {
    if args.live {
        return super::key_cmd::inventory(conn, fmt, args.provider).await;
    }
    let mut posture = conn.posture().await?;
    if args.scan {
        let scan = posture
            .run_scan(pb::RunScanRequest {})
            .await
            .map_err(describe)?
            .into_inner();
        for l in scan.listings.iter().filter(|l| !l.error.is_empty()) {
            eprintln!(
                "keygate: provider '{}' was not listed: {}",
                l.provider, l.error
            );
        }
    }
    let (all, scan_id, scanned_at) = newest_inventory(
        &mut posture,
        pb::GetInventoryRequest {
            provider: args.provider.clone().unwrap_or_default(),
            unmanaged_only: args.unmanaged,
            changed_only: args.changed,
            ..Default::default()
        },
    )
    .await?;
    if let Some(data) = fmt.data() {
        let keys: Vec<_> = all
            .iter()
            .map(|k| {
                json!({
                    "provider": k.provider,
                    "provider_uri": k.provider_uri,
                    "algorithm": k.algorithm,
                    "state": k.state,
                    "managed": k.managed,
                    "key_id": k.key_id,
                    "change": k.change,
                })
            })
            .collect();
        data.print(&json!({"scan_id": scan_id, "scanned_at": scanned_at, "keys": keys}));
        return Ok(ExitCode::SUCCESS);
    }
    if scan_id == 0 {
        println!("no scan has run yet: `keygate inventory --scan` runs one");
        return Ok(ExitCode::SUCCESS);
    }
    println!("scan {scan_id} at {scanned_at}");
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|k| {
            vec![
                k.provider.clone(),
                if k.managed {
                    k.key_id.clone()
                } else {
                    "(unmanaged)".into()
                },
                k.algorithm.clone(),
                k.state.clone(),
                k.change.clone(),
                k.provider_uri.clone(),
            ]
        })
        .collect();
    print!(
        "{}",
        output::table(
            &[
                "PROVIDER",
                "KEY ID",
                "ALGORITHM",
                "STATE",
                "CHANGE",
                "PROVIDER URI"
            ],
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}

fn finding_json(f: &pb::Finding) -> serde_json::Value {
    json!({
        "id": f.id,
        "rule": f.rule,
        "severity": f.severity,
        "provider": f.provider,
        "provider_uri": f.provider_uri,
        "key_id": f.key_id,
        "key_name": f.key_name,
        "evidence": f.evidence,
        "opened_at": f.opened_at,
        "last_seen_at": f.last_seen_at,
        "closed_at": f.closed_at,
        "closed_because": f.closed_because,
        "acknowledged_by": f.acknowledged_by,
        "acknowledged_at": f.acknowledged_at,
        "acknowledgement_reason": f.acknowledgement_reason,
    })
}

pub async fn findings(conn: &Connection, fmt: Format, cmd: FindingsCommand) -> CliResult {
    let mut posture = conn.posture().await?;
    match cmd {
        FindingsCommand::List {
            state,
            rule,
            severity,
            key,
        } => {
            let mut all = Vec::new();
            let mut page_token = String::new();
            loop {
                let page = posture
                    .list_findings(pb::ListFindingsRequest {
                        state: state.clone(),
                        rule: rule.clone().unwrap_or_default(),
                        severity: severity.clone().unwrap_or_default(),
                        key: key.clone().unwrap_or_default(),
                        page_size: 1000,
                        page_token,
                    })
                    .await
                    .map_err(describe)?
                    .into_inner();
                all.extend(page.findings);
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            if let Some(data) = fmt.data() {
                data.print(&serde_json::Value::Array(
                    all.iter().map(finding_json).collect(),
                ));
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = all
                .iter()
                .map(|f| {
                    vec![
                        f.id.to_string(),
                        f.severity.clone(),
                        f.rule.clone(),
                        if f.key_name.is_empty() {
                            f.provider_uri.clone()
                        } else {
                            f.key_name.clone()
                        },
                        if !f.closed_at.is_empty() {
                            "closed".into()
                        } else if f.acknowledged_by.is_empty() {
                            "open".into()
                        } else {
                            format!("acknowledged by {}", f.acknowledged_by)
                        },
                        f.evidence.clone(),
                    ]
                })
                .collect();
            print!(
                "{}",
                output::table(
                    &["ID", "SEVERITY", "RULE", "KEY", "STATE", "EVIDENCE"],
                    &rows
                )
            );
        }
        FindingsCommand::Ack { id, reason } => {
            let f = posture
                .acknowledge_finding(pb::AcknowledgeFindingRequest { id, reason })
                .await
                .map_err(describe)?
                .into_inner();
            if let Some(data) = fmt.data() {
                data.print(&finding_json(&f));
            } else {
                println!(
                    "finding {} ({}) acknowledged by {}: {}",
                    f.id, f.rule, f.acknowledged_by, f.acknowledgement_reason
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Every key of the newest scan that `request` selects, all pages, with the scan's id and
/// time.
async fn newest_inventory(
    posture: &mut super::client::Posture,
    mut request: pb::GetInventoryRequest,
) -> CliResult<(Vec<pb::ScannedKey>, i64, String)> {
    request.page_size = 1000;
    let mut all = Vec::new();
    loop {
        let page = posture
            .get_inventory(request.clone())
            .await
            .map_err(describe)?
            .into_inner();
        all.extend(page.keys);
        if page.next_page_token.is_empty() {
            return Ok((all, page.scan_id, page.scanned_at));
        }
        request.page_token = page.next_page_token;
    }
}

/// The provider instance and algorithm the newest scan listed `uri` with (empty when it did
/// not), read through GetInventory, for `key adopt` without `--provider` or `--algorithm`.
pub async fn last_listed(conn: &Connection, uri: &str) -> CliResult<(String, String)> {
    let mut posture = conn.posture().await?;
    let (keys, _, _) = newest_inventory(&mut posture, pb::GetInventoryRequest::default()).await?;
    Ok(keys
        .into_iter()
        .find(|k| k.provider_uri == uri)
        .map(|k| (k.provider, k.algorithm))
        .unwrap_or_default())
}
