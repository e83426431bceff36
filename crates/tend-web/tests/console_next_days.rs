//! Today's "next 7 days" over real HTTP, against a real SQLite file and the engine on a
//! manual clock: what is planned per day is set against what the email budget lets go,
//! so a week planned past its budget shows the rest waiting rather than all of it
//! going out.

use serde_json::json;
use tend_store::Role;
use tend_testkit::web::Server;
use tend_testkit::web_console::{ConsoleUser, add_user};

/// Three emails a day, accruing over weekday business hours.
const CONFIG: &str = r#"
[business]
name = "Studio Rossi"
timezone = "Europe/Rome"
hours = "Mon-Fri 09:00-18:00"
[budget]
emails = { per_day = 3 }
[stages.on_event]
"Inquiry Received" = "lead"
[channels.email]
from = "Studio Rossi <hello@studio.example>"
"#;

const WELCOME: &str =
    "Subject: Welcome {{ contact.name }}\n\nHello, [leave]({{ unsubscribe_url }}).";

const PROCESS: &str = r#"
name = "New inquiry"
enroll = { stage = "lead" }
max_gap = "30d"
[[steps]]
wait = "0d"
email = "welcome"
intent = "nurture"
"#;

const OWNER: &str = "owner@studio.example";
const LEADS: u64 = 30;

/// Per day row of the table: (label, emails planned, emails that can go).
fn email_rows(page: &str) -> Vec<(String, u64, u64)> {
    let cell = |row: &str, id: &str| -> u64 {
        let at = row
            .find(&format!("data-testid=\"{id}\">"))
            .unwrap_or_else(|| panic!("no {id} in {row}"));
        let rest = &row[at..];
        let value = &rest[rest.find('>').unwrap() + 1..];
        value[..value.find('<').unwrap()].parse().unwrap()
    };
    page.split("data-testid=\"next-day\"")
        .skip(1)
        .map(|row| {
            let label = &row[row.find("<th scope=\"row\">").unwrap() + 16..];
            let label = label[..label.find('<').unwrap()].trim().to_owned();
            (label, cell(row, "planned-email"), cell(row, "go-email"))
        })
        .collect()
}

#[tokio::test]
async fn a_week_planned_past_the_email_budget_shows_what_goes_each_day_and_what_waits() {
    // Monday 2026-11-23, 10:00 in Rome.
    let server = Server::start(CONFIG, &[("new-inquiry", PROCESS)], &[("welcome", WELCOME)]).await;
    add_user(&server, OWNER, Role::Owner).await;
    for i in 0..LEADS {
        let user = format!("u-{i}");
        server
            .post_segment(
                "identify",
                json!({"userId": user, "traits": {"email": format!("lead{i}@example.com")}}),
            )
            .await;
        server
            .post_segment(
                "track",
                json!({"userId": user, "event": "Inquiry Received"}),
            )
            .await;
    }
    server.engine.run_until_idle().await.unwrap();
    // First touches may spend a small reserve ahead of the accrual: some went at once.
    let pace = server.engine.pace().await.unwrap();
    let sent = pace
        .budgets
        .iter()
        .find(|b| b.resource.to_string() == "emails")
        .map_or(0, |b| b.used as u64);

    let mut owner = ConsoleUser::login(&server, OWNER).await;
    let today = owner.page("/today").await;
    let rows = email_rows(&today);
    assert_eq!(rows.len(), 8, "today and the next 7 days: {rows:?}");
    let labels: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        labels,
        [
            "Mon 23", "Tue 24", "Wed 25", "Thu 26", "Fri 27", "Sat 28", "Sun 29", "Mon 30"
        ]
    );
    // Every welcome not yet sent is planned on the day the pacer takes it up again
    // (a touch held for the budget comes back at its `until`): today or tomorrow.
    let waiting_now = LEADS - sent;
    assert_eq!(
        rows.iter().map(|r| r.1).sum::<u64>(),
        waiting_now,
        "{rows:?}"
    );
    assert!(rows[2..].iter().all(|r| r.1 == 0), "{rows:?}");
    // No day lets more go than its budget, less what today already spent; the
    // weekend accrues nothing; every weekday's 3 is used while some still wait.
    assert_eq!(rows[0].2, rows[0].1.min(3 - sent.min(3)), "{rows:?}");
    let go: Vec<u64> = rows[1..].iter().map(|r| r.2).collect();
    assert_eq!(go, [3, 3, 3, 3, 0, 0, 3], "{rows:?}");
    let left = waiting_now - rows.iter().map(|r| r.2).sum::<u64>();
    assert!(left > 0);
    assert!(
        today.contains(&format!(
            "Still waiting for a budget after these days: {left} emails."
        )),
        "{today}"
    );
    assert!(today.contains("emails 3 per day"), "the budget is named");
}
