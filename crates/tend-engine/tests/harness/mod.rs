//! A business on a real SQLite file in a temp folder, its engine driven by a manual
//! clock, email written to the outbox folder (or to a given SMTP server).

#![allow(dead_code)]

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tend_core::check::{ProjectSources, SourceFile, check_project};
use tend_core::{ContactId, Email, StageName};
use tend_engine::{ChannelDelivery, Delivery, Engine, EngineSettings, ManualClock};
use tend_store::{ContactTraits, Identity, IngestMessage, Store, TouchView};
use tend_store_sqlite::SqliteStore;

/// `tend.toml` for the tests: open every day 08:00–20:00 in Rome, no budgets, the
/// default frequency limits (3 a week, a day apart).
pub const CONFIG: &str = r#"
public_url = "https://tend.example.com"
[business]
name = "Studio Rossi"
timezone = "Europe/Rome"
hours = "Mon-Sun 08:00-20:00"
[capacity]
per_week = 100
[stages]
order = ["prospect", "lead", "customer", "loyal", "lapsed"]
[stages.on_event]
"Inquiry Received" = "lead"
"Order Completed" = "customer"
[tasks.outcomes]
booked = "Order Completed"
replied = "Replied"
[channels.email]
from = "Studio Rossi <hello@studio.example>"
"#;

/// An acquisition process: welcome email, a call task two days later, a follow-up.
pub const INQUIRY: &str = r#"
name = "New inquiry"
enroll = { stage = "lead" }
exit = { events = ["Order Completed"], stages = ["customer"] }
max_gap = "10d"
keep_warm = "keep-warm"
[[steps]]
wait = "0d"
email = "welcome"
intent = "nurture"
[[steps]]
wait = "2d"
task = "Call {{ contact.name }} about the kitchen"
minutes = 15
intent = "offer"
[[steps]]
wait = "3d"
email = "follow-up"
intent = "offer"
"#;

/// After a sale.
pub const CUSTOMER: &str = r#"
name = "Customer"
enroll = { stage = "customer" }
max_gap = "30d"
[[steps]]
wait = "1d"
email = "thank-you"
intent = "nurture"
"#;

/// A Monday at 10:00 in Rome.
pub fn monday_morning() -> Timestamp {
    "2026-11-23T10:00:00+01:00[Europe/Rome]"
        .parse::<jiff::ZonedDateTime>()
        .unwrap()
        .timestamp()
}

pub fn templates() -> Vec<SourceFile> {
    [
        (
            "welcome",
            "Subject: Welcome, {{ contact.first_name }}\n\nThanks for asking, {{ contact.name }}.",
        ),
        (
            "follow-up",
            "Subject: Shall we book a visit?\n\nWe have slots next week.",
        ),
        (
            "keep-warm",
            "Subject: A few ideas\n\nNo rush: here are some ideas.",
        ),
        ("thank-you", "Subject: Thank you\n\nIt was a pleasure."),
    ]
    .iter()
    .map(|(name, text)| SourceFile::new(format!("templates/{name}.md"), *text))
    .collect()
}

/// One business under test.
pub struct Business {
    pub dir: tempfile::TempDir,
    pub store: Arc<dyn Store>,
    pub clock: ManualClock,
    pub engine: Engine,
    pub processes: Vec<(String, String)>,
    pub config: String,
}

impl Business {
    /// A business with the default config and both processes, email to the outbox.
    pub async fn start() -> Business {
        Business::with(CONFIG, &[("new-inquiry", INQUIRY), ("customer", CUSTOMER)]).await
    }

