//! The records that cross the [`crate::Store`] interface.

use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value};
use tend_core::{ContactId, Email, StageName, TimeZoneName};

/// How a Segment message names its person.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    /// Segment `userId`: the business's own id for the person.
    pub user_id: Option<String>,
    /// Segment `anonymousId`: a device or session id seen before the person is known.
    pub anonymous_id: Option<String>,
}

/// Contact fields carried by an `identify` call's traits.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContactTraits {
    /// Sets the contact's address, unless another known person already has it.
    pub email: Option<Email>,
    /// Replaces the contact's name.
    pub name: Option<String>,
    /// Replaces the contact's time zone.
    pub timezone: Option<TimeZoneName>,
    /// Every other trait, merged into the contact's attributes.
    pub attributes: Map<String, Value>,
}

/// One validated Segment message.
#[derive(Debug, Clone, PartialEq)]
pub enum IngestMessage {
    /// Upserts a contact: by `userId`, else by `anonymousId`, and by the `email` trait.
    Identify {
        /// Segment `messageId`; a message already stored is skipped.
        message_id: String,
        /// Who the traits belong to.
        identity: Identity,
        /// What to set on the contact.
        traits: ContactTraits,
        /// When it happened, per the sender.
        at: Timestamp,
    },
    /// Records an event for the contact (created if unknown), and moves its stage when
    /// `[stages.on_event]` maps this event.
    Track {
        /// Segment `messageId`; a message already stored is skipped.
        message_id: String,
        /// Who did it.
        identity: Identity,
        /// The event name, e.g. `Order Completed`.
        event: String,
        /// The event's properties, stored as sent.
        properties: Map<String, Value>,
        /// When it happened, per the sender.
        at: Timestamp,
        /// The stage `[stages.on_event]` maps this event to, if any.
        stage_change: Option<StageName>,
    },
    /// Segment `alias`: `previous_id` (an anonymousId or an earlier userId) and `user_id`
    /// are one person. Their records merge, unless both hold different addresses; the
    /// merged record answers to `user_id`, and `previous_id` stays linked as an alias.
    Alias {
        /// Segment `messageId`; a message already stored is skipped.
        message_id: String,
        /// The identity the person was known by.
        previous_id: String,
        /// The identity the person is known by from now on.
        user_id: String,
        /// When it happened, per the sender.
        at: Timestamp,
    },
}

impl IngestMessage {
    /// The Segment `messageId` that makes the message idempotent.
    pub fn message_id(&self) -> &str {
        match self {
            IngestMessage::Identify { message_id, .. }
            | IngestMessage::Track { message_id, .. }
            | IngestMessage::Alias { message_id, .. } => message_id,
        }
    }
}

/// What an ingest did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    /// Messages written.
    pub accepted: usize,
    /// Messages skipped because their `message_id` was already stored, or repeated
    /// earlier in the same batch.
    pub duplicates: usize,
    /// Stage changes made, in order, including new contacts' first stage (`from: None`);
    /// the engine enrolls on these.
    pub stage_changes: Vec<StageChange>,
}

/// A contact moved from one stage to another, or entered its first stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageChange {
    /// Whose stage changed.
    pub contact_id: ContactId,
    /// The stage left; `None` when the contact was just created.
    pub from: Option<StageName>,
    /// The stage entered.
    pub to: StageName,
}

/// A person, as the API shows them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Contact {
    /// Stable id; never reused, even after an erasure.
    pub id: ContactId,
    /// Normalized address, unique among contacts.
    pub email: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// IANA zone name for quiet hours.
    pub timezone: Option<String>,
    /// Current relationship stage.
    pub stage: StageName,
    /// Segment `userId`, unique among contacts.
    pub user_id: Option<String>,
    /// Every other trait or CSV column.
    pub attributes: Map<String, Value>,
    /// When the contact was first seen.
    pub created_at: Timestamp,
    /// When ingest or import last changed something about the contact.
    pub updated_at: Timestamp,
    /// Set once the person unsubscribed, bounced or was erased before; never cleared by ingest.
    pub suppressed_at: Option<Timestamp>,
    /// When the engine last touched the person.
    pub last_touch_at: Option<Timestamp>,
}

/// Filters and keyset position for listing contacts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactQuery {
    /// Only contacts in this stage.
    pub stage: Option<StageName>,
    /// Case-insensitive substring of email or name.
    pub q: Option<String>,
    /// At most this many contacts (the caller clamps it).
    pub limit: u32,
    /// Opaque cursor from a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// One page of contacts and where the next one starts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContactPage {
    /// In ascending id order.
    pub contacts: Vec<Contact>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// One line of a contact's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TimelineEntry {
    /// A tracked event.
    Event {
        /// The event name.
        name: String,
        /// The event's properties as sent.
        properties: Map<String, Value>,
        /// Segment `messageId`.
        message_id: String,
        /// When it happened, per the sender.
        at: Timestamp,
    },
    /// A stage change; shown right after the event that caused it.
    StageChange {
        /// The stage left; `None` for the contact's first stage.
        from: Option<StageName>,
        /// The stage entered.
        to: StageName,
        /// What caused it: the event name, `created` (first seen by ingest), `import`,
        /// `merge` (two records of one person joined), or `api`.
        reason: String,
        /// When it took effect.
        at: Timestamp,
    },
}

/// One validated CSV row.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportRow {
    /// The key rows are upserted by.
    pub email: Email,
    /// Replaces the name when given.
    pub name: Option<String>,
    /// Moves the contact to this stage when given.
    pub stage: Option<StageName>,
    /// Replaces the time zone when given.
    pub timezone: Option<TimeZoneName>,
    /// Other columns, merged into the contact's attributes.
    pub attributes: Map<String, Value>,
}

/// What an import of one chunk did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOutcome {
    /// Rows that created a contact.
    pub inserted: usize,
    /// Rows that changed an existing contact (or one created earlier in the chunk).
    pub updated: usize,
    /// Rows that changed nothing; they left the contact untouched.
    pub unchanged: usize,
    /// New contacts' first stages and stage moves, in row order.
    pub stage_changes: Vec<StageChange>,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenScope {
    /// Segment ingest only.
    Write,
    /// Everything, including the REST API.
    Admin,
    /// Reading the agenda feed (`/agenda.ics?token=`) and nothing else, so the token a
    /// calendar app keeps in its URL cannot read or change contacts.
    Calendar,
    /// Reading `/metrics` and nothing else, for a Prometheus scraper.
    Metrics,
}

impl TokenScope {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Write => "write",
            TokenScope::Admin => "admin",
            TokenScope::Calendar => "calendar",
            TokenScope::Metrics => "metrics",
        }
    }

    /// Parses `write`, `admin`, `calendar` or `metrics`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "write" => Some(TokenScope::Write),
            "admin" => Some(TokenScope::Admin),
            "calendar" => Some(TokenScope::Calendar),
            "metrics" => Some(TokenScope::Metrics),
            _ => None,
        }
    }
}

/// A stored token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    /// Row id.
    pub id: i64,
    /// What the token is for, as its creator named it.
    pub name: String,
    /// What it may do.
    pub scope: TokenScope,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was last presented, to the minute; `None` if never.
    pub last_used_at: Option<Timestamp>,
}
