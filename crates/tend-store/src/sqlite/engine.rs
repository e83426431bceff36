//! The engine's statements: process sync, signal reading, enrollment, decisions,
//! dispatch leases, tasks. Each public function runs inside the caller's transaction or
//! on the caller's pool; the `Store` impl decides which.

use super::sql::{self, ContactRow, contact_columns, get, millis, timestamp};
use crate::engine::*;
use crate::{Contact, StoreError};
use jiff::Timestamp;
use sqlx::AssertSqlSafe;
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use std::collections::{BTreeMap, HashMap};
use tend_core::pacer::{Channel, Intent, TouchId};
use tend_core::{ContactId, StageName};

const CURSOR_KEY: &str = "signal_cursor";
const BUDGET_KEY: &str = "budget";
/// Open work as counted from `[work]` events and `PUT /api/capacity`.
pub(crate) const OPEN_WORK_KEY: &str = "open_work";

pub(super) fn channel_str(channel: Channel) -> &'static str {
    match channel {
        Channel::Email => "email",
        Channel::Webhook => "webhook",
        Channel::Task => "task",
    }
}

fn parse_channel(text: &str) -> Result<Channel, StoreError> {
    match text {
        "email" => Ok(Channel::Email),
        "webhook" => Ok(Channel::Webhook),
        "task" => Ok(Channel::Task),
        other => Err(StoreError::Corrupt(format!("unknown channel `{other}`"))),
    }
}

fn intent_str(intent: Intent) -> &'static str {
    match intent {
        Intent::Offer => "offer",
        Intent::Nurture => "nurture",
    }
}

fn parse_intent(text: &str) -> Result<Intent, StoreError> {
    match text {
        "offer" => Ok(Intent::Offer),
        "nurture" => Ok(Intent::Nurture),
        other => Err(StoreError::Corrupt(format!("unknown intent `{other}`"))),
    }
}

fn parse_kind(text: &str) -> Result<TouchKind, StoreError> {
    match text {
        "step" => Ok(TouchKind::Step),
        "keep_warm" => Ok(TouchKind::KeepWarm),
        other => Err(StoreError::Corrupt(format!("unknown touch kind `{other}`"))),
    }
}

fn step_index(row: &SqliteRow, column: &str) -> Result<u32, StoreError> {
    let step: i64 = get(row, column)?;
    u32::try_from(step).map_err(|_| StoreError::Corrupt(format!("`{column}` is {step}")))
}

fn opt_timestamp(ms: Option<i64>, what: &str) -> Result<Option<Timestamp>, StoreError> {
    ms.map(|ms| timestamp(ms, what)).transpose()
}

// --- engine_state ---

pub(super) async fn value(
    conn: &mut SqliteConnection,
    key: &str,
) -> Result<Option<String>, StoreError> {
    let row = sqlx::query("SELECT value FROM engine_state WHERE key = $1")
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|row| get(&row, "value")).transpose()
}

pub(super) async fn set_value(
    conn: &mut SqliteConnection,
    key: &str,
    value: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO engine_state (key, value) VALUES ($1, $2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(key)
    .bind(value)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn cursor(conn: &mut SqliteConnection) -> Result<SignalCursor, StoreError> {
    match value(conn, CURSOR_KEY).await? {
        None => Ok(SignalCursor::default()),
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| StoreError::Corrupt(format!("signal cursor `{text}`: {e}"))),
    }
}

pub(super) async fn start_cursor(conn: &mut SqliteConnection) -> Result<SignalCursor, StoreError> {
    if value(conn, CURSOR_KEY).await?.is_some() {
        return cursor(conn).await;
    }
    let row = sqlx::query(
        "SELECT (SELECT MAX(id) FROM stage_history) AS stages, \
         (SELECT MAX(id) FROM events) AS events",
    )
    .fetch_one(&mut *conn)
    .await?;
    let start = SignalCursor {
        stage_history: get::<Option<i64>>(&row, "stages")?.unwrap_or(0),
        events: get::<Option<i64>>(&row, "events")?.unwrap_or(0),
    };
    let text = serde_json::to_string(&start).expect("a cursor serializes");
    set_value(conn, CURSOR_KEY, &text).await?;
    Ok(start)
}

// --- processes ---

pub(super) async fn stored_processes(
    conn: &mut SqliteConnection,
) -> Result<Vec<StoredProcess>, StoreError> {
    let rows = sqlx::query("SELECT id, key, steps FROM processes ORDER BY id")
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|row| {
            let key: String = get(row, "key")?;
            let steps: String = get(row, "steps")?;
            Ok(StoredProcess {
                id: get(row, "id")?,
                steps: serde_json::from_str(&steps)
                    .map_err(|e| StoreError::Corrupt(format!("process `{key}` steps: {e}")))?,
                key,
            })
        })
        .collect()
}

