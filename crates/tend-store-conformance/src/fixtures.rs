//! Builders of the records store tests exchange with a [`tend_store::Store`].

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value};
use tend_core::pacer::{BudgetState, Channel, Intent};
use tend_core::{ContactId, Email, StageName};
use tend_store::{
    Backfill, ContactQuery, ContactTraits, DecisionRecord, DueRow, Identity, ImportRow,
    IngestMessage, ProcessSync, StepSpec, Store, TimelineEntry,
};

/// The stage new contacts get in these tests.
pub fn prospect() -> StageName {
    StageName::new("prospect")
}

/// An instant `second` seconds after a fixed start.
pub fn at(second: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + second).unwrap()
}

/// `ms` milliseconds after `from`.
pub fn later(from: Timestamp, ms: i64) -> Timestamp {
    from.checked_add(SignedDuration::from_millis(ms)).unwrap()
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

/// Contacts `{key}-0@example.com`… in stage `stage`, enrolled by the backfill of a new
/// process `key` whose first touch (`first`) falls due at `due`; returns the process id
/// and the contacts in id order.
pub async fn enrolled(
    store: &dyn Store,
    key: &str,
    steps: &[&str],
    first: StepSpec,
    stage: &str,
    contacts: usize,
    due: Timestamp,
) -> (i64, Vec<ContactId>) {
    let batch: Vec<_> = (0..contacts)
        .map(|n| {
            identify(
                &format!("{key}-m{n}"),
                user(&format!("{key}-u{n}")),
                traits(
                    Some(&format!("{key}-{n}@example.com")),
                    Some(&format!("{key} {n}")),
                    serde_json::json!({}),
                ),
            )
        })
        .collect();
    let stage = StageName::new(stage);
    let ingested = store.ingest(&batch, &stage).await.unwrap();
    let mut ids: Vec<ContactId> = ingested
        .stage_changes
        .iter()
        .map(|change| change.contact_id)
        .collect();
    ids.sort();
    let steps: Vec<String> = steps.iter().map(|s| (*s).to_owned()).collect();
    let synced = store
        .sync_process(&ProcessSync {
            key,
            steps: &steps,
            previous: None,
            moves: &[],
            backfill: Some(Backfill {
                stage: &stage,
                first,
                due_at: due,
            }),
            at: at(5),
        })
        .await
        .unwrap();
    assert_eq!(synced.enrolled, contacts as u64);
    (synced.process_id, ids)
}

/// A step of the given channel and intent.
pub fn step(step: u32, channel: Channel, intent: Intent) -> StepSpec {
    StepSpec {
        step,
        channel,
        intent,
    }
}

/// Queues every touch due at `now` for dispatch; returns them, oldest due first.
pub async fn queue_due(store: &dyn Store, now: Timestamp) -> Vec<DueRow> {
    let due = store.due_touches(now, 1_000).await.unwrap();
    let queue: Vec<DecisionRecord> = due
        .touches
        .iter()
        .map(|t| DecisionRecord::Queue {
            touch: t.touch,
            probability: (t.intent == Intent::Offer).then_some(0.5),
        })
        .collect();
    store
        .record_decisions(now, &queue, &BudgetState::default())
        .await
        .unwrap();
    due.touches
}
