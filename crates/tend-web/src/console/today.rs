//! Today (`GET /today`): the agenda, the pace, the neglect list and the next 7 days;
//! completing and skipping tasks; the touches held back for one reason
//! (`GET /held/{reason}`).

use super::layout::{PageError, csrf_field, num, page, redirect, when, when_opt, zone};
use super::next_days;
use super::session::{FormFields, Viewer};
use crate::AppState;
use axum::extract::{Path, State};
use axum::response::Response;
use jiff::{SignedDuration, Timestamp};
use maud::{Markup, html};
use tend_engine::{Engine, PaceReport, reports};
use tend_store::{PlannedTouch, TaskEnd, TaskView};

/// Most touches the next-7-days summary reads.
const PLANNED_LIMIT: u32 = 20_000;
/// Most upcoming tasks listed with their titles.
const UPCOMING_TASKS: u32 = 50;

/// `GET /today`.
pub async fn today(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    let engine = state.engine().map_err(|_| PageError::NotFound("engine"))?;
    let tz = zone(&state);
    let now = engine.clock().now();
    let day_start = now
        .to_zoned_datetime(tz.clone())
        .start_of_day()
        .map_or(now, |z| z.timestamp());
    let day_end = add_days(day_start, 1);
    let week_end = add_days(day_start, 8);
    let store = engine.store();
    let tasks = store.tasks(day_start, week_end).await?;
    // From the start of time: touches due earlier that still wait count on today.
    let day_ends = next_days::day_ends(day_start, &tz);
    let planned = store
        .planned_load(
            Timestamp::UNIX_EPOCH,
            day_ends[next_days::DAYS - 1],
            PLANNED_LIMIT,
        )
        .await?;
    let pace = engine.pace().await?;
    let neglect = reports::neglect(store.as_ref(), engine.project(), now, 10).await?;

    let open: Vec<&TaskView> = tasks.iter().filter(|t| t.state == "open").collect();
    let overdue: Vec<&TaskView> = open.iter().copied().filter(|t| t.due_at < now).collect();
    let due_today: Vec<&TaskView> = open
        .iter()
        .copied()
        .filter(|t| t.due_at >= now && t.due_at < day_end)
        .collect();
    let later_open: Vec<&TaskView> = open
        .iter()
        .copied()
        .filter(|t| t.due_at >= day_end)
        .collect();
    let upcoming = upcoming_tasks(engine, now, day_ends[next_days::DAYS - 1]).await?;
    let outcomes: Vec<&String> = engine.project().config.tasks.outcomes.keys().collect();

    let body = html! {
        h1 { "Today" }
        section aria-labelledby="agenda-h" data-testid="agenda" {
            h2 id="agenda-h" { "Agenda" }
            (task_list("Overdue", "overdue", &overdue, &viewer, &outcomes, &tz))
            (task_list("Today", "today", &due_today, &viewer, &outcomes, &tz))
            (task_list("Next 7 days", "later", &later_open, &viewer, &outcomes, &tz))
            @if !upcoming.is_empty() {
                h3 { "Planned tasks, next 7 days" }
                ul.tasks data-testid="tasks-planned" {
                    @for (touch, title, minutes) in &upcoming {
                        li data-testid="task-planned" {
                            span.due { (when(touch.due_at, &tz)) }
                            " " strong { (title) } " · " (minutes) " min · "
                            a href={ "/contacts/" (touch.contact_id.0) } { (contact_label(touch)) }
                        }
                    }
                }
            }
        }
        (pace_section(&pace))
        section aria-labelledby="neglect-h" data-testid="neglect" {
            h2 id="neglect-h" { "Closest to neglect" }
            p { (neglect.past_deadline) " contacts past their process's " code { "max_gap" } "." }
            @if neglect.contacts.is_empty() {
                p.empty { "Nobody enrolled." }
            } @else {
                table {
                    thead { tr { th { "Contact" } th { "Process" } th { "Last touch" } th { "Deadline" } } }
                    tbody {
                        @for entry in &neglect.contacts {
                            tr.past[entry.hours_left < 0.0] data-testid="neglect-row" {
                                td { a href={ "/contacts/" (entry.row.contact_id.0) } {
                                    (entry.row.name.as_deref().or(entry.row.email.as_deref()).unwrap_or("(no name)")) } }
                                td { (entry.process) }
                                td { (when_opt(entry.row.last_touch_at, &tz)) }
                                td { (when(entry.row.deadline, &tz)) " (" (hours(entry.hours_left)) ")" }
                            }
                        }
                    }
                }
            }
            (deficit(&pace))
        }
        (next_days::section(engine, &planned, &pace.budgets, day_start, &day_ends, planned.len() >= PLANNED_LIMIT as usize, &tz))
    };
    Ok(page(&viewer, "Today", "Today", body))
}

