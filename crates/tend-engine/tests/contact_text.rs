//! Contact data is text: whatever a contact's name or traits hold, the email the engine
//! writes shows it literally — no link, image, HTML or extra header comes out of it —
//! while the template author's own links and the unsubscribe link keep working. The
//! message is read back by Python's standard `email` parser, as a mail client would.

mod harness;

use harness::*;
use serde_json::Value;
use std::sync::Arc;
use tend_core::check::{ProjectSources, SourceFile, check_project};
use tend_engine::{Engine, EngineSettings, ManualClock};
use tend_store::Store;
use tend_store_sqlite::SqliteStore;

const WELCOME: &str = "Subject: Welcome, {{ contact.first_name }} from {{ contact.attributes.city }}\n\n\
Thanks for asking, {{ contact.name }}.\n\n\
You said: *{{ contact.attributes.note }}*\n\n\
[Book a visit](https://studio.example/book) or [unsubscribe]({{ unsubscribe_url }}).\n";

/// A business whose welcome email interpolates the name and two traits.
async fn business() -> Business {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&dir.path().join("tend.db"))
            .await
            .unwrap(),
    );
    let clock = ManualClock::new(monday_morning());
    let processes = vec![("new-inquiry".to_owned(), INQUIRY.to_owned())];
    let mut templates = templates();
    templates.retain(|t| t.path != "templates/welcome.md");
    templates.push(SourceFile::new("templates/welcome.md", WELCOME));
    let project = check_project(&ProjectSources {
        config: SourceFile::new("tend.toml", CONFIG),
        processes: processes
            .iter()
            .map(|(k, v)| SourceFile::new(format!("processes/{k}.toml"), v.as_str()))
            .collect(),
        templates,
    })
    .expect("valid project");
    let delivery = outbox(&dir, &project.config);
    let (engine, _) = Engine::start(
        Arc::clone(&store),
        Arc::new(project),
        Arc::new(clock.clone()),
        delivery,
        EngineSettings::default(),
    )
    .await
    .unwrap();
    Business {
        dir,
        store,
        clock,
        engine,
        processes,
        config: CONFIG.to_owned(),
    }
}

