//! Today's "next 7 days": per day, the emails, webhooks and tasks planned, set against
//! what the budgets will let go that day. A day planned past its budget shows the rest
//! waiting for the next days (the pacer's own rule: a budget accrues over business
//! hours and is never spent ahead), not a count of touches that will not go.

use super::layout::num;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use maud::{Markup, PreEscaped, html};
use tend_charts::{BarChart, Series, bar_chart};
use tend_core::pacer::{BudgetState, BudgetStatus, Channel, Spend, WindowUsage, admit_by_day};
use tend_core::process::StepChannel;
use tend_engine::Engine;
use tend_store::PlannedLoad;

/// Today and the 7 days after it.
pub const DAYS: usize = 8;

/// The channels, as the table and the chart list them.
const CHANNELS: [(Channel, &str, &str); 3] = [
    (Channel::Email, "email", "Emails"),
    (Channel::Webhook, "webhook", "Webhooks"),
    (Channel::Task, "task", "Tasks"),
];

/// Per channel (in [`CHANNELS`] order): what falls due each day, what the budgets let
/// go each day, and what still waits after the last one.
struct Outlook {
    planned: [[u64; DAYS]; 3],
    go: [[u64; DAYS]; 3],
    waiting: [u64; 3],
    /// Of today's planned, the touches that were due before today and still wait.
    overdue: u64,
}

/// The day (0 = today) each of `day_ends` closes; `None` past the last.
fn day_of(at: Timestamp, day_ends: &[Timestamp]) -> Option<usize> {
    day_ends.iter().position(|end| at < *end)
}

fn outlook(
    engine: &Engine,
    planned: &[PlannedLoad],
    budgets: &[BudgetStatus],
    today_start: Timestamp,
    day_ends: &[Timestamp],
) -> Outlook {
    let mut out = Outlook {
        planned: [[0; DAYS]; 3],
        go: [[0; DAYS]; 3],
        waiting: [0; 3],
        overdue: 0,
    };
    // Pending touches go through the budgets, in the order the pacer takes them; a
    // queued send or a task already on the agenda has spent its share.
    let mut pending: Vec<(Timestamp, usize, Spend)> = Vec::new();
    for touch in planned {
        let Some(slot) = CHANNELS
            .iter()
            .position(|(_, name, _)| *name == touch.channel)
        else {
            continue;
        };
        // A touch deferred comes back at `until`, not at its due time.
        let at = touch.until.map_or(touch.due_at, |u| u.max(touch.due_at));
        let Some(day) = day_of(at, day_ends) else {
            continue;
        };
        out.planned[slot][day] += 1;
        if touch.due_at < today_start {
            out.overdue += 1;
        }
        if touch.state == "pending" {
            let channel = CHANNELS[slot].0;
            let spend = engine
                .policy()
                .cost_of(channel, task_minutes(engine, touch));
            pending.push((at, slot, spend));
        } else {
            out.go[slot][day] += 1;
        }
    }
    pending.sort_by_key(|(at, ..)| *at);
    let days: Vec<(usize, Spend)> = pending
        .iter()
        .map(|(at, _, spend)| (day_of(*at, day_ends).unwrap_or(DAYS - 1), *spend))
        .collect();
    let state = BudgetState {
        windows: budgets
            .iter()
            .map(|b| WindowUsage {
                resource: b.resource,
                period: b.period,
                window_start: b.window_start,
                used: b.used,
            })
            .collect(),
        reservations: Vec::new(),
    };
    let placed = admit_by_day(engine.policy(), &state, day_ends, &days);
    for ((_, slot, _), day) in pending.iter().zip(placed) {
        match day {
            Some(day) => out.go[*slot][day] += 1,
            None => out.waiting[*slot] += 1,
        }
    }
    out
}

/// A task step's estimated minutes, what it spends of `staff_minutes`.
fn task_minutes(engine: &Engine, touch: &PlannedLoad) -> u32 {
    engine
        .book()
        .get(touch.process_id)
        .and_then(|b| b.process.steps.get(touch.step as usize))
        .map_or(0, |step| match &step.channel {
            StepChannel::Task { minutes, .. } => *minutes,
            _ => 0,
        })
}

/// The ends of today and the 7 days after it, in `tz`, from today's start.
pub fn day_ends(today_start: Timestamp, tz: &TimeZone) -> Vec<Timestamp> {
    let start = today_start.to_zoned_datetime(tz.clone());
    (1..=DAYS as i64)
        .map(|d| {
            start
                .checked_add(jiff::Span::new().days(d))
                .map_or(today_start, |z| z.timestamp())
        })
        .collect()
}

