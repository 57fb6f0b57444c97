//! How client commands print: kubectl-style tables, ages, readiness, and
//! colour that turns itself off when stdout is not a terminal (anstream).

use anstyle::{AnsiColor, Style};
use chrono::{DateTime, Utc};

use crate::api::{AnyObject, ConditionStatus};

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

/// kubectl's age: `45s`, `12m`, `5h`, `3d`.
pub fn age(time: Option<DateTime<Utc>>) -> String {
    let Some(time) = time else { return "-".into() };
    let seconds = (Utc::now() - time).num_seconds().max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
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

/// An object's readiness: whether Ready is True for its current
/// generation, and the condition's reason and message.
pub struct Readiness {
    /// Ready=True, observed at the current generation.
    pub ready: bool,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// The condition's reason.
    pub reason: String,
    /// The condition's message.
    pub message: String,
}

/// The readiness of `object`.
pub fn readiness(object: &AnyObject) -> Readiness {
    let generation = object.metadata().generation.unwrap_or(0);
    let common = object.status_common();
    let condition = common.and_then(|c| c.condition("Ready"));
    let observed = common.is_some_and(|c| c.observed_generation >= generation);
    match condition {
        Some(c) if object.metadata().deletion_timestamp.is_some() => Readiness {
            ready: false,
            status: "Deleting".into(),
            reason: c.reason.clone(),
            message: "being deleted".into(),
        },
        Some(c) => Readiness {
            ready: c.status == ConditionStatus::True && observed,
            status: if observed { format!("{:?}", c.status) } else { "Unknown".into() },
            reason: if observed { c.reason.clone() } else { "Reconciling".into() },
            message: c.message.clone(),
        },
        None => Readiness {
            ready: false,
            status: "Unknown".into(),
            reason: "Pending".into(),
            message: "not reconciled yet".into(),
        },
    }
}
