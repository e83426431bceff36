//! The engine's own values (signal cursor, budget usage, open work) and process sync.

use super::*;

pub(crate) async fn value(tx: &Tx<'_>, key: &str) -> Result<Option<String>, StoreError> {
    sql::fetch_optional(
        tx,
        "SELECT value FROM engine_state WHERE key = $1",
        &[&key],
        |row| get(row, "value"),
    )
    .await
}

pub(crate) async fn set_value(tx: &Tx<'_>, key: &str, value: &str) -> Result<(), StoreError> {
    sql::execute(
        tx,
        "INSERT INTO engine_state (key, value) VALUES ($1, $2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&key, &value],
    )
    .await?;
    Ok(())
}

pub(crate) async fn cursor(tx: &Tx<'_>) -> Result<SignalCursor, StoreError> {
    match value(tx, CURSOR_KEY).await? {
        None => Ok(SignalCursor::default()),
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| StoreError::Corrupt(format!("signal cursor `{text}`: {e}"))),
    }
}

pub(crate) async fn start_cursor(tx: &Tx<'_>) -> Result<SignalCursor, StoreError> {
    if value(tx, CURSOR_KEY).await?.is_some() {
        return cursor(tx).await;
    }
    let start = sql::fetch_one(
        tx,
        "SELECT (SELECT MAX(id) FROM stage_history) AS stages, \
         (SELECT MAX(id) FROM events) AS events",
        &[],
        |row| {
            Ok(SignalCursor {
                stage_history: get::<Option<i64>>(row, "stages")?.unwrap_or(0),
                events: get::<Option<i64>>(row, "events")?.unwrap_or(0),
            })
        },
    )
    .await?;
    let text = serde_json::to_string(&start).expect("a cursor serializes");
    set_value(tx, CURSOR_KEY, &text).await?;
    Ok(start)
}

// --- processes ---

pub(crate) async fn stored_processes(tx: &Tx<'_>) -> Result<Vec<StoredProcess>, StoreError> {
    sql::fetch_all(
        tx,
        "SELECT id, key, steps::text AS steps FROM processes ORDER BY id",
        &[],
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
    .await
}

/// The advisory lock a process sync holds until it commits ("TENDSYNC" in ASCII).
const PROCESS_SYNC_LOCK: i64 = 0x5445_4E44_5359_4E43;

pub(crate) async fn sync_process(
    tx: &Tx<'_>,
    sync: &ProcessSync<'_>,
) -> Result<SyncOutcome, StoreError> {
    let at = millis(sync.at);
    let steps = serde_json::to_string(sync.steps).expect("strings serialize");
    // Nodes starting at once sync one after another: the second then finds the first's
    // row (and answers Conflict, for its engine to start again from it) instead of both
    // inserting the process, or both enrolling its stage.
    sql::execute(
        tx,
        "SELECT pg_advisory_xact_lock($1)",
        &[&PROCESS_SYNC_LOCK],
    )
    .await?;
    let stored: Option<(i64, Vec<String>)> = sql::fetch_optional(
        tx,
        "SELECT id, steps::text AS steps FROM processes WHERE key = $1 FOR UPDATE",
        &[&sync.key],
        |row| {
            let text: String = get(row, "steps")?;
            let parsed: Vec<String> = serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("process `{}` steps: {e}", sync.key)))?;
            Ok((get(row, "id")?, parsed))
        },
    )
    .await?;
    let process_id =
        match (&stored, sync.previous) {
            (None, None) => sql::fetch_one(
                tx,
                "INSERT INTO processes (key, steps, loaded_at) VALUES ($1, $2::text::jsonb, $3) \
             RETURNING id",
                &[&sync.key, &steps, &at],
                |row| get(row, "id"),
            )
            .await?,
            (Some((id, current)), Some(previous)) if current.as_slice() == previous => {
                sql::execute(
                    tx,
                    "UPDATE processes SET steps = $1::text::jsonb, loaded_at = $2 WHERE id = $3",
                    &[&steps, &at, &id],
                )
                .await?;
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
                    tx,
                    "UPDATE enrollments SET step = $1 \
                     WHERE process_id = $2 AND state = 'active' AND step = $3",
                    &[&parked, &process_id, &(i64::from(m.from))],
                )
                .await?;
                sql::execute(
                    tx,
                    "UPDATE touches SET step = $1, channel = $2, intent = $3 \
                     WHERE process_id = $4 AND state = 'pending' AND kind = 'step' AND step = $5",
                    &[
                        &parked,
                        &(to.channel.as_str()),
                        &(to.intent.as_str()),
                        &process_id,
                        &(i64::from(m.from)),
                    ],
                )
                .await?;
            }
            None => {
                let ids: Vec<i64> = sql::fetch_all(
                    tx,
                    "UPDATE enrollments SET state = 'completed', ended_at = $1, \
                     end_reason = 'steps removed' \
                     WHERE process_id = $2 AND state = 'active' AND step = $3 RETURNING id",
                    &[&at, &process_id, &(i64::from(m.from))],
                    |row| get(row, "id"),
                )
                .await?;
                outcome.completed += ids.len() as u64;
                cancel_planned(tx, &ids, "steps removed", "steps_removed").await?;
            }
        }
    }
    if !sync.moves.is_empty() {
        sql::execute(
            tx,
            "UPDATE enrollments SET step = -step - 1 WHERE process_id = $1 AND step < 0 \
             AND state = 'active'",
            &[&process_id],
        )
        .await?;
        sql::execute(
            tx,
            "UPDATE touches SET step = -step - 1 WHERE process_id = $1 AND step < 0 \
             AND state = 'pending'",
            &[&process_id],
        )
        .await?;
    }

    if let (Some(backfill), None) = (sync.backfill, &stored) {
        outcome.enrolled = sql::execute(
            tx,
            "INSERT INTO enrollments (contact_id, process_id, state, step, enrolled_at) \
             SELECT id, $1::bigint, 'active', $2::bigint, $3::bigint FROM contacts \
             WHERE stage = $4 AND suppressed_at IS NULL",
            &[
                &process_id,
                &(i64::from(backfill.first.step)),
                &at,
                &(backfill.stage.as_str()),
            ],
        )
        .await?;
        sql::execute(
            tx,
            "INSERT INTO touches (enrollment_id, contact_id, process_id, step, kind, channel, \
             intent, state, due_at, created_at) \
             SELECT id, contact_id, process_id, step, 'step', $1::text, $2::text, 'pending', \
             $3::bigint, $4::bigint \
             FROM enrollments WHERE process_id = $5 AND state = 'active'",
            &[
                &(backfill.first.channel.as_str()),
                &(backfill.first.intent.as_str()),
                &(millis(backfill.due_at)),
                &at,
                &process_id,
            ],
        )
        .await?;
    }
    Ok(outcome)
}

