//! The email channel against a real SMTP server (aiosmtpd, tend-testkit's
//! `peers/smtp_sink.py`) and against the outbox folder.

use serde_json::Value;
use std::path::{Path, PathBuf};
use tend_core::Email;
use tend_core::config::Mailbox;
use tend_engine::email::{EmailConfig, EmailSender, OutgoingEmail, message_id};
use tend_engine::send::SendError;

const BOUNCE: &str = "bounce@example.com";
const LATER: &str = "later@example.com";
const UNSUBSCRIBE_URL: &str = "https://tend.example/unsubscribe/AAAAAAAAAAdzaWduYXR1cmU";
const UNSUBSCRIBE_MAILTO: &str = "mailto:unsubscribe@studio.example?subject=unsubscribe";

/// An SMTP server storing what it accepts in its own temporary folder.
struct Sink {
    server: tend_testkit::SmtpSink,
    folder: tempfile::TempDir,
}

impl Sink {
    fn start(extra: &[&str]) -> Sink {
        let folder = tempfile::tempdir().expect("temp dir");
        let mut args = vec![
            "--rcpt",
            "bounce@example.com=550 5.1.1 <bounce@example.com>: Recipient address rejected: User unknown",
            "--rcpt",
            "later@example.com=451 4.3.0 Try again later",
            "--data",
            "REJECT-CONTENT=554 5.7.1 Message content rejected",
        ];
        args.extend_from_slice(extra);
        let server = tend_testkit::SmtpSink::start(folder.path(), &args);
        Sink { server, folder }
    }

    fn url(&self) -> String {
        self.server.url()
    }

    /// Python's reading of every accepted message, in arrival order.
    fn received(&self) -> Vec<Value> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(self.folder.path())
            .expect("read sink folder")
            .map(|entry| entry.expect("dir entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|path| {
                serde_json::from_slice(&std::fs::read(path).expect("read summary"))
                    .expect("summary JSON")
            })
            .collect()
    }
}

fn from() -> Mailbox {
    Mailbox {
        name: Some("Studio Rossi".into()),
        email: Email::parse("hello@studio.example").expect("valid address"),
    }
}

fn sender(smtp_url: Option<String>, outbox: &Path) -> EmailSender {
    EmailSender::new(EmailConfig {
        from: from(),
        smtp_url,
        outbox_dir: outbox.to_path_buf(),
        message_id_domain: "studio.example".into(),
        pool_size: 4,
        dkim: None,
    })
    .expect("valid email config")
}

fn email<'a>(touch_id: i64, to: &'a str, body: &'a str) -> OutgoingEmail<'a> {
    OutgoingEmail {
        touch_id,
        to_email: to,
        to_name: Some("Ada Lovelace"),
        subject: "Your quote from Studio Rossi",
        markdown_body: body,
        unsubscribe_url: UNSUBSCRIBE_URL,
        unsubscribe_mailto: UNSUBSCRIBE_MAILTO,
        envelope_from: None,
    }
}

fn header<'a>(message: &'a Value, name: &str) -> &'a str {
    let values = message["headers"][name.to_ascii_lowercase()]
        .as_array()
        .unwrap_or_else(|| panic!("no {name} header in {message:#}"));
    assert_eq!(values.len(), 1, "one {name} header expected: {message:#}");
    values[0].as_str().expect("header text")
}

fn part<'a>(message: &'a Value, content_type: &str) -> &'a str {
    message["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .find(|part| part["content_type"] == content_type)
        .unwrap_or_else(|| panic!("no {content_type} part in {message:#}"))["content"]
        .as_str()
        .expect("part text")
}

