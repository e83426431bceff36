//! `POST /v1/mail/postmark`, `/v1/mail/mailgun` and `/v1/mail/sendgrid`: the mail
//! providers' event webhooks. Bounces, complaints and unsubscribes they report go the
//! same way as those read from the bounce mailbox ([`tend_store::feedback`]): the
//! address is suppressed (soft bounces are counted first) and the report is counted on
//! `/api/pace` and `/metrics`. Other event types (deliveries, opens, clicks) are
//! acknowledged and counted as ignored, so the provider does not retry them.
//!
//! Each provider proves a request is its own the way it documents: Postmark with HTTP
//! basic auth (checked before the body is read), Mailgun with an HMAC of a timestamp
//! and a single-use token inside the body, SendGrid with an ECDSA signature over the
//! timestamp and the body. A route whose provider is not configured answers 404. A
//! request that fails authentication gets a 401, and one with a bad event a 400 naming
//! the field; either way nothing is written. Reports are recorded once per provider
//! event id, so a provider's retry changes nothing.

mod mailgun;
mod postmark;
mod sendgrid;

pub use mailgun::{__path_mailgun, mailgun};
pub use postmark::{__path_postmark, postmark};
pub use sendgrid::{__path_sendgrid, SIGNATURE_HEADER as SENDGRID_SIGNATURE_HEADER, sendgrid};

use crate::AppState;
use crate::error::AppError;
use serde::Serialize;
use serde_json::{Map, Value};
use std::sync::Arc;
use tend_core::Email;
use tend_engine::mail_providers::ProviderKeys;
use tend_store::feedback::{FeedbackAbout, FeedbackKind, FeedbackOutcome, MailFeedback};

/// The keys of the configured providers. What must be remembered between requests
/// (Mailgun's used tokens) is kept in the store, shared by every node.
#[derive(Debug, Default)]
pub struct MailWebhooks {
    keys: ProviderKeys,
}

impl MailWebhooks {
    /// The webhooks of the providers `keys` holds.
    pub fn new(keys: ProviderKeys) -> Arc<Self> {
        Arc::new(MailWebhooks { keys })
    }
}

/// What a webhook request did.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct MailEventsReply {
    /// Bounces, complaints and unsubscribes recorded.
    pub recorded: usize,
    /// Of those, the ones whose address is now suppressed (it was not before).
    pub suppressed: usize,
    /// Events recorded before (the provider retried); nothing changed.
    pub duplicates: usize,
    /// Events of a type Tend does not act on (deliveries, opens, clicks…).
    pub ignored: usize,
}

/// One provider event, validated.
#[derive(Debug)]
struct ProviderEvent {
    /// The provider's id of the event, unique per provider.
    id: String,
    /// What it says, or `None` for a type Tend does not act on.
    kind: Option<FeedbackKind>,
    /// The recipient it is about (set whenever `kind` is).
    address: Option<Email>,
    /// For the record: the provider's type or status.
    detail: String,
}

impl ProviderEvent {
    fn ignored(id: String, detail: String) -> Self {
        ProviderEvent {
            id,
            kind: None,
            address: None,
            detail,
        }
    }
}

/// Records `events` reported by `provider`, all validated before the first is written.
async fn record(
    state: &AppState,
    provider: &'static str,
    events: Vec<ProviderEvent>,
) -> Result<MailEventsReply, AppError> {
    let engine = state.engine()?;
    let store = engine.store();
    let now = engine.clock().now();
    let soft_bounce_limit = engine.project().config.channels.email.soft_bounce_limit;
    let mut reply = MailEventsReply::default();
    for event in events {
        let (Some(kind), Some(address)) = (event.kind, &event.address) else {
            reply.ignored += 1;
            tracing::info!(provider, event = %event.detail, "mail provider event ignored");
            continue;
        };
        let key = engine.address_keys().key(address.as_str());
        let source = format!("{provider}:{}", event.id);
        let outcome = store
            .record_mail_feedback(
                &MailFeedback {
                    source: &source,
                    kind,
                    about: FeedbackAbout::AddressKey(&key),
                    detail: &event.detail,
                    soft_bounce_limit,
                },
                now,
            )
            .await?;
        // The address is personal data: the log names the event, never whom.
        tracing::info!(provider, kind = kind.as_str(), detail = %event.detail, ?outcome, "mail provider report");
        match outcome {
            FeedbackOutcome::Recorded { suppressed } => {
                reply.recorded += 1;
                reply.suppressed += usize::from(suppressed);
            }
            FeedbackOutcome::Duplicate => reply.duplicates += 1,
            // Only a touch can be unknown; these name an address.
            FeedbackOutcome::UnknownTouch => reply.ignored += 1,
        }
    }
    let metrics = engine.metrics();
    metrics.mail_webhook_events(provider, "recorded", reply.recorded);
    metrics.mail_webhook_events(provider, "duplicate", reply.duplicates);
    metrics.mail_webhook_events(provider, "ignored", reply.ignored);
    Ok(reply)
}

/// The configured webhooks, or a 404 when `provider` is not set up (nor an engine
/// running to act on reports).
fn configured(state: &AppState) -> Result<&MailWebhooks, AppError> {
    state.engine()?;
    state
        .mail_webhooks
        .as_deref()
        .ok_or(AppError::NotFound("mail provider webhook"))
}

/// The body as JSON, or a 400 about the body.
fn json_body(bytes: &[u8]) -> Result<Value, AppError> {
    serde_json::from_slice(bytes).map_err(|e| AppError::Malformed(format!("body is not JSON: {e}")))
}

/// `path.name` (or `name` at the top).
fn field(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// The value as a JSON object, or a 400 naming `path`.
fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, AppError> {
    value.as_object().ok_or_else(|| {
        AppError::invalid(
            if path.is_empty() { "body" } else { path },
            "must be a JSON object",
        )
    })
}

/// A required non-empty string field.
fn required_str<'a>(
    object: &'a Map<String, Value>,
    path: &str,
    name: &str,
) -> Result<&'a str, AppError> {
    match object.get(name) {
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(text.trim()),
        Some(Value::String(_)) => Err(AppError::invalid(field(path, name), "must not be empty")),
        Some(_) => Err(AppError::invalid(field(path, name), "must be a string")),
        None => Err(AppError::invalid(field(path, name), "required")),
    }
}

/// An optional string field; another type is a 400.
fn optional_str<'a>(
    object: &'a Map<String, Value>,
    path: &str,
    name: &str,
) -> Result<Option<&'a str>, AppError> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.as_str())),
        Some(_) => Err(AppError::invalid(field(path, name), "must be a string")),
    }
}

/// A required id: a string, or a whole number as Postmark sends its ids.
fn required_id(object: &Map<String, Value>, path: &str, name: &str) -> Result<String, AppError> {
    match object.get(name) {
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Ok(n.to_string()),
        Some(Value::String(text)) if !text.trim().is_empty() && text.len() <= 200 => {
            Ok(text.trim().to_owned())
        }
        Some(_) => Err(AppError::invalid(
            field(path, name),
            "must be an id: a string of at most 200 characters or a whole number",
        )),
        None => Err(AppError::invalid(field(path, name), "required")),
    }
}

/// The recipient address under `name`.
fn address(object: &Map<String, Value>, path: &str, name: &str) -> Result<Email, AppError> {
    let text = required_str(object, path, name)?;
    Email::parse(text).map_err(|e| AppError::invalid(field(path, name), e.to_string()))
}

/// A short note for the record, cut at 200 characters.
fn detail(parts: &[&str]) -> String {
    let joined = parts
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    joined.chars().take(200).collect()
}
