//! The forecast: the live business run forward on a virtual clock. The real engine and
//! pacer work on a copy of the live database (a snapshot in memory, never the live
//! file), against arrivals estimated from the last weeks' history, with
//! nothing sent. A second copy runs with budgets and capacity lifted, to find what
//! keeping every promise would take.

mod history;
mod run;
mod text;

pub use history::ArrivalRate;
pub use text::render;

use crate::run::SimError;
use jiff::Timestamp;
use jiff::civil::Date;
use run::{ARRIVAL_DOMAIN, Arrival, Dates, Trace};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use tend_core::check::Project;
use tend_core::pacer::Channel;
use tend_store::{Store, StoreError};
use tend_store_sqlite::SqliteStore;

/// Known contacts listed by name among the leads at risk; the rest are counted.
const AT_RISK_LISTED: usize = 500;

/// What can stop a forecast.
#[derive(Debug, thiserror::Error)]
pub enum ForecastError {
    /// `weeks` or `history_weeks` out of range.
    #[error("{0}")]
    Options(String),
    /// The live database could not be copied, or a copy read.
    #[error("the forecast's copy: {0}")]
    Store(#[from] StoreError),
    /// The engine failed on the copy.
    #[error("running the forecast: {0}")]
    Run(#[from] SimError),
}

/// How far ahead to look, and how far back to estimate arrivals from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForecastOptions {
    /// Weeks forecast, 1 to 52.
    pub weeks: u32,
    /// Weeks of history the arrival rates are estimated from, 1 to 52.
    pub history_weeks: u32,
}

impl Default for ForecastOptions {
    fn default() -> Self {
        ForecastOptions {
            weeks: 12,
            history_weeks: 4,
        }
    }
}

/// The whole forecast, as `tend forecast --json` and `GET /api/forecast` show it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Forecast {
    /// When it starts (the live database's "now").
    pub from: Timestamp,
    /// When it ends: midnight, business time, `weeks` weeks after the start's date.
    pub to: Timestamp,
    /// Weeks forecast.
    pub weeks: u32,
    /// Weeks of history the arrivals are estimated from.
    pub history_weeks: u32,
    /// Per process: what enrolled into it in the history window, and the rate assumed.
    pub arrivals: Vec<ArrivalRate>,
    /// Per business day: touches admitted and work, with the budgets as configured.
    pub days: Vec<ForecastDay>,
    /// Per week (Monday to Sunday): work expected against capacity.
    pub work: Vec<WorkWeek>,
    /// Work open now.
    pub open_work_now: f64,
    /// The team's capacity per week.
    pub capacity_per_week: f64,
    /// `[capacity] target_utilization`.
    pub target_utilization: f64,
    /// Per limited resource: use against each window's limit.
    pub budgets: Vec<BudgetForecast>,
    /// Enrollments that pass their process's `max_gap` during the forecast (or had
    /// already), soonest first; known contacts only, at most 500.
    pub at_risk: Vec<LeadAtRisk>,
    /// Known contacts' enrollments passing `max_gap`, all of them.
    pub at_risk_total: u64,
    /// Of which already past it when the forecast starts.
    pub at_risk_already: u64,
    /// Expected arrivals' enrollments passing `max_gap`.
    pub at_risk_arrivals: u64,
    /// What would keep every promise, from the run with budgets and capacity lifted.
    pub needed: Needed,
}

/// One business day of the forecast.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ForecastDay {
    /// The business date.
    pub date: Date,
    /// Emails admitted.
    pub emails: u64,
    /// Webhooks admitted.
    pub webhooks: u64,
    /// Tasks planned for the day.
    pub tasks: u64,
    /// Their estimated minutes.
    pub staff_minutes: u64,
    /// What the touches cost, from `[costs]`.
    pub money: f64,
    /// Work expected to open (offers answered).
    pub new_work: f64,
    /// Work open at the day's end.
    pub open_work: f64,
}

/// One week's work against capacity.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkWeek {
    /// Its first day in the forecast (a Monday, except the first week).
    pub from: Date,
    /// Its days in the forecast.
    pub days: u32,
    /// Work expected to open.
    pub new_work: f64,
    /// What the team serves in those days: `per_week × days / 7`.
    pub capacity: f64,
    /// Work open at its end.
    pub open_work: f64,
}

/// One limited resource's use against its windows.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BudgetForecast {
    /// `emails`, `webhooks`, `staff_minutes` or `money`.
    pub resource: String,
    /// Each limited window: `day`, `week` or `month`.
    pub windows: Vec<WindowUse>,
}

/// Use of one budget window over the forecast.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WindowUse {
    /// `day`, `week` (Monday to Sunday) or `month`.
    pub window: String,
    /// The configured limit.
    pub limit: f64,
    /// The most used in one window of the forecast.
    pub peak: f64,
    /// The mean over the windows of the forecast (partial first and last ones included).
    pub mean: f64,
    /// Windows that used 99% of the limit or more.
    pub at_limit: u32,
    /// Windows in the forecast.
    pub count: u32,
}

