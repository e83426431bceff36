//! `tend doctor` on a business made by `tend init`, against real SMTP servers
//! (aiosmtpd, plain and with STARTTLS): a healthy install passes with exit 0; a
//! database others can read, a relay that does not answer, STARTTLS with a
//! certificate nobody trusts, and links pointing at this machine are each reported
//! with the fix, and any error exits 1. `public_url/healthz` is fetched from real
//! servers (this business's, another business's, a plain HTTP server, a closed port),
//! and the database's schema version is compared with the binary's on a real file.
//!
//! Needs Python 3 with aiosmtpd; fails, never skips, without it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tend_testkit::{ClosedPort, SmtpSink, Studio, peer_file, require_python_module};

fn config(public_url: &str) -> String {
    format!(
        r#"database_url = "sqlite://tend.db"
public_url = "{public_url}"

[business]
name = "Studio Rossi"
timezone = "Europe/Rome"
hours = "Mon-Fri 09:00-18:00"

[stages]
order = ["prospect", "lead", "customer", "loyal", "lapsed"]

[channels.email]
from = "Studio Rossi <hello@example.com>"
"#
    )
}

fn doctor(dir: &Path, smtp_url: &str) -> (Output, String) {
    doctor_with(dir, smtp_url, &["--offline"])
}

/// `tend doctor ARGS…` in `dir` with `smtp_url` as TEND_SMTP_URL (empty: the outbox).
fn doctor_with(dir: &Path, smtp_url: &str, args: &[&str]) -> (Output, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tend"))
        .arg("doctor")
        .args(args)
        .current_dir(dir)
        .env("TEND_SMTP_URL", smtp_url)
        .output()
        .expect("run tend doctor");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, text)
}

/// The report line of `level` and `check` that contains `needle`, and the fix below it.
fn line<'a>(report: &'a str, level: &str, check: &str, needle: &str) -> (&'a str, &'a str) {
    let lines: Vec<&str> = report.lines().collect();
    let at = lines
        .iter()
        .position(|l| {
            let mut words = l.split_whitespace();
            words.next() == Some(level) && words.next() == Some(check) && l.contains(needle)
        })
        .unwrap_or_else(|| panic!("no `{level} {check}` line with {needle:?} in:\n{report}"));
    let fix = lines
        .get(at + 1)
        .map(|l| l.trim())
        .filter(|l| l.starts_with("fix: "))
        .unwrap_or("");
    (lines[at], fix)
}

fn tls_file(name: &str) -> PathBuf {
    peer_file(&format!("tls/{name}"))
}

