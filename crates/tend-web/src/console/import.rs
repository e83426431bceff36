//! Import (owners): upload a contact list as CSV, see what importing it would do
//! (new, updated, unchanged and rejected rows, with `LINE: reason`), choose how the
//! imported contacts enroll, confirm, and see what was written.
//!
//! The file is read by the same [`RowReader`] as `tend import contacts`, and the
//! preview is [`Store::preview_import`]: the import's own statements, rolled back. The
//! upload is kept in the database between preview and confirmation ([`tend_store::drafts`], so
//! any node may take the confirmation), and
//! confirming first previews again: if the contacts changed meanwhile so that the
//! import would do something else than the page showed, nothing is written and the new
//! preview is shown instead. The rows are written in one transaction, so a failure
//! leaves no half of the list behind.
//!
//! [`Store::preview_import`]: tend_store::Store::preview_import

use super::layout::{PageError, csrf_field, page, redirect, when, zone};
use super::multipart::{self, Part};
use super::session::random_hex;
use super::session::{FormFields, Viewer};
use crate::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use maud::{Markup, html};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use tend_core::check::Project;
use tend_core::process::Enroll;
use tend_store::drafts::DRAFT_LIFETIME;
use tend_store::import_rows::RowReader;
use tend_store::{DraftImported, EnrollChoice, ImportDraft, ImportOutcome, ImportRow, RowEffect};

/// Where the upload form posts.
pub const UPLOAD_PATH: &str = "/import";
/// The largest file the page takes; longer lists go through `tend import contacts`.
pub const UPLOAD_BYTES: usize = 8 * 1024 * 1024;
/// Room for the form's other fields and the multipart framing around the file.
const FRAMING_BYTES: usize = 16 * 1024;
/// How much of a too-large upload is read (and dropped) so the browser, still
/// sending, receives the page saying why instead of a reset connection.
const DRAIN_BYTES: usize = 64 * 1024 * 1024;
/// Rows of each kind listed on the preview (all are counted); keeps the page small.
const SHOWN_ROWS: usize = 50;
/// Rejected rows listed on the preview; all of them are in `rejected.txt`.
const SHOWN_REJECTED: usize = 100;
/// The spread the form offers first, in days.
const DEFAULT_SPREAD_DAYS: u32 = 14;

/// The file of an upload, read by the session guard with the form's other fields.
#[derive(Debug, Clone)]
pub struct UploadedFile(pub Option<Part>);

impl FromRequestParts<AppState> for UploadedFile {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, PageError> {
        Ok(parts
            .extensions
            .get::<UploadedFile>()
            .cloned()
            .unwrap_or(UploadedFile(None)))
    }
}

/// Whether the guard should read this POST as an upload rather than a small form.
pub fn is_upload(parts: &Parts) -> bool {
    parts.uri.path() == UPLOAD_PATH
        && content_type(&parts.headers).is_some_and(|t| multipart::boundary(t).is_some())
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok())
}

