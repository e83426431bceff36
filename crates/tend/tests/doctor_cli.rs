//! `tend doctor` on a business made by `tend init`, against real SMTP servers
//! (aiosmtpd, plain and with STARTTLS): a healthy install passes with exit 0; a
//! database others can read, a relay that does not answer, STARTTLS with a
//! certificate nobody trusts, and links pointing at this machine are each reported
//! with the fix, and any error exits 1.
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
    let out = Command::new(env!("CARGO_BIN_EXE_tend"))
        .arg("doctor")
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
    line(
        &report,
        "ok",
        "database",
        "integrity_check ok, schema version",
    );
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

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
