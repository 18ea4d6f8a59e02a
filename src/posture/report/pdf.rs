//! The report as a PDF: A4 pages laid out here (lines wrapped, tables broken across pages with
//! their header repeated, page numbers), in the standard Helvetica fonts every PDF reader
//! has, so no font file is read or embedded.

use super::{Report, Section, Status, TITLE, Table};
use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

/// Pages a report may take before rendering gives up (tables are capped, so only a report
/// far beyond any real one gets there).
pub const MAX_PAGES: usize = 2000;

#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    #[error(
        "the report would take more than {MAX_PAGES} pages as a PDF; use --format html or json"
    )]
    TooManyPages,
}

const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 42.0;
/// Room kept at the bottom for the page number.
const FOOTER: f32 = 24.0;
const WIDTH: f32 = PAGE_W - 2.0 * MARGIN;
const CELL_PAD: f32 = 2.5;
const CELL_SIZE: f32 = 6.5;
const MIN_COLUMN: f32 = 28.0;

#[derive(Clone, Copy)]
enum Font {
    Regular,
    Bold,
}

impl Font {
    fn name(self) -> Name<'static> {
        match self {
            Font::Regular => Name(b"F1"),
            Font::Bold => Name(b"F2"),
        }
    }

    /// Glyph widths (1/1000 em) of printable ASCII, from the fonts' AFM metrics.
    fn ascii_widths(self) -> &'static [u16; 95] {
        match self {
            Font::Regular => &HELVETICA,
            Font::Bold => &HELVETICA_BOLD,
        }
    }

    fn width(self, text: &str, size: f32) -> f32 {
        let table = self.ascii_widths();
        let units: u32 = text
            .chars()
            .map(|c| match c {
                ' '..='~' => u32::from(table[c as usize - 32]),
                // Outside ASCII: wider than any Latin-1 letter but Æ, so wrapping never
                // overflows a column.
                _ => 1000,
            })
            .sum();
        units as f32 * size / 1000.0
    }
}

#[rustfmt::skip]
const HELVETICA: [u16; 95] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556,
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556,
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556,
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584,
];

#[rustfmt::skip]
const HELVETICA_BOLD: [u16; 95] = [
    278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611,
    975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833, 722, 778,
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556,
    333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611,
    611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584,
];

/// `text` in WinAnsiEncoding, the standard fonts' encoding: Latin-1 as is, a few common
/// punctuation marks mapped, anything else as `?`.
fn win_ansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            ' '..='~' => c as u8,
            '\u{a0}'..='\u{ff}' => c as u32 as u8,
            '\u{2013}' => 0x96,
            '\u{2014}' => 0x97,
            '\u{2018}' => 0x91,
            '\u{2019}' => 0x92,
            '\u{201c}' => 0x93,
            '\u{201d}' => 0x94,
            '\u{2026}' => 0x85,
            '\t' | '\n' | '\r' => b' ',
            _ => b'?',
        })
        .collect()
}

