//! The mail providers' webhooks on the real HTTP server over a real SQLite file, fed
//! the providers' published sample payloads (`fixtures/mail/`, sources in its README)
//! and signed for real: Mailgun's HMAC and SendGrid's ECDSA P-256 made by Python's
//! `hmac` and `cryptography`, independently of the Rust code that checks them.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tend_testkit::run_python;
use tend_testkit::web::{Server, monday_morning};

const POSTMARK_PASSWORD: &str = "pm-webhook-pass";
const MAILGUN_KEY: &str = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0";

// https://postmarkapp.com/developer/webhooks/bounce-webhook
const POSTMARK_BOUNCE: &str = include_str!("fixtures/mail/postmark_bounce.json");
// https://postmarkapp.com/developer/webhooks/spam-complaint-webhook
const POSTMARK_SPAM: &str = include_str!("fixtures/mail/postmark_spam_complaint.json");
// https://postmarkapp.com/developer/webhooks/subscription-change-webhook
const POSTMARK_SUBSCRIPTION: &str = include_str!("fixtures/mail/postmark_subscription_change.json");
// https://postmarkapp.com/developer/webhooks/delivery-webhook
const POSTMARK_DELIVERY: &str = include_str!("fixtures/mail/postmark_delivery.json");
// https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/webhooks
const MAILGUN_PERMANENT: &str = include_str!("fixtures/mail/mailgun_permanent_fail.json");
const MAILGUN_TEMPORARY: &str = include_str!("fixtures/mail/mailgun_temporary_fail.json");
const MAILGUN_COMPLAINED: &str = include_str!("fixtures/mail/mailgun_complained.json");
// https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event
const SENDGRID_EVENTS: &str = include_str!("fixtures/mail/sendgrid_events.json");

const WELCOME: &str = "Subject: Welcome\n\nHello {{ contact.name }}.";
const PROCESS: &str = r#"
name = "New inquiry"
enroll = { stage = "lead" }
max_gap = "10d"
[[steps]]
wait = "0d"
email = "welcome"
intent = "nurture"
"#;

/// Python: Mailgun's signature of `timestamp` and `token` under `key` (hex).
const MAILGUN_SIGN: &str = "\
import hashlib, hmac, sys
key, timestamp, token = sys.argv[1:4]
print(hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest())
";

/// Python: a new P-256 key: its private PEM, then its public key as SendGrid shows it.
const SENDGRID_KEYGEN: &str = "\
import base64
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
key = ec.generate_private_key(ec.SECP256R1())
pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption()).decode()
der = key.public_key().public_bytes(serialization.Encoding.DER,
                                    serialization.PublicFormat.SubjectPublicKeyInfo)
print(pem.replace('\\n', '|'))
print(base64.b64encode(der).decode())
";

/// Python: SendGrid's signature (base64 DER ECDSA) of `timestamp` + stdin.
const SENDGRID_SIGN: &str = "\
import base64, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
pem, timestamp = sys.argv[1].replace('|', '\\n').encode(), sys.argv[2]
key = serialization.load_pem_private_key(pem, password=None)
payload = sys.stdin.buffer.read()
print(base64.b64encode(key.sign(timestamp.encode() + payload, ec.ECDSA(hashes.SHA256()))).decode())
";

