//! `/metrics` after known traffic, read by Prometheus's own Python parser
//! (`prometheus_client.parser.text_string_to_metric_families`): events ingested,
//! duplicates and refusals by reason, touches decided by decision and reason (sent, and
//! held by the frequency cap), deliveries by channel and outcome
//! against a real SMTP server (aiosmtpd) that takes some, holds one back and bounces one
//! and a real webhook receiver that takes one and refuses one, HTTP requests by route
//! and status with their latency histogram, the engine's tick and dispatch histograms,
//! the age of the oldest due touch, and the pace gauges. Every count is exact.
//!
//! Needs Python 3 with aiosmtpd, standardwebhooks and prometheus-client; fails, never
//! skips, without them.

use serde_json::{Value, json};
use std::time::Duration;
use tend_testkit::api::lead_email;
use tend_testkit::{Api, SmtpSink, Studio, WebhookReceiver, require_python_module, wait_for};

const WEBHOOK_SECRET: &str = "whsec_dGVuZC1tZXRyaWNzLXNlY3JldC12YWx1ZQ==";

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
min_gap = "1d"

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
# One retry within the test, so the count is exact.
retry_after = "1h"
retry_max = "1h"
"#
    )
}

/// A process made on `event` whose steps are `(wait, touch)`; `touch` is
/// `email = "…"` or `webhook = "…"`.
fn process(dir: &std::path::Path, file: &str, event: &str, steps: &[(&str, &str)]) {
    let mut process =
        format!("name = \"{file}\"\nenroll = {{ event = \"{event}\" }}\nmax_gap = \"30d\"\n");
    for (wait, touch) in steps {
        process.push_str(&format!(
            "\n[[steps]]\nwait = \"{wait}\"\n{touch}\nintent = \"nurture\"\n"
        ));
    }
    std::fs::write(dir.join("processes").join(format!("{file}.toml")), process).unwrap();
}

/// Every sample as `(name, labels, value)`, as Prometheus's Python parser reads the text.
struct Samples(Vec<(String, serde_json::Map<String, Value>, f64)>);

impl Samples {
    /// Parses `text` with `prometheus_client`; panics with the parser's error if it
    /// cannot.
    fn parse(text: &str) -> Samples {
        const SCRIPT: &str = "\
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append([s.name, s.labels, s.value])
print(json.dumps(out))
";
        let out = tend_testkit::run_python(SCRIPT, &[], text.as_bytes());
        assert!(
            out.status.success(),
            "prometheus_client could not parse /metrics (pip install prometheus-client): {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows: Vec<(String, serde_json::Map<String, Value>, f64)> =
            serde_json::from_slice(&out.stdout).expect("the script's JSON");
        Samples(rows)
    }

    /// The value of the sample `name` whose labels include `labels`; 0 when none.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let matching: Vec<f64> = self
            .0
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).and_then(Value::as_str) == Some(*v))
            })
            .map(|(_, _, v)| *v)
            .collect();
        assert!(
            matching.len() <= 1,
            "{name} {labels:?} matches {matching:?}"
        );
        matching.first().copied().unwrap_or(0.0)
    }

    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _, _)| n == name)
    }
}

async fn scrape(api: &Api, admin: &str) -> (String, Samples) {
    let response = api
        .client
        .get(format!("{}/metrics", api.base))
        .bearer_auth(admin)
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let samples = Samples::parse(&text);
    (text, samples)
}

