//! Postmark's webhooks: bounce, spam complaint and subscription change, one event per
//! request, authenticated by HTTP basic auth
//! (<https://postmarkapp.com/developer/webhooks/webhooks-overview>).

use super::{MailEventsReply, ProviderEvent, address, configured, detail, json_body, object};
use super::{optional_str, record, required_id, required_str};
use crate::AppState;
use crate::body;
use crate::error::AppError;
use axum::Json;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine as _;
use serde_json::Value;
use tend_store::feedback::FeedbackKind;

/// A Postmark event is one record; a bounce may carry the full bounce message
/// ("Include bounce content"), which stays far below this.
const MAX_BODY_BYTES: usize = 256 * 1024;

/// `POST /v1/mail/postmark`
#[utoipa::path(
    post,
    path = "/v1/mail/postmark",
    tag = "mail",
    description = "Postmark's bounce, spam complaint and subscription change webhooks. \
                   Set the webhook's URL in Postmark to \
                   `https://USER:PASSWORD@your-tend/v1/mail/postmark` with the \
                   `[channels.email.providers.postmark]` user and password. A hard bounce, \
                   a spam complaint or an unsubscribe suppresses the recipient; soft \
                   bounces are counted; other record types are acknowledged and ignored. \
                   404 when Postmark is not configured.",
    request_body(content = Object, content_type = "application/json",
                 description = "One Postmark webhook record (`RecordType`, `Type`, `ID`, `Email` or `Recipient`)."),
    responses(
        (status = 200, description = "Recorded, recognised as a repeat, or ignored.", body = MailEventsReply),
        (status = 404, description = "Postmark's webhook is not configured.", body = crate::ErrorBody),
    ),
    security(("postmark_basic" = []))
)]
pub async fn postmark(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<MailEventsReply>, AppError> {
    let webhooks = configured(&state)?;
    let credentials = webhooks
        .keys
        .postmark
        .as_ref()
        .ok_or(AppError::NotFound("mail provider webhook"))?;
    let (parts, body) = request.into_parts();
    let (user, password) = basic_auth(&parts.headers).ok_or(AppError::Unauthorized)?;
    if !credentials.accepts(&user, &password) {
        return Err(AppError::Unauthorized);
    }
    let bytes = body::read(
        &parts.headers,
        body,
        MAX_BODY_BYTES,
        state.limits.body_timeout,
    )
    .await?;
    let event = parse(&json_body(&bytes)?)?;
    Ok(Json(record(&state, "postmark", vec![event]).await?))
}

/// The user name and password of an HTTP basic `Authorization` header.
fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// One Postmark record.
fn parse(value: &Value) -> Result<ProviderEvent, AppError> {
    let record = object(value, "")?;
    let record_type = required_str(record, "", "RecordType")?;
    match record_type {
        "Bounce" | "SpamComplaint" => {
            let id = required_id(record, "", "ID")?;
            let bounce_type = required_str(record, "", "Type")?;
            let kind = match bounce_type {
                "HardBounce" | "BadEmailAddress" => Some(FeedbackKind::HardBounce),
                "SoftBounce" | "Transient" | "DnsError" | "Blocked" => {
                    Some(FeedbackKind::SoftBounce)
                }
                "SpamComplaint" => Some(FeedbackKind::Complaint),
                "Unsubscribe" => Some(FeedbackKind::Unsubscribe),
                // Auto-responders, challenge verifications, virus notifications…:
                // nothing about the address.
                _ => None,
            };
            let note = detail(&[
                bounce_type,
                optional_str(record, "", "Description")?.unwrap_or(""),
            ]);
            match kind {
                Some(kind) => Ok(ProviderEvent {
                    id: format!("{record_type}:{id}"),
                    kind: Some(kind),
                    address: Some(address(record, "", "Email")?),
                    detail: note,
                }),
                None => Ok(ProviderEvent::ignored(id, note)),
            }
        }
        "SubscriptionChange" => {
            let message = required_id(record, "", "MessageID")?;
            let changed_at = required_str(record, "", "ChangedAt")?;
            let id = format!("SubscriptionChange:{message}:{changed_at}");
            let suppress = match record.get("SuppressSending") {
                Some(Value::Bool(b)) => *b,
                _ => {
                    return Err(AppError::invalid(
                        "SuppressSending",
                        "required: true or false",
                    ));
                }
            };
            let reason = optional_str(record, "", "SuppressionReason")?.unwrap_or("");
            // Hard bounces and complaints arrive on their own webhooks; a manual
            // suppression is the recipient unsubscribing (or the sender doing it for
            // them). A reactivation is ignored: only the person can take back a no.
            if suppress && reason == "ManualSuppression" {
                Ok(ProviderEvent {
                    id,
                    kind: Some(FeedbackKind::Unsubscribe),
                    address: Some(address(record, "", "Recipient")?),
                    detail: detail(&["SubscriptionChange", reason]),
                })
            } else {
                Ok(ProviderEvent::ignored(
                    id,
                    detail(&["SubscriptionChange", reason]),
                ))
            }
        }
        other => Ok(ProviderEvent::ignored(
            format!(
                "{other}:{}",
                required_id(record, "", "MessageID").unwrap_or_default()
            ),
            detail(&[other]),
        )),
    }
}
