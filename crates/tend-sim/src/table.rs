//! The comparison as a plain-text table for the terminal: each figure's mean over the
//! seeds, with its range when the seeds disagree, and the verdict below.

use crate::outcome::{SimReport, Summary};
use crate::verdict::{net, verdict};
use std::fmt::Write;

/// One row: its label, how to read the figure, and its decimals.
type Row = (&'static str, fn(&Summary) -> f64, usize);

const ROWS: &[Row] = &[
    ("revenue minus cost", net, 0),
    ("revenue", |s| s.revenue, 0),
    ("cost", |s| s.cost, 0),
    ("  of which overtime", |s| s.overtime_cost, 0),
    ("leads", |s| s.leads as f64, 0),
    ("conversions", |s| s.conversions as f64, 0),
    ("jobs completed", |s| s.work_done as f64, 0),
    ("touches", |s| s.touches as f64, 0),
    (
        "touches/conversion (median)",
        |s| s.touches_per_conversion_median,
        0,
    ),
    (
        "touches/conversion (p90)",
        |s| s.touches_per_conversion_p90,
        0,
    ),
    ("work opened", |s| s.work_opened as f64, 0),
    ("jobs cancelled", |s| s.cancelled_jobs as f64, 0),
    ("jobs rushed", |s| s.rushed_jobs as f64, 0),
    ("hours lost to chasing", |s| s.chase_hours, 0),
    ("utilisation", |s| s.utilisation, 2),
    ("peak backlog", |s| f64::from(s.peak_backlog), 0),
    ("mean wait (days)", |s| s.mean_wait_days, 1),
    ("p90 wait (days)", |s| s.p90_wait_days, 1),
    ("days over capacity", |s| f64::from(s.days_over_capacity), 0),
    ("neglected leads", |s| s.neglected_leads as f64, 0),
    ("lost to competitors", |s| s.lost_to_competitors as f64, 0),
    ("unsubscribes", |s| s.unsubscribes as f64, 0),
    ("referrals", |s| s.referrals as f64, 0),
    ("final satisfaction", |s| s.final_satisfaction, 2),
    ("final reputation", |s| s.final_reputation, 2),
];

/// The strategies side by side, one figure per line, then the verdict.
pub fn render_table(report: &SimReport) -> String {
    let strategies = report.strategies();
    let several = report.seeds.len() > 1;
    let cells: Vec<Vec<String>> = ROWS
        .iter()
        .map(|(_, figure, decimals)| {
            strategies
                .iter()
                .map(|&s| {
                    let spread = report.spread(s, figure);
                    let d = *decimals;
                    let mean = format!("{:.d$}", spread.mean);
                    if several && spread.varies() {
                        format!("{mean} ({:.d$}–{:.d$})", spread.min, spread.max)
                    } else {
                        mean
                    }
                })
                .collect()
        })
        .collect();
    let label_width = ROWS.iter().map(|(l, _, _)| l.len()).max().unwrap_or(0);
    let width = cells
        .iter()
        .flatten()
        .map(|c| c.chars().count())
        .chain(strategies.iter().map(|s| s.name().len()))
        .max()
        .unwrap_or(0)
        .max(12);
    let mut out = String::new();
    let _ = write!(out, "{:label_width$}", "");
    for s in &strategies {
        let _ = write!(out, "  {:>width$}", s.name());
    }
    out.push('\n');
    for ((label, _, _), row) in ROWS.iter().zip(&cells) {
        let _ = write!(out, "{label:label_width$}");
        for cell in row {
            let _ = write!(out, "  {cell:>width$}");
        }
        out.push('\n');
    }
    if several {
        let seeds = report.seed_list();
        let _ = writeln!(
            out,
            "(means over {} seeds, lowest–highest seed in brackets)",
            seeds.len()
        );
    }
    let _ = writeln!(out, "\n{}", verdict(report));
    out
}
