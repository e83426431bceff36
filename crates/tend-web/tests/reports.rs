//! The live reports through the real server, after a few simulated days of a real engine.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tend_testkit::web::Server;

const CONFIG: &str = r#"
public_url = "https://tend.example.com"
[business]
name = "Studio Rossi"
timezone = "Europe/Rome"
hours = "Mon-Sun 00:00-24:00"
[budget]
emails = { per_day = 100 }
[limits]
quiet_hours = "none"
min_gap = "1h"
[stages.on_event]
"Inquiry Received" = "lead"
"Order Completed" = "customer"
[work]
opened = "Job Opened"
closed = "Job Completed"
[channels.email]
from = "Studio Rossi <hello@studio.example>"
"#;

const PROCESS: &str = r#"
name = "New inquiry"
enroll = { stage = "lead" }
exit = { stages = ["customer"] }
max_gap = "3d"
[[steps]]
wait = "0d"
email = "note"
intent = "nurture"
[[steps]]
wait = "1d"
email = "note"
intent = "offer"
[[steps]]
wait = "1d"
task = "Call {{ contact.email }}"
minutes = 10
intent = "offer"
"#;

async fn start() -> Server {
    Server::start(
        CONFIG,
        &[("new-inquiry", PROCESS)],
        &[("note", "Subject: A note\n\nHello.")],
    )
    .await
}

async fn event(s: &Server, user: &str, name: &str) {
    s.post_segment("track", json!({"userId": user, "event": name}))
        .await;
}

#[tokio::test]
async fn the_reports_tell_the_story_of_the_last_days() {
    let s = start().await;
    for n in 0..3 {
        s.post_segment(
            "identify",
            json!({"userId": format!("u-{n}"), "traits": {"email": format!("p{n}@example.com")}}),
        )
        .await;
        event(&s, &format!("u-{n}"), "Inquiry Received").await;
    }
    s.after(0).await; // welcome to all three
    s.after(25).await; // the offer to all three
    event(&s, "u-0", "Order Completed").await;
    event(&s, "u-0", "Job Opened").await;
    s.after(1).await;

    // Ingest stamps events with the wall clock, the engine runs on the test's clock: a
    // range around both.
    let (status, funnel) = s
        .get(
            "/api/reports/funnel?from=2026-11-01&to=2027-12-31",
            &s.admin,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{funnel}");
    let stage = |name: &str| {
        funnel["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["stage"] == name)
            .unwrap()["contacts"]
            .clone()
    };
    assert_eq!(stage("lead"), 2);
    assert_eq!(stage("customer"), 1);
    assert_eq!(stage("loyal"), 0, "every configured stage is listed");
    let moved = |from: &str, to: &str| {
        funnel["moves"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["from"] == from && m["to"] == to)
            .map(|m| m["count"].clone())
    };
    assert_eq!(moved("prospect", "lead"), Some(json!(3)));
    assert_eq!(moved("lead", "customer"), Some(json!(1)));

    let (_, conversion) = s.get("/api/reports/touches-to-conversion", &s.admin).await;
    assert_eq!(conversion["stage"], "customer");
    assert_eq!(conversion["conversions"], 1);
    assert_eq!(
        conversion["median"], 2,
        "welcome and offer before the order: {conversion}"
    );
    assert_eq!(
        conversion["histogram"],
        json!([{"touches": "2", "contacts": 1}])
    );

    let (_, pace) = s.get("/api/reports/pace?days=3", &s.admin).await;
    let days = pace["days"].as_array().unwrap();
    assert_eq!(days.len(), 3, "{pace}");
    let total: u64 = days.iter().map(|d| d["emails"].as_u64().unwrap()).sum();
    assert_eq!(total, 6);
    assert!(days.iter().all(|d| d["email_budget"] == 100.0));
    let opened: u64 = days
        .iter()
        .map(|d| d["work_opened"].as_u64().unwrap())
        .sum();
    assert_eq!(opened, 1);

    // The two leads wait on an open call that nobody makes: days on, they are past
    // their three-day promise.
    for _ in 0..5 {
        s.after(24).await;
    }
    let (_, neglect) = s.get("/api/reports/neglect", &s.admin).await;
    let contacts = neglect["contacts"].as_array().unwrap();
    assert_eq!(contacts.len(), 2, "{neglect}");
    assert_eq!(neglect["past_deadline"], 2);
    assert!(contacts[0]["hours_left"].as_f64().unwrap() < 0.0);
    assert_eq!(contacts[0]["process"], "new-inquiry");
}

#[tokio::test]
async fn report_parameters_are_validated_and_named() {
    let s = start().await;
    for (path, field) in [
        ("/api/reports/funnel?from=yesterday", "from"),
        ("/api/reports/funnel?from=2026-11-20&to=2026-11-10", "from"),
        ("/api/reports/touches-to-conversion?stage=vip", "stage"),
        ("/api/reports/pace?days=0", "days"),
        ("/api/reports/neglect?limit=9999", "limit"),
    ] {
        let (status, body): (StatusCode, Value) = s.get(path, &s.admin).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(body["error"]["field"], field, "{path}");
    }
    let (status, _) = s.get("/api/reports/funnel", &s.write_key).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
