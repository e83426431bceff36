//! The forecast as an owner reads it in a terminal: the answer first, then budgets,
//! work against capacity, the leads at risk and the days.

use super::{BudgetForecast, Forecast};
use jiff::tz::TimeZone;
use std::fmt::Write;

/// Leads at risk listed in the text (all known ones are in the JSON, up to 500).
const LISTED: usize = 20;

/// The forecast as text, times in the business's time zone `tz`.
pub fn render(forecast: &Forecast, tz: &TimeZone) -> String {
    let mut out = String::new();
    let date = |t: jiff::Timestamp| {
        t.to_zoned_datetime(tz.clone())
            .strftime("%Y-%m-%d")
            .to_string()
    };
    let _ = writeln!(
        out,
        "Forecast of the next {} weeks, {} to {}, from a copy of the live database (nothing sent).",
        forecast.weeks,
        date(forecast.from),
        date(forecast.to)
    );
    let arrivals: Vec<String> = forecast
        .arrivals
        .iter()
        .filter(|a| a.observed > 0)
        .map(|a| {
            let weekly: Vec<String> = a.weekly.iter().map(u64::to_string).collect();
            format!(
                "{} {:.1} a week (by {}; weeks back from now: {})",
                a.process,
                a.per_week,
                a.trigger,
                weekly.join(", ")
            )
        })
        .collect();
    let _ = writeln!(
        out,
        "New contacts, the median week of the last {}: {}.",
        forecast.history_weeks,
        if arrivals.is_empty() {
            "none".to_owned()
        } else {
            arrivals.join("; ")
        }
    );
    let _ = writeln!(out);
    answer(&mut out, forecast, &date);

    let _ = writeln!(out, "\nBudgets (use per window against its limit):");
    if forecast.budgets.is_empty() {
        let _ = writeln!(out, "  no [budget] limits in tend.toml");
    }
    for (budget, needed) in forecast.budgets.iter().zip(&forecast.needed.budgets) {
        for (w, n) in budget.windows.iter().zip(&needed.windows) {
            let _ = writeln!(
                out,
                "  {:<14} per {:<5}  limit {:>8}  peak {:>8}  mean {:>8.1}  at the limit in {:>2} of {:>2}  unheld peak {:>8}",
                budget.resource,
                w.window,
                amount(w.limit),
                amount(w.peak),
                w.mean,
                w.at_limit,
                w.count,
                amount(n.peak)
            );
        }
    }

    let _ = writeln!(
        out,
        "\nWork against capacity ({} a week; offers fill it up to {:.0}%):",
        amount(forecast.capacity_per_week),
        forecast.target_utilization * 100.0
    );
    let _ = writeln!(
        out,
        "  {:<10} {:>5} {:>9} {:>9} {:>12}",
        "week of", "days", "new work", "capacity", "open at end"
    );
    for w in &forecast.work {
        let _ = writeln!(
            out,
            "  {:<10} {:>5} {:>9.1} {:>9.1} {:>12.1}",
            w.from, w.days, w.new_work, w.capacity, w.open_work
        );
    }

    let _ = writeln!(
        out,
        "\nLeads at risk of passing max_gap: {} known ({} already past it), {} of the expected arrivals.",
        forecast.at_risk_total, forecast.at_risk_already, forecast.at_risk_arrivals
    );
    for lead in forecast.at_risk.iter().take(LISTED) {
        let who = match (&lead.name, &lead.email) {
            (Some(name), Some(email)) => format!("{name} <{email}>"),
            (None, Some(email)) => email.clone(),
            (Some(name), None) => name.clone(),
            (None, None) => "(no name)".into(),
        };
        let _ = writeln!(
            out,
            "  {}  #{:<7} {who:<40} {}",
            lead.deadline
                .to_zoned_datetime(tz.clone())
                .strftime("%Y-%m-%d %H:%M"),
            lead.contact_id,
            lead.process
        );
    }
    if forecast.at_risk_total as usize > LISTED {
        let _ = writeln!(
            out,
            "  … and {} more (--json lists up to 500)",
            forecast.at_risk_total as usize - LISTED
        );
    }

    let _ = writeln!(out, "\nPer day:");
    let _ = writeln!(
        out,
        "  {:<10} {:>7} {:>8} {:>6} {:>8} {:>8} {:>9} {:>10}",
        "date", "emails", "webhooks", "tasks", "minutes", "money", "new work", "open work"
    );
    for d in &forecast.days {
        let _ = writeln!(
            out,
            "  {:<10} {:>7} {:>8} {:>6} {:>8} {:>8.2} {:>9.2} {:>10.1}",
            d.date.to_string(),
            d.emails,
            d.webhooks,
            d.tasks,
            d.staff_minutes,
            d.money,
            d.new_work,
            d.open_work
        );
    }
    out
}

