//! The engine's figures for BENCHMARKS.md, each against its baseline in the same run:
//!
//! 1. fan-out: enrolling every contact of a stage into a new process (1,000,000);
//! 2. a tick with nothing due, at 1,000 (before and after) and at 1,000,000
//!    enrollments (same cost?);
//! 3. email dispatch through the engine to a loopback SMTP server, against two bare
//!    send loops to the same server with the same concurrency: lettre's pooled
//!    transport (which stalls ~40 ms a message on delayed ACKs, having no
//!    `TCP_NODELAY`) and lettre's connection API on `TCP_NODELAY` sockets, the path
//!    Tend's own pool takes; plus Tend's `EmailSender` alone (message building and
//!    its pool, no engine), to tell the pool's cost from the engine's;
//! 4. resident memory (peak) of the process during the 1,000,000 run.
//!
//! `cargo bench -p tend-engine --bench engine` (release). `TEND_BENCH_CONTACTS`
//! overrides the large size, `TEND_BENCH_EMAILS` the dispatch count.
//!
//! With `TEND_BENCH_POSTGRES=postgres://USER@HOST:PORT/DB` the same tick and dispatch
//! figures are measured on PostgreSQL too (each measurement in a database of its own,
//! made on that server and dropped after), dispatch alternating with SQLite's so both
//! see the same load. `TEND_BENCH_SKIP_SQLITE_SCALE=1` leaves out SQLite's tick phase.
//! Dispatch on PostgreSQL is measured with one node and with two: two engines, each on
//! a `PostgresStore` (pool and election connection) of its own as two `tend serve`
//! processes would have, sending the same welcomes from one database, each node to an
//! SMTP sink of its own so the run can check that both nodes sent some and that every
//! lead got its welcome once. `TEND_BENCH_ONLY_DISPATCH=1` leaves out every tick phase.

use jiff::Timestamp;
use lettre::message::Mailbox;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::Map;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tend_core::check::{Project, ProjectSources, SourceFile, check_project};
use tend_core::{Email, StageName};
use tend_engine::email::{EmailConfig, EmailSender, OutgoingEmail};
use tend_engine::{ChannelDelivery, Engine, EngineSettings, ManualClock, SystemClock, webhook};
use tend_store::{ImportRow, Store, Wake};
use tend_store_postgres::PostgresStore;
use tend_store_sqlite::SqliteStore;
use tend_testkit::ScratchDatabase;
use tend_testkit::cpu::{BackendCpu, process_cpu};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const IMPORT_CHUNK: usize = 10_000;
const TICKS: usize = 300;

fn config(smtp_port: Option<u16>, workers: usize) -> String {
    let smtp = smtp_port
        .map(|p| format!("smtp_url = \"smtp://127.0.0.1:{p}\""))
        .unwrap_or_default();
    format!(
        r#"
public_url = "https://tend.example.com"
[business]
name = "Bench"
timezone = "UTC"
hours = "Mon-Sun 00:00-24:00"
[limits]
quiet_hours = "none"
[dispatch]
workers = {workers}
[channels.email]
from = "Bench <bench@bench.example>"
{smtp}
"#
    )
}

/// A process whose first touch is due after `wait`.
fn project(config: &str, wait: &str) -> Project {
    let process = format!(
        "name = \"Leads\"\nenroll = {{ stage = \"lead\" }}\nmax_gap = \"60d\"\n\
         [[steps]]\nwait = \"{wait}\"\nemail = \"hello\"\nintent = \"nurture\"\n"
    );
    check_project(&ProjectSources {
        config: SourceFile::new("tend.toml", config),
        processes: vec![SourceFile::new("processes/leads.toml", process)],
        templates: vec![SourceFile::new(
            "templates/hello.md",
            "Subject: Hello {{ contact.first_name }}\n\nA short note for **{{ contact.name }}**.",
        )],
    })
    .expect("bench project is valid")
}

async fn import_leads(store: &dyn Store, n: usize) -> Duration {
    let start = Instant::now();
    let stage = StageName::new("lead");
    let mut rows = Vec::with_capacity(IMPORT_CHUNK);
    for i in 0..n {
        rows.push(ImportRow {
            email: Email::parse(&format!("person{i}@example.com")).unwrap(),
            name: Some(format!("Person {i}")),
            stage: Some(stage.clone()),
            timezone: None,
            attributes: Map::new(),
        });
        if rows.len() == IMPORT_CHUNK || i + 1 == n {
            store
                .import_contacts(
                    &rows,
                    &StageName::new("prospect"),
                    Timestamp::now(),
                    tend_store::ImportEnrollment::Now,
                )
                .await
                .unwrap();
            rows.clear();
        }
    }
    start.elapsed()
}

