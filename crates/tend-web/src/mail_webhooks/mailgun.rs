//! Mailgun's webhooks: `failed` (permanent or temporary), `complained` and
//! `unsubscribed`, one event per request, signed with an HMAC-SHA256 of the timestamp
//! and a single-use token under the webhook signing key
//! (<https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/securing-webhooks>).

use super::{MailEventsReply, ProviderEvent, address, configured, detail, json_body, object};
use super::{optional_str, record, required_id, required_str};
use crate::AppState;
use crate::body;
use crate::error::AppError;
use axum::Json;
use axum::extract::{Request, State};
use serde_json::Value;
use tend_store::feedback::FeedbackKind;
use tend_store::tokens;

/// One event with its headers and delivery status.
const MAX_BODY_BYTES: usize = 256 * 1024;

/// How far a signature's timestamp may be from now, either way (seconds): long enough
/// for clock skew and a slow delivery, short enough that a captured request soon stops
/// working; within it each token is accepted once, by whichever node gets it first
/// (tokens are claimed in the database).
const FRESHNESS_SECS: i64 = 15 * 60;

/// `POST /v1/mail/mailgun`
#[utoipa::path(
    post,
    path = "/v1/mail/mailgun",
    tag = "mail",
    description = "Mailgun's `failed`, `complained` and `unsubscribed` webhooks (JSON). \
                   Authenticated by the body's `signature`: the HMAC-SHA256 of \
                   `timestamp` and `token` under the webhook signing key of \
                   `[channels.email.providers.mailgun]`; the timestamp must be within 15 \
                   minutes of now and each token is accepted once. A permanent failure, a \
                   complaint or an unsubscribe suppresses the recipient; temporary failures \
                   are counted; other events are acknowledged and ignored. 404 when Mailgun \
                   is not configured.",
    request_body(content = Object, content_type = "application/json",
                 description = "`{\"signature\": {\"timestamp\", \"token\", \"signature\"}, \"event-data\": {...}}`."),
    responses(
        (status = 200, description = "Recorded, recognised as a repeat, or ignored.", body = MailEventsReply),
        (status = 404, description = "Mailgun's webhook is not configured.", body = crate::ErrorBody),
    )
)]
pub async fn mailgun(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<MailEventsReply>, AppError> {
    let webhooks = configured(&state)?;
    let key = webhooks
        .keys
        .mailgun
        .as_ref()
        .ok_or(AppError::NotFound("mail provider webhook"))?;
    let (parts, body) = request.into_parts();
    let bytes = body::read(
        &parts.headers,
        body,
        MAX_BODY_BYTES,
        state.limits.body_timeout,
    )
    .await?;
    let value = json_body(&bytes)?;
    let top = object(&value, "")?;
    // The signature first: an unauthenticated caller learns nothing about the payload.
    let signature = top
        .get("signature")
        .and_then(Value::as_object)
        .ok_or(AppError::Unauthorized)?;
    let part = |name: &str| {
        signature
            .get(name)
            .and_then(Value::as_str)
            .ok_or(AppError::Unauthorized)
    };
    let (timestamp, token, hmac) = (part("timestamp")?, part("token")?, part("signature")?);
    if !key.verifies(timestamp, token, hmac) {
        return Err(AppError::Unauthorized);
    }
    let now = jiff::Timestamp::now().as_second();
    let signed_at: i64 = timestamp.parse().map_err(|_| AppError::Unauthorized)?;
    if (now - signed_at).abs() > FRESHNESS_SECS {
        tracing::warn!(
            signed_at,
            "a Mailgun webhook signed too long ago (or ahead); refused"
        );
        return Err(AppError::Unauthorized);
    }
    let event = parse(top.get("event-data").unwrap_or(&Value::Null))?;
    // Claimed in the database, not in this process: a replay sent to another node
    // behind the load balancer, or after a restart, finds the claim too.
    let token_hash = tokens::hash_token(&format!("mailgun:{token}"));
    let expires_at = jiff::Timestamp::from_second(signed_at + FRESHNESS_SECS)
        .map_err(|_| AppError::Unauthorized)?;
    let first_use = state
        .store
        .claim_webhook_token(&token_hash, expires_at, jiff::Timestamp::now())
        .await?;
    if !first_use {
        tracing::warn!("a Mailgun webhook token used a second time; refused");
        return Err(AppError::Unauthorized);
    }
    let recorded = record(&state, "mailgun", vec![event]).await;
    if recorded.is_err() {
        // Nothing was acknowledged: Mailgun's retry must get through.
        if let Err(e) = state.store.release_webhook_token(&token_hash).await {
            tracing::warn!(error = %e, "a Mailgun webhook token could not be given back; Mailgun's retry of this event will be refused");
        }
    }
    Ok(Json(recorded?))
}

/// Mailgun's `event-data`.
fn parse(value: &Value) -> Result<ProviderEvent, AppError> {
    let path = "event-data";
    let data = object(value, path)?;
    let id = required_id(data, path, "id")?;
    let event = required_str(data, path, "event")?;
    let kind = match event {
        "failed" => match optional_str(data, path, "severity")? {
            Some("permanent") => Some(FeedbackKind::HardBounce),
            Some("temporary") => Some(FeedbackKind::SoftBounce),
            _ => {
                return Err(AppError::invalid(
                    format!("{path}.severity"),
                    "a `failed` event needs `permanent` or `temporary`",
                ));
            }
        },
        "complained" => Some(FeedbackKind::Complaint),
        "unsubscribed" => Some(FeedbackKind::Unsubscribe),
        _ => None,
    };
    let Some(kind) = kind else {
        return Ok(ProviderEvent::ignored(id, detail(&[event])));
    };
    let status = data.get("delivery-status").and_then(Value::as_object);
    let code = status
        .and_then(|s| s.get("code"))
        .map(|c| c.to_string())
        .unwrap_or_default();
    let reason = optional_str(data, path, "reason")?.unwrap_or("");
    Ok(ProviderEvent {
        id,
        kind: Some(kind),
        address: Some(address(data, path, "recipient")?),
        detail: detail(&[event, reason, &code]),
    })
}
