//! Batched ingest through HTTP against a raw batched SQLite insert of the same rows, in
//! one run: `cargo bench -p tend-web --bench batch_http`.
//!
//! Every measurement writes the same `EVENTS` track events (100 per batch, unique
//! UUID-shaped message ids, a pool of 1,000 users) into a fresh SQLite file seeded with
//! those users, so no mode pays for a table another mode has grown:
//!
//! - `raw insert`: [`SqliteStore::raw_insert_events_for_bench`], one transaction per 100
//!   rows, each row one execution of a cached single-row INSERT — the baseline;
//! - `Store::ingest`: the store's ingest of the same messages, already parsed;
//! - `HTTP /v1/batch, N conn`: the real router on 127.0.0.1:0 in this process (its own
//!   multi-thread runtime), posted Segment-style JSON batch bodies over N keep-alive
//!   connections with Basic auth. Bodies are serialized before the clock starts.
//!
//! Every mode's clock stops only after a full checkpoint
//! ([`SqliteStore::checkpoint`]), so no mode leaves part of its writes in the
//! write-ahead log for after the measurement.
//!
//! Modes run one after the other within a repetition, starting from a different mode each
//! time; the table gives the median events/s over repetitions and, for each mode, the
//! median of its ratio to the raw insert of the same repetition, and the CPU time the
//! whole process (server, SQLite and client threads) spent per event, which other work on
//! the machine disturbs far less than the wall-clock rate. The bar (DESIGN.md §6):
//! at least 50,000 events/s and at least half the raw rate.
//!
//! `TEND_BENCH_EVENTS` (default 100,000) and `TEND_BENCH_REPS` (default 5) override the
//! size of a measurement and the number of repetitions; `TEND_BENCH_IDS=sequential`
//! replaces the random UUIDs with ids that sort in arrival order (`m-000000042`), to show
//! what the random keys cost the `message_id` index; `TEND_BENCH_ONLY=raw|store|http1|…`
//! runs one mode alone, for a profiler.
//!
//! With `TEND_BENCH_POSTGRES=postgres://USER@HOST:PORT/DB`, `Store::ingest` and
//! `HTTP /v1/batch` also run on PostgreSQL (`pg-store`, `pg-httpN`), each measurement in
//! a database of its own made on that server (seeded the same way, dropped after), and
//! so does `pg2-httpN`: two routers, each with an `AppState` on a `PostgresStore` (a
//! connection pool) of its own as two `tend serve` nodes would have, on one database,
//! the N client connections split between them. The server's own CPU time is not in
//! the process's CPU column; the PostgreSQL backends serving the measurement's database
//! are, in a column of their own (read from `/proc`, so only for a server on this
//! machine; its background writer, WAL writer and checkpointer are not counted).

use axum::body::Bytes;
use jiff::Timestamp;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tend_core::StageName;
use tend_store::{ContactQuery, Identity, IngestMessage, Store, TokenScope, tokens};
use tend_store_postgres::PostgresStore;
use tend_store_sqlite::SqliteStore;
use tend_testkit::ScratchDatabase;
use tend_testkit::cpu::{BackendCpu, process_cpu};
use tend_web::{AppState, IngestRules};
use tokio::runtime::Runtime;

const BATCH: usize = 100;
const USERS: usize = 1_000;
const EVENT: &str = "Page Viewed";
/// Occurred-at of event 0, in Unix milliseconds.
const EPOCH_MS: i64 = 1_700_000_000_000;

