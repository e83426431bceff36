//! Email dispatch end to end: the real `tend serve` binary on a SQLite file, a real SMTP
//! server (aiosmtpd) on loopback, leads arriving over Segment's HTTP API — and the
//! server killed, shut down, or left without its SMTP server while it sends.
//!
//! Needs Python 3 with aiosmtpd (`pip install aiosmtpd standardwebhooks icalendar`);
//! the tests fail, never skip, without it.

use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};
use tend_testkit::api::lead_email;
use tend_testkit::{Api, Mailbox, SmtpSink, Studio, require_python_module, wait_for};

/// Sends in flight at once: the most a crash may duplicate.
const WORKERS: usize = 4;

/// A business that may email any lead at any hour (CI runs at any time of day): no
/// budgets, business hours all week, no quiet hours, `WORKERS` senders, fast retries.
/// `TEND_SMTP_URL` names the SMTP server.
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

[dispatch]
workers = {WORKERS}
retry_after = "1s"
retry_max = "2s"
"#
    )
}

/// A business from `tend init` with [`config`] as its `tend.toml`, a write key and an
/// admin token.
fn studio() -> Studio {
    require_python_module("aiosmtpd");
    Studio::new(env!("CARGO_BIN_EXE_tend"), &config())
}

/// Waits until the welcome email of each of the `count` leads is recorded as sent,
/// then checks it against what the SMTP server received: every lead got the email of
/// its own welcome touch, nobody got anything else. Returns the number of duplicates
/// (messages whose Message-ID had already arrived).
async fn assert_every_lead_got_its_welcome(
    api: &Api,
    mailbox: &mut Mailbox,
    count: usize,
) -> usize {
    let touches = wait_for(
        "every lead's welcome touch to be recorded as sent",
        Duration::from_secs(30),
        async || {
            let touches = api.welcome_touches("lead").await;
            let sent = touches.values().filter(|t| t["state"] == "sent").count();
            if touches.len() == count && sent == count {
                Ok(touches)
            } else {
                let states: BTreeMap<String, usize> =
                    touches.values().fold(BTreeMap::new(), |mut acc, t| {
                        *acc.entry(t["state"].to_string()).or_default() += 1;
                        acc
                    });
                Err(format!(
                    "{} leads, welcome touch states {states:?}",
                    touches.len()
                ))
            }
        },
    )
    .await;

    let messages = mailbox.messages();
    let mut by_recipient: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for mail in &messages {
        let touch = mail.touch_id().unwrap_or_else(|| {
            panic!(
                "Message-ID {:?} is not derived from a touch",
                mail.message_id
            )
        });
        assert_eq!(
            mail.rcpt_tos.len(),
            1,
            "one recipient per email: {:?}",
            mail.rcpt_tos
        );
        by_recipient
            .entry(&mail.rcpt_tos[0])
            .or_default()
            .push(touch);
    }
    for i in 0..count {
        let email = lead_email(i);
        let touch = &touches[&email];
        let id = touch["id"].as_i64().expect("a touch id");
        assert!(
            touch["attempts"].as_u64().is_some_and(|a| a >= 1),
            "{email}: {touch}"
        );
        let received = by_recipient.remove(email.as_str()).unwrap_or_default();
        assert!(
            !received.is_empty(),
            "{email}'s welcome (touch {id}) is recorded as sent but never arrived"
        );
        assert!(
            received.iter().all(|&t| t == id),
            "{email} received touches {received:?}; its welcome is touch {id}"
        );
    }
    assert!(
        by_recipient.is_empty(),
        "mail to addresses that are no lead's: {by_recipient:?}"
    );
    let distinct: HashSet<&str> = messages.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(distinct.len(), count);
    messages.len() - distinct.len()
}

