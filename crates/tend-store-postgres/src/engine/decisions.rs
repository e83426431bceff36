//! Due touches, the pacing snapshot, and recording the pacer's decisions.

use super::*;

pub(crate) async fn due_touches(
    tx: &Tx<'_>,
    keys: &AddressKeys,
    now: Timestamp,
    limit: u32,
) -> Result<DueBatch, StoreError> {
    let now_ms = millis(now);
    let touches = sql::fetch_all(
        tx,
        "SELECT t.id, t.contact_id, t.process_id, t.step, t.kind, t.channel, t.intent, \
         t.due_at, e.enrolled_at, e.state AS enrollment_state \
         FROM touches t JOIN enrollments e ON e.id = t.enrollment_id \
         WHERE t.state = 'pending' AND t.due_at <= $1 ORDER BY t.due_at, t.id LIMIT $2",
        &[&now_ms, &i64::from(limit)],
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
    )
    .await?;
    let mut ids: Vec<i64> = touches.iter().map(|t| t.contact.0).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(DueBatch::default());
    }
    let contact_rows = sql::fetch_all(
        tx,
        concat!(
            "SELECT ",
            contact_columns!(),
            " FROM contacts WHERE id = ANY($1) ORDER BY id"
        ),
        &[&ids],
        ContactRow::decode,
    )
    .await?;
    // By the address too: a record can hold an address that said no after it was last
    // mailed (the pacer then skips its calls and webhooks as well). One look-up for the
    // batch.
    let silenced = suppress::suppressed_among(
        tx,
        keys,
        contact_rows.iter().filter_map(|row| row.email.as_deref()),
    )
    .await?;
    let recent = recent_touches(tx, &ids, now_ms - 7 * 86_400_000).await?;
    let mut contacts = Vec::with_capacity(contact_rows.len());
    for row in contact_rows {
        let contact = row.into_contact()?;
        let suppressed = contact.suppressed_at.is_some()
            || contact
                .email
                .as_deref()
                .is_some_and(|email| silenced.contains(email));
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
pub(crate) async fn recent_touches(
    tx: &Tx<'_>,
    ids: &[i64],
    since: i64,
) -> Result<HashMap<i64, Vec<(Timestamp, Channel)>>, StoreError> {
    let rows: Vec<(i64, i64, String)> = sql::fetch_all(
        tx,
        "SELECT contact_id, admitted_at, channel FROM touches \
         WHERE contact_id = ANY($1) AND admitted_at > $2 ORDER BY contact_id, admitted_at, id",
        &[&ids, &since],
        |row| {
            Ok((
                get(row, "contact_id")?,
                get(row, "admitted_at")?,
                get(row, "channel")?,
            ))
        },
    )
    .await?;
    let mut recent: HashMap<i64, Vec<(Timestamp, Channel)>> = HashMap::new();
    for (id, at, channel) in rows {
        recent
            .entry(id)
            .or_default()
            .push((timestamp(at, "admitted_at")?, parse_channel(&channel)?));
    }
    Ok(recent)
}

pub(crate) async fn pacing_snapshot(
    tx: &Tx<'_>,
    in_flight_since: Timestamp,
    now: Timestamp,
    by_step: bool,
) -> Result<PacingSnapshot, StoreError> {
    let budget = match value(tx, BUDGET_KEY).await? {
        Some(text) => serde_json::from_str(&text).map_err(|e| {
            StoreError::Corrupt(format!("stored budget usage is not readable: {e}"))
        })?,
        None => BudgetState::default(),
    };
    let open_work = match value(tx, OPEN_WORK_KEY).await? {
        Some(text) => text
            .parse::<f64>()
            .map_err(|e| StoreError::Corrupt(format!("open work `{text}`: {e}")))?,
        None => 0.0,
    };
    let expected_in_flight: f64 = sql::fetch_one(
        tx,
        "SELECT COALESCE(SUM(COALESCE(probability, 0) \
         * LEAST(1.0, (admitted_at - $1)::float8 / $2::float8)), 0.0) AS expected FROM touches \
         WHERE intent = 'offer' AND responded_at IS NULL AND admitted_at IS NOT NULL \
         AND admitted_at >= $1",
        &[
            &(millis(in_flight_since)),
            &((millis(now) - millis(in_flight_since)).max(1) as f64),
        ],
        |row| get(row, "expected"),
    )
    .await?;
    let in_flight = if !by_step {
        Vec::new()
    } else {
        sql::fetch_all(
            tx,
            "SELECT process_id, step, ($2 - admitted_at) / 21600000 * 6 AS age_hours, \
         COUNT(*) AS offers, COALESCE(SUM(COALESCE(probability, 0)), 0.0) AS probability \
         FROM touches WHERE intent = 'offer' AND responded_at IS NULL \
         AND admitted_at IS NOT NULL AND admitted_at >= $1 \
         GROUP BY process_id, step, age_hours",
            &[&(millis(in_flight_since)), &(millis(now))],
            |row| {
                Ok(InFlightOffers {
                    process_id: get(row, "process_id")?,
                    step: step_index(row, "step")?,
                    age_hours: get::<i64>(row, "age_hours")?.clamp(0, i64::from(u32::MAX)) as u32,
                    offers: get::<i64>(row, "offers")?.max(0) as u64,
                    probability: get(row, "probability")?,
                })
            },
        )
        .await?
    };
    let offer_stats = sql::fetch_all(
        tx,
        "SELECT process_id, step, sent, responded, delays, delay_days_sum FROM offer_stats",
        &[],
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
    )
    .await?;
    Ok(PacingSnapshot {
        budget,
        open_work,
        expected_in_flight,
        in_flight,
        offer_stats,
    })
}

/// What an admitted touch's row says about whom it touches.
pub(super) struct Admitted {
    contact_id: i64,
    enrollment_id: i64,
    process_id: i64,
    step: i64,
    intent: String,
}

pub(super) fn admitted(row: &Row) -> Result<Admitted, StoreError> {
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

pub(crate) async fn record_decisions(
    tx: &Tx<'_>,
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
                let opened = sql::fetch_optional(
                    tx,
                    &sql,
                    &[
                        &at,
                        probability,
                        title,
                        &i64::from(*minutes),
                        &millis(*due_at),
                        &touch.0,
                    ],
                    admitted,
                )
                .await?;
                if let Some(opened) = opened {
                    count_touches(tx, &[opened], at).await?;
                }
            }
            DecisionRecord::Defer {
                touch,
                until,
                reason,
            } => deferred.push((touch.0, millis(*until), reason.to_string())),
            DecisionRecord::Substitute { touch, retry_at } => {
                let held = sql::fetch_optional(
                    tx,
                    "UPDATE touches SET due_at = $1, decision = 'substitute', \
                     reason = 'capacity', until_at = $1, decided_at = $2, \
                     deferrals = deferrals + 1 WHERE id = $3 AND state = 'pending' \
                     RETURNING enrollment_id, contact_id, process_id, step",
                    &[&(millis(*retry_at)), &at, &touch.0],
                    keep_warm_for,
                )
                .await?;
                if let Some(keep_warm) = held {
                    queue_keep_warm(tx, &keep_warm, at).await?;
                }
            }
            DecisionRecord::Replace { touch, next } => {
                let given_up = sql::fetch_optional(
                    tx,
                    "UPDATE touches SET state = 'skipped', decision = 'substitute', \
                     reason = 'capacity', until_at = NULL, decided_at = $1 \
                     WHERE id = $2 AND state = 'pending' \
                     RETURNING enrollment_id, contact_id, process_id, step",
                    &[&at, &touch.0],
                    keep_warm_for,
                )
                .await?;
                if let Some(keep_warm) = given_up {
                    queue_keep_warm(tx, &keep_warm, at).await?;
                    advance(tx, keep_warm.enrollment_id, *next, at).await?;
                }
            }
            DecisionRecord::Skip {
                touch,
                reason,
                end_enrollment,
            } => {
                let reason = reason.to_string();
                let skipped = sql::fetch_optional(
                    tx,
                    "UPDATE touches SET state = 'skipped', decision = 'skip', reason = $1, \
                     decided_at = $2 WHERE id = $3 AND state = 'pending' RETURNING enrollment_id",
                    &[&reason, &at, &touch.0],
                    |row| get::<i64>(row, "enrollment_id"),
                )
                .await?;
                if let (Some(enrollment), true) = (skipped, *end_enrollment) {
                    sql::execute(
                        tx,
                        "UPDATE enrollments SET state = 'exited', ended_at = $1, end_reason = $2 \
                         WHERE id = $3 AND state = 'active'",
                        &[&at, &reason, &enrollment],
                    )
                    .await?;
                }
            }
        }
    }
    defer_touches(tx, &deferred, at).await?;
    let keep_warm = decisions.iter().any(|d| {
        matches!(
            d,
            DecisionRecord::Substitute { .. } | DecisionRecord::Replace { .. }
        )
    });
    if !queued.is_empty() || keep_warm {
        sql::announce_dispatch(tx).await?;
    }
    queue_touches(tx, &queued, at).await?;
    set_value(tx, BUDGET_KEY, budget).await
}