fn main() {
    let events = env_usize("TEND_BENCH_EVENTS", 100_000);
    let reps = env_usize("TEND_BENCH_REPS", 5).max(1);
    assert!(
        events >= BATCH && events.is_multiple_of(BATCH),
        "TEND_BENCH_EVENTS must be a multiple of {BATCH}"
    );
    // reqwest is built without a default TLS provider; plain HTTP still needs one set.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // As `tend serve` logs, at `info`, formatted and thrown away: the cost of the
    // request spans and their lines is in the figures.
    if std::env::var_os("TEND_BENCH_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_writer(std::io::sink)
            .init();
    }
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("server")
        .build()
        .unwrap();
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sequential = match std::env::var("TEND_BENCH_IDS").as_deref() {
        Err(_) | Ok("uuid") => false,
        Ok("sequential") => true,
        Ok(other) => panic!("TEND_BENCH_IDS: `{other}`; expected uuid or sequential"),
    };
    let workload = Workload::new(events, sequential);

    let mut modes = vec![
        Mode::Raw,
        Mode::Store,
        Mode::Http(1),
        Mode::Http(2),
        Mode::Http(4),
    ];
    if postgres_server().is_some() {
        modes.extend([
            Mode::PgStore,
            Mode::PgHttp(1),
            Mode::PgHttp(2),
            Mode::PgHttp(4),
            Mode::PgNodes(2),
            Mode::PgNodes(4),
        ]);
    }
    if let Ok(only) = std::env::var("TEND_BENCH_ONLY") {
        modes.retain(|m| m.key() == only);
        assert!(
            !modes.is_empty(),
            "TEND_BENCH_ONLY: `{only}`; expected raw, store, httpN, pg-store, pg-httpN or pg2-httpN"
        );
    }
    println!(
        "batched ingest: {events} track events per measurement, {BATCH} per batch, \
         {USERS} users, {} message ids, {reps} repetitions; load average before: {}",
        if sequential {
            "sequential"
        } else {
            "random UUID"
        },
        loadavg()
    );
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    // Process CPU time (every thread: server, SQLite, client) per event, in µs.
    let mut costs: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    // CPU time of the PostgreSQL backends serving the measurement, per event, in µs.
    let mut pg_costs: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    for rep in 0..reps {
        let mut line = format!("rep {}:", rep + 1);
        for k in 0..modes.len() {
            let m = (rep + k) % modes.len();
            let measured = modes[m].measure(&server_rt, &client_rt, &workload);
            let rate = events as f64 / measured.wall.as_secs_f64();
            let cost = measured.cpu.as_secs_f64() * 1e6 / events as f64;
            rates[m].push(rate);
            costs[m].push(cost);
            line.push_str(&format!("  {} {rate:.0}/s {cost:.1}µs", modes[m].label()));
            if let Some(pg) = measured.pg_cpu {
                let pg_cost = pg.as_secs_f64() * 1e6 / events as f64;
                pg_costs[m].push(pg_cost);
                line.push_str(&format!(" +PG {pg_cost:.1}µs"));
            }
        }
        println!("{line}");
    }
    println!("load average after: {}\n", loadavg());

    // Without the baseline in this run (TEND_BENCH_ONLY), ratios come out as NaN.
    let (raw, raw_cost) = match modes.iter().position(|m| matches!(m, Mode::Raw)) {
        Some(i) => (rates[i].clone(), costs[i].clone()),
        None => (vec![f64::NAN; reps], vec![f64::NAN; reps]),
    };
    println!(
        "| {:<28} | {:>11} | {:>17} | {:>8} | {:>10} | {:>10} | {:>12} |",
        "mode", "median ev/s", "min – max ev/s", "× raw", "CPU µs/ev", "× raw CPU", "PG CPU µs/ev"
    );
    println!(
        "|{:-<30}|{:->13}|{:->19}|{:->10}|{:->12}|{:->12}|{:->14}|",
        "", "", "", "", "", "", ""
    );
    for (m, mode) in modes.iter().enumerate() {
        let ratios: Vec<f64> = rates[m].iter().zip(&raw).map(|(s, r)| s / r).collect();
        // Events per CPU-second relative to the baseline's: raw cost / this cost.
        let cpu_ratios: Vec<f64> = costs[m].iter().zip(&raw_cost).map(|(c, r)| r / c).collect();
        let (lo, hi) = min_max(&rates[m]);
        let pg_cost = if pg_costs[m].is_empty() {
            "–".to_owned()
        } else {
            format!("{:.1}", median(&pg_costs[m]))
        };
        println!(
            "| {:<28} | {:>11.0} | {:>17} | {:>8.2} | {:>10.1} | {:>10.2} | {:>12} |",
            mode.label(),
            median(&rates[m]),
            format!("{lo:.0} – {hi:.0}"),
            median(&ratios),
            median(&costs[m]),
            median(&cpu_ratios),
            pg_cost,
        );
    }
}

/// Wall time and this process's CPU time (all threads) of one measurement, and on
/// PostgreSQL the CPU time of the server's backends serving it.
struct Measured {
    wall: Duration,
    cpu: Duration,
    pg_cpu: Option<Duration>,
}

