//! The Segment messages as the OpenAPI document describes them. The handlers read
//! bodies field by field (so every error can name its field); these types exist only
//! for their schemas, which say what [`super::parse`] accepts.

#![allow(dead_code, reason = "only the OpenAPI schemas of these types are used")]

use serde_json::{Map, Value};
use utoipa::ToSchema;

/// An identifier: a string (or a number, which some clients send), trimmed, at most 256
/// characters, no control characters; empty means absent.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum Identifier {
    /// The usual form.
    Text(String),
    /// A numeric id, read as its decimal text.
    Number(f64),
}

/// Fields every message may carry.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Common {
    /// The business's own id for the person; `userId` or `anonymousId` is required
    /// (except by `alias`, which needs `userId`).
    user_id: Option<Identifier>,
    /// A device or session id seen before the person is known.
    anonymous_id: Option<Identifier>,
    /// Makes the message idempotent per write key; without one, the server makes one up.
    #[schema(max_length = 256)]
    message_id: Option<String>,
    /// When it happened, RFC 3339 with an offset; from 5 years before receipt to 1 day
    /// after. Default: when it is received.
    timestamp: Option<jiff::Timestamp>,
    /// The write key, for clients that cannot send an Authorization header.
    write_key: Option<String>,
    /// Accepted and ignored.
    context: Option<Map<String, Value>>,
    /// Accepted and ignored.
    integrations: Option<Map<String, Value>>,
}

/// The contact fields an identify may set; every other trait is kept among the
/// contact's attributes.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Traits {
    /// The contact's address; refused unless it is one.
    #[schema(format = Email)]
    email: Option<String>,
    /// The contact's name.
    name: Option<String>,
    /// Joined with `lastName` when `name` is absent.
    first_name: Option<String>,
    /// Joined with `firstName` when `name` is absent.
    last_name: Option<String>,
    /// An IANA time-zone name such as `Europe/Rome`, for quiet hours.
    timezone: Option<String>,
}

/// `POST /v1/identify`: who the person is and what is known of them.
#[derive(ToSchema)]
pub struct IdentifyMessage {
    #[serde(flatten)]
    common: Common,
    /// What to set on the contact.
    traits: Option<Traits>,
}

/// `POST /v1/track`: something the person did.
#[derive(ToSchema)]
pub struct TrackMessage {
    #[serde(flatten)]
    common: Common,
    /// The event name, e.g. `Order Completed`; `[stages.on_event]` may move the contact.
    #[schema(max_length = 256)]
    event: String,
    /// Stored with the event as sent.
    properties: Option<Map<String, Value>>,
}

/// `POST /v1/page` and `/v1/screen`: recorded as a `Page Viewed` or `Screen Viewed` event.
#[derive(ToSchema)]
pub struct PageMessage {
    #[serde(flatten)]
    common: Common,
    /// The page's name, kept among the event's properties.
    name: Option<String>,
    /// The page's category, kept among the event's properties.
    category: Option<String>,
    /// Stored with the event as sent.
    properties: Option<Map<String, Value>>,
}

/// `POST /v1/group`: the contact belongs to a group (an account, a company).
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupMessage {
    #[serde(flatten)]
    common: Common,
    /// Kept as the contact's `groupId` attribute.
    group_id: Identifier,
    /// The group's traits, kept as the contact's `group` attribute.
    traits: Option<Map<String, Value>>,
}

/// `POST /v1/alias`: `previousId` and `userId` are one person.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AliasMessage {
    #[serde(flatten)]
    common: Common,
    /// The id the person was known by.
    previous_id: Identifier,
}

/// One item of a batch: a message with its `type`.
#[derive(ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BatchItem {
    /// As `POST /v1/identify`.
    Identify(IdentifyMessage),
    /// As `POST /v1/track`.
    Track(TrackMessage),
    /// As `POST /v1/page`.
    Page(PageMessage),
    /// As `POST /v1/screen`.
    Screen(PageMessage),
    /// As `POST /v1/group`.
    Group(GroupMessage),
    /// As `POST /v1/alias`.
    Alias(AliasMessage),
}

/// `POST /v1/batch`: many messages, all written or none (500 KB in all, 32 KB each).
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchRequest {
    /// The messages, in order.
    batch: Vec<BatchItem>,
    /// The write key, for clients that cannot send an Authorization header.
    write_key: Option<String>,
    /// Accepted and ignored.
    context: Option<Map<String, Value>>,
}
