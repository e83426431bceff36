//! `tend report funnel|conversion|pace|neglect`: the live reports, in the terminal.

use crate::project::load_valid_project;
use anyhow::Context;
use jiff::Timestamp;
use std::path::Path;
use std::process::ExitCode;
use tend_engine::reports;

/// Which report to print.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Report {
    /// Contacts per stage, and moves between stages over the last 30 days.
    Funnel,
    /// How many touches contacts received before converting.
    Conversion,
    /// Per day: touches against the email budget, work against capacity.
    Pace,
    /// The contacts closest to (or past) their process's max_gap.
    Neglect,
}

/// Prints one report.
pub fn run(config_path: &Path, report: Report, days: u32) -> anyhow::Result<ExitCode> {
    let project = load_valid_project(config_path)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let store = crate::open_store(config_path, &project.config).await?;
        let store = store.as_ref();
        let now = Timestamp::now();
        match report {
            Report::Funnel => {
                let from = now
                    .saturating_sub(jiff::SignedDuration::from_hours(24 * i64::from(days)))
                    .unwrap_or(now);
                let r = reports::funnel(store, &project, from, now).await?;
                println!("Contacts per stage:");
                for s in &r.stages {
                    println!("  {:<16} {:>8}", s.stage, s.contacts);
                }
                println!("Moves in the last {days} days:");
                for m in &r.moves {
                    let from = m.from.as_deref().unwrap_or("(new)");
                    println!("  {from:>12} → {:<12} {:>8}", m.to, m.count);
                }
                if r.moves.is_empty() {
                    println!("  none");
                }
            }
            Report::Conversion => {
                let stage = reports::default_conversion_stage(&project);
                let r = reports::touches_to_conversion(store, &stage).await?;
                let show = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
                println!(
                    "{} contacts reached `{}`; touches before: median {}, p90 {}",
                    r.conversions,
                    r.stage,
                    show(r.median),
                    show(r.p90)
                );
                let widest = r.histogram.iter().map(|b| b.contacts).max().unwrap_or(1);
                for b in &r.histogram {
                    let bar = "#".repeat((b.contacts * 40).div_ceil(widest) as usize);
                    println!("  {:>4} touches {:>6}  {bar}", b.touches, b.contacts);
                }
            }
            Report::Pace => {
                let r = reports::pace_history(store, &project, now, days).await?;
                println!(
                    "{:<10} {:>7} {:>7} {:>6} {:>9} {:>7} {:>7} {:>9}",
                    "day", "emails", "budget", "tasks", "webhooks", "opened", "closed", "capacity"
                );
                for d in &r.days {
                    let budget = d.email_budget.map_or("-".to_owned(), |b| format!("{b:.0}"));
                    println!(
                        "{:<10} {:>7} {:>7} {:>6} {:>9} {:>7} {:>7} {:>9.1}",
                        d.date,
                        d.emails,
                        budget,
                        d.tasks,
                        d.webhooks,
                        d.work_opened,
                        d.work_closed,
                        d.capacity
                    );
                }
            }
            Report::Neglect => {
                let r = reports::neglect(store, &project, now, 50).await?;
                println!(
                    "{} of the {} contacts listed are past their process's max_gap",
                    r.past_deadline,
                    r.contacts.len()
                );
                for c in &r.contacts {
                    let who = c
                        .row
                        .email
                        .as_deref()
                        .or(c.row.name.as_deref())
                        .unwrap_or("(no address)");
                    let when = if c.hours_left < 0.0 {
                        format!("{:.0} h overdue", -c.hours_left)
                    } else {
                        format!("{:.0} h left", c.hours_left)
                    };
                    println!(
                        "  #{:<7} {who:<32} {:<20} {when}",
                        c.row.contact_id.0, c.process
                    );
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
