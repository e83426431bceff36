//! `tend migrate --to postgres://…` on a business that has run: welcome emails sent,
//! more waiting in the outbox through an SMTP outage, later steps planned, a contact
//! erased. Every table arrives with its count, ids and secrets; `tend serve` on
//! PostgreSQL then sends the waiting emails once each and nothing already sent; a
//! target that holds anything is refused with nothing written, and so is a move while a
//! server runs on the SQLite file.
//!
//! Needs Python 3 with aiosmtpd and PostgreSQL on 127.0.0.1:5432 (or the server
//! `TEND_TEST_DATABASE_URL` names); fails, never skips, without them.

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;
use tend_store::transfer::skipped_because;
use tend_testkit::{Mailbox, ScratchDatabase, SmtpSink, Studio, run_python, wait_for};
use tokio_postgres::NoTls;

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

/// Leads `first..first + count` as one Segment batch: identify, then the inquiry that
/// makes each a lead and enrolls them.
fn leads(first: usize, count: usize) -> Value {
    let mut calls = Vec::new();
    for i in first..first + count {
        let user = format!("lead-{i}");
        calls.push(json!({
            "type": "identify",
            "userId": user,
            "traits": { "email": format!("lead{i:03}@example.com"), "name": format!("Lead {i}") },
        }));
        calls.push(json!({ "type": "track", "userId": user, "event": "Inquiry Received" }));
    }
    json!({ "batch": calls })
}

