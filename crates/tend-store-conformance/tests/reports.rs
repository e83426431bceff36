//! Reports and pacing counts on any backend: held-back touches by reason, the funnel,
//! conversions with the touches before them, admissions, the work log, and the
//! enrollments nearest their `max_gap` deadline.

use tend_core::StageName;
use tend_core::pacer::{BudgetState, Channel, Intent, Reason};
use tend_store::{DecisionRecord, EngineAction};
use tend_store_conformance::fixtures::*;
use tend_store_conformance::test_store;

#[tokio::test]
async fn held_touches_admissions_conversions_work_and_neglect_are_counted() {
    let store = test_store().await;
    let s = &*store;
    let (process, contacts) = enrolled(
        s,
        "warm",
        &["email:offer"],
        step(0, Channel::Email, Intent::Offer),
        "lead",
        2,
        at(10),
    )
    .await;
    let due = s.due_touches(at(10), 10).await.unwrap();
    assert_eq!(due.touches.len(), 2);
    assert_eq!(due.contacts.len(), 2);
    let (sent, held) = (&due.touches[0], &due.touches[1]);
    s.record_decisions(
        at(10),
        &[
            DecisionRecord::Queue {
                touch: sent.touch,
                probability: Some(0.4),
            },
            DecisionRecord::Defer {
                touch: held.touch,
                until: at(500),
                reason: Reason::Capacity,
            },
        ],
        &BudgetState::default(),
    )
    .await
    .unwrap();

    let pace = s.pace_counts().await.unwrap();
    assert_eq!(pace.held, [("capacity".to_owned(), 1)]);
    assert_eq!(pace.enrolled, [(process, 2)]);
    let held_list = s.held_touches("capacity", 10).await.unwrap();
    assert_eq!(held_list.len(), 1);
    assert_eq!(held_list[0].id, held.touch);
    assert_eq!(held_list[0].until, Some(at(500)));
    assert_eq!(
        s.admitted_since(at(0)).await.unwrap(),
        [(at(10), Channel::Email)]
    );
    assert!(s.admitted_since(at(11)).await.unwrap().is_empty());

    let snapshot = s.pacing_snapshot(at(0), at(20), true).await.unwrap();
    assert!(
        (snapshot.expected_in_flight - 0.4 * 0.5).abs() < 1e-9,
        "{snapshot:?}"
    );
    assert_eq!(snapshot.in_flight.len(), 1);
    assert_eq!(snapshot.in_flight[0].offers, 1);

    // Work opened and closed: logged, never below zero; a close wakes held offers.
    let cursor = s.start_signal_cursor().await.unwrap();
    let applied = s
        .apply_signals(
            cursor,
            cursor,
            &[
                EngineAction::OpenWork(1.0),
                EngineAction::OpenWork(-1.0),
                EngineAction::OpenWork(-1.0),
                EngineAction::Responded {
                    contact: sent.contact,
                    since: at(0),
                },
            ],
            at(100),
        )
        .await
        .unwrap();
    assert_eq!((applied.work_closed, applied.responses), (2, 1));
    let work = s.work_log_since(at(0)).await.unwrap();
    assert_eq!(work, [(at(100), 1.0), (at(100), -1.0), (at(100), -1.0)]);
    let snapshot = s.pacing_snapshot(at(0), at(100), false).await.unwrap();
    assert_eq!(snapshot.open_work, 0.0);
    assert_eq!(snapshot.expected_in_flight, 0.0, "the offer was answered");
    assert_eq!(snapshot.offer_stats[0].responded, 1);
    assert_eq!(s.wake_capacity_held(at(100), 10).await.unwrap(), 1);
    assert_eq!(s.next_due_at().await.unwrap(), Some(at(100)));

    // The contact not touched yet is nearest its deadline.
    let gap_ms = 3_600_000;
    let neglect = s.neglect(&[(process, gap_ms)], None, 10).await.unwrap();
    assert_eq!(neglect.len(), 2);
    assert_eq!(neglect[0].contact_id, held.contact);
    assert_eq!(neglect[0].deadline, later(at(5), gap_ms));
    assert_eq!(neglect[1].contact_id, sent.contact);
    assert_eq!(neglect[1].deadline, later(at(10), gap_ms));
    let before = s
        .neglect(&[(process, gap_ms)], Some(later(at(6), gap_ms)), 10)
        .await
        .unwrap();
    assert_eq!(before.len(), 1);
    assert!(s.neglect(&[], None, 10).await.unwrap().is_empty());

    // A stage move by hand: the funnel counts it and conversions count the touches
    // admitted before it.
    let customer = StageName::new("customer");
    assert!(
        s.set_contact_stage(sent.contact, &customer, "owner@example.com", at(600))
            .await
            .unwrap()
    );
    let funnel = s.funnel(at(0), at(1_000)).await.unwrap();
    let mut stages = funnel.stages.clone();
    stages.sort();
    assert_eq!(stages, [("customer".to_owned(), 1), ("lead".to_owned(), 1)]);
    let mut moves = funnel.moves.clone();
    moves.sort();
    assert_eq!(
        moves,
        [
            (None, "lead".to_owned(), 2),
            (Some("lead".to_owned()), "customer".to_owned(), 1)
        ]
    );
    let conversions = s.conversions(&customer).await.unwrap();
    assert_eq!(conversions.len(), 1);
    assert_eq!(
        (
            conversions[0].contact,
            conversions[0].at,
            conversions[0].touches
        ),
        (sent.contact, at(600), 1)
    );
    assert!(contacts.contains(&sent.contact));
}