    /// A business with this config and these processes.
    pub async fn with(config: &str, processes: &[(&str, &str)]) -> Business {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&dir.path().join("tend.db"))
                .await
                .unwrap(),
        );
        let clock = ManualClock::new(monday_morning());
        let processes: Vec<(String, String)> = processes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let engine = start_engine(&dir, &store, &clock, config, &processes, None).await;
        Business {
            dir,
            store,
            clock,
            engine,
            processes,
            config: config.to_owned(),
        }
    }

    /// Stops this engine and starts a new one over the same database, as a restart of
    /// `tend serve` does, with the given process files.
    pub async fn restart(&mut self, processes: &[(&str, &str)]) -> tend_engine::SyncReport {
        self.processes = processes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let project = project(&self.config, &self.processes);
        let delivery = outbox(&self.dir, &project.config);
        let (engine, report) = Engine::start(
            Arc::clone(&self.store),
            Arc::new(project),
            Arc::new(self.clock.clone()),
            delivery,
            EngineSettings::default(),
        )
        .await
        .unwrap();
        self.engine = engine;
        report
    }

    pub fn outbox(&self) -> PathBuf {
        self.dir.path().join("outbox")
    }

    /// The `.eml` files written so far, by touch id.
    pub fn sent_emails(&self) -> Vec<(i64, String)> {
        let Ok(entries) = std::fs::read_dir(self.outbox()) else {
            return Vec::new();
        };
        let mut mails: Vec<(i64, String)> = entries
            .filter_map(|e| {
                let path = e.ok()?.path();
                let id = path.file_stem()?.to_str()?.parse().ok()?;
                (path.extension()? == "eml").then(|| (id, std::fs::read_to_string(&path).unwrap()))
            })
            .collect();
        mails.sort();
        mails
    }

    /// Emails whose text contains `needle`.
    pub fn emails_containing(&self, needle: &str) -> usize {
        self.sent_emails()
            .iter()
            .filter(|(_, m)| m.contains(needle))
            .count()
    }

    pub fn advance(&self, by: SignedDuration) {
        self.clock.advance(by);
    }

    pub async fn idle(&self) {
        self.engine.run_until_idle().await.unwrap();
    }

    /// Identifies a person and tracks `event` for them, as a website would.
    pub async fn lead(&self, user: &str, name: &str, email: &str) -> ContactId {
        self.identify(user, name, email).await;
        self.track(user, "Inquiry Received").await;
        self.contact_of(user).await
    }

    pub async fn identify(&self, user: &str, name: &str, email: &str) {
        let message = IngestMessage::Identify {
            message_id: format!("id-{user}-{}", self.clock_ms()),
            identity: Identity {
                user_id: Some(user.into()),
                anonymous_id: None,
            },
            traits: ContactTraits {
                email: Some(Email::parse(email).unwrap()),
                name: Some(name.into()),
                timezone: None,
                attributes: Map::new(),
            },
            at: self.engine.clock().now(),
        };
        self.store
            .ingest(&[message], &StageName::new("prospect"))
            .await
            .unwrap();
    }

    pub async fn track(&self, user: &str, event: &str) {
        let stage = match event {
            "Inquiry Received" => Some(StageName::new("lead")),
            "Order Completed" => Some(StageName::new("customer")),
            _ => None,
        };
        let message = IngestMessage::Track {
            message_id: format!("tr-{user}-{event}-{}", self.clock_ms()),
            identity: Identity {
                user_id: Some(user.into()),
                anonymous_id: None,
            },
            event: event.into(),
            properties: Map::new(),
            at: self.engine.clock().now(),
            stage_change: stage,
        };
        self.store
            .ingest(&[message], &StageName::new("prospect"))
            .await
            .unwrap();
    }

    fn clock_ms(&self) -> i64 {
        self.engine.clock().now().as_millisecond()
    }

    pub async fn contact_of(&self, user: &str) -> ContactId {
        let page = self
            .store
            .list_contacts(&tend_store::ContactQuery {
                limit: 500,
                ..Default::default()
            })
            .await
            .unwrap();
        page.contacts
            .iter()
            .find(|c| c.user_id.as_deref() == Some(user))
            .map(|c| c.id)
            .unwrap_or_else(|| panic!("no contact for {user}"))
    }

    /// The contact with this address.
    pub async fn contact_of_email(&self, email: &str) -> ContactId {
        let page = self
            .store
            .list_contacts(&tend_store::ContactQuery {
                q: Some(email.to_owned()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        page.contacts
            .iter()
            .find(|c| c.email.as_deref() == Some(email))
            .map(|c| c.id)
            .unwrap_or_else(|| panic!("no contact with {email}"))
    }

    /// The contact's touches, oldest first.
    pub async fn touches(&self, contact: ContactId) -> Vec<TouchView> {
        let mut touches = self.store.touches_of(contact, 500).await.unwrap();
        touches.reverse();
        touches
    }
}

pub fn project(config: &str, processes: &[(String, String)]) -> tend_core::check::Project {
    let sources = ProjectSources {
        config: SourceFile::new("tend.toml", config),
        processes: processes
            .iter()
            .map(|(k, v)| SourceFile::new(format!("processes/{k}.toml"), v.as_str()))
            .collect(),
        templates: templates(),
    };
    match check_project(&sources) {
        Ok(project) => project,
        Err(diagnostics) => panic!("test project is invalid: {diagnostics:#?}"),
    }
}

pub fn outbox(dir: &tempfile::TempDir, config: &tend_core::config::Config) -> Arc<dyn Delivery> {
    Arc::new(ChannelDelivery::new(config, dir.path(), None, "test").unwrap())
}

pub async fn start_engine(
    dir: &tempfile::TempDir,
    store: &Arc<dyn Store>,
    clock: &ManualClock,
    config: &str,
    processes: &[(String, String)],
    delivery: Option<Arc<dyn Delivery>>,
) -> Engine {
    let project = project(config, processes);
    let delivery = delivery.unwrap_or_else(|| outbox(dir, &project.config));
    Engine::start(
        Arc::clone(store),
        Arc::new(project),
        Arc::new(clock.clone()),
        delivery,
        EngineSettings::default(),
    )
    .await
    .unwrap()
    .0
}

/// Hours as a signed duration.
pub fn hours(n: i64) -> SignedDuration {
    SignedDuration::from_hours(n)
}

pub fn days(n: i64) -> SignedDuration {
    SignedDuration::from_hours(24 * n)
}

pub fn path_exists(path: &Path) -> bool {
    path.exists()
}

pub fn json_of<T: serde::Serialize>(value: &T) -> serde_json::Value {
    json!(value)
}
