//! `keygate report compliance`: the compliance report, fetched once over gRPC and rendered
//! here as HTML, JSON or PDF.

use super::CliResult;
use super::client::{Connection, describe};
use crate::pb;
use crate::posture::report::{Report, Status, html, json, pdf};
use clap::{Args, Subcommand, ValueEnum};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum ReportCommand {
    /// Each requirement of the compliance table (PCI DSS 3.5-3.6 key lifecycle, NIST SP
    /// 800-57 crypto-periods, PCI PIN / WebTrust split knowledge and HSM generation, SOC 2 /
    /// ISO 27001 destruction evidence, separation of duties, the audit trail, open findings)
    /// with its status (met, partial, not met, no evidence) and the evidence keygate holds.
    ///
    /// Readable by security officers, key admins and auditors (action ComplianceReport, in
    /// PostureRead); the call is audited. Run `keygate inventory --scan` first for current
    /// findings.
    #[command(
        after_help = "Examples:\n  keygate report compliance --format html --out report.html\n  keygate report compliance --format json | jq '.sections[] | {id, status}'\n  keygate report compliance --format pdf --out report.pdf"
    )]
    Compliance(ComplianceArgs),
}

#[derive(Args, Debug)]
pub struct ComplianceArgs {
    /// html: a standalone page (no scripts, nothing fetched); json: the report's data; pdf:
    /// A4 pages (needs --out when stdout is a terminal).
    #[arg(long, value_enum, default_value_t = ReportFormat::Html)]
    format: ReportFormat,
    /// Write the report to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    Html,
    Json,
    Pdf,
}

pub async fn run(conn: &Connection, cmd: ReportCommand) -> CliResult {
    match cmd {
        ReportCommand::Compliance(args) => compliance(conn, args).await,
    }
}

async fn compliance(conn: &Connection, args: ComplianceArgs) -> CliResult {
    // Refused before the call: the report would be generated (and audited) for nothing.
    if args.format == ReportFormat::Pdf && args.out.is_none() && std::io::stdout().is_terminal() {
        return Err(
            "a PDF is binary: write it to a file with --out FILE, or redirect stdout".into(),
        );
    }
    let answer = conn
        .posture()
        .await?
        .get_compliance_report(pb::GetComplianceReportRequest {})
        .await
        .map_err(describe)?
        .into_inner();
    let report = crate::server::convert::report_from_pb(answer).map_err(|e| e.to_string())?;
    let bytes = render(&report, args.format)?;
    match &args.out {
        Some(path) => {
            std::fs::write(path, &bytes)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            eprintln!("{}", summary(&report, &path.display().to_string()));
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(&bytes)
                .and_then(|()| stdout.flush())
                .map_err(|e| format!("cannot write the report to stdout: {e}"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn render(report: &Report, format: ReportFormat) -> CliResult<Vec<u8>> {
    Ok(match format {
        ReportFormat::Html => html::document(report).into_bytes(),
        ReportFormat::Json => json::render(report).into_bytes(),
        ReportFormat::Pdf => pdf::render(report).map_err(|e| e.to_string())?,
    })
}

/// One line for the terminal once the report is in a file.
fn summary(report: &Report, path: &str) -> String {
    let counts: Vec<String> = Status::ALL
        .iter()
        .map(|s| format!("{} {}", report.count(*s), s.label()))
        .collect();
    format!(
        "compliance report written to {path}: {} sections ({})",
        report.sections.len(),
        counts.join(", ")
    )
}
