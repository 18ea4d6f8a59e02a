//! `keygate status`: is the gateway up, are its providers reachable (circuit breakers), which
//! policies are in force, does the audit log take writes and where is its newest checkpoint.

use super::client::Connection;
use super::{CliResult, output};
use crate::cli::output::Format;
use crate::pb;
use std::process::ExitCode;

/// Exits 0 when everything is healthy, 2 when the gateway answers but a provider's breaker is
/// open or the audit log refuses writes (scripts and probes can tell the two apart).
pub async fn run(conn: &Connection, fmt: Format) -> CliResult {
    let status = conn
        .admin()
        .await?
        .get_gateway_status(pb::GetGatewayStatusRequest {})
        .await
        .map_err(super::client::describe)?
        .into_inner();
    let degraded = !status.audit_writable || status.providers.iter().any(|p| p.breaker != "closed");
    if let Some(data) = fmt.data() {
        data.print(&output::gateway_status_json(&status));
    } else {
        println!("keygate          {} at {}", status.version, conn.endpoint);
        for p in &status.providers {
            println!(
                "provider         {}{}: breaker {}",
                p.name,
                if p.default { " (default)" } else { "" },
                p.breaker
            );
        }
        if let Some(policy) = &status.policy {
            println!(
                "policies         {} from {}, loaded {}{}",
                policy.policies.len(),
                policy.source,
                policy.loaded_at,
                if policy.last_error.is_empty() {
                    String::new()
                } else {
                    format!(" (last reload REFUSED: {})", policy.last_error)
                }
            );
        }
        println!(
            "audit            {}",
            if status.audit_writable {
                "writable"
            } else {
                "NOT WRITABLE: calls are refused"
            }
        );
        if status.checkpoint_head_hash.is_empty() {
            println!("checkpoint       none yet");
        } else {
            println!(
                "checkpoint       #{} {} at {}",
                status.checkpoint_sequence, status.checkpoint_head_hash, status.checkpoint_at
            );
        }
    }
    Ok(if degraded {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
