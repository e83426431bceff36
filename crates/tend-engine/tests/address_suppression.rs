//! Suppression belongs to the address: whatever happens to the records that hold it
//! (merges, address changes, imports, new identities), once an address said no —
//! unsubscribe link, unsubscribe, bounce or erasure — nothing is mailed to it again.

mod harness;

use async_trait::async_trait;
use harness::*;
use jiff::Timestamp;
use proptest::prelude::*;
use serde_json::Map;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tend_core::{ContactId, Email, StageName};
use tend_engine::{
    ChannelDelivery, Clock, Delivery, EmailTouch, SendError, UnsubscribeSigner, Unsubscribed,
};
use tend_store::suppression::Secret;
use tend_store::{ContactTraits, Identity, ImportRow, IngestMessage, Store};
use tend_store_sqlite::SqliteStore;

/// One email that reached its channel.
#[derive(Debug, Clone)]
struct Delivered {
    to: String,
    token: String,
    /// When it went out, in the order of everything the scenario does.
    seq: usize,
}

/// The outbox, with a log of what went out and a set of addresses that bounce.
struct Recording {
    outbox: ChannelDelivery,
    delivered: Mutex<Vec<Delivered>>,
    bouncing: Mutex<Vec<String>>,
    /// Addresses that bounced, in order.
    bounced: Mutex<Vec<(String, usize)>>,
    /// Orders deliveries, bounces and the scenario's refusals.
    seq: AtomicUsize,
}

#[async_trait]
impl Delivery for Recording {
    async fn email(&self, email: &EmailTouch<'_>) -> Result<(), SendError> {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst);
        // Bounces once: a mailbox that comes back must still hear nothing.
        let bounces = {
            let mut bouncing = self.bouncing.lock().unwrap();
            let found = bouncing.iter().position(|a| a == email.to_email);
            found.map(|i| bouncing.remove(i)).is_some()
        };
        if bounces {
            self.bounced
                .lock()
                .unwrap()
                .push((email.to_email.to_owned(), seq));
            return Err(SendError::Bounced("550 5.1.1 no such user".into()));
        }
        self.outbox.email(email).await?;
        self.delivered.lock().unwrap().push(Delivered {
            to: email.to_email.to_owned(),
            token: email.unsubscribe_token.to_owned(),
            seq,
        });
        Ok(())
    }

    async fn webhook(
        &self,
        url: &str,
        id: &str,
        body: &serde_json::Value,
        at: Timestamp,
    ) -> Result<(), SendError> {
        self.outbox.webhook(url, id, body, at).await
    }

    async fn erase_copies(&self, touch_ids: &[i64]) -> Result<(), SendError> {
        self.outbox.erase_copies(touch_ids).await
    }
}

/// A business whose engine sends through [`Recording`].
struct Scene {
    dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    clock: tend_engine::ManualClock,
    engine: tend_engine::Engine,
    channel: Arc<Recording>,
    ids: AtomicU64,
}

