//! Relationships after the sequence: a process's `then` moves a contact who finished
//! its last step into the named process, which may name itself to go round again.

mod harness;

use harness::*;

const SHORT: &str = r#"
name = "Short"
enroll = { stage = "lead" }
max_gap = "10d"
then = "evergreen"
[[steps]]
wait = "0d"
email = "welcome"
intent = "nurture"
"#;

const EVERGREEN: &str = r#"
name = "Evergreen"
enroll = { stage = "lapsed" }
max_gap = "30d"
reenroll = false
then = "evergreen"
[[steps]]
wait = "7d"
email = "thank-you"
intent = "offer"
"#;

#[tokio::test]
async fn after_the_last_step_the_contact_moves_on_and_an_evergreen_process_goes_round() {
    let b = Business::with(CONFIG, &[("short", SHORT), ("evergreen", EVERGREEN)]).await;
    let ann = b.lead("u-1", "Ann Smith", "ann@example.com").await;
    b.idle().await;

    // The welcome was the last step: the sequence completes and Ann is in evergreen,
    // its first touch a week from now.
    let enrollments = b.store.enrollments_of(ann).await.unwrap();
    let states: Vec<(&str, &str)> = enrollments
        .iter()
        .map(|e| (e.process.as_str(), e.state.as_str()))
        .collect();
    assert!(states.contains(&("short", "completed")), "{states:?}");
    assert!(states.contains(&("evergreen", "active")), "{states:?}");
    let touches = b.touches(ann).await;
    let pending: Vec<_> = touches.iter().filter(|t| t.state == "pending").collect();
    assert_eq!(pending.len(), 1, "{touches:#?}");
    assert_eq!(pending[0].due_at, b.engine.clock().now() + days(7));

    // A week on, the evergreen email goes, and the process starts again for her even
    // though it does not let contacts re-enter by its own trigger.
    b.advance(days(7));
    b.idle().await;
    assert_eq!(b.emails_containing("Subject: Thank you"), 1);
    let enrollments = b.store.enrollments_of(ann).await.unwrap();
    let evergreen: Vec<&str> = enrollments
        .iter()
        .filter(|e| e.process == "evergreen")
        .map(|e| e.state.as_str())
        .collect();
    assert_eq!(evergreen.len(), 2, "{enrollments:#?}");
    assert!(evergreen.contains(&"completed") && evergreen.contains(&"active"));
    b.advance(days(7));
    b.idle().await;
    assert_eq!(b.emails_containing("Subject: Thank you"), 2);
}
