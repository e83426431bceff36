//! What `tend serve` writes, in both `--log-format json` and `text`, over a full tour of
//! a business: Segment ingest, the REST API, the metrics and calendar routes, emails to
//! a real SMTP server (aiosmtpd) that wants a password and takes some, holds one back
//! with a temporary error and bounces one, signed webhooks to a real receiver (one taken,
//! one answered 503 from a URL with credentials in it), and an unsubscribe. Every
//! request leaves one line with its span (method, the route template, status, latency,
//! request id), and no line at info or above holds a token, a write key, the SMTP
//! password, the webhook signing secret or a webhook URL's credentials, or an email
//! address.
//!
//! Needs Python 3 with aiosmtpd and standardwebhooks; fails, never skips, without them.

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use tend_testkit::api::lead_email;
use tend_testkit::{
    Mailbox, Serve, SmtpSink, Studio, WebhookReceiver, require_python_module, wait_for,
};

const WEBHOOK_SECRET: &str = "whsec_dGVuZC1sb2ctdG91ci1zZWNyZXQtdmFsdWU=";
/// The relay's password, in the SMTP URL the server is given.
const SMTP_PASSWORD: &str = "relay-pw-Zq81x";
/// The password in the URL of a webhook whose receiver answers 503.
const HOOK_PASSWORD: &str = "hook-pw-Kd03m";

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

/// What a tour left: the server's log and what must not be in it.
struct Tour {
    log: String,
    forbidden: BTreeSet<String>,
    /// The request id `tend serve` made for a request whose own was refused.
    made_request_id: String,
}

/// A process of one webhook, made on `event`.
fn webhook_process(dir: &std::path::Path, file: &str, event: &str, url: &str) {
    let process = format!(
        "name = \"{file}\"\nenroll = {{ event = \"{event}\" }}\nmax_gap = \"30d\"\n\n\
         [[steps]]\nwait = \"0d\"\nwebhook = \"{url}\"\nintent = \"nurture\"\n"
    );
    std::fs::write(dir.join("processes").join(format!("{file}.toml")), process).unwrap();
}