struct Clock {
    wall: Instant,
    cpu: Duration,
}

impl Clock {
    fn start() -> Self {
        Clock {
            cpu: process_cpu(),
            wall: Instant::now(),
        }
    }

    fn stop(self) -> Measured {
        let wall = self.wall.elapsed();
        Measured {
            wall,
            cpu: process_cpu().saturating_sub(self.cpu),
            pg_cpu: None,
        }
    }
}

#[derive(Clone, Copy)]
enum Mode {
    Raw,
    Store,
    Http(usize),
    PgStore,
    PgHttp(usize),
    /// Two nodes on one PostgreSQL database, this many client connections in all.
    PgNodes(usize),
}

/// The PostgreSQL server of the `pg-` modes, if `TEND_BENCH_POSTGRES` names one.
fn postgres_server() -> Option<String> {
    std::env::var("TEND_BENCH_POSTGRES").ok()
}

impl Mode {
    fn key(self) -> String {
        match self {
            Mode::Raw => "raw".into(),
            Mode::Store => "store".into(),
            Mode::Http(n) => format!("http{n}"),
            Mode::PgStore => "pg-store".into(),
            Mode::PgHttp(n) => format!("pg-http{n}"),
            Mode::PgNodes(n) => format!("pg2-http{n}"),
        }
    }

    fn label(self) -> String {
        match self {
            Mode::Raw => "raw insert (baseline)".into(),
            Mode::Store => "Store::ingest".into(),
            Mode::Http(1) => "HTTP /v1/batch, 1 conn".into(),
            Mode::Http(n) => format!("HTTP /v1/batch, {n} conns"),
            Mode::PgStore => "PostgreSQL Store::ingest".into(),
            Mode::PgHttp(1) => "PostgreSQL HTTP, 1 conn".into(),
            Mode::PgHttp(n) => format!("PostgreSQL HTTP, {n} conns"),
            Mode::PgNodes(n) => format!("PostgreSQL 2 nodes, {n} conns"),
        }
    }

    /// Wall time to write the whole workload into a fresh, seeded database.
    fn measure(self, server_rt: &Runtime, client_rt: &Runtime, w: &Workload) -> Measured {
        if let Mode::PgStore | Mode::PgHttp(_) | Mode::PgNodes(_) = self {
            let server = postgres_server().expect("TEND_BENCH_POSTGRES names the server");
            let database = server_rt.block_on(ScratchDatabase::create(&server));
            let store: Arc<dyn Store> = server_rt.block_on(async {
                let store = PostgresStore::open(database.url()).await.unwrap();
                seed(&store).await;
                Arc::new(store)
            });
            let mut nodes = vec![store];
            if let Mode::PgNodes(_) = self {
                // The second node: a pool of its own on the same database.
                nodes.push(server_rt.block_on(async {
                    Arc::new(PostgresStore::open(database.url()).await.unwrap()) as Arc<dyn Store>
                }));
            }
            let before = server_rt.block_on(BackendCpu::read(database.url()));
            let mut measured = match self {
                Mode::PgHttp(connections) | Mode::PgNodes(connections) => {
                    http(nodes.clone(), None, server_rt, client_rt, w, connections)
                }
                _ => server_rt.block_on(ingest(nodes[0].as_ref(), None, w)),
            };
            // Read while `nodes` keeps the pools, and so their backends, alive.
            let after = server_rt.block_on(BackendCpu::read(database.url()));
            drop(nodes);
            measured.pg_cpu = Some(after.since(&before));
            drop(database);
            return measured;
        }
        let dir = TempDir::new().unwrap();
        let store = server_rt.block_on(seeded_store(&dir));
        let elapsed = match self {
            Mode::Raw => server_rt.block_on(raw(&store, w)),
            Mode::Http(connections) => http(
                vec![store.clone()],
                Some(store.clone()),
                server_rt,
                client_rt,
                w,
                connections,
            ),
            _ => server_rt.block_on(ingest(store.as_ref(), Some(&store), w)),
        };
        drop(store);
        elapsed
    }
}

