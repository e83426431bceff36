//! The console's storage on any backend: people and sessions, actions on contacts,
//! pausing an enrollment, and the lists of planned touches and deliveries.

use tend_core::StageName;
use tend_core::pacer::{Channel, Intent};
use tend_store::{ConsoleAction, DispatchResult, Role};
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
async fn deliveries_list_sends_retries_and_failures_newest_first() {
    let store = test_store().await;
    let s = &*store;
    let (_, contacts) = enrolled(
        s,
        "mail",
        &["email:hello"],
        step(0, Channel::Email, Intent::Nurture),
        "lead",
        3,
        at(10),
    )
    .await;
    queue_due(s, at(10)).await;
    let claimed = s.claim_dispatch(at(10), 60_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 3);
    let results = [
        DispatchResult::Delivered { next: None },
        DispatchResult::Retry {
            error: "421 try later".into(),
            retry_at: at(100),
        },
        DispatchResult::Bounced {
            error: "550 hard bounce".into(),
        },
    ];
    let finished: Vec<_> = claimed
        .iter()
        .zip(results)
        .map(|(c, r)| (c.touch, at(20), r))
        .collect();
    s.finish_and_claim(&finished, at(20), 60_000, 0)
        .await
        .unwrap();

    let all = s.deliveries(None, None, 10).await.unwrap();
    let statuses: Vec<&str> = all.iter().map(|d| d.status.as_str()).collect();
    assert_eq!(statuses, ["bounced", "retrying", "sent"]);
    assert_eq!(s.deliveries(Some("sent"), None, 10).await.unwrap().len(), 1);
    assert_eq!(
        s.deliveries(Some("retrying"), None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    let bounced = s.deliveries(Some("bounced"), None, 10).await.unwrap();
    assert_eq!(bounced.len(), 1);
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
    assert_eq!(contacts.len(), 3);
}