/// Where a measurement's store lives.
#[derive(Clone)]
enum Backend {
    /// A fresh SQLite file in a temporary folder.
    Sqlite,
    /// A fresh database on the PostgreSQL server this URL names.
    Postgres(String),
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres(_) => "PostgreSQL",
        }
    }

    fn is_postgres(&self) -> bool {
        matches!(self, Backend::Postgres(_))
    }
}

/// Where one engine dispatch measurement runs, and on how many nodes.
#[derive(Clone)]
struct Setup {
    backend: Backend,
    nodes: usize,
}

impl Setup {
    fn label(&self) -> String {
        match (&self.backend, self.nodes) {
            (Backend::Sqlite, _) => "SQLite".into(),
            (backend, 1) => format!("{}, 1 node", backend.name()),
            (backend, n) => format!("{}, {n} nodes", backend.name()),
        }
    }
}

/// A fresh, empty store and what keeps it alive: the folder of its SQLite file, or
/// its PostgreSQL database (dropped with this).
struct FreshStore {
    store: Arc<dyn Store>,
    dir: tempfile::TempDir,
    _database: Option<ScratchDatabase>,
}

impl FreshStore {
    async fn open(backend: &Backend) -> FreshStore {
        let dir = tempfile::tempdir().unwrap();
        match backend {
            Backend::Sqlite => FreshStore {
                store: Arc::new(
                    SqliteStore::open(&dir.path().join("tend.db"))
                        .await
                        .unwrap(),
                ),
                dir,
                _database: None,
            },
            Backend::Postgres(server) => {
                let database = ScratchDatabase::create(server).await;
                FreshStore {
                    store: Arc::new(PostgresStore::open(database.url()).await.unwrap()),
                    dir,
                    _database: Some(database),
                }
            }
        }
    }

    /// A second node's store on the same PostgreSQL database: a pool and an election
    /// connection of its own, as another `tend serve` process would have.
    async fn another_node(&self) -> Arc<dyn Store> {
        let database = self
            ._database
            .as_ref()
            .expect("only PostgreSQL runs several nodes");
        Arc::new(PostgresStore::open(database.url()).await.unwrap())
    }

    /// On PostgreSQL, the CPU time so far of the server's backends serving this database.
    async fn backend_cpu(&self) -> Option<BackendCpu> {
        Some(BackendCpu::read(self._database.as_ref()?.url()).await)
    }

    /// The SQLite file's size, or the PostgreSQL database's.
    async fn bytes(&self, backend: &Backend) -> u64 {
        match backend {
            Backend::Sqlite => {
                std::fs::metadata(self.dir.path().join("tend.db")).map_or(0, |m| m.len())
            }
            Backend::Postgres(_) => {
                let url = self._database.as_ref().unwrap().url();
                let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(connection);
                let size: i64 = client
                    .query_one("SELECT pg_database_size(current_database())", &[])
                    .await
                    .unwrap()
                    .get(0);
                size as u64
            }
        }
    }
}

struct Scale {
    contacts: usize,
    import: Duration,
    fan_out: Duration,
    tick_median: Duration,
    tick_p99: Duration,
    db_bytes: u64,
}