/// The keep-warm email for the enrollment of a held offer's row.
pub(super) fn keep_warm_for(row: &Row) -> Result<Admitted, StoreError> {
    Ok(Admitted {
        contact_id: get(row, "contact_id")?,
        enrollment_id: get(row, "enrollment_id")?,
        process_id: get(row, "process_id")?,
        step: get(row, "step")?,
        intent: "nurture".into(),
    })
}

/// Queues a keep-warm email now and counts it as a touch to its contact.
pub(super) async fn queue_keep_warm(
    tx: &Tx<'_>,
    keep_warm: &Admitted,
    at: i64,
) -> Result<(), StoreError> {
    sql::execute(
        tx,
        "INSERT INTO touches (enrollment_id, contact_id, process_id, step, kind, \
         channel, intent, state, due_at, created_at, decision, decided_at, \
         admitted_at, next_attempt_at) \
         VALUES ($1, $2, $3, $4, 'keep_warm', 'email', 'nurture', 'queued', $5, $5, \
         'send', $5, $5, $5)",
        &[
            &keep_warm.enrollment_id,
            &keep_warm.contact_id,
            &keep_warm.process_id,
            &keep_warm.step,
            &at,
        ],
    )
    .await?;
    count_touches(tx, std::slice::from_ref(keep_warm), at).await
}

