//! One contact (`GET /contacts/{id}`): profile and attributes, enrollments, one
//! timeline of events, stage changes, touches, deliveries and console actions; and the
//! actions on it: change stage, pause or resume an enrollment, unsubscribe, erase.

use super::layout::{PageError, csrf_field, page, redirect, when, when_opt, zone};
use super::session::{FormFields, Viewer};
use crate::AppState;
use axum::extract::{Path, State};
use axum::response::Response;
use jiff::Timestamp;
use maud::{Markup, html};
use tend_core::ContactId;
use tend_store::{ConsoleAction, TimelineEntry};

/// Most touches a contact's timeline shows.
const TOUCHES_SHOWN: u32 = 200;
/// Most timeline lines the page shows, newest first: a contact with thousands of
/// events still gets a page that is quick to render and under 100 KB.
const LINES_SHOWN: usize = 300;

/// One line of the merged timeline.
struct Line {
    at: Timestamp,
    kind: &'static str,
    text: String,
}

/// `GET /contacts/{id}`.
pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    let engine = state.engine().map_err(|_| PageError::NotFound("engine"))?;
    let store = engine.store();
    let id = ContactId(id);
    let contact = store
        .contact(id)
        .await?
        .ok_or(PageError::NotFound("contact"))?;
    let enrollments = store.enrollments_of(id).await?;
    let paused = store.paused_enrollments(id).await?;
    let touches = store.touches_of(id, TOUCHES_SHOWN).await?;
    let mut lines = timeline(store.timeline(id).await?, store.console_actions(id).await?);
    for t in &touches {
        let what = format!("{} {} (step {})", t.channel, t.process, t.step + 1);
        let text = match t.state.as_str() {
            "pending" => match (&t.reason, t.until) {
                (Some(reason), Some(until)) => {
                    format!(
                        "{what}: held back ({reason}) until {}",
                        when(until, &zone(&state))
                    )
                }
                (Some(reason), None) => format!("{what}: held back ({reason})"),
                _ => format!("{what}: planned"),
            },
            "queued" if t.attempts > 0 => format!(
                "{what}: retrying after {} attempts{}",
                t.attempts,
                t.last_error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
            "failed" => format!(
                "{what}: failed{}",
                t.last_error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
            "done" => format!(
                "{what}: done ({})",
                t.outcome.as_deref().unwrap_or("no outcome")
            ),
            state => format!(
                "{what}: {state}{}",
                t.reason
                    .as_ref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ),
        };
        let at = t
            .sent_at
            .or(t.completed_at)
            .or(t.decided_at)
            .unwrap_or(t.due_at);
        lines.push(Line {
            at,
            kind: "touch",
            text,
        });
    }
    lines.sort_by_key(|l| std::cmp::Reverse(l.at));
    let older = lines.len().saturating_sub(LINES_SHOWN);
    lines.truncate(LINES_SHOWN);
    let tz = zone(&state);
    let stages = &engine.project().config.stages.order;
    let email = contact.email.clone().unwrap_or_default();
    let body = html! {
        h1 data-testid="contact-name" { (contact.name.as_deref().unwrap_or("(no name)")) }
        p.email data-testid="contact-email" { (email) }
        dl.profile data-testid="profile" {
            dt { "Stage" } dd data-testid="contact-stage" { (contact.stage.as_str()) }
            dt { "Time zone" } dd { (contact.timezone.as_deref().unwrap_or("—")) }
            dt { "First seen" } dd { (when(contact.created_at, &tz)) }
            dt { "Last touch" } dd { (when_opt(contact.last_touch_at, &tz)) }
            dt { "Consent" } dd data-testid="contact-consent" {
                @match contact.suppressed_at {
                    Some(at) => { "suppressed since " (when(at, &tz)) }
                    None => { "subscribed" }
                }
            }
            @for (key, value) in &contact.attributes {
                dt { (key) } dd { (value.as_str().map_or_else(|| value.to_string(), str::to_owned)) }
            }
        }
        section aria-labelledby="actions-h" {
            h2 id="actions-h" { "Actions" }
            form.inline method="post" action={ "/contacts/" (id.0) "/stage" } data-testid="stage-form" {
                (csrf_field(&viewer))
                label for="new-stage" { "Stage" }
                select id="new-stage" name="stage" {
                    @for s in stages {
                        option value=(s.as_str()) selected[*s == contact.stage] { (s.as_str()) }
                    }
                }
                button type="submit" id="change-stage" data-testid="change-stage" { "Change stage" }
            }
            @if contact.suppressed_at.is_none() {
                form.inline method="post" action={ "/contacts/" (id.0) "/unsubscribe" } {
                    (csrf_field(&viewer))
                    button type="submit" id="unsubscribe" data-testid="unsubscribe" { "Unsubscribe" }
                }
            }
            @if viewer.is_owner() {
                (erase_form(&viewer, id, &email))
            }
        }
        section aria-labelledby="enrollments-h" data-testid="enrollments" {
            h2 id="enrollments-h" { "Enrollments" }
            @if enrollments.is_empty() { p.empty { "Not enrolled in any process." } }
            ul {
                @for e in &enrollments {
                    li data-testid="enrollment" {
                        strong { (e.process) } " · " (e.state) " · step " (e.step + 1)
                        " · " (e.touches) " touches · enrolled " (when(e.enrolled_at, &tz))
                        @if let Some(reason) = &e.end_reason { " · " (reason) }
                        @if e.state == "active" {
                            @let is_paused = paused.contains(&e.id);
                            @let verb = if is_paused { "resume" } else { "pause" };
                            @if is_paused { " · " span.badge { "paused" } }
                            form.inline method="post" action={ "/contacts/" (id.0) "/enrollments/" (e.id) "/" (verb) } {
                                (csrf_field(&viewer))
                                button.secondary type="submit" data-testid={ (verb) "-" (e.process) } {
                                    @if is_paused { "Resume" } @else { "Pause" }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="timeline-h" {
            h2 id="timeline-h" { "Timeline" }
            ol.timeline data-testid="timeline" {
                @for line in &lines {
                    li class=(line.kind) data-testid={ "timeline-" (line.kind) } {
                        span.due { (when(line.at, &tz)) } " " (line.text)
                    }
                }
            }
            @if older > 0 {
                p.hint data-testid="timeline-older" {
                    (older) " older entries are not shown; " code { "GET /api/contacts/" (id.0) } " has them all."
                }
            }
        }
    };
    Ok(page(&viewer, "Contact", "Contacts", body))
}

fn erase_form(viewer: &Viewer, id: ContactId, email: &str) -> Markup {
    html! {
        form.danger method="post" action={ "/contacts/" (id.0) "/erase" } data-testid="erase-form" {
            (csrf_field(viewer))
            label for="confirm" { "To erase every datum of this contact, type its address" }
            input id="confirm" name="confirm" autocomplete="off" placeholder=(email);
            button.danger type="submit" id="erase" data-testid="erase" { "Erase" }
        }
    }
}

fn timeline(entries: Vec<TimelineEntry>, actions: Vec<ConsoleAction>) -> Vec<Line> {
    let mut lines: Vec<Line> = entries
        .into_iter()
        .map(|entry| match entry {
            TimelineEntry::Event { name, at, .. } => Line {
                at,
                kind: "event",
                text: format!("event: {name}"),
            },
            TimelineEntry::StageChange {
                from,
                to,
                reason,
                at,
            } => Line {
                at,
                kind: "stage",
                text: match from {
                    Some(from) => format!("stage {from} → {to} ({reason})"),
                    None => format!("first seen as {to} ({reason})"),
                },
            },
        })
        .collect();
    lines.extend(actions.into_iter().map(|a| Line {
        at: a.at,
        kind: "action",
        text: format!("{} by {}", a.detail, a.by),
    }));
    lines
}

/// `POST /contacts/{id}/stage` with `stage`.
pub async fn set_stage(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
    form: FormFields,
) -> Result<Response, PageError> {
    let engine = state.engine().map_err(|_| PageError::NotFound("engine"))?;
    let name = form
        .get("stage")
        .ok_or_else(|| PageError::BadRequest("stage: required".into()))?;
    let stage = engine
        .project()
        .config
        .stage(name)
        .cloned()
        .ok_or_else(|| PageError::BadRequest(format!("stage: `{name}` is not a stage")))?;
    let id = ContactId(id);
    exists(&state, id).await?;
    let now = engine.clock().now();
    if engine
        .store()
        .set_contact_stage(id, &stage, &viewer.user.email, now)
        .await?
    {
        // The engine enrolls or exits the contact on its next read; now, not later.
        engine.wake();
    }
    Ok(redirect(&format!("/contacts/{}", id.0)))
}

/// `POST /contacts/{id}/enrollments/{enrollment}/pause` and `…/resume`.
pub async fn pause(
    state: State<AppState>,
    viewer: Viewer,
    Path((id, enrollment)): Path<(i64, i64)>,
) -> Result<Response, PageError> {
    set_paused(state, viewer, id, enrollment, true).await
}

/// `POST /contacts/{id}/enrollments/{enrollment}/resume`.
pub async fn resume(
    state: State<AppState>,
    viewer: Viewer,
    Path((id, enrollment)): Path<(i64, i64)>,
) -> Result<Response, PageError> {
    set_paused(state, viewer, id, enrollment, false).await
}

async fn set_paused(
    State(state): State<AppState>,
    viewer: Viewer,
    id: i64,
    enrollment: i64,
    paused: bool,
) -> Result<Response, PageError> {
    let engine = state.engine().map_err(|_| PageError::NotFound("engine"))?;
    let id = ContactId(id);
    exists(&state, id).await?;
    let now = engine.clock().now();
    if !engine
        .store()
        .set_enrollment_paused(id, enrollment, paused, &viewer.user.email, now)
        .await?
    {
        return Err(PageError::BadRequest(
            "that enrollment is not active, or already so".into(),
        ));
    }
    engine.wake();
    Ok(redirect(&format!("/contacts/{}", id.0)))
}

/// `POST /contacts/{id}/unsubscribe`: suppressed, never sent anything again; the record
/// and its history stay.
pub async fn unsubscribe(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    let engine = state.engine().map_err(|_| PageError::NotFound("engine"))?;
    let id = ContactId(id);
    exists(&state, id).await?;
    if engine.unsubscribe(id).await? {
        engine
            .store()
            .record_console_action(&ConsoleAction {
                contact_id: id,
                by: viewer.user.email.clone(),
                action: "unsubscribe".into(),
                detail: "unsubscribed".into(),
                at: engine.clock().now(),
            })
            .await?;
    }
    Ok(redirect(&format!("/contacts/{}", id.0)))
}

/// `POST /contacts/{id}/erase` with `confirm` = the contact's address; owners only.
pub async fn erase(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
    form: FormFields,
) -> Result<Response, PageError> {
    viewer.require_owner()?;
    let engine = state.engine().map_err(|_| PageError::NotFound("engine"))?;
    let id = ContactId(id);
    let contact = engine
        .store()
        .contact(id)
        .await?
        .ok_or(PageError::NotFound("contact"))?;
    let expected = contact.email.unwrap_or_else(|| id.0.to_string());
    let typed = form.get("confirm").unwrap_or("");
    if !typed.eq_ignore_ascii_case(&expected) {
        return Err(PageError::BadRequest(
            "confirm: type the contact's address exactly to erase it".into(),
        ));
    }
    engine.erase_contact(id).await?;
    Ok(redirect("/contacts"))
}

async fn exists(state: &AppState, id: ContactId) -> Result<(), PageError> {
    state
        .store
        .contact(id)
        .await?
        .map(|_| ())
        .ok_or(PageError::NotFound("contact"))
}