#[tokio::test]
async fn metrics_count_known_traffic() {
    require_python_module("aiosmtpd");
    let business = Studio::new(env!("CARGO_BIN_EXE_tend"), &config());
    let receiver = WebhookReceiver::start(
        WEBHOOK_SECRET,
        &business.business.scratch().join("webhooks.jsonl"),
        &[],
    );
    let hook = |path: &str| format!("webhook = \"http://127.0.0.1:{}{path}\"", receiver.port);
    let dir = business.dir();
    let welcome = "email = \"welcome\"";
    process(
        dir,
        "crm-quote",
        "Quote Requested",
        &[("0d", &hook("/verify"))],
    );
    process(
        dir,
        "crm-callback",
        "Callback Requested",
        &[("0d", &hook("/status/410"))],
    );
    process(dir, "brochure", "Brochure Requested", &[("0d", welcome)]);
    let check = business.business.tend(&["check"]);
    assert!(check.status.success(), "{check:?}");
    let held = format!("{0}=450 4.2.1 mailbox busy, try later", lead_email(3));
    let bounced = format!("{0}=550 5.1.1 user unknown", lead_email(2));
    let sink = SmtpSink::start(
        &business.mail_folder(),
        &["--rcpt", &held, "--rcpt", &bounced],
    );
    let server = business.serve(sink.port);
    let api = business.api(&server);
    let base = &server.base;

    // Ingest: 4 leads (8 messages in one batch), one message sent twice.
    api.new_leads(4).await;
    let repeated = json!({ "batch": [
        { "type": "track", "userId": "visitor", "event": "Page Visited", "messageId": "dup-1" }
    ]});
    api.segment("batch", &repeated).await;
    api.segment("batch", &repeated).await;
    // Refusals: a bad address, a body that is not JSON, a wrong write key.
    let post = |path: &str, key: &str, body: &'static str| {
        api.client
            .post(format!("{base}{path}"))
            .basic_auth(key, Some(""))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let invalid = post(
        "/v1/identify",
        &business.write_key,
        r#"{"userId":"u","traits":{"email":"no-at-sign"}}"#,
    );
    assert_eq!(invalid.await.unwrap().status(), 400);
    let malformed = post("/v1/track", &business.write_key, "{not json");
    assert_eq!(malformed.await.unwrap().status(), 400);
    let unknown_key = post("/v1/identify", "tend_not_a_key", r#"{"userId":"u"}"#);
    assert_eq!(unknown_key.await.unwrap().status(), 401);

    // Dispatch: leads 0 and 1 get their welcome, 2 bounces, 3 is retried.
    let (text, samples) = wait_for(
        "two sends, a bounce and a retry counted",
        Duration::from_secs(30),
        async || {
            let (text, s) = scrape(&api, &business.admin).await;
            let count = |outcome| {
                s.get(
                    "tend_deliveries_total",
                    &[("channel", "email"), ("outcome", outcome)],
                )
            };
            if count("sent") == 2.0 && count("bounced") == 1.0 && count("retried") >= 1.0 {
                Ok((text, s))
            } else {
                Err(format!(
                    "sent {} bounced {} retried {}",
                    count("sent"),
                    count("bounced"),
                    count("retried")
                ))
            }
        },
    )
    .await;
    let _ = (text, samples);

    // Three more touches: a webhook taken and one refused (410), and a second email to
    // lead 0 within a day of its welcome, which the frequency cap holds.
    for (user, event) in [
        ("lead-0", "Quote Requested"),
        ("lead-1", "Callback Requested"),
        ("lead-0", "Brochure Requested"),
    ] {
        api.segment("track", &json!({ "userId": user, "event": event }))
            .await;
    }
    let decided = |s: &Samples, decision, reason| {
        s.get(
            "tend_touches_decided_total",
            &[("decision", decision), ("reason", reason)],
        )
    };
    let (text, samples) = wait_for(
        "the webhooks sent and refused and the held email counted",
        Duration::from_secs(60),
        async || {
            let (text, s) = scrape(&api, &business.admin).await;
            let hooks = |outcome| {
                s.get(
                    "tend_deliveries_total",
                    &[("channel", "webhook"), ("outcome", outcome)],
                )
            };
            let held = decided(&s, "defer", "frequency_cap");
            if hooks("sent") == 1.0 && hooks("failed") == 1.0 && held == 1.0 {
                Ok((text, s))
            } else {
                Err(format!(
                    "webhooks sent {} failed {}; held {held}",
                    hooks("sent"),
                    hooks("failed")
                ))
            }
        },
    )
    .await;
    eprintln!("{text}");

    assert_eq!(samples.get("tend_events_ingested_total", &[]), 12.0);
    assert_eq!(samples.get("tend_events_duplicate_total", &[]), 1.0);
    for reason in ["invalid", "malformed", "unauthorized"] {
        assert_eq!(
            samples.get("tend_ingest_rejected_total", &[("reason", reason)]),
            1.0,
            "{reason}"
        );
    }
    assert_eq!(
        decided(&samples, "send", "none"),
        6.0,
        "the four welcome emails and the two webhooks"
    );
    let decisions: Vec<_> = samples
        .0
        .iter()
        .filter(|(name, _, value)| name == "tend_touches_decided_total" && *value > 0.0)
        .map(|(_, labels, _)| (labels["decision"].clone(), labels["reason"].clone()))
        .collect();
    assert_eq!(
        decisions.len(),
        2,
        "no other decision was made: {decisions:?}"
    );
    for (channel, counts) in [
        (
            "email",
            [
                ("sent", 2.0),
                ("retried", 1.0),
                ("failed", 0.0),
                ("bounced", 1.0),
            ],
        ),
        (
            "webhook",
            [
                ("sent", 1.0),
                ("retried", 0.0),
                ("failed", 1.0),
                ("bounced", 0.0),
            ],
        ),
    ] {
        let mut deliveries = 0.0;
        for (outcome, expected) in counts {
            let count = samples.get(
                "tend_deliveries_total",
                &[("channel", channel), ("outcome", outcome)],
            );
            assert_eq!(count, expected, "{channel} {outcome}");
            deliveries += count;
        }
        assert_eq!(
            samples.get(
                "tend_dispatch_duration_seconds_count",
                &[("channel", channel)]
            ),
            deliveries,
            "one {channel} dispatch timing per send"
        );
    }

    let requests = |route: &str, status: &str| {
        samples.get(
            "tend_http_requests_total",
            &[("route", route), ("status", status)],
        )
    };
    assert_eq!(requests("/v1/batch", "200"), 3.0);
    assert_eq!(requests("/v1/track", "200"), 3.0);
    assert_eq!(requests("/v1/identify", "400"), 1.0);
    assert_eq!(requests("/v1/identify", "401"), 1.0);
    assert_eq!(requests("/v1/track", "400"), 1.0);
    let batch_latency = |suffix: &str, le: Option<&str>| {
        let mut labels = vec![("route", "/v1/batch")];
        if let Some(le) = le {
            labels.push(("le", le));
        }
        samples.get(
            &format!("tend_http_request_duration_seconds{suffix}"),
            &labels,
        )
    };
    assert_eq!(batch_latency("_count", None), 3.0);
    assert_eq!(batch_latency("_bucket", Some("+Inf")), 3.0);
    assert!(batch_latency("_sum", None) > 0.0);
    assert!(samples.get("tend_engine_tick_duration_seconds_count", &[]) >= 1.0);

    let age = samples.get("tend_oldest_due_touch_age_seconds", &[]);
    assert!((0.0..30.0).contains(&age), "oldest due touch {age} s old");
    docs_name_only_metrics_that_exist(&text);

    // The pace gauges are still there (this business sets no budget, so it has none).
    for gauge in ["tend_capacity_limit", "tend_open_work", "tend_enrolled"] {
        assert!(samples.has(gauge), "{gauge} is missing");
    }
}

/// Touches cancelled are counted by cause: three people each with a second email
/// planned a week out lose it, one because an event ends the process (`exited`), one by
/// the unsubscribe link in the first email (`unsubscribed`), one by erasure (`erased`).
#[tokio::test]
async fn touches_cancelled_are_counted_by_cause() {
    require_python_module("aiosmtpd");
    let business = Studio::new(env!("CARGO_BIN_EXE_tend"), &config());
    let dir = business.dir();
    // Only this test's process, so no starter process plans or cancels anything.
    for entry in std::fs::read_dir(dir.join("processes")).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    std::fs::write(
        dir.join("processes").join("trial.toml"),
        "name = \"trial\"\nenroll = { event = \"Trial Started\" }\n\
         exit = { events = [\"Trial Ended\"] }\nmax_gap = \"30d\"\n\
         [[steps]]\nwait = \"0d\"\nemail = \"welcome\"\nintent = \"nurture\"\n\
         [[steps]]\nwait = \"7d\"\nemail = \"welcome\"\nintent = \"nurture\"\n",
    )
    .unwrap();
    let check = business.business.tend(&["check"]);
    assert!(check.status.success(), "{check:?}");
    let sink = SmtpSink::start(&business.mail_folder(), &[]);
    let server = business.serve(sink.port);
    let api = business.api(&server);
    let mut calls = Vec::new();
    for i in 0..3 {
        let user = format!("trial-{i}");
        calls.push(json!({
            "type": "identify", "userId": user, "traits": { "email": lead_email(i) },
        }));
        calls.push(json!({ "type": "track", "userId": user, "event": "Trial Started" }));
    }
    api.segment("batch", &json!({ "batch": calls })).await;

    // Each first email sent, so each person's second one is planned.
    wait_for(
        "three first emails sent",
        Duration::from_secs(30),
        async || {
            let (_, s) = scrape(&api, &business.admin).await;
            let sent = s.get(
                "tend_deliveries_total",
                &[("channel", "email"), ("outcome", "sent")],
            );
            if sent == 3.0 {
                Ok(())
            } else {
                Err(format!("{sent} sent"))
            }
        },
    )
    .await;
    let (_, before) = scrape(&api, &business.admin).await;
    assert!(
        !before.has("tend_touches_cancelled_total"),
        "nothing cancelled yet"
    );

    // Person 0's process ends with an event the engine reads in the background.
    api.segment(
        "track",
        &json!({ "userId": "trial-0", "event": "Trial Ended" }),
    )
    .await;
    // Person 1 unsubscribes through the link in the first email.
    let mail = tend_testkit::Mailbox::new(&business.mail_folder())
        .messages()
        .into_iter()
        .find(|m| m.rcpt_tos == [lead_email(1)])
        .expect("person 1's first email");
    let list = mail.header("List-Unsubscribe").expect("List-Unsubscribe");
    let token = list
        .split(',')
        .map(|l| l.trim().trim_start_matches('<').trim_end_matches('>'))
        .find_map(|l| l.strip_prefix("https://tend.example.com/unsubscribe/"))
        .expect("an https unsubscribe link")
        .to_owned();
    let one_click = api
        .client
        .post(format!("{}/unsubscribe/{token}", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .expect("one-click unsubscribe");
    assert!(one_click.status().is_success(), "{}", one_click.status());
    // Person 2 is erased.
    let found = api.get(&format!("/api/contacts?q={}", lead_email(2))).await;
    let id = found["contacts"][0]["id"].as_i64().expect("person 2's id");
    let erased = api
        .client
        .delete(format!("{}/api/contacts/{id}", server.base))
        .bearer_auth(&business.admin)
        .send()
        .await
        .expect("DELETE /api/contacts/{id}");
    assert_eq!(erased.status(), 204);

    let samples = wait_for("the exit counted", Duration::from_secs(30), async || {
        let (_, s) = scrape(&api, &business.admin).await;
        let exited = s.get("tend_touches_cancelled_total", &[("reason", "exited")]);
        if exited == 1.0 {
            Ok(s)
        } else {
            Err(format!("exited {exited}"))
        }
    })
    .await;
    let cancelled: Vec<(String, f64)> = samples
        .0
        .iter()
        .filter(|(name, _, _)| name == "tend_touches_cancelled_total")
        .map(|(_, labels, value)| (labels["reason"].as_str().unwrap().to_owned(), *value))
        .collect();
    assert_eq!(
        cancelled,
        [
            ("erased".to_owned(), 1.0),
            ("exited".to_owned(), 1.0),
            ("unsubscribed".to_owned(), 1.0),
        ],
        "one planned email cancelled for each cause, and for no other"
    );
}

/// The dashboard and the alert rules in `docs/` query only metrics `/metrics` writes.
fn docs_name_only_metrics_that_exist(text: &str) {
    let families: std::collections::BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    for file in ["grafana-dashboard.json", "prometheus-alerts.yml"] {
        let content = std::fs::read_to_string(docs.join(file)).expect(file);
        let mut named = 0;
        for (start, _) in content.match_indices("tend_") {
            if content[..start]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                continue;
            }
            let name: String = content[start..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if name == "tend_" {
                // A token's prefix (`tend_...`), not a metric.
                continue;
            }
            let family = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(&name);
            assert!(
                families.contains(family),
                "docs/{file} queries {name}, which /metrics does not write"
            );
            named += 1;
        }
        assert!(named >= 3, "docs/{file} names no metric");
    }
}