// Batches run one prepared single-row statement per row, as SQLite's twin does; on
// PostgreSQL each is a round trip, which the dispatcher's batching keeps few.

/// Admits pending touches to the outbox, `(id, offer probability)` each, and counts them
/// as touches to their contacts.
pub(crate) async fn queue_touches(
    tx: &Tx<'_>,
    rows: &[(i64, Option<f64>)],
    at: i64,
) -> Result<(), StoreError> {
    let queue = format!(
        "UPDATE touches SET state = 'queued', decision = 'send', reason = NULL, \
         until_at = NULL, decided_at = $1, admitted_at = $1, next_attempt_at = $1, \
         probability = $2 WHERE id = $3 AND state = 'pending' RETURNING {ADMITTED_COLUMNS}"
    );
    let mut queued = Vec::with_capacity(rows.len());
    for (id, probability) in rows {
        if let Some(row) =
            sql::fetch_optional(tx, &queue, &[&at, probability, id], admitted).await?
        {
            queued.push(row);
        }
    }
    count_touches(tx, &queued, at).await
}

/// Counts admitted touches to their contacts, enrollments and offer stats.
pub(super) async fn count_touches(
    tx: &Tx<'_>,
    touches: &[Admitted],
    at: i64,
) -> Result<(), StoreError> {
    for t in touches {
        sql::execute(
            tx,
            "UPDATE contacts SET last_touch_at = $1 \
             WHERE id = $2 AND (last_touch_at IS NULL OR last_touch_at < $1)",
            &[&at, &t.contact_id],
        )
        .await?;
        sql::execute(
            tx,
            "UPDATE enrollments SET touches = touches + 1, last_touch_at = $1 WHERE id = $2",
            &[&at, &t.enrollment_id],
        )
        .await?;
        if t.intent == "offer" {
            // Atomic: two batches counting offers of one step never lose one.
            sql::execute(
                tx,
                "INSERT INTO offer_stats (process_id, step, sent) VALUES ($1, $2, 1) \
                 ON CONFLICT (process_id, step) DO UPDATE SET sent = offer_stats.sent + 1",
                &[&t.process_id, &t.step],
            )
            .await?;
        }
    }
    Ok(())
}

/// Defers pending touches, `(id, until ms, reason)` each.
pub(crate) async fn defer_touches(
    tx: &Tx<'_>,
    rows: &[(i64, i64, String)],
    at: i64,
) -> Result<(), StoreError> {
    for (id, until, reason) in rows {
        sql::execute(
            tx,
            "UPDATE touches SET due_at = $1, decision = 'defer', reason = $2, until_at = $1, \
             decided_at = $3, deferrals = deferrals + 1 WHERE id = $4 AND state = 'pending'",
            &[until, reason, &at, id],
        )
        .await?;
    }
    Ok(())
}
