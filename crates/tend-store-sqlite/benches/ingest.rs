//! Ingest against its baseline, in one run: `cargo bench -p tend-store-sqlite --bench ingest`.
//!
//! Both benchmarks write batches of 100 track events for a pool of 1,000 known users into
//! the same database; the baseline is [`SqliteStore::raw_insert_events_for_bench`], a bare
//! multi-row INSERT of the same rows. The bar (DESIGN.md §6): ingest's events per second
//! at least half of the baseline's.

use divan::Bencher;
use divan::counter::ItemsCount;
use jiff::Timestamp;
use serde_json::{Map, json};
use std::collections::HashMap;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use tempfile::TempDir;
use tend_core::StageName;
use tend_store::{ContactQuery, Identity, IngestMessage, Store};
use tend_store_sqlite::SqliteStore;
use tokio::runtime::Runtime;

const BATCH: usize = 100;
const USERS: usize = 1_000;

fn main() {
    divan::main();
}

struct Fixture {
    runtime: Runtime,
    store: SqliteStore,
    stage: StageName,
    /// Contact id of `user-N`, for the baseline's rows.
    ids: HashMap<String, i64>,
    properties: Map<String, serde_json::Value>,
    next: AtomicUsize,
    _dir: TempDir,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = TempDir::new().unwrap();
    let stage = StageName::new("prospect");
    let mut properties = Map::new();
    properties.insert("plan".into(), json!("pro"));
    properties.insert("amount".into(), json!(42));
    let (store, ids) = runtime.block_on(async {
        let store = SqliteStore::open(&dir.path().join("bench.db"))
            .await
            .unwrap();
        let seed: Vec<IngestMessage> = (0..USERS)
            .map(|u| track(format!("seed-{u}"), u, &Map::new(), 0))
            .collect();
        store.ingest(&seed, &stage).await.unwrap();
        let mut ids = HashMap::new();
        let mut query = ContactQuery {
            limit: 500,
            ..ContactQuery::default()
        };
        loop {
            let page = store.list_contacts(&query).await.unwrap();
            for contact in page.contacts {
                ids.insert(contact.user_id.unwrap(), contact.id.0);
            }
            match page.next_cursor {
                Some(cursor) => query.cursor = Some(cursor),
                None => break,
            }
        }
        (store, ids)
    });
    Fixture {
        runtime,
        store,
        stage,
        ids,
        properties,
        next: AtomicUsize::new(0),
        _dir: dir,
    }
});

fn user(n: usize) -> String {
    format!("user-{}", n % USERS)
}

fn track(
    message_id: String,
    n: usize,
    properties: &Map<String, serde_json::Value>,
    at: i64,
) -> IngestMessage {
    IngestMessage::Track {
        message_id,
        identity: Identity {
            user_id: Some(user(n)),
            anonymous_id: None,
        },
        event: "Page Viewed".into(),
        properties: properties.clone(),
        at: Timestamp::from_millisecond(1_700_000_000_000 + at).unwrap(),
        stage_change: None,
    }
}

impl Fixture {
    /// A fresh batch number, so message ids never repeat across samples.
    fn batch_number(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed)
    }
}

#[divan::bench(sample_count = 100, sample_size = 5)]
fn ingest(bencher: Bencher) {
    let f = &*FIXTURE;
    bencher
        .counter(ItemsCount::new(BATCH))
        .with_inputs(|| {
            let b = f.batch_number();
            (0..BATCH)
                .map(|i| {
                    track(
                        format!("m-{b}-{i}"),
                        b * 37 + i * 13,
                        &f.properties,
                        i as i64,
                    )
                })
                .collect::<Vec<_>>()
        })
        .bench_local_values(|batch| {
            f.runtime
                .block_on(f.store.ingest(&batch, &f.stage))
                .unwrap()
        });
}

#[divan::bench(sample_count = 100, sample_size = 5)]
fn raw_insert_baseline(bencher: Bencher) {
    let f = &*FIXTURE;
    let properties = serde_json::to_string(&f.properties).unwrap();
    bencher
        .counter(ItemsCount::new(BATCH))
        .with_inputs(|| {
            let b = f.batch_number();
            (0..BATCH)
                .map(|i| {
                    let contact = f.ids[&user(b * 37 + i * 13)];
                    let at = 1_700_000_000_000 + i as i64;
                    (
                        format!("m-{b}-{i}"),
                        contact,
                        "Page Viewed".to_owned(),
                        properties.clone(),
                        at,
                    )
                })
                .collect::<Vec<_>>()
        })
        .bench_local_values(|rows| {
            f.runtime
                .block_on(f.store.raw_insert_events_for_bench(&rows))
                .unwrap()
        });
}
