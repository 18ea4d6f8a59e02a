//! `keygate policy …`: check a policy folder offline, reload, status, explain a decision.

use super::CliResult;
use super::client::{Connection, describe};
use super::output;
use crate::cli::output::Format;
use crate::pb;
use crate::policy::PolicyEngine;
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Validate a policy folder (its *.cedar files and keygate.cedarschema, or the built-in
    /// schema) without a server; exits 1 naming the file and the problem.
    Check { dir: PathBuf },
    /// Make a running gateway reload its policy folder now. A bad set is refused and the
    /// policies in force stay.
    Reload,
    /// The policies in force on a running gateway, and the last refused reload.
    Status,
    /// How the gateway decides ACTION by PRINCIPAL on KEY now: the decision, why, and the ids
    /// of the policies that decided.
    Explain {
        /// A configured principal's name.
        #[arg(long)]
        principal: String,
        /// An action: Encrypt, Decrypt, CreateKey, ScheduleKeyDestruction, AuditQuery, …
        #[arg(long)]
        action: String,
        /// A key name or id (for actions on keys).
        #[arg(long)]
        key: Option<String>,
    },
}

pub async fn run(conn: &Connection, fmt: Format, cmd: PolicyCommand) -> CliResult {
    match cmd {
        PolicyCommand::Check { dir } => check(fmt, &dir),
        PolicyCommand::Reload => {
            let status = conn
                .admin()
                .await?
                .reload_policies(pb::ReloadPoliciesRequest {})
                .await
                .map_err(describe)?
                .into_inner();
            print_status(fmt, &status);
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Status => {
            let status = conn
                .admin()
                .await?
                .get_policy_status(pb::GetPolicyStatusRequest {})
                .await
                .map_err(describe)?
                .into_inner();
            print_status(fmt, &status);
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Explain {
            principal,
            action,
            key,
        } => {
            let e = conn
                .admin()
                .await?
                .explain_policy(pb::ExplainPolicyRequest {
                    principal,
                    action,
                    key: key.unwrap_or_default(),
                })
                .await
                .map_err(describe)?
                .into_inner();
            if let Some(data) = fmt.data() {
                data.print(&output::explanation_json(&e));
            } else {
                print!("{}", output::explanation_details(&e));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn check(fmt: Format, dir: &std::path::Path) -> CliResult {
    let engine = PolicyEngine::load_dir(dir).map_err(|e| e.to_string())?;
    let policies = engine.policies();
    if let Some(data) = fmt.data() {
        let ids: Vec<_> = policies
            .iter()
            .map(|p| serde_json::json!({"id": p.id, "file": p.file, "rule": p.rule}))
            .collect();
        data.print(&serde_json::json!({"valid": true, "policies": ids, "caches_decisions": engine.caches_decisions()}));
    } else {
        let rows: Vec<Vec<String>> = policies
            .iter()
            .map(|p| {
                vec![
                    p.id.clone(),
                    p.rule.clone().unwrap_or_default(),
                    p.file.clone(),
                ]
            })
            .collect();
        print!("{}", output::table(&["POLICY", "RULE", "FILE"], &rows));
        println!(
            "{}: {} policies, valid against the schema{}",
            dir.display(),
            policies.len(),
            if engine.caches_decisions() {
                ""
            } else {
                " (some read the time or the client address: decisions will not be cached)"
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_status(fmt: Format, s: &pb::PolicyStatus) {
    if let Some(data) = fmt.data() {
        data.print(&output::policy_status_json(s));
        return;
    }
    println!("source           {}", s.source);
    println!("policies         {}", s.policies.len());
    println!("loaded           {}", s.loaded_at);
    println!(
        "decision cache   {}",
        if s.caches_decisions { "on" } else { "off" }
    );
    if !s.last_error.is_empty() {
        println!(
            "last reload      REFUSED at {}: {}",
            s.last_error_at, s.last_error
        );
    }
}