impl Scene {
    async fn start() -> Scene {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&dir.path().join("tend.db"))
                .await
                .unwrap(),
        );
        let clock = tend_engine::ManualClock::new(monday_morning());
        let processes = vec![
            ("new-inquiry".to_owned(), INQUIRY.to_owned()),
            ("customer".to_owned(), CUSTOMER.to_owned()),
        ];
        let config = project(CONFIG, &processes).config;
        let channel = Arc::new(Recording {
            outbox: ChannelDelivery::new(&config, dir.path(), None, "test").unwrap(),
            delivered: Mutex::default(),
            bouncing: Mutex::default(),
            bounced: Mutex::default(),
            seq: AtomicUsize::new(0),
        });
        let engine = start_engine(
            &dir,
            &store,
            &clock,
            CONFIG,
            &processes,
            Some(channel.clone() as Arc<dyn Delivery>),
        )
        .await;
        Scene {
            dir,
            store,
            clock,
            engine,
            channel,
            ids: AtomicU64::new(0),
        }
    }

    fn message_id(&self) -> String {
        format!("m-{}", self.ids.fetch_add(1, Ordering::SeqCst))
    }

    async fn identify(&self, user: Option<&str>, anon: Option<&str>, email: Option<&str>) {
        let message = IngestMessage::Identify {
            message_id: self.message_id(),
            identity: Identity {
                user_id: user.map(str::to_owned),
                anonymous_id: anon.map(str::to_owned),
            },
            traits: ContactTraits {
                email: email.map(|e| Email::parse(e).unwrap()),
                name: None,
                timezone: None,
                attributes: Map::new(),
            },
            at: self.clock.now(),
        };
        self.store
            .ingest(&[message], &StageName::new("prospect"))
            .await
            .unwrap();
    }

    async fn inquiry(&self, user: Option<&str>, anon: Option<&str>) {
        let message = IngestMessage::Track {
            message_id: self.message_id(),
            identity: Identity {
                user_id: user.map(str::to_owned),
                anonymous_id: anon.map(str::to_owned),
            },
            event: "Inquiry Received".into(),
            properties: Map::new(),
            at: self.clock.now(),
            stage_change: Some(StageName::new("lead")),
        };
        self.store
            .ingest(&[message], &StageName::new("prospect"))
            .await
            .unwrap();
    }

    async fn import(&self, email: &str) {
        let row = ImportRow {
            email: Email::parse(email).unwrap(),
            name: None,
            stage: Some(StageName::new("lead")),
            timezone: None,
            attributes: Map::new(),
        };
        self.store
            .import_contacts(
                &[row],
                &StageName::new("prospect"),
                self.clock.now(),
                tend_store::ImportEnrollment::Now,
            )
            .await
            .unwrap();
    }

    async fn contact_with(&self, pick: impl Fn(&tend_store::Contact) -> bool) -> Option<ContactId> {
        let page = self
            .store
            .list_contacts(&tend_store::ContactQuery {
                limit: 500,
                ..Default::default()
            })
            .await
            .unwrap();
        page.contacts.iter().find(|c| pick(c)).map(|c| c.id)
    }

    async fn user(&self, user: &str) -> Option<ContactId> {
        self.contact_with(|c| c.user_id.as_deref() == Some(user))
            .await
    }

    fn delivered(&self) -> Vec<Delivered> {
        self.channel.delivered.lock().unwrap().clone()
    }

    fn delivered_to(&self, to: &str) -> usize {
        self.delivered().iter().filter(|d| d.to == to).count()
    }

    async fn idle(&self) {
        self.engine.run_until_idle().await.unwrap();
    }

    /// Lets the process run for a few weeks.
    async fn weeks_pass(&self) {
        for _ in 0..21 {
            self.clock.advance(days(1));
            self.idle().await;
        }
    }
}

/// The scenario (a): the link of a record that was merged away still reaches
/// the address, and the record that survived the merge is suppressed at once.
#[tokio::test]
async fn a_merged_away_records_link_suppresses_the_survivor() {
    let s = Scene::start().await;
    s.identify(Some("x"), None, None).await;
    s.identify(None, Some("a"), Some("m@example.com")).await;
    s.inquiry(None, Some("a")).await;
    s.idle().await;
    let welcome = s.delivered();
    assert_eq!(welcome.len(), 1, "{welcome:?}");
    assert_eq!(welcome[0].to, "m@example.com");
    // The two records become one.
    s.identify(Some("x"), None, Some("m@example.com")).await;
    s.idle().await;
    let survivor = s.user("x").await.expect("the merged record");

    let said = s.engine.unsubscribe_token(&welcome[0].token).await.unwrap();
    assert_eq!(said, Some(Unsubscribed::Now));
    let contact = s.store.contact(survivor).await.unwrap().unwrap();
    assert!(contact.suppressed_at.is_some(), "{contact:?}");
    for touch in s.store.touches_of(survivor, 100).await.unwrap() {
        assert!(
            !matches!(touch.state.as_str(), "pending" | "queued" | "open"),
            "the survivor still has a planned touch: {touch:?}"
        );
    }
    s.weeks_pass().await;
    assert_eq!(s.delivered_to("m@example.com"), 1);
    // Clicking again changes nothing, and the page must not claim otherwise.
    assert_eq!(
        s.engine.unsubscribe_token(&welcome[0].token).await.unwrap(),
        Some(Unsubscribed::Already)
    );
}