/// The `.eml` as Python's `email` package (policy `default`) reads it: the `To`
/// addresses, the decoded subject, the header names, and both decoded parts.
fn parse_eml(bytes: &[u8]) -> Value {
    tend_testkit::require_python_module("email");
    let script = r#"
import email, email.header, email.policy, email.utils, json, sys
raw = sys.stdin.buffer.read()
msg = email.message_from_bytes(raw, policy=email.policy.default)
# Headers the classic way: RFC 2047 words joined as RFC 2047 section 6.2 says.
old = email.message_from_bytes(raw, policy=email.policy.compat32)
decode = lambda v: str(email.header.make_header(email.header.decode_header(v)))
print(json.dumps({
    "to": [[decode(n), a] for n, a in email.utils.getaddresses(old.get_all("To"))],
    "subject": decode(old["Subject"]),
    "headers": [k for k, _ in old.items()],
    "defects": [str(d) for d in msg.defects],
    "text": msg.get_body(("plain",)).get_content(),
    "html": msg.get_body(("html",)).get_content(),
}))
"#;
    let out = tend_testkit::run_python(script, &[], bytes);
    assert!(out.status.success(), "python could not read the message");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn contact_data_reaches_the_email_as_text_and_the_author_s_links_still_work() {
    let b = business().await;
    let name = "[Click here](https://evil.example) ![x](https://evil.example/p.gif) <script>alert(1)</script> <img src=x>";
    b.identify("u-1", name, "ann@example.com").await;
    // Traits from a web form: an HTML comment and emphasis meant to close the author's.
    let traits = serde_json::json!({
        "city": "Rome\r\nBcc: victim@example.com",
        "note": "*] (https://evil.example) <!-- x --> &lt;b&gt; **bold**",
    });
    b.store
        .ingest(
            &[tend_store::IngestMessage::Identify {
                message_id: "traits-1".into(),
                identity: tend_store::Identity {
                    user_id: Some("u-1".into()),
                    anonymous_id: None,
                },
                traits: tend_store::ContactTraits {
                    email: None,
                    name: None,
                    timezone: None,
                    attributes: traits.as_object().unwrap().clone(),
                },
                at: b.engine.clock().now(),
            }],
            &tend_core::StageName::new("prospect"),
        )
        .await
        .unwrap();
    b.track("u-1", "Inquiry Received").await;
    b.idle().await;

    let (touch, _) = b.sent_emails().pop().expect("the welcome email");
    let bytes = std::fs::read(b.outbox().join(format!("{touch}.eml"))).unwrap();
    let mail = parse_eml(&bytes);
    let html = mail["html"].as_str().unwrap();
    let text = mail["text"].as_str().unwrap();

    // The only links are the author's, unsubscribe among them (so no second footer);
    // no image, no script.
    let hrefs: Vec<&str> = html.match_indices("<a ").map(|(i, _)| &html[i..]).collect();
    assert_eq!(hrefs.len(), 2, "{html}");
    assert!(hrefs[0].starts_with("<a href=\"https://studio.example/book\">Book a visit</a>"));
    assert!(hrefs[1].starts_with("<a href=\"https://tend.example.com/unsubscribe/"));
    for markup in ["<img", "<script", "<!--", "<b>", "evil.example\""] {
        assert!(!html.contains(markup), "{markup} in {html}");
    }
    // The name and the note read exactly as typed, in both parts.
    assert!(
        html.contains(
            "[Click here](https://evil.example) ![x](https://evil.example/p.gif) \
             &lt;script&gt;alert(1)&lt;/script&gt; &lt;img src=x&gt;"
        ),
        "{html}"
    );
    assert!(
        html.contains(
            "<em>*] (https://evil.example) &lt;!-- x --&gt; &amp;lt;b&amp;gt; **bold**</em>"
        ),
        "{html}"
    );
    assert!(
        text.contains(&format!("Thanks for asking, {name}.")),
        "{text}"
    );
    assert!(
        text.contains("You said: *] (https://evil.example) <!-- x --> &lt;b&gt; **bold**"),
        "{text}"
    );
    assert!(
        text.contains("Book a visit (https://studio.example/book) or unsubscribe (https://tend.example.com/unsubscribe/"),
        "{text}"
    );

    // Headers: one recipient, the display name as typed, the subject on one line, and
    // no header smuggled in through the city.
    assert_eq!(mail["to"], serde_json::json!([[name, "ann@example.com"]]));
    assert_eq!(
        mail["subject"],
        "Welcome, [Click from Rome Bcc: victim@example.com"
    );
    let headers: Vec<&str> = mail["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    assert!(
        !headers.iter().any(|h| h.eq_ignore_ascii_case("bcc")),
        "{headers:?}"
    );
    assert_eq!(mail["defects"], serde_json::json!([]));
}

#[tokio::test]
async fn a_name_built_to_break_the_to_header_stays_one_display_name() {
    let b = business().await;
    let name = "Eve\" <eve@evil.example>, \"Bob\r\nBcc: victim@example.com\u{202E}moc.elgoog";
    b.lead("u-2", name, "bob@example.com").await;
    b.idle().await;
    let (touch, _) = b.sent_emails().pop().expect("the welcome email");
    let bytes = std::fs::read(b.outbox().join(format!("{touch}.eml"))).unwrap();
    let raw = String::from_utf8_lossy(&bytes);
    let head = &raw[..raw.find("\r\n\r\n").unwrap()];
    assert!(!head.contains("\r\nBcc:"), "{head}");
    assert!(!head.contains('\u{202E}'), "{head}");
    let mail = parse_eml(&bytes);
    assert_eq!(
        mail["to"],
        serde_json::json!([[
            "Eve\" <eve@evil.example>, \"Bob Bcc: victim@example.commoc.elgoog",
            "bob@example.com"
        ]])
    );
}