#[tokio::test]
async fn smtp_message_arrives_with_headers_parts_and_escaped_html() {
    let sink = Sink::start(&[]);
    let outbox = tempfile::tempdir().unwrap();
    let sender = sender(Some(sink.url()), outbox.path());
    // The contact name went through the template: it may carry markup.
    let body = "Hello <script>alert('pwned')</script>,\n\nHere is **your quote**:\n\n\
                - design\n- build\n\nSee [the details](https://studio.example/q/1).";
    let mut message = email(1001, "ada@example.com", body);
    message.to_name = Some("<script>alert(1)</script>");

    sender.send(&message).await.expect("accepted");

    let received = sink.received();
    assert_eq!(received.len(), 1, "{received:#?}");
    let got = &received[0];
    assert_eq!(got["mail_from"], "hello@studio.example");
    assert_eq!(got["rcpt_tos"], serde_json::json!(["ada@example.com"]));
    assert_eq!(
        header(got, "Message-ID"),
        message_id(1001, "studio.example")
    );
    assert_eq!(
        header(got, "Message-ID"),
        "<tend.touch.1001@studio.example>"
    );
    assert_eq!(
        header(got, "List-Unsubscribe"),
        format!("<{UNSUBSCRIBE_URL}>, <{UNSUBSCRIBE_MAILTO}>")
    );
    assert_eq!(
        header(got, "List-Unsubscribe-Post"),
        "List-Unsubscribe=One-Click"
    );
    assert_eq!(header(got, "Subject"), "Your quote from Studio Rossi");
    assert!(!header(got, "Date").is_empty());
    assert!(header(got, "From").contains("hello@studio.example"));
    assert!(header(got, "To").contains("ada@example.com"));
    assert_eq!(got["content_type"], "multipart/alternative");

    // Python keeps the CRLF line ends of the transfer encoding.
    let text = part(got, "text/plain").replace("\r\n", "\n");
    assert!(text.contains("Here is your quote:"), "{text}");
    assert!(text.contains("- design\n- build"), "{text}");
    assert!(
        text.contains("the details (https://studio.example/q/1)"),
        "{text}"
    );
    assert!(text.contains(UNSUBSCRIBE_URL), "{text}");

    let html = part(got, "text/html").replace("\r\n", "\n");
    assert!(html.contains("<strong>your quote</strong>"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert('pwned')&lt;/script&gt;"),
        "{html}"
    );
    assert!(!html.to_ascii_lowercase().contains("<script"), "{html}");
    assert!(
        html.contains(&format!("href=\"{UNSUBSCRIBE_URL}\"")),
        "{html}"
    );
}

#[tokio::test]
async fn smtp_rejected_recipient_is_bounced_and_the_pool_recovers() {
    let sink = Sink::start(&[]);
    let outbox = tempfile::tempdir().unwrap();
    let sender = sender(Some(sink.url()), outbox.path());

    let error = sender.send(&email(1, BOUNCE, "Hi")).await.unwrap_err();
    match &error {
        SendError::Bounced(reason) => assert!(reason.contains("550"), "{reason}"),
        other => panic!("expected Bounced, got {other:?}"),
    }
    assert!(sink.received().is_empty());

    // The failed transaction must not poison the pooled connection.
    sender
        .send(&email(2, "ada@example.com", "Hi"))
        .await
        .expect("accepted after a bounce");
    assert_eq!(sink.received().len(), 1);
}

#[tokio::test]
async fn smtp_temporary_rejection_is_retryable() {
    let sink = Sink::start(&[]);
    let outbox = tempfile::tempdir().unwrap();
    let sender = sender(Some(sink.url()), outbox.path());
    let error = sender.send(&email(1, LATER, "Hi")).await.unwrap_err();
    match &error {
        SendError::Retryable(reason) => assert!(reason.contains("451"), "{reason}"),
        other => panic!("expected Retryable, got {other:?}"),
    }
    assert!(sink.received().is_empty());
}

#[tokio::test]
async fn smtp_content_rejection_is_fatal_not_a_bounce() {
    let sink = Sink::start(&[]);
    let outbox = tempfile::tempdir().unwrap();
    let sender = sender(Some(sink.url()), outbox.path());
    let error = sender
        .send(&email(1, "ada@example.com", "Please REJECT-CONTENT this"))
        .await
        .unwrap_err();
    match &error {
        SendError::Fatal(reason) => assert!(reason.contains("554"), "{reason}"),
        other => panic!("expected Fatal, got {other:?}"),
    }
}

#[tokio::test]
async fn smtp_closed_port_is_retryable() {
    let outbox = tempfile::tempdir().unwrap();
    let closed = tend_testkit::ClosedPort::new();
    let sender = sender(
        Some(format!("smtp://127.0.0.1:{}", closed.port)),
        outbox.path(),
    );
    let error = sender
        .send(&email(1, "ada@example.com", "Hi"))
        .await
        .unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_concurrent_sends_share_the_pool() {
    let sink = Sink::start(&[]);
    let outbox = tempfile::tempdir().unwrap();
    let sender = std::sync::Arc::new(sender(Some(sink.url()), outbox.path()));
    // Spawning also proves the send future is Send, as the dispatcher needs.
    let mut tasks = tokio::task::JoinSet::new();
    for touch_id in 100..120 {
        let sender = sender.clone();
        tasks.spawn(async move {
            let body = format!("Message for touch {touch_id}");
            sender
                .send(&email(touch_id, "ada@example.com", &body))
                .await
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.expect("task finished").expect("accepted");
    }
    let mut ids: Vec<String> = sink
        .received()
        .iter()
        .map(|m| header(m, "Message-ID").to_owned())
        .collect();
    ids.sort();
    let mut expected: Vec<String> = (100..120)
        .map(|id| message_id(id, "studio.example"))
        .collect();
    expected.sort();
    assert_eq!(ids, expected);
    sender.shutdown().await;
}

#[tokio::test]
async fn smtp_credentials_come_from_the_url() {
    let sink = Sink::start(&["--auth", "mailer:p@ss word"]);
    let outbox = tempfile::tempdir().unwrap();
    let port = sink.server.port;

    let good = sender(
        Some(format!("smtp://mailer:p%40ss%20word@127.0.0.1:{port}")),
        outbox.path(),
    );
    assert_eq!(good.describe(), format!("smtp://127.0.0.1:{port}"));
    good.send(&email(1, "ada@example.com", "Hi"))
        .await
        .expect("authenticated send");
    assert_eq!(sink.received().len(), 1);

    // Wrong credentials are an operator's fix, not a reason to drop the email.
    let bad = sender(
        Some(format!("smtp://mailer:wrong@127.0.0.1:{port}")),
        outbox.path(),
    );
    let error = bad
        .send(&email(2, "ada@example.com", "Hi"))
        .await
        .unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
    let text = format!("{error} {error:?}");
    assert!(!text.contains("wrong"), "{text}");
    assert_eq!(sink.received().len(), 1);
}

/// A sink speaking TLS (`implicit` or `starttls`) with the test CA's certificate for
/// 127.0.0.1, requiring `mailer:p@ss word`.
fn tls_sink(mode: &str) -> Sink {
    let cert = tend_testkit::peer_file("tls/server.pem");
    let key = tend_testkit::peer_file("tls/server.key");
    Sink::start(&[
        "--auth",
        "mailer:p@ss word",
        "--tls",
        mode,
        "--tls-cert",
        cert.to_str().expect("utf-8 path"),
        "--tls-key",
        key.to_str().expect("utf-8 path"),
    ])
}

fn trusting_the_test_ca(sender: EmailSender) -> EmailSender {
    let ca = std::fs::read(tend_testkit::peer_file("tls/ca.pem")).expect("test CA");
    sender.with_root_certificates(&ca).expect("valid PEM")
}

#[tokio::test]
async fn smtps_sends_over_implicit_tls_with_credentials() {
    let sink = tls_sink("implicit");
    let outbox = tempfile::tempdir().unwrap();
    let url = format!(
        "smtps://mailer:p%40ss%20word@127.0.0.1:{}",
        sink.server.port
    );
    let sender = trusting_the_test_ca(sender(Some(url), outbox.path()));
    for touch_id in [1, 2] {
        sender
            .send(&email(touch_id, "ada@example.com", "Hi"))
            .await
            .expect("accepted over TLS");
    }
    assert_eq!(sink.received().len(), 2);
    sender.shutdown().await;
}

#[tokio::test]
async fn starttls_required_upgrades_before_authenticating() {
    // The sink refuses AUTH and mail until STARTTLS has run.
    let sink = tls_sink("starttls");
    let outbox = tempfile::tempdir().unwrap();
    let url = format!(
        "smtp://mailer:p%40ss%20word@127.0.0.1:{}?tls=required",
        sink.server.port
    );
    let sender = trusting_the_test_ca(sender(Some(url), outbox.path()));
    sender
        .send(&email(1, "ada@example.com", "Hi"))
        .await
        .expect("accepted after STARTTLS");
    assert_eq!(sink.received().len(), 1);
}

#[tokio::test]
async fn an_untrusted_certificate_is_retryable_and_sends_nothing() {
    for (mode, url) in [
        ("implicit", "smtps://mailer:p%40ss%20word@127.0.0.1:{port}"),
        (
            "starttls",
            "smtp://mailer:p%40ss%20word@127.0.0.1:{port}?tls=required",
        ),
    ] {
        let sink = tls_sink(mode);
        let outbox = tempfile::tempdir().unwrap();
        let url = url.replace("{port}", &sink.server.port.to_string());
        // Only the public roots: the test CA is unknown.
        let sender = sender(Some(url), outbox.path());
        let error = sender
            .send(&email(1, "ada@example.com", "Hi"))
            .await
            .unwrap_err();
        assert!(error.is_retryable(), "{mode}: {error:?}");
        let text = format!("{error} {error:?}");
        assert!(
            text.to_ascii_lowercase().contains("certificate"),
            "{mode}: {text}"
        );
        assert!(
            !text.contains("p@ss") && !text.contains("p%40ss"),
            "{mode}: {text}"
        );
        assert!(sink.received().is_empty(), "{mode}");
    }
}

#[tokio::test]
async fn outbox_writes_one_eml_per_touch_and_resending_replaces_it() {
    let outbox = tempfile::tempdir().unwrap();
    let dir = outbox.path().join("outbox");
    let sender = sender(None, &dir);
    assert_eq!(sender.describe(), format!("outbox {}", dir.display()));

    sender
        .send(&email(7, "ada@example.com", "First try"))
        .await
        .expect("written");
    sender
        .send(&email(8, "bob@example.com", "Other touch"))
        .await
        .expect("written");
    sender
        .send(&email(7, "ada@example.com", "Second try"))
        .await
        .expect("rewritten");

    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["7.eml", "8.eml"]);
    let seven = std::fs::read_to_string(dir.join("7.eml")).unwrap();
    assert!(
        seven.contains("Message-ID: <tend.touch.7@studio.example>"),
        "{seven}"
    );
    assert!(seven.contains("Second try"), "{seven}");
    assert!(!seven.contains("First try"), "{seven}");
}

#[tokio::test]
async fn outbox_bad_recipient_is_fatal_and_writes_nothing() {
    let outbox = tempfile::tempdir().unwrap();
    let sender = sender(None, outbox.path());
    let error = sender
        .send(&email(9, "no-at-sign", "Hi"))
        .await
        .unwrap_err();
    match error {
        SendError::Fatal(reason) => assert!(reason.contains("no-at-sign"), "{reason}"),
        other => panic!("expected Fatal, got {other:?}"),
    }
    assert_eq!(std::fs::read_dir(outbox.path()).unwrap().count(), 0);
}
