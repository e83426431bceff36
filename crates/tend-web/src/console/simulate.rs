//! Simulate (`GET /simulate`, owners only): the business's marketing run forward by the
//! simulator — the real engine and pacer on a virtual clock, three ways (Tend's pacing,
//! campaigns in bursts, everything at once) — with the scenario's main knobs set on a
//! form: leads per week, capacity, budgets, years. Each strategy runs on its own
//! in-memory database, never the live one. One run at a time per server, in the
//! background: its page reloads itself with the progress until the report (the same
//! SVG charts as `tend simulate`'s) is shown in it. A run can be cancelled, and the
//! server stops it when it shuts down.

use super::layout::{PageError, csrf_field, num, page, page_refreshing, redirect, when, zone};
use super::session::{FormFields, Viewer};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use jiff::Timestamp;
use maud::{Markup, PreEscaped, html};
use std::num::NonZeroUsize;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tend_core::check::Project;
use tend_engine::project_files::project_dir;
use tend_sim::{Plan, Progress, Scenario, SimError, StopSignal, Strategy};
use tokio::sync::watch;

/// The longest run the console starts, in years of simulated time.
pub const MAX_YEARS: f64 = 3.0;
/// The shortest, in years: one simulated day.
const MIN_YEARS: f64 = 1.0 / 365.0;
/// Most new leads per week a run may assume (each is a contact in every strategy).
const MAX_LEADS_PER_WEEK: f64 = 1_000.0;
/// Most seeds in one run: each is a population simulated by every strategy.
const MAX_SEEDS: u64 = 8;
/// Most simulated years summed over the seeds (three seeds of two years is six), so
/// a run stays minutes long rather than hours.
const MAX_SEED_YEARS: f64 = 8.0;
/// Points per line in the report's time charts: a three-year run stays well under the
/// console's 100 KB a page.
const MAX_POINTS: usize = 120;
/// How often a running simulation's page reloads itself, in seconds.
const REFRESH_SECONDS: u32 = 2;

/// The console's simulations: at most one runs per server; the last one is kept so
/// its report can be read again.
#[derive(Default)]
pub struct Simulations {
    last: Mutex<Option<Arc<Run>>>,
    next_id: AtomicU64,
    /// Set when the server shuts down: the running simulation stops, no new one starts.
    closed: AtomicBool,
}

/// Where a simulation stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunStatus {
    /// Still running.
    Running,
    /// Finished; its report is ready.
    Finished,
    /// Cancelled, or stopped as the server shut down.
    Stopped,
    /// The simulator failed; says why.
    Failed(String),
}

/// One simulation started from the console.
struct Run {
    id: u64,
    /// Who started it.
    by: String,
    /// When, on the engine's clock.
    started_at: Timestamp,
    /// For the elapsed time shown while it runs.
    started: std::time::Instant,
    knobs: Knobs,
    /// Strategy-days to simulate, and done so far.
    total: u64,
    done: Arc<AtomicU64>,
    stop: StopSignal,
    /// Who cancelled it, if someone did.
    cancelled_by: Mutex<Option<String>>,
    /// `None` while it runs.
    outcome: Mutex<Option<Outcome>>,
    /// Flips to `true` when the outcome is set.
    finished: watch::Sender<bool>,
}

enum Outcome {
    /// The report, as HTML to embed.
    Report(Arc<String>),
    Stopped,
    Failed(String),
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks leaves plain data behind; keep serving it.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Run {
    fn status(&self) -> RunStatus {
        match &*lock(&self.outcome) {
            None => RunStatus::Running,
            Some(Outcome::Report(_)) => RunStatus::Finished,
            Some(Outcome::Stopped) => RunStatus::Stopped,
            Some(Outcome::Failed(why)) => RunStatus::Failed(why.clone()),
        }
    }

    fn finish(&self, outcome: Outcome) {
        *lock(&self.outcome) = Some(outcome);
        self.finished.send_replace(true);
    }
}

impl Simulations {
    /// Stops the running simulation and refuses new ones: the server is shutting down.
    pub fn shutdown(&self) {
        self.closed.store(true, Ordering::Relaxed);
        if let Some(run) = &*lock(&self.last) {
            run.stop.stop();
        }
    }