/// An enrollment that passes its process's `max_gap`.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeadAtRisk {
    /// The contact's id.
    pub contact_id: i64,
    /// Its name, if known.
    pub name: Option<String>,
    /// Its address, if known.
    pub email: Option<String>,
    /// The process (its file stem).
    pub process: String,
    /// When it passes `max_gap`: its last touch (or enrollment) plus the gap.
    pub deadline: Timestamp,
}

/// What keeping every promise would take.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Needed {
    /// Per limited resource, the peak use of each limited window when nothing is held
    /// back for budget or capacity.
    pub budgets: Vec<BudgetForecast>,
    /// The capacity per week whose target utilization covers the busiest week's work
    /// when nothing is held back.
    pub capacity_per_week: f64,
    /// Enrollments (known contacts and arrivals) that pass `max_gap` even then, other
    /// than those already past it at the start: the processes, frequency caps or quiet
    /// hours keep them waiting, not the budget.
    pub past_gap_anyway: u64,
}

/// Forecasts `options.weeks` weeks of the business whose live database is `live`,
/// from `now`. The live database is only read (one snapshot); all work happens on
/// copies in memory, dropped at the end.
pub async fn forecast(
    live: &SqliteStore,
    project: &Project,
    now: Timestamp,
    options: ForecastOptions,
) -> Result<Forecast, ForecastError> {
    for (name, value) in [
        ("weeks", options.weeks),
        ("history_weeks", options.history_weeks),
    ] {
        if !(1..=52).contains(&value) {
            return Err(ForecastError::Options(format!(
                "`{name}` must be between 1 and 52, not {value}"
            )));
        }
    }
    // Scratch copies in memory: the runs write much and keep nothing, so neither needs
    // a journal, a write-ahead log or a sync.
    let paced = live.scratch_copy().await?;
    let lifted: Arc<dyn Store> = Arc::new(paced.scratch_copy().await?);
    let paced: Arc<dyn Store> = Arc::new(paced);

    let rates = history::arrival_rates(paced.as_ref(), project, now, options.history_weeks).await?;
    let days = 7 * options.weeks as usize;
    let tz = project.config.business.timezone.time_zone();
    let dates = Dates::new(&tz, now, days);
    let mut arrivals = Vec::new();
    for (process, rate) in rates.iter().enumerate() {
        arrivals.extend(
            history::arrival_times(rate, now, dates.end)
                .into_iter()
                .map(|at| Arrival { at, process }),
        );
    }
    let capacity = project.config.capacity.per_week;
    let arrivals: Arc<[Arrival]> = arrivals.into();
    // Each copy on its own task, so the two runs use two cores when there are.
    let paced_run = tokio::spawn(run::run(
        Arc::clone(&paced),
        Arc::new(project.clone()),
        now,
        days,
        capacity,
        Arc::clone(&arrivals),
    ));
    let lifted_run = tokio::spawn(run::run(
        Arc::clone(&lifted),
        Arc::new(lifted_project(project)),
        now,
        days,
        capacity,
        arrivals,
    ));
    let joined = |r: Result<Result<Trace, SimError>, tokio::task::JoinError>| {
        r.map_err(|e| SimError::Join(e.to_string()))?
    };
    let paced_trace = joined(paced_run.await)?;
    let lifted_trace = joined(lifted_run.await)?;
    drop((paced, lifted));

    let days_out = day_rows(project, &dates, &paced_trace);
    let lifted_days = day_rows(project, &dates, &lifted_trace);
    let known = |row: &(String, tend_store::NeglectRow)| {
        !row.1
            .email
            .as_deref()
            .is_some_and(|e| e.ends_with(ARRIVAL_DOMAIN))
    };
    let mut at_risk: Vec<LeadAtRisk> = paced_trace
        .past_gap
        .iter()
        .filter(|r| known(r))
        .map(|(process, row)| LeadAtRisk {
            contact_id: row.contact_id.0,
            name: row.name.clone(),
            email: row.email.clone(),
            process: process.clone(),
            deadline: row.deadline,
        })
        .collect();
    at_risk.sort_by_key(|r| (r.deadline, r.contact_id));
    let at_risk_total = at_risk.len() as u64;
    let at_risk_already = at_risk.iter().filter(|r| r.deadline <= now).count() as u64;
    at_risk.truncate(AT_RISK_LISTED);
    let at_risk_arrivals = paced_trace.past_gap.iter().filter(|r| !known(r)).count() as u64;
    let past_gap_anyway = lifted_trace
        .past_gap
        .iter()
        .filter(|(_, row)| row.deadline > now)
        .count() as u64;
    let work = work_weeks(&days_out, capacity);
    let target = project.config.capacity.target_utilization;
    let busiest = work_weeks(&lifted_days, capacity)
        .iter()
        .map(|w| w.new_work * 7.0 / f64::from(w.days.max(1)))
        .fold(0.0, f64::max);
    Ok(Forecast {
        from: now,
        to: dates.end,
        weeks: options.weeks,
        history_weeks: options.history_weeks,
        arrivals: rates,
        budgets: budget_use(project, &days_out),
        needed: Needed {
            budgets: budget_use(project, &lifted_days),
            capacity_per_week: (busiest / target * 10.0).ceil() / 10.0,
            past_gap_anyway,
        },
        work,
        open_work_now: paced_trace.open_at_start,
        capacity_per_week: capacity,
        target_utilization: target,
        days: days_out,
        at_risk,
        at_risk_total,
        at_risk_already,
        at_risk_arrivals,
    })
}

