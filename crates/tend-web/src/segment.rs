//! The Segment HTTP tracking API: `identify`, `track`, `page`, `screen`, `group`,
//! `alias` and `batch`.
//!
//! Every message of a request is validated before anything is written, so a rejected
//! request writes nothing; the store then applies the whole request in one transaction.
//! The write key comes from the Authorization header (checked by
//! [`crate::auth::write_key`] before the body is read) or from `writeKey` in the body.

mod parse;
pub(crate) mod schema;

use crate::auth::{self, Caller};
use crate::error::AppError;
use crate::{AppState, body};
use axum::body::{Body, Bytes};
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, header::CONTENT_ENCODING};
use axum::{Json, extract::Request};
use flate2::read::GzDecoder;
use jiff::Timestamp;
use parse::{Kind, as_object, parse_message};
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::io::Read;
use tend_store::{ApiToken, IngestMessage};

/// What an accepted ingest request did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IngestReply {
    /// Always `true`: a request with a bad message is refused whole with a 400.
    pub success: bool,
    /// Messages written.
    pub accepted: usize,
    /// Messages skipped as repeats of a `messageId` this write key sent before (or
    /// earlier in the same batch).
    pub duplicates: usize,
}

impl From<tend_store::IngestOutcome> for IngestReply {
    fn from(outcome: tend_store::IngestOutcome) -> Self {
        IngestReply {
            success: true,
            accepted: outcome.accepted,
            duplicates: outcome.duplicates,
        }
    }
}

/// Segment's limit for one message.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;
/// Segment's limit for one batch request.
pub const MAX_BATCH_BYTES: usize = 500 * 1024;

/// `POST /v1/identify`
#[utoipa::path(
    post,
    path = "/v1/identify",
    tag = "ingest",
    request_body(content = schema::IdentifyMessage, content_type = "application/json"),
    responses((status = 200, description = "Written, or recognised as a repeat.", body = IngestReply)),
    security(("write_key" = []), ("write_key_bearer" = []))
)]
pub async fn identify(
    state: State<AppState>,
    caller: Option<Extension<Caller>>,
    request: Request,
) -> Result<Json<IngestReply>, AppError> {
    single(state, caller, request, Kind::Identify).await
}

/// `POST /v1/track`
#[utoipa::path(
    post,
    path = "/v1/track",
    tag = "ingest",
    request_body(content = schema::TrackMessage, content_type = "application/json"),
    responses((status = 200, description = "Written, or recognised as a repeat.", body = IngestReply)),
    security(("write_key" = []), ("write_key_bearer" = []))
)]
pub async fn track(
    state: State<AppState>,
    caller: Option<Extension<Caller>>,
    request: Request,
) -> Result<Json<IngestReply>, AppError> {
    single(state, caller, request, Kind::Track).await
}

/// `POST /v1/page`: recorded as a `Page Viewed` event with the page's `name` and
/// `category` among its properties.
#[utoipa::path(
    post,
    path = "/v1/page",
    tag = "ingest",
    request_body(content = schema::PageMessage, content_type = "application/json"),
    responses((status = 200, description = "Written, or recognised as a repeat.", body = IngestReply)),
    security(("write_key" = []), ("write_key_bearer" = []))
)]
pub async fn page(
    state: State<AppState>,
    caller: Option<Extension<Caller>>,
    request: Request,
) -> Result<Json<IngestReply>, AppError> {
    single(state, caller, request, Kind::Page).await
}

/// `POST /v1/screen`: recorded as a `Screen Viewed` event, like a page.
#[utoipa::path(
    post,
    path = "/v1/screen",
    tag = "ingest",
    request_body(content = schema::PageMessage, content_type = "application/json"),
    responses((status = 200, description = "Written, or recognised as a repeat.", body = IngestReply)),
    security(("write_key" = []), ("write_key_bearer" = []))
)]
pub async fn screen(
    state: State<AppState>,
    caller: Option<Extension<Caller>>,
    request: Request,
) -> Result<Json<IngestReply>, AppError> {
    single(state, caller, request, Kind::Screen).await
}

