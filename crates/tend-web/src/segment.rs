//! The Segment HTTP tracking API: `identify`, `track` and `batch`.
//!
//! Every message of a request is validated before anything is written, so a rejected
//! request writes nothing; the store then applies the whole request in one transaction.

use crate::error::AppError;
use crate::{AppState, auth};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, header::CONTENT_ENCODING};
use flate2::read::GzDecoder;
use jiff::Timestamp;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::io::Read;
use tend_core::{Email, TimeZoneName};
use tend_store::{ContactTraits, Identity, IngestMessage};

/// Segment's limit for one message.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;
/// Segment's limit for one batch request.
pub const MAX_BATCH_BYTES: usize = 500 * 1024;

/// `POST /v1/identify`
pub async fn identify(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, AppError> {
    single(state, headers, body, Kind::Identify).await
}

/// `POST /v1/track`
pub async fn track(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, AppError> {
    single(state, headers, body, Kind::Track).await
}

/// `POST /v1/batch`: `{"batch": [...]}`, each item with its `type`.
pub async fn batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, AppError> {
    auth::write_key(&state, &headers).await?;
    let bytes = read_body(&headers, body, MAX_BATCH_BYTES, "batch request").await?;
    #[derive(serde::Deserialize)]
    struct BatchBody<'a> {
        #[serde(borrow)]
        batch: Option<Vec<&'a RawValue>>,
    }
    let parsed: BatchBody = serde_json::from_slice(&bytes)
        .map_err(|e| AppError::Malformed(format!("body is not a JSON batch object: {e}")))?;
    let items = parsed
        .batch
        .ok_or_else(|| AppError::invalid("batch", "required: an array of messages"))?;
    let now = Timestamp::now();
    let mut messages = Vec::with_capacity(items.len());
    let mut ignored = 0;
    for (index, raw) in items.iter().enumerate() {
        let path = format!("batch[{index}]");
        if raw.get().len() > MAX_MESSAGE_BYTES {
            return Err(AppError::TooLarge {
                what: path,
                limit: MAX_MESSAGE_BYTES,
            });
        }
        let value: Value = serde_json::from_str(raw.get()).expect("already parsed as JSON");
        let object = as_object(&value, &path)?;
        let kind = match object.get("type").and_then(Value::as_str) {
            Some("identify") => Kind::Identify,
            Some("track") => Kind::Track,
            // Segment clients batch page/screen/group/alias calls alongside the rest;
            // Tend has no use for them yet, and refusing them would lose the batch.
            Some("page" | "screen" | "group" | "alias") => {
                ignored += 1;
                continue;
            }
            Some(other) => {
                return Err(AppError::invalid(
                    format!("{path}.type"),
                    format!("unknown message type `{other}`; expected identify or track"),
                ));
            }
            None => {
                return Err(AppError::invalid(
                    format!("{path}.type"),
                    "required: identify or track",
                ));
            }
        };
        messages.push(parse_message(&state, kind, object, raw.get(), &path, now)?);
    }
    let outcome = state.ingest(&messages).await?;
    Ok(Json(json!({
        "success": true,
        "accepted": outcome.accepted,
        "duplicates": outcome.duplicates,
        "ignored": ignored,
    })))
}

#[derive(Clone, Copy)]
enum Kind {
    Identify,
    Track,
}

async fn single(
    state: AppState,
    headers: HeaderMap,
    body: Body,
    kind: Kind,
) -> Result<Json<Value>, AppError> {
    auth::write_key(&state, &headers).await?;
    let bytes = read_body(&headers, body, MAX_MESSAGE_BYTES, "message").await?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| AppError::Malformed(format!("body is not JSON: {e}")))?;
    let object = as_object(&value, "body")?;
    let raw = std::str::from_utf8(&bytes).unwrap_or_default();
    let message = parse_message(&state, kind, object, raw, "", Timestamp::now())?;
    let outcome = state.ingest(std::slice::from_ref(&message)).await?;
    Ok(Json(json!({
        "success": true,
        "accepted": outcome.accepted,
        "duplicates": outcome.duplicates,
    })))
}

/// Reads the body up to `limit` bytes, gunzipping it if the client says so; the limit
/// applies to the decompressed size too, so a small gzip bomb cannot get through.
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    what: &str,
) -> Result<Bytes, AppError> {
    let too_large = || AppError::TooLarge {
        what: what.to_owned(),
        limit,
    };
    let raw = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())?;
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
                return Err(too_large());
            }
            Ok(Bytes::from(decoded))
        }
        other => Err(AppError::Malformed(format!(
            "unsupported Content-Encoding `{other}`; send identity or gzip"
        ))),
    }
}

fn as_object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, AppError> {
    value
        .as_object()
        .ok_or_else(|| AppError::invalid(path, "must be a JSON object"))
}

