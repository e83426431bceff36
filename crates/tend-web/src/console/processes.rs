//! Processes (`GET /processes` and `GET /processes/{id}`, owners only): every process
//! the engine runs, and per process its steps with, per step, the touches pending,
//! held back by reason, sent and failed, the learned response rate of its offers
//! against the configured prior, and the conversions it was the last touch before;
//! then the process file as it is on disk now, with `tend check`'s diagnostics when it
//! is invalid, and how to duplicate a process.

use super::layout::{PageError, num, page};
use super::session::Viewer;
use crate::AppState;
use axum::extract::{Path, State};
use axum::response::Response;
use maud::{Markup, html};
use std::collections::BTreeMap;
use tend_core::check::{Diagnostic, check_project};
use tend_core::{Intent, Process, StepChannel};
use tend_engine::project_files::read_sources;
use tend_engine::{learned_probability, reports};
use tend_store::StepCounts;

/// The project as it is on disk now, which may differ from what the engine loaded.
enum OnDisk {
    /// The server was not started from a project folder (an embedded server).
    Unknown,
    /// The files could not be read; says why.
    Unreadable(String),
    /// Each process file's path and text by process id (file stem), and `tend check`'s
    /// diagnostics for the whole project.
    Read {
        files: BTreeMap<String, (String, String)>,
        diagnostics: Vec<Diagnostic>,
    },
}

impl OnDisk {
    /// Reads and checks the project beside the server's `tend.toml`, off the async
    /// threads (a few small files, parsed).
    async fn load(state: &AppState) -> OnDisk {
        let Some(config_path) = state.config_path.clone() else {
            return OnDisk::Unknown;
        };
        let read = tokio::task::spawn_blocking(move || {
            let sources = read_sources(&config_path).map_err(|e| e.to_string())?;
            let diagnostics = check_project(&sources).err().unwrap_or_default();
            let files = sources
                .processes
                .into_iter()
                .map(|file| (file.stem(), (file.path, file.text)))
                .collect();
            Ok::<_, String>(OnDisk::Read { files, diagnostics })
        })
        .await;
        match read {
            Ok(Ok(on_disk)) => on_disk,
            Ok(Err(why)) => OnDisk::Unreadable(why),
            Err(join) => OnDisk::Unreadable(join.to_string()),
        }
    }

    /// The diagnostics of the file at `path`.
    fn problems_in<'a>(&'a self, path: &'a str) -> impl Iterator<Item = &'a Diagnostic> + 'a {
        let all = match self {
            OnDisk::Read { diagnostics, .. } => diagnostics.as_slice(),
            _ => &[],
        };
        all.iter().filter(move |d| d.path == path)
    }
}

/// `GET /processes`.
pub async fn list(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    viewer.require_owner()?;
    let engine = state.engine().map_err(|_| PageError::NotFound("engine"))?;
    let counts = state.store.pace_counts().await?;
    let enrolled: BTreeMap<i64, u64> = counts.enrolled.into_iter().collect();
    let on_disk = OnDisk::load(&state).await;
    let loaded: Vec<(&Process, u64)> = engine
        .book()
        .iter()
        .map(|b| (&b.process, enrolled.get(&b.id).copied().unwrap_or(0)))
        .collect();
    // Files added since the server started run only after a restart; say so.
    let not_loaded: Vec<&(String, String)> = match &on_disk {
        OnDisk::Read { files, .. } => files
            .iter()
            .filter(|(id, _)| engine.project().process(id).is_none())
            .map(|(_, file)| file)
            .collect(),
        _ => Vec::new(),
    };
    let body = html! {
        h1 { "Processes" }
        p.hint { "Each process is a file in " code { "processes/" } "; the engine runs the files as they were when "
            code { "tend serve" } " started." }
        table data-testid="processes" {
            thead { tr { th { "Process" } th { "File" } th { "Steps" } th { "Enrolled now" } th { "Max gap" } th { "Enrolls on" } th { "Problems" } } }
            tbody {
                @for (process, enrolled) in &loaded {
                    @let path = format!("processes/{}.toml", process.id);
                    @let problems = on_disk.problems_in(&path).count();
                    tr data-testid="process-row" {
                        td { a href={ "/processes/" (process.id) } data-testid={ "process-" (process.id) } { (process.name) } }
                        td { code { (path) } }
                        td { (process.steps.len()) }
                        td data-testid="process-enrolled" { (enrolled) }
                        td { (process.max_gap) }
                        td { (enroll_text(process)) }
                        td { @if problems > 0 { span.warn { (problems) " in the file now" } } @else { "—" } }
                    }
                }
            }
        }
        @if !not_loaded.is_empty() {
            p.warn data-testid="not-loaded" {
                "Not running yet (restart " code { "tend serve" } " to load them): "
                @for (i, (path, _)) in not_loaded.iter().enumerate() {
                    @if i > 0 { ", " } code { (path) }
                }
            }
        }
        @if let OnDisk::Unreadable(why) = &on_disk {
            p.warn { "The project's files could not be read: " (why) }
        }
        (duplicate_help(None))
    };
    Ok(page(&viewer, "Processes", "Processes", body))
}