/// The section. `day_ends` from [`day_ends`]; `planned` holds every touch pending,
/// queued or open until the last of them, those due before today included;
/// `truncated` when it stopped at its limit.
pub fn section(
    engine: &Engine,
    planned: &[PlannedLoad],
    budgets: &[BudgetStatus],
    today_start: Timestamp,
    day_ends: &[Timestamp],
    truncated: bool,
    tz: &TimeZone,
) -> Markup {
    let outlook = outlook(engine, planned, budgets, today_start, day_ends);
    let labels: Vec<String> = day_ends
        .iter()
        .map(|end| {
            end.checked_sub(jiff::SignedDuration::from_hours(12))
                .unwrap_or(*end)
                .to_zoned_datetime(tz.clone())
                .strftime("%a %d")
                .to_string()
        })
        .collect();
    // Only the channels with anything planned get bars: fewer, wider bars.
    let shown: Vec<usize> = (0..3)
        .filter(|&c| outlook.planned[c].iter().any(|n| *n > 0))
        .collect();
    const COLOURS: [(&str, &str); 3] = [
        ("#9cc3e6", "#2f6fb0"),
        ("#c9b8e8", "#7a5cb8"),
        ("#a8d8bb", "#2e8b57"),
    ];
    const NAMES: [(&str, &str); 3] = [
        ("emails planned", "emails the budgets let go"),
        ("webhooks planned", "webhooks the budgets let go"),
        ("tasks planned", "tasks the budgets let go"),
    ];
    let values = |row: &[u64; DAYS]| row.iter().map(|n| *n as f64).collect::<Vec<_>>();
    let series = shown
        .iter()
        .flat_map(|&c| {
            [
                Series::new(NAMES[c].0, COLOURS[c].0, None, values(&outlook.planned[c])),
                Series::new(NAMES[c].1, COLOURS[c].1, None, values(&outlook.go[c])),
            ]
        })
        .collect();
    let chart = bar_chart(&BarChart {
        unit: "touches",
        title: "Touches planned per day, next 7 days, and what the budgets let go",
        x_caption: "day",
        labels: labels.clone(),
        series,
    });
    let budget_line = budgets
        .iter()
        .map(|b| format!("{} {} per {}", b.resource, num(b.limit), b.period))
        .collect::<Vec<_>>();
    let waiting: Vec<String> = (0..3)
        .filter(|&c| outlook.waiting[c] > 0)
        .map(|c| format!("{} {}", outlook.waiting[c], CHANNELS[c].2.to_lowercase()))
        .collect();
    html! {
        section aria-labelledby="next-h" data-testid="next-days" {
            h2 id="next-h" { "Next 7 days" }
            p.hint { "Per day, what falls due and what the budgets will let go: each budget accrues over business hours and is never spent ahead, so what a day cannot take waits for the next. The pacer may still hold a touch for capacity, quiet hours or a contact's frequency cap." }
            @if !shown.is_empty() { div.chart { (PreEscaped(chart)) } }
            table data-testid="next-days-table" {
                thead {
                    tr {
                        th scope="col" { "Day" }
                        @for (_, _, title) in &CHANNELS {
                            th scope="col" { (title) " planned" }
                            th scope="col" { (title) " can go" }
                        }
                    }
                }
                tbody {
                    @for (d, label) in labels.iter().enumerate() {
                        tr data-testid="next-day" {
                            th scope="row" { (label) @if d == 0 && outlook.overdue > 0 { " (" (outlook.overdue) " due earlier)" } }
                            @for c in 0..3 {
                                td data-testid={ "planned-" (CHANNELS[c].1) } { (outlook.planned[c][d]) }
                                td data-testid={ "go-" (CHANNELS[c].1) } { (outlook.go[c][d]) }
                            }
                        }
                    }
                }
            }
            @if waiting.is_empty() {
                p data-testid="next-days-waiting" { "Nothing planned waits past these days for a budget." }
            } @else {
                p.warn data-testid="next-days-waiting" { "Still waiting for a budget after these days: " (waiting.join(", ")) "." }
            }
            @if truncated { p.hint { "Counted the first " (planned.len()) " touches only." } }
            p.hint {
                "Budgets: " @if budget_line.is_empty() { "none set." } @else { (budget_line.join(", ")) "." }
            }
        }
    }
}