/// Greedy line breaking at spaces; a word wider than the line is broken between characters.
fn wrap(text: &str, font: Font, size: f32, width: f32) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let candidate = if line.is_empty() {
            word.to_string()
        } else {
            format!("{line} {word}")
        };
        if font.width(&candidate, size) <= width {
            line = candidate;
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        for c in word.chars() {
            line.push(c);
            if font.width(&line, size) > width && line.chars().count() > 1 {
                line.pop();
                lines.push(std::mem::take(&mut line));
                line.push(c);
            }
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

fn status_color(status: Status) -> (f32, f32, f32) {
    match status {
        Status::Met => (0.10, 0.50, 0.22),
        Status::Partial => (0.60, 0.40, 0.0),
        Status::NotMet => (0.81, 0.13, 0.18),
        Status::NoEvidence => (0.43, 0.47, 0.51),
    }
}

/// The pages laid out so far and where the next line goes on the last one.
struct Layout {
    pages: Vec<Content>,
    y: f32,
}

impl Layout {
    fn new() -> Self {
        let mut layout = Layout {
            pages: Vec::new(),
            y: 0.0,
        };
        layout.new_page();
        layout
    }

    fn new_page(&mut self) {
        self.pages.push(Content::new());
        self.y = PAGE_H - MARGIN;
    }

    fn page(&mut self) -> &mut Content {
        // `new` makes the first page, and pages are never removed.
        let last = self.pages.len() - 1;
        &mut self.pages[last]
    }

    /// Starts a new page unless `height` fits above the footer.
    fn ensure(&mut self, height: f32) {
        if self.y - height < MARGIN + FOOTER {
            self.new_page();
        }
    }

    fn text_at(&mut self, x: f32, baseline: f32, font: Font, size: f32, text: &str) {
        let bytes = win_ansi(text);
        let page = self.page();
        page.begin_text();
        page.set_font(font.name(), size);
        page.next_line(x, baseline);
        page.show(Str(&bytes));
        page.end_text();
    }

    /// Wrapped text across the full width, starting new pages as it goes.
    fn paragraph(&mut self, text: &str, font: Font, size: f32, gap_after: f32) {
        let leading = size * 1.3;
        for line in wrap(text, font, size, WIDTH) {
            self.ensure(leading);
            self.y -= leading;
            self.text_at(MARGIN, self.y + size * 0.25, font, size, &line);
        }
        self.y -= gap_after;
    }

    fn badge(&mut self, x: f32, baseline: f32, status: Status) -> f32 {
        let size = 8.0;
        let label = status.label().to_uppercase();
        let w = Font::Bold.width(&label, size) + 8.0;
        let (r, g, b) = status_color(status);
        let page = self.page();
        page.set_fill_rgb(r, g, b);
        page.rect(x, baseline - 3.0, w, size + 4.5);
        page.fill_nonzero();
        page.set_fill_gray(1.0);
        self.text_at(x + 4.0, baseline, Font::Bold, size, &label);
        self.page().set_fill_gray(0.0);
        w
    }

    fn summary(&mut self, report: &Report) {
        self.paragraph("Summary", Font::Bold, 12.0, 4.0);
        for s in &report.sections {
            self.ensure(14.0);
            self.y -= 14.0;
            let y = self.y + 3.0;
            self.badge(MARGIN, y, s.status);
            self.text_at(MARGIN + 72.0, y, Font::Regular, 9.0, &s.title);
        }
        self.y -= 10.0;
    }

    fn section(&mut self, s: &Section) {
        // A heading is never left alone at the foot of a page.
        self.ensure(90.0);
        self.y -= 8.0;
        let size = 12.5;
        let lines = wrap(&s.title, Font::Bold, size, WIDTH - 80.0);
        for (i, line) in lines.iter().enumerate() {
            self.y -= size * 1.3;
            let baseline = self.y + 3.0;
            self.text_at(MARGIN, baseline, Font::Bold, size, line);
            if i == 0 {
                let x = MARGIN + Font::Bold.width(line, size) + 8.0;
                self.badge(x, baseline, s.status);
            }
        }
        self.y -= 4.0;
        self.paragraph(&s.requirement, Font::Regular, 8.5, 3.0);
        self.paragraph(&s.verdict, Font::Bold, 9.0, 6.0);
        for table in &s.evidence {
            self.table(table);
        }
    }

    fn table(&mut self, t: &Table) {
        self.ensure(40.0);
        self.paragraph(&t.title, Font::Bold, 9.0, 1.0);
        if !t.note.is_empty() {
            self.paragraph(&t.note, Font::Regular, 7.0, 1.0);
        }
        if t.rows.is_empty() {
            self.paragraph("none", Font::Regular, 7.5, 6.0);
            return;
        }
        let widths = column_widths(t);
        self.y -= 2.0;
        let header: Vec<(Font, &str)> =
            t.columns.iter().map(|c| (Font::Bold, c.as_str())).collect();
        self.ensure(row_height(&widths, &header) + 20.0);
        self.row(&widths, &header, true);
        for cells in &t.rows {
            let row: Vec<(Font, &str)> =
                cells.iter().map(|c| (Font::Regular, c.as_str())).collect();
            if self.y - row_height(&widths, &row) < MARGIN + FOOTER {
                self.new_page();
                self.row(&widths, &header, true);
            }
            self.row(&widths, &row, false);
        }
        self.y -= 8.0;
    }

    fn row(&mut self, widths: &[f32], cells: &[(Font, &str)], header: bool) {
        let leading = CELL_SIZE * 1.25;
        let max_lines = ((PAGE_H - 2.0 * MARGIN - FOOTER - 60.0) / leading) as usize;
        let wrapped: Vec<Vec<String>> = cells
            .iter()
            .zip(widths)
            .map(|((font, text), w)| {
                let mut lines = wrap(text, *font, CELL_SIZE, w - 2.0 * CELL_PAD);
                // A cell taller than a page is cut (the JSON and HTML hold all of it).
                if lines.len() > max_lines {
                    lines.truncate(max_lines);
                    if let Some(last) = lines.last_mut() {
                        last.push_str(" ...");
                    }
                }
                lines
            })
            .collect();
        let n = wrapped.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let height = n as f32 * leading + 2.0 * CELL_PAD;
        let top = self.y;
        let mut x = MARGIN;
        for (((font, _), lines), w) in cells.iter().zip(&wrapped).zip(widths) {
            let page = self.page();
            if header {
                page.set_fill_gray(0.92);
                page.rect(x, top - height, *w, height);
                page.fill_nonzero();
                page.set_fill_gray(0.0);
            }
            let page = self.page();
            page.set_stroke_gray(0.7);
            page.set_line_width(0.4);
            page.rect(x, top - height, *w, height);
            page.stroke();
            for (i, line) in lines.iter().enumerate() {
                let baseline = top - CELL_PAD - CELL_SIZE - i as f32 * leading + 1.0;
                self.text_at(x + CELL_PAD, baseline, *font, CELL_SIZE, line);
            }
            x += w;
        }
        self.y = top - height;
    }
}

fn row_height(widths: &[f32], cells: &[(Font, &str)]) -> f32 {
    let n = cells
        .iter()
        .zip(widths)
        .map(|((font, text), w)| wrap(text, *font, CELL_SIZE, w - 2.0 * CELL_PAD).len())
        .max()
        .unwrap_or(1);
    n as f32 * CELL_SIZE * 1.25 + 2.0 * CELL_PAD
}

/// Each column's share of the width: at least its header's longest word (headers never
/// break inside a word) and [`MIN_COLUMN`]; the rest shared by how much wider the column's
/// widest cell is (capped, so one long value does not starve the others).
fn column_widths(t: &Table) -> Vec<f32> {
    let pad = 2.0 * CELL_PAD + 1.0;
    let minimum: Vec<f32> = t
        .columns
        .iter()
        .map(|title| {
            title
                .split_whitespace()
                .map(|w| Font::Bold.width(w, CELL_SIZE) + pad)
                .fold(MIN_COLUMN, f32::max)
        })
        .collect();
    let natural: Vec<f32> = t
        .columns
        .iter()
        .enumerate()
        .map(|(i, title)| {
            let widest = t
                .rows
                .iter()
                .map(|r| Font::Regular.width(&r[i], CELL_SIZE))
                .fold(Font::Bold.width(title, CELL_SIZE), f32::max);
            (widest + pad).clamp(minimum[i], 200.0_f32.max(minimum[i]))
        })
        .collect();
    let floor: f32 = minimum.iter().sum();
    let total: f32 = natural.iter().sum();
    if total <= WIDTH || floor >= WIDTH {
        // Everything fits (spread the slack), or not even the headers do (shrink evenly).
        return natural.iter().map(|w| w * WIDTH / total).collect();
    }
    let extra: f32 = total - floor;
    natural
        .iter()
        .zip(&minimum)
        .map(|(n, m)| m + (n - m) * (WIDTH - floor) / extra)
        .collect()
}

/// Renders `report` as a PDF document.
pub fn render(report: &Report) -> Result<Vec<u8>, PdfError> {
    let mut layout = Layout::new();
    layout.paragraph(TITLE, Font::Bold, 18.0, 2.0);
    layout.paragraph(
        &format!(
            "Generated {} for {} by keygate {}",
            report.generated_at, report.generated_by, report.version
        ),
        Font::Regular,
        9.0,
        10.0,
    );
    layout.summary(report);
    for section in &report.sections {
        layout.section(section);
        if layout.pages.len() > MAX_PAGES {
            return Err(PdfError::TooManyPages);
        }
    }
    let count = layout.pages.len();
    // Ids: 1 catalog, 2 page tree, 3-4 fonts, 5 info, then a page and its content per page.
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let regular = Ref::new(3);
    let bold = Ref::new(4);
    let info = Ref::new(5);
    let page_ref = |i: usize| Ref::new(6 + 2 * i as i32);
    let content_ref = |i: usize| Ref::new(7 + 2 * i as i32);
    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids((0..count).map(page_ref))
        .count(count as i32);
    pdf.type1_font(regular)
        .base_font(Name(b"Helvetica"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.type1_font(bold)
        .base_font(Name(b"Helvetica-Bold"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.document_info(info)
        .title(TextStr(TITLE))
        .creator(TextStr("keygate"));
    for (i, mut content) in layout.pages.into_iter().enumerate() {
        let footer = win_ansi(&format!(
            "{TITLE}, {}: page {} of {count}",
            report.generated_at,
            i + 1
        ));
        content
            .begin_text()
            .set_font(Font::Regular.name(), 7.0)
            .next_line(MARGIN, MARGIN - 10.0)
            .show(Str(&footer))
            .end_text();
        let mut page = pdf.page(page_ref(i));
        page.media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H))
            .parent(tree)
            .contents(content_ref(i));
        let mut resources = page.resources();
        let mut fonts = resources.fonts();
        fonts.pair(Font::Regular.name(), regular);
        fonts.pair(Font::Bold.name(), bold);
        fonts.finish();
        resources.finish();
        page.finish();
        pdf.stream(content_ref(i), &content.finish());
    }
    Ok(pdf.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_fit_their_width_and_long_words_break() {
        let lines = wrap(&"word ".repeat(60), Font::Regular, 10.0, 100.0);
        assert!(lines.len() > 5);
        assert!(lines.iter().all(|l| Font::Regular.width(l, 10.0) <= 100.0));
        let hex = "ab".repeat(100);
        let lines = wrap(&hex, Font::Regular, 7.0, 50.0);
        assert!(lines.len() > 3);
        assert_eq!(lines.concat(), hex);
        assert_eq!(wrap("", Font::Bold, 7.0, 50.0), vec![String::new()]);
        assert_eq!(
            win_ansi("a\u{e9}\u{2013}\u{1f600}"),
            vec![b'a', 0xe9, 0x96, b'?']
        );
    }

    #[test]
    fn columns_fill_the_width_and_headers_keep_their_words() {
        let mut t = Table::new("t", &["sequence", "signature", "version"]);
        t.row(vec!["3".into(), "ab".repeat(80), "1".into()]);
        let widths = column_widths(&t);
        assert!(
            (widths.iter().sum::<f32>() - WIDTH).abs() < 0.5,
            "{widths:?}"
        );
        for (w, title) in widths.iter().zip(&t.columns) {
            assert!(*w >= Font::Bold.width(title, CELL_SIZE), "{title}: {w}");
        }
    }
}
