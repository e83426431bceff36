//! Tasks on any backend: an admitted task is on the agenda with its title and minutes;
//! finishing it records the outcome and its event once and moves the enrollment on.

use serde_json::json;
use tend_core::StageName;
use tend_core::pacer::{BudgetState, Channel, Intent};
use tend_store::{DecisionRecord, NextTouch, OutcomeEvent, TaskEnd, TimelineEntry};
use tend_store_conformance::fixtures::*;
use tend_store_conformance::test_store;

#[tokio::test]
async fn a_task_goes_on_the_agenda_and_finishing_it_records_its_outcome_once() {
    let store = test_store().await;
    let s = &*store;
    let (_, contacts) = enrolled(
        s,
        "calls",
        &["task:Call", "email:thanks"],
        step(0, Channel::Task, Intent::Offer),
        "lead",
        1,
        at(10),
    )
    .await;
    let due = s.due_touches(at(10), 10).await.unwrap();
    assert_eq!(due.touches.len(), 1);
    let task = due.touches[0].touch;
    s.record_decisions(
        at(10),
        &[DecisionRecord::OpenTask {
            touch: task,
            title: "Call calls 0".into(),
            minutes: 15,
            due_at: at(20),
            probability: Some(0.3),
        }],
        &BudgetState::default(),
    )
    .await
    .unwrap();

    let agenda = s.tasks(at(0), at(100)).await.unwrap();
    assert_eq!(agenda.len(), 1);
    assert_eq!(agenda[0].title, "Call calls 0");
    assert_eq!(agenda[0].minutes, 15);
    assert_eq!(agenda[0].state, "open");
    assert_eq!(agenda[0].due_at, at(20));
    assert_eq!(
        agenda[0].contact_email.as_deref(),
        Some("calls-0@example.com")
    );
    assert_eq!(s.task(task).await.unwrap().unwrap().process, "calls");
    assert!(s.next_due_at().await.unwrap().is_none(), "nothing pending");

    let customer = StageName::new("customer");
    let event = OutcomeEvent {
        name: "Call Completed",
        message_id: format!("task-{}", task.0),
        properties: json!({"outcome": "replied"}),
        stage: Some(&customer),
    };
    let next = NextTouch {
        step: step(1, Channel::Email, Intent::Nurture),
        due_at: at(40),
        then: None,
    };
    let end = TaskEnd::Done {
        outcome: "replied".into(),
        note: Some("wants a quote".into()),
    };
    assert!(
        s.finish_task(task, at(30), &end, Some(next), Some(&event))
            .await
            .unwrap()
    );
    assert!(
        !s.finish_task(task, at(31), &end, Some(next), Some(&event))
            .await
            .unwrap(),
        "a finished task is not open"
    );

    let done = s.task(task).await.unwrap().unwrap();
    assert_eq!(done.state, "done");
    assert_eq!(done.outcome.as_deref(), Some("replied"));
    assert_eq!(done.note.as_deref(), Some("wants a quote"));
    assert_eq!(done.completed_at, Some(at(30)));
    assert_eq!(
        s.tasks(at(25), at(100)).await.unwrap().len(),
        1,
        "done in range"
    );
    assert!(s.tasks(at(31), at(100)).await.unwrap().is_empty());

    let contact = s.contact(contacts[0]).await.unwrap().unwrap();
    assert_eq!(contact.stage, customer);
    let timeline = s.timeline(contacts[0]).await.unwrap();
    assert_eq!(event_names(&timeline), ["Call Completed"]);
    assert!(timeline.iter().any(|entry| matches!(
        entry,
        TimelineEntry::StageChange { to, reason, .. } if *to == customer && reason == "Call Completed"
    )));

    let enrollments = s.enrollments_of(contacts[0]).await.unwrap();
    assert_eq!(enrollments.len(), 1);
    assert_eq!((enrollments[0].step, enrollments[0].touches), (1, 1));
    let touches = s.touches_of(contacts[0], 10).await.unwrap();
    assert_eq!(touches.len(), 2);
    assert_eq!(
        (touches[0].channel.as_str(), touches[0].state.as_str()),
        ("email", "pending")
    );
    assert_eq!(touches[1].probability, Some(0.3));
    assert_eq!(s.next_due_at().await.unwrap(), Some(at(40)));

    let stats = s.pacing_snapshot(at(0), at(30), false).await.unwrap();
    assert_eq!(stats.offer_stats.len(), 1);
    assert_eq!(
        (stats.offer_stats[0].step, stats.offer_stats[0].sent),
        (0, 1)
    );
}

#[tokio::test]
async fn a_skipped_task_completes_the_enrollment_when_nothing_follows() {
    let store = test_store().await;
    let s = &*store;
    let (_, contacts) = enrolled(
        s,
        "visit",
        &["task:Visit"],
        step(0, Channel::Task, Intent::Nurture),
        "lead",
        1,
        at(10),
    )
    .await;
    let task = s.due_touches(at(10), 10).await.unwrap().touches[0].touch;
    s.record_decisions(
        at(10),
        &[DecisionRecord::OpenTask {
            touch: task,
            title: "Visit".into(),
            minutes: 60,
            due_at: at(10),
            probability: None,
        }],
        &BudgetState::default(),
    )
    .await
    .unwrap();
    let end = TaskEnd::Skipped { note: None };
    assert!(s.finish_task(task, at(20), &end, None, None).await.unwrap());
    let view = s.task(task).await.unwrap().unwrap();
    assert_eq!((view.state.as_str(), view.outcome), ("skipped", None));
    let enrollments = s.enrollments_of(contacts[0]).await.unwrap();
    assert_eq!(enrollments[0].state, "completed");
    assert_eq!(
        s.touches_of(contacts[0], 1).await.unwrap()[0]
            .decision
            .as_deref(),
        Some("skip")
    );
}