/// The scenario (b): an address that said no stays silent after it moves to
/// another record.
#[tokio::test]
async fn an_unsubscribed_address_moved_to_a_new_record_stays_silent() {
    let s = Scene::start().await;
    s.identify(Some("u1"), None, Some("h@example.com")).await;
    s.inquiry(Some("u1"), None).await;
    s.idle().await;
    let token = s.delivered()[0].token.clone();
    assert_eq!(
        s.engine.unsubscribe_token(&token).await.unwrap(),
        Some(Unsubscribed::Now)
    );
    // The address moves off that record, then a new identity takes it.
    s.identify(Some("u1"), None, Some("new@example.com")).await;
    s.identify(Some("u2"), None, Some("h@example.com")).await;
    s.inquiry(Some("u2"), None).await;
    s.weeks_pass().await;
    assert_eq!(s.delivered_to("h@example.com"), 1, "{:?}", s.delivered());
    let u2 = s.user("u2").await.unwrap();
    assert!(
        s.store
            .contact(u2)
            .await
            .unwrap()
            .unwrap()
            .suppressed_at
            .is_some(),
        "the record that took a suppressed address is suppressed"
    );
}

/// The send-time check: a record that takes a suppressed address it was never mailed
/// at, after the link was clicked, is caught when its email is claimed.
#[tokio::test]
async fn the_claim_skips_an_email_to_a_suppressed_address() {
    let s = Scene::start().await;
    s.identify(Some("u1"), None, Some("h@example.com")).await;
    s.inquiry(Some("u1"), None).await;
    s.idle().await;
    let token = s.delivered()[0].token.clone();
    s.identify(Some("u1"), None, Some("moved@example.com"))
        .await;
    // A second person, enrolled with another address, queued for their welcome...
    s.identify(Some("u2"), None, Some("other@example.com"))
        .await;
    s.inquiry(Some("u2"), None).await;
    s.engine.try_enroll().await.unwrap();
    s.engine.try_decide().await.unwrap();
    // ...takes the address, and then the old link is clicked.
    s.identify(Some("u2"), None, Some("h@example.com")).await;
    assert_eq!(
        s.engine.unsubscribe_token(&token).await.unwrap(),
        Some(Unsubscribed::Now)
    );
    let u2 = s.user("u2").await.unwrap();
    assert!(
        s.store
            .contact(u2)
            .await
            .unwrap()
            .unwrap()
            .suppressed_at
            .is_none()
    );
    s.idle().await;
    assert_eq!(s.delivered_to("h@example.com"), 1, "{:?}", s.delivered());
    let welcome = s.store.touches_of(u2, 10).await.unwrap();
    let skipped = welcome
        .iter()
        .find(|t| t.channel == "email")
        .expect("u2's welcome");
    assert_eq!(skipped.state, "skipped");
    assert_eq!(skipped.reason.as_deref(), Some("suppressed"));
    assert_eq!(skipped.attempts, 0);
    assert!(
        s.store
            .contact(u2)
            .await
            .unwrap()
            .unwrap()
            .suppressed_at
            .is_some()
    );
}

