//! The forecast against a live database seeded with known state: contacts enrolled by
//! the real engine with known pending touches, then forecast under a known budget.

use async_trait::async_trait;
use jiff::Timestamp;
use serde_json::{Map, Value};
use std::path::Path;
use std::sync::Arc;
use tend_core::check::{Project, ProjectSources, SourceFile, check_project};
use tend_core::{Email, StageName};
use tend_engine::{Delivery, EmailTouch, Engine, EngineSettings, ManualClock, SendError};
use tend_sim::forecast::{Forecast, ForecastOptions, forecast, render};
use tend_store::{ContactTraits, Identity, IngestMessage, Store};
use tend_store_sqlite::SqliteStore;

/// Monday 4 January 2027, 10:00 UTC: within business hours.
const MONDAY: &str = "2027-01-04T10:00:00Z";

/// A business in UTC open Mon–Fri 09:00–17:00, with `budget` as its `[budget]` table
/// and one process for leads: emails `a` (at once), `b` and `c` (a day apart each).
fn project(budget: &str, max_gap: &str) -> Project {
    let config = format!(
        r#"
[business]
name = "Test"
timezone = "UTC"
hours = "Mon-Fri 09:00-17:00"
[capacity]
per_week = 5
[budget]
{budget}
[limits]
per_contact_per_week = 7
min_gap = "0d"
quiet_hours = "none"
[stages]
order = ["prospect", "lead", "customer"]
[channels.email]
from = "Test <t@example.com>"
"#
    );
    let process = format!(
        r#"
name = "Leads"
enroll = {{ stage = "lead" }}
max_gap = "{max_gap}"
[[steps]]
wait = "0d"
email = "a"
intent = "nurture"
[[steps]]
wait = "1d"
email = "b"
intent = "nurture"
[[steps]]
wait = "1d"
email = "c"
intent = "nurture"
"#
    );
    let template = |name: &str| {
        SourceFile::new(
            format!("templates/{name}.md"),
            format!("Subject: {name}\n\nHello {{{{ contact.name }}}}.\n"),
        )
    };
    let sources = ProjectSources {
        config: SourceFile::new("tend.toml", config),
        processes: vec![SourceFile::new("processes/leads.toml", process)],
        templates: vec![template("a"), template("b"), template("c")],
    };
    check_project(&sources).unwrap_or_else(|d| panic!("test project: {d:?}"))
}

/// Channels that accept everything and keep nothing.
struct Nowhere;

#[async_trait]
impl Delivery for Nowhere {
    async fn email(&self, _email: &EmailTouch<'_>) -> Result<(), SendError> {
        Ok(())
    }
    async fn webhook(&self, _: &str, _: &str, _: &Value, _: Timestamp) -> Result<(), SendError> {
        Ok(())
    }
}

fn lead(n: usize, at: Timestamp) -> [IngestMessage; 2] {
    let identity = Identity {
        user_id: Some(format!("u{n}")),
        anonymous_id: None,
    };
    [
        IngestMessage::Identify {
            message_id: format!("id-{n}"),
            identity: identity.clone(),
            traits: ContactTraits {
                email: Email::parse(&format!("lead{n}@example.com")).ok(),
                name: Some(format!("Lead {n}")),
                timezone: None,
                attributes: Map::new(),
            },
            at,
        },
        IngestMessage::Track {
            message_id: format!("inq-{n}"),
            identity,
            event: "Inquiry".into(),
            properties: Map::new(),
            at,
            stage_change: Some(StageName::new("lead")),
        },
    ]
}

/// A live database in `dir` where the engine, without budgets, enrolled `leads`
/// contacts at `at` and sent each its first email: every one has `b` pending a day later.
/// They asked five weeks before, so no arrivals are expected from the last four.
async fn live(dir: &Path, leads: usize, at: Timestamp) -> SqliteStore {
    let asked = at
        .checked_sub(jiff::SignedDuration::from_hours(5 * 7 * 24))
        .unwrap();
    let batch: Vec<IngestMessage> = (0..leads).flat_map(|n| lead(n, asked)).collect();
    live_with(dir, &batch, at).await
}

