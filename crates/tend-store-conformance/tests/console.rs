//! The console's storage on any backend: people and sessions, actions on contacts,
//! pausing an enrollment (a step that follows while paused waits too), and the lists
//! of planned touches and deliveries (bounces by their records).

use tend_core::StageName;
use tend_core::pacer::{Channel, Intent};
use tend_store::feedback::{FeedbackAbout, FeedbackKind, FeedbackOutcome, MailFeedback};
use tend_store::{ConsoleAction, DispatchResult, NextTouch, Role};
use tend_store_conformance::fixtures::*;
use tend_store_conformance::test_store;

#[tokio::test]
async fn people_and_sessions_are_kept_and_a_new_password_ends_old_sessions() {
    let store = test_store().await;
    let s = &*store;
    let (owner, created) = s
        .upsert_user("ann@example.com", Role::Owner, "hash-1", at(1))
        .await
        .unwrap();
    assert!(created);
    s.upsert_user("bo@example.com", Role::Staff, "hash-2", at(2))
        .await
        .unwrap();
    s.create_session(owner.id, "session-1", "csrf-1", at(3), at(100))
        .await
        .unwrap();
    let session = s.session("session-1", at(50)).await.unwrap().unwrap();
    assert_eq!(
        (session.user.id, session.csrf.as_str()),
        (owner.id, "csrf-1")
    );
    assert!(
        s.session("session-1", at(100)).await.unwrap().is_none(),
        "expired"
    );
    assert!(s.session("other", at(50)).await.unwrap().is_none());

    let (again, created) = s
        .upsert_user("ann@example.com", Role::Staff, "hash-3", at(4))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(
        (again.id, again.role, again.password_hash.as_str()),
        (owner.id, Role::Staff, "hash-3")
    );
    assert!(s.session("session-1", at(50)).await.unwrap().is_none());
    let emails: Vec<String> = s
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.email)
        .collect();
    assert_eq!(emails, ["ann@example.com", "bo@example.com"]);
    assert_eq!(
        s.user_by_email("bo@example.com")
            .await
            .unwrap()
            .unwrap()
            .role,
        Role::Staff
    );

    s.create_session(owner.id, "session-2", "csrf-2", at(5), at(100))
        .await
        .unwrap();
    s.delete_session("session-2").await.unwrap();
    assert!(s.session("session-2", at(50)).await.unwrap().is_none());
}

