//! The pacer's other decisions on any backend: a keep-warm in place of a held offer,
//! an offer given up for a keep-warm, a skip that ends the enrollment; leases given back
//! at start; a process file edited under enrolled contacts; a finished sequence handing
//! its contact to the process its `then` names.

use tend_core::pacer::{BudgetState, Channel, Intent, Reason};
use tend_store::{DecisionRecord, DispatchResult, NextTouch, ProcessSync, StepMove, TouchKind};
use tend_store_conformance::fixtures::*;
use tend_store_conformance::test_store;

#[tokio::test]
async fn keep_warm_substitutes_skips_released_leases_and_edited_steps() {
    let store = test_store().await;
    let s = &*store;
    let (process, contacts) = enrolled(
        s,
        "seq",
        &["email:a", "email:b"],
        step(0, Channel::Email, Intent::Offer),
        "lead",
        2,
        at(10),
    )
    .await;
    let due = s.due_touches(at(10), 10).await.unwrap();
    let (held, given_up) = (&due.touches[0], &due.touches[1]);
    s.record_decisions(
        at(10),
        &[
            DecisionRecord::Substitute {
                touch: held.touch,
                retry_at: at(100),
            },
            DecisionRecord::Replace {
                touch: given_up.touch,
                next: Some(NextTouch {
                    step: step(1, Channel::Email, Intent::Nurture),
                    due_at: at(50),
                    then: None,
                }),
            },
        ],
        &BudgetState::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        s.pace_counts().await.unwrap().held,
        [("capacity".to_owned(), 1)]
    );
    assert_eq!(s.next_due_at().await.unwrap(), Some(at(50)));
    assert_eq!(s.next_dispatch_at().await.unwrap(), Some(at(10)));
    let enrollments = s.enrollments_of(given_up.contact).await.unwrap();
    assert_eq!((enrollments[0].step, enrollments[0].touches), (1, 1));

    // Both keep-warms are claimed, then given back as a restart does.
    let claimed = s.claim_dispatch(at(10), 60_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(claimed.iter().all(|c| c.kind == TouchKind::KeepWarm));
    assert_eq!(s.release_all_claims(at(20)).await.unwrap(), 2);
    assert_eq!(s.next_dispatch_at().await.unwrap(), Some(at(20)));
    let claimed = s.claim_dispatch(at(20), 60_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(claimed.iter().all(|c| c.attempts == 2));
    s.finish_dispatch(
        claimed[0].lease(),
        at(21),
        &DispatchResult::Failed {
            error: "554 rejected".into(),
            next: None,
        },
    )
    .await
    .unwrap();
    s.finish_dispatch(
        claimed[1].lease(),
        at(21),
        &DispatchResult::Delivered { next: None },
    )
    .await
    .unwrap();
    assert_eq!(s.next_dispatch_at().await.unwrap(), None);
    // A keep-warm leaves its enrollment where it is.
    assert_eq!(
        s.enrollments_of(contacts[0]).await.unwrap()[0].state,
        "active"
    );

    // The file loses its first step: those at it move to the new first, those at the
    // removed second step complete.
    let old = vec!["email:a".to_owned(), "email:b".to_owned()];
    let new = vec!["email:b".to_owned()];
    let moves = [
        StepMove {
            from: 0,
            to: Some(step(0, Channel::Email, Intent::Nurture)),
        },
        StepMove { from: 1, to: None },
    ];
    let synced = s
        .sync_process(&ProcessSync {
            key: "seq",
            steps: &new,
            previous: Some(&old),
            moves: &moves,
            backfill: None,
            at: at(60),
        })
        .await
        .unwrap();
    assert_eq!(synced.process_id, process);
    assert_eq!((synced.moved, synced.completed), (1, 1));
    let stored = s.stored_processes().await.unwrap();
    assert_eq!(stored[0].steps, new);
    let edited_again = s
        .sync_process(&ProcessSync {
            key: "seq",
            steps: &new,
            previous: Some(&old),
            moves: &[],
            backfill: None,
            at: at(61),
        })
        .await;
    assert!(matches!(
        edited_again,
        Err(tend_store::StoreError::Conflict(_))
    ));
    let completed = s.enrollments_of(given_up.contact).await.unwrap();
    assert_eq!(completed[0].state, "completed");
    assert_eq!(
        s.touches_of(given_up.contact, 1).await.unwrap()[0].state,
        "cancelled"
    );

    // The held offer comes due and is skipped for good, ending its enrollment.
    let due = s.due_touches(at(100), 10).await.unwrap();
    assert_eq!(due.touches.len(), 1);
    assert_eq!(due.touches[0].channel, Channel::Email);
    assert_eq!(
        due.contacts[0].recent.len(),
        1,
        "the keep-warm counts as a touch"
    );
    s.record_decisions(
        at(100),
        &[DecisionRecord::Skip {
            touch: due.touches[0].touch,
            reason: Reason::Exited,
            end_enrollment: true,
        }],
        &BudgetState::default(),
    )
    .await
    .unwrap();
    let ended = s.enrollments_of(held.contact).await.unwrap();
    assert_eq!(
        (ended[0].state.as_str(), ended[0].end_reason.as_deref()),
        ("exited", Some("exited"))
    );
    assert_eq!(s.next_due_at().await.unwrap(), None);
}

#[tokio::test]
async fn a_finished_sequence_hands_its_contact_to_the_process_it_names() {
    let store = test_store().await;
    let s = &*store;
    let evergreen_steps = vec!["email:news".to_owned()];
    let evergreen = s
        .sync_process(&ProcessSync {
            key: "evergreen",
            steps: &evergreen_steps,
            previous: None,
            moves: &[],
            backfill: None,
            at: at(1),
        })
        .await
        .unwrap()
        .process_id;
    let (_, contacts) = enrolled(
        s,
        "onboard",
        &["email:welcome"],
        step(0, Channel::Email, Intent::Nurture),
        "customer",
        1,
        at(10),
    )
    .await;
    queue_due(s, at(10)).await;
    let claimed = s.claim_dispatch(at(10), 60_000, 10).await.unwrap();
    let then = NextTouch {
        step: step(0, Channel::Email, Intent::Nurture),
        due_at: at(1_000),
        then: Some(evergreen),
    };
    s.finish_and_claim(
        &[(
            claimed[0].lease(),
            at(11),
            DispatchResult::Delivered { next: Some(then) },
        )],
        at(11),
        60_000,
        10,
    )
    .await
    .unwrap();
    let enrollments = s.enrollments_of(contacts[0]).await.unwrap();
    let states: Vec<(&str, &str)> = enrollments
        .iter()
        .map(|e| (e.process.as_str(), e.state.as_str()))
        .collect();
    assert_eq!(states, [("evergreen", "active"), ("onboard", "completed")]);
    assert_eq!(s.next_due_at().await.unwrap(), Some(at(1_000)));
}
