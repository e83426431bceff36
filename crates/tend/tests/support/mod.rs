//! What the end-to-end dispatch tests run: the real `tend` binary on a business made by
//! `tend init`, and a real SMTP server (aiosmtpd, tend-engine's `smtp_sink.py`) that
//! stores every message it accepts. Every child process is killed when its guard drops,
//! however the test ends.

// Each test binary uses its own part of these helpers.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a child process may take to start listening.
const STARTUP: Duration = Duration::from_secs(20);
/// How often background progress is looked at.
const POLL: Duration = Duration::from_millis(20);

/// The Python interpreter: `TEND_TEST_PYTHON` or `python3`.
fn python() -> String {
    std::env::var("TEND_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Fails the test, loudly, when aiosmtpd cannot be imported: these tests must never
/// pass by skipping.
pub fn require_aiosmtpd() {
    const HINT: &str = "pip install aiosmtpd standardwebhooks icalendar";
    match Command::new(python())
        .args(["-c", "import aiosmtpd"])
        .output()
    {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "the SMTP test server needs the Python module aiosmtpd ({}); run: {HINT}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
                .trim()
        ),
        Err(error) => panic!(
            "cannot run `{}` ({error}); install Python 3, then: {HINT}",
            python()
        ),
    }
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// Polls `check` until it gives a value or `deadline` passes; then panics with
/// `what` and the last state `check` described.
pub async fn wait_for<T>(
    what: &str,
    deadline: Duration,
    mut check: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let end = Instant::now() + deadline;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(state) if Instant::now() >= end => {
                panic!("timed out after {deadline:?} waiting for {what}; last seen: {state}")
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

// --- the SMTP server -------------------------------------------------------------

/// aiosmtpd storing every accepted message in a folder; killed on drop.
pub struct SmtpSink {
    child: Child,
    /// Where it listens.
    pub port: u16,
}

impl SmtpSink {
    /// Starts the sink on `port`, storing into `folder`, holding each reply to DATA
    /// `delay_ms` after storing the message; returns once it accepts connections.
    pub fn start(port: u16, folder: &Path, delay_ms: u32) -> SmtpSink {
        SmtpSink::start_with(port, folder, delay_ms, &[])
    }

    /// As [`SmtpSink::start`], with more of `smtp_sink.py`'s arguments (`--rcpt
    /// ADDRESS=REPLY` refuses a recipient with that reply).
    pub fn start_with(port: u16, folder: &Path, delay_ms: u32, extra: &[&str]) -> SmtpSink {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tend-engine/tests/support/smtp_sink.py");
        let child = Command::new(python())
            .arg(&script)
            .args(["--port", &port.to_string(), "--folder"])
            .arg(folder)
            .args(["--delay-ms", &delay_ms.to_string()])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", script.display()));
        let mut sink = SmtpSink { child, port };
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let end = Instant::now() + STARTUP;
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = sink.child.try_wait() {
                panic!("the SMTP sink exited before listening on {port} ({status})");
            }
            assert!(
                Instant::now() < end,
                "the SMTP sink did not listen on port {port} within {STARTUP:?}"
            );
            std::thread::sleep(POLL);
        }
        sink
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One message as the sink's Python email parser read it.
#[derive(Debug, Clone)]
pub struct Mail {
    /// The `Message-ID` header.
    pub message_id: String,
    /// The envelope recipients.
    pub rcpt_tos: Vec<String>,
    /// The whole summary: `content_type`, `headers` (lower-case name → values), `parts`.
    pub summary: Value,
}

impl Mail {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.summary["headers"][name.to_ascii_lowercase()][0].as_str()
    }

    /// The touch id inside a `<tend.touch.{id}@{domain}>` Message-ID.
    pub fn touch_id(&self) -> Option<i64> {
        let rest = self.message_id.strip_prefix("<tend.touch.")?;
        let (id, domain) = rest.strip_suffix('>')?.split_once('@')?;
        let domain_ok = !domain.is_empty()
            && domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'));
        domain_ok.then(|| id.parse().ok()).flatten()
    }
}

/// The messages a sink stored, read incrementally.
pub struct Mailbox {
    folder: PathBuf,
    read: BTreeMap<u32, Mail>,
}

impl Mailbox {
    /// The mail in `folder` (which need not exist yet).
    pub fn new(folder: &Path) -> Mailbox {
        Mailbox {
            folder: folder.to_owned(),
            read: BTreeMap::new(),
        }
    }

    /// Every message stored so far, in arrival order.
    pub fn messages(&mut self) -> Vec<Mail> {
        let entries = match std::fs::read_dir(&self.folder) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => panic!("reading {}: {e}", self.folder.display()),
        };
        for entry in entries {
            let path = entry.expect("a folder entry").path();
            // The sink renames each file into place whole; `.tmp` files are not done.
            let Some(number) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if self.read.contains_key(&number) {
                continue;
            }
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            let summary: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
            let message_id = summary["headers"]["message-id"][0]
                .as_str()
                .unwrap_or_else(|| panic!("{} has no Message-ID", path.display()))
                .to_owned();
            let rcpt_tos = summary["rcpt_tos"]
                .as_array()
                .map(|a| a.iter().filter_map(|r| r.as_str().map(str::to_owned)))
                .into_iter()
                .flatten()
                .collect();
            self.read.insert(
                number,
                Mail {
                    message_id,
                    rcpt_tos,
                    summary,
                },
            );
        }
        self.read.values().cloned().collect()
    }

    /// How many messages were stored, and how many distinct Message-IDs among them.
    pub fn counts(&mut self) -> (usize, usize) {
        let messages = self.messages();
        let distinct: HashSet<&str> = messages.iter().map(|m| m.message_id.as_str()).collect();
        (messages.len(), distinct.len())
    }
}

// --- the business and its server ---------------------------------------------------

fn tend(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run tend")
}

/// A business from `tend init` with the test's own `tend.toml`, a write key and an
/// admin token, in a temporary folder.
pub struct Business {
    tmp: tempfile::TempDir,
    dir: PathBuf,
    /// The Segment write key.
    pub write_key: String,
    /// A bearer token for `/api/`.
    pub admin: String,
    started: u32,
}

impl Business {
    /// `tend init`, then `config` as `tend.toml` (the starter's processes and templates
    /// stay), checked with `tend check`, then two tokens.
    pub fn new(config: &str) -> Business {
        let tmp = tempfile::tempdir().expect("a temporary folder");
        let dir = tmp.path().join("studio");
        let init = tend(tmp.path(), &["init", "studio"]);
        assert!(
            init.status.success(),
            "tend init: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        std::fs::write(dir.join("tend.toml"), config).expect("write tend.toml");
        let check = tend(&dir, &["check"]);
        assert!(
            check.status.success(),
            "the test's tend.toml does not pass tend check: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let token = |scope: &str| {
            let out = tend(
                &dir,
                &["token", "create", "--name", scope, "--scope", scope],
            );
            assert!(
                out.status.success(),
                "token create: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        let write_key = token("write");
        let admin = token("admin");
        Business {
            tmp,
            dir,
            write_key,
            admin,
            started: 0,
        }
    }

    /// The business's folder, holding `tend.toml` and `tend.db`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A folder for the SMTP sink's messages.
    pub fn mail_folder(&self) -> PathBuf {
        self.tmp.path().join("mail")
    }

    /// Starts `tend serve` on an ephemeral port with `TEND_SMTP_URL` pointing at
    /// `smtp_port` on loopback; returns once it printed its address.
    pub fn serve(&mut self, smtp_port: u16) -> Server {
        self.serve_with(smtp_port, &[])
    }

    /// As [`Business::serve`], with more arguments to `tend serve`.
    pub fn serve_with(&mut self, smtp_port: u16, extra: &[&str]) -> Server {
        self.started += 1;
        let log = self.tmp.path().join(format!("serve-{}.log", self.started));
        let stderr = std::fs::File::create(&log).expect("create the server log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_tend"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .current_dir(&self.dir)
            .env("TEND_SMTP_URL", format!("smtp://127.0.0.1:{smtp_port}"))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start tend serve");
        // A thread reads stdout, so a server that never prints cannot hang the test
        // and the pipe stays open for as long as the server runs.
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines, printed) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            base: String::new(),
            log,
        };
        let line = printed.recv_timeout(STARTUP).unwrap_or_else(|_| {
            panic!(
                "tend serve printed no address within {STARTUP:?}; its log:\n{}",
                server.log()
            )
        });
        server.base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from tend serve: {line:?}"))
            .to_owned();
        server
    }
}

/// A running `tend serve`; killed (SIGKILL) on drop if still running.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    log: PathBuf,
}

impl Server {
    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill_hard(&mut self) {
        self.child.kill().expect("SIGKILL tend serve");
        self.child.wait().expect("reap tend serve");
    }

    /// SIGTERM, then waits for the process to exit, at most `within`.
    pub async fn terminate(&mut self, within: Duration) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let end = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for tend serve") {
                return status;
            }
            assert!(
                Instant::now() < end,
                "tend serve did not exit within {within:?} of SIGTERM; its log:\n{}",
                self.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// An API client for this server.
    pub fn api(&self, business: &Business) -> Api {
        tend_engine::webhook::install_crypto_provider();
        Api {
            client: reqwest::Client::new(),
            base: self.base.clone(),
            write_key: business.write_key.clone(),
            admin: business.admin.clone(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Segment ingest and the admin API of one running server.
pub struct Api {
    /// The HTTP client.
    pub client: reqwest::Client,
    /// The server's base URL.
    pub base: String,
    write_key: String,
    admin: String,
}

/// The email address of test lead `i`.
pub fn lead_email(i: usize) -> String {
    format!("lead{i:04}@example.com")
}

impl Api {
    /// Posts one Segment call (`identify`, `track`, `batch`) with the write key.
    pub async fn segment(&self, call: &str, body: &Value) {
        let response = self
            .client
            .post(format!("{}/v1/{call}", self.base))
            .basic_auth(&self.write_key, Some(""))
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST /v1/{call}: {e}"));
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert_eq!(status, 200, "POST /v1/{call} answered {status}: {text}");
    }

    /// Identifies `count` people and tracks "Inquiry Received" for each in one batch,
    /// so each becomes a lead; person `i` is `lead_email(i)`.
    pub async fn new_leads(&self, count: usize) {
        let mut calls = Vec::with_capacity(2 * count);
        for i in 0..count {
            let user = format!("lead-{i}");
            calls.push(json!({
                "type": "identify",
                "userId": user,
                "traits": { "email": lead_email(i), "name": format!("Lead {i}") },
            }));
            calls.push(json!({ "type": "track", "userId": user, "event": "Inquiry Received" }));
        }
        self.segment("batch", &json!({ "batch": calls })).await;
    }

    /// `GET path` with the admin token, as JSON.
    pub async fn get(&self, path: &str) -> Value {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.admin)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert_eq!(status, 200, "GET {path} answered {status}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}"))
    }

    /// Every contact in `stage`, all pages.
    pub async fn contacts_in(&self, stage: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = self
                .get(&format!(
                    "/api/contacts?stage={stage}&limit=500&cursor={cursor}"
                ))
                .await;
            all.extend(page["contacts"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = next.to_owned(),
                None => return all,
            }
        }
    }

    /// The welcome email touch (step 0) of every contact in `stage`, by email address,
    /// from `GET /api/contacts/{id}`.
    pub async fn welcome_touches(&self, stage: &str) -> BTreeMap<String, Value> {
        let mut touches = BTreeMap::new();
        for contact in self.contacts_in(stage).await {
            let email = contact["email"].as_str().expect("an email").to_owned();
            let detail = self.get(&format!("/api/contacts/{}", contact["id"])).await;
            let welcome = detail["touches"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["step"] == 0 && t["channel"] == "email" && t["kind"] == "step")
                .cloned()
                .unwrap_or(Value::Null);
            touches.insert(email, welcome);
        }
        touches
    }
}