    /// Where the last simulation stands, if one was started.
    pub fn last_status(&self) -> Option<RunStatus> {
        lock(&self.last).as_ref().map(|run| run.status())
    }

    /// Waits until the last simulation has ended (at once if none runs).
    pub async fn wait_until_ended(&self) {
        let Some(run) = lock(&self.last).clone() else {
            return;
        };
        let mut ended = run.finished.subscribe();
        // The sender lives in `run`, which this holds: waiting cannot fail.
        let _ = ended.wait_for(|done| *done).await;
    }

    fn get(&self, id: u64) -> Option<Arc<Run>> {
        lock(&self.last).clone().filter(|run| run.id == id)
    }
}

/// A budget window the form can change: `[budget] RESOURCE = { WINDOW = … }`.
#[derive(Debug, Clone, PartialEq)]
struct BudgetKnob {
    resource: String,
    window: &'static str,
    value: f64,
}

impl BudgetKnob {
    /// The form field's name and id.
    fn field(&self) -> String {
        format!("budget-{}-{}", self.resource, self.window)
    }

    fn label(&self) -> String {
        format!("{} {}", self.resource, self.window.replace('_', " "))
    }
}

/// The knobs of one run.
#[derive(Debug, Clone, PartialEq)]
struct Knobs {
    leads_per_week: f64,
    capacity_per_week: f64,
    budgets: Vec<BudgetKnob>,
    years: f64,
    /// Each seed a population of its own; every strategy meets the same ones.
    seeds: RangeInclusive<u64>,
}

/// The scenario the form starts from: `scenario.toml` beside `tend.toml` if there is
/// one (as `tend init` writes it), else the simulator's defaults; a broken file is
/// reported on the form and the defaults used.
struct BaseScenario {
    scenario: Scenario,
    /// Where the defaults come from, in words.
    source: String,
    /// Why the file could not be used, if it could not.
    problem: Option<String>,
}

impl BaseScenario {
    async fn load(state: &AppState) -> BaseScenario {
        let defaults = || Scenario::parse("defaults", "").expect("an empty scenario is valid");
        let Some(config_path) = state.config_path.clone() else {
            return BaseScenario {
                scenario: defaults(),
                source: "the simulator's defaults".into(),
                problem: None,
            };
        };
        let path = project_dir(&config_path).join("scenario.toml");
        let shown = "scenario.toml".to_owned();
        let loaded =
            tokio::task::spawn_blocking(move || path.is_file().then(|| Scenario::load(&path)))
                .await;
        match loaded {
            Ok(Some(Ok(scenario))) => BaseScenario {
                scenario,
                source: shown,
                problem: None,
            },
            Ok(None) => BaseScenario {
                scenario: defaults(),
                source: "the simulator's defaults (there is no scenario.toml)".into(),
                problem: None,
            },
            Ok(Some(Err(e))) => BaseScenario {
                scenario: defaults(),
                source: "the simulator's defaults".into(),
                problem: Some(e.to_string()),
            },
            Err(e) => BaseScenario {
                scenario: defaults(),
                source: "the simulator's defaults".into(),
                problem: Some(e.to_string()),
            },
        }
    }

    /// The form's starting values: the scenario's, and the business's own capacity
    /// and budgets from `tend.toml`.
    fn knobs(&self, project: &Project) -> Knobs {
        let config = &project.config;
        Knobs {
            leads_per_week: self.scenario.population.leads_per_week,
            capacity_per_week: self
                .scenario
                .business
                .capacity_per_week
                .unwrap_or(config.capacity.per_week),
            budgets: config
                .budget
                .iter()
                .flat_map(|(resource, limits)| {
                    [
                        ("per_day", limits.per_day),
                        ("per_week", limits.per_week),
                        ("per_month", limits.per_month),
                    ]
                    .into_iter()
                    .filter_map(move |(window, value)| {
                        value.map(|value| BudgetKnob {
                            resource: resource.clone(),
                            window,
                            value,
                        })
                    })
                })
                .collect(),
            years: f64::from(self.scenario.simulation.days) / 365.0,
            seeds: self.scenario.simulation.seed..=self.scenario.simulation.seed,
        }
    }
}

/// A form as typed, and what is wrong with it, field by field.
struct Filled {
    values: Vec<(String, String)>,
    errors: Vec<(String, String)>,
}

impl Filled {
    fn value(&self, field: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(k, _)| k == field)
            .map(|(_, v)| v.as_str())
    }

