//! The REST API under `/api/`, for admin bearer tokens.

use crate::AppState;
use crate::error::AppError;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};
use tend_core::{ContactId, StageName};
use tend_store::ContactQuery;

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;
/// A contact's latest touches shown with it; a process has at most a few dozen.
const TOUCHES_SHOWN: u32 = 200;

/// Query string of `GET /api/contacts`; all strings so a bad value gets a named 400
/// instead of axum's generic rejection.
#[derive(Deserialize)]
pub struct ListParams {
    stage: Option<String>,
    q: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET /api/contacts?stage=&q=&limit=&cursor=`
pub async fn list_contacts(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<Json<Value>, AppError> {
    let limit = match params.limit.as_deref() {
        None | Some("") => DEFAULT_PAGE,
        Some(text) => match text.parse::<u32>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => {
                return Err(AppError::invalid(
                    "limit",
                    format!("must be an integer from 1 to {MAX_PAGE}"),
                ));
            }
        },
    };
    let stage = params.stage.filter(|s| !s.is_empty()).map(StageName::new);
    let query = ContactQuery {
        stage,
        q: params.q.filter(|q| !q.trim().is_empty()),
        limit,
        cursor: params.cursor.filter(|c| !c.is_empty()),
    };
    if let Some(cursor) = &query.cursor
        && cursor.parse::<i64>().is_err()
    {
        return Err(AppError::invalid(
            "cursor",
            "not a cursor from a previous page",
        ));
    }
    let page = state.store.list_contacts(&query).await?;
    Ok(Json(json!(page)))
}

/// `GET /api/contacts/{id}`: the contact with its timeline.
pub async fn get_contact(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let id = parse_id(&id)?;
    let contact = state
        .store
        .contact(id)
        .await?
        .ok_or(AppError::NotFound("contact"))?;
    let timeline = state.store.timeline(id).await?;
    let mut body = json!(contact);
    body["timeline"] = json!(timeline);
    body["enrollments"] = json!(state.store.enrollments_of(id).await?);
    body["touches"] = json!(state.store.touches_of(id, TOUCHES_SHOWN).await?);
    Ok(Json(body))
}

/// `DELETE /api/contacts/{id}`: erases the person and every copy Tend kept (outbox
/// files included); only the keyed suppression record of the address remains.
pub async fn erase_contact(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let id = parse_id(&id)?;
    let erased = match &state.engine {
        Some(engine) => engine.erase_contact(id).await?,
        None => state
            .store
            .erase_contact(id, Timestamp::now())
            .await?
            .is_some(),
    };
    if erased {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AppError::NotFound("contact"))
    }
}

/// `GET /api/processes`
pub async fn list_processes(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    Ok(Json(json!({ "processes": *state.processes })))
}

/// `GET /healthz`: public, answers once the database does.
pub async fn healthz(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    state.store.ping().await?;
    Ok(Json(json!({ "status": "ok" })))
}

fn parse_id(text: &str) -> Result<ContactId, AppError> {
    text.parse::<i64>()
        .map(ContactId)
        .map_err(|_| AppError::invalid("id", "must be an integer contact id"))
}