async fn scale(backend: &Backend, n: usize) -> Scale {
    let fresh = FreshStore::open(backend).await;
    let (store, dir) = (Arc::clone(&fresh.store), &fresh.dir);
    let import = import_leads(store.as_ref(), n).await;
    let config = config(None, 8);
    let project = Arc::new(project(&config, "30d"));
    let delivery = Arc::new(ChannelDelivery::new(&project.config, dir.path(), None, "b").unwrap());
    let clock = ManualClock::new(Timestamp::now());
    let start = Instant::now();
    let (engine, report) = Engine::start(
        Arc::clone(&store),
        project,
        Arc::new(clock.clone()),
        delivery,
        EngineSettings::default(),
    )
    .await
    .unwrap();
    let fan_out = start.elapsed();
    assert_eq!(report.added, vec![("leads".to_owned(), n as u64)]);
    engine.run_until_idle().await.unwrap();

    // A tick: read signals, decide what is due, claim what is queued. Nothing is.
    let mut samples = Vec::with_capacity(TICKS);
    let mut parts: [Vec<Duration>; 3] = Default::default();
    for _ in 0..TICKS {
        clock.advance(jiff::SignedDuration::from_secs(1));
        let t = Instant::now();
        assert_eq!(engine.try_enroll().await.unwrap(), 0);
        let enrolled = t.elapsed();
        assert_eq!(engine.try_decide().await.unwrap(), 0);
        let decided = t.elapsed();
        assert_eq!(engine.try_dispatch(8).await.unwrap(), 0);
        samples.push(t.elapsed());
        parts[0].push(enrolled);
        parts[1].push(decided - enrolled);
        parts[2].push(t.elapsed() - decided);
    }
    samples.sort();
    for p in &mut parts {
        p.sort();
    }
    let part = |i: usize| parts[i][parts[i].len() / 2].as_secs_f64() * 1e6;
    println!(
        "  ({n} enrollments: read signals {:.0} µs, decide {:.0} µs, claim {:.0} µs)",
        part(0),
        part(1),
        part(2)
    );
    let db_bytes = fresh.bytes(backend).await;
    Scale {
        contacts: n,
        import,
        fan_out,
        tick_median: samples[samples.len() / 2],
        tick_p99: samples[samples.len() * 99 / 100],
        db_bytes,
    }
}

/// What an SMTP sink received: messages, and the recipient of each.
#[derive(Default)]
struct Tally {
    received: AtomicUsize,
    recipients: Mutex<Vec<String>>,
}

impl Tally {
    /// The recipients of every message received since the last call.
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.recipients.lock().unwrap())
    }
}

