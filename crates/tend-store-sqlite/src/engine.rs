//! The engine's statements: process sync, signal reading, enrollment, decisions,
//! dispatch leases, tasks. Each public function runs inside the caller's transaction or
//! on the caller's pool; the `Store` impl decides which.

use super::sql::{self, Binds, ContactRow, contact_columns, get, get_at, millis, timestamp};
use super::suppress;
use crate::sql::db;
use jiff::Timestamp;
use rusqlite::{Connection, Row, ToSql, params};
use std::collections::{HashMap, HashSet};
use tend_core::pacer::{Channel, Intent, TouchId};
use tend_core::{ContactId, StageName};
use tend_store::engine::*;
use tend_store::suppression::AddressKeys;
use tend_store::{Contact, StoreError};

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

/// A `COUNT(*) AS n` column.
fn count(row: &Row<'_>) -> Result<u64, StoreError> {
    Ok(get::<i64>(row, "n")?.max(0) as u64)
}

fn step_index(row: &Row<'_>, column: &str) -> Result<u32, StoreError> {
    step_number(get(row, column)?, column)
}

fn step_number(step: i64, column: &str) -> Result<u32, StoreError> {
    u32::try_from(step).map_err(|_| StoreError::Corrupt(format!("`{column}` is {step}")))
}

fn opt_timestamp(ms: Option<i64>, what: &str) -> Result<Option<Timestamp>, StoreError> {
    ms.map(|ms| timestamp(ms, what)).transpose()
}

// --- engine_state ---

pub(super) fn value(conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    sql::fetch_optional(
        conn,
        "SELECT value FROM engine_state WHERE key = ?1",
        params![key],
        |row| get(row, "value"),
    )
}

pub(super) fn set_value(conn: &Connection, key: &str, value: &str) -> Result<(), StoreError> {
    sql::execute(
        conn,
        "INSERT INTO engine_state (key, value) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

pub(super) fn cursor(conn: &Connection) -> Result<SignalCursor, StoreError> {
    match value(conn, CURSOR_KEY)? {
        None => Ok(SignalCursor::default()),
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| StoreError::Corrupt(format!("signal cursor `{text}`: {e}"))),
    }
}

pub(super) fn start_cursor(conn: &Connection) -> Result<SignalCursor, StoreError> {
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

pub(super) fn stored_processes(conn: &Connection) -> Result<Vec<StoredProcess>, StoreError> {
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

pub(super) fn sync_process(
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
                        channel_str(to.channel),
                        intent_str(to.intent),
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
                cancel_planned(conn, &ids, "steps removed")?;
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
                channel_str(backfill.first.channel),
                intent_str(backfill.first.intent),
                millis(backfill.due_at),
                at,
                process_id
            ],
        )?;
    }
    Ok(outcome)
}

/// Cancels the pending and queued touches of ended enrollments.
fn cancel_planned(
    conn: &Connection,
    enrollment_ids: &[i64],
    reason: &str,
) -> Result<(), StoreError> {
    for id in enrollment_ids {
        sql::execute(
            conn,
            "UPDATE touches SET state = 'cancelled', reason = ?1 \
             WHERE enrollment_id = ?2 AND state IN ('pending', 'queued')",
            params![reason, *id],
        )?;
    }
    Ok(())
}

// --- signals ---

pub(super) fn read_signals(
    conn: &Connection,
    after: SignalCursor,
    event_names: &[String],
    limit: u32,
) -> Result<SignalBatch, StoreError> {
    let limit = i64::from(limit.max(1));
    let mut next = after;
    // (at, rank, id): at equal instants an event comes before the stage change it caused.
    let mut keyed: Vec<((i64, u8, i64), Signal)> = Vec::new();

    let changes = sql::fetch_all(
        conn,
        "SELECT id, contact_id, from_stage, to_stage, at FROM stage_history \
         WHERE id > ?1 ORDER BY id LIMIT ?2",
        params![after.stage_history, limit],
        |row| {
            let id: i64 = get(row, "id")?;
            let at: i64 = get(row, "at")?;
            let from: Option<String> = get(row, "from_stage")?;
            let signal = Signal::StageEntered {
                contact: ContactId(get(row, "contact_id")?),
                from: from.map(StageName::new),
                to: StageName::new(get::<String>(row, "to_stage")?),
                at: timestamp(at, "stage change at")?,
            };
            Ok(((at, 1, id), signal))
        },
    )?;
    if let Some(((_, _, last), _)) = changes.last() {
        next.stage_history = *last;
    }
    keyed.extend(changes);

    let top: Option<i64> = sql::fetch_one(conn, "SELECT MAX(id) AS top FROM events", [], |row| {
        get(row, "top")
    })?;
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
            let mut binds: Binds<'_> = vec![&after.events, &top];
            binds.extend(event_names.iter().map(|name| name as &dyn ToSql));
            binds.push(&limit);
            let events = sql::fetch_binds(conn, &sql, &binds, |row| {
                let id: i64 = get(row, "id")?;
                let at: i64 = get(row, "occurred_at")?;
                let signal = Signal::Event {
                    contact: ContactId(get(row, "contact_id")?),
                    name: get(row, "name")?,
                    at: timestamp(at, "event occurred_at")?,
                };
                Ok(((at, 0, id), signal))
            })?;
            // A short page read everything up to `top`; a full one stops at its last row.
            next.events = match events.last() {
                Some(((_, _, last), _)) if events.len() as i64 >= limit => *last,
                _ => top,
            };
            keyed.extend(events);
        }
    }
    keyed.sort_by_key(|(key, _)| *key);
    Ok(SignalBatch {
        signals: keyed.into_iter().map(|(_, s)| s).collect(),
        next,
    })
}