/// `POST /v1/group`: the contact's attributes get `groupId` and `group` (the group's
/// traits); the group's traits never change the contact's own email or name.
#[utoipa::path(
    post,
    path = "/v1/group",
    tag = "ingest",
    request_body(content = schema::GroupMessage, content_type = "application/json"),
    responses((status = 200, description = "Written, or recognised as a repeat.", body = IngestReply)),
    security(("write_key" = []), ("write_key_bearer" = []))
)]
pub async fn group(
    state: State<AppState>,
    caller: Option<Extension<Caller>>,
    request: Request,
) -> Result<Json<IngestReply>, AppError> {
    single(state, caller, request, Kind::Group).await
}

/// `POST /v1/alias`: `previousId` (an anonymousId or an earlier userId) and `userId` name
/// one person; their records merge as an identify merges them.
#[utoipa::path(
    post,
    path = "/v1/alias",
    tag = "ingest",
    request_body(content = schema::AliasMessage, content_type = "application/json"),
    responses((status = 200, description = "Written, or recognised as a repeat.", body = IngestReply)),
    security(("write_key" = []), ("write_key_bearer" = []))
)]
pub async fn alias(
    state: State<AppState>,
    caller: Option<Extension<Caller>>,
    request: Request,
) -> Result<Json<IngestReply>, AppError> {
    single(state, caller, request, Kind::Alias).await
}

/// `POST /v1/batch`: `{"batch": [...]}`, each item with its `type`.
#[utoipa::path(
    post,
    path = "/v1/batch",
    tag = "ingest",
    request_body(content = schema::BatchRequest, content_type = "application/json"),
    responses((status = 200, description = "Written, or recognised as a repeat.", body = IngestReply)),
    security(("write_key" = []), ("write_key_bearer" = []))
)]
pub async fn batch(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    request: Request,
) -> Result<Json<IngestReply>, AppError> {
    let (parts, body) = request.into_parts();
    let bytes = read_body(&state, &parts.headers, body, MAX_BATCH_BYTES).await?;
    let (write_key, items) = batch_body(&bytes)?;
    let token = caller_token(&state, caller, write_key.as_ref()).await?;
    let items = required_items(items)?;
    let messages = batch_messages(&state, &items, Timestamp::now(), &token)?;
    let outcome = state.ingest(&messages).await?;
    Ok(Json(outcome.into()))
}

/// A batch body's `writeKey` and its items, each only delimited yet; a missing
/// `batch` is reported after the write key is checked.
fn batch_body(bytes: &[u8]) -> Result<(Option<Value>, Option<Vec<&RawValue>>), AppError> {
    #[derive(serde::Deserialize)]
    struct BatchBody<'a> {
        #[serde(borrow)]
        batch: Option<Vec<&'a RawValue>>,
        #[serde(rename = "writeKey", borrow)]
        write_key: Option<&'a RawValue>,
    }
    let parsed: BatchBody = serde_json::from_slice(bytes)
        .map_err(|e| AppError::Malformed(format!("body is not a JSON batch object: {e}")))?;
    let write_key: Option<Value> = parsed
        .write_key
        .map(|raw| serde_json::from_str(raw.get()))
        .transpose()
        .map_err(|e| AppError::invalid("writeKey", e.to_string()))?;
    Ok((write_key, parsed.batch))
}

fn required_items(items: Option<Vec<&RawValue>>) -> Result<Vec<&RawValue>, AppError> {
    items.ok_or_else(|| AppError::invalid("batch", "required: an array of messages"))
}

