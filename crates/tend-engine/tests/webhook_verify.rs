//! The webhook channel against a receiver that verifies signatures with the
//! `standardwebhooks` reference library (tend-testkit's `peers/webhook_receiver.py`).

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tend_engine::send::SendError;
use tend_engine::webhook::{WebhookSender, sign};
use tend_testkit::{ClosedPort, WebhookReceiver, peer_file};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OTHER_SECRET: &str = "whsec_dGhpcyBpcyBub3QgdGhlIHJpZ2h0IGtleSE=";

/// A running receiver and the file it records requests in.
struct Receiver {
    server: WebhookReceiver,
    scheme: &'static str,
    _dir: tempfile::TempDir,
    record: std::path::PathBuf,
}

impl Receiver {
    fn start() -> Receiver {
        Receiver::start_with(&[], "http")
    }

    fn start_tls() -> Receiver {
        let cert = peer_file("tls/server.pem");
        let key = peer_file("tls/server.key");
        Receiver::start_with(
            &[
                "--tls-cert",
                cert.to_str().expect("utf-8 path"),
                "--tls-key",
                key.to_str().expect("utf-8 path"),
            ],
            "https",
        )
    }

    fn start_with(extra: &[&str], scheme: &'static str) -> Receiver {
        let dir = tempfile::tempdir().expect("temp dir");
        let record = dir.path().join("requests.jsonl");
        let server = WebhookReceiver::start(SECRET, &record, extra);
        Receiver {
            server,
            scheme,
            _dir: dir,
            record,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}://127.0.0.1:{}{path}", self.scheme, self.server.port)
    }

