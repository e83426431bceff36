//! The mailbox Tend reads, against a real Dovecot: bounce reports, a complaint, a
//! mailto unsubscribe and a reply arrive after the sends; one poll suppresses the right
//! addresses and records the reply on the right contact, and hostile or malformed
//! messages change nothing. Running, the reader idles (IDLE) and acts on a message as
//! soon as it is appended, across a server restart, and stops at once on shutdown; a
//! server without IDLE is polled.

mod harness;

use harness::{Business, CONFIG, CUSTOMER, INQUIRY};
use rustls::pki_types::CertificateDer;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tend_core::ContactId;
use tend_engine::inbound::read_certificates;
use tend_engine::inbound::{AfterHandling, ImapUrl, InboundConfig, InboundReader, PollReport};
use tend_store::feedback::FeedbackCounts;
use tend_store::{Store, TimelineEntry};
use tend_testkit::wait_for;
use tend_testkit::{Dovecot, TestCertificates};
use tokio_util::sync::CancellationToken;

/// What the subscriber writes, kept for the test to read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

const BOUNCE_ADDRESS: &str = "bounces@studio.example";
/// The harness's installation id is `test`.
const MESSAGE_ID_DOMAIN: &str = "test.studio.example";

fn config() -> String {
    CONFIG.replace(
        "[channels.email]\n",
        "[channels.email]\nbounce_address = \"bounces@studio.example\"\n",
    )
}

/// The people of the story, each sent their welcome email.
struct Story {
    business: Business,
    ann: ContactId,
    bob: ContactId,
    cat: ContactId,
    dan: ContactId,
    eve: ContactId,
    fay: ContactId,
}

impl Story {
    async fn start() -> Story {
        let business = Business::with(
            &config(),
            &[("new-inquiry", INQUIRY), ("customer", CUSTOMER)],
        )
        .await;
        let ann = business.lead("ann", "Ann", "ann@example.com").await;
        let bob = business.lead("bob", "Bob", "bob@example.com").await;
        let cat = business.lead("cat", "Cat", "cat@example.com").await;
        let dan = business.lead("dan", "Dan", "dan@example.com").await;
        let eve = business.lead("eve", "Eve", "eve@example.com").await;
        let fay = business.lead("fay", "Fay", "fay@example.com").await;
        business.idle().await;
        Story {
            business,
            ann,
            bob,
            cat,
            dan,
            eve,
            fay,
        }
    }

    /// The welcome email's touch.
    async fn touch(&self, contact: ContactId) -> i64 {
        let touches = self.business.touches(contact).await;
        let first = touches.first().expect("a touch");
        first.id.0
    }

    async fn envelope_sender(&self, contact: ContactId) -> String {
        let touch = self.touch(contact).await;
        self.business
            .engine
            .bounce_tokens()
            .envelope_sender(BOUNCE_ADDRESS, touch)
    }

    async fn suppressed(&self, contact: ContactId) -> bool {
        let found = self.business.store.contact(contact).await.unwrap();
        found.expect("contact").suppressed_at.is_some()
    }

    async fn replies(&self, contact: ContactId) -> Vec<serde_json::Map<String, serde_json::Value>> {
        self.business
            .store
            .timeline(contact)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|entry| match entry {
                TimelineEntry::Event {
                    name, properties, ..
                } if name == "Replied" => Some(properties),
                _ => None,
            })
            .collect()
    }

    fn reader(&self, server: &Dovecot, after: AfterHandling) -> InboundReader {
        Story::reader_at(&server.url(), after, None)
    }

    fn reader_at(
        url: &str,
        after: AfterHandling,
        trusted: Option<Vec<CertificateDer<'static>>>,
    ) -> InboundReader {
        Story::reader_every(url, after, trusted, Duration::from_secs(60))
    }

    fn reader_every(
        url: &str,
        after: AfterHandling,
        trusted: Option<Vec<CertificateDer<'static>>>,
        poll_every: Duration,
    ) -> InboundReader {
        InboundReader::new(InboundConfig {
            url: ImapUrl::parse(url).unwrap(),
            bounce_address: Some(BOUNCE_ADDRESS.into()),
            message_id_domain: MESSAGE_ID_DOMAIN.into(),
            soft_bounce_limit: 3,
            after,
            poll_every,
            trusted,
        })
    }
}