/// The answer in a few sentences: are the promises kept, and what would keep them.
fn answer(out: &mut String, forecast: &Forecast, date: &dyn Fn(jiff::Timestamp) -> String) {
    let coming = forecast.at_risk_total - forecast.at_risk_already;
    if coming == 0 && forecast.at_risk_arrivals == 0 {
        let _ = writeln!(
            out,
            "Every promise kept: no enrolled contact passes its process's max_gap in these weeks{}.",
            if forecast.at_risk_already > 0 {
                format!(
                    " other than the {} already past it today",
                    forecast.at_risk_already
                )
            } else {
                String::new()
            }
        );
    } else {
        let first = forecast.at_risk.iter().find(|l| l.deadline > forecast.from);
        let _ = writeln!(
            out,
            "{} known contacts and {} expected arrivals pass their process's max_gap{}.",
            coming,
            forecast.at_risk_arrivals,
            first.map_or(String::new(), |l| format!(
                ", the first on {} (#{})",
                date(l.deadline),
                l.contact_id
            ))
        );
    }
    let tight: Vec<String> = forecast
        .budgets
        .iter()
        .flat_map(|b| {
            b.windows.iter().filter(|w| w.at_limit > 0).map(move |w| {
                format!(
                    "{} per {} ({} of {})",
                    b.resource, w.window, w.at_limit, w.count
                )
            })
        })
        .collect();
    if !tight.is_empty() {
        let _ = writeln!(out, "Budgets at their limit: {}.", tight.join(", "));
    }
    let over = forecast
        .work
        .iter()
        .filter(|w| w.new_work > w.capacity * forecast.target_utilization + 1e-9)
        .count();
    if over > 0 {
        let _ = writeln!(
            out,
            "Work expected above the target utilization in {over} of {} weeks.",
            forecast.work.len()
        );
    }
    if coming == 0 && forecast.at_risk_arrivals == 0 {
        let _ = writeln!(
            out,
            "Today's budgets and capacity keep every promise; nothing needs raising."
        );
    } else {
        let raises = raise(&forecast.budgets, &forecast.needed.budgets);
        let _ = writeln!(
            out,
            "With nothing held back for budget or capacity, {}: {}.",
            if forecast.needed.past_gap_anyway == 0 {
                "every promise is kept".to_owned()
            } else {
                format!(
                    "{} enrollments still pass max_gap, kept waiting by the processes' own \
                     waits, the frequency caps or quiet hours",
                    forecast.needed.past_gap_anyway
                )
            },
            if raises.is_empty() {
                "no budget was the limit".to_owned()
            } else {
                format!("its busiest windows used {}", raises.join(", "))
            }
        );
    }
    if forecast.needed.capacity_per_week > forecast.capacity_per_week {
        let _ = writeln!(
            out,
            "To send every offer when it falls due, the busiest week's work would need \
             [capacity] per_week = {} at today's target utilization (now {}).",
            amount(forecast.needed.capacity_per_week),
            amount(forecast.capacity_per_week)
        );
    }
}

/// `[budget] resource per_window = N` for each window the run with nothing held
/// back used beyond today's limit.
fn raise(budgets: &[BudgetForecast], needed: &[BudgetForecast]) -> Vec<String> {
    let mut parts = Vec::new();
    for (budget, need) in budgets.iter().zip(needed) {
        for (w, n) in budget.windows.iter().zip(&need.windows) {
            if n.peak > w.limit {
                parts.push(format!(
                    "{} per_{} = {} (now {})",
                    budget.resource,
                    w.window,
                    amount(n.peak.ceil()),
                    amount(w.limit)
                ));
            }
        }
    }
    parts
}

/// A whole number without decimals, any other with two.
fn amount(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}