/// Reads an upload's body (at most [`UPLOAD_BYTES`] of file): its text fields, for
/// the CSRF check, and its file.
pub async fn read_upload(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(FormFields, UploadedFile), PageError> {
    let limit = UPLOAD_BYTES + FRAMING_BYTES;
    let bytes = match crate::body::read(headers, body, limit, state.limits.body_timeout).await {
        Ok(bytes) => bytes,
        Err(crate::AppError::TooLarge { .. }) => return Err(too_large()),
        Err(err) => return Err(PageError::BadRequest(format!("file: {err}"))),
    };
    let content_type = content_type(headers).unwrap_or_default();
    let parts = multipart::parse(content_type, &bytes)
        .map_err(|e| PageError::BadRequest(format!("file: {e}")))?;
    let mut fields = Vec::new();
    let mut file = None;
    for part in parts {
        if part.file_name.is_some() || part.name == "file" {
            file = Some(part);
        } else {
            let value = String::from_utf8(part.data.to_vec())
                .map_err(|_| PageError::BadRequest(format!("{}: not UTF-8 text", part.name)))?;
            fields.push((part.name, value));
        }
    }
    Ok((FormFields(fields), UploadedFile(file)))
}

fn too_large() -> PageError {
    PageError::TooLarge(format!(
        "file: larger than {} MiB; split the list, or import it on the server with `tend import contacts FILE.csv`",
        UPLOAD_BYTES / 1024 / 1024
    ))
}

/// The answer to an upload announced (or found) larger than the limit: the rest of
/// the body is read and dropped, up to [`DRAIN_BYTES`] and the body timeout, so a
/// browser gets to read the page instead of a reset connection.
pub async fn refuse_too_large(state: &AppState, body: Body) -> Response {
    let draining = async {
        let mut body = body;
        let mut read = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            read += frame.data_ref().map_or(0, |d| d.len());
            if read > DRAIN_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(state.limits.body_timeout, draining).await;
    too_large().into_response()
}

/// Whether the request says its body is over the upload limit.
pub fn announced_too_large(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > (UPLOAD_BYTES + FRAMING_BYTES) as u64)
}

/// `GET /import`: the upload form.
pub async fn form(viewer: Viewer) -> Result<Response, PageError> {
    viewer.require_owner()?;
    Ok(page(&viewer, "Import", "Import", upload_form(&viewer)))
}

fn upload_form(viewer: &Viewer) -> Markup {
    html! {
        h1 { "Import contacts" }
        p {
            "A CSV file with a header row: " code { "email" } " (required), "
            code { "name" } ", " code { "stage" } ", " code { "timezone" }
            "; any other column becomes an attribute. Nothing is written until you have seen what the import would do and confirmed it."
        }
        form method="post" action=(UPLOAD_PATH) enctype="multipart/form-data" data-testid="upload-form" {
            (csrf_field(viewer))
            label for="file" { "CSV file (at most " (UPLOAD_BYTES / 1024 / 1024) " MiB)" }
            input type="file" id="file" name="file" accept=".csv,text/csv" required;
            button type="submit" id="upload" data-testid="upload" { "Preview the import" }
        }
        p.hint { "Longer lists: " code { "tend import contacts FILE.csv --enroll now|none|spread:14d" } " on the server." }
    }
}

/// `POST /import` (multipart: `csrf`, `file`): keeps the file and shows its preview.
pub async fn upload(
    State(state): State<AppState>,
    viewer: Viewer,
    UploadedFile(file): UploadedFile,
) -> Result<Response, PageError> {
    viewer.require_owner()?;
    let engine = state.engine().map_err(|_| PageError::NotFound("engine"))?;
    let file = file
        .filter(|f| !f.data.is_empty())
        .ok_or_else(|| PageError::BadRequest("file: choose a CSV file to upload".into()))?;
    let file_name = file
        .file_name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "upload.csv".into());
    if let Some(why) = not_text(&file.data) {
        return Err(PageError::UnsupportedType(format!(
            "file: `{file_name}` is not a CSV file ({why}); save the sheet as CSV (UTF-8) and upload that"
        )));
    }
    // The header is checked now, so a file that cannot be read never becomes a draft.
    if let Err(reason) = RowReader::new(&file.data[..]) {
        return Err(PageError::BadRequest(format!("file: line 1: {reason}")));
    }
    let now = engine.clock().now();
    let draft = ImportDraft {
        id: random_hex(),
        user_id: viewer.user.id,
        file_name,
        bytes: file.data.to_vec(),
        uploaded_at: now,
        imported: None,
    };
    state.store.put_import_draft(&draft, now).await?;
    Ok(redirect(&format!("/import/{}", draft.id)))
}