/// Validates every item of a batch; the first bad one fails the whole batch.
fn batch_messages(
    state: &AppState,
    items: &[&RawValue],
    now: Timestamp,
    token: &ApiToken,
) -> Result<Vec<IngestMessage>, AppError> {
    let mut messages = Vec::with_capacity(items.len());
    for (index, raw) in items.iter().enumerate() {
        let path = format!("batch[{index}]");
        if raw.get().len() > MAX_MESSAGE_BYTES {
            return Err(AppError::TooLarge {
                what: path,
                limit: MAX_MESSAGE_BYTES,
            });
        }
        // The first parse only delimited the item; nesting deeper than serde_json's
        // recursion limit is found here.
        let value: Value = serde_json::from_str(raw.get())
            .map_err(|e| AppError::invalid(path.clone(), format!("is not valid JSON: {e}")))?;
        let object = as_object(&value, &path)?;
        let kind = match object.get("type").and_then(Value::as_str) {
            Some(name) => Kind::parse(name).ok_or_else(|| {
                AppError::invalid(
                    format!("{path}.type"),
                    format!(
                        "unknown message type `{name}`; expected one of {}",
                        Kind::NAMES
                    ),
                )
            })?,
            None => {
                return Err(AppError::invalid(
                    format!("{path}.type"),
                    format!("required: one of {}", Kind::NAMES),
                ));
            }
        };
        messages.push(parse_message(state, kind, object, &path, now, token)?);
    }
    Ok(messages)
}

/// Validates a request body as `POST /v1/{route}` would, up to the point where the
/// store is asked to write: no credentials are checked and nothing is written. For
/// the fuzz targets and property tests, which must reach exactly the route's code.
#[doc(hidden)]
pub fn validate_body(
    state: &AppState,
    route: &str,
    bytes: &[u8],
    token: &ApiToken,
) -> Result<Vec<IngestMessage>, AppError> {
    let now = Timestamp::now();
    if route == "batch" {
        let (_, items) = batch_body(bytes)?;
        return batch_messages(state, &required_items(items)?, now, token);
    }
    let kind = Kind::parse(route)
        .ok_or_else(|| AppError::invalid("route", format!("no route /v1/{route}")))?;
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| AppError::Malformed(format!("body is not JSON: {e}")))?;
    let object = as_object(&value, "body")?;
    Ok(vec![parse_message(state, kind, object, "", now, token)?])
}

async fn single(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    request: Request,
    kind: Kind,
) -> Result<Json<IngestReply>, AppError> {
    let (parts, body) = request.into_parts();
    let bytes = read_body(&state, &parts.headers, body, MAX_MESSAGE_BYTES).await?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| AppError::Malformed(format!("body is not JSON: {e}")))?;
    let object = as_object(&value, "body")?;
    let token = caller_token(&state, caller, object.get("writeKey")).await?;
    let message = parse_message(&state, kind, object, "", Timestamp::now(), &token)?;
    let outcome = state.ingest(std::slice::from_ref(&message)).await?;
    Ok(Json(outcome.into()))
}

/// The write key of a request: the one the guard already checked from the header, or
/// else `writeKey` from the body.
async fn caller_token(
    state: &AppState,
    caller: Option<Extension<Caller>>,
    write_key: Option<&Value>,
) -> Result<ApiToken, AppError> {
    if let Some(Extension(Caller(token))) = caller {
        return Ok(token);
    }
    match write_key {
        None | Some(Value::Null) => Err(AppError::Unauthorized),
        Some(Value::String(key)) => auth::ingest_token(state, key.trim()).await,
        Some(_) => Err(AppError::invalid("writeKey", "must be a string")),
    }
}

/// Reads the body up to `limit` bytes, gunzipping it if the client says so; the limit
/// applies to the decompressed size too, so a small gzip bomb cannot get through.
async fn read_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, AppError> {
    let raw = body::read(headers, body, limit, state.limits.body_timeout).await?;
    let encoding = headers
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "identity" | "" => Ok(raw),
        "gzip" => {
            let mut decoded = Vec::with_capacity(raw.len() * 4);
            GzDecoder::new(&raw[..])
                .take(limit as u64 + 1)
                .read_to_end(&mut decoded)
                .map_err(|e| AppError::Malformed(format!("body is not valid gzip: {e}")))?;
            if decoded.len() > limit {
                return Err(AppError::TooLarge {
                    what: "body".to_owned(),
                    limit,
                });
            }
            Ok(Bytes::from(decoded))
        }
        other => Err(AppError::Malformed(format!(
            "unsupported Content-Encoding `{other}`; send identity or gzip"
        ))),
    }
}

/// The path of a message's field in errors: `userId`, or `batch[3].userId` in a batch.
fn field(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}
