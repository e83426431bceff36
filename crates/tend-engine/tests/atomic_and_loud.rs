//! Half-done work cannot happen: a task's completion and its outcome event are one
//! transaction, and a send that panics is logged and tried again, never dropped.

mod harness;

use async_trait::async_trait;
use harness::*;
use jiff::Timestamp;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tend_engine::{ChannelDelivery, Delivery, EmailTouch, SendError};
use tend_store::TaskEnd;

#[tokio::test]
async fn a_task_is_not_completed_unless_its_outcome_event_is_recorded_too() {
    let b = Business::start().await;
    let ann = b.lead("u-1", "Ann Smith", "ann@example.com").await;
    b.idle().await;
    b.advance(days(2));
    b.idle().await;
    let task = b
        .touches(ann)
        .await
        .into_iter()
        .find(|t| t.channel == "task" && t.state == "open")
        .expect("the call is on the agenda");

    // The event cannot be written (as if the disk filled up between the two writes).
    let db = rusqlite::Connection::open(b.dir.path().join("tend.db")).unwrap();
    db.execute_batch(
        "CREATE TRIGGER no_events BEFORE INSERT ON events \
         BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
    )
    .unwrap();
    let booked = || TaskEnd::Done {
        outcome: "booked".into(),
        note: None,
    };
    assert!(b.engine.finish_task(task.id.0, booked()).await.is_err());
    let still = b.store.task(task.id).await.unwrap().unwrap();
    assert_eq!(
        still.state, "open",
        "completed without its event: {still:?}"
    );

    db.execute_batch("DROP TRIGGER no_events").unwrap();
    let done = b.engine.finish_task(task.id.0, booked()).await.unwrap();
    assert_eq!(done.state, "done");
    let contact = b.store.contact(ann).await.unwrap().unwrap();
    assert_eq!(contact.stage.as_str(), "customer");
}

/// Panics on the first email it is given, then writes to the outbox.
struct PanicsOnce {
    outbox: ChannelDelivery,
    calls: AtomicUsize,
}

#[async_trait]
impl Delivery for PanicsOnce {
    async fn email(&self, email: &EmailTouch<'_>) -> Result<(), SendError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("a bug in the channel");
        }
        self.outbox.email(email).await
    }

    async fn webhook(
        &self,
        url: &str,
        id: &str,
        body: &serde_json::Value,
        at: Timestamp,
    ) -> Result<(), SendError> {
        self.outbox.webhook(url, id, body, at).await
    }
}

#[tokio::test]
async fn a_send_that_panics_is_retried_with_backoff_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn tend_store::Store> = Arc::new(
        tend_store_sqlite::SqliteStore::open(&dir.path().join("tend.db"))
            .await
            .unwrap(),
    );
    let clock = tend_engine::ManualClock::new(monday_morning());
    let processes = vec![("new-inquiry".to_owned(), INQUIRY.to_owned())];
    let config = project(CONFIG, &processes).config;
    let delivery = Arc::new(PanicsOnce {
        outbox: ChannelDelivery::new(&config, dir.path(), None, "test").unwrap(),
        calls: AtomicUsize::new(0),
    });
    let engine = start_engine(&dir, &store, &clock, CONFIG, &processes, Some(delivery)).await;
    let b = Business {
        dir,
        store,
        clock,
        engine,
        processes,
        config: CONFIG.to_owned(),
    };
    let ann = b.lead("u-1", "Ann Smith", "ann@example.com").await;
    b.idle().await;
    let welcome = b
        .touches(ann)
        .await
        .into_iter()
        .find(|t| t.channel == "email")
        .unwrap();
    assert_eq!(welcome.state, "queued", "{welcome:?}");
    assert_eq!(welcome.attempts, 1);
    assert!(
        welcome
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("panicked") && e.contains("a bug in the channel")),
        "{welcome:?}"
    );
    assert!(b.sent_emails().is_empty());
    // Backoff: not at once...
    b.idle().await;
    assert!(b.sent_emails().is_empty());
    // ...but after the retry delay.
    b.advance(hours(1));
    b.idle().await;
    assert_eq!(b.emails_containing("ann@example.com"), 1);
    let sent = b.store.touches_of(ann, 10).await.unwrap();
    assert!(sent.iter().any(|t| t.id == welcome.id && t.state == "sent"));
}
