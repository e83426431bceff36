//! Reports about sent mail on any backend: recorded once per source, a hard bounce or
//! complaint suppresses the address at once, soft bounces only when enough distinct
//! ones arrive; the inbound mailbox cursor reads back.

use tend_core::pacer::{Channel, Intent, TouchId};
use tend_store::feedback::{FeedbackAbout, FeedbackKind, FeedbackOutcome, MailFeedback};
use tend_store_conformance::fixtures::*;
use tend_store_conformance::test_store;

fn report<'a>(source: &'a str, kind: FeedbackKind, about: FeedbackAbout<'a>) -> MailFeedback<'a> {
    MailFeedback {
        source,
        kind,
        about,
        detail: "5.1.1",
        soft_bounce_limit: 2,
    }
}

#[tokio::test]
async fn reports_are_recorded_once_and_suppress_as_their_kind_says() {
    let store = test_store().await;
    let s = &*store;
    let (_, contacts) = enrolled(
        s,
        "fb",
        &["email:hello"],
        step(0, Channel::Email, Intent::Nurture),
        "lead",
        2,
        at(10),
    )
    .await;
    let queued = queue_due(s, at(10)).await;
    s.claim_dispatch(at(10), 60_000, 10).await.unwrap();
    let first = queued
        .iter()
        .find(|t| t.contact == contacts[0])
        .unwrap()
        .touch;
    let second = queued
        .iter()
        .find(|t| t.contact == contacts[1])
        .unwrap()
        .touch;
    let soft_key = s
        .touch_recipient(second)
        .await
        .unwrap()
        .unwrap()
        .address_key
        .unwrap();

    let hard = report(
        "imap:1",
        FeedbackKind::HardBounce,
        FeedbackAbout::Touch(first.0),
    );
    assert_eq!(
        s.record_mail_feedback(&hard, at(20)).await.unwrap(),
        FeedbackOutcome::Recorded { suppressed: true }
    );
    assert_eq!(
        s.record_mail_feedback(&hard, at(21)).await.unwrap(),
        FeedbackOutcome::Duplicate
    );
    assert!(
        s.contact(contacts[0])
            .await
            .unwrap()
            .unwrap()
            .suppressed_at
            .is_some()
    );
    let unknown = report(
        "imap:2",
        FeedbackKind::Complaint,
        FeedbackAbout::Touch(TouchId(999_999).0),
    );
    assert_eq!(
        s.record_mail_feedback(&unknown, at(22)).await.unwrap(),
        FeedbackOutcome::UnknownTouch
    );

    let soft = report(
        "hook:1",
        FeedbackKind::SoftBounce,
        FeedbackAbout::AddressKey(&soft_key),
    );
    assert_eq!(
        s.record_mail_feedback(&soft, at(30)).await.unwrap(),
        FeedbackOutcome::Recorded { suppressed: false }
    );
    assert!(
        s.contact(contacts[1])
            .await
            .unwrap()
            .unwrap()
            .suppressed_at
            .is_none()
    );
    let soft_again = report(
        "hook:2",
        FeedbackKind::SoftBounce,
        FeedbackAbout::AddressKey(&soft_key),
    );
    assert_eq!(
        s.record_mail_feedback(&soft_again, at(31)).await.unwrap(),
        FeedbackOutcome::Recorded { suppressed: true }
    );
    assert_eq!(
        s.contact(contacts[1]).await.unwrap().unwrap().suppressed_at,
        Some(at(31))
    );

    let counts = s.mail_feedback_counts().await.unwrap();
    assert_eq!(
        (
            counts.hard_bounces,
            counts.soft_bounces,
            counts.complaints,
            counts.unsubscribes
        ),
        (1, 2, 0, 0)
    );
}

#[tokio::test]
async fn the_inbound_cursor_is_empty_at_first_and_reads_back_as_set() {
    let store = test_store().await;
    assert_eq!(store.inbound_cursor().await.unwrap(), None);
    store.set_inbound_cursor(7, 42).await.unwrap();
    store.set_inbound_cursor(7, 43).await.unwrap();
    assert_eq!(store.inbound_cursor().await.unwrap(), Some((7, 43)));
}