    fn error(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(k, _)| k == field)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads the knobs from the form; every field wrong is named.
fn read_form(form: &FormFields, defaults: &Knobs) -> Result<Knobs, Filled> {
    let mut filled = Filled {
        values: form.0.clone(),
        errors: Vec::new(),
    };
    let mut number = |field: &str, low: f64, high: f64, what: &str| -> f64 {
        let value = form
            .get(field)
            .and_then(|v| v.replace(',', "").parse::<f64>().ok())
            .filter(|v| v.is_finite() && (low..=high).contains(v));
        value.unwrap_or_else(|| {
            filled
                .errors
                .push((field.to_owned(), format!("{field}: {what}")));
            0.0
        })
    };
    let leads_per_week = number(
        "leads_per_week",
        0.0,
        MAX_LEADS_PER_WEEK,
        "a number of leads from 0 to 1,000",
    );
    let capacity_per_week = number(
        "capacity_per_week",
        0.01,
        10_000.0,
        "a number of work items above 0, at most 10,000",
    );
    let years = number(
        "years",
        MIN_YEARS,
        MAX_YEARS,
        "a number of years from 0.003 (one day) to 3",
    );
    let budgets = defaults
        .budgets
        .iter()
        .map(|knob| BudgetKnob {
            value: number(&knob.field(), 0.0, 1e9, "a number from 0 to 1,000,000,000"),
            ..knob.clone()
        })
        .collect();
    let seeds = match form.get("seeds").map(str::trim) {
        None | Some("") => Ok(defaults.seeds.clone()),
        Some(text) if text.contains("..") => tend_sim::parse_seeds(text, MAX_SEEDS),
        Some(text) => text.parse::<u64>().map(|seed| seed..=seed).map_err(|_| {
            format!("`{text}` is not a seed (a whole number ≥ 0) nor a range like 1..4")
        }),
    };
    let seeds = seeds.unwrap_or_else(|why| {
        filled
            .errors
            .push(("seeds".into(), format!("seeds: {why}")));
        0..=0
    });
    let seed_years = seed_count(&seeds) as f64 * years;
    if filled.errors.is_empty() && seed_years > MAX_SEED_YEARS {
        filled.errors.push((
            "years".into(),
            format!(
                "years: {} seeds of {} years is {} years to simulate; at most {MAX_SEED_YEARS} (fewer seeds or fewer years)",
                seed_count(&seeds),
                years_text(years),
                years_text(seed_years)
            ),
        ));
    }
    if !filled.errors.is_empty() {
        return Err(filled);
    }
    Ok(Knobs {
        leads_per_week,
        capacity_per_week,
        budgets,
        years,
        seeds,
    })
}

fn seed_count(seeds: &RangeInclusive<u64>) -> u64 {
    seeds.end().saturating_sub(*seeds.start()) + 1
}

/// Simulations run on half the cores (at least one), so the live engine and the
/// console keep the rest.
fn simulation_threads() -> NonZeroUsize {
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    NonZeroUsize::new(cores / 2).unwrap_or(NonZeroUsize::MIN)
}

/// `GET /simulate`.
pub async fn form(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    viewer.require_owner()?;
    let engine = state.engine().map_err(|_| PageError::NotFound("engine"))?;
    let base = BaseScenario::load(&state).await;
    let knobs = base.knobs(engine.project());
    Ok(form_page(&state, &viewer, &base, &knobs, None, None))
}

/// `POST /simulate`: starts a run in the background and shows its page.
pub async fn start(
    State(state): State<AppState>,
    viewer: Viewer,
    form: FormFields,
) -> Result<Response, PageError> {
    viewer.require_owner()?;
    let engine = state.engine().map_err(|_| PageError::NotFound("engine"))?;
    let base = BaseScenario::load(&state).await;
    let defaults = base.knobs(engine.project());
    let knobs = match read_form(&form, &defaults) {
        Ok(knobs) => knobs,
        Err(filled) => {
            let mut response = form_page(&state, &viewer, &base, &defaults, Some(&filled), None);
            *response.status_mut() = StatusCode::BAD_REQUEST;
            return Ok(response);
        }
    };
    let sims = &state.simulations;
    let mut last = lock(&sims.last);
    if sims.closed.load(Ordering::Relaxed) {
        return Err(PageError::BadRequest(
            "the server is shutting down; start the simulation again once it is back".into(),
        ));
    }
    if let Some(running) = last.as_ref().filter(|r| r.status() == RunStatus::Running) {
        let busy = html! {
            p.error role="alert" data-testid="sim-busy" {
                "A simulation is already running (started by " (running.by) "); one runs at a time. "
                a href={ "/simulate/runs/" (running.id) } { "See its progress" } " and wait for it, or cancel it there."
            }
        };
        let filled = Filled {
            values: form.0.clone(),
            errors: Vec::new(),
        };
        drop(last);
        let mut response = form_page(&state, &viewer, &base, &defaults, Some(&filled), Some(busy));
        *response.status_mut() = StatusCode::CONFLICT;
        return Ok(response);
    }

    let mut scenario = base.scenario.clone();
    scenario.population.leads_per_week = knobs.leads_per_week;
    scenario.business.capacity_per_week = Some(knobs.capacity_per_week);
    scenario.simulation.days = ((knobs.years * 365.0).round() as u32).max(1);
    scenario.simulation.seed = *knobs.seeds.start();
    let mut project = (**engine.project()).clone();
    project.config.capacity.per_week = knobs.capacity_per_week;
    for knob in &knobs.budgets {
        if let Some(limits) = project.config.budget.get_mut(&knob.resource) {
            let window = match knob.window {
                "per_day" => &mut limits.per_day,
                "per_week" => &mut limits.per_week,
                _ => &mut limits.per_month,
            };
            *window = Some(knob.value);
        }
    }
    let plan = Plan::seeds(knobs.seeds.clone()).on_threads(simulation_threads());
    let total =
        u64::from(scenario.simulation.days) * (plan.strategies.len() * plan.seeds.len()) as u64;
    let name = scenario
        .name
        .clone()
        .unwrap_or_else(|| project.config.business.name.clone());
    let run = Arc::new(Run {
        id: sims.next_id.fetch_add(1, Ordering::Relaxed) + 1,
        by: viewer.user.email.clone(),
        started_at: engine.clock().now(),
        started: std::time::Instant::now(),
        knobs,
        total,
        done: Arc::default(),
        stop: StopSignal::default(),
        cancelled_by: Mutex::new(None),
        outcome: Mutex::new(None),
        finished: watch::Sender::new(false),
    });
    *last = Some(Arc::clone(&run));
    drop(last);
    tracing::info!(run = run.id, by = %run.by, days = scenario.simulation.days, "console simulation started");
    let id = run.id;
    // Building each seed's population is CPU work before the first await: it runs on a
    // blocking thread, never on the server's own workers.
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let done = Arc::clone(&run.done);
        let progress: Progress = Arc::new(move |days| {
            done.fetch_add(days, Ordering::Relaxed);
        });
        let result = runtime.block_on(tend_sim::simulate_until_stopped(
            &scenario,
            &name,
            &project,
            &plan,
            progress,
            run.stop.clone(),
        ));
        let outcome = match result {
            Ok(report) => Outcome::Report(Arc::new(tend_sim::report::render_fragment(
                &report, MAX_POINTS,
            ))),
            Err(SimError::Stopped) => Outcome::Stopped,
            Err(e) => {
                tracing::warn!(run = run.id, error = %e, "console simulation failed");
                Outcome::Failed(e.to_string())
            }
        };
        run.finish(outcome);
    });
    Ok(redirect(&format!("/simulate/runs/{id}")))
}