fn field(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

fn parse_message(
    state: &AppState,
    kind: Kind,
    object: &Map<String, Value>,
    raw: &str,
    path: &str,
    now: Timestamp,
) -> Result<IngestMessage, AppError> {
    let identity = Identity {
        user_id: id_field(object, "userId", path)?,
        anonymous_id: id_field(object, "anonymousId", path)?,
    };
    if identity.user_id.is_none() && identity.anonymous_id.is_none() {
        return Err(AppError::invalid(
            field(path, "userId"),
            "required: userId or anonymousId",
        ));
    }
    let message_id = match object.get("messageId") {
        Some(Value::String(id)) if !id.trim().is_empty() => id.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => derived_message_id(raw),
        Some(_) => {
            return Err(AppError::invalid(
                field(path, "messageId"),
                "must be a string",
            ));
        }
    };
    if message_id.len() > 256 {
        return Err(AppError::invalid(
            field(path, "messageId"),
            "must be at most 256 characters",
        ));
    }
    let at = match object.get("timestamp") {
        None | Some(Value::Null) => now,
        Some(Value::String(text)) => text.parse::<Timestamp>().map_err(|_| {
            AppError::invalid(
                field(path, "timestamp"),
                format!("`{text}` is not an ISO-8601 timestamp with an offset"),
            )
        })?,
        Some(_) => {
            return Err(AppError::invalid(
                field(path, "timestamp"),
                "must be an ISO-8601 string",
            ));
        }
    };
    match kind {
        Kind::Identify => {
            let traits = optional_object(object, "traits", path)?;
            Ok(IngestMessage::Identify {
                message_id,
                identity,
                traits: parse_traits(traits, &field(path, "traits"))?,
                at,
            })
        }
        Kind::Track => {
            let event = match object.get("event") {
                Some(Value::String(name)) if !name.trim().is_empty() => name.trim().to_owned(),
                Some(Value::String(_)) | None | Some(Value::Null) => {
                    return Err(AppError::invalid(
                        field(path, "event"),
                        "required: the event name",
                    ));
                }
                Some(_) => {
                    return Err(AppError::invalid(field(path, "event"), "must be a string"));
                }
            };
            let properties = optional_object(object, "properties", path)?;
            let stage_change = state.rules.stage_for_event(&event).cloned();
            Ok(IngestMessage::Track {
                message_id,
                identity,
                event,
                properties,
                at,
                stage_change,
            })
        }
    }
}

/// Segment ids are strings, but some clients send numbers; both name the same person.
fn id_field(
    object: &Map<String, Value>,
    name: &str,
    path: &str,
) -> Result<Option<String>, AppError> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) if s.len() <= 256 => Ok(Some(s.trim().to_owned())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::String(_)) => Err(AppError::invalid(
            field(path, name),
            "must be at most 256 characters",
        )),
        Some(_) => Err(AppError::invalid(field(path, name), "must be a string")),
    }
}

fn optional_object(
    object: &Map<String, Value>,
    name: &str,
    path: &str,
) -> Result<Map<String, Value>, AppError> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map.clone()),
        Some(_) => Err(AppError::invalid(
            field(path, name),
            "must be a JSON object",
        )),
    }
}

fn parse_traits(mut traits: Map<String, Value>, path: &str) -> Result<ContactTraits, AppError> {
    let email = match traits.remove("email") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(
            Email::parse(&text)
                .map_err(|e| AppError::invalid(field(path, "email"), e.to_string()))?,
        ),
        Some(_) => return Err(AppError::invalid(field(path, "email"), "must be a string")),
    };
    let timezone = match traits.remove("timezone") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(
            TimeZoneName::parse(&text)
                .map_err(|e| AppError::invalid(field(path, "timezone"), e))?,
        ),
        Some(_) => {
            return Err(AppError::invalid(
                field(path, "timezone"),
                "must be a string",
            ));
        }
    };
    let text_trait =
        |traits: &mut Map<String, Value>, key: &str| -> Result<Option<String>, AppError> {
            match traits.remove(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.trim().to_owned()).filter(|s| !s.is_empty())),
                Some(_) => Err(AppError::invalid(field(path, key), "must be a string")),
            }
        };
    let name = text_trait(&mut traits, "name")?;
    let first = text_trait(&mut traits, "firstName")?;
    let last = text_trait(&mut traits, "lastName")?;
    // Segment's spec allows a full name or first/last names; Tend keeps one name.
    let name = name.or_else(|| match (first, last) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        (f, l) => f.or(l),
    });
    Ok(ContactTraits {
        email,
        name,
        timezone,
        attributes: traits,
    })
}

/// A stable id for a message that came without one, so a client's retry of the same
/// payload is still recognised as a duplicate.
fn derived_message_id(raw: &str) -> String {
    let digest = Sha256::digest(raw.as_bytes());
    let mut id = String::from("sha256:");
    for byte in &digest[..16] {
        use std::fmt::Write;
        let _ = write!(id, "{byte:02x}");
    }
    id
}
