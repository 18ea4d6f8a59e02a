//! query, tail, export, hash.

use super::super::client::{Connection, describe};
use super::super::{CliResult, output};
use super::{ExportArgs, HashArgs, QueryArgs, TailArgs};
use crate::cli::output::Format;
use crate::pb;
use std::io::Write as _;
use std::process::ExitCode;

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

fn row(e: &pb::AuditEvent) -> Vec<String> {
    let mark = if e.bypass {
        " BYPASS"
    } else if e.linked_sequence > 0 {
        " linked"
    } else {
        ""
    };
    vec![
        e.sequence.to_string(),
        e.time
            .as_ref()
            .map(|t| crate::time::rfc3339(crate::time::from_timestamp(t)))
            .unwrap_or_default(),
        format!("{}{mark}", e.source),
        e.actor.clone(),
        e.action.clone(),
        match (e.key_name.is_empty(), e.key_id.is_empty()) {
            (false, _) => e.key_name.clone(),
            (true, false) => e.key_id.clone(),
            _ => e.key_uri.clone(),
        },
        if e.key_version == 0 {
            String::new()
        } else {
            e.key_version.to_string()
        },
        e.outcome.clone(),
        if e.reason.is_empty() {
            e.request_id.clone()
        } else {
            e.reason.clone()
        },
    ]
}

const HEADERS: [&str; 9] = [
    "SEQ",
    "TIME",
    "SOURCE",
    "ACTOR",
    "ACTION",
    "KEY",
    "VER",
    "OUTCOME",
    "REASON / REQUEST",
];

fn print_events(events: &[pb::AuditEvent], fmt: Format) {
    if let Some(data) = fmt.data() {
        // JSON Lines: one event per line.
        for e in events {
            data.print(&output::event_json(e));
        }
        return;
    }
    let mut rows = Vec::new();
    for e in events {
        rows.push(row(e));
        for l in &e.linked {
            let mut r = row(l);
            r[0] = format!("  └ {}", r[0]);
            rows.push(r);
        }
    }
    print!("{}", output::table(&HEADERS, &rows));
}

pub async fn query(conn: &Connection, fmt: Format, q: QueryArgs) -> CliResult {
    let mut audit = conn.audit().await?;
    let mut events = Vec::new();
    let mut page_token = String::new();
    while events.len() < q.limit {
        let mut request = q.filters.query();
        request.start_time = q.since.as_deref().map(|s| when("--since", s)).transpose()?;
        request.end_time = q.until.as_deref().map(|s| when("--until", s)).transpose()?;
        request.contains = q.contains.clone().unwrap_or_default();
        request.include_linked = q.linked;
        request.page_size = (q.limit - events.len()).min(1000) as u32;
        request.page_token = page_token;
        let page = audit.query(request).await.map_err(describe)?.into_inner();
        events.extend(page.events);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    print_events(&events, fmt);
    Ok(ExitCode::SUCCESS)
}

pub async fn tail(conn: &Connection, fmt: Format, t: TailArgs) -> CliResult {
    let mut audit = conn.audit().await?;
    let f = &t.filters;
    let mut stream = audit
        .tail(pb::AuditTailRequest {
            key: f.key.clone().unwrap_or_default(),
            actor: f.actor.clone().unwrap_or_default(),
            action: f.action.clone().unwrap_or_default(),
            outcome: f.outcome.clone().unwrap_or_default(),
            source: f.source.clone().unwrap_or_default(),
            request_id: f.request_id.clone().unwrap_or_default(),
            bypass: f.bypass,
        })
        .await
        .map_err(describe)?
        .into_inner();
    while let Some(event) = stream.message().await.map_err(describe)? {
        if let Some(data) = fmt.data() {
            data.print(&output::event_json(&event));
        } else {
            println!("{}", row(&event).join("  "));
        }
        let _ = std::io::stdout().flush();
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn export(conn: &Connection, e: ExportArgs) -> CliResult {
    let format = match e.format.as_str() {
        "jsonl" | "json" => pb::audit_export_request::Format::JsonLines,
        "ocsf" => pb::audit_export_request::Format::Ocsf,
        other => return Err(format!("--format '{other}': use jsonl or ocsf")),
    };
    let mut filter = e.filters.query();
    filter.start_time = e.since.as_deref().map(|s| when("--since", s)).transpose()?;
    filter.end_time = e.until.as_deref().map(|s| when("--until", s)).transpose()?;
    let mut audit = conn.audit().await?;
    let mut stream = audit
        .export(pb::AuditExportRequest {
            filter: Some(filter),
            format: format as i32,
        })
        .await
        .map_err(describe)?
        .into_inner();
    let mut out: Box<dyn std::io::Write> = match &e.out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .map_err(|err| format!("--out {}: {err}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let mut events = 0u64;
    while let Some(chunk) = stream.message().await.map_err(describe)? {
        out.write_all(&chunk.data)
            .map_err(|err| format!("writing the export: {err}"))?;
        events += chunk.events;
    }
    out.flush()
        .map_err(|err| format!("writing the export: {err}"))?;
    if let Some(path) = &e.out {
        eprintln!("exported {events} events to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn hash(conn: &Connection, fmt: Format, h: HashArgs) -> CliResult {
    let value = if h.value == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| format!("reading the value from standard input: {e}"))?;
        text.trim_end_matches(['\n', '\r']).to_string()
    } else {
        h.value
    };
    let mut audit = conn.audit().await?;
    let hmac = audit
        .hash(pb::AuditHashRequest { value })
        .await
        .map_err(describe)?
        .into_inner()
        .hmac;
    let events = if h.no_search {
        Vec::new()
    } else {
        audit
            .query(pb::AuditQueryRequest {
                contains: hmac.clone(),
                page_size: 1000,
                ..Default::default()
            })
            .await
            .map_err(describe)?
            .into_inner()
            .events
    };
    if let Some(data) = fmt.data() {
        data.print(&serde_json::json!({
            "hmac": hmac,
            "events": events.iter().map(output::event_json).collect::<Vec<_>>(),
        }));
    } else {
        println!("{hmac}");
        if !h.no_search {
            if events.is_empty() {
                eprintln!("no event carries it");
            } else {
                eprintln!("{} events carry it:", events.len());
                print_events(&events, Format::Table);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