/// Cancels the pending and queued touches of ended enrollments, recording `reason` on
/// each and counting them under `cause`.
pub(super) async fn cancel_planned(
    tx: &Tx<'_>,
    enrollment_ids: &[i64],
    reason: &str,
    cause: &str,
) -> Result<(), StoreError> {
    if enrollment_ids.is_empty() {
        return Ok(());
    }
    let cancelled = sql::execute(
        tx,
        "UPDATE touches SET state = 'cancelled', reason = $1 \
         WHERE enrollment_id = ANY($2) AND state IN ('pending', 'queued')",
        &[&reason, &enrollment_ids],
    )
    .await?;
    count_cancelled(tx, cause, cancelled).await
}

/// Adds `n` to the count of touches cancelled for `cause` (see
/// [`TOUCHES_CANCELLED_KEY_PREFIX`]).
pub(crate) async fn count_cancelled(tx: &Tx<'_>, cause: &str, n: u64) -> Result<(), StoreError> {
    if n == 0 {
        return Ok(());
    }
    let key = format!("{TOUCHES_CANCELLED_KEY_PREFIX}{cause}");
    let n = n as i64;
    sql::execute(
        tx,
        "INSERT INTO engine_state (key, value) VALUES ($1, $2::bigint::text) \
         ON CONFLICT (key) DO UPDATE \
         SET value = (engine_state.value::bigint + $2::bigint)::text",
        &[&key, &n],
    )
    .await?;
    Ok(())
}

/// Touches cancelled by cause (see [`tend_store::Store::touches_cancelled`]).
pub(crate) async fn touches_cancelled(tx: &Tx<'_>) -> Result<Vec<(String, u64)>, StoreError> {
    sql::fetch_all(
        tx,
        "SELECT substr(key, length($1) + 1) AS cause, value::bigint AS n \
         FROM engine_state WHERE starts_with(key, $1) ORDER BY key",
        &[&TOUCHES_CANCELLED_KEY_PREFIX],
        |row| {
            Ok((
                get::<String>(row, "cause")?,
                get::<i64>(row, "n")?.max(0) as u64,
            ))
        },
    )
    .await
}