/// The pacer checks the address too: a record that took a suppressed address after its
/// last email gets no call either.
#[tokio::test]
async fn no_call_is_planned_for_a_record_holding_a_suppressed_address() {
    let s = Scene::start().await;
    s.identify(Some("u1"), None, Some("h@example.com")).await;
    s.inquiry(Some("u1"), None).await;
    s.idle().await;
    let token = s.delivered()[0].token.clone();
    s.identify(Some("u1"), None, Some("moved@example.com"))
        .await;
    // u2's welcome goes out; its next step is a call, two days later.
    s.identify(Some("u2"), None, Some("other@example.com"))
        .await;
    s.inquiry(Some("u2"), None).await;
    s.idle().await;
    s.identify(Some("u2"), None, Some("h@example.com")).await;
    assert_eq!(
        s.engine.unsubscribe_token(&token).await.unwrap(),
        Some(Unsubscribed::Now)
    );
    s.weeks_pass().await;
    let u2 = s.user("u2").await.unwrap();
    let touches = s.store.touches_of(u2, 20).await.unwrap();
    let call = touches
        .iter()
        .find(|t| t.channel == "task")
        .expect("the call step");
    assert_eq!(call.state, "skipped", "{touches:#?}");
    assert_eq!(call.reason.as_deref(), Some("suppressed"));
    assert_eq!(s.delivered_to("h@example.com"), 1);
}

/// Links mailed by earlier releases named the contact id; they keep working, and say
/// so truthfully when the record is gone.
#[tokio::test]
async fn links_mailed_by_earlier_releases_still_unsubscribe() {
    let s = Scene::start().await;
    s.identify(Some("u1"), None, Some("old@example.com")).await;
    s.inquiry(Some("u1"), None).await;
    s.idle().await;
    let u1 = s.user("u1").await.unwrap();
    let secret = s.store.secret(Secret::Signing).await.unwrap();
    let signer = UnsubscribeSigner::new(&secret);
    assert_eq!(
        s.engine
            .unsubscribe_token(&signer.legacy_token(u1.0))
            .await
            .unwrap(),
        Some(Unsubscribed::Now)
    );
    assert!(
        s.store
            .is_email_suppressed(&Email::parse("old@example.com").unwrap())
            .await
            .unwrap()
    );
    assert_eq!(
        s.engine
            .unsubscribe_token(&signer.legacy_token(u1.0 + 1000))
            .await
            .unwrap(),
        Some(Unsubscribed::NoLongerOnFile)
    );
    assert_eq!(s.engine.unsubscribe_token("forged").await.unwrap(), None);
}

/// A link shows no sequential contact id.
#[tokio::test]
async fn links_carry_no_contact_id() {
    let s = Scene::start().await;
    for n in 0..3 {
        let user = format!("u{n}");
        s.identify(Some(&user), None, Some(&format!("p{n}@example.com")))
            .await;
        s.inquiry(Some(&user), None).await;
    }
    s.idle().await;
    let tokens: Vec<String> = s.delivered().into_iter().map(|d| d.token).collect();
    assert_eq!(tokens.len(), 3);
    let keys =
        tend_store::suppression::AddressKeys::new(&s.store.secret(Secret::Signing).await.unwrap());
    use base64::Engine as _;
    for (n, token) in tokens.iter().enumerate() {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .unwrap();
        // The address's key and a MAC: nothing else.
        assert_eq!(raw.len(), 48);
        assert_eq!(raw[..32], keys.key_bytes(&format!("p{n}@example.com")));
    }
}

// --- the property ---

#[derive(Debug, Clone)]
enum Op {
    /// An identify with any of a user id, an anonymous id and an address: creates,
    /// changes addresses, and merges records.
    Identify {
        user: Option<u8>,
        anon: Option<u8>,
        email: Option<u8>,
    },
    Inquiry {
        user: Option<u8>,
        anon: Option<u8>,
    },
    Import(u8),
    /// Clicks the unsubscribe link of the n-th email delivered so far.
    Link(usize),
    /// Unsubscribes the record of a user id (the console's button).
    Unsubscribe(u8),
    /// The address starts bouncing.
    Bounce(u8),
    Erase(u8),
    Wait(i64),
}

