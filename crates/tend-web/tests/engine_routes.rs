//! The engine's routes on the real HTTP server over a real SQLite file, the engine
//! driven step by step on a manual clock: tasks, the calendar feed, unsubscribe.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tend_testkit::web::Server;

const CONFIG: &str = r#"
public_url = "https://tend.example.com"
[business]
name = "Studio Rossi & Figli"
timezone = "Europe/Rome"
hours = "Mon-Sun 08:00-20:00"
[stages.on_event]
"Inquiry Received" = "lead"
"Order Completed" = "customer"
[tasks.outcomes]
booked = "Order Completed"
replied = "Replied"
[channels.email]
from = "Studio Rossi <hello@studio.example>"
"#;

const WELCOME: &str =
    "Subject: Welcome\n\nHello {{ contact.name }}, [leave]({{ unsubscribe_url }}).";

const PROCESS: &str = r#"
name = "New inquiry"
enroll = { stage = "lead" }
exit = { stages = ["customer"] }
max_gap = "10d"
[[steps]]
wait = "0d"
email = "welcome"
intent = "nurture"
[[steps]]
wait = "2d"
task = "Call {{ contact.name }}, about the kitchen; bring samples"
minutes = 20
intent = "offer"
[[steps]]
wait = "3d"
email = "welcome"
intent = "nurture"
"#;

#[tokio::test]
async fn the_agenda_lists_the_call_and_completing_it_moves_the_process_on() {
    let s = Server::start(CONFIG, &[("new-inquiry", PROCESS)], &[("welcome", WELCOME)]).await;
    s.lead_ann().await;
    s.after(48).await;

    let (status, body) = s.get("/api/tasks?date=2026-11-25", &s.admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let tasks = body["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 1, "{body}");
    let task = &tasks[0];
    assert_eq!(
        task["title"],
        "Call Ann Smith, about the kitchen; bring samples"
    );
    assert_eq!(task["minutes"], 20);
    assert_eq!(task["contact_email"], "ann@example.com");
    assert_eq!(task["overdue"], false);
    let id = task["id"].as_i64().unwrap();

    // The next day, the open task is still there, marked overdue.
    let (_, body) = s.get("/api/tasks?date=2026-11-26", &s.admin).await;
    assert_eq!(body["tasks"][0]["overdue"], true, "{body}");
    // A day before it was opened, nothing.
    let (_, body) = s.get("/api/tasks?date=2026-11-24", &s.admin).await;
    assert_eq!(body["tasks"], json!([]));

    let (status, body) = s.get("/api/tasks?date=25-11-2026", &s.admin).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["field"], "date");
    let (status, _) = s.get("/api/tasks", &s.write_key).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a write key cannot read the agenda"
    );

    let (status, body) = s.post(&format!("/api/tasks/{id}/complete"), "{}").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["field"], "outcome");
    let (status, body) = s
        .post(&format!("/api/tasks/{id}/complete"), "{\"outcome\": 3}")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["field"], "outcome");
    let (status, _) = s
        .post("/api/tasks/999/complete", "{\"outcome\": \"x\"}")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, body) = s
        .post(
            &format!("/api/tasks/{id}/complete"),
            "{\"outcome\": \"replied\", \"note\": \"call back in spring\"}",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "done");
    assert_eq!(body["note"], "call back in spring");
    let (status, _) = s
        .post(
            &format!("/api/tasks/{id}/complete"),
            "{\"outcome\": \"replied\"}",
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // The process moved on: the next email goes out three days later.
    s.after(72).await;
    assert_eq!(s.outbox_mails().len(), 2);
    let (_, contact) = s.get("/api/contacts/1", &s.admin).await;
    let touches = contact["touches"].as_array().unwrap();
    assert_eq!(touches.len(), 3, "{contact}");
    assert!(touches.iter().all(|t| t["decision"] == "send"), "{contact}");
    assert_eq!(contact["enrollments"][0]["state"], "completed");
}

