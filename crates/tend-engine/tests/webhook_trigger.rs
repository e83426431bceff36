//! A webhook step's payload says what started its enrollment: the event with its
//! properties, or the stage change and the event behind it. Sent by the real engine
//! over a real SQLite file to a receiver that verifies each request with the
//! `standardwebhooks` reference library.

mod harness;

use jiff::Timestamp;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use tend_core::{Email, StageName};
use tend_engine::ManualClock;
use tend_store::{ContactTraits, Identity, IngestMessage, Store};
use tend_store_sqlite::SqliteStore;
use tend_testkit::WebhookReceiver;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Open at every hour, no quiet hours: the webhooks leave at once. Standard Webhooks
/// receivers refuse a timestamp minutes away from theirs, so this engine's clock starts
/// at the real now.
fn config() -> String {
    format!(
        r#"
public_url = "https://tend.example.com"
[business]
name = "Studio Rossi"
timezone = "Europe/Rome"
hours = "Mon-Sun 00:00-24:00"
[limits]
quiet_hours = "none"
[stages.on_event]
"Inquiry Received" = "lead"
[channels.email]
from = "Studio Rossi <hello@studio.example>"
[channels.webhook]
secret = "{SECRET}"
"#
    )
}

fn process(name: &str, enroll: &str, url: &str) -> String {
    format!(
        r#"
name = "{name}"
enroll = {enroll}
max_gap = "10d"
[[steps]]
wait = "0d"
webhook = "{url}"
intent = "nurture"
"#
    )
}

fn track(user: &str, event: &str, properties: Value, at: Timestamp) -> IngestMessage {
    let stage_change = (event == "Inquiry Received").then(|| StageName::new("lead"));
    IngestMessage::Track {
        message_id: format!("tr-{user}-{event}"),
        identity: Identity {
            user_id: Some(user.into()),
            anonymous_id: None,
        },
        event: event.into(),
        properties: properties.as_object().cloned().unwrap_or_default(),
        at,
        stage_change,
    }
}

#[tokio::test]
async fn a_webhook_carries_the_event_or_stage_change_that_enrolled_its_contact() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("requests.jsonl");
    let receiver = WebhookReceiver::start(SECRET, &record, &[]);
    let url = format!("http://127.0.0.1:{}/verify", receiver.port);
    tend_engine::webhook::install_crypto_provider();
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&dir.path().join("tend.db"))
            .await
            .unwrap(),
    );
    // Whole milliseconds, as the store keeps them.
    let now = Timestamp::from_millisecond(Timestamp::now().as_millisecond()).unwrap();
    let clock = ManualClock::new(now);
    let processes = vec![
        (
            "quote".to_owned(),
            process("Quote", "{ event = \"Quote Requested\" }", &url),
        ),
        (
            "lead".to_owned(),
            process("Lead", "{ stage = \"lead\" }", &url),
        ),
    ];
    let engine = harness::start_engine(&dir, &store, &clock, &config(), &processes, None).await;

    let identify = IngestMessage::Identify {
        message_id: "id-ann".into(),
        identity: Identity {
            user_id: Some("ann".into()),
            anonymous_id: None,
        },
        traits: ContactTraits {
            email: Some(Email::parse("ann@example.com").unwrap()),
            name: Some("Ann".into()),
            timezone: None,
            attributes: Map::new(),
        },
        at: now,
    };
    let messages = [
        identify,
        track(
            "ann",
            "Quote Requested",
            json!({"service": "kitchen", "budget": 12000}),
            now,
        ),
        track("ann", "Inquiry Received", json!({"source": "website"}), now),
    ];
    store
        .ingest(&messages, &StageName::new("prospect"))
        .await
        .unwrap();
    engine.run_until_idle().await.unwrap();

    let requests: Vec<Value> = std::fs::read_to_string(&record)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    let mut by_process = std::collections::BTreeMap::new();
    for request in &requests {
        assert_eq!(request["verified"], true, "{request:#}");
        let body: Value = serde_json::from_str(request["body"].as_str().unwrap()).unwrap();
        by_process.insert(body["process"]["name"].as_str().unwrap().to_owned(), body);
    }
    let stamp = now.to_string();

    let quote = &by_process["Quote"];
    assert_eq!(
        quote["trigger"],
        json!({
            "type": "event",
            "event": "Quote Requested",
            "properties": {"service": "kitchen", "budget": 12000},
            "timestamp": stamp,
        }),
        "{quote:#}"
    );
    let lead = &by_process["Lead"];
    assert_eq!(
        lead["trigger"],
        json!({
            "type": "stage_change",
            "from": "prospect",
            "to": "lead",
            "timestamp": stamp,
            "event": {
                "event": "Inquiry Received",
                "properties": {"source": "website"},
                "timestamp": stamp,
            },
        }),
        "{lead:#}"
    );
    assert_eq!(lead["contact"]["email"], "ann@example.com");
}
