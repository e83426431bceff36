//! The engine's hottest statements read the index made for each. A database has no
//! `ANALYZE` statistics (the simulator's scratch copies never do), and connections ask
//! for plans that never depend on bound values, so SQLite picks by the schema alone; a
//! new index can quietly take a statement over, as `touches_admitted` once took the sum
//! of offers in flight and cost a fifth of a simulated year. The statements below are
//! the engine's, as `src/engine` writes them.

use rusqlite::Connection;
use rusqlite::config::DbConfig;
use tempfile::TempDir;
use tend_store_sqlite::SqliteStore;

/// The plan of `sql` on a connection configured as the store's, one line per step.
fn plan(conn: &Connection, sql: &str) -> String {
    let mut statement = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap_or_else(|e| panic!("{e}: {sql}"));
    // Unbound parameters read as NULL; the plan cannot depend on them anyway.
    let unbound = vec![rusqlite::types::Null; statement.parameter_count()];
    statement
        .query_map(rusqlite::params_from_iter(unbound), |row| {
            row.get::<_, String>(3)
        })
        .unwrap()
        .map(Result::unwrap)
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn the_engines_hot_statements_read_the_index_made_for_each() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("tend.db");
    drop(SqliteStore::open(&path).await.unwrap());
    let conn = Connection::open(&path).unwrap();
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .unwrap();
    let mut wrong = Vec::new();
    let mut expect = |what: &str, sql: &str, wanted: &[&str]| {
        let plan = plan(&conn, sql);
        if !wanted.iter().all(|step| plan.contains(step)) {
            wrong.push(format!("{what}: wanted {wanted:?}, planned\n{plan}"));
        }
    };

    expect(
        "due touches",
        "SELECT t.id, t.contact_id, t.process_id, t.step, t.kind, t.channel, t.intent, \
         t.due_at, e.enrolled_at, e.state AS enrollment_state \
         FROM touches t JOIN enrollments e ON e.id = t.enrollment_id \
         WHERE t.state = 'pending' AND t.due_at <= ?1 ORDER BY t.due_at, t.id LIMIT ?2",
        &[
            "SEARCH t USING INDEX touches_due (due_at<?)",
            "SEARCH e USING INTEGER PRIMARY KEY (rowid=?)",
        ],
    );
    expect(
        "the next due touch",
        "SELECT MIN(due_at) AS next FROM touches WHERE state = 'pending'",
        &["touches_due"],
    );
    expect(
        "a contact's recent touches",
        "SELECT admitted_at, channel FROM touches WHERE contact_id = ?1 AND admitted_at > ?2",
        &[
            "SEARCH touches USING COVERING INDEX touches_contact_admitted \
             (contact_id=? AND admitted_at>?)",
        ],
    );
    expect(
        "expected work of offers in flight",
        "SELECT COALESCE(SUM(COALESCE(probability, 0) \
         * MIN(1.0, CAST(admitted_at - ?1 AS REAL) / ?2)), 0.0) AS expected \
         FROM touches INDEXED BY touches_offers_in_flight WHERE intent = 'offer' \
         AND responded_at IS NULL AND admitted_at IS NOT NULL AND admitted_at >= ?1",
        &["SEARCH touches USING COVERING INDEX touches_offers_in_flight (admitted_at>?)"],
    );
    expect(
        "offers in flight by step and age (`response_delay` set)",
        "SELECT admitted_at, probability, process_id, step \
         FROM touches INDEXED BY touches_offers_in_flight \
         WHERE intent = 'offer' AND responded_at IS NULL \
         AND admitted_at IS NOT NULL AND admitted_at >= ?1",
        &["SEARCH touches USING COVERING INDEX touches_offers_in_flight (admitted_at>?)"],
    );
    expect(
        "claiming queued touches",
        "UPDATE touches SET next_attempt_at = ?1, attempts = attempts + 1, leased = 1, \
         lease_token = ?4 WHERE id IN (\
           SELECT id FROM touches WHERE state = 'queued' AND next_attempt_at <= ?2 \
           ORDER BY next_attempt_at, id LIMIT ?3) RETURNING id",
        &[
            "SEARCH touches USING INTEGER PRIMARY KEY (rowid=?)",
            "touches_dispatch (next_attempt_at<?)",
        ],
    );
    expect(
        "the next dispatch",
        "SELECT MIN(next_attempt_at) AS next FROM touches WHERE state = 'queued'",
        &["touches_dispatch"],
    );
    expect(
        "a contact's enrollments, on each touch (the quiet_since trigger)",
        "UPDATE enrollments SET quiet_since = MAX(enrolled_at, COALESCE(?1, enrolled_at)) \
         WHERE contact_id = ?2",
        &["SEARCH enrollments USING INDEX enrollments_contact (contact_id=?)"],
    );
    expect(
        "offers held for capacity, woken when work closes",
        "UPDATE touches SET due_at = ?1 WHERE id IN (\
           SELECT t.id FROM touches t JOIN enrollments e ON e.id = t.enrollment_id \
           JOIN contacts c ON c.id = t.contact_id \
           WHERE t.state = 'pending' AND t.reason = 'capacity' AND t.due_at > ?1 \
           ORDER BY MAX(COALESCE(c.last_touch_at, e.enrolled_at), e.enrolled_at), t.id \
           LIMIT ?2)",
        // Either partial index of held touches holds the same rows.
        &["SEARCH t USING INDEX touches_held (reason=?)"],
    );
    expect(
        "an enrollment's planned touches, cancelled",
        "UPDATE touches SET state = 'cancelled', reason = ?1 \
         WHERE enrollment_id = ?2 AND state IN ('pending', 'queued')",
        &["SEARCH touches USING INDEX touches_enrollment (enrollment_id=?)"],
    );
    expect(
        "the offer a contact answered",
        "UPDATE touches SET responded_at = ?1 WHERE id = (\
           SELECT id FROM touches WHERE contact_id = ?2 AND intent = 'offer' \
           AND admitted_at >= ?3 AND responded_at IS NULL \
           ORDER BY admitted_at DESC, id DESC LIMIT 1)",
        &["touches_contact_admitted (contact_id=? AND admitted_at>?)"],
    );
    expect(
        "the day's neglect check, one process",
        "SELECT e.id, e.contact_id, e.process_id, e.enrolled_at, c.last_touch_at, c.name, \
         c.email, e.quiet_since + ?1 AS deadline \
         FROM enrollments e JOIN contacts c ON c.id = e.contact_id \
         WHERE e.state = 'active' AND e.paused_at IS NULL AND e.process_id = ?2 \
         AND e.quiet_since < ?3 ORDER BY e.quiet_since, e.id LIMIT ?4",
        &["SEARCH e USING INDEX enrollments_neglect (process_id=? AND quiet_since<?)"],
    );
    expect(
        "open tasks and tasks finished in a range",
        "SELECT t.id FROM touches t WHERE t.channel = 'task' AND t.state = 'open' \
         AND t.due_at < ?1 UNION ALL SELECT t.id FROM touches t WHERE t.channel = 'task' \
         AND t.completed_at >= ?2 AND t.completed_at < ?1",
        &[
            "touches_tasks (state=? AND due_at<?)",
            "touches_completed (completed_at>? AND completed_at<?)",
        ],
    );
    for state in ["sent", "failed", "queued"] {
        expect(
            "the console's deliveries in one state, newest first (as `console.rs` asks)",
            &format!(
                "SELECT t.id FROM touches t WHERE t.channel IN ('email', 'webhook') \
                 AND t.state IN ('sent', 'failed', 'queued') AND t.state = '{state}' \
                 ORDER BY t.id DESC LIMIT ?1"
            ),
            &["touches_sent (state=?)"],
        );
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}