/// `GET /simulate/runs/{id}`: the progress while it runs (reloading itself), then the
/// report.
pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<u64>,
) -> Result<Response, PageError> {
    viewer.require_owner()?;
    let run = state.simulations.get(id).ok_or(PageError::NotFound(
        "simulation (only the last one is kept)",
    ))?;
    let tz = zone(&state);
    let outcome = lock(&run.outcome).as_ref().map(|o| match o {
        Outcome::Report(html) => Outcome::Report(Arc::clone(html)),
        Outcome::Stopped => Outcome::Stopped,
        Outcome::Failed(why) => Outcome::Failed(why.clone()),
    });
    let cancelled_by = lock(&run.cancelled_by).clone();
    let header = html! {
        h1 { "Simulation" }
        p data-testid="sim-knobs" {
            "Started by " (run.by) " at " (when(run.started_at, &tz)) ": "
            (knobs_text(&run.knobs))
        }
    };
    let again = html! { p { a href="/simulate" data-testid="sim-again" { "Change the knobs and run again" } } };
    let Some(outcome) = outcome else {
        let done = run.done.load(Ordering::Relaxed).min(run.total);
        let share = if run.total == 0 {
            0.0
        } else {
            done as f64 / run.total as f64
        };
        let body = html! {
            (header)
            section aria-labelledby="progress-h" data-testid="sim-running" {
                h2 id="progress-h" { "Running" }
                label for="sim-progress" { "Simulated days, every strategy and seed" }
                progress id="sim-progress" max=(run.total) value=(done) { (num(share * 100.0)) "%" }
                p { (done) " of " (run.total) " strategy-days (" (num(share * 100.0)) "%), "
                    (run.started.elapsed().as_secs()) " s so far. This page reloads itself every "
                    (REFRESH_SECONDS) " seconds; reload it by hand if it does not." }
                @if cancelled_by.is_some() {
                    p data-testid="sim-stopping" { "Stopping…" }
                } @else {
                    form method="post" action={ "/simulate/runs/" (run.id) "/cancel" } {
                        (csrf_field(&viewer))
                        button.danger type="submit" id="cancel-simulation" data-testid="cancel-simulation" { "Cancel" }
                    }
                }
            }
        };
        return Ok(page_refreshing(
            &viewer,
            "Simulation",
            "Simulate",
            REFRESH_SECONDS,
            body,
        ));
    };
    let body = match outcome {
        Outcome::Report(report) => html! {
            (header)
            (again)
            section aria-labelledby="report-h" data-testid="sim-report" {
                h2 id="report-h" { "Report" }
                p.hint { "Three ways to run the same time: " strong { "background" } " is Tend pacing your touches to the budgets and capacity above; "
                    strong { "campaign" } " sends in bursts whenever the team is quiet; " strong { "unthrottled" } " sends everything as soon as it is due." }
                div.sim-report { (PreEscaped(report.as_str())) }
            }
        },
        Outcome::Stopped => html! {
            (header)
            p data-testid="sim-stopped" { "Stopped: "
                (cancelled_by.map_or_else(|| "the server shut down".to_owned(), |by| format!("cancelled by {by}")))
                ", before it finished; nothing of it was kept." }
            (again)
        },
        Outcome::Failed(why) => html! {
            (header)
            p.error role="alert" data-testid="sim-failed" { "The simulation could not run: " (why) }
            (again)
        },
    };
    Ok(page(&viewer, "Simulation", "Simulate", body))
}

