//! Tasks for people: the day's agenda (`GET /api/tasks`), completing or skipping a task,
//! and the same agenda as an RFC 5545 calendar feed (`GET /agenda.ics`).

use crate::AppState;
use crate::body::{COMMAND_BYTES, Limited};
use crate::error::AppError;
use crate::extract::{Path, Query};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt::Write;
use tend_engine::Engine;
use tend_store::{TaskEnd, TaskView};

/// Query string of `GET /api/tasks`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AgendaParams {
    /// The day, `YYYY-MM-DD` in the business's time zone (default: today).
    #[param(value_type = Option<String>, format = Date)]
    date: Option<String>,
}

/// A task as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TaskItem {
    #[serde(flatten)]
    task: TaskView,
    /// Still open and due before the day asked for (or, after completing, before now).
    overdue: bool,
}

/// The answer of `GET /api/tasks`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Agenda {
    /// The day shown.
    #[schema(value_type = String, format = Date)]
    date: Date,
    /// Open tasks due by the day's end and tasks finished that day, by due time.
    tasks: Vec<TaskItem>,
}

/// `GET /api/tasks?date=YYYY-MM-DD`: open tasks due by the end of that day in the
/// business's time zone (earlier ones marked overdue) and tasks finished that day.
#[utoipa::path(
    get,
    path = "/api/tasks",
    tag = "tasks",
    params(AgendaParams),
    responses((status = 200, description = "The day's agenda.", body = Agenda)),
    security(("admin_token" = []))
)]
pub async fn agenda(
    State(state): State<AppState>,
    Query(params): Query<AgendaParams>,
) -> Result<Json<Agenda>, AppError> {
    let engine = state.engine()?;
    let date = match params.date.as_deref().filter(|d| !d.is_empty()) {
        Some(text) => text
            .parse::<Date>()
            .map_err(|_| AppError::invalid("date", "must be a date as YYYY-MM-DD"))?,
        None => today(engine),
    };
    let (from, to) = day_bounds(engine, date)?;
    let tasks = engine.store().tasks(from, to).await?;
    let tasks = tasks.into_iter().map(|t| task_item(t, from)).collect();
    Ok(Json(Agenda { date, tasks }))
}

/// Body of `POST /api/tasks/{id}/complete`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct CompleteBody {
    /// What came of the task, e.g. `replied`; one of `[tasks.outcomes]` when the config
    /// lists them (in any case).
    #[schema(value_type = String, min_length = 1)]
    outcome: Option<Value>,
    /// Free text, at most 10,000 bytes.
    #[schema(value_type = Option<String>, max_length = 10000)]
    note: Option<Value>,
}

/// `POST /api/tasks/{id}/complete` with `{"outcome": "...", "note": "..."}`.
#[utoipa::path(
    post,
    path = "/api/tasks/{id}/complete",
    tag = "tasks",
    params(("id" = i64, Path, description = "The task's id.", example = 1)),
    request_body(content = CompleteBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The task, completed.", body = TaskItem),
        (status = 404, description = "No such task.", body = crate::error::ErrorBody),
        (status = 409, description = "The task is already completed or skipped.", body = crate::error::ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub async fn complete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Limited(body): Limited<COMMAND_BYTES>,
) -> Result<Json<TaskItem>, AppError> {
    let engine = state.engine()?;
    let id = parse_task_id(&id)?;
    let body: CompleteBody = parse_json(&body)?;
    let outcome = match body.outcome {
        Some(Value::String(text)) if !text.trim().is_empty() => text.trim().to_owned(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(AppError::invalid(
                "outcome",
                "required: what came of the task, e.g. \"replied\"",
            ));
        }
        Some(_) => return Err(AppError::invalid("outcome", "must be a string")),
    };
    let note = note_of(body.note)?;
    let task = engine
        .finish_task(id, TaskEnd::Done { outcome, note })
        .await?;
    let now = engine.clock().now();
    Ok(Json(task_item(task, now)))
}

/// Body of `POST /api/tasks/{id}/skip`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SkipBody {
    /// Free text, at most 10,000 bytes.
    #[schema(value_type = Option<String>, max_length = 10000)]
    note: Option<Value>,
}

/// `POST /api/tasks/{id}/skip` with an optional `{"note": "..."}`: the process moves on
/// without the task.
#[utoipa::path(
    post,
    path = "/api/tasks/{id}/skip",
    tag = "tasks",
    params(("id" = i64, Path, description = "The task's id.", example = 1)),
    request_body(content = Option<SkipBody>, description = "Optional; an empty body skips without a note.", content_type = "application/json"),
    responses(
        (status = 200, description = "The task, skipped.", body = TaskItem),
        (status = 404, description = "No such task.", body = crate::error::ErrorBody),
        (status = 409, description = "The task is already completed or skipped.", body = crate::error::ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub async fn skip(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Limited(body): Limited<COMMAND_BYTES>,
) -> Result<Json<TaskItem>, AppError> {
    let engine = state.engine()?;
    let id = parse_task_id(&id)?;
    let note = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        note_of(parse_json::<SkipBody>(&body)?.note)?
    };
    let task = engine.finish_task(id, TaskEnd::Skipped { note }).await?;
    let now = engine.clock().now();
    Ok(Json(task_item(task, now)))
}

/// `GET /agenda.ics?token=…`: every open task as a calendar event at its due time,
/// for calendar apps that subscribe to a URL (they cannot send headers); the token is
/// checked by [`crate::auth::calendar_only`].
pub async fn calendar_feed(State(state): State<AppState>) -> Result<Response, AppError> {
    let engine = state.engine()?;
    let now = engine.clock().now();
    let until = now
        .saturating_add(jiff::SignedDuration::from_hours(24 * 366))
        .unwrap_or(now);
    let tasks = engine.store().tasks(now, until).await?;
    let body = ics(
        &engine.project().config.business.name,
        tasks.iter().filter(|t| t.state == "open"),
        now,
    );
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/calendar; charset=utf-8"),
    );
    Ok(response)
}

