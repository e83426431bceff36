//! Reading signals on any backend: a first start does not replay history, later stage
//! changes and the events asked for come back in the order they happened, and the
//! cursor moves only from where the caller read it.

use serde_json::json;
use tend_store::{Signal, SignalCursor, StoreError};
use tend_store_conformance::fixtures::*;
use tend_store_conformance::test_store;

#[tokio::test]
async fn signals_after_the_start_come_back_in_order_and_the_cursor_moves_once() {
    let store = test_store().await;
    store
        .ingest(
            &[identify(
                "old",
                user("u0"),
                traits(Some("old@example.com"), None, json!({})),
            )],
            &prospect(),
        )
        .await
        .unwrap();
    let start = store.start_signal_cursor().await.unwrap();
    assert_eq!(store.signal_cursor().await.unwrap(), start);

    store
        .ingest(
            &[
                track("e1", user("u1"), "Inquiry Received", 1),
                track("e2", user("u1"), "Page Viewed", 2),
                track_to("e3", user("u1"), "Inquiry Received", "lead"),
            ],
            &prospect(),
        )
        .await
        .unwrap();
    let names = ["Inquiry Received".to_owned()];
    let batch = store.read_signals(start, &names, 100).await.unwrap();
    let seen: Vec<String> = batch
        .signals
        .iter()
        .map(|s| match s {
            Signal::StageEntered { to, .. } => format!("stage:{to}"),
            Signal::Event { name, .. } => format!("event:{name}"),
        })
        .collect();
    // The new contact's arrival, both inquiries (not the page view), and the move to
    // lead; nothing from before the start.
    assert_eq!(
        seen.iter()
            .filter(|s| *s == "event:Inquiry Received")
            .count(),
        2,
        "{seen:?}"
    );
    assert!(!seen.iter().any(|s| s.contains("Page Viewed")), "{seen:?}");
    assert_eq!(
        seen.iter()
            .filter(|s| s.starts_with("stage:"))
            .cloned()
            .collect::<Vec<_>>(),
        ["stage:prospect", "stage:lead"],
        "{seen:?}"
    );

    store
        .apply_signals(start, batch.next, &[], at(10))
        .await
        .unwrap();
    assert_eq!(store.signal_cursor().await.unwrap(), batch.next);
    // A second reader that read from the old place must not move it again.
    let stale = store.apply_signals(start, batch.next, &[], at(11)).await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    let after = store.read_signals(batch.next, &names, 100).await.unwrap();
    assert!(after.signals.is_empty(), "{:?}", after.signals);
    assert_ne!(batch.next, SignalCursor::default());
}

#[tokio::test]
async fn an_import_records_how_its_stage_changes_enroll_row_by_row() {
    let store = test_store().await;
    let start = store.start_signal_cursor().await.unwrap();
    let rows: Vec<_> = (0..3)
        .map(|i| import_row(&format!("p{i}@example.com"), "P", Some("lead"), json!({})))
        .collect();
    let spread = tend_store::ImportEnrollment::Spread {
        first: at(100),
        step: jiff::SignedDuration::from_secs(60),
    };
    store
        .import_contacts(&rows[..2], &prospect(), at(0), spread)
        .await
        .unwrap();
    store
        .import_contacts(
            &rows[2..],
            &prospect(),
            at(0),
            tend_store::ImportEnrollment::DoNotEnroll,
        )
        .await
        .unwrap();
    let batch = store.read_signals(start, &[], 100).await.unwrap();
    let enrollments: Vec<_> = batch
        .signals
        .iter()
        .map(|s| match s {
            Signal::StageEntered { enrollment, .. } => *enrollment,
            other => panic!("{other:?}"),
        })
        .collect();
    use tend_store::StageEnrollment::{No, NotBefore};
    assert_eq!(
        enrollments,
        vec![NotBefore(at(100)), NotBefore(at(160)), No],
        "each row of the spread a step after the one before; `DoNotEnroll` enrolls nobody"
    );
}

