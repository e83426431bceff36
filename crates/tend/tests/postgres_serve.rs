//! `tend` on PostgreSQL: the real binary with `database_url = "postgres://…"` (or
//! `TEND_DATABASE_URL`) on a fresh database of the local server, a real SMTP server
//! (aiosmtpd) on loopback, leads arriving over Segment's HTTP API; and the SQLite-only
//! commands saying so instead of touching a file.
//!
//! Needs PostgreSQL on 127.0.0.1:5432 (or `TEND_TEST_DATABASE_URL`) and Python 3 with
//! aiosmtpd; the tests fail, never skip, without them.

use serde_json::json;
use std::process::Command;
use std::time::Duration;
use tend_testkit::{Mailbox, ScratchDatabase, SmtpSink, Studio, wait_for};

/// A business on `database_url` that may email any lead at any hour.
fn config(database_url: &str) -> String {
    format!(
        r#"database_url = "{database_url}"
public_url = "https://tend.example.com"

[business]
name = "Studio Rossi"
timezone = "Europe/Rome"
hours = "Mon-Sun 00:00-24:00"

[limits]
quiet_hours = "none"

[stages]
order = ["prospect", "lead", "customer", "loyal", "lapsed"]

[stages.on_event]
"Inquiry Received" = "lead"

[channels.email]
from = "Studio Rossi <hello@example.com>"
"#
    )
}

#[tokio::test]
async fn serve_on_a_fresh_postgres_database_sends_a_new_leads_welcome() {
    let database = ScratchDatabase::fresh().await;
    let business = Studio::new(env!("CARGO_BIN_EXE_tend"), &config(database.url()));
    let sink = SmtpSink::start(&business.mail_folder(), &[]);
    let mut mailbox = Mailbox::new(&business.mail_folder());
    let mut server = business.serve(sink.port);
    let api = business.api(&server);

    api.segment(
        "identify",
        &json!({ "userId": "u-ann", "traits": { "email": "ann@example.com", "name": "Ann Smith" } }),
    )
    .await;
    api.segment(
        "track",
        &json!({ "userId": "u-ann", "event": "Inquiry Received" }),
    )
    .await;
    let mail = wait_for(
        "the welcome email at the SMTP server",
        Duration::from_secs(10),
        async || match mailbox.messages().as_slice() {
            [] => Err("no message yet".into()),
            [mail] => Ok(mail.clone()),
            more => Err(format!("{} messages, expected one", more.len())),
        },
    )
    .await;
    assert_eq!(mail.rcpt_tos, ["ann@example.com"]);
    assert_eq!(
        mail.header("Subject"),
        Some("Thanks for getting in touch, Ann")
    );
    let touch = mail
        .touch_id()
        .expect("a Message-ID derived from its touch");

    // It all lives in PostgreSQL: the contact, the sent touch, and no SQLite file.
    let sent = wait_for(
        "the welcome touch recorded as sent",
        Duration::from_secs(10),
        async || {
            let sent = database
                .query_i64(&format!(
                    "SELECT COUNT(*) FROM touches WHERE id = {touch} AND state = 'sent'"
                ))
                .await;
            if sent == 1 {
                Ok(sent)
            } else {
                Err("not yet".to_owned())
            }
        },
    )
    .await;
    assert_eq!(sent, 1);
    assert_eq!(
        database
            .query_i64("SELECT COUNT(*) FROM contacts WHERE email = 'ann@example.com'")
            .await,
        1
    );
    assert!(
        !business.dir().join("tend.db").exists(),
        "no SQLite file beside tend.toml"
    );
    server.terminate(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn tend_database_url_overrides_tend_toml_and_sqlite_only_commands_refuse_postgres() {
    let database = ScratchDatabase::fresh().await;
    let password_url = database
        .url()
        .replacen("postgres://", "postgres://postgres:hunter2@", 1);
    // tend.toml says SQLite; the environment moves every command to PostgreSQL.
    let business = Studio::new(env!("CARGO_BIN_EXE_tend"), &config("sqlite://tend.db"));
    let tend = |args: &[&str], url: &str| {
        Command::new(env!("CARGO_BIN_EXE_tend"))
            .args(args)
            .current_dir(business.dir())
            .env("TEND_DATABASE_URL", url)
            .output()
            .expect("run tend")
    };
    let created = tend(
        &["token", "create", "--name", "crm", "--scope", "write"],
        database.url(),
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    assert_eq!(
        database
            .query_i64("SELECT COUNT(*) FROM api_tokens WHERE name = 'crm'")
            .await,
        1,
        "the token went to PostgreSQL"
    );

    for args in [
        &["backup", "copy.db"][..],
        &["restore", "tend.toml"][..],
        &["forecast"][..],
    ] {
        let out = tend(args, &password_url);
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "tend {args:?}: {said}");
        assert!(
            said.contains("is for a SQLite database") && said.contains("PostgreSQL"),
            "tend {args:?} says it does not apply: {said}"
        );
        assert!(!said.contains("hunter2"), "no password in: {said}");
    }
    assert!(!business.dir().join("copy.db").exists());

    let doctor = tend(&["doctor"], database.url());
    let said = String::from_utf8_lossy(&doctor.stdout);
    let line = said
        .lines()
        .find(|l| l.contains("database"))
        .unwrap_or_else(|| panic!("no database line in: {said}"));
    assert!(
        line.contains("PostgreSQL, schema version") && line.contains("secrets present"),
        "{line}"
    );

    let bad = tend(&["token", "list"], "mysql://root:hunter2@db/tend");
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(
        said.contains("TEND_DATABASE_URL") && said.contains("mysql://root:***@db/tend"),
        "{said}"
    );
}
