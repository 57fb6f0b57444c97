//! How client commands print: kubectl-style tables, ages, readiness, and
//! colour that turns itself off when stdout is not a terminal (anstream).

use anstyle::{AnsiColor, Style};

pub use crate::api::columns::{age, readiness};

/// Green.
pub const GREEN: Style = AnsiColor::Green.on_default();
/// Yellow.
pub const YELLOW: Style = AnsiColor::Yellow.on_default();
/// Red.
pub const RED: Style = AnsiColor::Red.on_default();
/// Dimmed.
pub const DIM: Style = Style::new().dimmed();
/// Bold.
pub const BOLD: Style = Style::new().bold();

/// `text` in `style` (stripped by anstream when not on a terminal).
pub fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

/// Columns separated by three spaces, each as wide as its widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| if i == last { c.to_string() } else { format!("{c:<width$}", width = widths[i]) })
            .collect();
        padded.join("   ").trim_end().to_string()
    };
    let mut out = vec![line(headers.to_vec())];
    out.extend(rows.iter().map(|row| line(row.iter().map(String::as_str).collect())));
    out.join("\n")
}
