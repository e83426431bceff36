//! Each email's envelope sender names its touch (VERP), so a bounce report that
//! arrives later at the bounce mailbox maps to the exact touch and contact; checked on
//! the `MAIL FROM` a real SMTP server (aiosmtpd) saw.

mod harness;

use harness::{Business, CONFIG, CUSTOMER, INQUIRY, monday_morning, start_engine};
use serde_json::Value;
use std::sync::Arc;
use tend_engine::{ChannelDelivery, Delivery, ManualClock};
use tend_store::Store;
use tend_store_sqlite::SqliteStore;

/// An aiosmtpd server writing what it accepts to a temp folder.
struct Relay {
    server: tend_testkit::SmtpSink,
    folder: tempfile::TempDir,
}

impl Relay {
    fn start() -> Relay {
        let folder = tempfile::tempdir().unwrap();
        let server = tend_testkit::SmtpSink::start(folder.path(), &[]);
        Relay { server, folder }
    }

    fn url(&self) -> String {
        self.server.url()
    }

    /// Python's reading of each accepted message, in arrival order.
    fn received(&self) -> Vec<Value> {
        let mut paths: Vec<_> = std::fs::read_dir(self.folder.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect()
    }
}

fn config_with_bounces() -> String {
    CONFIG.replace(
        "[channels.email]\n",
        "[channels.email]\nbounce_address = \"bounces@studio.example\"\n",
    )
}

/// A business sending through `relay`, with `config`.
async fn business_via(relay: &Relay, config: &str) -> Business {
    let mut business =
        Business::with(config, &[("new-inquiry", INQUIRY), ("customer", CUSTOMER)]).await;
    let project = harness::project(config, &business.processes);
    let delivery: Arc<dyn Delivery> = Arc::new(
        ChannelDelivery::new(
            &project.config,
            business.dir.path(),
            Some(relay.url()),
            "test",
        )
        .unwrap(),
    );
    business.engine = start_engine(
        &business.dir,
        &business.store,
        &business.clock,
        config,
        &business.processes,
        Some(delivery),
    )
    .await;
    business
}

#[tokio::test]
async fn each_email_leaves_with_an_envelope_sender_naming_its_touch() {
    let relay = Relay::start();
    let business = business_via(&relay, &config_with_bounces()).await;
    let ann = business.lead("ann", "Ann Smith", "ann@example.com").await;
    let bob = business.lead("bob", "Bob Jones", "bob@example.com").await;
    business.idle().await;

    let received = relay.received();
    assert_eq!(received.len(), 2, "{received:#?}");
    let tokens = business.engine.bounce_tokens();
    for (contact, address) in [(ann, "ann@example.com"), (bob, "bob@example.com")] {
        let message = received
            .iter()
            .find(|m| m["rcpt_tos"][0] == address)
            .unwrap_or_else(|| panic!("nothing to {address}: {received:#?}"));
        let mail_from = message["mail_from"].as_str().unwrap();
        let touch = tokens
            .find_in("bounces@studio.example", mail_from)
            .unwrap_or_else(|| panic!("no genuine token in {mail_from}"));
        let sent = business.touches(contact).await;
        assert_eq!(sent[0].id.0, touch, "{mail_from} names {address}'s touch");
        assert!(
            mail_from.starts_with("bounces+") && mail_from.ends_with("@studio.example"),
            "{mail_from}"
        );
        // The header recipients see is still the business's own address.
        let from = message["headers"]["from"][0].as_str().unwrap();
        assert!(from.contains("hello@studio.example"), "{from}");
    }
    // Each message has its own sender, and a changed one is not genuine.
    assert_ne!(received[0]["mail_from"], received[1]["mail_from"]);
    let genuine = received[0]["mail_from"].as_str().unwrap();
    let at = genuine.find('@').unwrap();
    let last = if &genuine[at - 1..at] == "0" {
        "1"
    } else {
        "0"
    };
    let forged = format!("{}{last}{}", &genuine[..at - 1], &genuine[at..]);
    assert_eq!(tokens.find_in("bounces@studio.example", &forged), None);
}

#[tokio::test]
async fn without_a_bounce_address_the_envelope_sender_is_the_from_address() {
    let relay = Relay::start();
    let business = business_via(&relay, CONFIG).await;
    business.lead("ann", "Ann Smith", "ann@example.com").await;
    business.idle().await;
    let received = relay.received();
    assert_eq!(received.len(), 1, "{received:#?}");
    assert_eq!(received[0]["mail_from"], "hello@studio.example");
}

#[tokio::test]
async fn the_outbox_copy_shows_where_bounces_go() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&dir.path().join("tend.db"))
            .await
            .unwrap(),
    );
    let clock = ManualClock::new(monday_morning());
    let config = config_with_bounces();
    let processes = vec![("new-inquiry".to_owned(), INQUIRY.to_owned())];
    let engine = start_engine(&dir, &store, &clock, &config, &processes, None).await;
    let business = Business {
        dir,
        store,
        clock,
        engine,
        processes,
        config,
    };
    business.lead("ann", "Ann Smith", "ann@example.com").await;
    business.idle().await;
    let sent = business.sent_emails();
    assert_eq!(sent.len(), 1);
    let (touch, text) = &sent[0];
    let expected = business
        .engine
        .bounce_tokens()
        .envelope_sender("bounces@studio.example", *touch);
    assert!(
        text.starts_with(&format!("Return-Path: <{expected}>\r\n")),
        "{text}"
    );
}

#[test]
fn a_bounce_address_that_cannot_take_a_token_is_refused() {
    for (address, says) in [
        ("bounces+x@studio.example", "already has a `+`"),
        (
            "a-very-long-bounce-mailbox-name@studio.example",
            "longer than 23 characters",
        ),
        ("not an address", "bounce_address"),
    ] {
        let config = CONFIG.replace(
            "[channels.email]\n",
            &format!("[channels.email]\nbounce_address = \"{address}\"\n"),
        );
        let sources = tend_core::check::ProjectSources {
            config: tend_core::check::SourceFile::new("tend.toml", config),
            processes: vec![],
            templates: vec![],
        };
        let errors = tend_core::check::check_project(&sources).unwrap_err();
        let text = format!("{errors:?}");
        assert!(text.contains(says), "{address}: {text}");
    }
}