/// Rows per table of the SQLite file that `tend migrate` copies (the tables it skips
/// left out), read beside any server with Python's sqlite3.
fn sqlite_counts(database: &Path) -> BTreeMap<String, i64> {
    const SCRIPT: &str = "\
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=30)
names = [r[0] for r in db.execute(\"SELECT name FROM sqlite_schema WHERE type = 'table' \
AND name NOT IN ('sqlite_sequence', 'sqlite_stat1', '_sqlx_migrations', 'webhook_tokens') \
AND name NOT LIKE 'contacts_search%'\")]
print(json.dumps({n: db.execute(f'SELECT COUNT(*) FROM \"{n}\"').fetchone()[0] for n in names}))
";
    query_sqlite(SCRIPT, database)
        .into_iter()
        .filter(|(table, _)| skipped_because(table).is_none())
        .map(|(table, rows)| (table, rows.as_i64().unwrap()))
        .collect()
}

/// Email touches of the SQLite file waiting in the outbox after a failed attempt, by id.
fn queued_after_a_failure(database: &Path) -> BTreeSet<i64> {
    const SCRIPT: &str = "\
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=30)
print(json.dumps({str(r[0]): 1 for r in db.execute(\"SELECT id FROM touches WHERE \
channel = 'email' AND state = 'queued' AND attempts > 0 AND last_error IS NOT NULL\")}))
";
    query_sqlite(SCRIPT, database)
        .keys()
        .map(|id| id.parse().unwrap())
        .collect()
}

/// What `script` prints about the SQLite file: one JSON object.
fn query_sqlite(script: &str, database: &Path) -> BTreeMap<String, Value> {
    let out = run_python(script, &[database.to_str().unwrap()], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// Rows per Tend table of the PostgreSQL database that `tend migrate` fills.
async fn postgres_counts(client: &tokio_postgres::Client) -> BTreeMap<String, i64> {
    let tables = client
        .query(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
             AND table_name NOT IN ('tend_schema_migrations', 'webhook_tokens')",
            &[],
        )
        .await
        .unwrap();
    let mut counts = BTreeMap::new();
    for row in tables {
        let table: String = row.get(0);
        if skipped_because(&table).is_some() {
            continue;
        }
        let count: i64 = client
            .query_one(&format!("SELECT COUNT(*) FROM \"{table}\""), &[])
            .await
            .unwrap()
            .get(0);
        counts.insert(table, count);
    }
    counts
}

async fn engine_value(client: &tokio_postgres::Client, key: &str) -> Option<String> {
    client
        .query_opt("SELECT value FROM engine_state WHERE key = $1", &[&key])
        .await
        .unwrap()
        .map(|row| row.get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_business_that_has_run_moves_whole_sends_what_waited_once_and_a_filled_target_is_refused()
{
    let studio = Studio::new(env!("CARGO_BIN_EXE_tend"), &config());
    let database = studio.dir().join("tend.db");
    let target = ScratchDatabase::fresh().await;

    // Four leads whose welcome emails are sent.
    let sent_folder = studio.business.scratch().join("sent");
    let sink = SmtpSink::start(&sent_folder, &[]);
    let mut server = studio.serve(sink.port);
    let api = studio.api(&server);
    api.segment("batch", &leads(0, 4)).await;
    let mut sent = Mailbox::new(&sent_folder);
    wait_for(
        "the first four welcome emails",
        Duration::from_secs(60),
        async || match sent.counts() {
            (4, _) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    assert!(server.terminate(Duration::from_secs(30)).await.success());
    drop(sink);

    // Four more whose welcomes wait in the outbox: the relay refuses connections.
    let outage_folder = studio.business.scratch().join("after-move");
    let outage = SmtpSink::refusing(&outage_folder, &[]);
    let mut server = studio.serve(outage.port);
    let api = studio.api(&server);
    api.segment("batch", &leads(4, 4)).await;
    wait_for(
        "four welcomes queued after a failed attempt",
        Duration::from_secs(60),
        async || match queued_after_a_failure(&database).len() {
            4 => Ok(()),
            n => Err(format!("{n} queued")),
        },
    )
    .await;

    // While that server runs, the move is refused and PostgreSQL is not touched.
    let refused = studio.business.tend(&["migrate", "--to", target.url()]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("already running") && stderr.contains("nothing was written"),
        "{stderr}"
    );
    let client = connect(target.url()).await;
    assert!(
        postgres_counts(&client).await.is_empty(),
        "no schema was made"
    );

    // The newest contact is erased: its id must never be handed out again.
    let newest = api
        .contacts_in("lead")
        .await
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .max()
        .unwrap();
    let erase = api
        .client
        .delete(format!("{}/api/contacts/{newest}", api.base))
        .bearer_auth(&studio.admin)
        .send()
        .await
        .unwrap();
    assert!(erase.status().is_success(), "{}", erase.status());
    assert!(server.terminate(Duration::from_secs(30)).await.success());
    let queued = queued_after_a_failure(&database);
    assert_eq!(queued.len(), 3, "the erased lead's welcome went with them");
    let before = sqlite_counts(&database);
    assert!(before["touches"] > 8, "later steps are planned: {before:?}");

    let moved = studio.business.tend(&["migrate", "--to", target.url()]);
    let stdout = String::from_utf8_lossy(&moved.stdout);
    assert!(
        moved.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&moved.stderr)
    );
    assert!(
        stdout.contains(&format!("database_url = \"{}\"", target.url())),
        "{stdout}"
    );
    for (table, rows) in &before {
        assert!(
            stdout
                .lines()
                .any(|l| l.split_whitespace().eq([table.as_str(), &rows.to_string()])),
            "{table} {rows} in\n{stdout}"
        );
    }

    // The SQLite file is marked as moved: serving it, or any command on it, is refused
    // with where the business went, so its pending touches cannot go out a second time.
    for command in [&["token", "list"][..], &["serve"][..]] {
        let refused = studio.business.tend(command);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(1), "{command:?}: {stderr}");
        assert!(
            stderr.contains(&format!("tend.db was moved to {}", target.url())),
            "{command:?}: {stderr}"
        );
        assert!(stderr.contains("tend migrate --reclaim"), "{stderr}");
    }
    let doctor = studio.business.tend(&["doctor", "--offline"]);
    let report = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        report.contains(&format!("was moved to {}", target.url())),
        "{report}"
    );

    // Every table arrived with its rows, the queued sends and their ids among them.
    assert_eq!(postgres_counts(&client).await, before);
    let queued_here: BTreeSet<i64> = client
        .query(
            "SELECT id FROM touches WHERE channel = 'email' AND state = 'queued' \
             AND attempts > 0 AND last_error IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(queued_here, queued);
    let next_contact: i64 = client
        .query_one(
            "SELECT nextval(pg_get_serial_sequence('contacts', 'id'))",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        next_contact > newest,
        "{next_contact} reuses the erased {newest}"
    );
    let sqlite_state = query_sqlite(
        "import json, sqlite3, sys\n\
         db = sqlite3.connect(sys.argv[1])\n\
         print(json.dumps(dict(db.execute(\"SELECT key, value FROM engine_state\"))))\n",
        &database,
    );
    for key in ["unsubscribe_key", "instance_id"] {
        assert_eq!(
            engine_value(&client, key).await.as_deref(),
            sqlite_state[key].as_str(),
            "{key}"
        );
    }

    // Served from PostgreSQL, with the relay back: the three waiting welcomes go out,
    // once each, with the Message-IDs they had; nothing sent before goes again.
    let first_sent: BTreeSet<i64> = sent
        .messages()
        .iter()
        .filter_map(|m| m.touch_id())
        .collect();
    assert_eq!(first_sent.len(), 4);
    let sqlite_config = config();
    studio.business.configure(&sqlite_config.replace(
        "database_url = \"sqlite://tend.db\"",
        &format!("database_url = \"{}\"", target.url()),
    ));
    let mut outage = outage;
    outage.listen();
    let mut server = studio.serve(outage.port);
    let mut after = Mailbox::new(&outage_folder);
    wait_for(
        "the three waiting welcomes, from PostgreSQL",
        Duration::from_secs(60),
        async || match after.counts() {
            (3, _) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    // A new lead gets an id the erased one never had.
    let api = studio.api(&server);
    api.segment("batch", &leads(100, 1)).await;
    wait_for(
        "the new lead's welcome",
        Duration::from_secs(60),
        async || match after.counts() {
            (4, _) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    let new_lead = api.contacts_in("lead").await;
    let new_id = new_lead
        .iter()
        .find(|c| c["email"] == "lead100@example.com")
        .map(|c| c["id"].as_i64().unwrap())
        .expect("the new lead");
    assert!(new_id > newest, "{new_id} after the erased {newest}");
    // Whatever was in flight finishes before the server exits; then the count is final.
    assert!(
        server.terminate(Duration::from_secs(30)).await.success(),
        "{}",
        server.log()
    );
    let resent: Vec<i64> = after
        .messages()
        .iter()
        .filter_map(|m| m.touch_id())
        .collect();
    assert_eq!(resent.len(), 4, "{resent:?}");
    let resent_set: BTreeSet<i64> = resent.iter().copied().collect();
    assert_eq!(resent_set.len(), 4, "each once: {resent:?}");
    assert!(queued.is_subset(&resent_set), "{queued:?} in {resent:?}");
    assert!(
        resent_set.is_disjoint(&first_sent),
        "nothing sent before: {resent:?}"
    );
    let before = postgres_counts(&client).await;

    // A business already on PostgreSQL has nothing to move.
    let moved_already = studio.business.tend(&["migrate", "--to", target.url()]);
    let stderr = String::from_utf8_lossy(&moved_already.stderr);
    assert_eq!(moved_already.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is on PostgreSQL"), "{stderr}");

    // A second move from the SQLite file is refused while it is marked as moved; once
    // taken back, a move into the same database is refused for its rows. Neither
    // changes anything.
    studio.business.configure(&sqlite_config);
    let marked = studio.business.tend(&["migrate", "--to", target.url()]);
    let stderr = String::from_utf8_lossy(&marked.stderr);
    assert_eq!(marked.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("was moved to"), "{stderr}");
    assert!(stderr.contains("already"), "{stderr}");
    let reclaimed = studio.business.tend(&["migrate", "--reclaim"]);
    let stdout = String::from_utf8_lossy(&reclaimed.stdout);
    assert!(reclaimed.status.success(), "{stdout}");
    assert!(stdout.contains("no longer marked"), "{stdout}");
    let again = studio.business.tend(&["migrate", "--to", target.url()]);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("`contacts` has {} row(s)", before["contacts"])),
        "{stderr}"
    );
    assert_eq!(postgres_counts(&client).await, before);

    // A database holding one row, in the last table the move fills, is refused before
    // anything is written: its own secrets stay, and no contact arrives.
    let other = ScratchDatabase::fresh().await;
    drop(
        tend_store_postgres::PostgresStore::open(other.url())
            .await
            .unwrap(),
    );
    let other_client = connect(other.url()).await;
    other_client
        .batch_execute(
            "INSERT INTO mail_feedback (source, kind, address_key, created_at) \
             VALUES ('imap:<x@example.com>', 'complaint', 'k', 0)",
        )
        .await
        .unwrap();
    let own_secret = engine_value(&other_client, "unsubscribe_key").await;
    let refused = studio.business.tend(&["migrate", "--to", other.url()]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("`mail_feedback` has 1 row(s)"), "{stderr}");
    let after = postgres_counts(&other_client).await;
    assert_eq!(after["contacts"], 0, "{after:?}");
    assert_eq!(after["engine_state"], 2, "{after:?}");
    assert_eq!(
        engine_value(&other_client, "unsubscribe_key").await,
        own_secret
    );
}