fn add_days(at: Timestamp, days: i64) -> Timestamp {
    at.saturating_add(SignedDuration::from_hours(24 * days))
        .unwrap_or(at)
}

fn hours(left: f64) -> String {
    if left < 0.0 {
        format!("{} h late", num(-left))
    } else {
        format!("in {} h", num(left))
    }
}

/// The first pending tasks due from `now` until `until`, with their rendered titles.
async fn upcoming_tasks(
    engine: &Engine,
    now: Timestamp,
    until: Timestamp,
) -> Result<Vec<(PlannedTouch, String, u32)>, PageError> {
    let planned = engine
        .store()
        .planned_tasks(now, until, UPCOMING_TASKS)
        .await?;
    let mut out = Vec::new();
    for touch in planned {
        let Some(contact) = engine.store().contact(touch.contact_id).await? else {
            continue;
        };
        let (title, minutes) = engine
            .task_title_for(touch.process_id, touch.step, &contact)
            .unwrap_or_else(|| ("(task)".into(), 0));
        out.push((touch, title, minutes));
    }
    Ok(out)
}

fn contact_label(touch: &PlannedTouch) -> &str {
    touch
        .contact_name
        .as_deref()
        .or(touch.contact_email.as_deref())
        .unwrap_or("(no name)")
}

fn task_list(
    heading: &str,
    id: &str,
    tasks: &[&TaskView],
    viewer: &Viewer,
    outcomes: &[&String],
    tz: &jiff::tz::TimeZone,
) -> Markup {
    html! {
        h3 { (heading) " (" (tasks.len()) ")" }
        @if tasks.is_empty() {
            p.empty data-testid={ "tasks-" (id) "-empty" } { "Nothing." }
        } @else {
            ul.tasks data-testid={ "tasks-" (id) } {
                @for task in tasks {
                    li.task id={ "task-" (task.id.0) } data-testid="task" {
                        div {
                            span.due { (when(task.due_at, tz)) }
                            " " strong data-testid="task-title" { (task.title) } " · " (task.minutes) " min · "
                            a href={ "/contacts/" (task.contact_id.0) } {
                                (task.contact_name.as_deref().or(task.contact_email.as_deref()).unwrap_or("(no name)"))
                            }
                        }
                        form.actions method="post" action={ "/tasks/" (task.id.0) "/complete" } {
                            (csrf_field(viewer))
                            @if outcomes.is_empty() {
                                label for={ "outcome-" (task.id.0) } { "Outcome" }
                                input id={ "outcome-" (task.id.0) } name="outcome" required;
                                button type="submit" data-testid="complete" { "Complete" }
                            } @else {
                                @for outcome in outcomes {
                                    button type="submit" name="outcome" value=(outcome)
                                        data-testid={ "complete-" (outcome) } { (outcome) }
                                }
                            }
                        }
                        form.actions method="post" action={ "/tasks/" (task.id.0) "/skip" } {
                            (csrf_field(viewer))
                            button.secondary type="submit" data-testid="skip" { "Skip" }
                        }
                    }
                }
            }
        }
    }
}

