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