    /// Every request the receiver has seen, in order.
    fn requests(&self) -> Vec<Value> {
        match std::fs::read_to_string(&self.record) {
            Ok(text) => text
                .lines()
                .map(|line| serde_json::from_str(line).expect("record line"))
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

fn payload() -> Value {
    json!({
        "type": "touch.due",
        "contact": { "id": 17, "name": "Ada <script>", "email": "ada@example.com" },
        "process": "New inquiry",
        "step": 3,
        "unicode": "perché ✓",
    })
}

#[tokio::test]
async fn signed_webhook_verifies_with_the_reference_library() {
    let receiver = Receiver::start();
    let sender = WebhookSender::new(Some(SECRET)).expect("valid secret");
    assert!(sender.is_signing());
    let at = jiff::Timestamp::now();

    sender
        .send(&receiver.url("/verify"), "touch_42", &payload(), at)
        .await
        .expect("receiver accepted the signature");

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    let request = &requests[0];
    assert_eq!(request["verified"], true, "{request:#}");
    let headers = &request["headers"];
    assert_eq!(headers["webhook-id"], "touch_42");
    assert_eq!(headers["webhook-timestamp"], at.as_second().to_string());
    assert_eq!(headers["content-type"], "application/json");
    assert!(
        headers["user-agent"]
            .as_str()
            .is_some_and(|ua| ua.starts_with("tend/")),
        "{headers:#}"
    );
    let body: Value = serde_json::from_str(request["body"].as_str().unwrap()).unwrap();
    assert_eq!(body, payload());

    // The header is exactly what `sign` computes over the bytes that were sent.
    let key = base64_key(SECRET);
    let expected = format!(
        "v1,{}",
        sign(
            &key,
            "touch_42",
            at.as_second(),
            request["body"].as_str().unwrap().as_bytes()
        )
    );
    assert_eq!(headers["webhook-signature"], expected.as_str());
}

fn base64_key(secret: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap()
}

#[tokio::test]
async fn wrong_secret_fails_verification_and_is_fatal() {
    let receiver = Receiver::start();
    let sender = WebhookSender::new(Some(OTHER_SECRET)).expect("valid secret");
    let error = sender
        .send(
            &receiver.url("/verify"),
            "touch_1",
            &payload(),
            jiff::Timestamp::now(),
        )
        .await
        .unwrap_err();
    match &error {
        SendError::Fatal(reason) => assert!(reason.contains("400"), "{reason}"),
        other => panic!("expected Fatal, got {other:?}"),
    }
    assert_eq!(receiver.requests()[0]["verified"], false);
}

#[tokio::test]
async fn unsigned_webhook_has_no_signature_header() {
    let receiver = Receiver::start();
    let sender = WebhookSender::new(None).expect("no secret is fine");
    assert!(!sender.is_signing());
    let error = sender
        .send(
            &receiver.url("/verify"),
            "touch_1",
            &payload(),
            jiff::Timestamp::now(),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, SendError::Fatal(_)), "{error:?}");
    let request = &receiver.requests()[0];
    assert_eq!(request["verified"], false);
    assert!(
        request["headers"].get("webhook-signature").is_none(),
        "{request:#}"
    );
    assert_eq!(request["headers"]["webhook-id"], "touch_1");
}

#[tokio::test]
async fn answers_are_classified_by_status() {
    let receiver = Receiver::start();
    let sender = WebhookSender::new(Some(SECRET)).unwrap();
    let at = jiff::Timestamp::now();
    for (status, retryable) in [
        (503, true),
        (500, true),
        (429, true),
        (404, false),
        (410, false),
        (301, false),
    ] {
        let error = sender
            .send(
                &receiver.url(&format!("/status/{status}")),
                "id",
                &payload(),
                at,
            )
            .await
            .unwrap_err();
        assert_eq!(error.is_retryable(), retryable, "{status}: {error:?}");
        if !retryable {
            assert!(matches!(error, SendError::Fatal(_)), "{status}: {error:?}");
        }
        assert!(error.to_string().contains(&status.to_string()), "{error}");
    }
    for status in [200, 201, 202, 204] {
        sender
            .send(
                &receiver.url(&format!("/status/{status}")),
                "id",
                &payload(),
                at,
            )
            .await
            .unwrap_or_else(|e| panic!("{status}: {e:?}"));
    }
}

#[tokio::test]
async fn slow_receiver_times_out_as_retryable() {
    let receiver = Receiver::start();
    let sender = WebhookSender::new(Some(SECRET))
        .unwrap()
        .with_timeouts(Duration::from_secs(2), Duration::from_millis(300))
        .unwrap();
    let started = Instant::now();
    let error = sender
        .send(
            &receiver.url("/slow/5000"),
            "id",
            &payload(),
            jiff::Timestamp::now(),
        )
        .await
        .unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let receiver = Receiver::start();
    let sender = WebhookSender::new(Some(SECRET)).unwrap();
    let error = sender
        .send(
            &receiver.url("/redirect"),
            "id",
            &payload(),
            jiff::Timestamp::now(),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, SendError::Fatal(_)), "{error:?}");
    let paths: Vec<Value> = receiver
        .requests()
        .iter()
        .map(|r| r["path"].clone())
        .collect();
    assert_eq!(paths, [json!("/redirect")]);
}

#[tokio::test]
async fn huge_answers_are_cut_short() {
    let receiver = Receiver::start();
    let sender = WebhookSender::new(Some(SECRET)).unwrap();
    let at = jiff::Timestamp::now();
    sender
        .send(&receiver.url("/big/200"), "id", &payload(), at)
        .await
        .expect("a 2xx with a large body is still success");
    let error = sender
        .send(&receiver.url("/big/404"), "id", &payload(), at)
        .await
        .unwrap_err();
    assert!(matches!(error, SendError::Fatal(_)), "{error:?}");
    assert!(error.to_string().len() < 500, "{error}");
}

#[tokio::test]
async fn closed_port_is_retryable() {
    let sender = WebhookSender::new(Some(SECRET)).unwrap();
    let closed = ClosedPort::new();
    let url = format!("http://127.0.0.1:{}/verify", closed.port);
    let error = sender
        .send(&url, "id", &payload(), jiff::Timestamp::now())
        .await
        .unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
}

#[tokio::test]
async fn errors_do_not_leak_url_credentials_or_query() {
    let sender = WebhookSender::new(Some(SECRET)).unwrap();
    let closed = ClosedPort::new();
    let url = format!(
        "http://user:hunter2@127.0.0.1:{}/hook?token=t0ps3cret",
        closed.port
    );
    let error = sender
        .send(&url, "id", &payload(), jiff::Timestamp::now())
        .await
        .unwrap_err();
    let text = format!("{error} {error:?}");
    assert!(
        !text.contains("hunter2") && !text.contains("t0ps3cret"),
        "{text}"
    );
}

#[tokio::test]
async fn https_webhook_verifies_with_a_trusted_private_ca() {
    let receiver = Receiver::start_tls();
    let ca = std::fs::read(peer_file("tls/ca.pem")).unwrap();
    let sender = WebhookSender::new(Some(SECRET))
        .unwrap()
        .with_root_certificates(&ca)
        .expect("valid PEM");
    sender
        .send(
            &receiver.url("/verify"),
            "touch_tls",
            &payload(),
            jiff::Timestamp::now(),
        )
        .await
        .expect("TLS send accepted");
    assert_eq!(receiver.requests()[0]["verified"], true);
}

#[tokio::test]
async fn https_webhook_to_an_untrusted_certificate_fails() {
    let receiver = Receiver::start_tls();
    let sender = WebhookSender::new(Some(SECRET)).unwrap();
    let error = sender
        .send(
            &receiver.url("/verify"),
            "touch_tls",
            &payload(),
            jiff::Timestamp::now(),
        )
        .await
        .unwrap_err();
    // Certificate problems are fixed by an operator; the touch waits for that.
    assert!(error.is_retryable(), "{error:?}");
    assert!(
        error
            .to_string()
            .to_ascii_lowercase()
            .contains("certificate"),
        "{error}"
    );
    assert!(receiver.requests().is_empty());
}
