//! How long a message landing in the inbound mailbox takes to be acted on, for
//! BENCHMARKS.md: the reader idling (IMAP IDLE) against the same reader polling every
//! 10 s (the shortest `inbound_poll` allowed), both on a real Dovecot started here,
//! in the same run.
//!
//! Each message is an unsubscribe request (`Subject: unsubscribe <token>`) with its own
//! Message-ID, so each is recorded once and counted in the mail feedback counts; the
//! time is from the start of the APPEND session (another client delivering the
//! message) until the count shows it. Before each message the bench waits a
//! pseudo-random part of the poll interval, so messages land at every phase of a poll
//! as real mail does.
//!
//! `cargo bench -p tend-engine --bench inbound_latency` (release). `TEND_BENCH_IDLE_N`
//! and `TEND_BENCH_POLL_N` set the number of messages (20 and 6).

use std::sync::Arc;
use std::time::{Duration, Instant};
use tend_core::check::{ProjectSources, SourceFile, check_project};
use tend_engine::inbound::{AfterHandling, ImapUrl, InboundConfig, InboundReader};
use tend_engine::{ChannelDelivery, Engine, EngineSettings, ManualClock};
use tend_store::Store;
use tend_store_sqlite::SqliteStore;
use tend_testkit::Dovecot;
use tokio_util::sync::CancellationToken;

const CONFIG: &str = r#"
public_url = "https://tend.example.com"
[business]
name = "Studio Rossi"
timezone = "Europe/Rome"
hours = "Mon-Sun 08:00-20:00"
[channels.email]
from = "Studio Rossi <hello@studio.example>"
"#;

/// The shortest `inbound_poll` Tend accepts.
const POLL_EVERY: Duration = Duration::from_secs(10);

fn count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A tiny deterministic generator (xorshift), so both modes see the same phases.
struct Phases(u64);

impl Phases {
    /// A fraction in [0, 1).
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

async fn engine(dir: &std::path::Path) -> Arc<Engine> {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("tend.db")).await.unwrap());
    let project = check_project(&ProjectSources {
        config: SourceFile::new("tend.toml", CONFIG),
        processes: Vec::new(),
        templates: Vec::new(),
    })
    .unwrap();
    let delivery = Arc::new(ChannelDelivery::new(&project.config, dir, None, "bench").unwrap());
    let (engine, _) = Engine::start(
        store,
        Arc::new(project),
        Arc::new(ManualClock::new(jiff::Timestamp::now())),
        delivery,
        EngineSettings::default(),
    )
    .await
    .unwrap();
    Arc::new(engine)
}

fn request(token: &str, n: usize) -> Vec<u8> {
    format!(
        "From: Cat <cat@example.com>\r\nTo: hello@studio.example\r\n\
         Subject: unsubscribe {token}\r\nMessage-ID: <bench-{n}@example.com>\r\n\r\n\r\n"
    )
    .into_bytes()
}

/// Latencies (ms) of `n` messages with the reader idling (`idle`) or polling.
async fn measure(idle: bool, n: usize, phases: &mut Phases) -> Vec<f64> {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let server = if idle {
        Dovecot::start(&[])
    } else {
        Dovecot::start_without_idle(&[])
    };
    let reader = InboundReader::new(InboundConfig {
        url: ImapUrl::parse(&server.url()).unwrap(),
        bounce_address: None,
        message_id_domain: "bench.studio.example".into(),
        soft_bounce_limit: 3,
        after: AfterHandling::Flag,
        poll_every: POLL_EVERY,
        trusted: None,
    });
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(reader.run(Arc::clone(&engine), shutdown.clone()));
    let token = engine
        .signer()
        .token(&engine.address_keys().key_bytes("cat@example.com"));
    let mut latencies = Vec::new();
    // Message 0 warms up: the reader's first poll reads it.
    for i in 0..=n {
        // Idling, the phase does not matter; a short pause keeps messages apart.
        let spread = if idle {
            Duration::from_secs(1)
        } else {
            POLL_EVERY
        };
        tokio::time::sleep(spread.mul_f64(phases.next())).await;
        let started = Instant::now();
        server.append(&request(&token, i));
        loop {
            let counts = engine.store().mail_feedback_counts().await.unwrap();
            if counts.unsubscribes as usize > i {
                break;
            }
            assert!(
                started.elapsed() < POLL_EVERY * 3,
                "message {i} was not read: {}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if i > 0 {
            latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    shutdown.cancel();
    running.await.unwrap();
    latencies
}

fn summary(name: &str, mut ms: Vec<f64>) -> f64 {
    ms.sort_by(f64::total_cmp);
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    println!(
        "{name:<28} n={:>3}  min {:>8.1} ms  median {:>8.1} ms  mean {:>8.1} ms  max {:>8.1} ms",
        ms.len(),
        ms[0],
        ms[ms.len() / 2],
        mean,
        ms[ms.len() - 1],
    );
    mean
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        println!("load average at start: {}", load.trim());
        let mut phases = Phases(0x5eed_1d1e_0000_0001);
        let idle = measure(true, count("TEND_BENCH_IDLE_N", 20), &mut phases).await;
        let polled = measure(false, count("TEND_BENCH_POLL_N", 6), &mut phases).await;
        let idle_mean = summary("IDLE", idle);
        let poll_mean = summary("polling every 10 s", polled);
        println!(
            "polling / IDLE (means): {:.0}x",
            poll_mean / idle_mean.max(f64::MIN_POSITIVE)
        );
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        println!("load average at end: {}", load.trim());
    });
}
