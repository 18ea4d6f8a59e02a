//! The compliance report: domain → protobuf for the server, and back for clients that render
//! it (the CLI), so one set of renderers serves both ends.

use crate::pb;
use crate::posture::report::{Report, Section, Status, Table};

impl From<Report> for pb::ComplianceReport {
    fn from(r: Report) -> Self {
        pb::ComplianceReport {
            generated_at: r.generated_at,
            generated_by: r.generated_by,
            version: r.version,
            sections: r
                .sections
                .into_iter()
                .map(|s| pb::ComplianceSection {
                    id: s.id,
                    title: s.title,
                    requirement: s.requirement,
                    status: s.status.as_str().into(),
                    verdict: s.verdict,
                    evidence: s
                        .evidence
                        .into_iter()
                        .map(|t| pb::EvidenceTable {
                            title: t.title,
                            note: t.note,
                            columns: t.columns,
                            rows: t
                                .rows
                                .into_iter()
                                .map(|cells| pb::EvidenceRow { cells })
                                .collect(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// Why a report from the wire could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum ReportFromPbError {
    #[error(
        "section '{section}' has status '{status}', which this keygate does not know (met, partial, not_met, no_evidence); upgrade the client"
    )]
    UnknownStatus { section: String, status: String },
}

/// The report a `GetComplianceReport` answer carries.
pub fn report_from_pb(r: pb::ComplianceReport) -> Result<Report, ReportFromPbError> {
    let sections = r
        .sections
        .into_iter()
        .map(|s| {
            let status =
                Status::parse(&s.status).ok_or_else(|| ReportFromPbError::UnknownStatus {
                    section: s.id.clone(),
                    status: crate::gateway::validate::truncate(&s.status, 32),
                })?;
            Ok(Section {
                id: s.id,
                title: s.title,
                requirement: s.requirement,
                status,
                verdict: s.verdict,
                evidence: s
                    .evidence
                    .into_iter()
                    .map(|t| {
                        let mut table = Table {
                            title: t.title,
                            note: t.note,
                            columns: t.columns,
                            rows: Vec::new(),
                        };
                        // Through `row`, so a short or long row from the wire keeps the
                        // table's shape.
                        for row in t.rows {
                            table.row(row.cells);
                        }
                        table
                    })
                    .collect(),
            })
        })
        .collect::<Result<_, ReportFromPbError>>()?;
    Ok(Report {
        generated_at: r.generated_at,
        generated_by: r.generated_by,
        version: r.version,
        sections,
    })
}
