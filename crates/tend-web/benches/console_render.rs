//! How long the console takes to answer each page with 100,000 contacts and 1,000,000
//! events: `cargo bench -p tend-web --bench console_render`.
//!
//! The business is built once, quickly: the contacts go in through
//! [`Store::import_contacts`] (2,000 per transaction; 70% prospects, 20% leads, 10%
//! customers), the events through [`SqliteStore::raw_insert_events_for_bench`] (ten
//! per contact, spread over a year), and the engine then enrolls the leads in a process
//! and runs a business day on its manual clock, so Today, Deliveries, Reports and
//! Processes have touches, tasks and sends to show. One contact has
//! `BUSY_EVENTS` events of their own, for the heaviest contact page.
//!
//! Each page is then asked for `TEND_BENCH_REQUESTS` times (default 200) by a
//! logged-in owner over HTTP on 127.0.0.1, one request at a time, pages interleaved so
//! background work disturbs them alike; the table gives each page's median, 95th
//! percentile and largest time from request to the last byte of the body, and its
//! weight. Before the timed rounds each page is asked for once and its time printed
//! as it completes. `TEND_BENCH_KEEP=DIR` keeps a copy of the built database as
//! `DIR/tend.db`, to study the queries with `EXPLAIN QUERY PLAN`. The baseline, measured in the same run, is `/healthz`: the same round trip
//! with no page to render. The bar (DESIGN.md §6): p95 under 50 ms, under 100 KB.

use jiff::SignedDuration;
use serde_json::json;
use std::time::{Duration, Instant};
use tend_core::{Email, StageName};
use tend_engine::Clock;
use tend_store::{ContactQuery, ImportEnrollment, ImportRow, Role, Store};
use tend_store_sqlite::SqliteStore;
use tend_testkit::web::Server;
use tend_testkit::web_console::{ConsoleUser, add_user};

const CONTACTS: usize = 100_000;
const EVENTS_PER_CONTACT: usize = 10;
const BUSY_EVENTS: usize = 5_000;
const OWNER: &str = "owner@studio.example";

const CONFIG: &str = r#"
[business]
name = "Studio Rossi"
timezone = "Europe/Rome"
hours = "Mon-Fri 08:00-18:00"
[capacity]
per_week = 40
[budget]
emails = { per_day = 400, per_week = 2000 }
staff_minutes = { per_day = 240 }
[limits]
quiet_hours = "none"
[stages.on_event]
"Inquiry Received" = "lead"
"Order Completed" = "customer"
[tasks.outcomes]
booked = "Order Completed"
[channels.email]
from = "Studio Rossi <hello@studio.example>"
"#;

const WELCOME: &str = "Subject: Welcome {{ contact.name }}\n\nHello {{ contact.name }}, [leave]({{ unsubscribe_url }}).";

const PROCESS: &str = r#"name = "New inquiry"
enroll = { stage = "lead" }
exit = { stages = ["customer"] }
max_gap = "10d"
[[steps]]
wait = "0d"
email = "welcome"
intent = "nurture"
[[steps]]
wait = "1d"
task = "Call {{ contact.name }} about the kitchen"
minutes = 15
intent = "offer"
[[steps]]
wait = "3d"
email = "welcome"
intent = "nurture"
"#;

const FIRST: [&str; 16] = [
    "ann", "bea", "cid", "dan", "eve", "fra", "gio", "hal", "ivo", "joe", "kim", "lea", "max",
    "nia", "oli", "pia",
];
const LAST: [&str; 16] = [
    "rossi", "smith", "bianchi", "jones", "ferrari", "brown", "romano", "taylor", "colombo",
    "wilson", "ricci", "evans", "marino", "thomas", "greco", "walker",
];
const EVENT_NAMES: [&str; 4] = ["Page Viewed", "Email Opened", "Quote Sent", "Replied"];

fn main() {
    let requests = std::env::var("TEND_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200usize)
        .max(20);
    tend_engine::webhook::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(requests));
}