/// The rows every mode writes, in each mode's input form, built before any clock runs.
struct Workload {
    /// `(message id, user number, occurred-at ms)` per event.
    events: Vec<(String, usize, i64)>,
    properties: Map<String, Value>,
    /// One `/v1/batch` body per batch.
    bodies: Vec<Bytes>,
    /// Parsed messages per batch, as the HTTP layer hands them to the store.
    messages: Vec<Vec<IngestMessage>>,
}

impl Workload {
    fn new(count: usize, sequential: bool) -> Self {
        let mut rng = SplitMix(0x7e4d_5eed);
        let events: Vec<(String, usize, i64)> = (0..count)
            .map(|i| {
                let id = if sequential {
                    format!("m-{i:09}")
                } else {
                    uuid_v4(&mut rng)
                };
                (id, (rng.next() % USERS as u64) as usize, i as i64)
            })
            .collect();
        let mut properties = Map::new();
        properties.insert("plan".into(), json!("pro"));
        properties.insert("amount".into(), json!(42));

        let bodies = events
            .chunks(BATCH)
            .map(|chunk| {
                let batch: Vec<Value> = chunk
                    .iter()
                    .map(|(id, user, at)| {
                        json!({
                            "type": "track",
                            "messageId": id,
                            "userId": user_id(*user),
                            "event": EVENT,
                            "properties": properties,
                            "timestamp": at_ms(*at).to_string(),
                            "context": { "library": { "name": "analytics-node", "version": "2.1.0" } },
                            "integrations": {},
                        })
                    })
                    .collect();
                let body = json!({ "batch": batch, "sentAt": Timestamp::now().to_string() });
                Bytes::from(serde_json::to_vec(&body).unwrap())
            })
            .collect();
        let messages = events
            .chunks(BATCH)
            .map(|chunk| {
                chunk
                    .iter()
                    .map(|(id, user, at)| IngestMessage::Track {
                        message_id: id.clone(),
                        identity: Identity {
                            user_id: Some(user_id(*user)),
                            anonymous_id: None,
                        },
                        event: EVENT.into(),
                        properties: properties.clone(),
                        at: at_ms(*at),
                        stage_change: None,
                    })
                    .collect()
            })
            .collect();
        Workload {
            events,
            properties,
            bodies,
            messages,
        }
    }
}

fn user_id(n: usize) -> String {
    format!("user-{n}")
}

fn at_ms(offset: i64) -> Timestamp {
    Timestamp::from_millisecond(EPOCH_MS + offset).unwrap()
}

fn stage() -> StageName {
    StageName::new("prospect")
}

/// A fresh database holding the workload's users, as contacts that one event each made.
async fn seeded_store(dir: &TempDir) -> Arc<SqliteStore> {
    let store = SqliteStore::open(&dir.path().join("bench.db"))
        .await
        .unwrap();
    seed(&store).await;
    Arc::new(store)
}

/// The workload's users, as contacts that one event each made.
async fn seed(store: &dyn Store) {
    let seed: Vec<IngestMessage> = (0..USERS)
        .map(|u| IngestMessage::Track {
            message_id: format!("seed-{u}"),
            identity: Identity {
                user_id: Some(user_id(u)),
                anonymous_id: None,
            },
            event: "Signed Up".into(),
            properties: Map::new(),
            at: at_ms(-1),
            stage_change: None,
        })
        .collect();
    store.ingest(&seed, &stage()).await.unwrap();
}

/// A row for [`SqliteStore::raw_insert_events_for_bench`]:
/// `(message id, contact id, event name, properties JSON, occurred-at ms)`.
type RawRow = (String, i64, String, String, i64);

async fn raw(store: &SqliteStore, w: &Workload) -> Measured {
    let mut ids = HashMap::with_capacity(USERS);
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
    let properties = serde_json::to_string(&w.properties).unwrap();
    let batches: Vec<Vec<RawRow>> = w
        .events
        .chunks(BATCH)
        .map(|chunk| {
            chunk
                .iter()
                .map(|(id, user, at)| {
                    (
                        id.clone(),
                        ids[&user_id(*user)],
                        EVENT.to_owned(),
                        properties.clone(),
                        EPOCH_MS + at,
                    )
                })
                .collect()
        })
        .collect();
    let start = Clock::start();
    for rows in &batches {
        let inserted = store.raw_insert_events_for_bench(rows).await.unwrap();
        assert_eq!(inserted, rows.len() as u64);
    }
    store.checkpoint().await.unwrap();
    start.stop()
}