#[tokio::test]
async fn neglect_orders_every_process_by_deadline_from_the_contacts_last_touch() {
    let store = test_store().await;
    let s = &*store;
    let (first, contacts) = enrolled(
        s,
        "first",
        &["email:hello"],
        step(0, Channel::Email, Intent::Nurture),
        "lead",
        2,
        at(10),
    )
    .await;
    // The same two leads in a second process with a longer gap, its first touch far off.
    let lead = StageName::new("lead");
    let second = s
        .sync_process(&tend_store::ProcessSync {
            key: "second",
            steps: &["email:later".to_owned()],
            previous: None,
            moves: &[],
            backfill: Some(tend_store::Backfill {
                stage: &lead,
                first: step(0, Channel::Email, Intent::Nurture),
                due_at: at(100_000),
            }),
            at: at(5),
        })
        .await
        .unwrap();
    assert_eq!(second.enrolled, 2);
    // One lead is touched by the first process at 10 s: the deadline of both of its
    // enrollments runs from then, the other lead's from the enrollment at 5 s.
    let due = s.due_touches(at(10), 10).await.unwrap();
    assert_eq!(due.touches.len(), 2);
    let touched = due.touches[0].contact;
    let untouched = due.touches[1].contact;
    s.record_decisions(
        at(10),
        &[DecisionRecord::Queue {
            touch: due.touches[0].touch,
            probability: None,
        }],
        &BudgetState::default(),
    )
    .await
    .unwrap();
    assert!(contacts.contains(&touched) && contacts.contains(&untouched));

    let hour = 3_600_000;
    let gaps = [(first, hour), (second.process_id, 2 * hour)];
    let rows = s.neglect(&gaps, None, 10).await.unwrap();
    let seen: Vec<_> = rows
        .iter()
        .map(|r| (r.process_id, r.contact_id, r.deadline))
        .collect();
    assert_eq!(
        seen,
        [
            (first, untouched, later(at(5), hour)),
            (first, touched, later(at(10), hour)),
            (second.process_id, untouched, later(at(5), 2 * hour)),
            (second.process_id, touched, later(at(10), 2 * hour)),
        ]
    );
    assert_eq!(rows[1].last_touch_at, Some(at(10)));
    // The limit holds over all processes together, earliest deadline first.
    let three = s.neglect(&gaps, None, 3).await.unwrap();
    assert_eq!(three.len(), 3);
    assert_eq!(three[2].process_id, second.process_id);
    // Only deadlines before `before`: both of the first process's, none of the second's.
    let soon = s
        .neglect(&gaps, Some(later(at(11), hour)), 10)
        .await
        .unwrap();
    assert_eq!(soon.len(), 2);
    assert!(soon.iter().all(|r| r.process_id == first));
}