/// Whether the contact is suppressed now.
async fn is_suppressed(store: &dyn Store, contact: ContactId) -> Result<(), String> {
    let found = store.contact(contact).await.unwrap().expect("contact");
    match found.suppressed_at {
        Some(_) => Ok(()),
        None => Err(format!("contact {} not suppressed", contact.0)),
    }
}

/// Whether the contact has a `Replied` event.
async fn has_replied(store: &dyn Store, contact: ContactId) -> Result<(), String> {
    let timeline = store.timeline(contact).await.unwrap();
    let replied = timeline
        .iter()
        .any(|entry| matches!(entry, TimelineEntry::Event { name, .. } if name == "Replied"));
    replied
        .then_some(())
        .ok_or_else(|| format!("contact {} has no Replied event", contact.0))
}

/// Longer than any of these tests runs: a message read within the test's waits was
/// read because the server announced it, not because a poll came round.
const AN_HOUR: Duration = Duration::from_secs(3600);

/// How long a message announced over IDLE may take to be acted on, generously: on a
/// quiet machine it is milliseconds.
const ANNOUNCED: Duration = Duration::from_secs(20);

#[tokio::test]
async fn while_idling_new_messages_are_read_as_they_arrive_even_after_the_server_restarts() {
    let story = Story::start().await;
    let ann_sender = story.envelope_sender(story.ann).await;
    let bob_sender = story.envelope_sender(story.bob).await;
    let eve_sender = story.envelope_sender(story.eve).await;
    let dan_touch = story.touch(story.dan).await;
    let (ann, bob, dan, eve) = (story.ann, story.bob, story.dan, story.eve);
    let store = Arc::clone(&story.business.store);
    let engine = Arc::new(story.business.engine);

    let mut server = Dovecot::start(&[bounce_report(
        "idle-1",
        &ann_sender,
        "ann@example.com",
        "failed",
        "5.1.1",
    )]);
    let reader = Story::reader_every(&server.url(), AfterHandling::Flag, None, AN_HOUR);
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(reader.run(Arc::clone(&engine), shutdown.clone()));

    // The first poll reads what was waiting.
    wait_for("the first poll", ANNOUNCED, async || {
        is_suppressed(&*store, ann).await
    })
    .await;
    // A complaint appended by another client while Tend idles is read at once.
    server.append(&complaint(&bob_sender, "bob@example.com"));
    wait_for(
        "the complaint appended while idling",
        ANNOUNCED,
        async || is_suppressed(&*store, bob).await,
    )
    .await;

    // The server restarts, dropping the connection: the reader connects again and
    // reads what arrives next, then idles again on the new connection.
    server.restart();
    server.append(&reply("Dan <dan@example.com>", dan_touch, "dan-idle"));
    wait_for(
        "the reply appended after the restart",
        ANNOUNCED,
        async || has_replied(&*store, dan).await,
    )
    .await;
    server.append(&bounce_report(
        "idle-2",
        &eve_sender,
        "eve@example.com",
        "failed",
        "5.1.1",
    ));
    wait_for(
        "the bounce appended on the new connection",
        ANNOUNCED,
        async || is_suppressed(&*store, eve).await,
    )
    .await;

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("the reader stops at once on shutdown")
        .unwrap();
}