fn address(n: u8) -> String {
    format!("addr{n}@example.com")
}

fn op() -> impl Strategy<Value = Op> {
    let user = proptest::option::of(0..3u8);
    let anon = proptest::option::of(0..3u8);
    let email = proptest::option::of(0..4u8);
    prop_oneof![
        5 => (user.clone(), anon.clone(), email).prop_map(|(user, anon, email)| Op::Identify { user, anon, email }),
        3 => (user, anon).prop_map(|(user, anon)| Op::Inquiry { user, anon }),
        1 => (0..4u8).prop_map(Op::Import),
        2 => (0..50usize).prop_map(Op::Link),
        1 => (0..3u8).prop_map(Op::Unsubscribe),
        1 => (0..4u8).prop_map(Op::Bounce),
        1 => (0..3u8).prop_map(Op::Erase),
        3 => (1..72i64).prop_map(Op::Wait),
    ]
}

async fn run(ops: Vec<Op>) {
    let s = Scene::start().await;
    // Address → when it said no, in the channel's order.
    let mut said_no: HashMap<String, usize> = HashMap::new();
    let mut refuse = |address: String, seq: usize| {
        said_no.entry(address).or_insert(seq);
    };
    for op in &ops {
        let step = s.channel.seq.fetch_add(1, Ordering::SeqCst);
        let user = |n: &Option<u8>| n.map(|n| format!("u{n}"));
        let anon = |n: &Option<u8>| n.map(|n| format!("a{n}"));
        match op {
            Op::Identify {
                user: u,
                anon: a,
                email,
            } => {
                if u.is_none() && a.is_none() {
                    continue;
                }
                let email = email.map(address);
                s.identify(user(u).as_deref(), anon(a).as_deref(), email.as_deref())
                    .await;
            }
            Op::Inquiry { user: u, anon: a } => {
                if u.is_none() && a.is_none() {
                    continue;
                }
                s.inquiry(user(u).as_deref(), anon(a).as_deref()).await;
            }
            Op::Import(n) => s.import(&address(*n)).await,
            Op::Link(n) => {
                let delivered = s.delivered();
                if let Some(mail) = delivered.get(n % delivered.len().max(1)) {
                    s.engine.unsubscribe_token(&mail.token).await.unwrap();
                    refuse(mail.to.clone(), step);
                }
            }
            Op::Unsubscribe(n) => {
                if let Some(id) = s.user(&format!("u{n}")).await {
                    let contact = s.store.contact(id).await.unwrap().unwrap();
                    s.engine.unsubscribe(id).await.unwrap();
                    if let Some(email) = contact.email {
                        refuse(email, step);
                    }
                }
            }
            Op::Bounce(n) => s.channel.bouncing.lock().unwrap().push(address(*n)),
            Op::Erase(n) => {
                if let Some(id) = s.user(&format!("u{n}")).await {
                    let contact = s.store.contact(id).await.unwrap().unwrap();
                    assert!(s.engine.erase_contact(id).await.unwrap());
                    if let Some(email) = contact.email {
                        refuse(email, step);
                    }
                }
            }
            Op::Wait(h) => s.clock.advance(hours(*h)),
        }
        // The engine runs between every step, as the always-on loop would.
        s.idle().await;
        for (address, at) in s.channel.bounced.lock().unwrap().iter() {
            refuse(address.clone(), *at);
        }
    }
    for mail in s.delivered() {
        if let Some(no) = said_no.get(&mail.to) {
            assert!(
                mail.seq < *no,
                "an email went to {} at {} after it said no at {no}: {ops:?}",
                mail.to,
                mail.seq
            );
        }
    }
    drop(s.dir);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 32,
        failure_persistence: None,
        .. ProptestConfig::default()
    })]

    #[test]
    fn no_email_reaches_an_address_after_it_said_no(ops in proptest::collection::vec(op(), 1..30)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(run(ops));
    }
}
