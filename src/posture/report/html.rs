//! The report as HTML: [`document`] is a whole page (inline CSS, no scripts, nothing fetched),
//! [`sections`] only its body, for a page that embeds it (the web console). Every piece of
//! text is escaped: key names, owners and evidence come from callers and backends.

use super::{Report, Section, Status, TITLE, Table};
use std::fmt::Write as _;

/// Escapes text for an element's content or a quoted attribute value.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page-wide rules [`document`] adds to [`STYLE`].
const PAGE_STYLE: &str = "
body { font-family: system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif;
  margin: 2rem auto; max-width: 72rem; padding: 0 1rem; color: #1f2328; line-height: 1.4; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
";

/// The report's own rules, every one scoped to `kg-` classes, so a page embedding
/// [`sections`] (the web console) can use them beside its own.
pub const STYLE: &str = "
.kg-meta { color: #59636e; margin-top: 0; }
.kg-summary { border-collapse: collapse; margin: 1rem 0 2rem; }
.kg-summary td, .kg-summary th { padding: .3rem .8rem; border: 1px solid #d1d9e0; text-align: left; }
.kg-section { border: 1px solid #d1d9e0; border-radius: 6px; padding: .5rem 1.2rem 1rem; margin: 1.5rem 0; }
.kg-section h2 { font-size: 1.2rem; display: flex; gap: .6rem; align-items: center; }
.kg-requirement { color: #59636e; font-style: italic; }
.kg-verdict { font-weight: 600; }
.kg-status { font-size: .8rem; padding: .1rem .5rem; border-radius: 1rem; color: #fff; white-space: nowrap; }
.kg-met { background: #1a7f37; } .kg-partial { background: #9a6700; }
.kg-not_met { background: #cf222e; } .kg-no_evidence { background: #6e7781; }
.kg-table { border-collapse: collapse; width: 100%; font-size: .85rem; margin: .3rem 0 1rem; }
.kg-table th, .kg-table td { border: 1px solid #d1d9e0; padding: .25rem .5rem; text-align: left;
  vertical-align: top; overflow-wrap: anywhere; }
.kg-table th { background: #f6f8fa; }
.kg-table caption { text-align: left; font-weight: 600; padding: .3rem 0; }
.kg-note { color: #59636e; font-size: .85rem; margin: 0 0 .3rem; }
.kg-empty { color: #59636e; font-size: .85rem; }
@media print { .kg-section { break-inside: avoid-page; } }
";

/// A complete, standalone HTML page.
pub fn document(report: &Report) -> String {
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    // Nothing on the page is fetched or run: a report may be opened anywhere.
    out.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n",
    );
    let _ = writeln!(
        out,
        "<title>{} ({})</title>",
        escape(TITLE),
        escape(&report.generated_at)
    );
    let _ = writeln!(out, "<style>{PAGE_STYLE}{STYLE}</style>\n</head>\n<body>");
    out.push_str(&sections(report));
    out.push_str("</body>\n</html>\n");
    out
}

/// The report's markup without `<html>`, `<head>` or styles (its classes start `kg-`).
pub fn sections(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "<div class=\"kg-report\">\n<h1>{}</h1>", escape(TITLE));
    let _ = writeln!(
        out,
        "<p class=\"kg-meta\">Generated {} for {} by keygate {}</p>",
        escape(&report.generated_at),
        escape(&report.generated_by),
        escape(&report.version)
    );
    summary(&mut out, report);
    for section in &report.sections {
        one_section(&mut out, section);
    }
    out.push_str("</div>\n");
    out
}

fn badge(status: Status) -> String {
    format!(
        "<span class=\"kg-status kg-{}\">{}</span>",
        status.as_str(),
        escape(status.label())
    )
}

fn summary(out: &mut String, report: &Report) {
    out.push_str("<table class=\"kg-summary\">\n<thead><tr><th>requirement</th><th>status</th><th>why</th></tr></thead>\n<tbody>\n");
    for s in &report.sections {
        let _ = writeln!(
            out,
            "<tr><td><a href=\"#{id}\">{title}</a></td><td>{badge}</td><td>{verdict}</td></tr>",
            id = escape(&s.id),
            title = escape(&s.title),
            badge = badge(s.status),
            verdict = escape(&s.verdict)
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

fn one_section(out: &mut String, s: &Section) {
    let _ = writeln!(
        out,
        "<section class=\"kg-section\" id=\"{}\">\n<h2>{} {}</h2>",
        escape(&s.id),
        escape(&s.title),
        badge(s.status)
    );
    let _ = writeln!(
        out,
        "<p class=\"kg-requirement\">{}</p>\n<p class=\"kg-verdict\">{}</p>",
        escape(&s.requirement),
        escape(&s.verdict)
    );
    for table in &s.evidence {
        one_table(out, table);
    }
    out.push_str("</section>\n");
}

fn one_table(out: &mut String, t: &Table) {
    if t.rows.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"kg-empty\"><strong>{}</strong>: none.{}</p>",
            escape(&t.title),
            if t.note.is_empty() {
                String::new()
            } else {
                format!(" {}", escape(&t.note))
            }
        );
        return;
    }
    let _ = writeln!(
        out,
        "<table class=\"kg-table\">\n<caption>{}</caption>",
        escape(&t.title)
    );
    if !t.note.is_empty() {
        // A caption holds the title only; the note goes in a row that spans the table.
        let _ = writeln!(
            out,
            "<tr><td class=\"kg-note\" colspan=\"{}\">{}</td></tr>",
            t.columns.len(),
            escape(&t.note)
        );
    }
    out.push_str("<thead><tr>");
    for c in &t.columns {
        let _ = write!(out, "<th>{}</th>", escape(c));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in &t.rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{}</td>", escape(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::posture::report::Table;

    #[test]
    fn every_text_is_escaped() {
        let mut t = Table::new("<t>", &["<c>"]);
        t.row(vec!["<script>alert('x')</script>".into()]);
        let report = Report {
            generated_at: "now".into(),
            generated_by: "a&b".into(),
            version: "1".into(),
            sections: vec![Section {
                id: "x\"y".into(),
                title: "<b>".into(),
                requirement: "r".into(),
                status: Status::NotMet,
                verdict: "<i>".into(),
                evidence: vec![t],
            }],
        };
        let page = document(&report);
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        assert!(page.contains("a&amp;b"));
        assert!(page.contains("id=\"x&quot;y\""));
        assert!(!page.contains("<b>") && !page.contains("<i>") && !page.contains("<t>"));
        assert!(!sections(&report).contains("<html"));
    }
}
