//! Tend's test kit: the real peers Tend's tests talk to, started once per test and
//! stopped however the test ends. An SMTP server (aiosmtpd) and a Standard Webhooks
//! receiver in Python, `tend serve` over a business in a temporary folder, a scratch
//! PostgreSQL database per test, a port that refuses connections, a headless Chromium,
//! an IMAP server (Dovecot), and (feature `web`) Tend's web server in-process on a
//! manual clock.
//!
//! Every server binds port 0 and reports the port it got, so no two tests can ever be
//! handed the same port. A dev-dependency only; never published.

pub mod api;
pub mod browser;
pub mod browser_checks;
pub mod cpu;
pub mod dovecot;
pub mod mailbox;
pub mod peers;
pub mod postgres;
pub mod process;
pub mod python;
pub mod serve;
#[cfg(feature = "web")]
pub mod web;
#[cfg(feature = "web")]
pub mod web_console;

pub use api::Api;
pub use browser::{Browser, Page};
pub use dovecot::{Dovecot, TestCertificates};
pub use mailbox::{Mail, Mailbox};
pub use peers::{ClosedPort, SmtpSink, WebhookReceiver};
pub use postgres::ScratchDatabase;
pub use python::{dkim_verify, python, require_python_module, run_python, run_python_in};
pub use serve::{Business, Serve, Studio};

use std::time::{Duration, Instant};

/// How long a child process may take to start listening.
pub const STARTUP: Duration = Duration::from_secs(20);
/// How often background progress is looked at.
pub const POLL: Duration = Duration::from_millis(20);

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

/// A file shipped with the kit, under `peers/` (scripts, test-only TLS material).
pub fn peer_file(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("peers")
        .join(name)
}
