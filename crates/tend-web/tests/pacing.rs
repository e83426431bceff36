//! The pacer through the real server: budgets defer, capacity holds offers (not
//! nurture), quiet hours follow the contact's own zone, keep-warm replaces an offer
//! before a contact is neglected, and `/api/pace` and `/metrics` show it all.

use jiff::Timestamp;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tend_testkit::web::Server;

const TEMPLATES: &[(&str, &str)] = &[
    ("welcome", "Subject: Welcome\n\nHello {{ contact.name }}."),
    ("visit", "Subject: Book a free visit\n\nReply to book."),
    ("ideas", "Subject: Ideas\n\nSome ideas."),
    ("keep-warm", "Subject: Still here\n\nNo rush."),
];

fn config(extra: &str) -> String {
    format!(
        r#"
public_url = "https://tend.example.com"
[business]
name = "Studio Rossi"
timezone = "Europe/Rome"
hours = "Mon-Fri 09:00-18:00"
[stages.on_event]
"Inquiry Received" = "lead"
[channels.email]
from = "Studio Rossi <hello@studio.example>"
{extra}
"#
    )
}

const WELCOME_ONLY: &str = r#"
name = "Welcome"
enroll = { stage = "lead" }
max_gap = "10d"
[[steps]]
wait = "0d"
email = "welcome"
intent = "nurture"
"#;

async fn lead(s: &Server, n: usize, zone: &str) {
    s.post_segment(
        "identify",
        json!({"userId": format!("u-{n}"), "traits": {
            "email": format!("p{n}@example.com"), "name": format!("Person {n}"), "timezone": zone}}),
    )
    .await;
    s.post_segment(
        "track",
        json!({"userId": format!("u-{n}"), "event": "Inquiry Received"}),
    )
    .await;
}

async fn touches(s: &Server, contact: i64) -> Vec<Value> {
    let (status, body) = s.get(&format!("/api/contacts/{contact}"), &s.admin).await;
    assert_eq!(status, StatusCode::OK);
    let mut touches = body["touches"].as_array().unwrap().clone();
    touches.reverse();
    touches
}