/// Why bytes are not a text file, if they are not: spreadsheets and other binaries
/// hold NUL bytes or are not UTF-8.
fn not_text(bytes: &[u8]) -> Option<&'static str> {
    if memchr::memchr(0, bytes).is_some() {
        Some("it holds binary data")
    } else if std::str::from_utf8(bytes).is_err() {
        Some("it is not UTF-8 text")
    } else {
        None
    }
}

/// The rows of a file: the good ones with their lines, and the rejected ones.
struct Reading {
    good: Vec<ImportRow>,
    lines: Vec<u64>,
    rejected: Vec<(u64, String)>,
}

/// Reads every row as `tend import contacts` does, off the async threads.
async fn read_rows(project: Arc<Project>, bytes: Bytes) -> Result<Reading, PageError> {
    tokio::task::spawn_blocking(move || {
        let mut rows = RowReader::new(&bytes[..])
            .map_err(|reason| PageError::BadRequest(format!("file: line 1: {reason}")))?;
        let mut reading = Reading {
            good: Vec::new(),
            lines: Vec::new(),
            rejected: Vec::new(),
        };
        while let Some((line, row)) = rows.next_row(&project.config) {
            match row {
                Ok(row) => {
                    reading.good.push(row);
                    reading.lines.push(line);
                }
                Err(reason) => reading.rejected.push((line, reason)),
            }
        }
        Ok(reading)
    })
    .await
    .map_err(|e| PageError::Internal(format!("reading an upload: {e}")))?
}

/// What importing the draft would do now.
struct Preview {
    reading: Reading,
    outcome: ImportOutcome,
}

