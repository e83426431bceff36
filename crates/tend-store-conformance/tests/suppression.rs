//! Suppression and erasure on any backend: a suppressed contact's enrollments end and
//! its planned touches are cancelled; an unsubscribed address silences the records it
//! was mailed to; an erased contact is gone and its address stays suppressed.

use jiff::Timestamp;
use serde_json::json;
use tend_core::ContactId;
use tend_core::Email;
use tend_core::pacer::{Channel, Intent};
use tend_store_conformance::fixtures::*;
use tend_store_conformance::test_store;

#[tokio::test]
async fn suppressing_a_contact_ends_its_enrollments_and_cancels_what_was_planned() {
    let store = test_store().await;
    let s = &*store;
    let (_, contacts) = enrolled(
        s,
        "news",
        &["email:news"],
        step(0, Channel::Email, Intent::Nurture),
        "lead",
        2,
        at(10),
    )
    .await;
    assert!(
        s.suppress_contact(contacts[0], "unsubscribed", at(50))
            .await
            .unwrap()
    );
    assert!(
        !s.suppress_contact(ContactId(999_999), "unsubscribed", at(50))
            .await
            .unwrap()
    );

    let contact = s.contact(contacts[0]).await.unwrap().unwrap();
    assert_eq!(contact.suppressed_at, Some(at(50)));
    assert_eq!(
        s.enrollments_of(contacts[0]).await.unwrap()[0].state,
        "exited"
    );
    assert_eq!(
        s.touches_of(contacts[0], 5).await.unwrap()[0].state,
        "cancelled"
    );
    let email = Email::parse("news-0@example.com").unwrap();
    assert!(s.is_email_suppressed(&email).await.unwrap());
    let other = Email::parse("news-1@example.com").unwrap();
    assert!(!s.is_email_suppressed(&other).await.unwrap());
    // Only the other contact's touch is still due.
    let due = s.due_touches(at(10), 10).await.unwrap();
    assert_eq!(due.touches.len(), 1);
    assert_eq!(due.touches[0].contact, contacts[1]);
}

/// Cancelled touches are counted by why: the suppression's reason, and erasure.
#[tokio::test]
async fn cancelled_touches_are_counted_by_cause() {
    let store = test_store().await;
    let s = &*store;
    let (_, contacts) = enrolled(
        s,
        "news",
        &["email:news"],
        step(0, Channel::Email, Intent::Nurture),
        "lead",
        3,
        at(10),
    )
    .await;
    assert!(s.touches_cancelled().await.unwrap().is_empty());
    assert!(
        s.suppress_contact(contacts[0], "unsubscribed", at(50))
            .await
            .unwrap()
    );
    assert!(
        s.suppress_contact(contacts[1], "bounced", at(50))
            .await
            .unwrap()
    );
    // Suppressing again cancels nothing more.
    assert!(
        s.suppress_contact(contacts[0], "unsubscribed", at(60))
            .await
            .unwrap()
    );
    assert!(
        s.erase_contact(contacts[2], at(70))
            .await
            .unwrap()
            .is_some()
    );
    let count = |cause: &str, n: u64| (cause.to_owned(), n);
    assert_eq!(
        s.touches_cancelled().await.unwrap(),
        [
            count("bounced", 1),
            count("erased", 1),
            count("unsubscribed", 1)
        ]
    );
}