/// `POST /simulate/runs/{id}/cancel`.
pub async fn cancel(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<u64>,
) -> Result<Response, PageError> {
    viewer.require_owner()?;
    let run = state.simulations.get(id).ok_or(PageError::NotFound(
        "simulation (only the last one is kept)",
    ))?;
    if run.status() == RunStatus::Running {
        *lock(&run.cancelled_by) = Some(viewer.user.email.clone());
        run.stop.stop();
        tracing::info!(run = run.id, by = %viewer.user.email, "console simulation cancelled");
    }
    Ok(redirect(&format!("/simulate/runs/{id}")))
}

fn knobs_text(knobs: &Knobs) -> String {
    let mut parts = vec![
        format!("{} leads a week", num(knobs.leads_per_week)),
        format!(
            "capacity {} work items a week",
            num(knobs.capacity_per_week)
        ),
    ];
    parts.extend(
        knobs
            .budgets
            .iter()
            .map(|b| format!("{} {}", b.label(), num(b.value))),
    );
    parts.push(format!(
        "{} years ({} days)",
        years_text(knobs.years),
        ((knobs.years * 365.0).round() as u32).max(1)
    ));
    parts.push(match seed_count(&knobs.seeds) {
        1 => format!("seed {}", knobs.seeds.start()),
        n => format!("{n} seeds, {}–{}", knobs.seeds.start(), knobs.seeds.end()),
    });
    parts.join(", ")
}