fn pace_section(pace: &PaceReport) -> Markup {
    let c = &pace.capacity;
    let used = c.open_work + c.expected_in_flight;
    html! {
        section aria-labelledby="pace-h" data-testid="pace" {
            h2 id="pace-h" { "Pace" }
            h3 { "Capacity" }
            p data-testid="capacity" {
                (num(c.open_work)) " open + " (num(c.expected_in_flight)) " expected from offers = "
                strong { (num(used)) } " of " (num(c.limit))
                " (" (num(c.per_week)) "/week × " (num(c.target_utilization * 100.0)) "% over " (c.horizon) ")"
            }
            (meter(used, c.limit, "capacity"))
            h3 { "Budgets" }
            @if pace.budgets.is_empty() {
                p.empty { "No budget is limited." }
            } @else {
                table data-testid="budgets" {
                    thead { tr { th { "Budget" } th { "Used" } th { "Accrued" } th { "Limit" } } }
                    tbody {
                        @for b in &pace.budgets {
                            tr { td { (b.resource.to_string()) " per " (b.period.to_string()) }
                                 td { (num(b.used)) } td { (num(b.accrued)) } td { (num(b.limit)) } }
                        }
                    }
                }
            }
            h3 { "Held back now" }
            ul.held data-testid="held" {
                @for (reason, count) in &pace.held {
                    li { a href={ "/held/" (reason) } data-testid={ "held-" (reason) } { (reason) ": " (count) } }
                }
            }
        }
    }
}

fn meter(value: f64, limit: f64, label: &str) -> Markup {
    let ratio = if limit > 0.0 {
        (value / limit).clamp(0.0, 1.0)
    } else {
        0.0
    };
    html! {
        meter aria-label=(label) min="0" max=(num(limit.max(0.0))) value=(num(value)) { (num(ratio * 100.0)) "%" }
    }
}

fn deficit(pace: &PaceReport) -> Markup {
    html! {
        div data-testid="deficit" {
            @if pace.deficit.covered {
                p { "The budgets keep every enrolled contact within its " code { "max_gap" } "." }
            } @else {
                p.warn { "The budgets cannot keep every contact within its " code { "max_gap" } ":" }
                ul { @for message in &pace.deficit.messages { li { (message) } } }
            }
        }
    }
}

/// `POST /tasks/{id}/complete` with `outcome` (and an optional `note`).
pub async fn complete(
    State(state): State<AppState>,
    _viewer: Viewer,
    Path(id): Path<i64>,
    form: FormFields,
) -> Result<Response, PageError> {
    let engine = state.engine().map_err(|_| PageError::NotFound("engine"))?;
    let outcome = form
        .get("outcome")
        .ok_or_else(|| PageError::BadRequest("outcome: required".into()))?
        .to_owned();
    let note = form.get("note").map(str::to_owned);
    engine
        .finish_task(id, TaskEnd::Done { outcome, note })
        .await?;
    Ok(redirect("/today"))
}

/// `POST /tasks/{id}/skip`.
pub async fn skip(
    State(state): State<AppState>,
    _viewer: Viewer,
    Path(id): Path<i64>,
    form: FormFields,
) -> Result<Response, PageError> {
    let engine = state.engine().map_err(|_| PageError::NotFound("engine"))?;
    let note = form.get("note").map(str::to_owned);
    engine.finish_task(id, TaskEnd::Skipped { note }).await?;
    Ok(redirect("/today"))
}

/// `GET /held/{reason}`: the touches held back for that reason, longest waiting first.
pub async fn held(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(reason): Path<String>,
) -> Result<Response, PageError> {
    let engine = state.engine().map_err(|_| PageError::NotFound("engine"))?;
    let tz = zone(&state);
    let touches = engine.store().held_touches(&reason, 200).await?;
    let body = html! {
        h1 { "Held back: " (reason) }
        p { a href="/today" { "← Today" } }
        @if touches.is_empty() {
            p.empty data-testid="held-empty" { "Nothing is held back for this reason." }
        } @else {
            table data-testid="held-list" {
                thead { tr { th { "Contact" } th { "Process" } th { "Channel" } th { "Due" } th { "Until" } } }
                tbody {
                    @for t in &touches {
                        tr { td { a href={ "/contacts/" (t.contact_id.0) } { (contact_label(t)) } }
                             td { (t.process) " step " (t.step + 1) } td { (t.channel) " (" (t.intent) ")" }
                             td { (when(t.due_at, &tz)) } td { (when_opt(t.until, &tz)) } }
                    }
                }
            }
        }
    };
    Ok(page(&viewer, "Held back", "Today", body))
}