#[tokio::test]
async fn shutdown_ends_an_idle_at_once() {
    let story = Story::start().await;
    let engine = Arc::new(story.business.engine);
    let server = Dovecot::start(&[]);
    let reader = Story::reader_every(&server.url(), AfterHandling::Flag, None, AN_HOUR);
    let log = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(log.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    // This test's runtime is one thread: the reader's task logs through this subscriber.
    let _logging = tracing::subscriber::set_default(subscriber);
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(reader.run(Arc::clone(&engine), shutdown.clone()));
    wait_for("the reader to idle", ANNOUNCED, async || {
        let text = log.text();
        if text.contains("offers IDLE") {
            Ok(())
        } else {
            Err(text)
        }
    })
    .await;

    let asked = std::time::Instant::now();
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .unwrap_or_else(|_| panic!("the reader still idles 5 s after shutdown:\n{}", log.text()))
        .unwrap();
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    assert!(!log.text().contains("WARN"), "{}", log.text());
}

#[tokio::test]
async fn without_idle_the_reader_polls_every_inbound_poll() {
    let story = Story::start().await;
    let ann_sender = story.envelope_sender(story.ann).await;
    let bob_sender = story.envelope_sender(story.bob).await;
    let (ann, bob) = (story.ann, story.bob);
    let store = Arc::clone(&story.business.store);
    let engine = Arc::new(story.business.engine);
    let server = Dovecot::start_without_idle(&[bounce_report(
        "poll-1",
        &ann_sender,
        "ann@example.com",
        "failed",
        "5.1.1",
    )]);
    let log = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(log.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);
    let every = Duration::from_secs(2);
    let reader = Story::reader_every(&server.url(), AfterHandling::Flag, None, every);
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(reader.run(Arc::clone(&engine), shutdown.clone()));
    wait_for("the first poll", ANNOUNCED, async || {
        is_suppressed(&*store, ann).await
    })
    .await;

    // Nothing announces this one: the next poll, `every` later, reads it.
    let appended = std::time::Instant::now();
    server.append(&complaint(&bob_sender, "bob@example.com"));
    wait_for("the next poll", ANNOUNCED, async || {
        is_suppressed(&*store, bob).await
    })
    .await;
    assert!(appended.elapsed() <= every + Duration::from_secs(5));
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("the reader stops at once on shutdown")
        .unwrap();
    let logged = log.text();
    assert!(logged.contains("does not offer IDLE"), "{logged}");
    assert!(!logged.contains("IDLE connection"), "{logged}");
}

/// A bounce report as Postfix writes it, delivered to `to`.
fn bounce_report(id: &str, to: &str, recipient: &str, action: &str, status: &str) -> Vec<u8> {
    format!(
        "Return-Path: <>\r\n\
         From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n\
         To: {to}\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Message-ID: <{id}@mx.example.net>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\
         \tboundary=\"8AB2C1E0.1700000000/mx.example.net\"\r\n\
         \r\n\
         This is a MIME-encapsulated message.\r\n\
         \r\n\
         --8AB2C1E0.1700000000/mx.example.net\r\n\
         Content-Description: Notification\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         This is the mail system at host mx.example.net.\r\n\
         \r\n\
         I'm sorry to have to inform you that your message could not\r\n\
         be delivered to one or more recipients.\r\n\
         \r\n\
         <{recipient}>: host mx.example.com said: 550 5.1.1 User unknown\r\n\
         \r\n\
         --8AB2C1E0.1700000000/mx.example.net\r\n\
         Content-Description: Delivery report\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; mx.example.net\r\n\
         X-Postfix-Queue-ID: 8AB2C1E0\r\n\
         Arrival-Date: Mon, 23 Nov 2026 10:00:01 +0100 (CET)\r\n\
         \r\n\
         Final-Recipient: rfc822; {recipient}\r\n\
         Original-Recipient: rfc822;{recipient}\r\n\
         Action: {action}\r\n\
         Status: {status}\r\n\
         Remote-MTA: dns; mx.example.com\r\n\
         Diagnostic-Code: smtp; 550 {status} <{recipient}>: User unknown\r\n\
         \r\n\
         --8AB2C1E0.1700000000/mx.example.net\r\n\
         Content-Description: Undelivered Message Headers\r\n\
         Content-Type: text/rfc822-headers\r\n\
         \r\n\
         From: Studio Rossi <hello@studio.example>\r\n\
         To: <{recipient}>\r\n\
         Subject: Welcome\r\n\
         \r\n\
         --8AB2C1E0.1700000000/mx.example.net--\r\n"
    )
    .into_bytes()
}

/// An ARF complaint (RFC 5965 §B.1's shape) about an email whose envelope sender was
/// `mail_from`, sent to the plain bounce mailbox.
fn complaint(mail_from: &str, recipient: &str) -> Vec<u8> {
    format!(
        "From: <abusedesk@mailbox.example>\r\n\
         Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n\
         Subject: FW: Welcome\r\n\
         To: <{BOUNCE_ADDRESS}>\r\n\
         Message-ID: <arf-1@mailbox.example>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=feedback-report;\r\n\
         \tboundary=\"part1_13d.2e68ed54_boundary\"\r\n\
         \r\n\
         --part1_13d.2e68ed54_boundary\r\n\
         Content-Type: text/plain; charset=\"US-ASCII\"\r\n\
         \r\n\
         This is an email abuse report for an email message received from IP\r\n\
         192.0.2.1 on Tue, 24 Nov 2026 09:00:00 +0000.\r\n\
         \r\n\
         --part1_13d.2e68ed54_boundary\r\n\
         Content-Type: message/feedback-report\r\n\
         \r\n\
         Feedback-Type: abuse\r\n\
         User-Agent: SomeGenerator/1.0\r\n\
         Version: 1\r\n\
         Original-Mail-From: <{mail_from}>\r\n\
         Original-Rcpt-To: <{recipient}>\r\n\
         Arrival-Date: Tue, 24 Nov 2026 09:00:00 +0000\r\n\
         Source-IP: 192.0.2.1\r\n\
         \r\n\
         --part1_13d.2e68ed54_boundary\r\n\
         Content-Type: message/rfc822\r\n\
         Content-Disposition: inline\r\n\
         \r\n\
         From: <hello@studio.example>\r\n\
         To: <{recipient}>\r\n\
         Subject: Welcome\r\n\
         Message-ID: <tend.touch.2@{MESSAGE_ID_DOMAIN}>\r\n\
         \r\n\
         Thanks for asking.\r\n\
         \r\n\
         --part1_13d.2e68ed54_boundary--\r\n"
    )
    .into_bytes()
}

fn unsubscribe_request(from: &str, token: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: hello@studio.example\r\nSubject: unsubscribe {token}\r\n\
         Message-ID: <unsub-1@example.com>\r\n\r\n\r\n"
    )
    .into_bytes()
}

