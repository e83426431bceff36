//! The Processes page's per-step counts on a real database file: touches by state and
//! held reason, offers and answers, conversions credited to the last touch before
//! them, and the query plans that keep those counts to one process's index entries.

use rusqlite::{Connection, params};
use std::collections::BTreeMap;
use tempfile::TempDir;
use tend_core::StageName;
use tend_store::{ConsoleStore, StepCounts};
use tend_store_sqlite::SqliteStore;

/// Rows written straight into the file, in the shape the engine leaves them.
struct Rows {
    conn: Connection,
}

impl Rows {
    fn process(&self, key: &str) -> i64 {
        self.conn
            .execute(
                "INSERT INTO processes (key, steps, loaded_at) VALUES (?1, '[]', 0)",
                params![key],
            )
            .unwrap();
        self.conn.last_insert_rowid()
    }

    /// A contact enrolled in `process`.
    fn contact(&self, process: i64, n: i64) -> (i64, i64) {
        self.conn
            .execute(
                "INSERT INTO contacts (email, stage, created_at, updated_at) \
                 VALUES (?1, 'lead', 0, 0)",
                params![format!("c{n}-{process}@example.com")],
            )
            .unwrap();
        let contact = self.conn.last_insert_rowid();
        self.conn
            .execute(
                "INSERT INTO enrollments (contact_id, process_id, state, step, enrolled_at) \
                 VALUES (?1, ?2, 'active', 0, 0)",
                params![contact, process],
            )
            .unwrap();
        (contact, self.conn.last_insert_rowid())
    }

    /// A touch of `step`, admitted at `admitted` if given.
    #[allow(clippy::too_many_arguments)]
    fn touch(
        &self,
        (contact, enrollment): (i64, i64),
        process: i64,
        step: i64,
        kind: &str,
        state: &str,
        reason: Option<&str>,
        admitted: Option<i64>,
    ) {
        self.conn
            .execute(
                "INSERT INTO touches (enrollment_id, contact_id, process_id, step, kind, channel, \
                 intent, state, due_at, created_at, reason, admitted_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, 'email', 'offer', ?6, 0, 0, ?7, ?8)",
                params![
                    enrollment, contact, process, step, kind, state, reason, admitted
                ],
            )
            .unwrap();
    }

    fn stage(&self, contact: i64, to: &str, at: i64) {
        self.conn
            .execute(
                "INSERT INTO stage_history (contact_id, from_stage, to_stage, reason, at) \
                 VALUES (?1, 'lead', ?2, 'event', ?3)",
                params![contact, to, at],
            )
            .unwrap();
    }
}

fn customer() -> StageName {
    StageName::new("customer")
}

#[tokio::test]
async fn each_step_counts_its_touches_offers_and_the_conversions_it_was_last_before() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("tend.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let rows = Rows {
        conn: Connection::open(&path).unwrap(),
    };
    let inquiry = rows.process("new-inquiry");
    let news = rows.process("news");

    let ann = rows.contact(inquiry, 1);
    let bob = rows.contact(inquiry, 2);
    let cy = rows.contact(inquiry, 3);
    let dee = rows.contact(news, 4);
    // Step 0: sent to all three; step 1: one waiting, two held (capacity, quiet hours),
    // one kept warm instead; step 2: one failed, one skipped, one queued.
    for who in [ann, bob, cy] {
        rows.touch(who, inquiry, 0, "step", "sent", None, Some(100));
    }
    rows.touch(ann, inquiry, 1, "step", "pending", None, None);
    rows.touch(bob, inquiry, 1, "step", "pending", Some("capacity"), None);
    rows.touch(cy, inquiry, 1, "step", "pending", Some("quiet_hours"), None);
    rows.touch(bob, inquiry, 1, "keep_warm", "sent", None, Some(200));
    rows.touch(ann, inquiry, 2, "step", "failed", None, Some(300));
    rows.touch(bob, inquiry, 2, "step", "skipped", None, None);
    rows.touch(cy, inquiry, 2, "step", "queued", None, Some(300));
    // Another process's touches are not this one's.
    rows.touch(dee, news, 0, "step", "sent", None, Some(100));
    rows.touch(dee, news, 1, "step", "pending", Some("capacity"), None);
    rows.conn
        .execute(
            "INSERT INTO offer_stats (process_id, step, sent, responded) VALUES (?1, 1, 40, 9)",
            params![inquiry],
        )
        .unwrap();
    // Ann converts after step 0 (later touches do not count), then again: only her
    // first entry counts. Cy converts after the keep-warm of nobody: after step 2's
    // queued send. Dee converts after the other process's step.
    rows.stage(ann.0, "customer", 150);
    rows.stage(ann.0, "customer", 900);
    rows.stage(cy.0, "customer", 400);
    rows.stage(dee.0, "customer", 150);
    // A move to another stage is no conversion.
    rows.stage(bob.0, "lapsed", 250);

    let counts = store
        .process_step_counts("new-inquiry", &customer())
        .await
        .unwrap();
    let expected = vec![
        StepCounts {
            step: 0,
            sent: 3,
            conversions: 1,
            ..StepCounts::default()
        },
        StepCounts {
            step: 1,
            pending: 1,
            held: BTreeMap::from([("capacity".into(), 1), ("quiet_hours".into(), 1)]),
            keep_warm_sent: 1,
            offers: 40,
            responded: 9,
            ..StepCounts::default()
        },
        StepCounts {
            step: 2,
            in_progress: 1,
            failed: 1,
            skipped: 1,
            conversions: 1,
            ..StepCounts::default()
        },
    ];
    assert_eq!(counts, expected);

    assert_eq!(
        store
            .process_step_counts("never-loaded", &customer())
            .await
            .unwrap(),
        vec![]
    );
}

#[tokio::test]
async fn the_counts_read_one_process_from_indexes_not_every_touch() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("tend.db");
    let _store = SqliteStore::open(&path).await.unwrap();
    let conn = Connection::open(&path).unwrap();
    let plan = |sql: &str| -> String {
        let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        statement
            .query_map([], |row| row.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let touches = plan(
        "SELECT step, kind, state, reason, COUNT(*) FROM touches WHERE process_id = 1 \
         GROUP BY step, kind, state, reason",
    );
    assert!(
        touches.contains("USING COVERING INDEX touches_process_step (process_id=?)"),
        "{touches}"
    );
    let conversions = plan(
        "SELECT contact_id, MIN(at) FROM stage_history WHERE to_stage = 'customer' \
         GROUP BY contact_id",
    );
    assert!(
        conversions.contains("USING COVERING INDEX stage_history_to_stage (to_stage=?)"),
        "{conversions}"
    );
}
