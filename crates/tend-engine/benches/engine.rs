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

use jiff::Timestamp;
use lettre::message::Mailbox;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::Map;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tend_core::check::{Project, ProjectSources, SourceFile, check_project};
use tend_core::{Email, StageName};
use tend_engine::email::{EmailConfig, EmailSender, OutgoingEmail};
use tend_engine::{ChannelDelivery, Engine, EngineSettings, ManualClock, SystemClock, webhook};
use tend_store::{ImportRow, Store};
use tend_store_postgres::PostgresStore;
use tend_store_sqlite::SqliteStore;
use tend_testkit::ScratchDatabase;
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

/// A minimal SMTP server: accepts every message as fast as it can and counts them.
async fn smtp_sink(received: Arc<AtomicUsize>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let received = Arc::clone(&received);
            tokio::spawn(async move {
                // Replies are small writes; without this, delayed ACKs cap each
                // connection at a few dozen messages a second.
                let _ = socket.set_nodelay(true);
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read);
                let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                let mut line = String::new();
                let mut in_data = false;
                loop {
                    line.clear();
                    match lines.read_line(&mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if in_data {
                        if line == ".\r\n" {
                            in_data = false;
                            received.fetch_add(1, Ordering::Relaxed);
                            let _ = write.write_all(b"250 2.0.0 queued\r\n").await;
                        }
                        continue;
                    }
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
                        "HELO" => b"250 sink\r\n",
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

async fn engine_dispatch(backend: &Backend, port: u16, n: usize, workers: usize) -> Duration {
    let fresh = FreshStore::open(backend).await;
    let (store, dir) = (Arc::clone(&fresh.store), &fresh.dir);
    import_leads(store.as_ref(), n).await;
    let config = config(Some(port), workers);
    let project = Arc::new(project(&config, "0d"));
    let delivery = Arc::new(ChannelDelivery::new(&project.config, dir.path(), None, "b").unwrap());
    let settings = EngineSettings {
        dispatch_workers: workers,
        ..EngineSettings::default()
    };
    let (engine, _) = Engine::start(
        Arc::clone(&store),
        project,
        Arc::new(SystemClock),
        delivery,
        settings,
    )
    .await
    .unwrap();
    while engine.try_decide().await.unwrap() > 0 {}
    let engine = Arc::new(engine);
    // The dispatcher `tend serve` runs, until the queue is empty.
    let start = Instant::now();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(Arc::clone(&engine).run(shutdown.clone()));
    while store.next_dispatch_at().await.unwrap().is_some() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let took = start.elapsed();
    shutdown.cancel();
    running.await.unwrap();
    took
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
        let mut backends = vec![Backend::Sqlite];
        if let Ok(server) = std::env::var("TEND_BENCH_POSTGRES") {
            backends.push(Backend::Postgres(server));
        }
        println!("load average at the start: {}", loadavg());

        for backend in &backends {
            if matches!(backend, Backend::Sqlite)
                && std::env::var_os("TEND_BENCH_SKIP_SQLITE_SCALE").is_some()
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

        let received = Arc::new(AtomicUsize::new(0));
        let port = smtp_sink(Arc::clone(&received)).await;
        // Warm the server and the client path once.
        bare_lettre(port, 200, 8).await;
        bare_nodelay(port, 200, 8).await;
        sender_loop(port, 200, 8).await;
        println!("\n## email dispatch to a loopback SMTP server ({emails} emails)");
        let engines: Vec<String> = backends
            .iter()
            .map(|b| format!("Tend engine dispatch, {}", b.name()))
            .collect();
        println!(
            "| sends in flight | bare lettre pool (no TCP_NODELAY) | bare lettre connections \
             + TCP_NODELAY | Tend EmailSender alone | {} | Tend / bare pool \
             | Tend / bare TCP_NODELAY |",
            engines.join(" | ")
        );
        println!(
            "|---:|---:|---:|---:|{}---:|---:|",
            "---:|".repeat(backends.len())
        );
        for workers in [8usize, 32] {
            let mut pooled = Vec::new();
            let mut nodelay = Vec::new();
            let mut sender = Vec::new();
            let mut tend = vec![Vec::new(); backends.len()];
            // Interleaved, so a change in the machine's load hits every column alike.
            for _ in 0..3 {
                pooled.push(rate(emails, bare_lettre(port, emails, workers).await));
                nodelay.push(rate(emails, bare_nodelay(port, emails, workers).await));
                sender.push(rate(emails, sender_loop(port, emails, workers).await));
                for (b, backend) in backends.iter().enumerate() {
                    tend[b].push(rate(
                        emails,
                        engine_dispatch(backend, port, emails, workers).await,
                    ));
                }
            }
            for runs in [&mut pooled, &mut nodelay, &mut sender]
                .into_iter()
                .chain(tend.iter_mut())
            {
                runs.sort_by(f64::total_cmp);
            }
            let (pooled, nodelay, sender) = (pooled[1], nodelay[1], sender[1]);
            let engines: Vec<String> = tend
                .iter()
                .map(|runs| format!("{:.0} emails/s", runs[1]))
                .collect();
            println!(
                "| {workers} | {pooled:.0} emails/s | {nodelay:.0} emails/s | {sender:.0} \
                 emails/s | {} | {:.0}% | {:.0}% |",
                engines.join(" | "),
                tend[0][1] / pooled * 100.0,
                tend[0][1] / nodelay * 100.0
            );
        }
        println!("load average: {}", loadavg());
        println!(
            "(median of 3 runs each; emails received by the sink: {})",
            received.load(Ordering::Relaxed)
        );
        println!(
            "peak resident memory of the whole run: {:.0} MB",
            peak_rss_mb()
        );
    });
}