fn reply(from: &str, touch: i64, id: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: Studio Rossi <hello@studio.example>\r\nSubject: Re: Welcome\r\n\
         Message-ID: <{id}@example.com>\r\n\
         In-Reply-To: <tend.touch.{touch}@{MESSAGE_ID_DOMAIN}>\r\n\
         References: <tend.touch.{touch}@{MESSAGE_ID_DOMAIN}>\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n\
         Yes, please call me on Thursday.\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn one_poll_suppresses_bounced_complained_and_unsubscribed_and_records_the_reply() {
    let story = Story::start().await;
    let engine = &story.business.engine;
    let ann_sender = story.envelope_sender(story.ann).await;
    let bob_sender = story.envelope_sender(story.bob).await;
    let eve_sender = story.envelope_sender(story.eve).await;
    let fay_sender = story.envelope_sender(story.fay).await;
    let cat_token = engine
        .signer()
        .token(&engine.address_keys().key_bytes("cat@example.com"));
    let dan_touch = story.touch(story.dan).await;
    let eve_touch = story.touch(story.eve).await;

    // Eve's token with one MAC digit changed.
    let at = eve_sender.find('@').unwrap();
    let changed = if &eve_sender[at - 1..at] == "0" {
        "1"
    } else {
        "0"
    };
    let forged = format!("{}{changed}{}", &eve_sender[..at - 1], &eve_sender[at..]);
    let mut huge = bounce_report("huge", &eve_sender, "eve@example.com", "failed", "5.1.1");
    huge.extend(std::iter::repeat_n(b'x', 3 * 1024 * 1024));
    let broken = format!(
        "To: {eve_sender}\r\nMessage-ID: <broken@mx.example.net>\r\n\
         Content-Type: multipart/report; report-type=delivery-status\r\n\r\n\
         --\r\n\x00\x01garbage\r\nAction: failed\r\n"
    )
    .into_bytes();
    let newsletter = b"From: news@shop.example\r\nTo: hello@studio.example\r\n\
        Subject: Our sale\r\nMessage-ID: <n1@shop.example>\r\n\r\nBuy things.\r\n"
        .to_vec();
    let messages = vec![
        bounce_report("b1", &ann_sender, "ann@example.com", "failed", "5.1.1"),
        complaint(&bob_sender, "bob@example.com"),
        unsubscribe_request("Cat <cat@example.com>", &cat_token),
        reply("Dan <Dan@Example.com>", dan_touch, "dan-1"),
        bounce_report("forged", &forged, "eve@example.com", "failed", "5.1.1"),
        huge,
        broken,
        // A reply naming Eve's email, from someone else's address.
        reply("mallory@example.net", eve_touch, "mallory-1"),
        bounce_report("soft", &fay_sender, "fay@example.com", "delayed", "4.2.2"),
        newsletter,
    ];
    let server = Dovecot::start(&messages);
    let reader = story.reader(&server, AfterHandling::Flag);

    let log = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(log.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let report = {
        // This test's runtime is one thread: the poll logs through this subscriber.
        let _logging = tracing::subscriber::set_default(subscriber);
        reader
            .poll_once(engine)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", server.log()))
    };
    assert_eq!(
        report,
        PollReport {
            read: 10,
            bounces: 2,
            complaints: 1,
            unsubscribes: 1,
            replies: 1,
            ignored: 5,
        }
    );
    // One info line per message saying what became of it, and no address anywhere.
    let logged = log.text();
    let outcomes: Vec<&str> = logged
        .lines()
        .filter(|line| line.contains(" INFO ") && line.contains("inbound message uid="))
        .filter_map(|line| line.split("outcome=").nth(1))
        .map(|rest| {
            rest.split_whitespace()
                .next()
                .unwrap_or_default()
                .trim_matches('"')
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            "hard_bounce",
            "complaint",
            "unsubscribe",
            "reply",
            "left_alone",
            "too_large",
            "left_alone",
            "reply_from_another_address",
            "soft_bounce",
            "left_alone",
        ],
        "{logged}"
    );
    let lower = logged.to_lowercase();
    for address in ["@example.com", "@example.net", "@studio.example"] {
        assert!(!lower.contains(address), "an address was logged:\n{logged}");
    }
    assert!(story.suppressed(story.ann).await, "hard bounce");
    assert!(story.suppressed(story.bob).await, "complaint");
    assert!(story.suppressed(story.cat).await, "mailto unsubscribe");
    assert!(
        !story.suppressed(story.dan).await,
        "a reply suppresses nothing"
    );
    assert!(!story.suppressed(story.eve).await, "forged, huge or broken");
    assert!(!story.suppressed(story.fay).await, "one soft bounce");

    let replies = story.replies(story.dan).await;
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(replies[0]["touch_id"], dan_touch);
    assert_eq!(replies[0]["subject"], "Re: Welcome");
    assert!(story.replies(story.eve).await.is_empty());

    let counts = story.business.store.mail_feedback_counts().await.unwrap();
    assert_eq!(
        counts,
        FeedbackCounts {
            hard_bounces: 1,
            soft_bounces: 1,
            complaints: 1,
            unsubscribes: 1,
        }
    );
    // What /api/pace and /metrics show.
    assert_eq!(engine.pace().await.unwrap().mail_feedback, counts);

    // Handled reports are read and flagged, the reply flagged but left unread, and
    // everything else exactly as it was.
    let flags = server.flags("");
    assert_eq!(flags.len(), 10, "nothing deleted: {flags:?}");
    let handled: Vec<_> = flags.iter().filter(|(_, f)| !f.is_empty()).collect();
    assert_eq!(handled.len(), 5, "{flags:?}");
    let seen = flags.iter().filter(|(_, f)| f.contains('S')).count();
    assert_eq!(seen, 4, "reports seen, the reply not: {flags:?}");
    assert!(
        server.keywords().contains("$TendHandled"),
        "{}",
        server.keywords()
    );

    // The next poll reads nothing again.
    let again = reader.poll_once(engine).await.unwrap();
    assert_eq!(again.read, 0, "{again:?}");
    assert_eq!(story.replies(story.dan).await.len(), 1);
}

/// Three emails two days apart.
const DRIP: &str = r#"
name = "Drip"
enroll = { stage = "lead" }
max_gap = "10d"
[[steps]]
wait = "0d"
email = "welcome"
intent = "nurture"
[[steps]]
wait = "2d"
email = "follow-up"
intent = "nurture"
[[steps]]
wait = "2d"
email = "thank-you"
intent = "nurture"
"#;

#[tokio::test]
async fn repeated_soft_bounces_suppress_and_handled_reports_can_be_moved() {
    let business = Business::with(&config(), &[("drip", DRIP)]).await;
    let fay = business.lead("fay", "Fay", "fay@example.com").await;
    business.idle().await;
    for _ in 0..2 {
        business.advance(harness::days(2));
        business.idle().await;
    }
    let emails: Vec<i64> = business
        .touches(fay)
        .await
        .iter()
        .filter(|t| t.channel == "email" && t.admitted_at.is_some())
        .map(|t| t.id.0)
        .collect();
    assert_eq!(emails.len(), 3, "{:?}", business.touches(fay).await);
    let tokens = business.engine.bounce_tokens();
    let report_for = |i: usize| {
        let sender = tokens.envelope_sender(BOUNCE_ADDRESS, emails[i]);
        bounce_report(
            &format!("soft-{i}"),
            &sender,
            "fay@example.com",
            "failed",
            "4.2.2",
        )
    };
    // The same email's report twice counts once; two emails' reports are not enough.
    let server = Dovecot::start(&[report_for(0), report_for(0), report_for(1)]);
    let config = |server: &Dovecot| InboundConfig {
        url: ImapUrl::parse(&server.url()).unwrap(),
        bounce_address: Some(BOUNCE_ADDRESS.into()),
        message_id_domain: MESSAGE_ID_DOMAIN.into(),
        soft_bounce_limit: 3,
        after: AfterHandling::Move("Tend".into()),
        poll_every: Duration::from_secs(60),
        trusted: None,
    };
    let reader = InboundReader::new(config(&server));
    let report = reader
        .poll_once(&business.engine)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    assert_eq!(report.bounces, 3, "{report:?}");
    let contact = |business: &Business| {
        let store = business.store.clone();
        async move { store.contact(fay).await.unwrap().unwrap() }
    };
    assert!(contact(&business).await.suppressed_at.is_none());
    assert!(server.flags("").is_empty(), "moved: {:?}", server.flags(""));
    assert_eq!(server.flags(".Tend").len(), 3);

    // The third email's report makes three.
    server.deliver(&report_for(2));
    let report = reader.poll_once(&business.engine).await.unwrap();
    assert_eq!(report.bounces, 1, "{report:?}");
    assert!(contact(&business).await.suppressed_at.is_some());
}

#[tokio::test]
async fn over_tls_the_mailbox_is_read_only_when_its_certificate_chains_to_the_configured_authority()
{
    tend_engine::webhook::install_crypto_provider();
    let story = Story::start().await;
    let engine = &story.business.engine;
    let ann_sender = story.envelope_sender(story.ann).await;
    let certificates = TestCertificates::make();
    let server = Dovecot::start_tls(
        &[bounce_report(
            "tls-1",
            &ann_sender,
            "ann@example.com",
            "failed",
            "5.1.1",
        )],
        &certificates,
    );
    let url = server.imaps_url();

    // The public roots do not vouch for a private authority: the poll fails, nothing
    // is read, and the error says why.
    let error = Story::reader_at(&url, AfterHandling::Flag, None)
        .poll_once(engine)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("TLS handshake"), "{error}");
    // Another authority's certificate is no better.
    let stranger = TestCertificates::make();
    let other = read_certificates(&stranger.ca).unwrap();
    let error = Story::reader_at(&url, AfterHandling::Flag, Some(other))
        .poll_once(engine)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("TLS handshake"), "{error}");
    assert!(!story.suppressed(story.ann).await);

    // Trusting the test's authority (`inbound_ca_file`), the report is read.
    let trusted = read_certificates(&certificates.ca).unwrap();
    let report = Story::reader_at(&url, AfterHandling::Flag, Some(trusted))
        .poll_once(engine)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    assert_eq!((report.read, report.bounces), (1, 1), "{report:?}");
    assert!(story.suppressed(story.ann).await, "hard bounce over imaps");
    assert!(
        read_certificates(&certificates.server_key).is_err(),
        "a key file is not a certificate file"
    );
}
