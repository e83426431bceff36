//! What `tend serve --log-format json` writes over a full tour of a business: Segment
//! ingest, the REST API, the metrics and calendar routes, emails to a real SMTP server
//! (aiosmtpd) that takes some, holds one back with a temporary error and bounces one,
//! and an unsubscribe. Every request leaves one line with its span (method, the route
//! template, status, latency, request id), and no line at info or above holds a token,
//! a write key, a secret or an email address.
//!
//! Needs Python 3 with aiosmtpd; fails, never skips, without it.

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use tend_testkit::api::lead_email;
use tend_testkit::{Mailbox, SmtpSink, Studio, require_python_module, wait_for};

const WEBHOOK_SECRET: &str = "whsec_dGVuZC1sb2ctdG91ci1zZWNyZXQtdmFsdWU=";

fn config() -> String {
    format!(
        r#"database_url = "sqlite://tend.db"
public_url = "https://tend.example.com"

[business]
name = "Studio Rossi"
timezone = "Europe/Rome"
hours = "Mon-Sun 00:00-24:00"

[limits]
quiet_hours = "none"

[stages]
order = ["prospect", "lead", "customer", "loyal", "lapsed"]

[stages.on_event]
"Inquiry Received" = "lead"
"Order Completed" = "customer"

[channels.email]
from = "Studio Rossi <hello@example.com>"

[channels.webhook]
secret = "{WEBHOOK_SECRET}"

[dispatch]
retry_after = "1s"
retry_max = "2s"
"#
    )
}

/// Leads 0–2 get their welcome; lead 3's server says "later", quoting the address;
/// lead 4's bounces, quoting it too.
const LEADS: usize = 5;