/// `GET /processes/{id}`.
pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    viewer.require_owner()?;
    let engine = state.engine().map_err(|_| PageError::NotFound("engine"))?;
    let project = engine.project();
    let process = project.process(&id).ok_or(PageError::NotFound("process"))?;
    let stage = reports::default_conversion_stage(project);
    let counts: BTreeMap<u32, StepCounts> = state
        .store
        .process_step_counts(&process.id, &stage)
        .await?
        .into_iter()
        .map(|c| (c.step, c))
        .collect();
    let enrolled = {
        let by_id: BTreeMap<i64, u64> = state
            .store
            .pace_counts()
            .await?
            .enrolled
            .into_iter()
            .collect();
        engine
            .book()
            .iter()
            .find(|b| b.process.id == process.id)
            .and_then(|b| by_id.get(&b.id).copied())
            .unwrap_or(0)
    };
    let prior = project.config.capacity.offer_probability;
    let on_disk = OnDisk::load(&state).await;
    let path = format!("processes/{}.toml", process.id);
    let empty = StepCounts::default();
    let beyond: Vec<&StepCounts> = counts
        .values()
        .filter(|c| c.step as usize >= process.steps.len())
        .collect();

    let body = html! {
        h1 data-testid="process-name" { (process.name) }
        dl.profile data-testid="process-summary" {
            dt { "File" } dd { code { (path) } }
            dt { "Enrolls on" } dd { (enroll_text(process)) }
            dt { "Exits on" } dd { (exit_text(process)) }
            dt { "Max gap" } dd { (process.max_gap) " without a touch, at most" }
            dt { "Keep-warm" } dd { (process.keep_warm.as_deref().unwrap_or("none")) }
            dt { "Then" } dd { (process.then.as_deref().unwrap_or("the enrollment completes")) }
            dt { "Enrolled now" } dd data-testid="process-enrolled" { (enrolled) }
        }
        section aria-labelledby="steps-h" data-testid="steps" {
            h2 id="steps-h" { "Steps" }
            p.hint { "Held: pending touches the pacer last held back, by reason. Response rate: offers answered with work or a stage change, "
                "and the rate the pacer now uses, learned from the prior of " (percent(prior)) " (" code { "[capacity] offer_probability" } "). "
                "Conversions: contacts who first became " (stage) " with this step as their last touch before." }
            table {
                thead { tr {
                    th { "#" } th { "Wait" } th { "Touch" } th { "Pending" } th { "Held" } th { "In progress" }
                    th { "Sent" } th { "Failed" } th { "Skipped" } th { "Response rate" } th { "Conversions" }
                } }
                tbody {
                    @for (i, step) in process.steps.iter().enumerate() {
                        @let c = counts.get(&(i as u32)).unwrap_or(&empty);
                        tr data-testid="step-row" {
                            td { (i + 1) }
                            td { (step.wait) }
                            td { (touch_text(&step.channel)) " " span.badge { (step.intent.as_str()) } }
                            td data-testid="step-pending" { (c.pending) }
                            td data-testid="step-held" { (held_text(c)) }
                            td data-testid="step-in-progress" { (c.in_progress) }
                            td data-testid="step-sent" { (c.sent)
                                @if c.keep_warm_sent > 0 { br; small { "+ " (c.keep_warm_sent) " keep-warm" } } }
                            td data-testid="step-failed" { (c.failed) }
                            td { (c.skipped) }
                            td data-testid="step-response" { (response_text(step.intent, c, prior)) }
                            td data-testid="step-conversions" { (c.conversions) }
                        }
                    }
                }
            }
            @if !beyond.is_empty() {
                p.hint { "Touches recorded at steps the file no longer has: "
                    @for c in &beyond { "step " (c.step + 1) " (" (c.sent) " sent, " (c.pending) " pending) " } }
            }
        }
        section aria-labelledby="file-h" data-testid="process-file" {
            h2 id="file-h" { "The file" }
            (file_section(&on_disk, &process.id, &path))
        }
        (duplicate_help(Some(&process.id)))
    };
    Ok(page(&viewer, &process.name, "Processes", body))
}