#[tokio::test]
async fn stage_changes_pauses_and_actions_by_hand_are_recorded() {
    let store = test_store().await;
    let s = &*store;
    let (_, contacts) = enrolled(
        s,
        "care",
        &["email:hello"],
        step(0, Channel::Email, Intent::Nurture),
        "lead",
        1,
        at(10),
    )
    .await;
    let id = contacts[0];
    let customer = StageName::new("customer");
    assert!(
        s.set_contact_stage(id, &customer, "ann@example.com", at(20))
            .await
            .unwrap()
    );
    assert!(
        !s.set_contact_stage(id, &customer, "ann@example.com", at(21))
            .await
            .unwrap()
    );
    let enrollment = s.enrollments_of(id).await.unwrap()[0].id;
    assert!(
        s.set_enrollment_paused(id, enrollment, true, "ann@example.com", at(30))
            .await
            .unwrap()
    );
    assert!(
        !s.set_enrollment_paused(id, enrollment, true, "ann@example.com", at(31))
            .await
            .unwrap()
    );
    assert_eq!(s.paused_enrollments(id).await.unwrap(), [enrollment]);
    assert!(
        s.due_touches(at(1_000_000), 10)
            .await
            .unwrap()
            .touches
            .is_empty(),
        "parked"
    );
    assert!(
        s.set_enrollment_paused(id, enrollment, false, "ann@example.com", at(40))
            .await
            .unwrap()
    );
    assert!(s.paused_enrollments(id).await.unwrap().is_empty());
    assert_eq!(s.next_due_at().await.unwrap(), Some(at(40)));
    s.record_console_action(&ConsoleAction {
        contact_id: id,
        by: "bo@example.com".into(),
        action: "note".into(),
        detail: "called back".into(),
        at: at(50),
    })
    .await
    .unwrap();
    let actions: Vec<String> = s
        .console_actions(id)
        .await
        .unwrap()
        .into_iter()
        .map(|a| format!("{} {} {}", a.by, a.action, a.detail))
        .collect();
    assert_eq!(
        actions,
        [
            "ann@example.com stage stage lead → customer",
            "ann@example.com pause paused care",
            "ann@example.com resume resumed care",
            "bo@example.com note called back",
        ]
    );
    let planned = s.planned_touches(at(0), at(100), 10).await.unwrap();
    assert_eq!(planned.len(), 1);
    assert_eq!((planned[0].contact_id, planned[0].due_at), (id, at(40)));
    assert!(
        s.planned_touches(at(41), at(100), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn deliveries_list_sends_retries_failures_and_bounces_by_their_records_newest_first() {
    let store = test_store().await;
    let s = &*store;
    let (_, contacts) = enrolled(
        s,
        "mail",
        &["email:hello"],
        step(0, Channel::Email, Intent::Nurture),
        "lead",
        5,
        at(10),
    )
    .await;
    queue_due(s, at(10)).await;
    let claimed = s.claim_dispatch(at(10), 60_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 5);
    let results = [
        DispatchResult::Delivered { next: None },
        DispatchResult::Retry {
            error: "421 try later".into(),
            retry_at: at(100),
        },
        // Refused by the server for good: the address is suppressed as bounced.
        DispatchResult::Bounced {
            error: "550 5.1.1 no such user".into(),
        },
        // Sent, and a bounce report about it comes later.
        DispatchResult::Delivered { next: None },
        // A failure whose text says "bounce" is not a bounce without a record.
        DispatchResult::Failed {
            error: "554 bounce-handling relay misconfigured".into(),
            next: None,
        },
    ];
    let finished: Vec<_> = claimed
        .iter()
        .zip(results)
        .map(|(c, r)| (c.lease(), at(20), r))
        .collect();
    s.finish_and_claim(&finished, at(20), 60_000, 0)
        .await
        .unwrap();
    let reported = s
        .record_mail_feedback(
            &MailFeedback {
                source: "imap:<bounce-1@example.net>",
                kind: FeedbackKind::HardBounce,
                about: FeedbackAbout::Touch(claimed[3].touch.0),
                detail: "5.1.1",
                soft_bounce_limit: 2,
            },
            at(30),
        )
        .await
        .unwrap();
    assert_eq!(reported, FeedbackOutcome::Recorded { suppressed: true });

    let all = s.deliveries(None, None, 10).await.unwrap();
    let statuses: Vec<(i64, &str)> = all.iter().map(|d| (d.id.0, d.status.as_str())).collect();
    let touch = |i: usize| claimed[i].touch.0;
    let mut expected = vec![
        (touch(0), "sent"),
        (touch(1), "retrying"),
        (touch(2), "bounced"),
        (touch(3), "bounced"),
        (touch(4), "failed"),
    ];
    expected.sort_by_key(|(id, _)| -id);
    assert_eq!(statuses, expected);
    let ids = |status: &str| {
        let status = status.to_owned();
        async move {
            let mut ids: Vec<i64> = s
                .deliveries(Some(&status), None, 10)
                .await
                .unwrap()
                .iter()
                .map(|d| d.id.0)
                .collect();
            ids.sort();
            ids
        }
    };
    assert_eq!(ids("sent").await, [touch(0)]);
    assert_eq!(ids("retrying").await, [touch(1)]);
    let mut bounced = vec![touch(2), touch(3)];
    bounced.sort();
    assert_eq!(ids("bounced").await, bounced);
    assert_eq!(ids("failed").await, [touch(4)]);
    let of_first = s
        .deliveries(None, Some(claimed[0].contact.id), 10)
        .await
        .unwrap();
    assert_eq!(of_first.len(), 1);
    assert_eq!(of_first[0].status, "sent");
    let bounced_contact = s.contact(claimed[2].contact.id).await.unwrap().unwrap();
    assert!(bounced_contact.suppressed_at.is_some());
    assert_eq!(
        s.enrollments_of(claimed[0].contact.id).await.unwrap()[0].state,
        "completed"
    );
    assert_eq!(contacts.len(), 5);
}

#[tokio::test]
async fn a_step_that_follows_while_paused_waits_for_the_resume() {
    let store = test_store().await;
    let s = &*store;
    let (_, contacts) = enrolled(
        s,
        "care",
        &["email:hello", "email:again"],
        step(0, Channel::Email, Intent::Nurture),
        "lead",
        1,
        at(10),
    )
    .await;
    let id = contacts[0];
    queue_due(s, at(10)).await;
    let claimed = s.claim_dispatch(at(10), 60_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    // Paused while its first email is on its way.
    let enrollment = s.enrollments_of(id).await.unwrap()[0].id;
    assert!(
        s.set_enrollment_paused(id, enrollment, true, "ann@example.com", at(15))
            .await
            .unwrap()
    );
    let next = NextTouch {
        step: step(1, Channel::Email, Intent::Nurture),
        due_at: at(100),
        then: None,
    };
    s.finish_and_claim(
        &[(
            claimed[0].lease(),
            at(20),
            DispatchResult::Delivered { next: Some(next) },
        )],
        at(20),
        60_000,
        0,
    )
    .await
    .unwrap();
    assert!(
        s.due_touches(at(1_000_000), 10)
            .await
            .unwrap()
            .touches
            .is_empty(),
        "the second step waits"
    );
    assert!(
        s.planned_touches(at(0), at(1_000_000), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Resumed before it was due: it comes when it was due, not at once.
    assert!(
        s.set_enrollment_paused(id, enrollment, false, "ann@example.com", at(50))
            .await
            .unwrap()
    );
    assert!(s.due_touches(at(99), 10).await.unwrap().touches.is_empty());
    let due = s.due_touches(at(100), 10).await.unwrap().touches;
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].contact, due[0].step), (id, 1));

    // Paused again and resumed after that: it comes at once.
    s.set_enrollment_paused(id, enrollment, true, "ann@example.com", at(60))
        .await
        .unwrap();
    s.set_enrollment_paused(id, enrollment, false, "ann@example.com", at(300))
        .await
        .unwrap();
    assert!(s.due_touches(at(299), 10).await.unwrap().touches.is_empty());
    assert_eq!(s.next_due_at().await.unwrap(), Some(at(300)));
}
