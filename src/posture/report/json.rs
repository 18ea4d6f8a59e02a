//! The report as pretty JSON: the [`Report`](super::Report) fields as they are, statuses as
//! `met`, `partial`, `not_met`, `no_evidence`.

use super::Report;

pub fn render(report: &Report) -> String {
    // A struct of strings, vectors and unit enums always serialises.
    let mut text = serde_json::to_string_pretty(report).unwrap_or_default();
    text.push('\n');
    text
}
