//! The Processes page's per-step counts on any backend, from touches the engine's own
//! store calls leave: sent, held back by reason, skipped, offers admitted, and the
//! conversions credited to the last touch before them. (SQLite's query plans for
//! these counts are checked in tend-store-sqlite's tests.)

use std::collections::BTreeMap;
use tend_core::StageName;
use tend_core::pacer::{BudgetState, Channel, Intent, Reason};
use tend_store::{DecisionRecord, DispatchResult, StepCounts};
use tend_store_conformance::fixtures::*;
use tend_store_conformance::test_store;

#[tokio::test]
async fn each_step_counts_its_touches_offers_and_the_conversions_it_was_last_before() {
    let store = test_store().await;
    let s = &*store;
    let customer = StageName::new("customer");
    let (_, contacts) = enrolled(
        s,
        "quote",
        &["email:offer"],
        step(0, Channel::Email, Intent::Offer),
        "lead",
        6,
        at(10),
    )
    .await;
    // Another process's touches are not this one's.
    enrolled(
        s,
        "news",
        &["email:news"],
        step(0, Channel::Email, Intent::Nurture),
        "prospect",
        1,
        at(10),
    )
    .await;
    let due = s.due_touches(at(10), 10).await.unwrap();
    let touch_of = |n: usize| {
        due.touches
            .iter()
            .find(|t| t.contact == contacts[n])
            .expect("a touch per contact")
            .touch
    };
    s.record_decisions(
        at(10),
        &[
            DecisionRecord::Queue {
                touch: touch_of(0),
                probability: Some(0.5),
            },
            DecisionRecord::Queue {
                touch: touch_of(1),
                probability: Some(0.5),
            },
            DecisionRecord::Defer {
                touch: touch_of(2),
                until: at(500),
                reason: Reason::Capacity,
            },
            DecisionRecord::Skip {
                touch: touch_of(3),
                reason: Reason::FrequencyCap,
                end_enrollment: false,
            },
            // Admitted and not sent yet; the sixth contact's touch is not decided.
            DecisionRecord::Queue {
                touch: touch_of(4),
                probability: Some(0.5),
            },
        ],
        &BudgetState::default(),
    )
    .await
    .unwrap();
    let claimed = s.claim_dispatch(at(10), 60_000, 10).await.unwrap();
    let ours: Vec<_> = claimed
        .iter()
        .filter(|c| c.touch == touch_of(0) || c.touch == touch_of(1))
        .map(|c| {
            let result = if c.touch == touch_of(0) {
                DispatchResult::Delivered { next: None }
            } else {
                DispatchResult::Failed {
                    error: "550 refused".into(),
                    next: None,
                }
            };
            (c.lease(), at(20), result)
        })
        .collect();
    assert_eq!(ours.len(), 2);
    s.finish_and_claim(&ours, at(20), 60_000, 0).await.unwrap();
    // The first contact converts after the send; a contact with nothing admitted
    // before converting credits no step; a later entry into the stage is no second
    // conversion.
    s.set_contact_stage(contacts[0], &customer, "ann@example.com", at(30))
        .await
        .unwrap();
    s.set_contact_stage(contacts[2], &customer, "ann@example.com", at(30))
        .await
        .unwrap();

    let counts = s.process_step_counts("quote", &customer).await.unwrap();
    assert_eq!(
        counts,
        vec![StepCounts {
            step: 0,
            pending: 1,
            held: BTreeMap::from([("capacity".into(), 1)]),
            in_progress: 1,
            sent: 1,
            failed: 1,
            skipped: 1,
            offers: 3,
            conversions: 1,
            ..StepCounts::default()
        }]
    );
    assert_eq!(
        s.process_step_counts("never-loaded", &customer)
            .await
            .unwrap(),
        vec![]
    );
}