/// The process file's text as it is on disk now, and its problems if it has any.
fn file_section(on_disk: &OnDisk, id: &str, path: &str) -> Markup {
    match on_disk {
        OnDisk::Unknown => {
            html! { p.empty { "This server was not started from a project folder; its files are not shown." } }
        }
        OnDisk::Unreadable(why) => {
            html! { p.warn { "The project's files could not be read: " (why) } }
        }
        OnDisk::Read { files, diagnostics } => {
            let problems: Vec<&Diagnostic> = on_disk.problems_in(path).collect();
            let elsewhere = diagnostics.len() - problems.len();
            html! {
                @if problems.is_empty() {
                    p data-testid="check-clean" { code { "tend check" } " finds no problem in " code { (path) } "." }
                } @else {
                    p.warn { code { "tend check" } " finds " (problems.len()) " problem(s) in " code { (path) }
                        "; the engine goes on running the version it loaded until the file is fixed and " code { "tend serve" } " restarts:" }
                    ul data-testid="diagnostics" {
                        @for d in &problems { li data-testid="diagnostic" { code { (d.to_string()) } } }
                    }
                }
                @if elsewhere > 0 {
                    p.hint { (elsewhere) " more problem(s) in other files of the project; " code { "tend check" } " lists them all." }
                }
                @match files.get(id) {
                    Some((_, text)) => pre data-testid="process-source" { code { (text) } },
                    None => p.warn { code { (path) } " is no longer on disk; the engine runs the version it loaded." },
                }
            }
        }
    }
}

/// How to make a new process from an existing one.
fn duplicate_help(id: Option<&str>) -> Markup {
    let from = id.unwrap_or("new-inquiry");
    html! {
        section aria-labelledby="duplicate-h" data-testid="duplicate-help" {
            h2 id="duplicate-h" { "Duplicate a process" }
            ol {
                li { "Copy the file under a new name, which becomes the new process's id: "
                    code { "cp processes/" (from) ".toml processes/" (from) "-spring.toml" } }
                li { "Edit the copy: give it its own " code { "name" } ", and change who it enrolls, its steps and its " code { "max_gap" } "." }
                li { "Run " code { "tend check" } " and fix what it reports (each problem as " code { "path:line:col" } ")." }
                li { "Restart " code { "tend serve" } ": contacts already in the enrolling stage are enrolled at once." }
            }
        }
    }
}

fn enroll_text(process: &Process) -> String {
    match &process.enroll {
        tend_core::process::Enroll::Stage(stage) => format!("stage {stage}"),
        tend_core::process::Enroll::Event(event) => format!("event {event}"),
    }
}

fn exit_text(process: &Process) -> String {
    let mut parts: Vec<String> = process
        .exit
        .stages
        .iter()
        .map(|s| format!("stage {s}"))
        .collect();
    parts.extend(process.exit.events.iter().map(|e| format!("event {e}")));
    if parts.is_empty() {
        "nothing before its last step".into()
    } else {
        parts.join(", ")
    }
}

fn touch_text(channel: &StepChannel) -> String {
    match channel {
        StepChannel::Email { template } => format!("email {template}"),
        StepChannel::Task { title, minutes } => format!("task “{title}” ({minutes} min)"),
        StepChannel::Webhook { url } => format!("webhook {url}"),
    }
}

fn held_text(counts: &StepCounts) -> String {
    if counts.held.is_empty() {
        return "0".into();
    }
    counts
        .held
        .iter()
        .map(|(reason, n)| format!("{n} {reason}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An offer step's answers and the rate the pacer uses now, against its prior.
fn response_text(intent: Intent, counts: &StepCounts, prior: f64) -> String {
    if intent != Intent::Offer {
        return "— (nurture)".into();
    }
    let learned = learned_probability(prior, counts.offers, counts.responded);
    format!(
        "{} of {} answered; {} (prior {})",
        counts.responded,
        counts.offers,
        percent(learned),
        percent(prior)
    )
}

fn percent(share: f64) -> String {
    format!("{}%", num(share * 100.0))
}