fn person(i: usize) -> (String, String) {
    let first = FIRST[i % FIRST.len()];
    let last = LAST[(i / FIRST.len()) % LAST.len()];
    (
        format!("{first}.{last}{i}@example{}.com", i % 50),
        format!("{} {}{i}", capitalized(first), capitalized(last)),
    )
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

async fn run(requests: usize) {
    let build = Instant::now();
    let server = Server::start(CONFIG, &[("new-inquiry", PROCESS)], &[("welcome", WELCOME)]).await;
    add_user(&server, OWNER, Role::Owner).await;
    let store = server.engine.store();
    let start = server.clock.now();
    let mut rows = Vec::with_capacity(2_000);
    for i in 0..CONTACTS {
        let (email, name) = person(i);
        let stage = match i % 10 {
            0 => "customer",
            1 | 2 => "lead",
            _ => "prospect",
        };
        rows.push(ImportRow {
            email: Email::parse(&email).unwrap(),
            name: Some(name),
            stage: Some(StageName::new(stage)),
            timezone: None,
            attributes: json!({ "source": "fair" }).as_object().cloned().unwrap(),
        });
        if rows.len() == 2_000 || i + 1 == CONTACTS {
            store
                .import_contacts(
                    &rows,
                    &StageName::new("prospect"),
                    start,
                    ImportEnrollment::Now,
                )
                .await
                .unwrap();
            rows.clear();
        }
    }
    let ids = contact_ids(store.as_ref()).await;
    let raw = SqliteStore::open(&server.dir.path().join("tend.db"))
        .await
        .unwrap();
    let year_ms = 365 * 86_400_000i64;
    let mut batch = Vec::with_capacity(10_000);
    let mut written = 0usize;
    let total = CONTACTS * EVENTS_PER_CONTACT + BUSY_EVENTS;
    for n in 0..total {
        // The busy contact's events come last.
        let contact = if n < CONTACTS * EVENTS_PER_CONTACT {
            ids[n % ids.len()]
        } else {
            ids[0]
        };
        let at = start.as_millisecond() - year_ms + (n as i64 * 7_919) % year_ms;
        batch.push((
            format!("m-{n:09}"),
            contact,
            EVENT_NAMES[n % EVENT_NAMES.len()].to_owned(),
            r#"{"page":"/kitchens"}"#.to_owned(),
            at,
        ));
        if batch.len() == batch.capacity() || n + 1 == total {
            written += raw.raw_insert_events_for_bench(&batch).await.unwrap() as usize;
            batch.clear();
        }
    }
    raw.checkpoint().await.unwrap();
    // The leads enroll, and a business day goes by hour by hour.
    server.engine.run_until_idle().await.unwrap();
    for _ in 0..10 {
        server.clock.advance(SignedDuration::from_hours(1));
        server.engine.run_until_idle().await.unwrap();
    }
    println!(
        "built {CONTACTS} contacts and {written} events in {:.1} s; load average: {}",
        build.elapsed().as_secs_f64(),
        loadavg()
    );
    if let Some(dir) = std::env::var_os("TEND_BENCH_KEEP") {
        // A copy to study the queries with EXPLAIN QUERY PLAN; the bench's own folder
        // is temporary.
        let dest = std::path::Path::new(&dir).join("tend.db");
        std::fs::create_dir_all(&dir).unwrap();
        raw.backup_to(&dest, true).await.unwrap();
        println!("kept the database at {}", dest.display());
    }

    let mut owner = ConsoleUser::login(&server, OWNER).await;
    let busy = ids[0];
    let typical = ids[ids.len() / 2];
    let deep = ids[ids.len() * 9 / 10];
    let pages: Vec<(String, String)> = vec![
        ("baseline: /healthz".into(), "/healthz".into()),
        ("Today".into(), "/today".into()),
        ("Contacts, first page".into(), "/contacts".into()),
        (
            "Contacts, search `smith`".into(),
            "/contacts?q=smith".into(),
        ),
        (
            "Contacts, search `ann.rossi4`".into(),
            "/contacts?q=ann.rossi4".into(),
        ),
        (
            "Contacts, stage customer".into(),
            "/contacts?stage=customer".into(),
        ),
        (
            "Contacts, search + stage".into(),
            "/contacts?q=bea&stage=lead".into(),
        ),
        (
            "Contacts, page at 90%".into(),
            format!("/contacts?after={deep}"),
        ),
        ("Contact (10 events)".into(), format!("/contacts/{typical}")),
        (
            format!("Contact ({} events)", BUSY_EVENTS + EVENTS_PER_CONTACT),
            format!("/contacts/{busy}"),
        ),
        ("Deliveries".into(), "/deliveries".into()),
        ("Reports".into(), "/reports".into()),
        ("Processes".into(), "/processes".into()),
        ("Process".into(), "/processes/new-inquiry".into()),
    ];
    // Warm up: each page once, checked like any console page, each time printed as it
    // completes so a slow page shows itself before the timed rounds.
    let mut weights = Vec::new();
    for (label, path) in &pages {
        print!("warm-up {label:<34} ");
        std::io::Write::flush(&mut std::io::stdout()).unwrap();
        let began = Instant::now();
        let body = if path == "/healthz" {
            owner.get(path).await.text().await.unwrap()
        } else {
            owner.page(path).await
        };
        println!(
            "{:>9.1} ms {:>8.1} KB",
            ms(began.elapsed()),
            body.len() as f64 / 1000.0
        );
        weights.push(body.len());
    }
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(requests); pages.len()];
    for _ in 0..requests {
        for (k, (_, path)) in pages.iter().enumerate() {
            let began = Instant::now();
            let response = owner.get(path).await;
            assert!(
                response.status().is_success(),
                "{path}: {}",
                response.status()
            );
            response.bytes().await.unwrap();
            times[k].push(began.elapsed());
        }
    }
    println!(
        "{requests} requests per page, one at a time; load average after: {}\n",
        loadavg()
    );
    println!(
        "| {:<34} | {:>9} | {:>9} | {:>9} | {:>8} |",
        "page", "p50 ms", "p95 ms", "max ms", "KB"
    );
    println!(
        "|{:-<36}|{:->11}|{:->11}|{:->11}|{:->10}|",
        "", "", "", "", ""
    );
    for (k, (label, _)) in pages.iter().enumerate() {
        let mut sorted = times[k].clone();
        sorted.sort();
        let at = |q: f64| sorted[((sorted.len() as f64 * q).ceil() as usize).min(sorted.len()) - 1];
        println!(
            "| {:<34} | {:>9.1} | {:>9.1} | {:>9.1} | {:>8.1} |",
            label,
            ms(at(0.5)),
            ms(at(0.95)),
            ms(*sorted.last().unwrap()),
            weights[k] as f64 / 1000.0
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Every contact id, in order.
async fn contact_ids(store: &dyn Store) -> Vec<i64> {
    let mut ids = Vec::with_capacity(CONTACTS);
    let mut query = ContactQuery {
        limit: 1_000,
        ..ContactQuery::default()
    };
    loop {
        let page = store.list_contacts(&query).await.unwrap();
        ids.extend(page.contacts.iter().map(|c| c.id.0));
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return ids,
        }
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}