/// A minimal SMTP server: accepts every message as fast as it can, counts them and
/// notes each one's recipient.
async fn smtp_sink(tally: Arc<Tally>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let tally = Arc::clone(&tally);
            tokio::spawn(async move {
                // Replies are small writes; without this, delayed ACKs cap each
                // connection at a few dozen messages a second.
                let _ = socket.set_nodelay(true);
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read);
                let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                let mut line = String::new();
                let mut in_data = false;
                let mut rcpt = String::new();
                loop {
                    line.clear();
                    match lines.read_line(&mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if in_data {
                        if line == ".\r\n" {
                            in_data = false;
                            tally.received.fetch_add(1, Ordering::Relaxed);
                            tally
                                .recipients
                                .lock()
                                .unwrap()
                                .push(std::mem::take(&mut rcpt));
                            let _ = write.write_all(b"250 2.0.0 queued\r\n").await;
                        }
                        continue;
                    }
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
                        "HELO" => b"250 sink\r\n",
                        "RCPT" => {
                            rcpt = line
                                .split_once('<')
                                .and_then(|(_, rest)| rest.split_once('>'))
                                .map_or_else(String::new, |(address, _)| address.to_owned());
                            b"250 OK\r\n"
                        }
                        "DATA" => {
                            in_data = true;
                            b"354 go ahead\r\n"
                        }
                        "QUIT" => {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            return;
                        }
                        _ => b"250 OK\r\n",
                    };
                    if write.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn rate(n: usize, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64()
}

/// The message the bare loops send: about the size of the engine's.
fn bare_message(i: usize) -> Message {
    Message::builder()
        .from("Bench <bench@bench.example>".parse::<Mailbox>().unwrap())
        .to(format!("person{i}@example.com").parse::<Mailbox>().unwrap())
        .subject(format!("Hello Person {i}"))
        .body(format!("A short note for Person {i}."))
        .unwrap()
}

/// `workers` connections, each a loop of sends: lettre's connection API on a socket
/// with `TCP_NODELAY`, as Tend's pool opens them, without the pool or the engine.
async fn bare_nodelay(port: u16, n: usize, workers: usize) -> Duration {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let next = Arc::clone(&next);
        tasks.spawn(async move {
            let socket = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            socket.set_nodelay(true).unwrap();
            let mut connection =
                AsyncSmtpConnection::connect_with_transport(Box::new(socket), &ClientId::default())
                    .await
                    .unwrap();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let message = bare_message(i);
                connection
                    .send(message.envelope(), &message.formatted())
                    .await
                    .unwrap();
            }
            connection.quit().await.unwrap();
        });
    }
    while tasks.join_next().await.is_some() {}
    start.elapsed()
}

/// `workers` loops sending through one `EmailSender`: Tend's message building and SMTP
/// pool, without the engine's store.
async fn sender_loop(port: u16, n: usize, workers: usize) -> Duration {
    let sender = Arc::new(
        EmailSender::new(EmailConfig {
            from: tend_core::config::Mailbox {
                name: Some("Bench".into()),
                email: Email::parse("bench@bench.example").unwrap(),
            },
            smtp_url: Some(format!("smtp://127.0.0.1:{port}")),
            outbox_dir: std::env::temp_dir(),
            message_id_domain: "bench.example".into(),
            pool_size: workers as u32,
            dkim: None,
        })
        .unwrap(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let sender = Arc::clone(&sender);
        let next = Arc::clone(&next);
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let to = format!("person{i}@example.com");
                let name = format!("Person {i}");
                let subject = format!("Hello Person {i}");
                let body = format!("A short note for **Person {i}**.");
                sender
                    .send(&OutgoingEmail {
                        touch_id: i as i64,
                        to_email: &to,
                        to_name: Some(&name),
                        subject: &subject,
                        markdown_body: &body,
                        unsubscribe_url: "https://tend.example.com/unsubscribe/token",
                        unsubscribe_mailto: "mailto:bench@bench.example?subject=unsubscribe",
                        envelope_from: None,
                    })
                    .await
                    .unwrap();
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let took = start.elapsed();
    sender.shutdown().await;
    took
}

async fn bare_lettre(port: u16, n: usize, workers: usize) -> Duration {
    let transport: AsyncSmtpTransport<Tokio1Executor> =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(port)
            .pool_config(lettre::transport::smtp::PoolConfig::new().max_size(workers as u32))
            .build();
    let transport = Arc::new(transport);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let transport = Arc::clone(&transport);
        let next = Arc::clone(&next);
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                transport.send(bare_message(i)).await.unwrap();
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    start.elapsed()
}

/// What one engine dispatch measurement saw.
struct Dispatched {
    took: Duration,
    /// CPU time of this process (engines, SMTP sinks) while dispatching.
    cpu: Duration,
    /// CPU time of the PostgreSQL backends serving the database while dispatching.
    pg_cpu: Option<Duration>,
    /// Emails each node's SMTP sink received.
    per_node: Vec<usize>,
    /// Emails received beyond one per lead.
    duplicates: usize,
}

/// Imports `n` leads, decides their welcomes on the first node, then times `nodes`
/// engines running the dispatcher `tend serve` runs until the queue is empty, node `i`
/// sending to `sinks[i]`. Checks that every lead got its welcome, once (or no more
/// twice than sends in flight), and that every node sent some.
async fn engine_dispatch(
    backend: &Backend,
    sinks: &[(u16, Arc<Tally>)],
    nodes: usize,
    n: usize,
    workers: usize,
) -> Dispatched {
    assert!(nodes >= 1 && nodes <= sinks.len());
    let fresh = FreshStore::open(backend).await;
    import_leads(fresh.store.as_ref(), n).await;
    let settings = EngineSettings {
        dispatch_workers: workers,
        ..EngineSettings::default()
    };
    let mut engines = Vec::with_capacity(nodes);
    for (node, (port, _)) in sinks.iter().take(nodes).enumerate() {
        // Every node is a `tend serve` of its own: on PostgreSQL a store (connection
        // pool, election connection) of its own on the same database.
        let store = if node == 0 {
            Arc::clone(&fresh.store)
        } else {
            fresh.another_node().await
        };
        let config = config(Some(*port), workers);
        let project = Arc::new(project(&config, "0d"));
        let delivery =
            Arc::new(ChannelDelivery::new(&project.config, fresh.dir.path(), None, "b").unwrap());
        let (engine, _) = Engine::start(
            Arc::clone(&store),
            project,
            Arc::new(SystemClock),
            delivery,
            settings.clone(),
        )
        .await
        .unwrap();
        if node == 0 {
            // The first node wins the election (SQLite's sole engine leads at once) and
            // decides every welcome before the clock starts: only sending is timed.
            let coordination = store.coordination().await.unwrap();
            while !coordination.leads() {
                let _ = tokio::time::timeout(
                    Duration::from_millis(100),
                    coordination.woken(Wake::Signals),
                )
                .await;
            }
            while engine.try_decide().await.unwrap() > 0 {}
        }
        engines.push(Arc::new(engine));
    }
    for (_, tally) in sinks {
        tally.take();
    }
    let pg_before = fresh.backend_cpu().await;
    let cpu_before = process_cpu();
    let start = Instant::now();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let running: Vec<_> = engines
        .iter()
        .map(|engine| tokio::spawn(Arc::clone(engine).run(shutdown.clone())))
        .collect();
    // A claimed touch stays queued until its send is recorded, so an empty queue means
    // every welcome was sent and recorded. Polled gently: on PostgreSQL each look is a
    // transaction competing with the dispatchers for the same two cores.
    while fresh.store.next_dispatch_at().await.unwrap().is_some() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = start.elapsed();
    shutdown.cancel();
    for run in running {
        run.await.unwrap();
    }
    let cpu = process_cpu().saturating_sub(cpu_before);
    let pg_cpu = match (fresh.backend_cpu().await, pg_before) {
        (Some(after), Some(before)) => Some(after.since(&before)),
        _ => None,
    };
    let received: Vec<Vec<String>> = sinks.iter().take(nodes).map(|(_, t)| t.take()).collect();
    let mut welcomes: HashMap<&str, usize> = HashMap::with_capacity(n);
    for to in received.iter().flatten() {
        *welcomes.entry(to.as_str()).or_default() += 1;
    }
    let missing = (0..n)
        .filter(|i| !welcomes.contains_key(format!("person{i}@example.com").as_str()))
        .count();
    assert_eq!(missing, 0, "{missing} of {n} leads got no welcome");
    assert_eq!(welcomes.len(), n, "only the leads got mail");
    let per_node: Vec<usize> = received.iter().map(Vec::len).collect();
    let duplicates = per_node.iter().sum::<usize>() - n;
    assert!(
        duplicates <= workers * nodes,
        "{duplicates} welcomes sent twice, more than the {} sends in flight",
        workers * nodes
    );
    assert!(
        per_node.iter().all(|&sent| sent > 0),
        "a node sent nothing: {per_node:?}"
    );
    Dispatched {
        took,
        cpu,
        pg_cpu,
        per_node,
        duplicates,
    }
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The 1, 5 and 15 minute load averages.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    webhook::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let large = env_usize("TEND_BENCH_CONTACTS", 1_000_000);
        let emails = env_usize("TEND_BENCH_EMAILS", 5_000);
        let reps = env_usize("TEND_BENCH_DISPATCH_REPS", 3).max(1);
        let mut backends = vec![Backend::Sqlite];
        if let Ok(server) = std::env::var("TEND_BENCH_POSTGRES") {
            backends.push(Backend::Postgres(server));
        }
        println!("load average at the start: {}", loadavg());

        for backend in &backends {
            if std::env::var_os("TEND_BENCH_ONLY_DISPATCH").is_some()
                || (matches!(backend, Backend::Sqlite)
                    && std::env::var_os("TEND_BENCH_SKIP_SQLITE_SCALE").is_some())
            {
                continue;
            }
            println!("## {}: tick with nothing due, and fan-out", backend.name());
            println!(
                "| enrollments | import | fan-out (enroll all) | tick median | tick p99 | db size |"
            );
            println!("|---:|---:|---:|---:|---:|---:|");
            let mut ticks = Vec::new();
            for n in [1_000, large, 1_000] {
                let s = scale(backend, n).await;
                println!(
                    "| {} | {:.1} s | {:.2} s | {:.0} µs | {:.0} µs | {:.0} MB |",
                    s.contacts,
                    s.import.as_secs_f64(),
                    s.fan_out.as_secs_f64(),
                    s.tick_median.as_secs_f64() * 1e6,
                    s.tick_p99.as_secs_f64() * 1e6,
                    s.db_bytes as f64 / 1e6
                );
                ticks.push(s.tick_median);
            }
            // The small scale runs before and after the large one, so load drifting on a
            // shared machine shows up as a difference between the two.
            let small = (ticks[0].as_secs_f64() + ticks[2].as_secs_f64()) / 2.0;
            println!(
                "\ntick at {large} / tick at 1000 (mean of the runs before and after): {:.2}×",
                ticks[1].as_secs_f64() / small
            );
            println!("peak resident memory so far: {:.0} MB", peak_rss_mb());
            println!("load average: {}\n", loadavg());
        }

        // One sink per node, so a run can tell which node sent what.
        let mut sinks = Vec::new();
        for _ in 0..2 {
            let tally = Arc::new(Tally::default());
            sinks.push((smtp_sink(Arc::clone(&tally)).await, tally));
        }
        let port = sinks[0].0;
        // Warm the server and the client path once.
        bare_lettre(port, 200, 8).await;
        bare_nodelay(port, 200, 8).await;
        sender_loop(port, 200, 8).await;
        let mut setups = vec![Setup {
            backend: Backend::Sqlite,
            nodes: 1,
        }];
        for backend in backends.iter().skip(1) {
            for nodes in [1, 2] {
                setups.push(Setup {
                    backend: backend.clone(),
                    nodes,
                });
            }
        }
        println!(
            "\n## email dispatch to a loopback SMTP server ({emails} emails, \
             sends in flight per node)"
        );
        let engines: Vec<String> = setups
            .iter()
            .map(|s| format!("Tend engine dispatch, {}", s.label()))
            .collect();
        println!(
            "| sends in flight | bare lettre pool (no TCP_NODELAY) | bare lettre connections \
             + TCP_NODELAY | Tend EmailSender alone | {} | Tend / bare pool \
             | Tend / bare TCP_NODELAY |",
            engines.join(" | ")
        );
        println!(
            "|---:|---:|---:|---:|{}---:|---:|",
            "---:|".repeat(setups.len())
        );
        let mut notes = Vec::new();
        for workers in [8usize, 32] {
            let mut pooled = Vec::new();
            let mut nodelay = Vec::new();
            let mut sender = Vec::new();
            let mut tend = vec![Vec::new(); setups.len()];
            // Interleaved, so a change in the machine's load hits every column alike.
            for rep in 0..reps {
                pooled.push(rate(emails, bare_lettre(port, emails, workers).await));
                nodelay.push(rate(emails, bare_nodelay(port, emails, workers).await));
                sender.push(rate(emails, sender_loop(port, emails, workers).await));
                let mut line = format!("{workers} in flight, run {}:", rep + 1);
                for (i, setup) in setups.iter().enumerate() {
                    let run =
                        engine_dispatch(&setup.backend, &sinks, setup.nodes, emails, workers).await;
                    let r = rate(emails, run.took);
                    tend[i].push(r);
                    let per_email = |cpu: Duration| cpu.as_secs_f64() * 1e6 / emails as f64;
                    line.push_str(&format!(
                        "\n    {}: {r:.0}/s, CPU {:.0} µs/email{} (sent per node {:?}, \
                         duplicates {})",
                        setup.label(),
                        per_email(run.cpu),
                        run.pg_cpu
                            .map(|pg| format!(" + PostgreSQL {:.0} µs/email", per_email(pg)))
                            .unwrap_or_default(),
                        run.per_node,
                        run.duplicates
                    ));
                }
                line.push_str(&format!("\n    load average {}", loadavg()));
                notes.push(line);
            }
            // Two nodes against one, paired run by run: both saw the same minutes' load.
            if let (Some(one), Some(two)) = (
                setups.iter().position(|s| s.nodes == 1 && s.backend.is_postgres()),
                setups.iter().position(|s| s.nodes == 2),
            ) {
                let ratios: Vec<f64> = tend[two].iter().zip(&tend[one]).map(|(t, o)| t / o).collect();
                notes.push(format!(
                    "{workers} in flight: PostgreSQL 2 nodes / 1 node, run by run: {}; median {:.2}×",
                    ratios.iter().map(|r| format!("{r:.2}×")).collect::<Vec<_>>().join(", "),
                    median(&ratios)
                ));
            }
            let (pooled, nodelay, sender) = (median(&pooled), median(&nodelay), median(&sender));
            let engines: Vec<String> = tend
                .iter()
                .map(|runs| format!("{:.0} emails/s", median(runs)))
                .collect();
            println!(
                "| {workers} | {pooled:.0} emails/s | {nodelay:.0} emails/s | {sender:.0} \
                 emails/s | {} | {:.0}% | {:.0}% |",
                engines.join(" | "),
                median(&tend[0]) / pooled * 100.0,
                median(&tend[0]) / nodelay * 100.0
            );
        }
        println!();
        for note in notes {
            println!("{note}");
        }
        println!("load average: {}", loadavg());
        println!(
            "(median of {reps} runs each; emails received by the sinks: {})",
            sinks
                .iter()
                .map(|(_, t)| t.received.load(Ordering::Relaxed))
                .sum::<usize>()
        );
        println!(
            "peak resident memory of the whole run: {:.0} MB",
            peak_rss_mb()
        );
    });
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