#[tokio::test]
async fn a_paused_enrollment_is_neither_neglected_nor_owed_until_resumed() {
    let store = test_store().await;
    let s = &*store;
    let (process, contacts) = enrolled(
        s,
        "first",
        &["email:hello"],
        step(0, Channel::Email, Intent::Nurture),
        "lead",
        2,
        at(100_000),
    )
    .await;
    let paused_contact = contacts[0];
    let enrollment = s.enrollments_of(paused_contact).await.unwrap()[0].id;
    assert!(
        s.set_enrollment_paused(
            paused_contact,
            enrollment,
            true,
            "owner@example.com",
            at(20)
        )
        .await
        .unwrap()
    );
    let hour = 3_600_000;
    let neglected: Vec<_> = s
        .neglect(&[(process, hour)], None, 10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.contact_id)
        .collect();
    assert_eq!(
        neglected,
        [contacts[1]],
        "the owner paused the other on purpose"
    );
    let counts = s.pace_counts().await.unwrap();
    assert_eq!(counts.enrolled, [(process, 2)]);
    assert_eq!(counts.paused, [(process, 1)]);

    assert!(
        s.set_enrollment_paused(
            paused_contact,
            enrollment,
            false,
            "owner@example.com",
            at(30)
        )
        .await
        .unwrap()
    );
    assert_eq!(
        s.neglect(&[(process, hour)], None, 10).await.unwrap().len(),
        2
    );
    assert!(s.pace_counts().await.unwrap().paused.is_empty());
}

/// With response delays on, the pacer reads offers in flight grouped by step and by
/// six-hour age (whole buckets, youngest first), each group with its count and summed
/// probability; the even fade's sum read alongside is the one read without grouping.
#[tokio::test]
async fn offers_in_flight_are_grouped_by_step_and_six_hour_age() {
    let store = test_store().await;
    let s = &*store;
    enrolled(
        s,
        "aged",
        &["email:offer"],
        step(0, Channel::Email, Intent::Offer),
        "lead",
        4,
        at(10),
    )
    .await;
    let due = s.due_touches(at(10), 10).await.unwrap();
    assert_eq!(due.touches.len(), 4);
    // Admitted at three moments, with their own probabilities.
    for (touch, second, probability) in [
        (0, 10, 0.1),
        (1, 3_610, 0.2),
        (2, 30_010, 0.3),
        (3, 30_010, 0.4),
    ] {
        s.record_decisions(
            at(second),
            &[DecisionRecord::Queue {
                touch: due.touches[touch].touch,
                probability: Some(probability),
            }],
            &BudgetState::default(),
        )
        .await
        .unwrap();
    }
    let now = at(50_010);
    let grouped = s.pacing_snapshot(at(0), now, true).await.unwrap();
    let groups: Vec<(u32, u64, f64)> = grouped
        .in_flight
        .iter()
        .map(|g| (g.age_hours, g.offers, (g.probability * 1e9).round() / 1e9))
        .collect();
    // 20,000 s old: the first six hours; 46,400 and 50,000 s old: hours 12 to 18.
    assert_eq!(groups, [(0, 2, 0.7), (12, 2, 0.3)], "{grouped:?}");
    let even = s.pacing_snapshot(at(0), now, false).await.unwrap();
    assert!(even.in_flight.is_empty());
    assert!(
        (grouped.expected_in_flight - even.expected_in_flight).abs() < 1e-12,
        "{} vs {}",
        grouped.expected_in_flight,
        even.expected_in_flight
    );
    // Each offer counts its probability times the share of the window it is young.
    let window = 50_010.0;
    let expected = [
        (0.1, 10.0),
        (0.2, 3_610.0),
        (0.3, 30_010.0),
        (0.4, 30_010.0),
    ]
    .iter()
    .map(|(p, admitted)| p * admitted / window)
    .sum::<f64>();
    assert!((even.expected_in_flight - expected).abs() < 1e-9);
}
