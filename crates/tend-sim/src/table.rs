//! The comparison as a plain-text table for the terminal.

use crate::outcome::{SimReport, Summary};
use std::fmt::Write;

/// One row: its label and how to show a summary's value.
type Row = (&'static str, fn(&Summary) -> String);

const ROWS: &[Row] = &[
    ("leads", |s| s.leads.to_string()),
    ("conversions", |s| s.conversions.to_string()),
    ("revenue", |s| format!("{:.0}", s.revenue)),
    ("cost", |s| format!("{:.2}", s.cost)),
    ("touches", |s| s.touches.to_string()),
    ("touches/conversion (median)", |s| {
        format!("{:.0}", s.touches_per_conversion_median)
    }),
    ("touches/conversion (p90)", |s| {
        format!("{:.0}", s.touches_per_conversion_p90)
    }),
    ("work opened", |s| s.work_opened.to_string()),
    ("peak backlog", |s| s.peak_backlog.to_string()),
    ("mean wait (days)", |s| format!("{:.1}", s.mean_wait_days)),
    ("p90 wait (days)", |s| format!("{:.1}", s.p90_wait_days)),
    ("days over capacity", |s| s.days_over_capacity.to_string()),
    ("neglected leads", |s| s.neglected_leads.to_string()),
    ("unsubscribes", |s| s.unsubscribes.to_string()),
    ("referrals", |s| s.referrals.to_string()),
    ("final satisfaction", |s| {
        format!("{:.2}", s.final_satisfaction)
    }),
];

/// The strategies side by side, one figure per line.
pub fn render_table(report: &SimReport) -> String {
    let label_width = ROWS.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    let mut out = String::new();
    let _ = write!(out, "{:label_width$}", "");
    for run in &report.runs {
        let _ = write!(out, "  {:>12}", run.strategy.name());
    }
    out.push('\n');
    for (label, show) in ROWS {
        let _ = write!(out, "{label:label_width$}");
        for run in &report.runs {
            let _ = write!(out, "  {:>12}", show(&run.summary));
        }
        out.push('\n');
    }
    out
}