/// Forecasts from the SQLite database at `database` (opened read-only in effect: it
/// is only snapshotted).
pub async fn forecast_file(
    database: &Path,
    project: &Project,
    now: Timestamp,
    options: ForecastOptions,
) -> Result<Forecast, ForecastError> {
    let live = SqliteStore::open(database).await?;
    forecast(&live, project, now, options).await
}

/// The project with every budget and the capacity gate lifted; the limits that protect
/// the contact (frequency caps, quiet hours) stay.
fn lifted_project(project: &Project) -> Project {
    let mut lifted = project.clone();
    lifted.config.budget.clear();
    lifted.config.capacity.per_week = 1e12;
    lifted
}

fn day_rows(project: &Project, dates: &Dates, trace: &Trace) -> Vec<ForecastDay> {
    let costs = &project.config.costs;
    let cost = |channel: &str| costs.get(channel).copied().unwrap_or(0.0);
    let mut days: Vec<ForecastDay> = dates
        .starts
        .iter()
        .enumerate()
        .map(|(i, at)| ForecastDay {
            date: at.to_zoned_datetime(dates.tz.clone()).date(),
            emails: 0,
            webhooks: 0,
            tasks: 0,
            staff_minutes: 0,
            money: 0.0,
            new_work: trace.new_work[i],
            open_work: trace.open_work[i],
        })
        .collect();
    for (at, channel) in &trace.admitted {
        let Some(day) = dates.day_of(*at).map(|d| &mut days[d]) else {
            continue;
        };
        match channel {
            Channel::Email => {
                day.emails += 1;
                day.money += cost("email");
            }
            Channel::Webhook => {
                day.webhooks += 1;
                day.money += cost("webhook");
            }
            // Tasks are counted on the day they are planned for, below.
            Channel::Task => day.money += cost("task"),
        }
    }
    for task in &trace.tasks {
        if let Some(day) = dates.day_of(task.due_at).map(|d| &mut days[d]) {
            day.tasks += 1;
            day.staff_minutes += u64::from(task.minutes);
        }
    }
    days
}

/// Monday of the week `date` falls in.
fn monday_of(date: Date) -> Date {
    let back = i64::from(date.weekday().to_monday_zero_offset());
    date.checked_sub(jiff::Span::new().days(back))
        .unwrap_or(date)
}

fn work_weeks(days: &[ForecastDay], per_week: f64) -> Vec<WorkWeek> {
    let mut weeks: Vec<WorkWeek> = Vec::new();
    for day in days {
        let same = weeks
            .last()
            .is_some_and(|w| monday_of(w.from) == monday_of(day.date));
        if !same {
            weeks.push(WorkWeek {
                from: day.date,
                days: 0,
                new_work: 0.0,
                capacity: 0.0,
                open_work: 0.0,
            });
        }
        if let Some(week) = weeks.last_mut() {
            week.days += 1;
            week.new_work += day.new_work;
            week.capacity += per_week / 7.0;
            week.open_work = day.open_work;
        }
    }
    weeks
}

/// The first day of the budget window a day falls in.
type WindowOf = fn(Date) -> Date;

/// Each limited resource's use per limited window.
fn budget_use(project: &Project, days: &[ForecastDay]) -> Vec<BudgetForecast> {
    let used = |resource: &str, day: &ForecastDay| match resource {
        "emails" => day.emails as f64,
        "webhooks" => day.webhooks as f64,
        "staff_minutes" => day.staff_minutes as f64,
        _ => day.money,
    };
    project
        .config
        .budget
        .iter()
        .map(|(resource, limits)| {
            let mut windows = Vec::new();
            let keyed: [(&str, Option<f64>, WindowOf); 3] = [
                ("day", limits.per_day, |d| d),
                ("week", limits.per_week, monday_of),
                ("month", limits.per_month, |d| d.first_of_month()),
            ];
            for (window, limit, key) in keyed {
                let Some(limit) = limit else { continue };
                let mut totals: BTreeMap<Date, f64> = BTreeMap::new();
                for day in days {
                    *totals.entry(key(day.date)).or_default() += used(resource, day);
                }
                let count = totals.len() as u32;
                let peak = totals.values().copied().fold(0.0, f64::max);
                let mean = totals.values().sum::<f64>() / f64::from(count.max(1));
                let at_limit = totals.values().filter(|v| **v >= 0.99 * limit).count() as u32;
                windows.push(WindowUse {
                    window: window.into(),
                    limit,
                    peak,
                    mean,
                    at_limit,
                    count,
                });
            }
            BudgetForecast {
                resource: resource.clone(),
                windows,
            }
        })
        .collect()
}