#[tokio::test]
async fn a_small_budget_defers_while_it_accrues_and_spreads_over_the_day() {
    // No reserve: first touches wait for the accrual like any other.
    let s = Server::start(
        &config("[budget]\nemails = { per_day = 9, reserve = 0 }"),
        &[("welcome", WELCOME_ONLY)],
        TEMPLATES,
    )
    .await;
    // Monday 10:00: one of the nine business hours has passed, so one email has accrued.
    for n in 0..20 {
        lead(&s, n, "Europe/Rome").await;
    }
    s.after(0).await;
    assert_eq!(s.outbox_mails().len(), 1, "only what has accrued goes out");

    let deferred = touches(&s, 20).await;
    assert_eq!(deferred[0]["state"], "pending");
    assert_eq!(deferred[0]["decision"], "defer");
    // The last lead waits for tomorrow: today's nine are all spoken for.
    assert_eq!(deferred[0]["reason"], "budget");
    let until: Timestamp = deferred[0]["until"].as_str().unwrap().parse().unwrap();
    assert!(until > s.engine.clock().now());

    // Eight more fit today as the budget accrues; eleven wait for tomorrow's.
    let (_, pace) = s.get("/api/pace", &s.admin).await;
    assert_eq!(pace["held"]["budget_accruing"], 8, "{pace}");
    assert_eq!(pace["held"]["budget"], 11, "{pace}");
    let emails_day = pace["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["resource"] == "emails" && b["period"] == "day")
        .unwrap();
    assert_eq!(emails_day["limit"], 9.0);
    assert_eq!(emails_day["used"], 1.0);

    // By the end of the day all nine have gone out, never more.
    s.after(8).await;
    assert_eq!(s.outbox_mails().len(), 9);
    s.after(6).await;
    assert_eq!(s.outbox_mails().len(), 9, "nothing accrues overnight");
    // Through Tuesday, hour by hour as the engine ticks: nine more.
    for _ in 0..24 {
        s.after(1).await;
    }
    assert_eq!(s.outbox_mails().len(), 18);
}

const OFFER: &str = r#"
name = "Offer"
enroll = { stage = "lead" }
max_gap = "2d"
keep_warm = "keep-warm"
[[steps]]
wait = "0d"
email = "visit"
intent = "offer"
"#;

const NURTURE: &str = r#"
name = "Nurture"
enroll = { stage = "lead" }
max_gap = "10d"
[[steps]]
wait = "0d"
email = "ideas"
intent = "nurture"
"#;

#[tokio::test]
async fn with_capacity_full_an_offer_waits_while_its_nurture_sibling_goes_out() {
    let extra = "[capacity]\nper_week = 2\ntarget_utilization = 1.0\nhorizon = \"1w\"\n\
                 offer_probability = 0.5\n[limits]\nmin_gap = \"0m\"\nper_contact_per_week = 10\n\
                 quiet_hours = \"none\"";
    // Open around the clock, so "about to be neglected" means within a day.
    let config = config(extra).replace("Mon-Fri 09:00-18:00", "Mon-Sun 00:00-24:00");
    let s = Server::start(
        &config,
        &[("offer", OFFER), ("nurture", NURTURE)],
        TEMPLATES,
    )
    .await;

    // Four work items already open: capacity (2 a week over one week) is full.
    let response = s
        .client
        .put(format!("{}/api/capacity", s.base))
        .bearer_auth(&s.admin)
        .json(&json!({"open_work": 4}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["capacity"]["open_work"], 4.0);
    assert_eq!(body["capacity"]["headroom"], 0.0);
    // Four jobs ahead of a team of two a week: new work would wait two weeks.
    assert_eq!(body["capacity"]["predicted_wait_days"], 14.0);
    assert_eq!(body["capacity"]["max_wait"], Value::Null);

    lead(&s, 1, "Europe/Rome").await;
    s.after(0).await;
    let ann = touches(&s, 1).await;
    let offer = ann.iter().find(|t| t["process"] == "offer").unwrap();
    let nurture = ann.iter().find(|t| t["process"] == "nurture").unwrap();
    assert_eq!(nurture["state"], "sent");
    assert_eq!(offer["state"], "pending");
    assert_eq!(offer["reason"], "capacity");
    let mails = s.outbox_mails();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains("Subject: Ideas"));

    // A day later the offer's contact is about to pass its two-day gap: the keep-warm
    // email goes in the offer's place, and the offer is given up, not held for ever.
    s.after(25).await;
    let ann = touches(&s, 1).await;
    let keep_warm = ann
        .iter()
        .find(|t| t["kind"] == "keep_warm")
        .expect("keep-warm sent");
    assert_eq!(keep_warm["state"], "sent");
    let offer = ann
        .iter()
        .find(|t| t["process"] == "offer" && t["kind"] == "step")
        .unwrap();
    assert_eq!(offer["state"], "skipped");
    assert_eq!(offer["decision"], "substitute");
    assert_eq!(offer["reason"], "capacity");
    assert!(
        s.outbox_mails()
            .iter()
            .any(|m| m.contains("Subject: Still here"))
    );

    // Work is done: room opens. The given-up offer stays given up; a new lead's offer
    // goes out at once.
    let response = s
        .client
        .put(format!("{}/api/capacity", s.base))
        .bearer_auth(&s.admin)
        .json(&json!({"open_work": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    s.after(2).await;
    assert!(
        !s.outbox_mails()
            .iter()
            .any(|m| m.contains("Subject: Book a free visit"))
    );
    lead(&s, 2, "Europe/Rome").await;
    s.after(0).await;
    let visits = s
        .outbox_mails()
        .iter()
        .filter(|m| m.contains("Subject: Book a free visit"))
        .count();
    assert_eq!(visits, 1);
    let (_, pace) = s.get("/api/pace", &s.admin).await;
    assert_eq!(pace["capacity"]["expected_in_flight"], 0.5, "{pace}");
}

#[tokio::test]
async fn closing_a_job_wakes_only_the_held_offers_its_room_can_admit_longest_waiting_first() {
    let extra = "[capacity]\nper_week = 2\ntarget_utilization = 1.0\nhorizon = \"1w\"\n\
                 offer_probability = 0.5\n[work]\nopened = \"Job Opened\"\n\
                 closed = \"Job Completed\"\n[limits]\nmin_gap = \"0m\"\n\
                 per_contact_per_week = 10\nquiet_hours = \"none\"";
    let config = config(extra).replace("Mon-Fri 09:00-18:00", "Mon-Sun 00:00-24:00");
    let s = Server::start(&config, &[("offer", OFFER)], TEMPLATES).await;
    // Two jobs open: capacity (two a week over one week) is full.
    for job in 0..2 {
        s.post_segment(
            "track",
            json!({"userId": "customer", "event": "Job Opened", "messageId": format!("open-{job}")}),
        )
        .await;
    }
    for n in 1..=4 {
        lead(&s, n, "Europe/Rome").await;
        s.after(1).await;
    }
    for contact in 2..=5 {
        let offer = &touches(&s, contact).await[0];
        assert_eq!(
            (&offer["state"], &offer["reason"]),
            (&json!("pending"), &json!("capacity"))
        );
    }

    // One job done: room for two offers at 0.5 each. The two leads who have waited
    // longest get theirs; the other two are not even looked at until their recheck.
    s.post_segment(
        "track",
        json!({"userId": "customer", "event": "Job Completed", "messageId": "close-0"}),
    )
    .await;
    s.after(0).await;
    let sent: Vec<bool> = offers_sent(&s).await;
    assert_eq!(sent, [true, true, false, false]);
    for contact in 4..=5 {
        let offer = &touches(&s, contact).await[0];
        assert_eq!(offer["reason"], "capacity");
        assert_eq!(offer["deferrals"], 1, "{offer}");
    }
}

/// Whether each of the four leads' offers (contacts 2 to 5) was sent.
async fn offers_sent(s: &Server) -> Vec<bool> {
    let mut sent = Vec::new();
    for contact in 2..=5 {
        sent.push(touches(s, contact).await[0]["state"] == "sent");
    }
    sent
}

#[tokio::test]
async fn capacity_input_is_validated_and_named() {
    let s = Server::start(&config(""), &[("welcome", WELCOME_ONLY)], TEMPLATES).await;
    for (body, field) in [
        (json!({}), "open_work"),
        (json!({"open_work": -1}), "open_work"),
        (json!({"open_work": "3"}), "open_work"),
        (json!({"open_work": 3, "per_week": 9}), "per_week"),
    ] {
        let response = s
            .client
            .put(format!("{}/api/capacity", s.base))
            .bearer_auth(&s.admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["field"], field, "{body}");
    }
    let response = s
        .client
        .put(format!("{}/api/capacity", s.base))
        .bearer_auth(&s.write_key)
        .json(&json!({"open_work": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_contact_at_three_in_the_morning_waits_for_the_end_of_quiet_hours() {
    let s = Server::start(&config(""), &[("welcome", WELCOME_ONLY)], TEMPLATES).await;
    // 10:00 in Rome is 03:00 in Chicago; quiet hours are 21:00-08:00 local.
    lead(&s, 1, "America/Chicago").await;
    lead(&s, 2, "Europe/Rome").await;
    s.after(0).await;
    let night = touches(&s, 1).await;
    assert_eq!(night[0]["decision"], "defer");
    assert_eq!(night[0]["reason"], "quiet_hours");
    let until: Timestamp = night[0]["until"].as_str().unwrap().parse().unwrap();
    assert_eq!(until, "2026-11-23T14:00:00Z".parse::<Timestamp>().unwrap());
    let day = touches(&s, 2).await;
    assert_eq!(day[0]["state"], "sent", "the Roman contact is awake");

    s.after(4).await;
    assert_eq!(
        touches(&s, 1).await[0]["state"],
        "pending",
        "still 07:00 there"
    );
    s.after(1).await;
    assert_eq!(touches(&s, 1).await[0]["state"], "sent");
}

#[tokio::test]
async fn the_deficit_names_the_budget_that_would_keep_the_promise() {
    let s = Server::start(
        &config(
            "[budget]\nemails = { per_day = 2, reserve = 0 }\n[limits]\nquiet_hours = \"none\"",
        ),
        &[(
            "welcome",
            WELCOME_ONLY
                .replace("max_gap = \"10d\"", "max_gap = \"1d\"")
                .as_str(),
        )],
        TEMPLATES,
    )
    .await;
    for n in 0..10 {
        lead(&s, n, "Europe/Rome").await;
    }
    s.after(0).await;
    let (_, pace) = s.get("/api/pace", &s.admin).await;
    assert_eq!(pace["deficit"]["covered"], false, "{pace}");
    let message = pace["deficit"]["messages"][0].as_str().unwrap();
    assert!(message.contains("need 10 emails a day"), "{message}");
    assert!(message.contains("the budget allows"), "{message}");
    assert!(message.contains("per_day"), "{message}");

    // The same figures for a Prometheus scraper with a metrics token.
    let token = tend_store::tokens::generate_token();
    s.engine
        .store()
        .create_token(
            "prometheus",
            tend_store::TokenScope::Metrics,
            &tend_store::tokens::hash_token(&token),
            Timestamp::now(),
        )
        .await
        .unwrap();
    let (status, _) = s.get("/api/contacts", &token).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a metrics token reads metrics only"
    );
    let response = s
        .client
        .get(format!("{}/metrics", s.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    assert!(text.contains("# TYPE tend_budget_limit gauge"), "{text}");
    assert!(
        text.contains("tend_budget_limit{resource=\"emails\",period=\"day\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("tend_enrolled{process=\"welcome\"} 10"),
        "{text}"
    );
    assert!(
        text.contains("tend_touches_held{reason=\"budget\"}"),
        "{text}"
    );
    assert!(
        text.contains("tend_deficit_shortfall_per_day{resource=\"emails\"}"),
        "{text}"
    );
    let anonymous = s
        .client
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

/// A lead who writes on Friday evening gets the welcome at once, not on Monday: the
/// first touch of an enrollment spends from the budget's small reserve. The process's
/// second email, due on Saturday, waits for Monday and says the business is closed.
#[tokio::test]
async fn a_friday_evening_inquiry_is_answered_at_once_and_the_next_step_waits_for_monday() {
    const TWO_STEPS: &str = r#"
name = "Welcome"
enroll = { stage = "lead" }
max_gap = "10d"
[[steps]]
wait = "0d"
email = "welcome"
intent = "nurture"
[[steps]]
wait = "20h"
email = "ideas"
intent = "nurture"
"#;
    let extra = "[budget]\nemails = { per_day = 200, per_week = 800 }\n[limits]\nmin_gap = \"0m\"";
    // Friday 19:40 in Rome.
    let friday_evening: Timestamp = "2026-11-27T18:40:00Z".parse().unwrap();
    let s = Server::start_at(
        &config(extra),
        &[("welcome", TWO_STEPS)],
        TEMPLATES,
        friday_evening,
    )
    .await;
    lead(&s, 1, "Europe/Rome").await;
    s.after(0).await;
    let mails = s.outbox_mails();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains("Subject: Welcome"));

    // Saturday 15:40: the second email is due, but no budget accrues until Monday.
    s.after(20).await;
    assert_eq!(s.outbox_mails().len(), 1);
    let ann = touches(&s, 1).await;
    let second = ann.iter().find(|t| t["state"] == "pending").unwrap();
    assert_eq!(second["reason"], "business_hours", "{second}");
    let until: Timestamp = second["until"].as_str().unwrap().parse().unwrap();
    assert!(until >= "2026-11-30T08:00:00Z".parse().unwrap(), "{until}");
}
