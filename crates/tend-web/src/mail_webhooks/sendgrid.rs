//! SendGrid's event webhook: a JSON array of events, signed with ECDSA P-256 over the
//! timestamp header followed by the body
//! (<https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features>).

use super::{MailEventsReply, ProviderEvent, address, configured, detail, json_body, object};
use super::{optional_str, record, required_id, required_str};
use crate::AppState;
use crate::body;
use crate::error::AppError;
use axum::Json;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use serde_json::Value;
use tend_store::feedback::FeedbackKind;

/// The header carrying the signature (base64 of a DER ECDSA signature).
pub const SIGNATURE_HEADER: &str = "x-twilio-email-event-webhook-signature";
/// The header carrying the timestamp the signature covers.
pub const TIMESTAMP_HEADER: &str = "x-twilio-email-event-webhook-timestamp";

/// SendGrid posts a batch when it reaches 768 KB or every 30 seconds.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// `POST /v1/mail/sendgrid`
#[utoipa::path(
    post,
    path = "/v1/mail/sendgrid",
    tag = "mail",
    description = "SendGrid's signed event webhook: a JSON array of events, verified \
                   with the `[channels.email.providers.sendgrid]` public key (ECDSA P-256 \
                   over the `X-Twilio-Email-Event-Webhook-Timestamp` header followed by \
                   the body). A `bounce` (a `blocked` one counts as soft), a `spamreport`, \
                   an `unsubscribe` or a `group_unsubscribe` is recorded; other events are \
                   acknowledged and ignored. Every event is checked before any is written. \
                   404 when SendGrid is not configured.",
    request_body(content = [Object], content_type = "application/json",
                 description = "SendGrid events (`event`, `email`, `sg_event_id`, …)."),
    params(
        ("X-Twilio-Email-Event-Webhook-Timestamp" = String, Header, description = "The timestamp the signature covers."),
    ),
    responses(
        (status = 200, description = "Recorded, recognised as repeats, or ignored.", body = MailEventsReply),
        (status = 404, description = "SendGrid's webhook is not configured.", body = crate::ErrorBody),
    ),
    security(("sendgrid_signature" = []))
)]
pub async fn sendgrid(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<MailEventsReply>, AppError> {
    let webhooks = configured(&state)?;
    let key = webhooks
        .keys
        .sendgrid
        .as_ref()
        .ok_or(AppError::NotFound("mail provider webhook"))?;
    let (parts, body) = request.into_parts();
    // Unsigned requests are refused before their body is read.
    let (timestamp, signature) = signature_headers(&parts.headers).ok_or(AppError::Unauthorized)?;
    let bytes = body::read(
        &parts.headers,
        body,
        MAX_BODY_BYTES,
        state.limits.body_timeout,
    )
    .await?;
    if !key.verifies(&timestamp, &bytes, &signature) {
        return Err(AppError::Unauthorized);
    }
    let events = parse(&json_body(&bytes)?)?;
    Ok(Json(record(&state, "sendgrid", events).await?))
}

fn signature_headers(headers: &HeaderMap) -> Option<(String, String)> {
    let get = |name: &str| Some(headers.get(name)?.to_str().ok()?.trim().to_owned());
    Some((get(TIMESTAMP_HEADER)?, get(SIGNATURE_HEADER)?))
}

/// Every event of the batch; the first bad one refuses the whole request.
fn parse(value: &Value) -> Result<Vec<ProviderEvent>, AppError> {
    let items = value
        .as_array()
        .ok_or_else(|| AppError::invalid("body", "must be a JSON array of events"))?;
    items
        .iter()
        .enumerate()
        .map(|(index, item)| parse_event(item, &format!("[{index}]")))
        .collect()
}

fn parse_event(value: &Value, path: &str) -> Result<ProviderEvent, AppError> {
    let event = object(value, path)?;
    let id = required_id(event, path, "sg_event_id")?;
    let name = required_str(event, path, "event")?;
    let kind = match name {
        "bounce" => match optional_str(event, path, "type")? {
            // Blocked: the receiving server refused for now (reputation, content);
            // the address itself may be fine.
            Some("blocked") => Some(FeedbackKind::SoftBounce),
            _ => Some(FeedbackKind::HardBounce),
        },
        "spamreport" => Some(FeedbackKind::Complaint),
        "unsubscribe" | "group_unsubscribe" => Some(FeedbackKind::Unsubscribe),
        _ => None,
    };
    let Some(kind) = kind else {
        return Ok(ProviderEvent::ignored(id, detail(&[name])));
    };
    let status = optional_str(event, path, "status")?.unwrap_or("");
    Ok(ProviderEvent {
        id,
        kind: Some(kind),
        address: Some(address(event, path, "email")?),
        detail: detail(&[name, status]),
    })
}
