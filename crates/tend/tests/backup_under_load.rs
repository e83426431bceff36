//! `tend backup` while `tend serve` ingests leads without pause and sends their welcome
//! emails to a real SMTP server (aiosmtpd); the snapshot restored into a new business
//! folder and served from there holds every contact and touch that existed when the
//! backup began, and its server sends nothing that was already sent before it.
//!
//! Needs Python 3 with aiosmtpd; fails, never skips, without it.

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tend_testkit::{
    Business, Mailbox, SmtpSink, Studio, require_python_module, run_python, wait_for,
};

fn config() -> String {
    r#"database_url = "sqlite://tend.db"
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
"Order Completed" = "customer"

[channels.email]
from = "Studio Rossi <hello@example.com>"

[dispatch]
retry_after = "1s"
retry_max = "2s"
"#
    .to_owned()
}

/// Leads per ingest batch, the pause between batches (about 50 leads a second, more
/// than a loaded two-core machine sends, so a queue builds), and the most batches the
/// ingest loop sends.
const BATCH: usize = 5;
const PAUSE: Duration = Duration::from_millis(100);
const MAX_BATCHES: usize = 150;

/// What a database holds: contacts (id → email) and touches (id → state), read in one
/// transaction with Python's sqlite3 beside the server.
struct Contents {
    contacts: BTreeMap<i64, String>,
    touches: BTreeMap<i64, String>,
    /// The welcome emails (step 0): due at once, so sent within seconds.
    welcomes: BTreeSet<i64>,
}

