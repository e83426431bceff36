//! How a list import enrolls: at once, spread over days (so a long list does not all
//! start on day one; the pacer still decides each touch), or not at all until a later
//! stage change. The real engine on a SQLite file, driven by its clock.

mod harness;

use harness::*;
use serde_json::Map;
use tend_core::{Email, StageName};
use tend_store::{EnrollChoice, ImportRow};

/// `count` leads, in file order.
fn leads(count: usize, stage: &str) -> Vec<ImportRow> {
    (0..count)
        .map(|i| ImportRow {
            email: Email::parse(&format!("lead{i}@example.com")).unwrap(),
            name: Some(format!("Lead {i}")),
            stage: Some(StageName::new(stage)),
            timezone: Some(tend_core::TimeZoneName::parse("Europe/Rome").unwrap()),
            attributes: Map::new(),
        })
        .collect()
}

/// Imports `rows` with `choice` now, as one chunk, as the CLI and the console do.
async fn import(business: &Business, rows: &[ImportRow], choice: EnrollChoice) {
    let now = business.engine.clock().now();
    business
        .store
        .import_contacts(
            rows,
            &StageName::new("prospect"),
            now,
            choice.for_chunk(now, rows.len(), 0),
        )
        .await
        .unwrap();
}

/// Welcome emails sent by the end of each of `days` days, one day at a time.
async fn welcomes_per_day(business: &Business, days: usize) -> Vec<usize> {
    let mut per_day = Vec::new();
    let mut before = 0;
    for _ in 0..days {
        // Run the day hour by hour, as the engine's own loop would wake.
        for _ in 0..24 {
            business.idle().await;
            business.advance(hours(1));
        }
        let sent = business.emails_containing("Subject: Welcome");
        per_day.push(sent - before);
        before = sent;
    }
    per_day
}

#[tokio::test]
async fn a_list_imported_now_starts_all_on_day_one() {
    let business = Business::start().await;
    import(&business, &leads(28, "lead"), EnrollChoice::Now).await;
    let per_day = welcomes_per_day(&business, 2).await;
    assert_eq!(per_day, vec![28, 0], "every welcome goes out on day one");
}

#[tokio::test]
async fn a_list_spread_over_fourteen_days_starts_a_few_each_day() {
    let business = Business::start().await;
    let start = business.engine.clock().now();
    let rows = leads(28, "lead");
    let choice: EnrollChoice = "spread:14d".parse().unwrap();
    import(&business, &rows, choice).await;
    business.engine.try_enroll().await.unwrap();

    // Each contact's first touch falls due at its own instant, half a day apart, in
    // file order; none before it.
    let mut due = Vec::new();
    for i in 0..rows.len() {
        let contact = business
            .contact_of_email(&format!("lead{i}@example.com"))
            .await;
        let touches = business.touches(contact).await;
        assert_eq!(touches.len(), 1, "lead{i} has its first touch planned");
        due.push(touches[0].due_at);
    }
    for (i, at) in due.iter().enumerate() {
        let expected = start + days(14) / 28 * i as i32;
        assert_eq!(*at, expected, "lead{i}'s first touch");
    }

    // And the welcomes go out across the fortnight, two a day (one at 10:00, one at
    // 22:00 that quiet hours hold until 08:00), none after it.
    let per_day = welcomes_per_day(&business, 15).await;
    let mut expected = vec![2; 14];
    expected.push(0);
    assert_eq!(per_day, expected);
}

#[tokio::test]
async fn a_list_imported_without_enrolling_waits_for_a_later_stage_change() {
    let business = Business::start().await;
    let rows = leads(5, "lead");
    import(&business, &rows, EnrollChoice::None).await;
    let per_day = welcomes_per_day(&business, 3).await;
    assert_eq!(per_day, vec![0, 0, 0], "nobody is welcomed");
    let contact = business.contact_of_email("lead0@example.com").await;
    let enrollments = business.store.enrollments_of(contact).await.unwrap();
    assert!(enrollments.is_empty(), "{enrollments:?}");

    // A later stage change enrolls them, like any other: here, the same people
    // imported again as customers, enrolling now.
    import(&business, &leads(5, "customer"), EnrollChoice::Now).await;
    business.idle().await;
    let enrollments = business.store.enrollments_of(contact).await.unwrap();
    assert_eq!(enrollments.len(), 1, "{enrollments:?}");
    assert_eq!(enrollments[0].process, "customer");
}

#[test]
fn enroll_choices_read_as_the_command_line_writes_them() {
    assert_eq!("now".parse::<EnrollChoice>().unwrap(), EnrollChoice::Now);
    assert_eq!("none".parse::<EnrollChoice>().unwrap(), EnrollChoice::None);
    assert_eq!(
        "spread:2w".parse::<EnrollChoice>().unwrap(),
        EnrollChoice::Spread(tend_core::Duration::from_secs(14 * 86_400))
    );
    for (bad, says) in [
        ("later", "`later` is not an enroll choice"),
        ("spread:", "empty duration"),
        ("spread:14", "unknown unit"),
        ("spread:0d", "longer than zero"),
        ("spread:400d", "at most"),
    ] {
        let err = bad.parse::<EnrollChoice>().unwrap_err().to_string();
        assert!(err.contains(says), "{bad}: {err}");
    }
}