fn python(script: &str, args: &[&str], stdin: &[u8]) -> String {
    let out = run_python(script, args, stdin);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A server with all three providers configured, and SendGrid's private key (PEM with
/// `|` for newlines) to sign with.
async fn server() -> (Server, String) {
    let keys = python(SENDGRID_KEYGEN, &[], b"");
    let (private, public) = keys.split_once('\n').unwrap();
    let config = format!(
        r#"
public_url = "https://tend.example.com"
[business]
name = "Studio Rossi"
timezone = "Europe/Rome"
hours = "Mon-Sun 08:00-20:00"
[stages.on_event]
"Inquiry Received" = "lead"
[channels.email]
from = "Studio Rossi <hello@studio.example>"
[channels.email.providers.postmark]
user = "postmark"
password_file = "postmark.secret"
[channels.email.providers.mailgun]
signing_key_file = "mailgun.secret"
[channels.email.providers.sendgrid]
public_key = "{public}"
"#
    );
    let server = Server::start_with_files(
        &config,
        &[("new-inquiry", PROCESS)],
        &[("welcome", WELCOME)],
        &[
            ("postmark.secret", &format!("{POSTMARK_PASSWORD}\n")),
            ("mailgun.secret", MAILGUN_KEY),
        ],
        monday_morning(),
    )
    .await;
    (server, private.to_owned())
}

/// A lead at `email` who was sent the welcome; returns the contact's id.
async fn mailed_lead(s: &Server, user: &str, email: &str) -> i64 {
    s.post_segment(
        "identify",
        json!({"userId": user, "traits": {"email": email, "name": "Someone"}}),
    )
    .await;
    s.post_segment(
        "track",
        json!({"userId": user, "event": "Inquiry Received"}),
    )
    .await;
    s.engine.run_until_idle().await.unwrap();
    let (_, body) = s.get(&format!("/api/contacts?q={email}"), &s.admin).await;
    body["contacts"][0]["id"].as_i64().expect("the contact")
}

async fn suppressed(s: &Server, id: i64) -> bool {
    let (_, contact) = s.get(&format!("/api/contacts/{id}"), &s.admin).await;
    !contact["suppressed_at"].is_null()
}

async fn feedback(s: &Server) -> Value {
    let (status, pace) = s.get("/api/pace", &s.admin).await;
    assert_eq!(status, StatusCode::OK);
    pace["mail_feedback"].clone()
}

async fn post(
    s: &Server,
    route: &str,
    body: &str,
    headers: &[(&str, &str)],
    auth: Option<(&str, &str)>,
) -> (StatusCode, Value) {
    let mut request = s
        .client
        .post(format!("{}/v1/mail/{route}", s.base))
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some((user, password)) = auth {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// The Mailgun sample with a fresh signature made by Python at `timestamp`.
fn mailgun_signed(sample: &str, timestamp: i64, token: &str) -> String {
    let mut body: Value = serde_json::from_str(sample).unwrap();
    let timestamp = timestamp.to_string();
    let signature = python(MAILGUN_SIGN, &[MAILGUN_KEY, &timestamp, token], b"");
    body["signature"] = json!({"timestamp": timestamp, "token": token, "signature": signature});
    body.to_string()
}

#[tokio::test]
async fn a_mailgun_token_used_on_one_node_is_refused_by_another_on_the_same_database() {
    let (s, _) = server().await;
    let alice = mailed_lead(&s, "u-alice", "alice@example.com").await;
    // A second server over the same database, with nothing in memory from the first:
    // another node behind the load balancer, or the first after a restart.
    let other = s.second_node().await;
    let other_base = other.base.clone();
    let on_other = |body: String| {
        let client = s.client.clone();
        let url = format!("{other_base}/v1/mail/mailgun");
        async move {
            let response = client
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            response.status()
        }
    };

    let temporary = mailgun_signed(MAILGUN_TEMPORARY, now(), "token-two-nodes-1");
    let (status, body) = post(&s, "mailgun", &temporary, &[], None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        on_other(temporary.clone()).await,
        StatusCode::UNAUTHORIZED,
        "the replay sent to the other node is refused"
    );
    assert_eq!(feedback(&s).await["soft_bounces"], 1, "counted once");

    // The other way round, with an event the first node never saw.
    let permanent = mailgun_signed(MAILGUN_PERMANENT, now(), "token-two-nodes-2");
    assert_eq!(on_other(permanent.clone()).await, StatusCode::OK);
    assert!(suppressed(&s, alice).await);
    let (status, _) = post(&s, "mailgun", &permanent, &[], None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn postmark_reports_suppress_after_basic_auth_and_count_once() {
    let (s, _) = server().await;
    let john = mailed_lead(&s, "u-john", "john@example.com").await;

    // No credentials, or the wrong ones: 401 and nothing written.
    let (status, body) = post(&s, "postmark", POSTMARK_BOUNCE, &[], None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let wrong = Some(("postmark", "guess"));
    let (status, _) = post(&s, "postmark", POSTMARK_BOUNCE, &[], wrong).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!suppressed(&s, john).await);
    assert_eq!(feedback(&s).await["hard_bounces"], 0);

    let auth = Some(("postmark", POSTMARK_PASSWORD));
    // A bad event names its field; nothing is written.
    let mut bad: Value = serde_json::from_str(POSTMARK_BOUNCE).unwrap();
    bad["Email"] = json!("not an address");
    let (status, body) = post(&s, "postmark", &bad.to_string(), &[], auth).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "Email");
    bad.as_object_mut().unwrap().remove("RecordType");
    let (status, body) = post(&s, "postmark", &bad.to_string(), &[], auth).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "RecordType");
    let (status, body) = post(&s, "postmark", "{not json", &[], auth).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "body");
    assert!(!suppressed(&s, john).await);

    // The hard bounce suppresses John; Postmark's retry of it changes nothing.
    let (status, body) = post(&s, "postmark", POSTMARK_BOUNCE, &[], auth).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"recorded": 1, "suppressed": 1, "duplicates": 0, "ignored": 0})
    );
    assert!(suppressed(&s, john).await);
    let (_, body) = post(&s, "postmark", POSTMARK_BOUNCE, &[], auth).await;
    assert_eq!(body["duplicates"], 1, "{body}");
    assert_eq!(feedback(&s).await["hard_bounces"], 1);

    let (_, body) = post(&s, "postmark", POSTMARK_SPAM, &[], auth).await;
    assert_eq!(body["recorded"], 1, "{body}");
    assert_eq!(feedback(&s).await["complaints"], 1);

    // A hard bounce's subscription change arrives on the bounce webhook too: ignored
    // here, so it is not counted twice; a manual suppression is an unsubscribe.
    let (_, body) = post(&s, "postmark", POSTMARK_SUBSCRIPTION, &[], auth).await;
    assert_eq!(body["ignored"], 1, "{body}");
    let mut manual: Value = serde_json::from_str(POSTMARK_SUBSCRIPTION).unwrap();
    manual["SuppressionReason"] = json!("ManualSuppression");
    let (_, body) = post(&s, "postmark", &manual.to_string(), &[], auth).await;
    assert_eq!(body["recorded"], 1, "{body}");
    assert_eq!(feedback(&s).await["unsubscribes"], 1);

    let (_, body) = post(&s, "postmark", POSTMARK_DELIVERY, &[], auth).await;
    assert_eq!(body["ignored"], 1, "{body}");
    let (_, metrics) = metrics(&s).await;
    assert!(
        metrics
            .contains(r#"tend_mail_webhook_events_total{provider="postmark",outcome="ignored"} 2"#),
        "{metrics}"
    );
}