pub(super) async fn sync_process(
    conn: &mut SqliteConnection,
    sync: &ProcessSync<'_>,
) -> Result<SyncOutcome, StoreError> {
    let at = millis(sync.at);
    let steps = serde_json::to_string(sync.steps).expect("strings serialize");
    let row = sqlx::query("SELECT id, steps FROM processes WHERE key = $1")
        .bind(sync.key)
        .fetch_optional(&mut *conn)
        .await?;
    let stored: Option<(i64, Vec<String>)> = match row {
        None => None,
        Some(row) => {
            let text: String = get(&row, "steps")?;
            let parsed: Vec<String> = serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("process `{}` steps: {e}", sync.key)))?;
            Some((get(&row, "id")?, parsed))
        }
    };
    let process_id = match (&stored, sync.previous) {
        (None, None) => {
            let row = sqlx::query(
                "INSERT INTO processes (key, steps, loaded_at) VALUES ($1, $2, $3) RETURNING id",
            )
            .bind(sync.key)
            .bind(&steps)
            .bind(at)
            .fetch_one(&mut *conn)
            .await?;
            get(&row, "id")?
        }
        (Some((id, current)), Some(previous)) if current.as_slice() == previous => {
            sqlx::query("UPDATE processes SET steps = $1, loaded_at = $2 WHERE id = $3")
                .bind(&steps)
                .bind(at)
                .bind(*id)
                .execute(&mut *conn)
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
                outcome.moved += sqlx::query(
                    "UPDATE enrollments SET step = $1 \
                     WHERE process_id = $2 AND state = 'active' AND step = $3",
                )
                .bind(parked)
                .bind(process_id)
                .bind(i64::from(m.from))
                .execute(&mut *conn)
                .await?
                .rows_affected();
                sqlx::query(
                    "UPDATE touches SET step = $1, channel = $2, intent = $3 \
                     WHERE process_id = $4 AND state = 'pending' AND kind = 'step' AND step = $5",
                )
                .bind(parked)
                .bind(channel_str(to.channel))
                .bind(intent_str(to.intent))
                .bind(process_id)
                .bind(i64::from(m.from))
                .execute(&mut *conn)
                .await?;
            }
            None => {
                let ended = sqlx::query(
                    "UPDATE enrollments SET state = 'completed', ended_at = $1, \
                     end_reason = 'steps removed' \
                     WHERE process_id = $2 AND state = 'active' AND step = $3 RETURNING id",
                )
                .bind(at)
                .bind(process_id)
                .bind(i64::from(m.from))
                .fetch_all(&mut *conn)
                .await?;
                outcome.completed += ended.len() as u64;
                let ids = ended
                    .iter()
                    .map(|r| get::<i64>(r, "id"))
                    .collect::<Result<Vec<_>, _>>()?;
                cancel_planned(conn, &ids, "steps removed").await?;
            }
        }
    }
    if !sync.moves.is_empty() {
        sqlx::query(
            "UPDATE enrollments SET step = -step - 1 WHERE process_id = $1 AND step < 0 \
             AND state = 'active'",
        )
        .bind(process_id)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "UPDATE touches SET step = -step - 1 WHERE process_id = $1 AND step < 0 \
             AND state = 'pending'",
        )
        .bind(process_id)
        .execute(&mut *conn)
        .await?;
    }

    if let (Some(backfill), None) = (sync.backfill, &stored) {
        outcome.enrolled = sqlx::query(
            "INSERT INTO enrollments (contact_id, process_id, state, step, enrolled_at) \
             SELECT id, $1, 'active', $2, $3 FROM contacts \
             WHERE stage = $4 AND suppressed_at IS NULL",
        )
        .bind(process_id)
        .bind(i64::from(backfill.first.step))
        .bind(at)
        .bind(backfill.stage.as_str())
        .execute(&mut *conn)
        .await?
        .rows_affected();
        sqlx::query(
            "INSERT INTO touches (enrollment_id, contact_id, process_id, step, kind, channel, \
             intent, state, due_at, created_at) \
             SELECT id, contact_id, process_id, step, 'step', $1, $2, 'pending', $3, $4 \
             FROM enrollments WHERE process_id = $5 AND state = 'active'",
        )
        .bind(channel_str(backfill.first.channel))
        .bind(intent_str(backfill.first.intent))
        .bind(millis(backfill.due_at))
        .bind(at)
        .bind(process_id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(outcome)
}

/// Cancels the pending and queued touches of ended enrollments.
async fn cancel_planned(
    conn: &mut SqliteConnection,
    enrollment_ids: &[i64],
    reason: &str,
) -> Result<(), StoreError> {
    for id in enrollment_ids {
        sqlx::query(
            "UPDATE touches SET state = 'cancelled', reason = $1 \
             WHERE enrollment_id = $2 AND state IN ('pending', 'queued')",
        )
        .bind(reason)
        .bind(*id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

// --- signals ---

pub(super) async fn read_signals(
    conn: &mut SqliteConnection,
    after: SignalCursor,
    event_names: &[String],
    limit: u32,
) -> Result<SignalBatch, StoreError> {
    let limit = i64::from(limit.max(1));
    let mut next = after;
    // (at, rank, id): at equal instants an event comes before the stage change it caused.
    let mut keyed: Vec<((i64, u8, i64), Signal)> = Vec::new();

    let rows = sqlx::query(
        "SELECT id, contact_id, from_stage, to_stage, at FROM stage_history \
         WHERE id > $1 ORDER BY id LIMIT $2",
    )
    .bind(after.stage_history)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    for row in &rows {
        let id: i64 = get(row, "id")?;
        let at: i64 = get(row, "at")?;
        let from: Option<String> = get(row, "from_stage")?;
        keyed.push((
            (at, 1, id),
            Signal::StageEntered {
                contact: ContactId(get(row, "contact_id")?),
                from: from.map(StageName::new),
                to: StageName::new(get::<String>(row, "to_stage")?),
                at: timestamp(at, "stage change at")?,
            },
        ));
        next.stage_history = id;
    }

    let top: Option<i64> = get(
        &sqlx::query("SELECT MAX(id) AS top FROM events")
            .fetch_one(&mut *conn)
            .await?,
        "top",
    )?;
    let top = top.unwrap_or(0);
    if top > after.events {
        if event_names.is_empty() {
            next.events = top;
        } else {
            let mut sql = String::from(
                "SELECT id, contact_id, name, occurred_at FROM events \
                 WHERE id > ? AND id <= ? AND kind = 'track' AND name IN (",
            );
            for i in 0..event_names.len() {
                sql.push_str(if i == 0 { "?" } else { ", ?" });
            }
            sql.push_str(") ORDER BY id LIMIT ?");
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(after.events).bind(top);
            for name in event_names {
                query = query.bind(name.as_str());
            }
            let rows = query.bind(limit).fetch_all(&mut *conn).await?;
            // A short page read everything up to `top`; a full one stops at its last row.
            next.events = if (rows.len() as i64) < limit {
                top
            } else {
                get(rows.last().expect("a full page has rows"), "id")?
            };
            for row in &rows {
                let id: i64 = get(row, "id")?;
                let at: i64 = get(row, "occurred_at")?;
                keyed.push((
                    (at, 0, id),
                    Signal::Event {
                        contact: ContactId(get(row, "contact_id")?),
                        name: get(row, "name")?,
                        at: timestamp(at, "event occurred_at")?,
                    },
                ));
            }
        }
    }
    keyed.sort_by_key(|(key, _)| *key);
    Ok(SignalBatch {
        signals: keyed.into_iter().map(|(_, s)| s).collect(),
        next,
    })
}

pub(super) async fn apply_signals(
    conn: &mut SqliteConnection,
    from: SignalCursor,
    to: SignalCursor,
    actions: &[EngineAction],
    at: Timestamp,
) -> Result<ApplyOutcome, StoreError> {
    let current = cursor(conn).await?;
    if current != from {
        return Err(StoreError::Conflict(format!(
            "the signal cursor moved from {from:?} to {current:?}: another engine runs on this \
             database"
        )));
    }
    let at_ms = millis(at);
    let mut outcome = ApplyOutcome::default();
    let mut freed = false;
    for action in actions {
        match action {
            EngineAction::Enroll {
                contact,
                process_id,
                first,
                due_at,
                reenroll,
            } => {
                if enroll(
                    conn,
                    *contact,
                    *process_id,
                    *first,
                    *due_at,
                    *reenroll,
                    at_ms,
                )
                .await?
                {
                    outcome.enrolled += 1;
                }
            }
            EngineAction::Exit {
                contact,
                process_id,
                reason,
            } => {
                outcome.exited += exit(conn, *contact, *process_id, reason, at_ms).await?;
            }
            EngineAction::OpenWork(delta) => {
                freed |= *delta < 0.0;
                let open = match value(conn, OPEN_WORK_KEY).await? {
                    Some(text) => text.parse::<f64>().unwrap_or(0.0),
                    None => 0.0,
                };
                let open = (open + delta).max(0.0);
                set_value(conn, OPEN_WORK_KEY, &open.to_string()).await?;
                sqlx::query("INSERT INTO work_log (at, delta) VALUES ($1, $2)")
                    .bind(at_ms)
                    .bind(*delta)
                    .execute(&mut *conn)
                    .await?;
            }
            EngineAction::Responded { contact, since } => {
                let row = sqlx::query(
                    "UPDATE touches SET responded_at = $1 WHERE id = (\
                       SELECT id FROM touches WHERE contact_id = $2 AND intent = 'offer' \
                       AND admitted_at >= $3 AND responded_at IS NULL \
                       ORDER BY admitted_at DESC, id DESC LIMIT 1) \
                     RETURNING process_id, step",
                )
                .bind(at_ms)
                .bind(contact.0)
                .bind(millis(*since))
                .fetch_optional(&mut *conn)
                .await?;
                if let Some(row) = row {
                    sqlx::query(
                        "UPDATE offer_stats SET responded = responded + 1 \
                         WHERE process_id = $1 AND step = $2",
                    )
                    .bind(get::<i64>(&row, "process_id")?)
                    .bind(get::<i64>(&row, "step")?)
                    .execute(&mut *conn)
                    .await?;
                    outcome.responses += 1;
                }
            }
        }
    }
    if freed {
        wake_capacity_held(conn, at_ms).await?;
    }
    let text = serde_json::to_string(&to).expect("a cursor serializes");
    set_value(conn, CURSOR_KEY, &text).await?;
    Ok(outcome)
}

/// Makes offers held back by capacity due now: work was closed, so there may be room,
/// and they need not wait for the pacer's periodic recheck.
pub(super) async fn wake_capacity_held(
    conn: &mut SqliteConnection,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE touches SET due_at = $1 WHERE state = 'pending' AND reason = 'capacity' \
         AND due_at > $1",
    )
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn enroll(
    conn: &mut SqliteConnection,
    contact: ContactId,
    process_id: i64,
    first: StepSpec,
    due_at: Timestamp,
    reenroll: bool,
    at: i64,
) -> Result<bool, StoreError> {
    let row = sqlx::query(
        "INSERT INTO enrollments (contact_id, process_id, state, step, enrolled_at) \
         SELECT c.id, $1, 'active', $2, $3 FROM contacts c \
         WHERE c.id = $4 AND c.suppressed_at IS NULL AND NOT EXISTS (\
           SELECT 1 FROM enrollments e WHERE e.contact_id = c.id AND e.process_id = $1 \
           AND (e.state = 'active' OR $5 = 0)) \
         RETURNING id",
    )
    .bind(process_id)
    .bind(i64::from(first.step))
    .bind(at)
    .bind(contact.0)
    .bind(i64::from(reenroll))
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(false);
    };
    insert_pending(
        conn,
        get(&row, "id")?,
        contact.0,
        process_id,
        first,
        millis(due_at),
        at,
    )
    .await?;
    Ok(true)
}

async fn insert_pending(
    conn: &mut SqliteConnection,
    enrollment_id: i64,
    contact_id: i64,
    process_id: i64,
    step: StepSpec,
    due_at: i64,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO touches (enrollment_id, contact_id, process_id, step, kind, channel, \
         intent, state, due_at, created_at) \
         VALUES ($1, $2, $3, $4, 'step', $5, $6, 'pending', $7, $8)",
    )
    .bind(enrollment_id)
    .bind(contact_id)
    .bind(process_id)
    .bind(i64::from(step.step))
    .bind(channel_str(step.channel))
    .bind(intent_str(step.intent))
    .bind(due_at)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn exit(
    conn: &mut SqliteConnection,
    contact: ContactId,
    process_id: Option<i64>,
    reason: &str,
    at: i64,
) -> Result<u64, StoreError> {
    let rows = match process_id {
        Some(process_id) => {
            sqlx::query(
                "UPDATE enrollments SET state = 'exited', ended_at = $1, end_reason = $2 \
                 WHERE contact_id = $3 AND process_id = $4 AND state = 'active' RETURNING id",
            )
            .bind(at)
            .bind(reason)
            .bind(contact.0)
            .bind(process_id)
            .fetch_all(&mut *conn)
            .await?
        }
        None => {
            sqlx::query(
                "UPDATE enrollments SET state = 'exited', ended_at = $1, end_reason = $2 \
                 WHERE contact_id = $3 AND state = 'active' RETURNING id",
            )
            .bind(at)
            .bind(reason)
            .bind(contact.0)
            .fetch_all(&mut *conn)
            .await?
        }
    };
    let ids = rows
        .iter()
        .map(|r| get::<i64>(r, "id"))
        .collect::<Result<Vec<_>, _>>()?;
    cancel_planned(conn, &ids, "exited").await?;
    Ok(ids.len() as u64)
}

// --- due touches and decisions ---

pub(super) async fn due_touches(
    conn: &mut SqliteConnection,
    now: Timestamp,
    limit: u32,
) -> Result<DueBatch, StoreError> {
    let now_ms = millis(now);
    let rows = sqlx::query(
        "SELECT t.id, t.contact_id, t.process_id, t.step, t.kind, t.channel, t.intent, \
         t.due_at, e.enrolled_at, e.state AS enrollment_state \
         FROM touches t JOIN enrollments e ON e.id = t.enrollment_id \
         WHERE t.state = 'pending' AND t.due_at <= $1 ORDER BY t.due_at, t.id LIMIT $2",
    )
    .bind(now_ms)
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await?;
    let mut touches = Vec::with_capacity(rows.len());
    for row in &rows {
        let state: String = get(row, "enrollment_state")?;
        touches.push(DueRow {
            touch: TouchId(get(row, "id")?),
            contact: ContactId(get(row, "contact_id")?),
            process_id: get(row, "process_id")?,
            step: step_index(row, "step")?,
            kind: parse_kind(&get::<String>(row, "kind")?)?,
            channel: parse_channel(&get::<String>(row, "channel")?)?,
            intent: parse_intent(&get::<String>(row, "intent")?)?,
            due_at: timestamp(get(row, "due_at")?, "touch due_at")?,
            enrolled_at: timestamp(get(row, "enrolled_at")?, "enrolled_at")?,
            active: state == "active",
        });
    }
    let mut ids: Vec<i64> = touches.iter().map(|t| t.contact.0).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(DueBatch::default());
    }
    let contact_rows = sql::fetch_in(
        conn,
        concat!("SELECT ", contact_columns!(), " FROM contacts WHERE id IN"),
        "",
        &ids,
    )
    .await?;
    let recent = recent_touches(conn, &ids, now_ms - 7 * 86_400_000).await?;
    let mut contacts = Vec::with_capacity(contact_rows.len());
    let mut seen = std::collections::HashSet::new();
    for row in &contact_rows {
        let row = ContactRow::decode(row)?;
        if !seen.insert(row.id) {
            continue;
        }
        let contact = row.into_contact()?;
        contacts.push(PacingContact {
            id: contact.id,
            suppressed: contact.suppressed_at.is_some(),
            timezone: contact.timezone,
            last_touch_at: contact.last_touch_at,
            recent: recent.get(&contact.id.0).cloned().unwrap_or_default(),
            email: contact.email,
            name: contact.name,
            stage: contact.stage,
            attributes: contact.attributes,
        });
    }
    Ok(DueBatch { touches, contacts })
}

/// Touches admitted after `since` for each contact.
async fn recent_touches(
    conn: &mut SqliteConnection,
    ids: &[i64],
    since: i64,
) -> Result<HashMap<i64, Vec<Timestamp>>, StoreError> {
    let mut recent: HashMap<i64, Vec<Timestamp>> = HashMap::new();
    for chunk in ids.chunks(500) {
        let mut sql = String::from(
            "SELECT contact_id, admitted_at FROM touches WHERE admitted_at > ? AND contact_id IN (",
        );
        for i in 0..chunk.len() {
            sql.push_str(if i == 0 { "?" } else { ", ?" });
        }
        sql.push(')');
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(since);
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut *conn).await? {
            let at: i64 = get(&row, "admitted_at")?;
            recent
                .entry(get(&row, "contact_id")?)
                .or_default()
                .push(timestamp(at, "admitted_at")?);
        }
    }
    Ok(recent)
}

pub(super) async fn pacing_snapshot(
    conn: &mut SqliteConnection,
    in_flight_since: Timestamp,
    now: Timestamp,
) -> Result<PacingSnapshot, StoreError> {
    let budget = value(conn, BUDGET_KEY).await?;
    let open_work = match value(conn, OPEN_WORK_KEY).await? {
        Some(text) => text
            .parse::<f64>()
            .map_err(|e| StoreError::Corrupt(format!("open work `{text}`: {e}")))?,
        None => 0.0,
    };
    let row = sqlx::query(
        "SELECT COALESCE(SUM(COALESCE(probability, 0) \
         * MIN(1.0, CAST(admitted_at - $1 AS REAL) / $2)), 0.0) AS expected FROM touches \
         WHERE intent = 'offer' AND responded_at IS NULL AND admitted_at IS NOT NULL \
         AND admitted_at >= $1",
    )
    .bind(millis(in_flight_since))
    .bind((millis(now) - millis(in_flight_since)).max(1) as f64)
    .fetch_one(&mut *conn)
    .await?;
    let expected_in_flight: f64 = get(&row, "expected")?;
    let rows = sqlx::query("SELECT process_id, step, sent, responded FROM offer_stats")
        .fetch_all(&mut *conn)
        .await?;
    let offer_stats = rows
        .iter()
        .map(|row| {
            Ok(OfferStat {
                process_id: get(row, "process_id")?,
                step: step_index(row, "step")?,
                sent: get::<i64>(row, "sent")?.max(0) as u64,
                responded: get::<i64>(row, "responded")?.max(0) as u64,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(PacingSnapshot {
        budget,
        open_work,
        expected_in_flight,
        offer_stats,
    })
}

/// What an admitted touch's row says about whom it touches.
struct Admitted {
    contact_id: i64,
    enrollment_id: i64,
    process_id: i64,
    step: i64,
    intent: String,
}

fn admitted(row: &SqliteRow) -> Result<Admitted, StoreError> {
    Ok(Admitted {
        contact_id: get(row, "contact_id")?,
        enrollment_id: get(row, "enrollment_id")?,
        process_id: get(row, "process_id")?,
        step: get(row, "step")?,
        intent: get(row, "intent")?,
    })
}

/// Counts an admitted touch on its contact and enrollment, and an offer on its step.
const ADMITTED_COLUMNS: &str = "contact_id, enrollment_id, process_id, step, intent";

pub(super) async fn record_decisions(
    conn: &mut SqliteConnection,
    at: Timestamp,
    decisions: &[DecisionRecord],
    budget: &str,
) -> Result<(), StoreError> {
    let at = millis(at);
    let mut deferred = Vec::new();
    let mut queued = Vec::new();
    for decision in decisions {
        match decision {
            DecisionRecord::Queue { touch, probability } => queued.push((touch.0, *probability)),
            DecisionRecord::OpenTask {
                touch,
                title,
                minutes,
                due_at,
                probability,
            } => {
                let sql = format!(
                    "UPDATE touches SET state = 'open', decision = 'send', reason = NULL, \
                     until_at = NULL, decided_at = $1, admitted_at = $1, sent_at = $1, \
                     probability = $2, title = $3, minutes = $4, due_at = $5 \
                     WHERE id = $6 AND state = 'pending' RETURNING {ADMITTED_COLUMNS}"
                );
                let row = sqlx::query(AssertSqlSafe(sql))
                    .bind(at)
                    .bind(*probability)
                    .bind(title.as_str())
                    .bind(i64::from(*minutes))
                    .bind(millis(*due_at))
                    .bind(touch.0)
                    .fetch_optional(&mut *conn)
                    .await?;
                if let Some(row) = row {
                    count_touches(conn, &[admitted(&row)?], at).await?;
                }
            }
            DecisionRecord::Defer {
                touch,
                until,
                reason,
            } => deferred.push((touch.0, millis(*until), reason.to_string())),
            DecisionRecord::Substitute { touch, retry_at } => {
                let row = sqlx::query(
                    "UPDATE touches SET due_at = $1, decision = 'substitute', \
                     reason = 'capacity', until_at = $1, decided_at = $2, \
                     deferrals = deferrals + 1 WHERE id = $3 AND state = 'pending' \
                     RETURNING enrollment_id, contact_id, process_id, step",
                )
                .bind(millis(*retry_at))
                .bind(at)
                .bind(touch.0)
                .fetch_optional(&mut *conn)
                .await?;
                let Some(row) = row else { continue };
                let keep_warm = Admitted {
                    contact_id: get(&row, "contact_id")?,
                    enrollment_id: get(&row, "enrollment_id")?,
                    process_id: get(&row, "process_id")?,
                    step: get(&row, "step")?,
                    intent: "nurture".into(),
                };
                sqlx::query(
                    "INSERT INTO touches (enrollment_id, contact_id, process_id, step, kind, \
                     channel, intent, state, due_at, created_at, decision, decided_at, \
                     admitted_at, next_attempt_at) \
                     VALUES ($1, $2, $3, $4, 'keep_warm', 'email', 'nurture', 'queued', $5, $5, \
                     'send', $5, $5, $5)",
                )
                .bind(keep_warm.enrollment_id)
                .bind(keep_warm.contact_id)
                .bind(keep_warm.process_id)
                .bind(keep_warm.step)
                .bind(at)
                .execute(&mut *conn)
                .await?;
                count_touches(conn, std::slice::from_ref(&keep_warm), at).await?;
            }
            DecisionRecord::Skip {
                touch,
                reason,
                end_enrollment,
            } => {
                let row = sqlx::query(
                    "UPDATE touches SET state = 'skipped', decision = 'skip', reason = $1, \
                     decided_at = $2 WHERE id = $3 AND state = 'pending' RETURNING enrollment_id",
                )
                .bind(reason.to_string())
                .bind(at)
                .bind(touch.0)
                .fetch_optional(&mut *conn)
                .await?;
                if let (Some(row), true) = (row, *end_enrollment) {
                    sqlx::query(
                        "UPDATE enrollments SET state = 'exited', ended_at = $1, end_reason = $2 \
                         WHERE id = $3 AND state = 'active'",
                    )
                    .bind(at)
                    .bind(reason.to_string())
                    .bind(get::<i64>(&row, "enrollment_id")?)
                    .execute(&mut *conn)
                    .await?;
                }
            }
        }
    }
    for chunk in deferred.chunks(DEFER_CHUNK) {
        defer_touches(conn, chunk, at).await?;
    }
    for chunk in queued.chunks(DEFER_CHUNK) {
        queue_touches(conn, chunk, at).await?;
    }
    set_value(conn, BUDGET_KEY, budget).await
}

/// Admits pending touches to the outbox, `(id, offer probability)` each, in one
/// statement, and counts them as touches to their contacts.
async fn queue_touches(
    conn: &mut SqliteConnection,
    rows: &[(i64, Option<f64>)],
    at: i64,
) -> Result<(), StoreError> {
    let values = vec!["(?, ?)"; rows.len()].join(", ");
    let sql = format!(
        "UPDATE touches SET state = 'queued', decision = 'send', reason = NULL, \
         until_at = NULL, decided_at = ?, admitted_at = ?, next_attempt_at = ?, \
         probability = v.column2 \
         FROM (VALUES {values}) AS v WHERE touches.id = v.column1 AND touches.state = 'pending' \
         RETURNING {ADMITTED_COLUMNS}"
    );
    let mut query = sqlx::query(AssertSqlSafe(sql)).bind(at).bind(at).bind(at);
    for (id, probability) in rows {
        query = query.bind(*id).bind(*probability);
    }
    let admitted_rows = query.fetch_all(&mut *conn).await?;
    let admitted = admitted_rows
        .iter()
        .map(admitted)
        .collect::<Result<Vec<_>, _>>()?;
    count_touches(conn, &admitted, at).await
}

/// Counts admitted touches to their contacts, enrollments and offer stats, in three
/// statements.
async fn count_touches(
    conn: &mut SqliteConnection,
    touches: &[Admitted],
    at: i64,
) -> Result<(), StoreError> {
    if touches.is_empty() {
        return Ok(());
    }
    let ids = vec!["?"; touches.len()].join(", ");
    let sql = format!(
        "UPDATE contacts SET last_touch_at = CASE \
         WHEN last_touch_at IS NULL OR last_touch_at < ? THEN ? ELSE last_touch_at END \
         WHERE id IN ({ids})"
    );
    let mut query = sqlx::query(AssertSqlSafe(sql)).bind(at).bind(at);
    for t in touches {
        query = query.bind(t.contact_id);
    }
    query.execute(&mut *conn).await?;

    let mut per_enrollment: BTreeMap<i64, i64> = BTreeMap::new();
    let mut per_offer_step: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    for t in touches {
        *per_enrollment.entry(t.enrollment_id).or_default() += 1;
        if t.intent == "offer" {
            *per_offer_step.entry((t.process_id, t.step)).or_default() += 1;
        }
    }
    let values = vec!["(?, ?)"; per_enrollment.len()].join(", ");
    let sql = format!(
        "UPDATE enrollments SET touches = touches + v.column2, last_touch_at = ? \
         FROM (VALUES {values}) AS v WHERE enrollments.id = v.column1"
    );
    let mut query = sqlx::query(AssertSqlSafe(sql)).bind(at);
    for (enrollment, count) in &per_enrollment {
        query = query.bind(*enrollment).bind(*count);
    }
    query.execute(&mut *conn).await?;

    if !per_offer_step.is_empty() {
        let values = vec!["(?, ?, ?)"; per_offer_step.len()].join(", ");
        let sql = format!(
            "INSERT INTO offer_stats (process_id, step, sent) VALUES {values} \
             ON CONFLICT (process_id, step) DO UPDATE SET sent = offer_stats.sent + excluded.sent"
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for ((process, step), count) in &per_offer_step {
            query = query.bind(*process).bind(*step).bind(*count);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Deferrals written per statement: most of a busy tick's decisions are deferrals
/// (offers waiting for capacity, touches waiting for budget), and one statement per
/// row cost more than deciding them. Three parameters each stay far below SQLite's
/// limit of 32,766.
const DEFER_CHUNK: usize = 500;

/// Defers pending touches, `(id, until ms, reason)` each, in one statement.
async fn defer_touches(
    conn: &mut SqliteConnection,
    rows: &[(i64, i64, String)],
    at: i64,
) -> Result<(), StoreError> {
    let values = vec!["(?, ?, ?)"; rows.len()].join(", ");
    let sql = format!(
        "UPDATE touches SET due_at = v.column2, decision = 'defer', reason = v.column3, \
         until_at = v.column2, decided_at = ?, deferrals = deferrals + 1 \
         FROM (VALUES {values}) AS v WHERE touches.id = v.column1 AND touches.state = 'pending'"
    );
    // Parameters number in text order: `decided_at` comes before the VALUES.
    let mut query = sqlx::query(AssertSqlSafe(sql)).bind(at);
    for (id, until, reason) in rows {
        query = query.bind(*id).bind(*until).bind(reason.as_str());
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

// --- dispatch ---

pub(super) async fn claim_dispatch(
    conn: &mut SqliteConnection,
    now: Timestamp,
    lease_ms: i64,
    limit: u32,
) -> Result<Vec<ClaimedTouch>, StoreError> {
    let now_ms = millis(now);
    let rows = sqlx::query(
        "UPDATE touches SET next_attempt_at = $1, attempts = attempts + 1, leased = 1 \
         WHERE id IN (\
           SELECT id FROM touches WHERE state = 'queued' AND next_attempt_at <= $2 \
           ORDER BY next_attempt_at, id LIMIT $3) \
         RETURNING id, enrollment_id, contact_id, process_id, step, kind, channel, intent, \
         attempts",
    )
    .bind(now_ms.saturating_add(lease_ms))
    .bind(now_ms)
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await?;
    // Each claimed touch needs its contact and enrollment: two reads per batch, not
    // two per touch.
    let contact_ids: Vec<i64> = rows
        .iter()
        .map(|r| get(r, "contact_id"))
        .collect::<Result<_, _>>()?;
    let enrollment_ids: Vec<i64> = rows
        .iter()
        .map(|r| get(r, "enrollment_id"))
        .collect::<Result<_, _>>()?;
    let contacts = contacts_by_id(conn, &contact_ids).await?;
    let enrollments = enrollment_steps(conn, &enrollment_ids).await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for (row, (contact_id, enrollment_id)) in
        rows.iter().zip(contact_ids.iter().zip(&enrollment_ids))
    {
        let contact = match contacts.get(contact_id) {
            Some(c) => c.clone(),
            None => {
                return Err(StoreError::Corrupt(format!(
                    "touch for missing contact {contact_id}"
                )));
            }
        };
        let Some((enrollment_step, enrollment_active)) = enrollments.get(enrollment_id).copied()
        else {
            return Err(StoreError::Corrupt(format!(
                "touch for missing enrollment {enrollment_id}"
            )));
        };
        let attempts: i64 = get(row, "attempts")?;
        claimed.push(ClaimedTouch {
            touch: TouchId(get(row, "id")?),
            enrollment_id: *enrollment_id,
            contact,
            process_id: get(row, "process_id")?,
            step: step_index(row, "step")?,
            enrollment_step,
            enrollment_active,
            kind: parse_kind(&get::<String>(row, "kind")?)?,
            channel: parse_channel(&get::<String>(row, "channel")?)?,
            intent: parse_intent(&get::<String>(row, "intent")?)?,
            attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        });
    }
    Ok(claimed)
}

/// Contacts by id, for ids that exist.
async fn contacts_by_id(
    conn: &mut SqliteConnection,
    ids: &[i64],
) -> Result<HashMap<i64, Contact>, StoreError> {
    let mut out = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(DEFER_CHUNK) {
        let sql = format!(
            concat!(
                "SELECT ",
                contact_columns!(),
                " FROM contacts WHERE id IN ({})"
            ),
            vec!["?"; chunk.len()].join(", ")
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut *conn).await? {
            let contact = ContactRow::decode(&row)?.into_contact()?;
            out.insert(contact.id.0, contact);
        }
    }
    Ok(out)
}

/// `(step, active)` of each enrollment, by id.
async fn enrollment_steps(
    conn: &mut SqliteConnection,
    ids: &[i64],
) -> Result<HashMap<i64, (u32, bool)>, StoreError> {
    let mut out = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(DEFER_CHUNK) {
        let sql = format!(
            "SELECT id, step, state FROM enrollments WHERE id IN ({})",
            vec!["?"; chunk.len()].join(", ")
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut *conn).await? {
            out.insert(
                get::<i64>(&row, "id")?,
                (
                    step_index(&row, "step")?,
                    get::<String>(&row, "state")? == "active",
                ),
            );
        }
    }
    Ok(out)
}

/// Moves an active enrollment to its next step, or completes it.
async fn advance(
    conn: &mut SqliteConnection,
    enrollment_id: i64,
    next: Option<NextTouch>,
    at: i64,
) -> Result<(), StoreError> {
    match next {
        Some(next) => advance_many(conn, &[(enrollment_id, at, next)]).await,
        None => {
            sqlx::query(
                "UPDATE enrollments SET state = 'completed', ended_at = $1 \
                 WHERE id = $2 AND state = 'active'",
            )
            .bind(at)
            .bind(enrollment_id)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }
    }
}

/// Records many dispatch results; deliveries, the common case, in a few statements
/// per batch instead of three per touch.
pub(super) async fn finish_dispatches(
    conn: &mut SqliteConnection,
    finished: &[(TouchId, Timestamp, DispatchResult)],
) -> Result<(), StoreError> {
    let mut delivered = Vec::new();
    for (touch, at, result) in finished {
        match result {
            DispatchResult::Delivered { next } => delivered.push((touch.0, millis(*at), *next)),
            other => finish_dispatch(conn, *touch, *at, other).await?,
        }
    }
    for chunk in delivered.chunks(DEFER_CHUNK) {
        deliver_touches(conn, chunk).await?;
    }
    Ok(())
}

/// Marks queued touches sent, `(id, sent at, next step)` each, and moves their
/// enrollments on.
async fn deliver_touches(
    conn: &mut SqliteConnection,
    rows: &[(i64, i64, Option<NextTouch>)],
) -> Result<(), StoreError> {
    let values = vec!["(?, ?)"; rows.len()].join(", ");
    let sql = format!(
        "UPDATE touches SET state = 'sent', sent_at = v.column2, last_error = NULL, \
         next_attempt_at = NULL, leased = 0 \
         FROM (VALUES {values}) AS v WHERE touches.id = v.column1 AND touches.state = 'queued' \
         RETURNING id, enrollment_id, kind"
    );
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for (id, at, _) in rows {
        query = query.bind(*id).bind(*at);
    }
    let mut steps = HashMap::new();
    for row in query.fetch_all(&mut *conn).await? {
        if get::<String>(&row, "kind")? == "step" {
            steps.insert(get::<i64>(&row, "id")?, get::<i64>(&row, "enrollment_id")?);
        }
    }
    // In the order given, so the next touches get ids in a repeatable order.
    let mut moves = Vec::new();
    let mut completions = Vec::new();
    for (id, at, next) in rows {
        let Some(enrollment) = steps.get(id) else {
            continue;
        };
        match next {
            Some(next) => moves.push((*enrollment, *at, *next)),
            None => completions.push((*enrollment, *at)),
        }
    }
    advance_many(conn, &moves).await?;
    if !completions.is_empty() {
        let values = vec!["(?, ?)"; completions.len()].join(", ");
        let sql = format!(
            "UPDATE enrollments SET state = 'completed', ended_at = v.column2 \
             FROM (VALUES {values}) AS v \
             WHERE enrollments.id = v.column1 AND enrollments.state = 'active'"
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (enrollment, at) in &completions {
            query = query.bind(*enrollment).bind(*at);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Moves many active enrollments to their next step and plans it: one update, one
/// insert.
async fn advance_many(
    conn: &mut SqliteConnection,
    moves: &[(i64, i64, NextTouch)],
) -> Result<(), StoreError> {
    if moves.is_empty() {
        return Ok(());
    }
    let values = vec!["(?, ?)"; moves.len()].join(", ");
    let sql = format!(
        "UPDATE enrollments SET step = v.column2 FROM (VALUES {values}) AS v \
         WHERE enrollments.id = v.column1 AND enrollments.state = 'active' \
         RETURNING id, contact_id, process_id"
    );
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for (enrollment, _, next) in moves {
        query = query.bind(*enrollment).bind(i64::from(next.step.step));
    }
    let mut active = HashMap::new();
    for row in query.fetch_all(&mut *conn).await? {
        active.insert(
            get::<i64>(&row, "id")?,
            (
                get::<i64>(&row, "contact_id")?,
                get::<i64>(&row, "process_id")?,
            ),
        );
    }
    let inserts: Vec<_> = moves
        .iter()
        .filter_map(|(enrollment, at, next)| {
            active
                .get(enrollment)
                .map(|(contact, process)| (*enrollment, *contact, *process, *at, *next))
        })
        .collect();
    if inserts.is_empty() {
        return Ok(());
    }
    let values = vec!["(?, ?, ?, ?, 'step', ?, ?, 'pending', ?, ?)"; inserts.len()].join(", ");
    let sql = format!(
        "INSERT INTO touches (enrollment_id, contact_id, process_id, step, kind, channel, \
         intent, state, due_at, created_at) VALUES {values}"
    );
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for (enrollment, contact, process, at, next) in &inserts {
        query = query
            .bind(*enrollment)
            .bind(*contact)
            .bind(*process)
            .bind(i64::from(next.step.step))
            .bind(channel_str(next.step.channel))
            .bind(intent_str(next.step.intent))
            .bind(millis(next.due_at))
            .bind(*at);
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

pub(super) async fn finish_dispatch(
    conn: &mut SqliteConnection,
    touch: TouchId,
    at: Timestamp,
    result: &DispatchResult,
) -> Result<(), StoreError> {
    let at = millis(at);
    match result {
        DispatchResult::Delivered { next } => {
            let row = sqlx::query(
                "UPDATE touches SET state = 'sent', sent_at = $1, last_error = NULL, \
                 next_attempt_at = NULL, leased = 0 WHERE id = $2 AND state = 'queued' \
                 RETURNING enrollment_id, kind",
            )
            .bind(at)
            .bind(touch.0)
            .fetch_optional(&mut *conn)
            .await?;
            if let Some(row) = row
                && get::<String>(&row, "kind")? == "step"
            {
                advance(conn, get(&row, "enrollment_id")?, *next, at).await?;
            }
        }
        DispatchResult::Retry { error, retry_at } => {
            sqlx::query(
                "UPDATE touches SET next_attempt_at = $1, last_error = $2, leased = 0 \
                 WHERE id = $3 AND state = 'queued'",
            )
            .bind(millis(*retry_at))
            .bind(error.as_str())
            .bind(touch.0)
            .execute(&mut *conn)
            .await?;
        }
        DispatchResult::Failed { error, next } => {
            let row = sqlx::query(
                "UPDATE touches SET state = 'failed', last_error = $1, next_attempt_at = NULL, \
                 leased = 0 WHERE id = $2 AND state = 'queued' RETURNING enrollment_id, kind",
            )
            .bind(error.as_str())
            .bind(touch.0)
            .fetch_optional(&mut *conn)
            .await?;
            if let Some(row) = row
                && get::<String>(&row, "kind")? == "step"
            {
                advance(conn, get(&row, "enrollment_id")?, *next, at).await?;
            }
        }
        DispatchResult::Bounced { error } => {
            let row = sqlx::query(
                "UPDATE touches SET state = 'failed', last_error = $1, next_attempt_at = NULL, \
                 leased = 0 WHERE id = $2 AND state = 'queued' RETURNING contact_id",
            )
            .bind(error.as_str())
            .bind(touch.0)
            .fetch_optional(&mut *conn)
            .await?;
            if let Some(row) = row {
                suppress(conn, ContactId(get(&row, "contact_id")?), "bounced", at).await?;
            }
        }
    }
    Ok(())
}

pub(super) async fn release_claims(
    conn: &mut SqliteConnection,
    touches: &[TouchId],
    at: Timestamp,
) -> Result<(), StoreError> {
    for touch in touches {
        sqlx::query(
            "UPDATE touches SET next_attempt_at = $1, leased = 0, \
             attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END \
             WHERE id = $2 AND state = 'queued' AND leased = 1",
        )
        .bind(millis(at))
        .bind(touch.0)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub(super) async fn release_all_claims(
    conn: &mut SqliteConnection,
    at: Timestamp,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "UPDATE touches SET next_attempt_at = $1, leased = 0 \
         WHERE state = 'queued' AND leased = 1",
    )
    .bind(millis(at))
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

/// Records an event for a known contact (a task's outcome) and the stage change it
/// maps to, as ingest would; a repeated `message_id` changes nothing.
pub(super) async fn track_for_contact(
    conn: &mut SqliteConnection,
    contact: ContactId,
    name: &str,
    message_id: &str,
    properties: &serde_json::Value,
    stage: Option<&StageName>,
    at: i64,
) -> Result<bool, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO events (message_id, contact_id, kind, name, properties, occurred_at, \
         received_at) VALUES ($1, $2, 'track', $3, $4, $5, $5) \
         ON CONFLICT (message_id) DO NOTHING",
    )
    .bind(message_id)
    .bind(contact.0)
    .bind(name)
    .bind(properties.to_string())
    .bind(at)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Ok(false);
    }
    let Some(stage) = stage else {
        return Ok(true);
    };
    let row = sqlx::query("SELECT stage FROM contacts WHERE id = $1")
        .bind(contact.0)
        .fetch_optional(&mut *conn)
        .await?;
    let from: Option<String> = row.map(|row| get(&row, "stage")).transpose()?;
    if from.as_deref().is_some_and(|from| from != stage.as_str()) {
        sqlx::query("UPDATE contacts SET stage = $1, updated_at = $2 WHERE id = $3")
            .bind(stage.as_str())
            .bind(at)
            .bind(contact.0)
            .execute(&mut *conn)
            .await?;
        sqlx::query(
            "INSERT INTO stage_history (contact_id, from_stage, to_stage, reason, message_id, \
             at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(contact.0)
        .bind(from)
        .bind(stage.as_str())
        .bind(name)
        .bind(message_id)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(true)
}

pub(super) async fn next_at(
    conn: &mut SqliteConnection,
    sql: &'static str,
) -> Result<Option<Timestamp>, StoreError> {
    let row = sqlx::query(sql).fetch_one(&mut *conn).await?;
    let at: Option<i64> = get(&row, "next")?;
    opt_timestamp(at, "next instant")
}

pub(super) async fn pace_counts(conn: &mut SqliteConnection) -> Result<PaceCounts, StoreError> {
    let held = sqlx::query(
        "SELECT reason, COUNT(*) AS n FROM touches \
         WHERE state = 'pending' AND reason IS NOT NULL GROUP BY reason ORDER BY reason",
    )
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|row| Ok((get(row, "reason")?, get::<i64>(row, "n")?.max(0) as u64)))
    .collect::<Result<Vec<_>, StoreError>>()?;
    let enrolled = sqlx::query(
        "SELECT process_id, COUNT(*) AS n FROM enrollments WHERE state = 'active' \
         GROUP BY process_id ORDER BY process_id",
    )
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|row| Ok((get(row, "process_id")?, get::<i64>(row, "n")?.max(0) as u64)))
    .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(PaceCounts { held, enrolled })
}

// --- reports ---

pub(super) async fn funnel(
    conn: &mut SqliteConnection,
    from: Timestamp,
    to: Timestamp,
) -> Result<FunnelCounts, StoreError> {
    let stages = sqlx::query("SELECT stage, COUNT(*) AS n FROM contacts GROUP BY stage")
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| Ok((get(row, "stage")?, get::<i64>(row, "n")?.max(0) as u64)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    let moves = sqlx::query(
        "SELECT from_stage, to_stage, COUNT(*) AS n FROM stage_history \
         WHERE at >= $1 AND at < $2 GROUP BY from_stage, to_stage",
    )
    .bind(millis(from))
    .bind(millis(to))
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|row| {
        Ok((
            get(row, "from_stage")?,
            get(row, "to_stage")?,
            get::<i64>(row, "n")?.max(0) as u64,
        ))
    })
    .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(FunnelCounts { stages, moves })
}

pub(super) async fn conversions(
    conn: &mut SqliteConnection,
    stage: &StageName,
) -> Result<Vec<Conversion>, StoreError> {
    let rows = sqlx::query(
        "SELECT f.contact_id, f.at, (SELECT COUNT(*) FROM touches t \
           WHERE t.contact_id = f.contact_id AND t.admitted_at IS NOT NULL \
           AND t.admitted_at <= f.at) AS touches \
         FROM (SELECT contact_id, MIN(at) AS at FROM stage_history WHERE to_stage = $1 \
           GROUP BY contact_id) f ORDER BY f.at",
    )
    .bind(stage.as_str())
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Conversion {
                contact: ContactId(get(row, "contact_id")?),
                at: timestamp(get(row, "at")?, "conversion at")?,
                touches: get::<i64>(row, "touches")?.max(0) as u64,
            })
        })
        .collect()
}

pub(super) async fn admitted_since(
    conn: &mut SqliteConnection,
    since: Timestamp,
) -> Result<Vec<(Timestamp, Channel)>, StoreError> {
    let rows = sqlx::query(
        "SELECT admitted_at, channel FROM touches WHERE admitted_at >= $1 ORDER BY admitted_at",
    )
    .bind(millis(since))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                timestamp(get(row, "admitted_at")?, "admitted_at")?,
                parse_channel(&get::<String>(row, "channel")?)?,
            ))
        })
        .collect()
}

pub(super) async fn work_log_since(
    conn: &mut SqliteConnection,
    since: Timestamp,
) -> Result<Vec<(Timestamp, f64)>, StoreError> {
    let rows = sqlx::query("SELECT at, delta FROM work_log WHERE at >= $1 ORDER BY at, id")
        .bind(millis(since))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|row| {
            Ok((
                timestamp(get(row, "at")?, "work_log at")?,
                get(row, "delta")?,
            ))
        })
        .collect()
}

pub(super) async fn neglect(
    conn: &mut SqliteConnection,
    max_gaps: &[(i64, i64)],
    limit: u32,
) -> Result<Vec<NeglectRow>, StoreError> {
    if max_gaps.is_empty() {
        return Ok(Vec::new());
    }
    let mut gap = String::from("CASE e.process_id");
    for _ in max_gaps {
        gap.push_str(" WHEN ? THEN ?");
    }
    gap.push_str(" END");
    let sql = format!(
        "SELECT e.contact_id, e.process_id, e.enrolled_at, c.last_touch_at, c.name, c.email, \
         (CASE WHEN c.last_touch_at IS NOT NULL AND c.last_touch_at > e.enrolled_at \
          THEN c.last_touch_at ELSE e.enrolled_at END) + {gap} AS deadline \
         FROM enrollments e JOIN contacts c ON c.id = e.contact_id \
         WHERE e.state = 'active' AND e.process_id IN ({}) \
         ORDER BY deadline, e.id LIMIT ?",
        vec!["?"; max_gaps.len()].join(", ")
    );
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for (process, gap_ms) in max_gaps {
        query = query.bind(*process).bind(*gap_ms);
    }
    for (process, _) in max_gaps {
        query = query.bind(*process);
    }
    let rows = query.bind(i64::from(limit)).fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|row| {
            Ok(NeglectRow {
                contact_id: ContactId(get(row, "contact_id")?),
                name: get(row, "name")?,
                email: get(row, "email")?,
                process_id: get(row, "process_id")?,
                last_touch_at: opt_timestamp(get(row, "last_touch_at")?, "last_touch_at")?,
                enrolled_at: timestamp(get(row, "enrolled_at")?, "enrolled_at")?,
                deadline: timestamp(get(row, "deadline")?, "deadline")?,
            })
        })
        .collect()
}

// --- suppression ---

pub(super) async fn suppress(
    conn: &mut SqliteConnection,
    id: ContactId,
    reason: &str,
    at: i64,
) -> Result<bool, StoreError> {
    let row = sqlx::query(
        "UPDATE contacts SET suppressed_at = COALESCE(suppressed_at, $1) WHERE id = $2 \
         RETURNING id",
    )
    .bind(at)
    .bind(id.0)
    .fetch_optional(&mut *conn)
    .await?;
    if row.is_none() {
        return Ok(false);
    }
    exit(conn, id, None, reason, at).await?;
    // Touches of enrollments that already ended (keep-warm, retries) go too, and so do
    // open tasks: nobody calls a person who asked to hear nothing more.
    sqlx::query(
        "UPDATE touches SET state = 'cancelled', reason = 'suppressed' \
         WHERE contact_id = $1 AND state IN ('pending', 'queued', 'open')",
    )
    .bind(id.0)
    .execute(&mut *conn)
    .await?;
    Ok(true)
}

// --- tasks ---

const TASK_SELECT: &str = "SELECT t.id AS id, t.contact_id, c.name AS contact_name, \
     c.email AS contact_email, p.key AS process, t.step, t.title, t.minutes, t.due_at AS due_at, \
     t.state, t.completed_at, t.outcome, t.note \
     FROM touches t JOIN contacts c ON c.id = t.contact_id \
     JOIN processes p ON p.id = t.process_id";

fn task_view(row: &SqliteRow) -> Result<TaskView, StoreError> {
    let id: i64 = get(row, "id")?;
    let what = format!("task {id}");
    let minutes: Option<i64> = get(row, "minutes")?;
    Ok(TaskView {
        id: TouchId(id),
        contact_id: ContactId(get(row, "contact_id")?),
        contact_name: get(row, "contact_name")?,
        contact_email: get(row, "contact_email")?,
        process: get(row, "process")?,
        step: step_index(row, "step")?,
        title: get::<Option<String>>(row, "title")?.unwrap_or_default(),
        minutes: u32::try_from(minutes.unwrap_or(0)).unwrap_or(0),
        due_at: timestamp(get(row, "due_at")?, &what)?,
        state: get(row, "state")?,
        completed_at: opt_timestamp(get(row, "completed_at")?, &what)?,
        outcome: get(row, "outcome")?,
        note: get(row, "note")?,
    })
}

pub(super) async fn tasks(
    conn: &mut SqliteConnection,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<TaskView>, StoreError> {
    let sql = format!(
        "{TASK_SELECT} WHERE t.channel = 'task' AND t.state = 'open' AND t.due_at < $1 \
         UNION ALL {TASK_SELECT} WHERE t.channel = 'task' AND t.state IN ('done', 'skipped') \
         AND t.completed_at >= $2 AND t.completed_at < $1 \
         ORDER BY due_at, id"
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(millis(to))
        .bind(millis(from))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(task_view).collect()
}

pub(super) async fn task(
    conn: &mut SqliteConnection,
    id: TouchId,
) -> Result<Option<TaskView>, StoreError> {
    let sql =
        format!("{TASK_SELECT} WHERE t.id = $1 AND t.channel = 'task' AND t.title IS NOT NULL");
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(task_view).transpose()
}

pub(super) async fn finish_task(
    conn: &mut SqliteConnection,
    id: TouchId,
    at: Timestamp,
    end: &TaskEnd,
    next: Option<NextTouch>,
) -> Result<bool, StoreError> {
    let at = millis(at);
    let (state, outcome, note) = match end {
        TaskEnd::Done { outcome, note } => ("done", Some(outcome.as_str()), note.as_deref()),
        TaskEnd::Skipped { note } => ("skipped", None, note.as_deref()),
    };
    let row = sqlx::query(
        "UPDATE touches SET state = $1, completed_at = $2, outcome = $3, note = $4, \
         decision = CASE WHEN $1 = 'skipped' THEN 'skip' ELSE decision END \
         WHERE id = $5 AND channel = 'task' AND state = 'open' RETURNING enrollment_id",
    )
    .bind(state)
    .bind(at)
    .bind(outcome)
    .bind(note)
    .bind(id.0)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(false);
    };
    advance(conn, get(&row, "enrollment_id")?, next, at).await?;
    Ok(true)
}

// --- a contact's engine history ---

pub(super) async fn enrollments_of(
    conn: &mut SqliteConnection,
    contact: ContactId,
) -> Result<Vec<EnrollmentView>, StoreError> {
    let rows = sqlx::query(
        "SELECT e.id, p.key AS process, e.state, e.step, e.enrolled_at, e.touches, \
         e.last_touch_at, e.ended_at, e.end_reason \
         FROM enrollments e JOIN processes p ON p.id = e.process_id \
         WHERE e.contact_id = $1 ORDER BY e.enrolled_at DESC, e.id DESC",
    )
    .bind(contact.0)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let id: i64 = get(row, "id")?;
            let what = format!("enrollment {id}");
            Ok(EnrollmentView {
                id,
                process: get(row, "process")?,
                state: get(row, "state")?,
                step: step_index(row, "step")?,
                enrolled_at: timestamp(get(row, "enrolled_at")?, &what)?,
                touches: u32::try_from(get::<i64>(row, "touches")?).unwrap_or(0),
                last_touch_at: opt_timestamp(get(row, "last_touch_at")?, &what)?,
                ended_at: opt_timestamp(get(row, "ended_at")?, &what)?,
                end_reason: get(row, "end_reason")?,
            })
        })
        .collect()
}

pub(super) async fn touches_of(
    conn: &mut SqliteConnection,
    contact: ContactId,
    limit: u32,
) -> Result<Vec<TouchView>, StoreError> {
    let rows = sqlx::query(
        "SELECT t.id, p.key AS process, t.step, t.kind, t.channel, t.intent, t.state, \
         t.due_at, t.created_at, t.decision, t.reason, t.until_at, t.decided_at, t.deferrals, \
         t.admitted_at, t.probability, t.responded_at, t.sent_at, t.attempts, t.last_error, \
         t.title, t.completed_at, t.outcome \
         FROM touches t JOIN processes p ON p.id = t.process_id \
         WHERE t.contact_id = $1 ORDER BY t.id DESC LIMIT $2",
    )
    .bind(contact.0)
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let id: i64 = get(row, "id")?;
            let what = format!("touch {id}");
            Ok(TouchView {
                id: TouchId(id),
                process: get(row, "process")?,
                step: step_index(row, "step")?,
                kind: get(row, "kind")?,
                channel: get(row, "channel")?,
                intent: get(row, "intent")?,
                state: get(row, "state")?,
                due_at: timestamp(get(row, "due_at")?, &what)?,
                created_at: timestamp(get(row, "created_at")?, &what)?,
                decision: get(row, "decision")?,
                reason: get(row, "reason")?,
                until: opt_timestamp(get(row, "until_at")?, &what)?,
                decided_at: opt_timestamp(get(row, "decided_at")?, &what)?,
                deferrals: u32::try_from(get::<i64>(row, "deferrals")?).unwrap_or(0),
                admitted_at: opt_timestamp(get(row, "admitted_at")?, &what)?,
                probability: get(row, "probability")?,
                responded_at: opt_timestamp(get(row, "responded_at")?, &what)?,
                sent_at: opt_timestamp(get(row, "sent_at")?, &what)?,
                attempts: u32::try_from(get::<i64>(row, "attempts")?).unwrap_or(0),
                last_error: get(row, "last_error")?,
                title: get(row, "title")?,
                completed_at: opt_timestamp(get(row, "completed_at")?, &what)?,
                outcome: get(row, "outcome")?,
            })
        })
        .collect()
}

/// Moves a merged-away contact's enrollments and touches to the record that stays; where
/// both were active in the same process, the one being merged away exits.
pub(super) async fn merge_contacts(
    conn: &mut SqliteConnection,
    keep: i64,
    gone: i64,
    at: i64,
) -> Result<(), StoreError> {
    let rows = sqlx::query(
        "UPDATE enrollments SET state = 'exited', ended_at = $1, end_reason = 'merged' \
         WHERE contact_id = $2 AND state = 'active' AND process_id IN (\
           SELECT process_id FROM enrollments WHERE contact_id = $3 AND state = 'active') \
         RETURNING id",
    )
    .bind(at)
    .bind(gone)
    .bind(keep)
    .fetch_all(&mut *conn)
    .await?;
    let ids = rows
        .iter()
        .map(|r| get::<i64>(r, "id"))
        .collect::<Result<Vec<_>, _>>()?;
    cancel_planned(conn, &ids, "merged").await?;
    for sql in [
        "UPDATE enrollments SET contact_id = $1 WHERE contact_id = $2",
        "UPDATE touches SET contact_id = $1 WHERE contact_id = $2",
    ] {
        sqlx::query(sql)
            .bind(keep)
            .bind(gone)
            .execute(&mut *conn)
            .await?;
    }
    let row = sqlx::query("SELECT last_touch_at FROM contacts WHERE id = $1")
        .bind(gone)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(row) = row
        && let Some(last) = get::<Option<i64>>(&row, "last_touch_at")?
    {
        sqlx::query(
            "UPDATE contacts SET last_touch_at = CASE \
             WHEN last_touch_at IS NULL OR last_touch_at < $1 THEN $1 ELSE last_touch_at END \
             WHERE id = $2",
        )
        .bind(last)
        .bind(keep)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
