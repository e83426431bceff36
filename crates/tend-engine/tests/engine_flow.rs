//! The engine end to end on a real SQLite file, one step at a time on a manual clock:
//! enrollment, steps in order after their waits, tasks, exits, unsubscribe, restarts.

mod harness;

use harness::*;
use tend_store::TaskEnd;

#[tokio::test]
async fn a_new_lead_gets_the_welcome_email_at_once_and_the_next_step_is_planned() {
    let b = Business::start().await;
    let ann = b.lead("u-1", "Ann Smith", "ann@example.com").await;
    b.idle().await;

    let mails = b.sent_emails();
    assert_eq!(mails.len(), 1, "exactly the welcome email");
    let (touch_id, mail) = &mails[0];
    assert!(mail.contains("Subject: Welcome, Ann"), "{mail}");
    assert!(mail.contains(&format!("tend.touch.{touch_id}@")), "{mail}");
    assert!(
        mail.contains("https://tend.example.com/unsubscribe/"),
        "{mail}"
    );

    let touches = b.touches(ann).await;
    assert_eq!(touches.len(), 2, "{touches:#?}");
    assert_eq!(touches[0].state, "sent");
    assert_eq!(touches[0].decision.as_deref(), Some("send"));
    assert_eq!(touches[1].state, "pending");
    assert_eq!(touches[1].channel, "task");
    // The call waits two days after the welcome went out.
    assert_eq!(touches[1].due_at, b.engine.clock().now() + days(2));

    let enrollments = b.store.enrollments_of(ann).await.unwrap();
    assert_eq!(enrollments.len(), 1);
    assert_eq!(enrollments[0].process, "new-inquiry");
    assert_eq!(enrollments[0].step, 1);
    assert_eq!(enrollments[0].touches, 1);
}

#[tokio::test]
async fn nothing_happens_before_a_wait_is_over() {
    let b = Business::start().await;
    let ann = b.lead("u-1", "Ann Smith", "ann@example.com").await;
    b.idle().await;
    b.advance(days(2) - hours(1));
    b.idle().await;
    let touches = b.touches(ann).await;
    assert_eq!(touches[1].state, "pending");
    assert!(touches[1].decided_at.is_none(), "not even looked at yet");
}