#[tokio::test]
async fn a_new_leads_welcome_email_arrives_with_its_headers() {
    let business = studio();
    let sink = SmtpSink::start(&business.mail_folder(), &[]);
    let mut mailbox = Mailbox::new(&business.mail_folder());
    let server = business.serve(sink.port);
    let api = business.api(&server);

    api.segment(
        "identify",
        &json!({ "userId": "u-ann", "traits": { "email": "ann@example.com", "name": "Ann Smith" } }),
    )
    .await;
    api.segment(
        "track",
        &json!({ "userId": "u-ann", "event": "Inquiry Received" }),
    )
    .await;
    let tracked = Instant::now();
    let mail = wait_for(
        "the welcome email at the SMTP server",
        Duration::from_secs(5),
        async || match mailbox.messages().as_slice() {
            [] => Err("no message yet".into()),
            [mail] => Ok(mail.clone()),
            more => Err(format!("{} messages, expected one", more.len())),
        },
    )
    .await;
    eprintln!(
        "welcome email arrived {:?} after the track call",
        tracked.elapsed()
    );

    assert_eq!(mail.rcpt_tos, ["ann@example.com"]);
    let header = |name: &str| {
        mail.header(name)
            .unwrap_or_else(|| panic!("no {name} header in {}", mail.summary["headers"]))
            .to_owned()
    };
    assert!(header("To").contains("ann@example.com"), "{}", header("To"));
    assert_eq!(header("From"), "Studio Rossi <hello@example.com>");
    assert_eq!(header("Subject"), "Thanks for getting in touch, Ann");
    let touch = mail
        .touch_id()
        .unwrap_or_else(|| panic!("Message-ID {:?} is not <tend.touch.N@…>", mail.message_id));
    assert!(
        mail.message_id.ends_with(".example.com>"),
        "Message-ID on the sender's domain: {}",
        mail.message_id
    );

    // RFC 8058: an https link and a mailto, and the one-click promise for https.
    let list = header("List-Unsubscribe");
    let links: Vec<&str> = list
        .split(',')
        .map(|l| l.trim().trim_start_matches('<').trim_end_matches('>'))
        .collect();
    let https = links
        .iter()
        .find(|l| l.starts_with("https://tend.example.com/unsubscribe/"))
        .unwrap_or_else(|| panic!("no https unsubscribe link in {list:?}"));
    assert!(
        links
            .iter()
            .any(|l| l.starts_with("mailto:hello@example.com")),
        "no mailto in {list:?}"
    );
    assert_eq!(
        header("List-Unsubscribe-Post"),
        "List-Unsubscribe=One-Click"
    );

    assert_eq!(mail.summary["content_type"], "multipart/alternative");
    let parts = mail.summary["parts"].as_array().expect("parts");
    let part = |kind: &str| -> &str {
        parts
            .iter()
            .find(|p| p["content_type"] == kind)
            .and_then(|p| p["content"].as_str())
            .unwrap_or_else(|| panic!("no {kind} part in {parts:?}"))
    };
    assert!(
        part("text/plain").contains("Hi Ann,"),
        "{}",
        part("text/plain")
    );
    // The starter template links the unsubscribe URL itself: it shows once in each
    // part, with no second footer after it.
    assert_eq!(
        part("text/plain").matches(https).count(),
        1,
        "{}",
        part("text/plain")
    );
    assert!(
        !part("text/plain").contains("To stop receiving these emails"),
        "{}",
        part("text/plain")
    );
    assert!(
        part("text/html").contains("<strong>A short call.</strong>"),
        "{}",
        part("text/html")
    );
    assert_eq!(
        part("text/html").matches(https).count(),
        1,
        "{}",
        part("text/html")
    );
    assert!(
        !part("text/html").contains("To stop receiving these emails"),
        "{}",
        part("text/html")
    );

    // The API shows the same touch as sent, once.
    let contact = &api.contacts_in("lead").await[0];
    let sent = wait_for(
        "the touch to be recorded as sent",
        Duration::from_secs(5),
        async || {
            let detail = api.get(&format!("/api/contacts/{}", contact["id"])).await;
            let touches = detail["touches"].as_array().cloned().unwrap_or_default();
            match touches.iter().find(|t| t["id"] == touch) {
                Some(t) if t["state"] == "sent" => Ok(t.clone()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    assert_eq!(sent["channel"], "email");
    assert_eq!(sent["attempts"], 1);

    // The link in the email is this contact's: its one-click POST suppresses them.
    let path = https.strip_prefix("https://tend.example.com").unwrap();
    let response = api
        .client
        .post(format!("{}{path}", api.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let detail = api.get(&format!("/api/contacts/{}", contact["id"])).await;
    assert!(!detail["suppressed_at"].is_null(), "{detail}");
}

#[tokio::test]
async fn sigkill_while_dispatching_loses_nothing_and_duplicates_only_in_flight_sends() {
    const LEADS: usize = 500;
    let business = studio();
    // 40 ms per message and WORKERS connections: about 10 s for the lot, so the kill
    // lands mid-way; the reply is held after the message is stored, so sends in flight
    // at the kill have arrived without the server knowing.
    let sink = SmtpSink::start(&business.mail_folder(), &["--delay-ms", "40"]);
    let mut mailbox = Mailbox::new(&business.mail_folder());
    let mut server = business.serve(sink.port);
    business.api(&server).new_leads(LEADS).await;

    let arrived = wait_for(
        "a fifth of the emails",
        Duration::from_secs(30),
        async || {
            let (total, _) = mailbox.counts();
            if total >= LEADS / 5 {
                Ok(total)
            } else {
                Err(format!("{total} arrived"))
            }
        },
    )
    .await;
    server.kill_hard();
    let (at_kill, _) = mailbox.counts();
    assert!(
        at_kill < LEADS,
        "all {LEADS} emails were sent before the kill ({arrived} when it was decided): \
         the SMTP sink must be slower for this test to mean anything"
    );

    let restarted = Instant::now();
    let server = business.serve(sink.port);
    let api = business.api(&server);
    wait_for(
        "every email after the restart",
        Duration::from_secs(40),
        async || {
            let (total, distinct) = mailbox.counts();
            if distinct == LEADS {
                Ok(())
            } else {
                Err(format!(
                    "{distinct} distinct Message-IDs in {total} messages"
                ))
            }
        },
    )
    .await;
    let recovered = restarted.elapsed();
    let duplicates = assert_every_lead_got_its_welcome(&api, &mut mailbox, LEADS).await;
    eprintln!(
        "killed with {at_kill}/{LEADS} emails arrived; after the restart all arrived in \
         {recovered:?}; {duplicates} duplicates (at most {WORKERS} in flight)"
    );
    assert!(
        duplicates <= WORKERS,
        "{duplicates} duplicates after a kill -9, more than the {WORKERS} sends in flight"
    );
}

#[tokio::test]
async fn an_smtp_outage_delays_the_emails_and_drops_none() {
    const LEADS: usize = 20;
    let business = studio();
    // The sink holds its port but refuses connections until it is told to listen.
    let mut sink = SmtpSink::refusing(&business.mail_folder(), &[]);
    let server = business.serve(sink.port);
    let api = business.api(&server);
    api.new_leads(LEADS).await;

    // Every welcome waits in the queue, tried and retried, with the error kept.
    let down = Instant::now();
    let touches = wait_for(
        "every welcome touch to be retried during the outage",
        Duration::from_secs(20),
        async || {
            let touches = api.welcome_touches("lead").await;
            // `null`: the lead is in, its enrollment not yet.
            let left = |t: &&Value| {
                !t.is_null() && !matches!(t["state"].as_str(), Some("pending" | "queued"))
            };
            if let Some(lost) = touches.values().find(left) {
                panic!("a touch left the queue while SMTP was down: {lost}");
            }
            let retried = touches
                .values()
                .filter(|t| {
                    t["attempts"].as_u64().is_some_and(|a| a >= 2) && t["last_error"].is_string()
                })
                .count();
            if touches.len() == LEADS && retried == LEADS {
                Ok(touches)
            } else {
                Err(format!("{} leads, {retried} retried", touches.len()))
            }
        },
    )
    .await;
    for (email, touch) in &touches {
        assert_eq!(touch["state"], "queued", "{email}: {touch}");
        let error = touch["last_error"].as_str().unwrap();
        assert!(error.contains("SMTP"), "{email}: last_error {error:?}");
    }
    let mut mailbox = Mailbox::new(&business.mail_folder());
    assert_eq!(mailbox.counts(), (0, 0));

    sink.listen();
    let back = Instant::now();
    wait_for(
        "every email once SMTP is back",
        Duration::from_secs(15),
        async || {
            let (total, distinct) = mailbox.counts();
            if distinct == LEADS {
                Ok(())
            } else {
                Err(format!("{distinct} of {total}"))
            }
        },
    )
    .await;
    eprintln!(
        "outage of {:?}; every email arrived {:?} after SMTP came back",
        back - down,
        back.elapsed()
    );
    let duplicates = assert_every_lead_got_its_welcome(&api, &mut mailbox, LEADS).await;
    assert_eq!(duplicates, 0, "an outage alone must not duplicate anything");
}

#[tokio::test]
async fn sigterm_finishes_in_flight_sends_and_a_restart_sends_the_rest_once() {
    const LEADS: usize = 200;
    let business = studio();
    // 100 ms per message: SIGTERM lands while each worker waits on a reply.
    let sink = SmtpSink::start(&business.mail_folder(), &["--delay-ms", "100"]);
    let mut mailbox = Mailbox::new(&business.mail_folder());
    let mut server = business.serve(sink.port);
    let api = business.api(&server);
    api.new_leads(LEADS).await;

    wait_for(
        "a tenth of the emails",
        Duration::from_secs(30),
        async || {
            let (total, _) = mailbox.counts();
            if total >= LEADS / 10 {
                Ok(())
            } else {
                Err(format!("{total} arrived"))
            }
        },
    )
    .await;
    // An API client (a browser, say) keeps an idle connection open: it must not hold
    // the shutdown up.
    api.get("/api/contacts?limit=1").await;
    let asked = Instant::now();
    let status = server.terminate(Duration::from_secs(10)).await;
    let stopped_in = asked.elapsed();
    assert!(
        status.success(),
        "tend serve exited with {status} after SIGTERM; log:\n{}",
        server.log()
    );
    let (at_exit, distinct_at_exit) = mailbox.counts();
    assert!(
        at_exit < LEADS,
        "all {LEADS} emails were sent before SIGTERM: make the sink slower"
    );
    assert_eq!(at_exit, distinct_at_exit, "duplicates before any restart");

    drop(api);
    let server = business.serve(sink.port);
    let api = business.api(&server);
    wait_for(
        "every email after the restart",
        Duration::from_secs(40),
        async || {
            let (total, distinct) = mailbox.counts();
            if distinct == LEADS {
                Ok(())
            } else {
                Err(format!("{distinct} of {total}"))
            }
        },
    )
    .await;
    let duplicates = assert_every_lead_got_its_welcome(&api, &mut mailbox, LEADS).await;
    eprintln!(
        "SIGTERM with {at_exit}/{LEADS} emails arrived: exited 0 in {stopped_in:?}; \
         {duplicates} duplicates after the restart"
    );
    assert_eq!(
        duplicates, 0,
        "a graceful shutdown finishes its sends and releases its leases: nothing is sent twice"
    );
}