fn parse_task_id(text: &str) -> Result<i64, AppError> {
    text.parse::<i64>()
        .map_err(|_| AppError::invalid("id", "must be an integer task id"))
}

fn parse_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, AppError> {
    serde_json::from_slice(body)
        .map_err(|e| AppError::Malformed(format!("body is not a JSON object: {e}")))
}

fn note_of(note: Option<Value>) -> Result<Option<String>, AppError> {
    match note {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.len() > 10_000 => {
            Err(AppError::invalid("note", "must be at most 10,000 bytes"))
        }
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(AppError::invalid("note", "must be a string")),
    }
}

fn today(engine: &Engine) -> Date {
    let tz = engine.project().config.business.timezone.time_zone();
    engine.clock().now().to_zoned_datetime(tz).date()
}

/// The instants a business-local day starts and ends.
fn day_bounds(engine: &Engine, date: Date) -> Result<(Timestamp, Timestamp), AppError> {
    let tz = engine.project().config.business.timezone.time_zone();
    let bad = || AppError::invalid("date", "is out of range");
    let start = date.to_zoned_datetime(tz.clone()).map_err(|_| bad())?;
    let end = date
        .tomorrow()
        .map_err(|_| bad())?
        .to_zoned_datetime(tz)
        .map_err(|_| bad())?;
    Ok((start.timestamp(), end.timestamp()))
}

fn task_item(task: TaskView, day_start: Timestamp) -> TaskItem {
    TaskItem {
        overdue: task.state == "open" && task.due_at < day_start,
        task,
    }
}

/// An RFC 5545 calendar: CRLF line ends, lines folded at 75 octets, text escaped.
fn ics<'a>(name: &str, tasks: impl Iterator<Item = &'a TaskView>, now: Timestamp) -> String {
    let mut out = String::new();
    let mut line = |text: String| fold(&mut out, &text);
    line("BEGIN:VCALENDAR".into());
    line("VERSION:2.0".into());
    line("PRODID:-//Tend//Agenda//EN".into());
    line("CALSCALE:GREGORIAN".into());
    line("METHOD:PUBLISH".into());
    line(format!(
        "X-WR-CALNAME:{}",
        escape(&format!("{name} — Tend agenda"))
    ));
    let stamp = ics_time(now);
    for task in tasks {
        let who = match (&task.contact_name, &task.contact_email) {
            (Some(name), Some(email)) => format!("{name} <{email}>"),
            (Some(name), None) => name.clone(),
            (None, Some(email)) => email.clone(),
            (None, None) => format!("contact {}", task.contact_id.0),
        };
        line("BEGIN:VEVENT".into());
        line(format!("UID:tend-task-{}@tend", task.id.0));
        line(format!("DTSTAMP:{stamp}"));
        line(format!("DTSTART:{}", ics_time(task.due_at)));
        line(format!("DURATION:PT{}M", task.minutes.max(1)));
        line(format!("SUMMARY:{}", escape(&task.title)));
        line(format!(
            "DESCRIPTION:{}",
            escape(&format!(
                "Contact: {who}\nProcess: {} (step {})\nTask {}",
                task.process,
                task.step + 1,
                task.id.0
            ))
        ));
        line("STATUS:CONFIRMED".into());
        line("TRANSP:OPAQUE".into());
        line("END:VEVENT".into());
    }
    line("END:VCALENDAR".into());
    out
}

fn ics_time(at: Timestamp) -> String {
    at.strftime("%Y%m%dT%H%M%SZ").to_string()
}

/// TEXT value escaping (RFC 5545 §3.3.11).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Appends a content line folded at 75 octets, never inside a UTF-8 sequence (§3.1).
fn fold(out: &mut String, line: &str) {
    let mut width = 0;
    for c in line.chars() {
        let len = c.len_utf8();
        if width + len > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += len;
    }
    let _ = write!(out, "\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_fold_at_75_octets_without_splitting_characters() {
        let mut out = String::new();
        let text = format!("SUMMARY:{}", "è".repeat(60));
        fold(&mut out, &text);
        for line in out.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(line.len() <= 75, "{} octets: {line}", line.len());
        }
        let unfolded = out.replace("\r\n ", "");
        assert_eq!(unfolded.trim_end(), text);
    }

    #[test]
    fn text_values_escape_separators() {
        assert_eq!(escape("a,b;c\\d\ne"), "a\\,b\\;c\\\\d\\ne");
    }
}