pub(super) fn apply_signals(
    conn: &Connection,
    from: SignalCursor,
    to: SignalCursor,
    actions: &[EngineAction],
    at: Timestamp,
) -> Result<ApplyOutcome, StoreError> {
    let current = cursor(conn)?;
    if current != from {
        return Err(StoreError::Conflict(format!(
            "the signal cursor moved from {from:?} to {current:?}: another engine runs on this \
             database"
        )));
    }
    let at_ms = millis(at);
    let mut outcome = ApplyOutcome::default();
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
                )? {
                    outcome.enrolled += 1;
                }
            }
            EngineAction::Exit {
                contact,
                process_id,
                reason,
            } => {
                outcome.exited += exit(conn, *contact, *process_id, reason, at_ms)?;
            }
            EngineAction::OpenWork(delta) => {
                if *delta < 0.0 {
                    outcome.work_closed += 1;
                }
                let open = match value(conn, OPEN_WORK_KEY)? {
                    Some(text) => text.parse::<f64>().unwrap_or(0.0),
                    None => 0.0,
                };
                let open = (open + delta).max(0.0);
                set_value(conn, OPEN_WORK_KEY, &open.to_string())?;
                sql::execute(
                    conn,
                    "INSERT INTO work_log (at, delta) VALUES (?1, ?2)",
                    params![at_ms, *delta],
                )?;
            }
            EngineAction::Responded { contact, since } => {
                let answered = sql::fetch_optional(
                    conn,
                    "UPDATE touches SET responded_at = ?1 WHERE id = (\
                       SELECT id FROM touches WHERE contact_id = ?2 AND intent = 'offer' \
                       AND admitted_at >= ?3 AND responded_at IS NULL \
                       ORDER BY admitted_at DESC, id DESC LIMIT 1) \
                     RETURNING process_id, step, admitted_at",
                    params![at_ms, contact.0, millis(*since)],
                    |row| {
                        Ok((
                            get::<i64>(row, "process_id")?,
                            get::<i64>(row, "step")?,
                            get::<i64>(row, "admitted_at")?,
                        ))
                    },
                )?;
                if let Some((process_id, step, admitted_at)) = answered {
                    let delay_days = (at_ms - admitted_at).max(0) as f64 / 86_400_000.0;
                    sql::execute(
                        conn,
                        "UPDATE offer_stats SET responded = responded + 1, \
                         delays = delays + 1, delay_days_sum = delay_days_sum + ?3 \
                         WHERE process_id = ?1 AND step = ?2",
                        params![process_id, step, delay_days],
                    )?;
                    outcome.responses += 1;
                }
            }
        }
    }
    let text = serde_json::to_string(&to).expect("a cursor serializes");
    set_value(conn, CURSOR_KEY, &text)?;
    Ok(outcome)
}

/// Makes up to `limit` offers held back by capacity due now, those whose contacts have
/// waited longest since their last touch (or enrollment) first, as the pacer ranks them.
pub(super) fn wake_capacity_held(
    conn: &Connection,
    at: i64,
    limit: u32,
) -> Result<u64, StoreError> {
    sql::execute(
        conn,
        "UPDATE touches SET due_at = ?1 WHERE id IN (\
           SELECT t.id FROM touches t JOIN enrollments e ON e.id = t.enrollment_id \
           JOIN contacts c ON c.id = t.contact_id \
           WHERE t.state = 'pending' AND t.reason = 'capacity' AND t.due_at > ?1 \
           ORDER BY MAX(COALESCE(c.last_touch_at, e.enrolled_at), e.enrolled_at), t.id \
           LIMIT ?2)",
        params![at, limit],
    )
}

fn enroll(
    conn: &Connection,
    contact: ContactId,
    process_id: i64,
    first: StepSpec,
    due_at: Timestamp,
    reenroll: bool,
    at: i64,
) -> Result<bool, StoreError> {
    let enrolled = sql::fetch_optional(
        conn,
        "INSERT INTO enrollments (contact_id, process_id, state, step, enrolled_at) \
         SELECT c.id, ?1, 'active', ?2, ?3 FROM contacts c \
         WHERE c.id = ?4 AND c.suppressed_at IS NULL AND NOT EXISTS (\
           SELECT 1 FROM enrollments e WHERE e.contact_id = c.id AND e.process_id = ?1 \
           AND (e.state = 'active' OR ?5 = 0)) \
         RETURNING id",
        params![process_id, i64::from(first.step), at, contact.0, reenroll],
        |row| get::<i64>(row, "id"),
    )?;
    let Some(enrollment_id) = enrolled else {
        return Ok(false);
    };
    insert_pending(
        conn,
        enrollment_id,
        contact.0,
        process_id,
        first,
        millis(due_at),
        at,
    )?;
    Ok(true)
}

fn insert_pending(
    conn: &Connection,
    enrollment_id: i64,
    contact_id: i64,
    process_id: i64,
    step: StepSpec,
    due_at: i64,
    at: i64,
) -> Result<(), StoreError> {
    sql::execute(
        conn,
        "INSERT INTO touches (enrollment_id, contact_id, process_id, step, kind, channel, \
         intent, state, due_at, created_at) \
         VALUES (?1, ?2, ?3, ?4, 'step', ?5, ?6, 'pending', ?7, ?8)",
        params![
            enrollment_id,
            contact_id,
            process_id,
            i64::from(step.step),
            channel_str(step.channel),
            intent_str(step.intent),
            due_at,
            at
        ],
    )?;
    Ok(())
}

pub(super) fn exit(
    conn: &Connection,
    contact: ContactId,
    process_id: Option<i64>,
    reason: &str,
    at: i64,
) -> Result<u64, StoreError> {
    let id = |row: &Row<'_>| get::<i64>(row, "id");
    let ids = match process_id {
        Some(process_id) => sql::fetch_all(
            conn,
            "UPDATE enrollments SET state = 'exited', ended_at = ?1, end_reason = ?2 \
             WHERE contact_id = ?3 AND process_id = ?4 AND state = 'active' RETURNING id",
            params![at, reason, contact.0, process_id],
            id,
        )?,
        None => sql::fetch_all(
            conn,
            "UPDATE enrollments SET state = 'exited', ended_at = ?1, end_reason = ?2 \
             WHERE contact_id = ?3 AND state = 'active' RETURNING id",
            params![at, reason, contact.0],
            id,
        )?,
    };
    cancel_planned(conn, &ids, "exited")?;
    Ok(ids.len() as u64)
}

// --- due touches and decisions ---