#[tokio::test]
async fn an_enrollment_remembers_the_event_or_stage_change_that_started_it() {
    use tend_core::pacer::{Channel, Intent};
    use tend_store::{EngineAction, EnrollTrigger, EnrollmentTrigger, IngestMessage, ProcessSync};

    let store = test_store().await;
    let start = store.start_signal_cursor().await.unwrap();
    let with_properties = |mut message: IngestMessage, properties: serde_json::Value| {
        if let IngestMessage::Track { properties: p, .. } = &mut message {
            *p = properties.as_object().cloned().unwrap();
        }
        message
    };
    store
        .ingest(
            &[
                identify(
                    "i1",
                    user("u1"),
                    traits(Some("ann@example.com"), None, json!({})),
                ),
                with_properties(
                    track("q1", user("u1"), "Quote Requested", 8),
                    json!({"service": "kitchen", "budget": 12000}),
                ),
                with_properties(
                    track_to("e1", user("u1"), "Inquiry Received", "lead"),
                    json!({"source": "website"}),
                ),
            ],
            &prospect(),
        )
        .await
        .unwrap();
    let process = |key: &'static str| {
        let store = &store;
        async move {
            store
                .sync_process(&ProcessSync {
                    key,
                    steps: &["0".to_owned()],
                    previous: None,
                    moves: &[],
                    backfill: None,
                    at: at(5),
                })
                .await
                .unwrap()
                .process_id
        }
    };
    let (quote, lead, manual) = (
        process("quote").await,
        process("lead").await,
        process("manual").await,
    );
    let names = ["Quote Requested".to_owned()];
    let batch = store.read_signals(start, &names, 100).await.unwrap();
    let enroll = |contact, process_id, trigger| EngineAction::Enroll {
        contact,
        process_id,
        first: step(0, Channel::Webhook, Intent::Nurture),
        due_at: at(20),
        enrolled_at: at(20),
        reenroll: false,
        trigger,
    };
    let mut actions = Vec::new();
    let mut ann = None;
    for signal in &batch.signals {
        match signal {
            Signal::Event { id, contact, .. } => {
                actions.push(enroll(*contact, quote, Some(EnrollTrigger::Event(*id))));
            }
            Signal::StageEntered {
                id, contact, to, ..
            } if to.as_str() == "lead" => {
                actions.push(enroll(
                    *contact,
                    lead,
                    Some(EnrollTrigger::StageChange(*id)),
                ));
                actions.push(enroll(*contact, manual, None));
                ann = Some(*contact);
            }
            Signal::StageEntered { .. } => {}
        }
    }
    store
        .apply_signals(start, batch.next, &actions, at(20))
        .await
        .unwrap();
    let enrollments = store
        .enrollments_of(ann.expect("ann moved to lead"))
        .await
        .unwrap();
    let trigger_of = |key: &str| {
        let id = enrollments.iter().find(|e| e.process == key).expect(key).id;
        let store = &store;
        async move { store.enrollment_trigger(id).await.unwrap() }
    };

    let Some(EnrollmentTrigger::Event(event)) = trigger_of("quote").await else {
        panic!("the quote enrollment's trigger is its event");
    };
    assert_eq!(event.event, "Quote Requested");
    assert_eq!(
        event.properties,
        json!({"service": "kitchen", "budget": 12000})
    );
    assert_eq!(event.timestamp, at(8));
    match trigger_of("lead").await {
        Some(EnrollmentTrigger::StageChange {
            from,
            to,
            event: Some(cause),
            ..
        }) => {
            assert_eq!((from.as_deref(), to.as_str()), (Some("prospect"), "lead"));
            assert_eq!(cause.event, "Inquiry Received");
            assert_eq!(cause.properties, json!({"source": "website"}));
        }
        other => panic!("the lead enrollment's trigger is the stage change: {other:?}"),
    }
    assert_eq!(trigger_of("manual").await, None);
    assert_eq!(store.enrollment_trigger(999_999).await.unwrap(), None);
}