#[tokio::test]
async fn an_unsubscribed_address_silences_the_record_it_was_mailed_to_once() {
    let store = test_store().await;
    let s = &*store;
    let (_, contacts) = enrolled(
        s,
        "offers",
        &["email:offer"],
        step(0, Channel::Email, Intent::Offer),
        "lead",
        1,
        at(10),
    )
    .await;
    let queued = queue_due(s, at(10)).await;
    let claimed = s.claim_dispatch(at(10), 60_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let recipient = s.touch_recipient(queued[0].touch).await.unwrap().unwrap();
    assert_eq!(recipient.contact, contacts[0]);
    let key = recipient
        .address_key
        .expect("an email claim records its address");

    assert!(s.unsubscribe_address(&key, at(60)).await.unwrap());
    assert!(
        !s.unsubscribe_address(&key, at(61)).await.unwrap(),
        "already done"
    );
    let contact = s.contact(contacts[0]).await.unwrap().unwrap();
    assert_eq!(contact.suppressed_at, Some(at(60)));
    assert_eq!(
        s.enrollments_of(contacts[0]).await.unwrap()[0].state,
        "exited"
    );
    assert!(
        s.is_email_suppressed(&Email::parse("offers-0@example.com").unwrap())
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn an_erased_contact_is_gone_and_its_address_stays_suppressed() {
    let store = test_store().await;
    let s = &*store;
    let (_, contacts) = enrolled(
        s,
        "erase",
        &["email:hello"],
        step(0, Channel::Email, Intent::Nurture),
        "lead",
        2,
        at(10),
    )
    .await;
    s.ingest(
        &[track("erase-t1", user("erase-u0"), "Page Viewed", 20)],
        &prospect(),
    )
    .await
    .unwrap();
    let queued = queue_due(s, at(10)).await;
    let mine = queued
        .iter()
        .find(|t| t.contact == contacts[0])
        .unwrap()
        .touch;
    s.claim_dispatch(at(10), 60_000, 10).await.unwrap();

    let erasure = s.erase_contact(contacts[0], at(30)).await.unwrap().unwrap();
    assert_eq!(erasure.email_touches, [mine]);
    assert_eq!(erasure.in_flight, [mine], "its send was leased when erased");
    assert!(s.contact(contacts[0]).await.unwrap().is_none());
    assert!(s.timeline(contacts[0]).await.unwrap().is_empty());
    assert!(s.enrollments_of(contacts[0]).await.unwrap().is_empty());
    assert!(s.touches_of(contacts[0], 10).await.unwrap().is_empty());
    assert!(
        s.erase_contact(contacts[0], at(31))
            .await
            .unwrap()
            .is_none()
    );
    let page = s.list_contacts(&all(10)).await.unwrap();
    assert_eq!(page.contacts.len(), 1, "the other contact stays");
    assert_eq!(page.contacts[0].id, contacts[1]);
    let email = Email::parse("erase-0@example.com").unwrap();
    assert!(s.is_email_suppressed(&email).await.unwrap());

    // The person comes back through an import: a new record, suppressed from the start.
    let back = s
        .import_contacts(
            &[import_row("erase-0@example.com", "Back", None, json!({}))],
            &prospect(),
            at(40),
            tend_store::ImportEnrollment::Now,
        )
        .await
        .unwrap();
    assert_eq!(back.inserted, 1);
    let again = back.stage_changes[0].contact_id;
    assert_ne!(again, contacts[0], "an erased id is never reused");
    let again = s.contact(again).await.unwrap().unwrap();
    assert_eq!(again.suppressed_at, Some(at(40)));
}

#[tokio::test]
async fn an_import_upserts_by_email_and_leaves_unchanged_rows_alone() {
    let store = test_store().await;
    let s = &*store;
    let first = s
        .import_contacts(
            &[
                import_row("a@example.com", "A", None, json!({"plan": "basic"})),
                import_row("b@example.com", "B", Some("lead"), json!({})),
            ],
            &prospect(),
            at(10),
            tend_store::ImportEnrollment::Now,
        )
        .await
        .unwrap();
    assert_eq!((first.inserted, first.updated, first.unchanged), (2, 0, 0));
    assert_eq!(first.stage_changes.len(), 2);
    let b = first.stage_changes[1].contact_id;
    let a = first.stage_changes[0].contact_id;

    let second = s
        .import_contacts(
            &[
                import_row("a@example.com", "A", None, json!({"plan": "basic"})),
                import_row("b@example.com", "B", Some("customer"), json!({"seats": 2})),
            ],
            &prospect(),
            at(20),
            tend_store::ImportEnrollment::Now,
        )
        .await
        .unwrap();
    assert_eq!(
        (second.inserted, second.updated, second.unchanged),
        (0, 1, 1)
    );
    assert_eq!(second.stage_changes.len(), 1);
    assert_eq!(second.stage_changes[0].contact_id, b);
    assert_eq!(second.stage_changes[0].to.as_str(), "customer");
    let a = s.contact(a).await.unwrap().unwrap();
    assert_eq!(
        a.updated_at,
        at(10),
        "an unchanged row leaves the contact untouched"
    );
    let b = s.contact(b).await.unwrap().unwrap();
    assert_eq!(b.updated_at, at(20));
    assert_eq!(b.attributes["seats"], json!(2));
    let moved: Timestamp = at(20);
    assert!(s.timeline(b.id).await.unwrap().iter().any(|entry| matches!(
        entry,
        tend_store::TimelineEntry::StageChange { reason, at, .. } if reason == "import" && *at == moved
    )));
}