#[test]
fn a_healthy_business_passes_and_each_problem_is_named_with_its_fix() {
    require_python_module("aiosmtpd");
    let business = Studio::new(
        env!("CARGO_BIN_EXE_tend"),
        &config("https://tend.example.com"),
    );
    let dir = business.dir();
    let sink = SmtpSink::start(&business.mail_folder(), &[]);
    let relay = sink.url();

    let (out, report) = doctor(dir, &relay);
    assert!(out.status.success(), "{report}");
    line(&report, "ok", "config", "valid");
    line(&report, "ok", "database", "integrity_check ok");
    line(&report, "ok", "schema", "the same as this binary's");
    line(&report, "ok", "healthz", "not fetched (--offline)");
    line(&report, "ok", "database", "write-ahead log");
    let (smtp, _) = line(&report, "ok", "smtp", "connected, EHLO accepted");
    assert!(smtp.contains(&format!("127.0.0.1:{}", sink.port)), "{smtp}");
    line(&report, "ok", "public_url", "a reverse proxy must forward");
    line(&report, "ok", "permissions", "tend.db is owner-only (600)");
    assert!(report.contains("0 warnings, 0 errors"), "{report}");

    // A database others can read, and a relay nobody answers at: exit 1.
    let database = dir.join("tend.db");
    set_mode(&database, 0o644);
    let closed_port = ClosedPort::new();
    let closed = format!("smtp://127.0.0.1:{}", closed_port.port);
    let (out, report) = doctor(dir, &closed);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let (_, fix) = line(&report, "error", "permissions", "tend.db is 644");
    assert_eq!(
        fix,
        format!(
            "fix: chmod 600 {}",
            Path::new(".").join("tend.db").display()
        )
    );
    let (_, fix) = line(&report, "error", "smtp", "cannot connect");
    assert!(fix.contains("port"), "{fix}");
    assert!(report.contains("errors"), "{report}");
    set_mode(&database, 0o600);

    // STARTTLS: a relay offering it to a URL that does not ask for it is a warning...
    let (cert, key) = (tls_file("server.pem"), tls_file("server.key"));
    let tls_sink = SmtpSink::start(
        &business.mail_folder(),
        &[
            "--tls",
            "starttls",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let (out, report) = doctor(dir, &format!("smtp://localhost:{}", tls_sink.port));
    assert!(out.status.success(), "{report}");
    let (_, fix) = line(&report, "warning", "smtp", "offers STARTTLS");
    assert_eq!(fix, "fix: add ?tls=required to the SMTP URL");
    // ...and with tls=required the handshake runs and the test CA is not trusted.
    let (out, report) = doctor(
        dir,
        &format!("smtp://localhost:{}?tls=required", tls_sink.port),
    );
    assert_eq!(out.status.code(), Some(1), "{report}");
    let (error, _) = line(&report, "error", "smtp", "refused a trial session");
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    // A plain relay asked for STARTTLS says it cannot.
    let (out, report) = doctor(dir, &format!("{relay}?tls=required"));
    assert_eq!(out.status.code(), Some(1), "{report}");
    line(&report, "error", "smtp", "refused a trial session");
}

#[test]
fn links_to_this_machine_and_a_broken_configuration_are_reported() {
    let business = Studio::new(env!("CARGO_BIN_EXE_tend"), &config("http://127.0.0.1:7070"));
    let dir = business.dir();
    let (out, report) = doctor(dir, "");
    assert!(out.status.success(), "{report}");
    line(&report, "warning", "public_url", "will not reach it");
    line(&report, "warning", "smtp", "outbox");

    std::fs::write(dir.join("tend.toml"), "database_url = 3\n").unwrap();
    let (out, report) = doctor(dir, "");
    assert_eq!(out.status.code(), Some(1), "{report}");
    let (_, fix) = line(&report, "error", "config", "errors in the configuration");
    assert!(fix.contains("tend check"), "{fix}");
}

/// `public_url`'s `/healthz` is fetched: this business's server, another business's, a
/// web server that is not Tend and a port nobody listens on each get their verdict.
#[test]
fn public_url_is_fetched_and_must_reach_this_installation() {
    let business = Studio::new(
        env!("CARGO_BIN_EXE_tend"),
        &config("https://tend.example.com"),
    );
    let dir = business.dir();
    let ours = business.business.serve();
    let point_at = |url: &str| {
        std::fs::write(dir.join("tend.toml"), config(url)).unwrap();
    };

    point_at(&ours.base);
    let (out, report) = doctor_with(dir, "", &[]);
    assert!(out.status.success(), "{report}");
    line(&report, "ok", "healthz", "answers from this installation");
    // The running server's address comes from its lock file, not --listen's default.
    line(&report, "warning", "public_url", ours.address());

    let other = Studio::new(
        env!("CARGO_BIN_EXE_tend"),
        &config("https://tend.example.com"),
    );
    let theirs = other.business.serve();
    point_at(&theirs.base);
    let (out, report) = doctor_with(dir, "", &[]);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let (_, fix) = line(&report, "error", "healthz", "a different Tend installation");
    assert!(fix.contains("point public_url"), "{fix}");

    let not_tend = NotTend::start();
    point_at(&not_tend.base);
    let (out, report) = doctor_with(dir, "", &[]);
    assert!(out.status.success(), "{report}");
    line(&report, "warning", "healthz", "answered 404 Not Found");

    let closed = ClosedPort::new();
    point_at(&format!("http://127.0.0.1:{}", closed.port));
    let (out, report) = doctor_with(dir, "", &[]);
    assert!(out.status.success(), "{report}");
    let (_, fix) = line(&report, "warning", "healthz", "did not answer");
    assert!(fix.contains("firewall"), "{fix}");

    // --offline reaches nothing: the closed port is not even tried.
    let (_, report) = doctor_with(dir, "", &["--offline"]);
    line(&report, "ok", "healthz", "not fetched (--offline)");
}

/// A schema older than the binary's is a warning (`tend serve` migrates it); a newer one,
/// written by a later release, is an error naming the fix. (PostgreSQL's counterpart is
/// in `postgres_serve.rs`.)
#[test]
fn the_schema_version_is_compared_with_the_binarys() {
    let business = Studio::new(
        env!("CARGO_BIN_EXE_tend"),
        &config("https://tend.example.com"),
    );
    let dir = business.dir();
    let database = dir.join("tend.db");
    let current = user_version(&database, None);
    assert!(current > 1, "tend init leaves a migrated database");

    user_version(&database, Some(current - 1));
    let (out, report) = doctor(dir, "");
    assert!(out.status.success(), "{report}");
    let (warning, fix) = line(&report, "warning", "schema", "will migrate it");
    assert!(
        warning.contains(&format!("schema version {}", current - 1))
            && warning.contains(&format!("this binary's is {current}")),
        "{warning}"
    );
    assert!(fix.contains("tend backup"), "{fix}");

    user_version(&database, Some(current + 1));
    let (out, report) = doctor(dir, "");
    assert_eq!(out.status.code(), Some(1), "{report}");
    let (error, fix) = line(&report, "error", "schema", "newer than this binary's");
    assert!(error.contains(&format!("{}", current + 1)), "{error}");
    assert!(fix.contains("never downgrade"), "{fix}");

    user_version(&database, Some(current));
    let (out, report) = doctor(dir, "");
    assert!(out.status.success(), "{report}");
    line(&report, "ok", "schema", "the same as this binary's");
}

/// The database's `user_version`, set first to `set` when given.
fn user_version(database: &Path, set: Option<i64>) -> i64 {
    let conn = rusqlite::Connection::open(database).unwrap();
    if let Some(version) = set {
        conn.pragma_update(None, "user_version", version).unwrap();
    }
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap()
}

/// A web server that answers every request 404, as a proxy pointing elsewhere would.
struct NotTend {
    base: String,
}

impl NotTend {
    fn start() -> NotTend {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let _ = stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\n\
                      content-length: 9\r\nconnection: close\r\n\r\nnot found",
                );
            }
        });
        NotTend { base }
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