#[tokio::test]
async fn a_full_tour_logs_every_request_and_no_secret_or_address() {
    require_python_module("aiosmtpd");
    let business = Studio::new(env!("CARGO_BIN_EXE_tend"), &config());
    let held = format!(
        "{0}=450 4.2.1 <{0}>: mailbox busy, try later",
        lead_email(3)
    );
    let bounced = format!("{0}=550 5.1.1 <{0}>: user unknown", lead_email(4));
    let sink = SmtpSink::start(
        &business.mail_folder(),
        &["--rcpt", &held, "--rcpt", &bounced],
    );
    let mut mailbox = Mailbox::new(&business.mail_folder());
    let mut server = business.serve_with(sink.port, &["--log-format", "json"]);
    let api = business.api(&server);
    let client = &api.client;
    let base = &server.base;

    // Ingest, with a request id of the client's own.
    api.new_leads(LEADS).await;
    let tagged = client
        .post(format!("{base}/v1/identify"))
        .basic_auth(&business.write_key, Some(""))
        .header("x-request-id", "tour-identify-1")
        .json(&json!({ "userId": "u-ann", "traits": { "email": "ann@example.com" } }))
        .send()
        .await
        .expect("identify");
    assert_eq!(tagged.status(), 200);
    assert_eq!(tagged.headers()["x-request-id"], "tour-identify-1");
    // An id that could forge a line or carry an address is replaced by one of ours.
    let refused = client
        .post(format!("{base}/v1/track"))
        .basic_auth(&business.write_key, Some(""))
        .header("x-request-id", "ann@example.com")
        .json(&json!({ "userId": "u-ann", "event": "Inquiry Received" }))
        .send()
        .await
        .expect("track");
    assert_eq!(refused.status(), 200);
    let made = refused.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        made.len() == 32 && made.bytes().all(|b| b.is_ascii_hexdigit()),
        "{made}"
    );
    // A bad message, a bad key.
    let invalid = client
        .post(format!("{base}/v1/identify"))
        .basic_auth(&business.write_key, Some(""))
        .json(&json!({ "userId": "u-bad", "traits": { "email": "bad@@example.com" } }))
        .send()
        .await
        .expect("identify");
    assert_eq!(invalid.status(), 400);
    let unauthorized = client
        .get(format!("{base}/api/pace"))
        .bearer_auth(format!("{}x", business.admin))
        .send()
        .await
        .expect("pace");
    assert_eq!(unauthorized.status(), 401);

    // The API, with an address in a query string.
    let found = api.get(&format!("/api/contacts?q={}", lead_email(1))).await;
    let id = found["contacts"][0]["id"].as_i64().expect("lead 1 found");
    api.get(&format!("/api/contacts/{id}")).await;
    api.get("/api/pace").await;
    api.get("/api/reports/funnel").await;
    for path in ["/metrics", "/agenda.ics"] {
        let response = client
            .get(format!("{base}{path}"))
            .bearer_auth(&business.admin)
            .send()
            .await
            .expect(path);
        assert_eq!(response.status(), 200, "{path}");
    }

    // Dispatch: three sent, one held back for later, one bounced.
    let touches = wait_for(
        "three welcomes sent, one retried, one bounced",
        Duration::from_secs(30),
        async || {
            let touches = api.welcome_touches("lead").await;
            let state = |i: usize| {
                touches
                    .get(&lead_email(i))
                    .map(|t| (t["state"].as_str().unwrap_or("").to_owned(), t.clone()))
                    .unwrap_or_default()
            };
            let sent = (0..3).all(|i| state(i).0 == "sent");
            let retried =
                state(3).1["attempts"].as_u64().is_some_and(|a| a >= 1) && state(3).0 != "sent";
            let failed = state(4).0 == "failed";
            if sent && retried && failed {
                Ok(touches)
            } else {
                Err(format!("{touches:?}"))
            }
        },
    )
    .await;
    assert!(
        touches[&lead_email(3)]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("450")),
        "{}",
        touches[&lead_email(3)]
    );

    // Unsubscribe through the link in lead 0's email.
    let mail = mailbox
        .messages()
        .into_iter()
        .find(|m| m.rcpt_tos == [lead_email(0)])
        .expect("lead 0's welcome");
    let list = mail.header("List-Unsubscribe").expect("List-Unsubscribe");
    let link = list
        .split(',')
        .map(|l| l.trim().trim_start_matches('<').trim_end_matches('>'))
        .find(|l| l.starts_with("https://tend.example.com/unsubscribe/"))
        .expect("an https unsubscribe link")
        .to_owned();
    let unsubscribe_token = link.rsplit('/').next().unwrap().to_owned();
    let page = client
        .get(format!("{base}/unsubscribe/{unsubscribe_token}"))
        .send()
        .await
        .expect("unsubscribe page");
    assert_eq!(page.status(), 200);
    let one_click = client
        .post(format!("{base}/unsubscribe/{unsubscribe_token}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .expect("one-click unsubscribe");
    assert!(one_click.status().is_success(), "{}", one_click.status());

    let status = server.terminate(Duration::from_secs(20)).await;
    assert!(status.success(), "tend serve exited with {status}");
    let log = server.log();

    // Every line is a JSON object; requests carry their span.
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let requests: Vec<&Value> = lines
        .iter()
        .filter(|l| l["span"]["name"] == "request" && l["fields"]["message"] == "request")
        .collect();
    let seen = |method: &str, route: &str, status: u64| {
        requests.iter().any(|r| {
            r["span"]["method"] == method
                && r["span"]["route"] == route
                && r["span"]["status"] == status
                && r["span"]["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0)
                && r["span"]["request_id"]
                    .as_str()
                    .is_some_and(|id| !id.is_empty())
        })
    };
    for (method, route, status) in [
        ("POST", "/v1/batch", 200),
        ("POST", "/v1/identify", 200),
        ("POST", "/v1/identify", 400),
        ("GET", "/api/pace", 401),
        ("GET", "/api/contacts", 200),
        ("GET", "/api/contacts/{id}", 200),
        ("GET", "/metrics", 200),
        ("GET", "/agenda.ics", 200),
        ("GET", "/unsubscribe/{token}", 200),
        ("POST", "/unsubscribe/{token}", 200),
    ] {
        assert!(
            seen(method, route, status),
            "no request line for {method} {route} {status} in:\n{log}"
        );
    }
    assert!(
        requests
            .iter()
            .any(|r| r["span"]["request_id"] == "tour-identify-1"),
        "the client's request id is not in the log"
    );
    assert!(
        requests.iter().any(|r| r["span"]["request_id"] == made),
        "the request id made for a refused one is not in the log"
    );
    assert!(
        log.contains("send failed"),
        "the held-back send was not logged:\n{log}"
    );

    // Nothing a reader of the log must not learn.
    let mut forbidden: BTreeSet<String> = [
        business.write_key.clone(),
        business.admin.clone(),
        WEBHOOK_SECRET.to_owned(),
        unsubscribe_token.clone(),
        "ann@example.com".to_owned(),
        "bad@@example.com".to_owned(),
    ]
    .into();
    forbidden.extend((0..LEADS).map(lead_email));
    forbidden.extend(install_secrets(business.dir()));
    for line in &lines {
        let level = line["level"].as_str().unwrap_or("");
        if !matches!(level, "INFO" | "WARN" | "ERROR") {
            continue;
        }
        let text = line.to_string();
        for secret in &forbidden {
            assert!(
                !text.contains(secret.as_str()),
                "{secret:?} is logged: {text}"
            );
        }
        assert!(
            !text.contains("@example.com"),
            "an address is logged: {text}"
        );
    }
    eprintln!(
        "{} log lines, {} requests, none with a secret or an address",
        lines.len(),
        requests.len()
    );
}

/// The install's secrets (`engine_state`), read with Python's sqlite3.
fn install_secrets(dir: &std::path::Path) -> Vec<String> {
    let db = dir.join("tend.db");
    let out = tend_testkit::run_python(
        "import sqlite3,sys\n\
         for (v,) in sqlite3.connect(sys.argv[1]).execute('SELECT value FROM engine_state'):\n\
         \x20   print(v)",
        &[db.to_str().expect("a UTF-8 path")],
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secrets: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|v| v.len() >= 16)
        .map(str::to_owned)
        .collect();
    assert!(!secrets.is_empty(), "no install secret found");
    secrets
}
