//! Builders of the records store tests exchange with a [`tend_store::Store`].

use jiff::Timestamp;
use serde_json::{Map, Value};
use tend_core::{Email, StageName};
use tend_store::{ContactQuery, ContactTraits, Identity, ImportRow, IngestMessage, TimelineEntry};

/// The stage new contacts get in these tests.
pub fn prospect() -> StageName {
    StageName::new("prospect")
}

/// An instant `second` seconds after a fixed start.
pub fn at(second: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + second).unwrap()
}

/// An identity by user id.
pub fn user(id: &str) -> Identity {
    Identity {
        user_id: Some(id.into()),
        anonymous_id: None,
    }
}

/// An identity by anonymous id.
pub fn anon(id: &str) -> Identity {
    Identity {
        user_id: None,
        anonymous_id: Some(id.into()),
    }
}

/// A track message of `event` at `at(second)`.
pub fn track(message_id: &str, identity: Identity, event: &str, second: i64) -> IngestMessage {
    IngestMessage::Track {
        message_id: message_id.into(),
        identity,
        event: event.into(),
        properties: Map::new(),
        at: at(second),
        stage_change: None,
    }
}

/// A track message that moves its contact to `stage`.
pub fn track_to(message_id: &str, identity: Identity, event: &str, stage: &str) -> IngestMessage {
    let mut message = track(message_id, identity, event, 10);
    if let IngestMessage::Track { stage_change, .. } = &mut message {
        *stage_change = Some(StageName::new(stage));
    }
    message
}

/// An identify message with these traits.
pub fn identify(message_id: &str, identity: Identity, traits: ContactTraits) -> IngestMessage {
    IngestMessage::Identify {
        message_id: message_id.into(),
        identity,
        traits,
        at: at(5),
    }
}

/// Contact traits from an optional email and name and an attributes object.
pub fn traits(email: Option<&str>, name: Option<&str>, attributes: Value) -> ContactTraits {
    ContactTraits {
        email: email.map(|e| Email::parse(e).unwrap()),
        name: name.map(str::to_owned),
        timezone: None,
        attributes: attributes.as_object().cloned().unwrap_or_default(),
    }
}

/// A CSV import row.
pub fn import_row(email: &str, name: &str, stage: Option<&str>, attributes: Value) -> ImportRow {
    ImportRow {
        email: Email::parse(email).unwrap(),
        name: Some(name.into()),
        stage: stage.map(StageName::new),
        timezone: None,
        attributes: attributes.as_object().cloned().unwrap_or_default(),
    }
}

/// A listing of every contact, `limit` per page.
pub fn all(limit: u32) -> ContactQuery {
    ContactQuery {
        limit,
        ..ContactQuery::default()
    }
}

/// The names of a timeline's events, in order.
pub fn event_names(timeline: &[TimelineEntry]) -> Vec<String> {
    timeline
        .iter()
        .filter_map(|entry| match entry {
            TimelineEntry::Event { name, .. } => Some(name.clone()),
            TimelineEntry::StageChange { .. } => None,
        })
        .collect()
}
