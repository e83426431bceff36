//! The REST API under `/api/`, for admin bearer tokens.

use crate::AppState;
use crate::error::AppError;
use crate::extract::{Path, Query};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tend_core::{ContactId, StageName};
use tend_store::{Contact, ContactPage, ContactQuery, EnrollmentView, TimelineEntry, TouchView};
use utoipa::{IntoParams, ToSchema};

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;
/// A contact's latest touches shown with it; a process has at most a few dozen.
const TOUCHES_SHOWN: u32 = 200;

/// Query string of `GET /api/contacts`; all strings so a bad value gets a named 400
/// instead of axum's generic rejection.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only contacts in this stage.
    stage: Option<String>,
    /// Words, in any case, that each start a word of the email or name (`smi` finds
    /// Ann Smith, `rossi` ann.rossi@example.com).
    q: Option<String>,
    /// Contacts per page, 1 to 500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A contact with its history, as `GET /api/contacts/{id}` shows it.
#[derive(Serialize, ToSchema)]
pub struct ContactDetail {
    #[serde(flatten)]
    contact: Contact,
    /// Events and stage changes, oldest first.
    timeline: Vec<TimelineEntry>,
    /// The processes the contact is or was in.
    enrollments: Vec<EnrollmentView>,
    /// The latest touches (at most 200), with the pacer's decisions.
    touches: Vec<TouchView>,
}

/// `GET /api/processes`: the process definitions loaded at start.
#[derive(Serialize, ToSchema)]
pub struct ProcessList {
    /// As the files define them, serialized once at start.
    #[schema(value_type = Vec<tend_core::Process>)]
    processes: Value,
}

/// `GET /api/contacts?stage=&q=&limit=&cursor=`
#[utoipa::path(
    get,
    path = "/api/contacts",
    tag = "contacts",
    params(ListParams),
    responses((status = 200, description = "One page of contacts, in id order.", body = ContactPage)),
    security(("admin_token" = []))
)]
pub async fn list_contacts(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<Json<ContactPage>, AppError> {
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
    Ok(Json(page))
}

/// `GET /api/contacts/{id}`: the contact with its timeline.
#[utoipa::path(
    get,
    path = "/api/contacts/{id}",
    tag = "contacts",
    params(("id" = i64, Path, description = "The contact's id.", example = 1)),
    responses(
        (status = 200, description = "The contact and its history.", body = ContactDetail),
        (status = 404, description = "No such contact.", body = crate::error::ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub async fn get_contact(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ContactDetail>, AppError> {
    let id = parse_id(&id)?;
    let contact = state
        .store
        .contact(id)
        .await?
        .ok_or(AppError::NotFound("contact"))?;
    Ok(Json(ContactDetail {
        contact,
        timeline: state.store.timeline(id).await?,
        enrollments: state.store.enrollments_of(id).await?,
        touches: state.store.touches_of(id, TOUCHES_SHOWN).await?,
    }))
}

/// `DELETE /api/contacts/{id}`: erases the person and every copy Tend kept (outbox
/// files included); only the keyed suppression record of the address remains.
#[utoipa::path(
    delete,
    path = "/api/contacts/{id}",
    tag = "contacts",
    params(("id" = i64, Path, description = "The contact's id.", example = 1)),
    responses(
        (status = 204, description = "Erased everywhere; only the address's keyed suppression remains."),
        (status = 404, description = "No such contact.", body = crate::error::ErrorBody),
    ),
    security(("admin_token" = []))
)]
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
#[utoipa::path(
    get,
    path = "/api/processes",
    tag = "processes",
    responses((status = 200, description = "Every process definition.", body = ProcessList)),
    security(("admin_token" = []))
)]
pub async fn list_processes(State(state): State<AppState>) -> Result<Json<ProcessList>, AppError> {
    Ok(Json(ProcessList {
        processes: (*state.processes).clone(),
    }))
}

/// `GET /healthz`: public, answers once the database does, with the installation's
/// fingerprint (see [`tend_engine::health_fingerprint`]) for `tend doctor`.
pub async fn healthz(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    state.store.ping().await?;
    let instance = tend_engine::instance_id(state.store.as_ref()).await?;
    Ok(Json(json!({
        "status": "ok",
        "instance": tend_engine::health_fingerprint(&instance),
    })))
}

fn parse_id(text: &str) -> Result<ContactId, AppError> {
    text.parse::<i64>()
        .map(ContactId)
        .map_err(|_| AppError::invalid("id", "must be an integer contact id"))
}