/// Runs the tour against `tend serve --log-format FORMAT` and stops the server.
async fn tour(format: &str) -> Tour {
    require_python_module("aiosmtpd");
    let business = Studio::new(env!("CARGO_BIN_EXE_tend"), &config());
    let receiver = WebhookReceiver::start(
        WEBHOOK_SECRET,
        &business.business.scratch().join("webhooks.jsonl"),
        &[],
    );
    let hooks = format!("127.0.0.1:{}", receiver.port);
    webhook_process(
        business.dir(),
        "crm",
        "Quote Requested",
        &format!("http://{hooks}/verify"),
    );
    webhook_process(
        business.dir(),
        "crm-down",
        "Callback Requested",
        &format!("http://crm:{HOOK_PASSWORD}@{hooks}/status/503"),
    );
    let held = format!(
        "{0}=450 4.2.1 <{0}>: mailbox busy, try later",
        lead_email(3)
    );
    let bounced = format!("{0}=550 5.1.1 <{0}>: user unknown", lead_email(4));
    let auth = format!("mailer:{SMTP_PASSWORD}");
    let sink = SmtpSink::start(
        &business.mail_folder(),
        &["--rcpt", &held, "--rcpt", &bounced, "--auth", &auth],
    );
    let mut mailbox = Mailbox::new(&business.mail_folder());
    let smtp_url = format!("smtp://mailer:{SMTP_PASSWORD}@127.0.0.1:{}", sink.port);
    let mut server: Serve = business.business.serve_with(
        &["--log-format", format],
        &[("TEND_SMTP_URL", &smtp_url), ("RUST_LOG", "info")],
    );
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

    // Webhooks: one taken (its signature verified by the receiver), one answered 503.
    for (user, event) in [
        ("lead-0", "Quote Requested"),
        ("lead-1", "Callback Requested"),
    ] {
        api.segment("track", &json!({ "userId": user, "event": event }))
            .await;
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

    let record = business.business.scratch().join("webhooks.jsonl");
    wait_for(
        "the verified webhook and the one answered 503 twice",
        Duration::from_secs(30),
        async || {
            let record = std::fs::read_to_string(&record).unwrap_or_default();
            let verified = record.contains("\"verified\": true");
            let refused = record.matches("/status/503").count();
            if verified && refused >= 2 {
                Ok(())
            } else {
                Err(record)
            }
        },
    )
    .await;

    let status = server.terminate(Duration::from_secs(20)).await;
    assert!(status.success(), "tend serve exited with {status}");
    let log = server.log();
    assert!(
        log.contains(&format!("http://{hooks}/status/503")),
        "the failing webhook was not logged (without its credentials):\n{log}"
    );

    let mut forbidden: BTreeSet<String> = [
        business.write_key.clone(),
        business.admin.clone(),
        WEBHOOK_SECRET.to_owned(),
        // The signing key itself, as the receiver decodes it.
        WEBHOOK_SECRET.trim_start_matches("whsec_").to_owned(),
        SMTP_PASSWORD.to_owned(),
        HOOK_PASSWORD.to_owned(),
        unsubscribe_token.clone(),
        "ann@example.com".to_owned(),
        "bad@@example.com".to_owned(),
    ]
    .into();
    forbidden.extend((0..LEADS).map(lead_email));
    forbidden.extend(install_secrets(business.dir()));
    Tour {
        log,
        forbidden,
        made_request_id: made,
    }
}

/// Fails on any line at info or above (`level` says which a line is) that holds a
/// forbidden string or an email address.
fn assert_nothing_forbidden<'a>(
    tour: &Tour,
    lines: impl Iterator<Item = (&'a str, String)>,
) -> usize {
    let mut scanned = 0;
    for (level, text) in lines {
        if !matches!(level, "INFO" | "WARN" | "ERROR") {
            continue;
        }
        scanned += 1;
        for secret in &tour.forbidden {
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
    scanned
}

#[tokio::test]
async fn a_full_tour_in_json_logs_every_request_and_no_secret_or_address() {
    let tour = tour("json").await;
    let log = &tour.log;
    let made = &tour.made_request_id;

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
        requests
            .iter()
            .any(|r| r["span"]["request_id"] == made.as_str()),
        "the request id made for a refused one is not in the log"
    );
    assert!(
        log.contains("send failed"),
        "the held-back send was not logged:\n{log}"
    );

    // Nothing a reader of the log must not learn.
    let scanned = assert_nothing_forbidden(
        &tour,
        lines
            .iter()
            .map(|l| (l["level"].as_str().unwrap_or(""), l.to_string())),
    );
    assert!(scanned > requests.len(), "{scanned} lines at info or above");
    eprintln!(
        "{} log lines, {} requests, none with a secret or an address",
        lines.len(),
        requests.len()
    );
}

/// The text format: one line per event, the level its second word (after the time); a
/// request's span fields are on its line.
#[tokio::test]
async fn a_full_tour_in_text_logs_requests_and_no_secret_or_address() {
    let tour = tour("text").await;
    let mut level = "";
    let mut lines = Vec::new();
    for line in tour.log.lines() {
        // A message with a newline in it continues at the level of the line it began on.
        if let Some(word) = line.split_whitespace().nth(1)
            && matches!(word, "TRACE" | "DEBUG" | "INFO" | "WARN" | "ERROR")
        {
            level = word;
        }
        lines.push((level, line.to_owned()));
    }
    let requests: Vec<&str> = lines
        .iter()
        .filter(|(_, l)| l.contains("request{") && l.ends_with(": request"))
        .map(|(_, l)| l.as_str())
        .collect();
    for needle in [
        "route=\"/v1/batch\" status=200",
        "route=\"/api/contacts/{id}\" status=200",
        "route=\"/v1/identify\" status=400",
        "request_id=tour-identify-1",
        &format!("request_id={}", tour.made_request_id),
    ] {
        assert!(
            requests.iter().any(|r| r.contains(needle)),
            "no request line with {needle} in:\n{}",
            tour.log
        );
    }
    let scanned = assert_nothing_forbidden(&tour, lines.iter().map(|(l, t)| (*l, t.clone())));
    assert!(scanned > requests.len(), "{scanned} lines at info or above");
    assert!(
        tour.log.contains("send failed"),
        "the held-back send was not logged:\n{}",
        tour.log
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