fn read(database: &Path) -> Contents {
    const SCRIPT: &str = "\
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
db.execute('BEGIN')
contacts = db.execute('SELECT id, email FROM contacts').fetchall()
touches = db.execute('SELECT id, state FROM touches').fetchall()
welcomes = [r[0] for r in db.execute(\"SELECT id FROM touches WHERE step = 0 AND kind = 'step'\")]
db.execute('COMMIT')
print(json.dumps({'contacts': contacts, 'touches': touches, 'welcomes': welcomes}))
";
    let out = run_python(SCRIPT, &[database.to_str().unwrap()], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pairs = |key: &str| -> BTreeMap<i64, String> {
        value[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                (
                    row[0].as_i64().unwrap(),
                    row[1].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    };
    Contents {
        contacts: pairs("contacts"),
        touches: pairs("touches"),
        welcomes: value["welcomes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id.as_i64().unwrap())
            .collect(),
    }
}

fn leads_batch(first: usize) -> Value {
    let mut calls = Vec::with_capacity(2 * BATCH);
    for i in first..first + BATCH {
        let user = format!("lead-{i}");
        calls.push(json!({
            "type": "identify",
            "userId": user,
            "traits": { "email": format!("lead{i:05}@example.com"), "name": format!("Lead {i}") },
        }));
        calls.push(json!({ "type": "track", "userId": user, "event": "Inquiry Received" }));
    }
    json!({ "batch": calls })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_restores_everything_it_saw_and_resends_nothing() {
    require_python_module("aiosmtpd");
    let studio = Studio::new(env!("CARGO_BIN_EXE_tend"), &config());
    // Slow per message (at most 20 a second over the server's 8 connections, fewer
    // than arrive), so on any machine a queue builds and sends are in flight throughout.
    let sink = SmtpSink::start(&studio.mail_folder(), &["--delay-ms", "400"]);
    let mut server = studio.serve(sink.port);
    let api = Arc::new(studio.api(&server));

    // Ingest without pause until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let batches = Arc::new(AtomicUsize::new(0));
    let ingest = {
        let (api, stop, batches) = (Arc::clone(&api), Arc::clone(&stop), Arc::clone(&batches));
        tokio::spawn(async move {
            for n in 0..MAX_BATCHES {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                api.segment("batch", &leads_batch(n * BATCH)).await;
                batches.store(n + 1, Ordering::Relaxed);
                tokio::time::sleep(PAUSE).await;
            }
        })
    };
    let database = studio.dir().join("tend.db");
    let mut mailbox = Mailbox::new(&studio.mail_folder());
    wait_for(
        "ingest and dispatch under way",
        Duration::from_secs(60),
        async || {
            let (sent, _) = mailbox.counts();
            let done = batches.load(Ordering::Relaxed);
            if done >= 10 && sent >= 10 {
                Ok(())
            } else {
                Err(format!("{done} batches, {sent} emails"))
            }
        },
    )
    .await;

    // What exists when the backup begins, then the backup, both while work goes on.
    let before = read(&database);
    let backup_file = studio.business.scratch().join("under-load.tend");
    let backup = studio
        .business
        .tend(&["backup", backup_file.to_str().unwrap()]);
    assert!(
        backup.status.success(),
        "{}",
        String::from_utf8_lossy(&backup.stderr)
    );
    let batches_during = batches.load(Ordering::Relaxed);
    // A little more work after it, which the snapshot may lack.
    wait_for(
        "ingest going on after the backup",
        Duration::from_secs(60),
        async || {
            let done = batches.load(Ordering::Relaxed);
            if done >= batches_during + 2 || ingest.is_finished() {
                Ok(())
            } else {
                Err(format!("{done} batches"))
            }
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    ingest.await.expect("the ingest loop");
    let status = server.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{}", server.log());
    let sent_first: BTreeSet<i64> = mailbox
        .messages()
        .iter()
        .filter_map(|m| m.touch_id())
        .collect();

    // Restored into a new business folder, served there with its own SMTP server.
    let restored = Business::init(env!("CARGO_BIN_EXE_tend"));
    restored.configure(&config());
    let restore = restored.tend(&["restore", backup_file.to_str().unwrap()]);
    assert!(
        restore.status.success(),
        "{}",
        String::from_utf8_lossy(&restore.stderr)
    );
    let snapshot = read(&restored.dir().join("tend.db"));
    for (id, email) in &before.contacts {
        assert_eq!(
            snapshot.contacts.get(id),
            Some(email),
            "contact {id} ({email}) existed when the backup began"
        );
    }
    for (id, state) in &before.touches {
        let restored_state = snapshot
            .touches
            .get(id)
            .unwrap_or_else(|| panic!("touch {id} ({state}) existed when the backup began"));
        if state == "sent" {
            assert_eq!(
                restored_state, "sent",
                "touch {id} was sent before the backup"
            );
        }
    }
    let sent_in_snapshot: BTreeSet<i64> = snapshot
        .touches
        .iter()
        .filter(|(_, state)| *state == "sent")
        .map(|(id, _)| *id)
        .collect();
    let second_mail = restored.scratch().join("mail");
    let second_sink = SmtpSink::start(&second_mail, &[]);
    let smtp_url = second_sink.url();
    let mut second = restored.serve_with(&[], &[("TEND_SMTP_URL", &smtp_url)]);
    let mut second_box = Mailbox::new(&second_mail);
    // The restored server sends every welcome the snapshot held unsent...
    let unsent = snapshot
        .welcomes
        .iter()
        .filter(|id| !sent_in_snapshot.contains(id))
        .count();
    assert!(unsent > 0, "the snapshot caught no send in progress");
    wait_for(
        "the restored server to send every welcome the snapshot held unsent",
        Duration::from_secs(90),
        async || {
            let now = read(&restored.dir().join("tend.db"));
            let open: Vec<&i64> = now
                .welcomes
                .iter()
                .filter(|id| now.touches[id] != "sent")
                .collect();
            if open.is_empty() {
                Ok(())
            } else {
                let mut states: BTreeMap<&str, usize> = BTreeMap::new();
                for id in &open {
                    *states.entry(now.touches[*id].as_str()).or_default() += 1;
                }
                let log = second.log();
                let tail: Vec<&str> = log.lines().rev().take(8).collect();
                Err(format!(
                    "welcomes not sent yet: {states:?}; {} emails; log: {tail:#?}",
                    second_box.counts().0
                ))
            }
        },
    )
    .await;
    let resent: BTreeSet<i64> = second_box
        .messages()
        .iter()
        .filter_map(|m| m.touch_id())
        .collect();
    // ...and nothing the snapshot records as sent.
    let twice: Vec<&i64> = resent.intersection(&sent_in_snapshot).collect();
    assert!(
        twice.is_empty(),
        "touches sent before the backup were sent again: {twice:?}"
    );
    assert!(!resent.is_empty(), "the restored server sent nothing");
    let status = second.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{}", second.log());
    eprintln!(
        "backup under load: {} contacts and {} touches when it began ({} sent); \
         snapshot {} contacts, {} touches; {} emails before, {} sent by the restored server, \
         none twice",
        before.contacts.len(),
        before.touches.len(),
        before.touches.values().filter(|s| *s == "sent").count(),
        snapshot.contacts.len(),
        snapshot.touches.len(),
        sent_first.len(),
        resent.len()
    );
}
