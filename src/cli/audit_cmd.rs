//! `keygate audit …`: query, tail, export, verify (incremental, full, offline), hash,
//! checkpoints, ingesters.

mod read;
mod status;
mod verify;

use super::CliResult;
use super::client::Connection;
use crate::cli::output::Format;
use crate::pb;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Events matching the filters, in time order: keygate's own and the providers' records,
    /// each provider record linked to the gateway call that made it.
    Query(QueryArgs),
    /// Follow events as they are committed (`--bypass`: bypass findings as ingesters make
    /// them).
    Tail(TailArgs),
    /// Every matching event as JSON Lines (keygate's schema) or OCSF API Activity objects.
    Export(ExportArgs),
    /// Check the chain, its signed checkpoints and the witnesses; exits 1 naming the first bad
    /// sequence. Incremental by default (from the last good checkpoint); `--full` recomputes
    /// everything as a background job on the gateway; `--offline DIR` checks a copy of a data
    /// directory with the audit signing key's public key alone, no gateway needed.
    Verify(VerifyArgs),
    /// The HMAC under the gateway's key of a value (a token, an access key id, an encryption
    /// context value): providers' records keep sensitive values only so. Lists the events that
    /// carry it.
    Hash(HashArgs),
    /// The signed checkpoints, newest last, and where they are witnessed.
    Checkpoints(CheckpointArgs),
    /// Each ingester of providers' audit records: input, position, counts, the last record it
    /// skipped and why.
    Ingesters,
}

/// Filters shared by query, tail and export.
#[derive(Args, Debug, Default, Clone)]
pub struct Filters {
    /// Key name or id, or a provider URI (hashivault://…, awskms:///arn:…).
    #[arg(long)]
    pub key: Option<String>,
    #[arg(long)]
    pub actor: Option<String>,
    /// Operation, e.g. Encrypt, CreateKey (providers' records are named alike).
    #[arg(long)]
    pub action: Option<String>,
    /// ok | denied | error | intent
    #[arg(long)]
    pub outcome: Option<String>,
    /// gateway | vault | aws-kms | gcp-kms | azure-keyvault | pkcs11
    #[arg(long)]
    pub source: Option<String>,
    /// A keygate request id (x-request-id) or a backend's request id.
    #[arg(long)]
    pub request_id: Option<String>,
    /// Only bypass findings: providers' records of managed keys that no gateway call made.
    #[arg(long)]
    pub bypass: bool,
}

#[derive(Args, Debug)]
pub struct QueryArgs {
    #[command(flatten)]
    pub filters: Filters,
    /// Events at or after: RFC 3339 time, or an age like 1h, 7d.
    #[arg(long)]
    pub since: Option<String>,
    /// Events before: RFC 3339 time, or an age like 1h.
    #[arg(long)]
    pub until: Option<String>,
    /// Only events whose details contain this text (e.g. an HMAC from `audit hash`).
    #[arg(long)]
    pub contains: Option<String>,
    /// Show under each gateway event the providers' records linked to it.
    #[arg(long)]
    pub linked: bool,
    /// At most this many events (default 100).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
}

#[derive(Args, Debug)]
pub struct TailArgs {
    #[command(flatten)]
    pub filters: Filters,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub filters: Filters,
    #[arg(long)]
    pub since: Option<String>,
    #[arg(long)]
    pub until: Option<String>,
    /// jsonl (keygate's events) | ocsf (OCSF API Activity, class 6003)
    #[arg(long, default_value = "jsonl")]
    pub format: String,
    /// Write here instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Recompute the whole chain (a background job on the gateway; progress on stderr).
    #[arg(long, conflicts_with = "offline")]
    pub full: bool,
    /// Verify a copy of a data directory (keygate.db, and audit-witness/ if it is there)
    /// without a gateway: a full verification with `--public-key` as the only trust.
    #[arg(long, value_name = "DIR")]
    pub offline: Option<PathBuf>,
    /// With --offline: the audit signing key's public key, PEM (`keygate public-key --key
    /// keygate/audit-checkpoints`); repeat it (or put several in one file) for rotated versions.
    #[arg(long, value_name = "PEM", requires = "offline")]
    pub public_key: Vec<PathBuf>,
    /// With --offline: a witness directory (holding checkpoints.jsonl); repeatable. Default:
    /// DIR/audit-witness when it exists.
    #[arg(long, value_name = "DIR", requires = "offline")]
    pub witness: Vec<PathBuf>,
}

#[derive(Args, Debug)]
pub struct HashArgs {
    /// The value; `-` reads it from standard input (keeps it out of shell history).
    pub value: String,
    /// Only print the HMAC; do not search the log for it.
    #[arg(long)]
    pub no_search: bool,
}

#[derive(Args, Debug)]
pub struct CheckpointArgs {
    /// The newest this many (default 20).
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
}

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_default()
}

impl Filters {
    fn query(&self) -> pb::AuditQueryRequest {
        pb::AuditQueryRequest {
            key: opt(&self.key),
            actor: opt(&self.actor),
            action: opt(&self.action),
            outcome: opt(&self.outcome),
            source: opt(&self.source),
            request_id: opt(&self.request_id),
            bypass: self.bypass,
            ..Default::default()
        }
    }
}

pub async fn run(conn: &Connection, fmt: Format, cmd: AuditCommand) -> CliResult {
    match cmd {
        AuditCommand::Query(q) => read::query(conn, fmt, q).await,
        AuditCommand::Tail(t) => read::tail(conn, fmt, t).await,
        AuditCommand::Export(e) => read::export(conn, e).await,
        AuditCommand::Hash(h) => read::hash(conn, fmt, h).await,
        AuditCommand::Verify(v) => match v.offline {
            Some(dir) => verify::offline(fmt, &dir, &v.public_key, &v.witness).await,
            None if v.full => verify::full(conn, fmt).await,
            None => verify::incremental(conn, fmt).await,
        },
        AuditCommand::Checkpoints(c) => status::checkpoints(conn, fmt, c).await,
        AuditCommand::Ingesters => status::ingesters(conn, fmt).await,
    }
}

/// Exit status of a verification.
fn verdict(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
