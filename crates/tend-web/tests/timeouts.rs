//! Slow, idle and too many clients, and a shutdown while they hold sockets open: the real
//! server on port 0 with short limits, so only the timeouts under test are waited for.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tend_core::StageName;
use tend_store::{Store, TokenScope, tokens};
use tend_store_sqlite::SqliteStore;
use tend_web::{AppState, HttpLimits, IngestRules};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

struct Server {
    address: String,
    write_key: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn start(limits: HttpLimits) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&dir.path().join("tend.db"))
            .await
            .unwrap(),
    );
    let write_key = tokens::generate_token();
    store
        .create_token(
            "site",
            TokenScope::Write,
            &tokens::hash_token(&write_key),
            jiff::Timestamp::now(),
        )
        .await
        .unwrap();
    let rules = IngestRules {
        new_contact_stage: StageName::new("prospect"),
        on_event: HashMap::new(),
    };
    let state = AppState::new(store, rules, json!([])).with_limits(limits);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(tend_web::serve(listener, state, async {
        let _ = stopped.await;
    }));
    Server {
        address,
        write_key,
        stop: Some(stop),
        served,
        _dir: dir,
    }
}

const SHORT: Duration = Duration::from_millis(300);
/// How long a test waits for something that must happen after a short limit, before it
/// calls the server stuck.
const PATIENCE: Duration = Duration::from_secs(10);

fn limits() -> HttpLimits {
    HttpLimits {
        header_timeout: SHORT,
        body_timeout: SHORT,
        max_connections: 64,
        shutdown_grace: SHORT,
    }
}

/// Reads until the server closes the connection; what it sent before closing.
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let reading = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(PATIENCE, reading)
        .await
        .expect("the server closes the connection");
    String::from_utf8_lossy(&seen).into_owned()
}

fn healthz() -> &'static [u8] {
    b"GET /healthz HTTP/1.1\r\nHost: tend\r\n\r\n"
}

#[tokio::test]
async fn slow_headers_and_idle_connections_are_closed() {
    let s = start(limits()).await;
    // Connects and never sends a byte.
    let mut silent = TcpStream::connect(&s.address).await.unwrap();
    // Sends half a request line and stops.
    let mut slow = TcpStream::connect(&s.address).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: te")
        .await
        .unwrap();
    // Makes one request on a keep-alive connection, then idles.
    let mut idle = TcpStream::connect(&s.address).await.unwrap();
    idle.write_all(healthz()).await.unwrap();
    let started = Instant::now();
    for (name, stream) in [
        ("silent", &mut silent),
        ("slow", &mut slow),
        ("idle", &mut idle),
    ] {
        let seen = until_closed(stream).await;
        if name == "idle" {
            assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
        } else {
            assert!(!seen.contains("200 OK"), "{name}: {seen}");
        }
    }
    assert!(
        started.elapsed() >= SHORT,
        "closed only after the header timeout"
    );
}

#[tokio::test]
async fn headers_beyond_16_kb_are_refused_with_431() {
    let s = start(limits()).await;
    let mut stream = TcpStream::connect(&s.address).await.unwrap();
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: tend\r\nX-Padding: {}\r\n\r\n",
        "x".repeat(17 * 1024)
    );
    // The server may stop reading before the whole head is written.
    let _ = stream.write_all(head.as_bytes()).await;
    let seen = until_closed(&mut stream).await;
    assert!(seen.starts_with("HTTP/1.1 431"), "{seen}");
    // Ordinary heads are untouched.
    let mut stream = TcpStream::connect(&s.address).await.unwrap();
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: tend\r\nConnection: close\r\nX-Padding: {}\r\n\r\n",
        "x".repeat(8 * 1024)
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let seen = until_closed(&mut stream).await;
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
}

#[tokio::test]
async fn a_body_sent_too_slowly_gets_408_naming_the_body() {
    let s = start(limits()).await;
    let mut stream = TcpStream::connect(&s.address).await.unwrap();
    let head = format!(
        "POST /v1/track HTTP/1.1\r\nHost: tend\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"userId\"",
        s.write_key
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let seen = until_closed(&mut stream).await;
    assert!(seen.starts_with("HTTP/1.1 408"), "{seen}");
    let body: Value = serde_json::from_str(seen.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["error"]["field"], "body");
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let s = start(HttpLimits {
        max_connections: 2,
        header_timeout: Duration::from_secs(60),
        ..limits()
    })
    .await;
    let held_one = TcpStream::connect(&s.address).await.unwrap();
    let _held_two = TcpStream::connect(&s.address).await.unwrap();
    // The third connection is queued by the kernel, not served.
    let mut third = TcpStream::connect(&s.address).await.unwrap();
    third.write_all(healthz()).await.unwrap();
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(SHORT, third.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "a third connection was served past a cap of 2"
    );
    // One closes: the queued one is served.
    drop(held_one);
    let n = tokio::time::timeout(PATIENCE, third.read(&mut buf))
        .await
        .expect("served once a slot frees")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn shutdown_finishes_the_request_in_progress_and_drops_idle_sockets_within_the_grace() {
    let mut s = start(HttpLimits {
        header_timeout: Duration::from_secs(60),
        body_timeout: Duration::from_secs(60),
        shutdown_grace: Duration::from_secs(1),
        ..limits()
    })
    .await;
    let mut idle = TcpStream::connect(&s.address).await.unwrap();
    let mut half_sent = TcpStream::connect(&s.address).await.unwrap();
    half_sent
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    // A request whose body is still to come when the signal arrives; the server's
    // `100 Continue` says its handler has started reading it.
    let body = json!({"userId": "u1", "event": "Clicked"}).to_string();
    let mut in_flight = TcpStream::connect(&s.address).await.unwrap();
    let head = format!(
        "POST /v1/track HTTP/1.1\r\nHost: tend\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        s.write_key,
        body.len()
    );
    in_flight.write_all(head.as_bytes()).await.unwrap();
    let mut continued = Vec::new();
    let mut buf = [0u8; 256];
    while !continued.ends_with(b"\r\n\r\n") {
        let n = in_flight.read(&mut buf).await.unwrap();
        assert!(n > 0);
        continued.extend_from_slice(&buf[..n]);
    }
    assert!(continued.starts_with(b"HTTP/1.1 100"));

    let signalled = Instant::now();
    s.stop.take().unwrap().send(()).unwrap();
    in_flight.write_all(body.as_bytes()).await.unwrap();
    let answer = until_closed(&mut in_flight).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    until_closed(&mut idle).await;
    until_closed(&mut half_sent).await;
    tokio::time::timeout(PATIENCE, &mut s.served)
        .await
        .expect("serve returns within the grace period")
        .unwrap()
        .unwrap();
    assert!(signalled.elapsed() < PATIENCE);
    // And nothing listens any more.
    assert!(TcpStream::connect(&s.address).await.is_err());
}