/// `Store::ingest` of every batch; a SQLite file given as `checkpoint` is checkpointed
/// before the clock stops.
async fn ingest(store: &dyn Store, checkpoint: Option<&SqliteStore>, w: &Workload) -> Measured {
    let stage = stage();
    let start = Clock::start();
    for batch in &w.messages {
        let outcome = store.ingest(batch, &stage).await.unwrap();
        assert_eq!(outcome.accepted, batch.len());
    }
    if let Some(sqlite) = checkpoint {
        sqlite.checkpoint().await.unwrap();
    }
    start.stop()
}

/// Serves each store (a node) with a router of its own on the server runtime and posts
/// every body from the client runtime over `connections` concurrent keep-alive
/// connections, connection `i` to node `i % nodes`.
fn http(
    nodes: Vec<Arc<dyn Store>>,
    checkpoint: Option<Arc<SqliteStore>>,
    server_rt: &Runtime,
    client_rt: &Runtime,
    w: &Workload,
    connections: usize,
) -> Measured {
    let write_key = tokens::generate_token();
    // The nodes share a database, so the key made through the first works on all.
    server_rt
        .block_on(nodes[0].create_token(
            "bench",
            TokenScope::Write,
            &tokens::hash_token(&write_key),
            Timestamp::now(),
        ))
        .unwrap();
    let mut bases = Vec::with_capacity(nodes.len());
    let mut servers = Vec::with_capacity(nodes.len());
    for store in nodes {
        let (base, shutdown, server) = server_rt.block_on(async {
            let rules = IngestRules {
                new_contact_stage: stage(),
                on_event: HashMap::from([(
                    "Order Completed".to_owned(),
                    StageName::new("customer"),
                )]),
            };
            let state = AppState::new(store, rules, json!([]));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}/v1/batch", listener.local_addr().unwrap());
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(tend_web::serve(listener, state, async {
                let _ = rx.await;
            }));
            (base, tx, server)
        });
        bases.push(base);
        servers.push((shutdown, server));
    }
    let bases = &bases;

    let elapsed = client_rt.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(connections)
            .build()
            .unwrap();
        let post = |node: usize, body: Bytes| {
            client
                .post(&bases[node % bases.len()])
                .basic_auth(&write_key, Some(""))
                .header("content-type", "application/json")
                .body(body)
                .send()
        };
        // Opens the connections and caches the write key; an empty batch writes nothing.
        let warm: Vec<_> = (0..connections)
            .map(|c| post(c, Bytes::from_static(br#"{"batch":[]}"#)))
            .collect();
        for response in futures_join(warm).await {
            assert!(response.unwrap().status().is_success());
        }

        let next = &AtomicUsize::new(0);
        let post = &post;
        let worker = move |connection: usize| async move {
            let mut accepted = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = w.bodies.get(i) else {
                    return accepted;
                };
                let response = post(connection, body.clone()).await.unwrap();
                let status = response.status();
                let answer: Value =
                    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null);
                assert!(status.is_success(), "{status}: {answer}");
                accepted += answer["accepted"].as_u64().unwrap() as usize;
            }
        };
        let start = Clock::start();
        let accepted: usize = futures_join((0..connections).map(worker).collect())
            .await
            .into_iter()
            .sum();
        if let Some(sqlite) = &checkpoint {
            sqlite.checkpoint().await.unwrap();
        }
        let elapsed = start.stop();
        assert_eq!(accepted, w.events.len());
        elapsed
    });

    for (shutdown, server) in servers {
        let _ = shutdown.send(());
        server_rt.block_on(server).unwrap().unwrap();
    }
    elapsed
}

/// Polls every future on the current task until all are done; results in order.
async fn futures_join<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}

/// A small deterministic generator (SplitMix64), enough for distinct, random-looking ids.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// A random version-4 UUID in its usual text form, as Segment's libraries make message ids.
fn uuid_v4(rng: &mut SplitMix) -> String {
    let hi = (rng.next() & !0xf000) | 0x4000;
    let lo = (rng.next() & !(0xc << 60)) | (0x8 << 60);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn min_max(samples: &[f64]) -> (f64, f64) {
    samples
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &s| {
            (lo.min(s), hi.max(s))
        })
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}: not a number")))
        .unwrap_or(default)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