async fn metrics(s: &Server) -> (StatusCode, String) {
    let response = s
        .client
        .get(format!("{}/metrics", s.base))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn mailgun_reports_need_a_fresh_signature_used_once() {
    let (s, _) = server().await;
    let alice = mailed_lead(&s, "u-alice", "alice@example.com").await;

    // The sample as published: its signature is not under this key.
    let (status, _) = post(&s, "mailgun", MAILGUN_PERMANENT, &[], None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Signed an hour ago: too old.
    let stale = mailgun_signed(MAILGUN_PERMANENT, now() - 3600, "stale-token-0001");
    let (status, _) = post(&s, "mailgun", &stale, &[], None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Signed, then altered.
    let mut tampered: Value = serde_json::from_str(&mailgun_signed(
        MAILGUN_PERMANENT,
        now(),
        "altered-token-01",
    ))
    .unwrap();
    tampered["signature"]["token"] = json!("altered-token-02");
    let (status, _) = post(&s, "mailgun", &tampered.to_string(), &[], None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!suppressed(&s, alice).await);

    // A temporary failure is counted, not suppressed.
    let temporary = mailgun_signed(MAILGUN_TEMPORARY, now(), "token-temporary-1");
    let (status, body) = post(&s, "mailgun", &temporary, &[], None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["recorded"], 1);
    assert_eq!(body["suppressed"], 0);
    assert!(!suppressed(&s, alice).await);
    assert_eq!(feedback(&s).await["soft_bounces"], 1);

    // A bad event, validly signed: 400 naming the field, nothing written.
    let mut bad: Value = serde_json::from_str(MAILGUN_PERMANENT).unwrap();
    bad["event-data"]["recipient"] = json!(42);
    let bad = mailgun_signed(&bad.to_string(), now(), "token-bad-event-1");
    let (status, body) = post(&s, "mailgun", &bad, &[], None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "event-data.recipient");
    assert!(!suppressed(&s, alice).await);

    // The permanent failure suppresses Alice; the same request again is a replay.
    let permanent = mailgun_signed(MAILGUN_PERMANENT, now(), "token-permanent-1");
    let (status, body) = post(&s, "mailgun", &permanent, &[], None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["suppressed"], 1, "{body}");
    assert!(suppressed(&s, alice).await);
    let (status, _) = post(&s, "mailgun", &permanent, &[], None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a replayed token is refused"
    );

    let complained = mailgun_signed(MAILGUN_COMPLAINED, now(), "token-complained-1");
    let (_, body) = post(&s, "mailgun", &complained, &[], None).await;
    assert_eq!(body["recorded"], 1, "{body}");
    let counts = feedback(&s).await;
    assert_eq!(
        (
            counts["hard_bounces"].as_u64(),
            counts["complaints"].as_u64()
        ),
        (Some(1), Some(1))
    );
}

#[tokio::test]
async fn a_sendgrid_batch_is_verified_whole_and_unknown_events_are_counted() {
    let (s, private) = server().await;
    let someone = mailed_lead(&s, "u-ex", "example@test.com").await;
    let timestamp = now().to_string();
    let sign = |body: &str| python(SENDGRID_SIGN, &[&private, &timestamp], body.as_bytes());
    let signature = sign(SENDGRID_EVENTS);
    let signed = [
        ("X-Twilio-Email-Event-Webhook-Signature", signature.as_str()),
        ("X-Twilio-Email-Event-Webhook-Timestamp", timestamp.as_str()),
    ];

    // Unsigned, or the body changed after signing: 401, nothing written.
    let (status, _) = post(&s, "sendgrid", SENDGRID_EVENTS, &[], None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let altered = SENDGRID_EVENTS.replace("\"spamreport\"", "\"delivered\"");
    let (status, _) = post(&s, "sendgrid", &altered, &signed, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!suppressed(&s, someone).await);

    // One bad event refuses the whole batch, naming it.
    let mut bad: Value = serde_json::from_str(SENDGRID_EVENTS).unwrap();
    bad[7]["email"] = json!("");
    let bad = bad.to_string();
    let bad_signature = sign(&bad);
    let (status, body) = post(
        &s,
        "sendgrid",
        &bad,
        &[
            ("X-Twilio-Email-Event-Webhook-Signature", &bad_signature),
            ("X-Twilio-Email-Event-Webhook-Timestamp", &timestamp),
        ],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "[7].email");
    assert_eq!(feedback(&s).await["hard_bounces"], 0, "nothing written");

    let (status, body) = post(&s, "sendgrid", SENDGRID_EVENTS, &signed, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // bounce, spamreport, unsubscribe and group_unsubscribe; the other seven ignored.
    assert_eq!(
        body,
        json!({"recorded": 4, "suppressed": 1, "duplicates": 0, "ignored": 7})
    );
    assert!(suppressed(&s, someone).await);
    let counts = feedback(&s).await;
    assert_eq!(counts["hard_bounces"], 1);
    assert_eq!(counts["complaints"], 1);
    assert_eq!(counts["unsubscribes"], 2);
    let (_, body) = post(&s, "sendgrid", SENDGRID_EVENTS, &signed, None).await;
    assert_eq!(
        body["duplicates"], 4,
        "SendGrid's retry changes nothing: {body}"
    );

    // A body announced larger than the limit is refused before it is read.
    let huge = format!("[{}]", " ".repeat(1024 * 1024 + 1024));
    let (status, body) = post(&s, "sendgrid", &huge, &signed, None).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
}

#[tokio::test]
async fn a_provider_that_is_not_configured_has_no_webhook() {
    let s = Server::start(
        "[business]\nname = \"Studio\"\n[channels.email]\nfrom = \"hello@studio.example\"\n",
        &[],
        &[],
    )
    .await;
    for route in ["postmark", "mailgun", "sendgrid"] {
        let (status, body) = post(&s, route, "{}", &[], None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{route}: {body}");
    }
}