pub(super) fn due_touches(
    conn: &Connection,
    keys: &AddressKeys,
    now: Timestamp,
    limit: u32,
) -> Result<DueBatch, StoreError> {
    let now_ms = millis(now);
    let touches = sql::fetch_all(
        conn,
        "SELECT t.id, t.contact_id, t.process_id, t.step, t.kind, t.channel, t.intent, \
         t.due_at, e.enrolled_at, e.state AS enrollment_state \
         FROM touches t JOIN enrollments e ON e.id = t.enrollment_id \
         WHERE t.state = 'pending' AND t.due_at <= ?1 ORDER BY t.due_at, t.id LIMIT ?2",
        params![now_ms, limit],
        // By position: the pacer's batches are the engine's hottest read.
        |row| {
            let text = |i, column| get_at::<String>(row, i, column);
            Ok(DueRow {
                touch: TouchId(get_at(row, 0, "id")?),
                contact: ContactId(get_at(row, 1, "contact_id")?),
                process_id: get_at(row, 2, "process_id")?,
                step: step_number(get_at(row, 3, "step")?, "step")?,
                kind: parse_kind(&text(4, "kind")?)?,
                channel: parse_channel(&text(5, "channel")?)?,
                intent: parse_intent(&text(6, "intent")?)?,
                due_at: timestamp(get_at(row, 7, "due_at")?, "touch due_at")?,
                enrolled_at: timestamp(get_at(row, 8, "enrolled_at")?, "enrolled_at")?,
                active: text(9, "enrollment_state")? == "active",
            })
        },
    )?;
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
        ContactRow::decode,
    )?;
    let recent = recent_touches(conn, &ids, now_ms - 7 * 86_400_000)?;
    let mut contacts = Vec::with_capacity(contact_rows.len());
    let mut seen = std::collections::HashSet::new();
    for row in contact_rows {
        if !seen.insert(row.id) {
            continue;
        }
        let contact = row.into_contact()?;
        // By the address too: a record can hold an address that said no after it was
        // last mailed (the pacer then skips its calls and webhooks as well).
        let suppressed = contact.suppressed_at.is_some()
            || match contact.email.as_deref() {
                Some(email) => suppress::address_suppressed(conn, keys, email)?,
                None => false,
            };
        contacts.push(PacingContact {
            id: contact.id,
            suppressed,
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

/// Touches admitted after `since` for each contact, with their channel.
fn recent_touches(
    conn: &Connection,
    ids: &[i64],
    since: i64,
) -> Result<HashMap<i64, Vec<(Timestamp, Channel)>>, StoreError> {
    let mut admitted = conn
        .prepare_cached(
            "SELECT admitted_at, channel FROM touches WHERE contact_id = ?1 AND admitted_at > ?2",
        )
        .map_err(db)?;
    let mut recent: HashMap<i64, Vec<(Timestamp, Channel)>> = HashMap::new();
    for id in ids {
        let mut rows = admitted.query(params![id, since]).map_err(db)?;
        while let Some(row) = rows.next().map_err(db)? {
            let at: i64 = get(row, "admitted_at")?;
            let channel = parse_channel(&get::<String>(row, "channel")?)?;
            recent
                .entry(*id)
                .or_default()
                .push((timestamp(at, "admitted_at")?, channel));
        }
    }
    Ok(recent)
}

pub(super) fn pacing_snapshot(
    conn: &Connection,
    in_flight_since: Timestamp,
    now: Timestamp,
    by_step: bool,
) -> Result<PacingSnapshot, StoreError> {
    let budget = value(conn, BUDGET_KEY)?;
    let open_work = match value(conn, OPEN_WORK_KEY)? {
        Some(text) => text
            .parse::<f64>()
            .map_err(|e| StoreError::Corrupt(format!("open work `{text}`: {e}")))?,
        None => 0.0,
    };
    let expected_in_flight: f64 = sql::fetch_one(
        conn,
        "SELECT COALESCE(SUM(COALESCE(probability, 0) \
         * MIN(1.0, CAST(admitted_at - ?1 AS REAL) / ?2)), 0.0) AS expected FROM touches \
         WHERE intent = 'offer' AND responded_at IS NULL AND admitted_at IS NOT NULL \
         AND admitted_at >= ?1",
        params![
            millis(in_flight_since),
            (millis(now) - millis(in_flight_since)).max(1) as f64
        ],
        |row| get(row, "expected"),
    )?;
    let in_flight = if !by_step {
        Vec::new()
    } else {
        sql::fetch_all(
            conn,
            "SELECT process_id, step, (?2 - admitted_at) / 21600000 * 6 AS age_hours, \
         COUNT(*) AS offers, COALESCE(SUM(COALESCE(probability, 0)), 0.0) AS probability \
         FROM touches WHERE intent = 'offer' AND responded_at IS NULL \
         AND admitted_at IS NOT NULL AND admitted_at >= ?1 \
         GROUP BY process_id, step, age_hours",
            params![millis(in_flight_since), millis(now)],
            |row| {
                Ok(InFlightOffers {
                    process_id: get(row, "process_id")?,
                    step: step_index(row, "step")?,
                    age_hours: get::<i64>(row, "age_hours")?.clamp(0, i64::from(u32::MAX)) as u32,
                    offers: get::<i64>(row, "offers")?.max(0) as u64,
                    probability: get(row, "probability")?,
                })
            },
        )?
    };
    let offer_stats = sql::fetch_all(
        conn,
        "SELECT process_id, step, sent, responded, delays, delay_days_sum FROM offer_stats",
        [],
        |row| {
            Ok(OfferStat {
                process_id: get(row, "process_id")?,
                step: step_index(row, "step")?,
                sent: get::<i64>(row, "sent")?.max(0) as u64,
                responded: get::<i64>(row, "responded")?.max(0) as u64,
                delays: get::<i64>(row, "delays")?.max(0) as u64,
                delay_days_sum: get(row, "delay_days_sum")?,
            })
        },
    )?;
    Ok(PacingSnapshot {
        budget,
        open_work,
        expected_in_flight,
        in_flight,
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

fn admitted(row: &Row<'_>) -> Result<Admitted, StoreError> {
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

pub(super) fn record_decisions(
    conn: &Connection,
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
                     until_at = NULL, decided_at = ?1, admitted_at = ?1, sent_at = ?1, \
                     probability = ?2, title = ?3, minutes = ?4, due_at = ?5 \
                     WHERE id = ?6 AND state = 'pending' RETURNING {ADMITTED_COLUMNS}"
                );
                let opened = sql::fetch_optional(
                    conn,
                    &sql,
                    params![at, probability, title, minutes, millis(*due_at), touch.0],
                    admitted,
                )?;
                if let Some(opened) = opened {
                    count_touches(conn, &[opened], at)?;
                }
            }
            DecisionRecord::Defer {
                touch,
                until,
                reason,
            } => deferred.push((touch.0, millis(*until), reason.to_string())),
            DecisionRecord::Substitute { touch, retry_at } => {
                let held = sql::fetch_optional(
                    conn,
                    "UPDATE touches SET due_at = ?1, decision = 'substitute', \
                     reason = 'capacity', until_at = ?1, decided_at = ?2, \
                     deferrals = deferrals + 1 WHERE id = ?3 AND state = 'pending' \
                     RETURNING enrollment_id, contact_id, process_id, step",
                    params![millis(*retry_at), at, touch.0],
                    keep_warm_for,
                )?;
                if let Some(keep_warm) = held {
                    queue_keep_warm(conn, &keep_warm, at)?;
                }
            }
            DecisionRecord::Replace { touch, next } => {
                let given_up = sql::fetch_optional(
                    conn,
                    "UPDATE touches SET state = 'skipped', decision = 'substitute', \
                     reason = 'capacity', until_at = NULL, decided_at = ?1 \
                     WHERE id = ?2 AND state = 'pending' \
                     RETURNING enrollment_id, contact_id, process_id, step",
                    params![at, touch.0],
                    keep_warm_for,
                )?;
                if let Some(keep_warm) = given_up {
                    queue_keep_warm(conn, &keep_warm, at)?;
                    advance(conn, keep_warm.enrollment_id, *next, at)?;
                }
            }
            DecisionRecord::Skip {
                touch,
                reason,
                end_enrollment,
            } => {
                let reason = reason.to_string();
                let skipped = sql::fetch_optional(
                    conn,
                    "UPDATE touches SET state = 'skipped', decision = 'skip', reason = ?1, \
                     decided_at = ?2 WHERE id = ?3 AND state = 'pending' RETURNING enrollment_id",
                    params![reason, at, touch.0],
                    |row| get::<i64>(row, "enrollment_id"),
                )?;
                if let (Some(enrollment), true) = (skipped, *end_enrollment) {
                    sql::execute(
                        conn,
                        "UPDATE enrollments SET state = 'exited', ended_at = ?1, end_reason = ?2 \
                         WHERE id = ?3 AND state = 'active'",
                        params![at, reason, enrollment],
                    )?;
                }
            }
        }
    }
    defer_touches(conn, &deferred, at)?;
    queue_touches(conn, &queued, at)?;
    set_value(conn, BUDGET_KEY, budget)
}

/// The keep-warm email for the enrollment of a held offer's row.
fn keep_warm_for(row: &Row<'_>) -> Result<Admitted, StoreError> {
    Ok(Admitted {
        contact_id: get(row, "contact_id")?,
        enrollment_id: get(row, "enrollment_id")?,
        process_id: get(row, "process_id")?,
        step: get(row, "step")?,
        intent: "nurture".into(),
    })
}

/// Queues a keep-warm email now and counts it as a touch to its contact.
fn queue_keep_warm(conn: &Connection, keep_warm: &Admitted, at: i64) -> Result<(), StoreError> {
    sql::execute(
        conn,
        "INSERT INTO touches (enrollment_id, contact_id, process_id, step, kind, \
         channel, intent, state, due_at, created_at, decision, decided_at, \
         admitted_at, next_attempt_at) \
         VALUES (?1, ?2, ?3, ?4, 'keep_warm', 'email', 'nurture', 'queued', ?5, ?5, \
         'send', ?5, ?5, ?5)",
        params![
            keep_warm.enrollment_id,
            keep_warm.contact_id,
            keep_warm.process_id,
            keep_warm.step,
            at
        ],
    )?;
    count_touches(conn, std::slice::from_ref(keep_warm), at)
}

// Batches write one cached single-row statement per row: with SQLite in-process a
// statement costs a bind and a step, while a generated multi-row statement must be
// parsed anew for every batch size.

/// Admits pending touches to the outbox, `(id, offer probability)` each, and counts them
/// as touches to their contacts.
fn queue_touches(
    conn: &Connection,
    rows: &[(i64, Option<f64>)],
    at: i64,
) -> Result<(), StoreError> {
    let mut queue = conn
        .prepare_cached(&format!(
            "UPDATE touches SET state = 'queued', decision = 'send', reason = NULL, \
         until_at = NULL, decided_at = ?1, admitted_at = ?1, next_attempt_at = ?1, \
         probability = ?2 WHERE id = ?3 AND state = 'pending' RETURNING {ADMITTED_COLUMNS}"
        ))
        .map_err(db)?;
    let mut queued = Vec::with_capacity(rows.len());
    for (id, probability) in rows {
        let mut returned = queue.query(params![at, probability, id]).map_err(db)?;
        if let Some(row) = returned.next().map_err(db)? {
            queued.push(admitted(row)?);
        }
    }
    count_touches(conn, &queued, at)
}

/// Counts admitted touches to their contacts, enrollments and offer stats.
fn count_touches(conn: &Connection, touches: &[Admitted], at: i64) -> Result<(), StoreError> {
    let mut contact = conn
        .prepare_cached(
            "UPDATE contacts SET last_touch_at = ?1 \
         WHERE id = ?2 AND (last_touch_at IS NULL OR last_touch_at < ?1)",
        )
        .map_err(db)?;
    let mut enrollment = conn
        .prepare_cached(
            "UPDATE enrollments SET touches = touches + 1, last_touch_at = ?1 WHERE id = ?2",
        )
        .map_err(db)?;
    let mut offer = conn
        .prepare_cached(
            "INSERT INTO offer_stats (process_id, step, sent) VALUES (?1, ?2, 1) \
         ON CONFLICT (process_id, step) DO UPDATE SET sent = offer_stats.sent + 1",
        )
        .map_err(db)?;
    for t in touches {
        contact.execute(params![at, t.contact_id]).map_err(db)?;
        enrollment
            .execute(params![at, t.enrollment_id])
            .map_err(db)?;
        if t.intent == "offer" {
            offer.execute(params![t.process_id, t.step]).map_err(db)?;
        }
    }
    Ok(())
}

/// Defers pending touches, `(id, until ms, reason)` each.
fn defer_touches(
    conn: &Connection,
    rows: &[(i64, i64, String)],
    at: i64,
) -> Result<(), StoreError> {
    let mut defer = conn
        .prepare_cached(
            "UPDATE touches SET due_at = ?1, decision = 'defer', reason = ?2, until_at = ?1, \
         decided_at = ?3, deferrals = deferrals + 1 WHERE id = ?4 AND state = 'pending'",
        )
        .map_err(db)?;
    for (id, until, reason) in rows {
        defer.execute(params![until, reason, at, id]).map_err(db)?;
    }
    Ok(())
}

// --- dispatch ---

/// Leases up to `limit` queued touches. Every email is checked against the
/// suppression list in this same transaction, by the address it would go to now:
/// a suppressed one is skipped (reason `suppressed`) and its contact suppressed, so no
/// merge, address change or import can route a send around an unsubscribe.
pub(super) fn claim_dispatch(
    conn: &Connection,
    keys: &AddressKeys,
    now: Timestamp,
    lease_ms: i64,
    limit: u32,
) -> Result<Vec<ClaimedTouch>, StoreError> {
    let mut claimed = Vec::new();
    // Skipped touches leave room: claim again until the batch is full or none are left.
    while (claimed.len() as u32) < limit {
        let (leased, sendable) =
            claim_once(conn, keys, now, lease_ms, limit - claimed.len() as u32)?;
        claimed.extend(sendable);
        if leased == 0 {
            break;
        }
    }
    Ok(claimed)
}

/// One lease round: how many touches it leased, and those that may be sent.
fn claim_once(
    conn: &Connection,
    keys: &AddressKeys,
    now: Timestamp,
    lease_ms: i64,
    limit: u32,
) -> Result<(usize, Vec<ClaimedTouch>), StoreError> {
    let now_ms = millis(now);
    // A claimed touch before its contact and enrollment are attached.
    struct Leased {
        touch: TouchId,
        enrollment_id: i64,
        contact_id: i64,
        process_id: i64,
        step: u32,
        kind: TouchKind,
        channel: Channel,
        intent: Intent,
        attempts: i64,
    }
    let rows = sql::fetch_all(
        conn,
        "UPDATE touches SET next_attempt_at = ?1, attempts = attempts + 1, leased = 1 \
         WHERE id IN (\
           SELECT id FROM touches WHERE state = 'queued' AND next_attempt_at <= ?2 \
           ORDER BY next_attempt_at, id LIMIT ?3) \
         RETURNING id, enrollment_id, contact_id, process_id, step, kind, channel, intent, \
         attempts",
        params![now_ms.saturating_add(lease_ms), now_ms, limit],
        |row| {
            let text = |i, column| get_at::<String>(row, i, column);
            Ok(Leased {
                touch: TouchId(get_at(row, 0, "id")?),
                enrollment_id: get_at(row, 1, "enrollment_id")?,
                contact_id: get_at(row, 2, "contact_id")?,
                process_id: get_at(row, 3, "process_id")?,
                step: step_number(get_at(row, 4, "step")?, "step")?,
                kind: parse_kind(&text(5, "kind")?)?,
                channel: parse_channel(&text(6, "channel")?)?,
                intent: parse_intent(&text(7, "intent")?)?,
                attempts: get_at(row, 8, "attempts")?,
            })
        },
    )?;
    if rows.is_empty() {
        return Ok((0, Vec::new()));
    }
    // Each claimed touch needs its contact and enrollment: two reads per batch, not
    // two per touch.
    let contact_ids: Vec<i64> = rows.iter().map(|r| r.contact_id).collect();
    let enrollment_ids: Vec<i64> = rows.iter().map(|r| r.enrollment_id).collect();
    let contacts = contacts_by_id(conn, &contact_ids)?;
    let enrollments = enrollment_steps(conn, &enrollment_ids)?;

    // The suppression check, by the address each email goes to now.
    let mut silenced: HashSet<i64> = HashSet::new();
    let mut mark_address = conn
        .prepare_cached("UPDATE touches SET address_key = ?1 WHERE id = ?2")
        .map_err(db)?;
    for row in rows.iter().filter(|r| r.channel == Channel::Email) {
        let Some(contact) = contacts.get(&row.contact_id) else {
            continue;
        };
        if silenced.contains(&row.contact_id) {
            continue;
        }
        let Some(email) = contact.email.as_deref() else {
            continue;
        };
        if contact.suppressed_at.is_some() || suppress::address_suppressed(conn, keys, email)? {
            silenced.insert(row.contact_id);
        } else {
            mark_address
                .execute(params![keys.key(email), row.touch.0])
                .map_err(db)?;
        }
    }
    if !silenced.is_empty() {
        // The claim counted no attempt: nothing was tried.
        let mut skip = conn
            .prepare_cached(
                "UPDATE touches SET state = 'skipped', decision = 'skip', reason = 'suppressed', \
             decided_at = ?1, leased = 0, next_attempt_at = NULL, \
             attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END \
             WHERE id = ?2 AND state = 'queued'",
            )
            .map_err(db)?;
        for row in rows
            .iter()
            .filter(|r| r.channel == Channel::Email && silenced.contains(&r.contact_id))
        {
            skip.execute(params![now_ms, row.touch.0]).map_err(db)?;
        }
        for contact in &silenced {
            suppress::suppress(conn, keys, ContactId(*contact), "suppressed", now_ms)?;
        }
    }

    let leased = rows.len();
    let mut claimed = Vec::with_capacity(rows.len());
    for row in rows {
        if silenced.contains(&row.contact_id) {
            continue;
        }
        let (contact_id, enrollment_id) = (&row.contact_id, &row.enrollment_id);
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
        claimed.push(ClaimedTouch {
            touch: row.touch,
            enrollment_id: row.enrollment_id,
            contact,
            process_id: row.process_id,
            step: row.step,
            enrollment_step,
            enrollment_active,
            kind: row.kind,
            channel: row.channel,
            intent: row.intent,
            attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
        });
    }
    Ok((leased, claimed))
}

/// Contacts by id, for ids that exist.
fn contacts_by_id(conn: &Connection, ids: &[i64]) -> Result<HashMap<i64, Contact>, StoreError> {
    let head = concat!("SELECT ", contact_columns!(), " FROM contacts WHERE id IN");
    sql::fetch_in(conn, head, "", ids, ContactRow::decode)?
        .into_iter()
        .map(|row| Ok((row.id, row.into_contact()?)))
        .collect()
}

/// `(step, active)` of each enrollment, by id.
fn enrollment_steps(
    conn: &Connection,
    ids: &[i64],
) -> Result<HashMap<i64, (u32, bool)>, StoreError> {
    let head = "SELECT id, step, state FROM enrollments WHERE id IN";
    Ok(sql::fetch_in(conn, head, "", ids, |row| {
        let step = (
            step_index(row, "step")?,
            get::<String>(row, "state")? == "active",
        );
        Ok((get::<i64>(row, "id")?, step))
    })?
    .into_iter()
    .collect())
}

/// Moves an active enrollment to its next step, or completes it.
fn advance(
    conn: &Connection,
    enrollment_id: i64,
    next: Option<NextTouch>,
    at: i64,
) -> Result<(), StoreError> {
    match next {
        Some(next) => advance_many(conn, &[(enrollment_id, at, next)]),
        None => {
            sql::execute(
                conn,
                "UPDATE enrollments SET state = 'completed', ended_at = ?1 \
                 WHERE id = ?2 AND state = 'active'",
                params![at, enrollment_id],
            )?;
            Ok(())
        }
    }
}

/// Records many dispatch results; deliveries, the common case, in a few statements
/// per batch instead of three per touch.
pub(super) fn finish_dispatches(
    conn: &Connection,
    keys: &AddressKeys,
    finished: &[(TouchId, Timestamp, DispatchResult)],
) -> Result<(), StoreError> {
    let mut delivered = Vec::new();
    for (touch, at, result) in finished {
        match result {
            DispatchResult::Delivered { next } => delivered.push((touch.0, millis(*at), *next)),
            other => finish_dispatch(conn, keys, *touch, *at, other)?,
        }
    }
    deliver_touches(conn, &delivered)
}

/// Marks queued touches sent, `(id, sent at, next step)` each, and moves their
/// enrollments on.
fn deliver_touches(
    conn: &Connection,
    rows: &[(i64, i64, Option<NextTouch>)],
) -> Result<(), StoreError> {
    let mut deliver = conn
        .prepare_cached(
            "UPDATE touches SET state = 'sent', sent_at = ?1, last_error = NULL, \
         next_attempt_at = NULL, leased = 0 WHERE id = ?2 AND state = 'queued' \
         RETURNING enrollment_id, kind",
        )
        .map_err(db)?;
    // In the order given, so the next touches get ids in a repeatable order.
    let mut moves = Vec::new();
    let mut completions = Vec::new();
    for (id, at, next) in rows {
        let mut returned = deliver.query(params![at, id]).map_err(db)?;
        let Some(row) = returned.next().map_err(db)? else {
            continue;
        };
        let Some(enrollment) = step_enrollment(row)? else {
            continue;
        };
        match next {
            Some(next) => moves.push((enrollment, *at, *next)),
            None => completions.push((enrollment, *at)),
        }
    }
    advance_many(conn, &moves)?;
    let mut complete = conn
        .prepare_cached(
            "UPDATE enrollments SET state = 'completed', ended_at = ?1 \
         WHERE id = ?2 AND state = 'active'",
        )
        .map_err(db)?;
    for (enrollment, at) in &completions {
        complete.execute(params![at, enrollment]).map_err(db)?;
    }
    Ok(())
}

/// Moves active enrollments to their next step and plans it, `(enrollment, at, next)`
/// each.
fn advance_many(conn: &Connection, moves: &[(i64, i64, NextTouch)]) -> Result<(), StoreError> {
    let mut step = conn
        .prepare_cached(
            "UPDATE enrollments SET step = ?1 WHERE id = ?2 AND state = 'active' \
         RETURNING contact_id, process_id",
        )
        .map_err(db)?;
    for (enrollment, at, next) in moves {
        let mut returned = step
            .query(params![next.step.step, enrollment])
            .map_err(db)?;
        let Some(row) = returned.next().map_err(db)? else {
            continue;
        };
        let (contact, process) = (get(row, "contact_id")?, get(row, "process_id")?);
        drop(returned);
        insert_pending(
            conn,
            *enrollment,
            contact,
            process,
            next.step,
            millis(next.due_at),
            *at,
        )?;
    }
    Ok(())
}

pub(super) fn finish_dispatch(
    conn: &Connection,
    keys: &AddressKeys,
    touch: TouchId,
    at: Timestamp,
    result: &DispatchResult,
) -> Result<(), StoreError> {
    let at = millis(at);
    match result {
        DispatchResult::Delivered { next } => {
            let sent = sql::fetch_optional(
                conn,
                "UPDATE touches SET state = 'sent', sent_at = ?1, last_error = NULL, \
                 next_attempt_at = NULL, leased = 0 WHERE id = ?2 AND state = 'queued' \
                 RETURNING enrollment_id, kind",
                params![at, touch.0],
                step_enrollment,
            )?;
            if let Some(Some(enrollment)) = sent {
                advance(conn, enrollment, *next, at)?;
            }
        }
        DispatchResult::Retry { error, retry_at } => {
            sql::execute(
                conn,
                "UPDATE touches SET next_attempt_at = ?1, last_error = ?2, leased = 0 \
                 WHERE id = ?3 AND state = 'queued'",
                params![millis(*retry_at), error.as_str(), touch.0],
            )?;
        }
        DispatchResult::Failed { error, next } => {
            let failed = sql::fetch_optional(
                conn,
                "UPDATE touches SET state = 'failed', last_error = ?1, next_attempt_at = NULL, \
                 leased = 0 WHERE id = ?2 AND state = 'queued' RETURNING enrollment_id, kind",
                params![error, touch.0],
                step_enrollment,
            )?;
            if let Some(Some(enrollment)) = failed {
                advance(conn, enrollment, *next, at)?;
            }
        }
        DispatchResult::Bounced { error } => {
            let bounced = sql::fetch_optional(
                conn,
                "UPDATE touches SET state = 'failed', last_error = ?1, next_attempt_at = NULL, \
                 leased = 0 WHERE id = ?2 AND state = 'queued' RETURNING contact_id, address_key",
                params![error, touch.0],
                |row| {
                    Ok((
                        get::<i64>(row, "contact_id")?,
                        get::<Option<String>>(row, "address_key")?,
                    ))
                },
            )?;
            if let Some((contact, address_key)) = bounced {
                // The address it was sent to, even if the record has moved on since.
                if let Some(key) = address_key {
                    suppress::record(conn, &key, "bounced", at)?;
                }
                suppress::suppress(conn, keys, ContactId(contact), "bounced", at)?;
            }
        }
    }
    Ok(())
}

/// The enrollment a finished touch moves on: its own for a step, none for a keep-warm.
fn step_enrollment(row: &Row<'_>) -> Result<Option<i64>, StoreError> {
    Ok(if get::<String>(row, "kind")? == "step" {
        Some(get(row, "enrollment_id")?)
    } else {
        None
    })
}

pub(super) fn release_claims(
    conn: &Connection,
    touches: &[TouchId],
    at: Timestamp,
) -> Result<(), StoreError> {
    for touch in touches {
        sql::execute(
            conn,
            "UPDATE touches SET next_attempt_at = ?1, leased = 0, \
             attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END \
             WHERE id = ?2 AND state = 'queued' AND leased = 1",
            params![millis(at), touch.0],
        )?;
    }
    Ok(())
}

pub(super) fn release_all_claims(conn: &Connection, at: Timestamp) -> Result<u64, StoreError> {
    sql::execute(
        conn,
        "UPDATE touches SET next_attempt_at = ?1, leased = 0 \
         WHERE state = 'queued' AND leased = 1",
        params![millis(at)],
    )
}

/// Records an event for a known contact (a task's outcome) and the stage change it
/// maps to, as ingest would; a repeated `message_id` changes nothing.
pub(super) fn track_for_contact(
    conn: &Connection,
    contact: ContactId,
    name: &str,
    message_id: &str,
    properties: &serde_json::Value,
    stage: Option<&StageName>,
    at: i64,
) -> Result<bool, StoreError> {
    let inserted = sql::execute(
        conn,
        "INSERT INTO events (message_id, contact_id, kind, name, properties, occurred_at, \
         received_at) VALUES (?1, ?2, 'track', ?3, ?4, ?5, ?5) \
         ON CONFLICT (message_id) DO NOTHING",
        params![message_id, contact.0, name, properties.to_string(), at],
    )?;
    if inserted == 0 {
        return Ok(false);
    }
    let Some(stage) = stage else {
        return Ok(true);
    };
    let from: Option<String> = sql::fetch_optional(
        conn,
        "SELECT stage FROM contacts WHERE id = ?1",
        params![contact.0],
        |row| get(row, "stage"),
    )?;
    if from.as_deref().is_some_and(|from| from != stage.as_str()) {
        sql::execute(
            conn,
            "UPDATE contacts SET stage = ?1, updated_at = ?2 WHERE id = ?3",
            params![stage.as_str(), at, contact.0],
        )?;
        sql::execute(
            conn,
            "INSERT INTO stage_history (contact_id, from_stage, to_stage, reason, message_id, \
             at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![contact.0, from, stage.as_str(), name, message_id, at],
        )?;
    }
    Ok(true)
}

pub(super) fn next_at(
    conn: &Connection,
    sql: &'static str,
) -> Result<Option<Timestamp>, StoreError> {
    let at: Option<i64> = sql::fetch_one(conn, sql, [], |row| get(row, "next"))?;
    opt_timestamp(at, "next instant")
}

pub(super) fn pace_counts(conn: &Connection) -> Result<PaceCounts, StoreError> {
    let held = sql::fetch_all(
        conn,
        "SELECT reason, COUNT(*) AS n FROM touches \
         WHERE state = 'pending' AND reason IS NOT NULL GROUP BY reason ORDER BY reason",
        [],
        |row| Ok((get(row, "reason")?, count(row)?)),
    )?;
    let enrolled = sql::fetch_all(
        conn,
        "SELECT process_id, COUNT(*) AS n FROM enrollments WHERE state = 'active' \
         GROUP BY process_id ORDER BY process_id",
        [],
        |row| Ok((get(row, "process_id")?, count(row)?)),
    )?;
    Ok(PaceCounts { held, enrolled })
}

// --- reports ---

pub(super) fn funnel(
    conn: &Connection,
    from: Timestamp,
    to: Timestamp,
) -> Result<FunnelCounts, StoreError> {
    let stages = sql::fetch_all(
        conn,
        "SELECT stage, COUNT(*) AS n FROM contacts GROUP BY stage",
        [],
        |row| Ok((get(row, "stage")?, count(row)?)),
    )?;
    let moves = sql::fetch_all(
        conn,
        "SELECT from_stage, to_stage, COUNT(*) AS n FROM stage_history \
         WHERE at >= ?1 AND at < ?2 GROUP BY from_stage, to_stage",
        params![millis(from), millis(to)],
        |row| Ok((get(row, "from_stage")?, get(row, "to_stage")?, count(row)?)),
    )?;
    Ok(FunnelCounts { stages, moves })
}

pub(super) fn conversions(
    conn: &Connection,
    stage: &StageName,
) -> Result<Vec<Conversion>, StoreError> {
    sql::fetch_all(
        conn,
        "SELECT f.contact_id, f.at, (SELECT COUNT(*) FROM touches t \
           WHERE t.contact_id = f.contact_id AND t.admitted_at IS NOT NULL \
           AND t.admitted_at <= f.at) AS touches \
         FROM (SELECT contact_id, MIN(at) AS at FROM stage_history WHERE to_stage = ?1 \
           GROUP BY contact_id) f ORDER BY f.at",
        params![stage.as_str()],
        |row| {
            Ok(Conversion {
                contact: ContactId(get(row, "contact_id")?),
                at: timestamp(get(row, "at")?, "conversion at")?,
                touches: get::<i64>(row, "touches")?.max(0) as u64,
            })
        },
    )
}

pub(super) fn admitted_since(
    conn: &Connection,
    since: Timestamp,
) -> Result<Vec<(Timestamp, Channel)>, StoreError> {
    sql::fetch_all(
        conn,
        "SELECT admitted_at, channel FROM touches WHERE admitted_at >= ?1 ORDER BY admitted_at",
        params![millis(since)],
        |row| {
            Ok((
                timestamp(get(row, "admitted_at")?, "admitted_at")?,
                parse_channel(&get::<String>(row, "channel")?)?,
            ))
        },
    )
}

pub(super) fn work_log_since(
    conn: &Connection,
    since: Timestamp,
) -> Result<Vec<(Timestamp, f64)>, StoreError> {
    sql::fetch_all(
        conn,
        "SELECT at, delta FROM work_log WHERE at >= ?1 ORDER BY at, id",
        params![millis(since)],
        |row| {
            Ok((
                timestamp(get(row, "at")?, "work_log at")?,
                get(row, "delta")?,
            ))
        },
    )
}

pub(super) fn neglect(
    conn: &Connection,
    max_gaps: &[(i64, i64)],
    before: Option<Timestamp>,
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
        "SELECT * FROM (SELECT e.id, e.contact_id, e.process_id, e.enrolled_at, \
         c.last_touch_at, c.name, c.email, \
         (CASE WHEN c.last_touch_at IS NOT NULL AND c.last_touch_at > e.enrolled_at \
          THEN c.last_touch_at ELSE e.enrolled_at END) + {gap} AS deadline \
         FROM enrollments e JOIN contacts c ON c.id = e.contact_id \
         WHERE e.state = 'active' AND e.process_id IN ({})) AS due \
         WHERE deadline < ? ORDER BY deadline, id LIMIT ?",
        vec!["?"; max_gaps.len()].join(", ")
    );
    let before = before.map_or(i64::MAX, millis);
    let mut binds: Binds<'_> = Vec::with_capacity(max_gaps.len() * 3 + 2);
    for (process, gap_ms) in max_gaps {
        binds.extend([process as &dyn ToSql, gap_ms]);
    }
    binds.extend(max_gaps.iter().map(|(process, _)| process as &dyn ToSql));
    binds.extend([&before as &dyn ToSql, &limit]);
    sql::fetch_binds(conn, &sql, &binds, |row| {
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
}

// --- tasks ---

const TASK_SELECT: &str = "SELECT t.id AS id, t.contact_id, c.name AS contact_name, \
     c.email AS contact_email, p.key AS process, t.step, t.title, t.minutes, t.due_at AS due_at, \
     t.state, t.completed_at, t.outcome, t.note \
     FROM touches t JOIN contacts c ON c.id = t.contact_id \
     JOIN processes p ON p.id = t.process_id";

fn task_view(row: &Row<'_>) -> Result<TaskView, StoreError> {
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

pub(super) fn tasks(
    conn: &Connection,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<TaskView>, StoreError> {
    // Only finishing a task (done or skipped) sets `completed_at`, so the second half
    // needs no state test; with one, SQLite walks every finished task through the
    // `(state, due_at)` index instead of the range of `touches_completed`.
    let sql = format!(
        "{TASK_SELECT} WHERE t.channel = 'task' AND t.state = 'open' AND t.due_at < ?1 \
         UNION ALL {TASK_SELECT} WHERE t.channel = 'task' \
         AND t.completed_at >= ?2 AND t.completed_at < ?1 \
         ORDER BY due_at, id"
    );
    sql::fetch_all(conn, &sql, params![millis(to), millis(from)], task_view)
}

pub(super) fn task(conn: &Connection, id: TouchId) -> Result<Option<TaskView>, StoreError> {
    let sql =
        format!("{TASK_SELECT} WHERE t.id = ?1 AND t.channel = 'task' AND t.title IS NOT NULL");
    sql::fetch_optional(conn, &sql, params![id.0], task_view)
}

pub(super) fn finish_task(
    conn: &Connection,
    id: TouchId,
    at: Timestamp,
    end: &TaskEnd,
    next: Option<NextTouch>,
    event: Option<&OutcomeEvent<'_>>,
) -> Result<bool, StoreError> {
    let at = millis(at);
    let (state, outcome, note) = match end {
        TaskEnd::Done { outcome, note } => ("done", Some(outcome.as_str()), note.as_deref()),
        TaskEnd::Skipped { note } => ("skipped", None, note.as_deref()),
    };
    let finished = sql::fetch_optional(
        conn,
        "UPDATE touches SET state = ?1, completed_at = ?2, outcome = ?3, note = ?4, \
         decision = CASE WHEN ?1 = 'skipped' THEN 'skip' ELSE decision END \
         WHERE id = ?5 AND channel = 'task' AND state = 'open' \
         RETURNING enrollment_id, contact_id",
        params![state, at, outcome, note, id.0],
        |row| {
            Ok((
                get::<i64>(row, "enrollment_id")?,
                get::<i64>(row, "contact_id")?,
            ))
        },
    )?;
    let Some((enrollment, contact)) = finished else {
        return Ok(false);
    };
    advance(conn, enrollment, next, at)?;
    // In the same transaction: a crash never completes the task without its outcome.
    if let Some(event) = event {
        track_for_contact(
            conn,
            ContactId(contact),
            event.name,
            &event.message_id,
            &event.properties,
            event.stage,
            at,
        )?;
    }
    Ok(true)
}

// --- a contact's engine history ---

pub(super) fn enrollments_of(
    conn: &Connection,
    contact: ContactId,
) -> Result<Vec<EnrollmentView>, StoreError> {
    sql::fetch_all(
        conn,
        "SELECT e.id, p.key AS process, e.state, e.step, e.enrolled_at, e.touches, \
         e.last_touch_at, e.ended_at, e.end_reason \
         FROM enrollments e JOIN processes p ON p.id = e.process_id \
         WHERE e.contact_id = ?1 ORDER BY e.enrolled_at DESC, e.id DESC",
        params![contact.0],
        |row| {
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
        },
    )
}

pub(super) fn touches_of(
    conn: &Connection,
    contact: ContactId,
    limit: u32,
) -> Result<Vec<TouchView>, StoreError> {
    sql::fetch_all(
        conn,
        "SELECT t.id, p.key AS process, t.step, t.kind, t.channel, t.intent, t.state, \
         t.due_at, t.created_at, t.decision, t.reason, t.until_at, t.decided_at, t.deferrals, \
         t.admitted_at, t.probability, t.responded_at, t.sent_at, t.attempts, t.last_error, \
         t.title, t.completed_at, t.outcome \
         FROM touches t JOIN processes p ON p.id = t.process_id \
         WHERE t.contact_id = ?1 ORDER BY t.id DESC LIMIT ?2",
        params![contact.0, limit],
        |row| {
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
        },
    )
}

/// Moves a merged-away contact's enrollments and touches to the record that stays; where
/// both were active in the same process, the one being merged away exits.
pub(super) fn merge_contacts(
    conn: &Connection,
    keep: i64,
    gone: i64,
    at: i64,
) -> Result<(), StoreError> {
    let ids: Vec<i64> = sql::fetch_all(
        conn,
        "UPDATE enrollments SET state = 'exited', ended_at = ?1, end_reason = 'merged' \
         WHERE contact_id = ?2 AND state = 'active' AND process_id IN (\
           SELECT process_id FROM enrollments WHERE contact_id = ?3 AND state = 'active') \
         RETURNING id",
        params![at, gone, keep],
        |row| get(row, "id"),
    )?;
    cancel_planned(conn, &ids, "merged")?;
    for statement in [
        "UPDATE enrollments SET contact_id = ?1 WHERE contact_id = ?2",
        "UPDATE touches SET contact_id = ?1 WHERE contact_id = ?2",
    ] {
        sql::execute(conn, statement, params![keep, gone])?;
    }
    let last: Option<Option<i64>> = sql::fetch_optional(
        conn,
        "SELECT last_touch_at FROM contacts WHERE id = ?1",
        params![gone],
        |row| get(row, "last_touch_at"),
    )?;
    if let Some(Some(last)) = last {
        sql::execute(
            conn,
            "UPDATE contacts SET last_touch_at = CASE \
             WHEN last_touch_at IS NULL OR last_touch_at < ?1 THEN ?1 ELSE last_touch_at END \
             WHERE id = ?2",
            params![last, keep],
        )?;
    }
    Ok(())
}
