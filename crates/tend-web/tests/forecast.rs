//! `GET /api/forecast` through the real server: admin only, its parameters checked,
//! and nothing of it reaching the live business (no email in the outbox, no touch).

use reqwest::StatusCode;
use serde_json::json;
use tend_testkit::web::{Server, monday_morning};

const CONFIG: &str = r#"
public_url = "https://tend.example.com"
[business]
name = "Studio Rossi"
timezone = "Europe/Rome"
hours = "Mon-Fri 09:00-18:00"
[budget]
emails = { per_day = 2 }
[limits]
quiet_hours = "none"
min_gap = "1h"
[stages.on_event]
"Inquiry Received" = "lead"
[channels.email]
from = "Studio Rossi <hello@studio.example>"
"#;

const PROCESS: &str = r#"
name = "New inquiry"
enroll = { stage = "lead" }
max_gap = "10d"
[[steps]]
wait = "0d"
email = "note"
intent = "nurture"
[[steps]]
wait = "1d"
email = "note"
intent = "offer"
"#;

#[tokio::test]
async fn the_forecast_runs_on_a_copy_for_admins_only() {
    let s = Server::start(
        CONFIG,
        &[("new-inquiry", PROCESS)],
        &[("note", "Subject: A note\n\nHello.")],
    )
    .await;
    // As the engine's clock sees it: an hour before its "now".
    let asked = monday_morning()
        .checked_sub(jiff::SignedDuration::from_hours(1))
        .unwrap()
        .to_string();
    for n in 0..4 {
        s.post_segment(
            "identify",
            json!({"userId": format!("u-{n}"), "traits": {"email": format!("p{n}@example.com")}}),
        )
        .await;
        s.post_segment(
            "track",
            json!({"userId": format!("u-{n}"), "event": "Inquiry Received", "timestamp": asked}),
        )
        .await;
    }
    s.after(0).await;
    let sent = s.outbox_mails().len();

    let (status, body) = s.get("/api/forecast?weeks=2", &s.admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["weeks"], 2);
    assert_eq!(body["days"].as_array().unwrap().len(), 14);
    // Four leads owe their offer tomorrow, two a day fit the budget; the four who came
    // today are expected to keep coming at the same rate.
    assert_eq!(body["arrivals"][0]["observed"], 4);
    assert_eq!(body["days"][1]["emails"], 2, "{}", body["days"]);
    assert_eq!(body["budgets"][0]["resource"], "emails");
    assert_eq!(body["budgets"][0]["windows"][0]["limit"], 2.0);
    assert!(
        body["needed"]["budgets"][0]["windows"][0]["peak"]
            .as_f64()
            .unwrap()
            > 2.0
    );
    // Nothing was sent, and the live business is where it was.
    assert_eq!(s.outbox_mails().len(), sent);
    let (_, pace) = s.get("/api/pace", &s.admin).await;
    assert_eq!(pace["enrolled"]["new-inquiry"], 4);

    for (query, field) in [
        ("weeks=0", "weeks"),
        ("weeks=x", "weeks"),
        ("history=53", "history"),
    ] {
        let (status, body) = s.get(&format!("/api/forecast?{query}"), &s.admin).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["error"]["field"], field);
    }
    let (status, _) = s.get("/api/forecast", &s.write_key).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = s.get("/api/forecast", "nope").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