#[tokio::test]
async fn a_task_step_waits_on_the_agenda_until_completed_and_its_outcome_moves_the_contact() {
    let b = Business::start().await;
    let ann = b.lead("u-1", "Ann Smith", "ann@example.com").await;
    b.idle().await;
    b.advance(days(2));
    b.idle().await;

    let now = b.engine.clock().now();
    let tasks = b.store.tasks(now - days(1), now + days(1)).await.unwrap();
    assert_eq!(tasks.len(), 1, "{tasks:#?}");
    let task = &tasks[0];
    assert_eq!(task.title, "Call Ann Smith about the kitchen");
    assert_eq!(task.minutes, 15);
    assert_eq!(task.contact_id, ann);
    assert_eq!(task.state, "open");

    // Days pass: the process waits at the task, nothing else is sent, the task stays.
    b.advance(days(7));
    b.idle().await;
    assert_eq!(b.sent_emails().len(), 1);
    let now = b.engine.clock().now();
    let still = b.store.tasks(now, now + days(1)).await.unwrap();
    assert_eq!(still.len(), 1, "an overdue task is still on the agenda");

    // "booked" maps to Order Completed: Ann becomes a customer, leaves the inquiry
    // process and enters the customer process.
    let done = b
        .engine
        .finish_task(
            task.id.0,
            TaskEnd::Done {
                outcome: "booked".into(),
                note: Some("Visit on Friday".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(done.state, "done");
    b.idle().await;
    let contact = b.store.contact(ann).await.unwrap().unwrap();
    assert_eq!(contact.stage.as_str(), "customer");
    let enrollments = b.store.enrollments_of(ann).await.unwrap();
    let by_process = |p: &str| enrollments.iter().find(|e| e.process == p).unwrap();
    assert_eq!(by_process("new-inquiry").state, "exited");
    assert_eq!(by_process("customer").state, "active");
    // The follow-up offer planned after the task was cancelled with the exit.
    let touches = b.touches(ann).await;
    let follow_up = touches
        .iter()
        .find(|t| t.process == "new-inquiry" && t.step == 2)
        .expect("the step after the task was planned");
    assert_eq!(follow_up.state, "cancelled");

    // Completing twice is refused.
    let again = b
        .engine
        .finish_task(
            task.id.0,
            TaskEnd::Done {
                outcome: "booked".into(),
                note: None,
            },
        )
        .await;
    assert!(again.is_err());
}

#[tokio::test]
async fn an_exit_event_ends_the_process_and_cancels_what_was_planned() {
    let b = Business::start().await;
    let ann = b.lead("u-1", "Ann Smith", "ann@example.com").await;
    b.idle().await;
    b.track("u-1", "Order Completed").await;
    b.idle().await;
    b.advance(days(30));
    b.idle().await;
    let touches = b.touches(ann).await;
    let inquiry: Vec<_> = touches
        .iter()
        .filter(|t| t.process == "new-inquiry")
        .collect();
    assert_eq!(inquiry.len(), 2);
    assert_eq!(inquiry[1].state, "cancelled", "{inquiry:#?}");
    // Welcome, then the customer thank-you a day after the order.
    assert_eq!(b.sent_emails().len(), 2);
    assert_eq!(b.emails_containing("Subject: Thank you"), 1);
}

#[tokio::test]
async fn an_unsubscribed_contact_is_never_touched_again() {
    let b = Business::start().await;
    let ann = b.lead("u-1", "Ann Smith", "ann@example.com").await;
    b.idle().await;
    assert!(b.engine.unsubscribe(ann).await.unwrap());
    for _ in 0..20 {
        b.advance(days(3));
        b.idle().await;
    }
    assert_eq!(
        b.sent_emails().len(),
        1,
        "only the welcome before unsubscribing"
    );
    let now = b.engine.clock().now();
    assert!(b.store.tasks(now - days(90), now).await.unwrap().is_empty());
    let enrollments = b.store.enrollments_of(ann).await.unwrap();
    assert_eq!(enrollments[0].state, "exited");
    assert_eq!(enrollments[0].end_reason.as_deref(), Some("unsubscribed"));
    // Becoming a customer later does not enroll a suppressed contact either.
    b.track("u-1", "Order Completed").await;
    b.advance(days(2));
    b.idle().await;
    assert_eq!(b.sent_emails().len(), 1);
}

#[tokio::test]
async fn a_restart_keeps_positions_and_a_removed_step_moves_its_contacts_on() {
    let mut b = Business::start().await;
    let ann = b.lead("u-1", "Ann Smith", "ann@example.com").await;
    b.idle().await;

    // The call task (step 1) is removed while Ann waits for it.
    let without_call = INQUIRY.replace(
        "[[steps]]\nwait = \"2d\"\ntask = \"Call {{ contact.name }} about the kitchen\"\nminutes = 15\nintent = \"offer\"\n",
        "",
    );
    assert_ne!(without_call, INQUIRY);
    let report = b
        .restart(&[("new-inquiry", &without_call), ("customer", CUSTOMER)])
        .await;
    assert_eq!(
        report.removed_steps,
        vec!["new-inquiry: task:Call {{ contact.name }} about the kitchen"]
    );
    assert_eq!(report.moved, 1);

    let enrollments = b.store.enrollments_of(ann).await.unwrap();
    assert_eq!(enrollments[0].step, 1, "now at the follow-up, index 1");
    let touches = b.touches(ann).await;
    assert_eq!(touches[1].state, "pending");
    assert_eq!(
        touches[1].channel, "email",
        "the planned touch is now the follow-up"
    );

    b.advance(days(3));
    b.idle().await;
    assert_eq!(b.emails_containing("Subject: Shall we book a visit?"), 1);

    // A plain restart changes nothing.
    let report = b
        .restart(&[("new-inquiry", &without_call), ("customer", CUSTOMER)])
        .await;
    assert_eq!(report.moved, 0);
    assert!(report.removed_steps.is_empty());
}

#[tokio::test]
async fn a_new_process_enrolls_the_contacts_already_in_its_stage() {
    let mut b = Business::with(CONFIG, &[("customer", CUSTOMER)]).await;
    for i in 0..5 {
        b.lead(&format!("u-{i}"), "Someone", &format!("p{i}@example.com"))
            .await;
    }
    b.idle().await;
    assert!(b.sent_emails().is_empty(), "no process for leads yet");
    let report = b
        .restart(&[("new-inquiry", INQUIRY), ("customer", CUSTOMER)])
        .await;
    assert_eq!(report.added, vec![("new-inquiry".to_owned(), 5)]);
    b.idle().await;
    // The frequency limits do not hold back a first touch.
    assert_eq!(b.emails_containing("Subject: Welcome"), 5);
}

#[tokio::test]
async fn re_entering_a_process_is_off_unless_the_process_allows_it() {
    let b = Business::start().await;
    let ann = b.lead("u-1", "Ann Smith", "ann@example.com").await;
    b.idle().await;
    // Customer, then back to lead: the inquiry process does not start again.
    b.track("u-1", "Order Completed").await;
    b.idle().await;
    b.track("u-1", "Inquiry Received").await;
    b.idle().await;
    let enrollments = b.store.enrollments_of(ann).await.unwrap();
    let inquiry = enrollments
        .iter()
        .filter(|e| e.process == "new-inquiry")
        .count();
    assert_eq!(inquiry, 1);
}

#[tokio::test]
async fn a_contact_without_an_address_fails_the_email_step_and_moves_on() {
    let b = Business::start().await;
    b.track("u-9", "Inquiry Received").await;
    let who = b.contact_of("u-9").await;
    b.idle().await;
    let touches = b.touches(who).await;
    assert_eq!(touches[0].state, "failed");
    assert!(
        touches[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("no email address"),
        "{touches:#?}"
    );
    assert_eq!(
        touches[1].state, "pending",
        "the process went on to the call"
    );
}

#[tokio::test]
async fn budget_usage_holds_across_a_restart() {
    let config = CONFIG
        .replace(
            "hours = \"Mon-Sun 08:00-20:00\"",
            "hours = \"Mon-Sun 00:00-24:00\"",
        )
        .replace(
            "[capacity]",
            // No reserve: the welcomes wait for the accrual like any other email.
            "[budget]\nemails = { per_day = 24, reserve = 0 }\n[capacity]",
        );
    let mut b = Business::with(&config, &[("new-inquiry", INQUIRY), ("customer", CUSTOMER)]).await;
    for n in 0..20 {
        b.lead(&format!("u-{n}"), "Someone", &format!("p{n}@example.com"))
            .await;
    }
    b.idle().await;
    // 10:00: ten of the day's 24 emails have accrued, one an hour.
    assert_eq!(b.sent_emails().len(), 10);
    b.restart(&[("new-inquiry", INQUIRY), ("customer", CUSTOMER)])
        .await;
    b.idle().await;
    assert_eq!(
        b.sent_emails().len(),
        10,
        "a restart does not hand out the day again"
    );
    // The next one accrues at 11:00 (a moment after, to absorb rounding).
    b.advance(hours(1) + jiff::SignedDuration::from_secs(1));
    b.idle().await;
    assert_eq!(b.sent_emails().len(), 11);
}

const OFFERS: &str = r#"
name = "Offers"
enroll = { event = "Inquiry Received" }
max_gap = "10d"
[[steps]]
wait = "0d"
email = "follow-up"
intent = "offer"
"#;

#[tokio::test]
async fn responses_to_an_offer_step_raise_its_learned_probability() {
    // Offers fade with the step's learned response delays, from a prior of 3 days.
    let config = CONFIG.replace("[capacity]", "[capacity]\nresponse_delay = \"3d\"");
    let b = Business::with(&config, &[("offers", OFFERS)]).await;
    let ann = b.lead("u-1", "Ann", "ann@example.com").await;
    b.idle().await;
    let first = &b.touches(ann).await[0];
    // The configured prior: 0.2.
    assert_eq!(first.probability, Some(0.2));
    // Ann books a job: work opened, attributed to the offer she received.
    b.track("u-1", "Job Opened").await;
    b.idle().await;
    let first = &b.touches(ann).await[0];
    assert!(first.responded_at.is_some(), "{first:?}");
    let snapshot = b
        .store
        .pacing_snapshot(
            b.engine.clock().now() - days(14),
            b.engine.clock().now(),
            true,
        )
        .await
        .unwrap();
    assert_eq!(snapshot.open_work, 1.0);
    assert!(
        snapshot.in_flight.is_empty(),
        "an answered offer is no longer in flight"
    );
    assert_eq!(snapshot.offer_stats[0].sent, 1);
    assert_eq!(snapshot.offer_stats[0].responded, 1);
    // Ann answered at once: one delay of zero days observed.
    assert_eq!(snapshot.offer_stats[0].delays, 1);
    assert!(snapshot.offer_stats[0].delay_days_sum < 1e-6);

    // The next contact's offer carries the posterior: Beta(2 + 1, 8 + 0) → 3/11.
    let bob = b.lead("u-2", "Bob", "bob@example.com").await;
    b.idle().await;
    let p = b.touches(bob).await[0].probability.unwrap();
    assert!((p - 3.0 / 11.0).abs() < 1e-9, "{p}");

    // `/api/pace` shows what the step has learned. Its mean response delay is the
    // prior (3 days, worth 5 answers) pulled toward Ann's instant answer: 2.5 days.
    let pace = b.engine.pace().await.unwrap();
    let step = &pace.offers[0];
    assert_eq!((step.process.as_str(), step.step), ("offers", 0));
    assert_eq!((step.sent, step.responded, step.in_flight), (2, 1, 1));
    assert!((step.mean_response_days - 2.5).abs() < 1e-9, "{step:?}");
    let fresh = step.expected_work;
    assert!(fresh > 0.2 && fresh <= 3.0 / 11.0, "{fresh}");
    assert_eq!(pace.capacity.expected_in_flight, fresh);

    // Unanswered for a week, Bob's offer is unlikely to bring work any more, and
    // stops holding room.
    b.advance(days(7));
    b.idle().await;
    let pace = b.engine.pace().await.unwrap();
    let stale = pace.offers[0].expected_work;
    assert!(stale < fresh / 10.0, "{stale} vs {fresh}");
    assert_eq!(pace.capacity.expected_in_flight, stale);
}