/// Seeds as the form takes them: `7`, or `1..4` for several.
fn seeds_text(seeds: &RangeInclusive<u64>) -> String {
    if seeds.start() == seeds.end() {
        seeds.start().to_string()
    } else {
        format!("{}..{}", seeds.start(), seeds.end())
    }
}

/// Years with up to three decimals and no trailing zeros: a run of days reads
/// `0.038`, a year `1`.
fn years_text(years: f64) -> String {
    let text = format!("{years:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The form, with `filled` values and errors when it comes back, and `notice` above it.
fn form_page(
    state: &AppState,
    viewer: &Viewer,
    base: &BaseScenario,
    defaults: &Knobs,
    filled: Option<&Filled>,
    notice: Option<Markup>,
) -> Response {
    let value = |field: &str, default: String| -> String {
        filled
            .and_then(|f| f.value(field))
            .map_or(default, str::to_owned)
    };
    let error = |field: &str| filled.and_then(|f| f.error(field)).map(str::to_owned);
    // `step` is a number field's granularity; a field without one takes text.
    let input = |field: &str, label: String, default: String, step: Option<&str>, hint: &str| {
        let problem = error(field);
        let hint_id = format!("{field}-hint");
        let error_id = format!("{field}-error");
        let described = if problem.is_some() {
            format!("{hint_id} {error_id}")
        } else {
            hint_id.clone()
        };
        html! {
            div.field {
                label for=(field) { (label) }
                input id=(field) name=(field) type=(if step.is_some() { "number" } else { "text" })
                    step=[step] min=[step.map(|_| "0")] required
                    value=(value(field, default))
                    aria-invalid=[problem.is_some().then_some("true")]
                    aria-describedby=(described);
                span.hint id=(hint_id) { (hint) }
                @if let Some(problem) = &problem {
                    span.error id=(error_id) data-testid={ "error-" (field) } { (problem) }
                }
            }
        }
    };
    let last = lock(&state.simulations.last).clone();
    let errors: Vec<String> = filled
        .map(|f| f.errors.iter().map(|(_, e)| e.clone()).collect())
        .unwrap_or_default();
    let body = html! {
        h1 { "Simulate" }
        p.hint { "Runs your processes and settings, as this server loaded them, forward in simulated time against a model of your leads and your team, "
            "three ways: " (Strategy::ALL.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ")) ". "
            "Nothing is sent and the live database is not touched. Starting values come from " (base.source) " and tend.toml." }
        @if let Some(problem) = &base.problem {
            p.warn data-testid="scenario-problem" { "scenario.toml could not be used: " (problem) }
        }
        @if let Some(notice) = notice { (notice) }
        @if !errors.is_empty() {
            div.error role="alert" data-testid="form-error" {
                p { "Fix these fields and run again:" }
                ul { @for e in &errors { li { (e) } } }
            }
        }
        form method="post" action="/simulate" data-testid="simulate-form" {
            (csrf_field(viewer))
            (input("leads_per_week", "New leads per week".into(), num(defaults.leads_per_week), Some("any"), "inquiries arriving on average; from 0 to 1,000"))
            (input("capacity_per_week", "Capacity: work items per week".into(), num(defaults.capacity_per_week), Some("any"), "what the team completes, and what the pacer plans for"))
            @for knob in &defaults.budgets {
                (input(&knob.field(), format!("Budget: {}", knob.label()), num(knob.value), Some("any"), "[budget] in tend.toml"))
            }
            (input("years", "Years".into(), years_text(defaults.years), Some("any"), "simulated time, at most 3 years (and at most 8 summed over the seeds)"))
            (input("seeds", "Seeds".into(), seeds_text(&defaults.seeds), None, "one seed (7) or a range (1..4), at most 8; each is a population of its own, the same seed gives the same result"))
            button type="submit" id="run-simulation" data-testid="run-simulation" { "Run the simulation" }
        }
        @if let Some(run) = &last {
            p data-testid="sim-last" {
                @match run.status() {
                    RunStatus::Running => { "A simulation is running: " }
                    _ => { "The last simulation: " }
                }
                a href={ "/simulate/runs/" (run.id) } { (knobs_text(&run.knobs)) }
            }
        }
    };
    page(viewer, "Simulate", "Simulate", body)
}
