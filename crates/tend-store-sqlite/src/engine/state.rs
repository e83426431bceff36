//! The engine's own values (signal cursor, budget usage, open work) and process sync.

use super::*;

pub(crate) fn value(conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    sql::fetch_optional(
        conn,
        "SELECT value FROM engine_state WHERE key = ?1",
        params![key],
        |row| get(row, "value"),
    )
}

pub(crate) fn set_value(conn: &Connection, key: &str, value: &str) -> Result<(), StoreError> {
    sql::execute(
        conn,
        "INSERT INTO engine_state (key, value) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

pub(crate) fn cursor(conn: &Connection) -> Result<SignalCursor, StoreError> {
    match value(conn, CURSOR_KEY)? {
        None => Ok(SignalCursor::default()),
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| StoreError::Corrupt(format!("signal cursor `{text}`: {e}"))),
    }
}

pub(crate) fn start_cursor(conn: &Connection) -> Result<SignalCursor, StoreError> {
    if value(conn, CURSOR_KEY)?.is_some() {
        return cursor(conn);
    }
    let start = sql::fetch_one(
        conn,
        "SELECT (SELECT MAX(id) FROM stage_history) AS stages, \
         (SELECT MAX(id) FROM events) AS events",
        [],
        |row| {
            Ok(SignalCursor {
                stage_history: get::<Option<i64>>(row, "stages")?.unwrap_or(0),
                events: get::<Option<i64>>(row, "events")?.unwrap_or(0),
            })
        },
    )?;
    let text = serde_json::to_string(&start).expect("a cursor serializes");
    set_value(conn, CURSOR_KEY, &text)?;
    Ok(start)
}

// --- processes ---

pub(crate) fn stored_processes(conn: &Connection) -> Result<Vec<StoredProcess>, StoreError> {
    sql::fetch_all(
        conn,
        "SELECT id, key, steps FROM processes ORDER BY id",
        [],
        |row| {
            let key: String = get(row, "key")?;
            let steps: String = get(row, "steps")?;
            Ok(StoredProcess {
                id: get(row, "id")?,
                steps: serde_json::from_str(&steps)
                    .map_err(|e| StoreError::Corrupt(format!("process `{key}` steps: {e}")))?,
                key,
            })
        },
    )
}

pub(crate) fn sync_process(
    conn: &Connection,
    sync: &ProcessSync<'_>,
) -> Result<SyncOutcome, StoreError> {
    let at = millis(sync.at);
    let steps = serde_json::to_string(sync.steps).expect("strings serialize");
    let stored: Option<(i64, Vec<String>)> = sql::fetch_optional(
        conn,
        "SELECT id, steps FROM processes WHERE key = ?1",
        params![sync.key],
        |row| {
            let text: String = get(row, "steps")?;
            let parsed: Vec<String> = serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("process `{}` steps: {e}", sync.key)))?;
            Ok((get(row, "id")?, parsed))
        },
    )?;
    let process_id = match (&stored, sync.previous) {
        (None, None) => sql::fetch_one(
            conn,
            "INSERT INTO processes (key, steps, loaded_at) VALUES (?1, ?2, ?3) RETURNING id",
            params![sync.key, &steps, at],
            |row| get(row, "id"),
        )?,
        (Some((id, current)), Some(previous)) if current.as_slice() == previous => {
            sql::execute(
                conn,
                "UPDATE processes SET steps = ?1, loaded_at = ?2 WHERE id = ?3",
                params![&steps, at, *id],
            )?;
            *id
        }
        _ => {
            return Err(StoreError::Conflict(format!(
                "process `{}` changed in the database while it was being loaded",
                sync.key
            )));
        }
    };
    let mut outcome = SyncOutcome {
        process_id,
        ..SyncOutcome::default()
    };

    // Two phases, through negative step numbers, so a move into a step that itself moves
    // away is not applied twice.
    for m in sync.moves {
        match m.to {
            Some(to) => {
                let parked = -i64::from(to.step) - 1;
                outcome.moved += sql::execute(
                    conn,
                    "UPDATE enrollments SET step = ?1 \
                     WHERE process_id = ?2 AND state = 'active' AND step = ?3",
                    params![parked, process_id, i64::from(m.from)],
                )?;
                sql::execute(
                    conn,
                    "UPDATE touches SET step = ?1, channel = ?2, intent = ?3 \
                     WHERE process_id = ?4 AND state = 'pending' AND kind = 'step' AND step = ?5",
                    params![
                        parked,
                        to.channel.as_str(),
                        to.intent.as_str(),
                        process_id,
                        i64::from(m.from)
                    ],
                )?;
            }
            None => {
                let ids: Vec<i64> = sql::fetch_all(
                    conn,
                    "UPDATE enrollments SET state = 'completed', ended_at = ?1, \
                     end_reason = 'steps removed' \
                     WHERE process_id = ?2 AND state = 'active' AND step = ?3 RETURNING id",
                    params![at, process_id, i64::from(m.from)],
                    |row| get(row, "id"),
                )?;
                outcome.completed += ids.len() as u64;
                cancel_planned(conn, &ids, "steps removed", "steps_removed")?;
            }
        }
    }
    if !sync.moves.is_empty() {
        sql::execute(
            conn,
            "UPDATE enrollments SET step = -step - 1 WHERE process_id = ?1 AND step < 0 \
             AND state = 'active'",
            params![process_id],
        )?;
        sql::execute(
            conn,
            "UPDATE touches SET step = -step - 1 WHERE process_id = ?1 AND step < 0 \
             AND state = 'pending'",
            params![process_id],
        )?;
    }

    if let (Some(backfill), None) = (sync.backfill, &stored) {
        outcome.enrolled = sql::execute(
            conn,
            "INSERT INTO enrollments (contact_id, process_id, state, step, enrolled_at) \
             SELECT id, ?1, 'active', ?2, ?3 FROM contacts \
             WHERE stage = ?4 AND suppressed_at IS NULL",
            params![
                process_id,
                i64::from(backfill.first.step),
                at,
                backfill.stage.as_str()
            ],
        )?;
        sql::execute(
            conn,
            "INSERT INTO touches (enrollment_id, contact_id, process_id, step, kind, channel, \
             intent, state, due_at, created_at) \
             SELECT id, contact_id, process_id, step, 'step', ?1, ?2, 'pending', ?3, ?4 \
             FROM enrollments WHERE process_id = ?5 AND state = 'active'",
            params![
                backfill.first.channel.as_str(),
                backfill.first.intent.as_str(),
                millis(backfill.due_at),
                at,
                process_id
            ],
        )?;
    }
    Ok(outcome)
}