impl Preview {
    /// A short digest of what the import would do, row by row: the confirmation
    /// carries it, so a changed outcome is caught before anything is written.
    fn fingerprint(&self) -> String {
        let mut hash = Sha256::new();
        for effect in &self.outcome.effects {
            hash.update([*effect as u8]);
        }
        for change in &self.outcome.stage_changes {
            hash.update(change.from.as_ref().map_or("", |s| s.as_str()));
            hash.update([0]);
            hash.update(change.to.as_str());
            hash.update([0]);
        }
        hash.finalize()[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

async fn preview(state: &AppState, draft: &ImportDraft) -> Result<Preview, PageError> {
    let engine = state.engine().map_err(|_| PageError::NotFound("engine"))?;
    let project = Arc::clone(engine.project());
    let reading = read_rows(Arc::clone(&project), Bytes::from(draft.bytes.clone())).await?;
    let outcome = state
        .store
        .preview_import(
            &reading.good,
            project.config.first_stage(),
            engine.clock().now(),
        )
        .await?;
    Ok(Preview { reading, outcome })
}

fn gone() -> PageError {
    PageError::NotFound("upload (uploads are kept 30 minutes); upload the file again")
}

/// `GET /import/{id}`: the preview of an upload, or what its import wrote.
pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    viewer.require_owner()?;
    let engine = state.engine().map_err(|_| PageError::NotFound("engine"))?;
    let draft = state
        .store
        .import_draft(&id, viewer.user.id, engine.clock().now())
        .await?
        .ok_or_else(gone)?;
    if let Some(imported) = &draft.imported {
        return Ok(page(
            &viewer,
            "Import",
            "Import",
            result(&state, &draft, imported),
        ));
    }
    let preview = preview(&state, &draft).await?;
    Ok(render_preview(&state, &viewer, &id, &draft, &preview, None))
}

/// `GET /import/{id}/rejected.txt`: every rejected row, `FILE:LINE: reason`.
pub async fn rejected(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    viewer.require_owner()?;
    let engine = state.engine().map_err(|_| PageError::NotFound("engine"))?;
    let draft = state
        .store
        .import_draft(&id, viewer.user.id, engine.clock().now())
        .await?
        .filter(|d| d.imported.is_none())
        .ok_or_else(gone)?;
    let reading = read_rows(Arc::clone(engine.project()), Bytes::from(draft.bytes)).await?;
    let text: String = reading
        .rejected
        .iter()
        .map(|(line, reason)| format!("{}:{line}: {reason}\n", draft.file_name))
        .collect();
    let mut response = text.into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}

/// `POST /import/{id}/confirm` with `enroll` (`now`, `spread` with `spread_days`, or
/// `none`) and `expect`, the preview's fingerprint.
pub async fn confirm(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    form: FormFields,
) -> Result<Response, PageError> {
    viewer.require_owner()?;
    let engine = state.engine().map_err(|_| PageError::NotFound("engine"))?;
    let enroll = enroll_choice(&form)?;
    let expected = form
        .get("expect")
        .ok_or_else(|| PageError::BadRequest("expect: required (reload the preview)".into()))?
        .to_owned();
    let now = engine.clock().now();
    let Some(draft) = state
        .store
        .begin_draft_import(&id, viewer.user.id, now)
        .await?
    else {
        // Imported already (a second click) shows the result; otherwise it is gone.
        return match state.store.import_draft(&id, viewer.user.id, now).await? {
            Some(draft) if draft.imported.is_some() => Ok(redirect(&format!("/import/{id}"))),
            Some(_) => Err(PageError::Conflict(
                "this upload is being imported by another request".into(),
            )),
            None => Err(gone()),
        };
    };
    let written = write(&state, &draft, enroll, &expected, now).await;
    match written {
        Ok(Written::Done(imported)) => {
            state
                .store
                .finish_draft_import(&id, Some(&imported))
                .await?;
            engine.wake();
            Ok(redirect(&format!("/import/{id}")))
        }
        Ok(Written::Changed(preview)) => {
            state.store.finish_draft_import(&id, None).await?;
            let notice = "The contacts changed since this preview was made, so the import would now do what is shown below. Nothing was written; check it and confirm again.";
            let mut response = render_preview(&state, &viewer, &id, &draft, &preview, Some(notice));
            *response.status_mut() = StatusCode::CONFLICT;
            Ok(response)
        }
        Err(err) => {
            // The import's own error is the one to report; a failure to release the
            // draft only delays a retry until the claim times out.
            if let Err(release) = state.store.finish_draft_import(&id, None).await {
                tracing::warn!(error = %release, "releasing an import draft after a failure");
            }
            Err(err)
        }
    }
}

enum Written {
    Done(DraftImported),
    /// Nothing written: the import would no longer do what the page showed.
    Changed(Preview),
}

async fn write(
    state: &AppState,
    draft: &ImportDraft,
    enroll: EnrollChoice,
    expected: &str,
    now: jiff::Timestamp,
) -> Result<Written, PageError> {
    let preview = preview(state, draft).await?;
    if preview.fingerprint() != expected {
        return Ok(Written::Changed(preview));
    }
    let engine = state.engine().map_err(|_| PageError::NotFound("engine"))?;
    let rows = &preview.reading.good;
    // One call, one transaction: the whole list lands or none of it does.
    let outcome = state
        .store
        .import_contacts(
            rows,
            engine.project().config.first_stage(),
            now,
            enroll.for_chunk(now, rows.len(), 0),
        )
        .await?;
    Ok(Written::Done(DraftImported {
        inserted: outcome.inserted as u64,
        updated: outcome.updated as u64,
        unchanged: outcome.unchanged as u64,
        rejected: preview.reading.rejected.len() as u64,
        enroll,
        at: now,
    }))
}

fn enroll_choice(form: &FormFields) -> Result<EnrollChoice, PageError> {
    match form.get("enroll") {
        Some("now") => Ok(EnrollChoice::Now),
        Some("none") => Ok(EnrollChoice::None),
        Some("spread") => {
            let days = form
                .get("spread_days")
                .and_then(|d| d.parse::<u32>().ok())
                .filter(|d| (1..=366).contains(d))
                .ok_or_else(|| {
                    PageError::BadRequest(
                        "spread_days: a whole number of days from 1 to 366".into(),
                    )
                })?;
            format!("spread:{days}d")
                .parse()
                .map_err(|e: tend_store::EnrollChoiceError| {
                    PageError::BadRequest(format!("spread_days: {e}"))
                })
        }
        _ => Err(PageError::BadRequest(
            "enroll: one of now, spread, none".into(),
        )),
    }
}

fn render_preview(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
    draft: &ImportDraft,
    preview: &Preview,
    notice: Option<&str>,
) -> Response {
    let tz = zone(state);
    let outcome = &preview.outcome;
    let reading = &preview.reading;
    let rejected = reading.rejected.len();
    let listed = |kind: RowEffect| {
        outcome
            .effects
            .iter()
            .zip(reading.good.iter().zip(&reading.lines))
            .filter(move |(effect, _)| **effect == kind)
            .map(|(_, (row, line))| (*line, row))
            .take(SHOWN_ROWS)
            .collect::<Vec<_>>()
    };
    let body = html! {
        h1 { "Import contacts" }
        @if let Some(notice) = notice {
            p.notice role="alert" data-testid="preview-changed" { (notice) }
        }
        section aria-labelledby="preview-h" data-testid="import-preview" {
            h2 id="preview-h" { "What importing " (draft.file_name) " would do" }
            p.hint { "Uploaded " (when(draft.uploaded_at, &tz)) ", " (draft.bytes.len()) " bytes; kept for " (DRAFT_LIFETIME.as_mins()) " minutes. Nothing is written until you confirm." }
            ul.counts {
                li data-testid="preview-new" { strong { (outcome.inserted) } " new" }
                li data-testid="preview-updated" { strong { (outcome.updated) } " updated" }
                li data-testid="preview-unchanged" { strong { (outcome.unchanged) } " unchanged" }
                li data-testid="preview-rejected" { strong { (rejected) } " rejected" }
            }
            (stage_summary(outcome, &state.engine().ok().map(|e| Arc::clone(e.project()))))
        }
        @if rejected > 0 {
            section aria-labelledby="rejected-h" data-testid="rejected" {
                h2 id="rejected-h" { "Rejected rows (not imported)" }
                ul.rejected {
                    @for (line, reason) in reading.rejected.iter().take(SHOWN_REJECTED) {
                        li data-testid="rejected-row" { (line) ": " (reason) }
                    }
                }
                @if rejected > SHOWN_REJECTED {
                    p { "and " (rejected - SHOWN_REJECTED) " more. " }
                }
                p { a href={ "/import/" (id) "/rejected.txt" } data-testid="rejected-all" { "All rejected rows as text" } }
            }
        }
        (row_table("New contacts", "preview-new-rows", outcome.inserted, &listed(RowEffect::Inserted)))
        (row_table("Updated contacts", "preview-updated-rows", outcome.updated, &listed(RowEffect::Updated)))
        @if reading.good.is_empty() {
            p data-testid="nothing-to-import" { "No row of this file can be imported. " a href="/import" { "Upload another file" } }
        } @else {
            (confirm_form(viewer, id, reading.good.len(), &preview.fingerprint()))
        }
    };
    page(viewer, "Import", "Import", body)
}

/// How many contacts enter each stage, and which processes enroll on it.
fn stage_summary(outcome: &ImportOutcome, project: &Option<Arc<Project>>) -> Markup {
    let mut into: BTreeMap<&str, usize> = BTreeMap::new();
    for change in &outcome.stage_changes {
        *into.entry(change.to.as_str()).or_default() += 1;
    }
    let enrolling = |stage: &str| -> Vec<String> {
        project
            .iter()
            .flat_map(|p| &p.processes)
            .filter(|p| matches!(&p.enroll, Enroll::Stage(s) if s.as_str() == stage))
            .map(|p| p.name.clone())
            .collect()
    };
    html! {
        @if !into.is_empty() {
            ul data-testid="preview-stages" {
                @for (stage, count) in &into {
                    @let processes = enrolling(stage);
                    li {
                        (count) @if *count == 1 { " enters " } @else { " enter " } strong { (stage) }
                        @if !processes.is_empty() { ", which enrolls them in " (processes.join(", ")) }
                    }
                }
            }
        }
    }
}

fn row_table(title: &str, testid: &str, total: usize, rows: &[(u64, &ImportRow)]) -> Markup {
    html! {
        @if !rows.is_empty() {
            section aria-label=(title) data-testid=(testid) {
                h2 { (title) }
                table {
                        thead { tr { th { "Line" } th { "Email" } th { "Name" } th { "Stage" } } }
                        tbody {
                            @for (line, row) in rows {
                                tr {
                                    td { (line) } td { (row.email.as_str()) }
                                    td { (row.name.as_deref().unwrap_or("—")) }
                                    td { (row.stage.as_ref().map_or("—", |s| s.as_str())) }
                                }
                            }
                        }
                }
                @if total > rows.len() { p.hint { "The first " (rows.len()) " of " (total) "." } }
            }
        }
    }
}

fn confirm_form(viewer: &Viewer, id: &str, good: usize, fingerprint: &str) -> Markup {
    html! {
        form method="post" action={ "/import/" (id) "/confirm" } data-testid="confirm-form" {
            (csrf_field(viewer))
            input type="hidden" name="expect" value=(fingerprint);
            fieldset {
                legend { "When do the contacts this import puts into a stage enroll in its processes?" }
                div {
                    input type="radio" id="enroll-now" name="enroll" value="now" checked;
                    label for="enroll-now" { "Now (the pacer still decides when each touch goes)" }
                }
                div {
                    input type="radio" id="enroll-spread" name="enroll" value="spread";
                    label for="enroll-spread" { "Spread their first touches over" }
                    " "
                    input type="number" id="spread-days" name="spread_days" min="1" max="366"
                        value=(DEFAULT_SPREAD_DAYS) aria-label="Days to spread the first touches over";
                    " days"
                }
                div {
                    input type="radio" id="enroll-none" name="enroll" value="none";
                    label for="enroll-none" { "Do not enroll them (a later stage change or event does)" }
                }
            }
            button type="submit" id="confirm-import" data-testid="confirm-import" { "Import " (good) " rows" }
        }
    }
}

fn result(state: &AppState, draft: &ImportDraft, imported: &DraftImported) -> Markup {
    let tz = zone(state);
    html! {
        h1 { "Import contacts" }
        section aria-labelledby="result-h" data-testid="import-result" role="status" {
            h2 id="result-h" { "Imported " (draft.file_name) }
            p {
                "At " (when(imported.at, &tz)) ": "
                strong data-testid="result-new" { (imported.inserted) } " new, "
                strong data-testid="result-updated" { (imported.updated) } " updated, "
                strong data-testid="result-unchanged" { (imported.unchanged) } " unchanged"
                @match imported.rejected {
                    0 => {},
                    1 => "; 1 rejected row was not imported",
                    n => { "; " (n) " rejected rows were not imported" },
                }
                "."
            }
            p data-testid="result-enroll" {
                @match imported.enroll {
                    EnrollChoice::Now => "They enroll in their stage's processes now.",
                    EnrollChoice::Spread(period) => { "Their enrollments start spread over " (in_days(period)) " from " (when(imported.at, &tz)) "." },
                    EnrollChoice::None => "Nobody was enrolled: a later stage change or enrolling event enrolls them.",
                }
            }
            p { a href="/contacts" { "See the contacts" } " · " a href="/import" { "Import another file" } }
        }
    }
}

/// A spread as the form asked for it: `7 days`, not `1w`.
fn in_days(period: tend_core::Duration) -> String {
    match period.as_secs() / 86_400 {
        1 => "1 day".to_owned(),
        days => format!("{days} days"),
    }
}