/// A live database in `dir` where the engine, without budgets, read `batch` at `at`.
async fn live_with(dir: &Path, batch: &[IngestMessage], at: Timestamp) -> SqliteStore {
    let path = dir.join("tend.db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).await.unwrap());
    let project = Arc::new(project("", "30d"));
    let (engine, _) = Engine::start(
        Arc::clone(&store),
        Arc::clone(&project),
        Arc::new(ManualClock::new(at)),
        Arc::new(Nowhere),
        EngineSettings::default(),
    )
    .await
    .unwrap();
    store
        .ingest(batch, project.config.first_stage())
        .await
        .unwrap();
    engine.run_until_idle().await.unwrap();
    drop(engine);
    drop(store);
    SqliteStore::open(&path).await.unwrap()
}

async fn run(store: &SqliteStore, project: &Project, at: Timestamp, weeks: u32) -> Forecast {
    let options = ForecastOptions {
        weeks,
        history_weeks: 4,
    };
    forecast(store, project, at, options).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_budget_spreads_the_pending_touches_over_business_days() {
    let dir = tempfile::tempdir().unwrap();
    let t0: Timestamp = MONDAY.parse().unwrap();
    let store = live(dir.path(), 30, t0).await;
    let before = store.pace_counts().await.unwrap();
    let project = project("emails = { per_day = 10 }", "30d");
    let hour_later = t0.checked_add(jiff::SignedDuration::from_hours(1)).unwrap();
    let forecast = run(&store, &project, hour_later, 2).await;

    // 30 contacts each owe `b` and `c`: 60 emails at 10 per business day, `b` first.
    let emails: Vec<u64> = forecast.days.iter().map(|d| d.emails).collect();
    assert_eq!(
        emails,
        [0, 10, 10, 10, 10, 0, 0, 10, 10, 0, 0, 0, 0, 0],
        "{}",
        render(&forecast, &jiff::tz::TimeZone::UTC)
    );
    assert_eq!(forecast.days[0].date.to_string(), "2027-01-04");
    assert_eq!(forecast.days.len(), 14);
    let day = &forecast.budgets[0].windows[0];
    assert_eq!(
        (day.window.as_str(), day.limit, day.peak),
        ("day", 10.0, 10.0)
    );
    assert_eq!(day.at_limit, 6);
    // Unlimited, every `b` goes on Tuesday and every `c` on Wednesday.
    assert_eq!(forecast.needed.budgets[0].windows[0].peak, 30.0);
    assert_eq!(forecast.at_risk_total, 0);
    assert_eq!(forecast.needed.past_gap_anyway, 0);
    // Nothing of it touched the live database.
    let after = store.pace_counts().await.unwrap();
    assert_eq!((after.held, after.enrolled), (before.held, before.enrolled));
    let text = render(&forecast, &jiff::tz::TimeZone::UTC);
    assert!(text.contains("Every promise kept"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lead_the_budget_cannot_reach_in_time_is_reported_with_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let t0: Timestamp = MONDAY.parse().unwrap();
    let store = live(dir.path(), 1, t0).await;
    // One email a week accrues over the week's business hours, so `b` (due Tuesday)
    // cannot go before the lead has waited its three days.
    let project = project("emails = { per_week = 1 }", "3d");
    let forecast = run(&store, &project, t0, 1).await;
    assert_eq!(forecast.at_risk_total, 1, "{:?}", forecast.at_risk);
    let lead = &forecast.at_risk[0];
    assert_eq!(lead.email.as_deref(), Some("lead0@example.com"));
    assert_eq!(lead.process, "leads");
    assert_eq!(lead.deadline.to_string(), "2027-01-07T10:00:00Z");
    assert_eq!(forecast.at_risk_already, 0);
    // With the budget lifted the promise holds.
    assert_eq!(forecast.needed.past_gap_anyway, 0);
    let text = render(&forecast, &jiff::tz::TimeZone::UTC);
    assert!(
        text.contains("1 known contacts and 0 expected arrivals pass their process's max_gap, the first on 2027-01-07"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrivals_follow_the_last_weeks_history() {
    let dir = tempfile::tempdir().unwrap();
    let now: Timestamp = MONDAY.parse().unwrap();
    // Eight leads over the last four weeks, one every 3.5 days, enrolled by the
    // engine when it reads them now.
    let batch: Vec<IngestMessage> = (0..8)
        .flat_map(|n| {
            let hours_ago = 12 + n as i64 * 84;
            lead(
                n,
                now.checked_sub(jiff::SignedDuration::from_hours(hours_ago))
                    .unwrap(),
            )
        })
        .collect();
    let store = live_with(dir.path(), &batch, now).await;
    let before = store.pace_counts().await.unwrap();
    let project = project("", "30d");
    let hour_later = now
        .checked_add(jiff::SignedDuration::from_hours(1))
        .unwrap();
    let forecast = run(&store, &project, hour_later, 2).await;
    let rate = &forecast.arrivals[0];
    assert_eq!((rate.process.as_str(), rate.observed), ("leads", 8));
    assert!((rate.per_week - 2.0).abs() < 1e-9, "{rate:?}");
    // The eight still owe `b` and `c`; two weeks at two a week bring four new leads,
    // at days 1.75, 5.25, 8.75 and 12.25, each sent `a`, `b` and `c` a day apart but
    // the last, whose `c` falls after the fortnight.
    let emails: u64 = forecast.days.iter().map(|d| d.emails).sum();
    assert_eq!(
        emails,
        16 + 11,
        "{}",
        render(&forecast, &jiff::tz::TimeZone::UTC)
    );
    let after = store.pace_counts().await.unwrap();
    assert_eq!((after.held, after.enrolled), (before.held, before.enrolled));
}