/// Cancels the pending and queued touches of ended enrollments, recording `reason` on
/// each and counting them under `cause`.
pub(super) fn cancel_planned(
    conn: &Connection,
    enrollment_ids: &[i64],
    reason: &str,
    cause: &str,
) -> Result<(), StoreError> {
    let mut cancelled = 0;
    for id in enrollment_ids {
        cancelled += sql::execute(
            conn,
            "UPDATE touches SET state = 'cancelled', reason = ?1 \
             WHERE enrollment_id = ?2 AND state IN ('pending', 'queued')",
            params![reason, *id],
        )?;
    }
    count_cancelled(conn, cause, cancelled)
}

/// Adds `n` to the count of touches cancelled for `cause` (see
/// [`TOUCHES_CANCELLED_KEY_PREFIX`]).
pub(crate) fn count_cancelled(conn: &Connection, cause: &str, n: u64) -> Result<(), StoreError> {
    if n == 0 {
        return Ok(());
    }
    sql::execute(
        conn,
        "INSERT INTO engine_state (key, value) VALUES (?1, CAST(?2 AS TEXT)) \
         ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + ?2 AS TEXT)",
        params![format!("{TOUCHES_CANCELLED_KEY_PREFIX}{cause}"), n as i64],
    )?;
    Ok(())
}

/// Touches cancelled by cause (see [`tend_store::Store::touches_cancelled`]).
pub(crate) fn touches_cancelled(conn: &Connection) -> Result<Vec<(String, u64)>, StoreError> {
    let prefix = TOUCHES_CANCELLED_KEY_PREFIX;
    sql::fetch_all(
        conn,
        "SELECT substr(key, length(?1) + 1) AS cause, CAST(value AS INTEGER) AS n \
         FROM engine_state WHERE substr(key, 1, length(?1)) = ?1 ORDER BY key",
        params![prefix],
        |row| Ok((get::<String>(row, "cause")?, count(row)?)),
    )
}
