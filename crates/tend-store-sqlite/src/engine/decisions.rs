//! Due touches, the pacing snapshot, and recording the pacer's decisions.

use super::*;
use crate::budget_cache::BudgetCache;
use std::collections::BTreeMap;

pub(crate) fn due_touches(
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
    let check = suppress::AddressCheck::new(conn, keys)?;
    for row in contact_rows {
        if !seen.insert(row.id) {
            continue;
        }
        let contact = row.into_contact()?;
        // By the address too: a record can hold an address that said no after it was
        // last mailed (the pacer then skips its calls and webhooks as well).
        let suppressed = contact.suppressed_at.is_some()
            || match contact.email.as_deref() {
                Some(email) => check.suppressed(email)?,
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
pub(super) fn recent_touches(
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

pub(crate) fn pacing_snapshot(
    conn: &Connection,
    budgets: &BudgetCache,
    in_flight_since: Timestamp,
    now: Timestamp,
    by_step: bool,
) -> Result<PacingSnapshot, StoreError> {
    let budget = budgets.current(|| value(conn, BUDGET_KEY))?;
    let open_work = match value(conn, OPEN_WORK_KEY)? {
        Some(text) => text
            .parse::<f64>()
            .map_err(|e| StoreError::Corrupt(format!("open work `{text}`: {e}")))?,
        None => 0.0,
    };
    // Both reads take the partial covering index of offers in flight alone. Without
    // statistics (and with plans that never depend on bound values) SQLite would
    // otherwise take `touches_admitted` and read the row of every touch admitted since
    // `in_flight_since`, on every decision batch: a fifth of a simulated year's time.
    let (expected_in_flight, in_flight) = if by_step {
        offers_in_flight_by_step(conn, in_flight_since, now)?
    } else {
        let expected: f64 = sql::fetch_one(
            conn,
            "SELECT COALESCE(SUM(COALESCE(probability, 0) \
             * MIN(1.0, CAST(admitted_at - ?1 AS REAL) / ?2)), 0.0) AS expected \
             FROM touches INDEXED BY touches_offers_in_flight WHERE intent = 'offer' AND responded_at IS NULL AND admitted_at IS NOT NULL \
             AND admitted_at >= ?1",
            params![
                millis(in_flight_since),
                (millis(now) - millis(in_flight_since)).max(1) as f64
            ],
            |row| get(row, "expected"),
        )?;
        (expected, Vec::new())
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

/// The offers in flight grouped by step and six-hour age, with the even fade's sum of
/// them, from one read of the covering index. Grouping here rather than in SQL spares
/// the sorter SQLite runs for a `GROUP BY` the index is not ordered by, on every
/// decision batch: with `[capacity] response_delay` set, that sort was a third of a
/// 10,000-contact simulated year.
fn offers_in_flight_by_step(
    conn: &Connection,
    since: Timestamp,
    now: Timestamp,
) -> Result<(f64, Vec<InFlightOffers>), StoreError> {
    let (since, now) = (millis(since), millis(now));
    let span = (now - since).max(1) as f64;
    let mut statement = conn
        .prepare_cached(
            "SELECT admitted_at, probability, process_id, step \
             FROM touches INDEXED BY touches_offers_in_flight \
             WHERE intent = 'offer' AND responded_at IS NULL \
             AND admitted_at IS NOT NULL AND admitted_at >= ?1",
        )
        .map_err(db)?;
    let mut rows = statement.query(params![since]).map_err(db)?;
    let mut even = 0.0;
    let mut groups: BTreeMap<(i64, u32, u32), (u64, f64)> = BTreeMap::new();
    while let Some(row) = rows.next().map_err(db)? {
        let admitted_at: i64 = get_at(row, 0, "admitted_at")?;
        let probability = get_at::<Option<f64>>(row, 1, "probability")?.unwrap_or(0.0);
        let process_id: i64 = get_at(row, 2, "process_id")?;
        let step = step_number(get_at(row, 3, "step")?, "step")?;
        even += probability * ((admitted_at - since) as f64 / span).min(1.0);
        let age_hours = ((now - admitted_at) / 21_600_000 * 6).clamp(0, i64::from(u32::MAX));
        let group = groups
            .entry((process_id, step, age_hours as u32))
            .or_insert((0, 0.0));
        group.0 += 1;
        group.1 += probability;
    }
    let in_flight = groups
        .into_iter()
        .map(
            |((process_id, step, age_hours), (offers, probability))| InFlightOffers {
                process_id,
                step,
                age_hours,
                offers,
                probability,
            },
        )
        .collect();
    Ok((even, in_flight))
}

/// What an admitted touch's row says about whom it touches.
pub(super) struct Admitted {
    contact_id: i64,
    enrollment_id: i64,
    process_id: i64,
    step: i64,
    intent: String,
}

pub(super) fn admitted(row: &Row<'_>) -> Result<Admitted, StoreError> {
    Ok(Admitted {
        contact_id: get(row, "contact_id")?,
        enrollment_id: get(row, "enrollment_id")?,
        process_id: get(row, "process_id")?,
        step: get(row, "step")?,
        intent: get(row, "intent")?,
    })
}

/// Counts an admitted touch on its contact and enrollment, and an offer on its step.
pub(super) const ADMITTED_COLUMNS: &str = "contact_id, enrollment_id, process_id, step, intent";

pub(crate) fn record_decisions(
    conn: &Connection,
    at: Timestamp,
    decisions: &[DecisionRecord],
    budget: Option<&str>,
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
    match budget {
        Some(budget) => set_value(conn, BUDGET_KEY, budget),
        // A scratch database's store holds it (see `BudgetCache`).
        None => Ok(()),
    }
}

/// The keep-warm email for the enrollment of a held offer's row.
pub(super) fn keep_warm_for(row: &Row<'_>) -> Result<Admitted, StoreError> {
    Ok(Admitted {
        contact_id: get(row, "contact_id")?,
        enrollment_id: get(row, "enrollment_id")?,
        process_id: get(row, "process_id")?,
        step: get(row, "step")?,
        intent: "nurture".into(),
    })
}

/// Queues a keep-warm email now and counts it as a touch to its contact.
pub(super) fn queue_keep_warm(
    conn: &Connection,
    keep_warm: &Admitted,
    at: i64,
) -> Result<(), StoreError> {
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
pub(super) fn queue_touches(
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
pub(super) fn count_touches(
    conn: &Connection,
    touches: &[Admitted],
    at: i64,
) -> Result<(), StoreError> {
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
pub(super) fn defer_touches(
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
