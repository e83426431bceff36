//! An erasure while an email to the person is being sent: the copy that send writes
//! is deleted when it ends, so no file outlives the erasure.

mod harness;

use async_trait::async_trait;
use harness::*;
use jiff::Timestamp;
use std::sync::Arc;
use tend_engine::{ChannelDelivery, Delivery, EmailTouch, SendError};
use tokio::sync::Notify;

/// Holds every email until the test lets it through, then writes it to the outbox.
struct Gate {
    outbox: ChannelDelivery,
    entered: Notify,
    release: Notify,
}

#[async_trait]
impl Delivery for Gate {
    async fn email(&self, email: &EmailTouch<'_>) -> Result<(), SendError> {
        self.entered.notify_one();
        self.release.notified().await;
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

    async fn erase_copies(&self, touch_ids: &[i64]) -> Result<(), SendError> {
        self.outbox.erase_copies(touch_ids).await
    }
}

#[tokio::test]
async fn a_send_in_flight_during_an_erasure_leaves_no_copy() {
    let b = Business::start().await;
    let config = project(CONFIG, &b.processes).config;
    let gate = Arc::new(Gate {
        outbox: ChannelDelivery::new(&config, b.dir.path(), None, "test").unwrap(),
        entered: Notify::new(),
        release: Notify::new(),
    });
    let engine = Arc::new(
        start_engine(
            &b.dir,
            &b.store,
            &b.clock,
            CONFIG,
            &b.processes,
            Some(gate.clone()),
        )
        .await,
    );
    let ann = b.lead("u-1", "Ann Smith", "ann@example.com").await;
    while engine.try_enroll().await.unwrap() > 0 {}
    while engine.try_decide().await.unwrap() > 0 {}
    let sending = tokio::spawn({
        let engine = Arc::clone(&engine);
        async move { engine.try_dispatch(10).await }
    });
    gate.entered.notified().await;
    assert!(engine.erase_contact(ann).await.unwrap());
    gate.release.notify_one();
    assert_eq!(sending.await.unwrap().unwrap(), 1);
    assert!(
        b.sent_emails().is_empty(),
        "a copy outlived the erasure: {:?}",
        b.sent_emails()
    );
}
