//! Erasure leaves no copy of the person in any file Tend wrote; task outcomes are
//! matched whatever their case, and an unknown one completes nothing; an unsubscribe
//! page says "unsubscribed" only when something changed.

use reqwest::StatusCode;
use tend_testkit::web::Server;

const CONFIG: &str = r#"
public_url = "https://tend.example.com"
[business]
name = "Studio Rossi"
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

const WELCOME: &str = "Subject: Welcome {{ contact.name }}\n\nHello {{ contact.name }}, [leave]({{ unsubscribe_url }}).";

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
task = "Call {{ contact.name }} about the kitchen"
minutes = 20
intent = "offer"
[[steps]]
wait = "3d"
email = "welcome"
intent = "nurture"
"#;

async fn server() -> Server {
    Server::start(CONFIG, &[("new-inquiry", PROCESS)], &[("welcome", WELCOME)]).await
}

fn every_file(dir: &std::path::Path, out: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            every_file(&path, out);
        } else {
            out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

async fn only_contact_id(s: &Server) -> i64 {
    let (_, body) = s.get("/api/contacts", &s.admin).await;
    body["contacts"][0]["id"].as_i64().unwrap()
}

#[tokio::test]
async fn erasing_a_contact_leaves_no_copy_of_the_person_in_any_file() {
    let s = server().await;
    s.lead_ann().await;
    // The call is on the agenda: the name is in its title too.
    s.after(48).await;
    let id = only_contact_id(&s).await;
    let mut before = Vec::new();
    every_file(s.dir.path(), &mut before);
    assert!(
        before
            .iter()
            .any(|(path, bytes)| path.ends_with(".eml") && contains(bytes, "ann@example.com")),
        "the test must see the welcome in the outbox first"
    );

    let response = s
        .client
        .delete(format!("{}/api/contacts/{id}", s.base))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    let mut after = Vec::new();
    every_file(s.dir.path(), &mut after);
    for (path, bytes) in &after {
        for secret in ["ann@example.com", "Ann Smith"] {
            assert!(!contains(bytes, secret), "`{secret}` is still in {path}");
        }
    }
    assert!(s.outbox_mails().is_empty());
    // What remains is the keyed suppression: the address is still refused.
    let email = tend_core::Email::parse("ann@example.com").unwrap();
    assert!(s.engine.store().is_email_suppressed(&email).await.unwrap());
}

#[tokio::test]
async fn task_outcomes_match_any_case_and_an_unknown_one_completes_nothing() {
    let s = server().await;
    s.lead_ann().await;
    s.after(48).await;
    let (_, body) = s.get("/api/tasks?date=2026-11-25", &s.admin).await;
    let id = body["tasks"][0]["id"].as_i64().unwrap();

    let (status, body) = s
        .post(
            &format!("/api/tasks/{id}/complete"),
            r#"{"outcome": "maybe"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "outcome");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("maybe") && message.contains("booked") && message.contains("replied"),
        "{message}"
    );
    let (_, body) = s.get("/api/tasks?date=2026-11-25", &s.admin).await;
    assert_eq!(body["tasks"][0]["state"], "open", "nothing was completed");

    let (status, body) = s
        .post(
            &format!("/api/tasks/{id}/complete"),
            r#"{"outcome": " Booked "}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "done");
    assert_eq!(body["outcome"], "booked");
    let contact = only_contact_id(&s).await;
    let (_, body) = s.get(&format!("/api/contacts/{contact}"), &s.admin).await;
    assert_eq!(body["stage"], "customer", "{body}");
}

#[tokio::test]
async fn the_unsubscribe_page_says_unsubscribed_only_when_something_changed() {
    let s = server().await;
    s.lead_ann().await;
    let mail = s.outbox_mails().remove(0);
    let start = mail.find("https://tend.example.com/unsubscribe/").unwrap();
    let url: String = mail[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "-_/:.".contains(*c))
        .collect();
    let path = url.trim_start_matches("https://tend.example.com");
    let token = path.trim_start_matches("/unsubscribe/");
    assert_eq!(token.len(), 64, "{token}");
    let post = || async {
        s.client
            .post(format!("{}{path}", s.base))
            .body("List-Unsubscribe=One-Click")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    assert!(post().await.contains("You are unsubscribed"));
    let again = post().await;
    assert!(!again.contains("You are unsubscribed"), "{again}");
    assert!(again.contains("already"), "{again}");
}