#[tokio::test]
async fn a_booked_outcome_records_its_event_and_makes_a_customer() {
    let s = Server::start(CONFIG, &[("new-inquiry", PROCESS)], &[("welcome", WELCOME)]).await;
    s.lead_ann().await;
    s.after(48).await;
    let (_, body) = s.get("/api/tasks", &s.admin).await;
    let id = body["tasks"][0]["id"].as_i64().unwrap();
    let (status, _) = s
        .post(
            &format!("/api/tasks/{id}/complete"),
            "{\"outcome\": \"booked\"}",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    s.after(1).await;
    let (_, contact) = s.get("/api/contacts/1", &s.admin).await;
    assert_eq!(contact["stage"], "customer");
    assert_eq!(contact["enrollments"][0]["state"], "exited");
    let events: Vec<&Value> = contact["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "event")
        .collect();
    assert!(
        events.iter().any(|e| e["name"] == "Order Completed"),
        "{contact}"
    );
}

#[tokio::test]
async fn skipping_a_task_moves_the_process_on_without_it() {
    let s = Server::start(CONFIG, &[("new-inquiry", PROCESS)], &[("welcome", WELCOME)]).await;
    s.lead_ann().await;
    s.after(48).await;
    let (_, body) = s.get("/api/tasks", &s.admin).await;
    let id = body["tasks"][0]["id"].as_i64().unwrap();
    let (status, body) = s.post(&format!("/api/tasks/{id}/skip"), "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "skipped");
    s.after(72).await;
    assert_eq!(s.outbox_mails().len(), 2);
}

#[tokio::test]
async fn the_calendar_feed_is_valid_icalendar_for_calendar_tokens_only() {
    let s = Server::start(CONFIG, &[("new-inquiry", PROCESS)], &[("welcome", WELCOME)]).await;
    s.lead_ann().await;
    s.after(48).await;

    let feed = |token: Option<&str>| {
        let mut url = format!("{}/agenda.ics", s.base);
        if let Some(token) = token {
            url.push_str(&format!("?token={token}"));
        }
        s.client.get(url).send()
    };
    assert_eq!(feed(None).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        feed(Some("nope")).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        feed(Some(&s.write_key)).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    // A calendar token reads the feed and nothing else.
    let (status, _) = s.get("/api/contacts", &s.calendar).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let response = feed(Some(&s.calendar)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/calendar")
    );
    let body = response.text().await.unwrap();
    assert!(body.ends_with("END:VCALENDAR\r\n"));
    assert!(
        body.split("\r\n").all(|line| line.len() <= 75),
        "lines are folded at 75 octets"
    );

    // A real iCalendar parser reads it back.
    let script = "import sys, icalendar\n\
        cal = icalendar.Calendar.from_ical(sys.stdin.buffer.read())\n\
        for ev in cal.walk('VEVENT'):\n\
        \x20   print(ev['UID'], '|', ev['SUMMARY'], '|', ev.decoded('DTSTART').isoformat(), '|', ev.decoded('DURATION'))\n";
    tend_testkit::require_python_module("icalendar");
    let out = tend_testkit::run_python(script, &[], body.as_bytes());
    assert!(
        out.status.success(),
        "icalendar rejected the feed (pip install icalendar): {}\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = parsed.lines().collect();
    assert_eq!(lines.len(), 1, "{parsed}");
    assert!(
        lines[0].contains("| Call Ann Smith, about the kitchen; bring samples |"),
        "{parsed}"
    );
    assert!(lines[0].contains("2026-11-25T09:00:00+00:00"), "{parsed}");
    assert!(lines[0].ends_with("| 0:20:00"), "{parsed}");
}

#[tokio::test]
async fn one_click_unsubscribe_stops_every_later_touch() {
    let s = Server::start(CONFIG, &[("new-inquiry", PROCESS)], &[("welcome", WELCOME)]).await;
    s.lead_ann().await;
    let mails = s.outbox_mails();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    let start = mail.find("https://tend.example.com/unsubscribe/").unwrap();
    let link: String = mail[start..]
        .chars()
        .take_while(|c| !matches!(c, '>' | ',' | '"' | ')' | '\r' | '\n'))
        .collect();
    let local = link.replace("https://tend.example.com", &s.base);

    // The page asks first: a link scanner's GET changes nothing.
    let page = s.client.get(&local).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("<form method=\"post\""), "{html}");
    assert!(
        html.contains("Studio Rossi &amp; Figli"),
        "business name escaped: {html}"
    );
    let (_, contact) = s.get("/api/contacts/1", &s.admin).await;
    assert_eq!(contact["suppressed_at"], Value::Null);

    // A forged or altered token is refused.
    // One character of the MAC changed to another: appending a fixed character would
    // leave the token unchanged whenever it already ended with that character.
    let at = local.len() - 5;
    let swap = if &local[at..at + 1] == "A" { "B" } else { "A" };
    let forged = format!("{}{swap}{}", &local[..at], &local[at + 1..]);
    let response = s.client.post(&forged).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // RFC 8058 one-click, as a mail client sends it.
    let response = s
        .client
        .post(&local)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (_, contact) = s.get("/api/contacts/1", &s.admin).await;
    assert_ne!(contact["suppressed_at"], Value::Null);
    assert_eq!(contact["enrollments"][0]["end_reason"], "unsubscribed");

    for _ in 0..10 {
        s.after(48).await;
    }
    assert_eq!(s.outbox_mails().len(), 1, "nothing after the unsubscribe");
    let (_, body) = s.get("/api/tasks", &s.admin).await;
    assert_eq!(body["tasks"], json!([]), "no call planned for her either");
}
