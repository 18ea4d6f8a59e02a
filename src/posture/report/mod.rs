//! The compliance report: each requirement of the compliance table (PCI DSS, NIST SP 800-57,
//! PCI PIN / WebTrust, SOC 2 / ISO 27001) with the status keygate's evidence supports and that
//! evidence as tables.
//!
//! [`Report`] is plain data: the `ComplianceReport` operation builds it from the stores
//! ([`assess`]), gRPC carries it as is, and the renderers ([`json`], [`html`], [`pdf`]) read
//! only it, so the server, the CLI and the web console show the same thing. Every cell is
//! already text, formatted once where the facts are known.

mod assess;
pub mod controls;
pub mod html;
pub mod json;
pub mod pdf;
#[cfg(test)]
mod tests;
mod watch;

pub use assess::{Evidence, assess};

use serde::Serialize;

/// The report's title, in every rendering.
pub const TITLE: &str = "keygate compliance report";

/// Tables longer than this are cut (the rest counted in the table's note): a report is read by
/// people, and the full record stays queryable through the API.
pub const MAX_ROWS: usize = 500;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// RFC 3339.
    pub generated_at: String,
    /// The principal who asked for it.
    pub generated_by: String,
    /// keygate's version.
    pub version: String,
    pub sections: Vec<Section>,
}

impl Report {
    /// How many sections have `status`.
    pub fn count(&self, status: Status) -> usize {
        self.sections.iter().filter(|s| s.status == status).count()
    }
}

/// One requirement and what the evidence says about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Section {
    /// Stable, for scripts: `nist-800-57-crypto-periods`, …
    pub id: String,
    pub title: String,
    /// What the requirement asks, in words.
    pub requirement: String,
    pub status: Status,
    /// Why this status, in one line.
    pub verdict: String,
    pub evidence: Vec<Table>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Met,
    Partial,
    NotMet,
    /// keygate holds nothing that bears on the requirement (no keys in scope, nothing done).
    NoEvidence,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Met,
        Status::Partial,
        Status::NotMet,
        Status::NoEvidence,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Met => "met",
            Status::Partial => "partial",
            Status::NotMet => "not_met",
            Status::NoEvidence => "no_evidence",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// For people: "not met", "no evidence".
    pub fn label(self) -> &'static str {
        match self {
            Status::Met => "met",
            Status::Partial => "partial",
            Status::NotMet => "not met",
            Status::NoEvidence => "no evidence",
        }
    }
}

/// One table of evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Table {
    pub title: String,
    /// What the table holds or leaves out; may be empty.
    pub note: String,
    pub columns: Vec<String>,
    /// Each as long as `columns`.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(title: &str, columns: &[&str]) -> Self {
        Table {
            title: title.into(),
            note: String::new(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }

    /// Adds a row, padded or cut to the columns (a renderer can then trust the shape).
    pub fn row(&mut self, mut cells: Vec<String>) {
        cells.resize(self.columns.len(), String::new());
        self.rows.push(cells);
    }

    /// Cuts the table to [`MAX_ROWS`], saying so in its note.
    pub fn capped(mut self) -> Self {
        if self.rows.len() > MAX_ROWS {
            let cut = self.rows.len() - MAX_ROWS;
            self.rows.truncate(MAX_ROWS);
            let more = format!("{cut} more rows not shown (the API has them all).");
            self.note = if self.note.is_empty() {
                more
            } else {
                format!("{} {more}", self.note)
            };
        }
        self
    }
}

/// `n` and the noun that goes with it: "1 key", "3 keys".
pub(crate) fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// At most `n` names, then how many more: for one-line verdicts.
pub(crate) fn some_names<S: AsRef<str>>(names: &[S], n: usize) -> String {
    let shown: Vec<&str> = names.iter().take(n).map(|s| s.as_ref()).collect();
    let mut text = shown.join(", ");
    if names.len() > n {
        text.push_str(&format!(" and {} more", names.len() - n));
    }
    text
}

#[cfg(test)]
mod shape_tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_tables_keep_their_shape() {
        for status in Status::ALL {
            assert_eq!(Status::parse(status.as_str()), Some(status));
        }
        assert_eq!(Status::parse("maybe"), None);
        let mut t = Table::new("t", &["a", "b"]);
        t.row(vec!["1".into()]);
        t.row(vec!["1".into(), "2".into(), "3".into()]);
        assert!(t.rows.iter().all(|r| r.len() == 2));
        for _ in 0..MAX_ROWS + 3 {
            t.row(Vec::new());
        }
        let t = t.capped();
        assert_eq!(t.rows.len(), MAX_ROWS);
        assert!(t.note.contains("5 more rows"), "{}", t.note);
        assert_eq!(some_names(&["a", "b", "c"], 2), "a, b and 1 more");
        assert_eq!(count(1, "key", "keys"), "1 key");
        assert_eq!(count(0, "key", "keys"), "0 keys");
    }
}
