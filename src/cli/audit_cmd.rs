//! `keygate audit …`

use super::CliResult;
use super::client::{Connection, describe};
use super::output;
use crate::pb;
use clap::{Args, Subcommand};
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Events matching the filters, oldest first.
    Query(QueryArgs),
    /// Follow events as they are committed.
    Tail(Filters),
    /// Recompute the hash chain; exits 1 and names the first broken event if it does not hold.
    Verify,
}

#[derive(Args, Debug, Default)]
pub struct Filters {
    /// Key name or id.
    #[arg(long)]
    pub key: Option<String>,
    #[arg(long)]
    pub actor: Option<String>,
    /// RPC name, e.g. Encrypt, CreateKey.
    #[arg(long)]
    pub action: Option<String>,
    /// ok | denied | error
    #[arg(long)]
    pub outcome: Option<String>,
}

#[derive(Args, Debug)]
pub struct QueryArgs {
    #[command(flatten)]
    pub filters: Filters,
    #[arg(long)]
    pub request_id: Option<String>,
    /// Events at or after: RFC 3339 time, or an age like 1h, 7d.
    #[arg(long)]
    pub since: Option<String>,
    /// Events before: RFC 3339 time, or an age like 1h.
    #[arg(long)]
    pub until: Option<String>,
    /// At most this many events (default 100).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
}

fn when(flag: &str, text: &str) -> Result<prost_types::Timestamp, String> {
    if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        let ms = t
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        return Ok(crate::time::to_timestamp(ms));
    }
    let age = crate::time::parse_duration(text)
        .map_err(|_| format!("{flag} '{text}' is neither an RFC 3339 time nor an age like 1h"))?;
    Ok(crate::time::to_timestamp(
        crate::time::now_ms() - age.as_millis() as i64,
    ))
}

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_default()
}

fn row(e: &pb::AuditEvent) -> Vec<String> {
    vec![
        e.sequence.to_string(),
        e.time
            .as_ref()
            .map(|t| crate::time::rfc3339(crate::time::from_timestamp(t)))
            .unwrap_or_default(),
        e.actor.clone(),
        e.action.clone(),
        if e.key_name.is_empty() {
            e.key_id.clone()
        } else {
            e.key_name.clone()
        },
        if e.key_version == 0 {
            String::new()
        } else {
            e.key_version.to_string()
        },
        e.outcome.clone(),
        e.reason.clone(),
    ]
}

const HEADERS: [&str; 8] = [
    "SEQ", "TIME", "ACTOR", "ACTION", "KEY", "VER", "OUTCOME", "REASON",
];

pub async fn run(conn: &Connection, json: bool, cmd: AuditCommand) -> CliResult {
    let mut audit = conn.audit().await?;
    match cmd {
        AuditCommand::Query(q) => {
            let mut events = Vec::new();
            let mut page_token = String::new();
            while events.len() < q.limit {
                let page = audit
                    .query(pb::AuditQueryRequest {
                        start_time: q.since.as_deref().map(|s| when("--since", s)).transpose()?,
                        end_time: q.until.as_deref().map(|s| when("--until", s)).transpose()?,
                        key: opt(&q.filters.key),
                        actor: opt(&q.filters.actor),
                        action: opt(&q.filters.action),
                        outcome: opt(&q.filters.outcome),
                        request_id: opt(&q.request_id),
                        page_size: (q.limit - events.len()).min(1000) as u32,
                        page_token,
                        source: String::new(),
                    })
                    .await
                    .map_err(describe)?
                    .into_inner();
                events.extend(page.events);
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            if json {
                // JSON Lines: one event per line, for export.
                for e in &events {
                    println!("{}", output::event_json(e));
                }
            } else {
                print!(
                    "{}",
                    output::table(&HEADERS, &events.iter().map(row).collect::<Vec<_>>())
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Tail(f) => {
            let mut stream = audit
                .tail(pb::AuditTailRequest {
                    key: opt(&f.key),
                    actor: opt(&f.actor),
                    action: opt(&f.action),
                    outcome: opt(&f.outcome),
                })
                .await
                .map_err(describe)?
                .into_inner();
            while let Some(event) = stream.message().await.map_err(describe)? {
                if json {
                    println!("{}", output::event_json(&event));
                } else {
                    println!("{}", row(&event).join("  "));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify => {
            let r = audit
                .verify(pb::AuditVerifyRequest {})
                .await
                .map_err(describe)?
                .into_inner();
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "ok": r.ok,
                        "events_checked": r.events_checked,
                        "first_broken_sequence": r.first_broken_sequence,
                        "reason": r.reason,
                        "head_hash": r.head_hash,
                    })
                );
            } else if r.ok {
                println!(
                    "audit chain OK: {} events, head {}",
                    r.events_checked, r.head_hash
                );
            } else {
                println!(
                    "audit chain BROKEN at event {}: {} ({} events before it verified)",
                    r.first_broken_sequence, r.reason, r.events_checked
                );
            }
            Ok(if r.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}
