//! Dispatch leases, their results and the enrollments they move on.

use super::*;

/// Leases up to `limit` queued touches. Every email is checked against the
/// suppression list in this same transaction, by the address it would go to now:
/// a suppressed one is skipped (reason `suppressed`) and its contact suppressed, so no
/// merge, address change or import can route a send around an unsubscribe.
pub(crate) async fn claim_dispatch(
    tx: &Tx<'_>,
    keys: &AddressKeys,
    now: Timestamp,
    lease_ms: i64,
    limit: u32,
) -> Result<Vec<ClaimedTouch>, StoreError> {
    let mut claimed = Vec::new();
    // Skipped touches leave room: claim again until the batch is full or none are left.
    while (claimed.len() as u32) < limit {
        let (leased, sendable) =
            claim_once(tx, keys, now, lease_ms, limit - claimed.len() as u32).await?;
        claimed.extend(sendable);
        if leased == 0 {
            break;
        }
    }
    Ok(claimed)
}

/// One lease round: how many touches it leased, and those that may be sent.
pub(crate) async fn claim_once(
    tx: &Tx<'_>,
    keys: &AddressKeys,
    now: Timestamp,
    lease_ms: i64,
    limit: u32,
) -> Result<(usize, Vec<ClaimedTouch>), StoreError> {
    let now_ms = millis(now);
    let token = Lease::new_token();
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
        /// When it was due to be claimed: the order of the pick.
        was: i64,
    }
    // `SKIP LOCKED`: a touch another claimer is leasing right now is passed over, not
    // waited for and then leased twice. Rows come back in the order they were picked.
    let mut rows = sql::fetch_all(
        tx,
        "WITH picked AS (\
           SELECT id, next_attempt_at AS was FROM touches \
           WHERE state = 'queued' AND next_attempt_at <= $2 \
           ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
         UPDATE touches t SET next_attempt_at = $1, attempts = t.attempts + 1, leased = TRUE, \
         lease_token = $4 FROM picked WHERE t.id = picked.id \
         RETURNING t.id, t.enrollment_id, t.contact_id, t.process_id, t.step, t.kind, \
         t.channel, t.intent, t.attempts, picked.was",
        &[
            &now_ms.saturating_add(lease_ms),
            &now_ms,
            &i64::from(limit),
            &token,
        ],
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
                was: get_at(row, 9, "was")?,
            })
        },
    )
    .await?;
    rows.sort_by_key(|r| (r.was, r.touch.0));
    if rows.is_empty() {
        return Ok((0, Vec::new()));
    }
    // Each claimed touch needs its contact and enrollment: two reads per batch, not
    // two per touch.
    let contact_ids: Vec<i64> = rows.iter().map(|r| r.contact_id).collect();
    let enrollment_ids: Vec<i64> = rows.iter().map(|r| r.enrollment_id).collect();
    let contacts = contacts_by_id(tx, &contact_ids).await?;
    let enrollments = enrollment_steps(tx, &enrollment_ids).await?;

    // The suppression check, by the address each email goes to now.
    let mut silenced: HashSet<i64> = HashSet::new();
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
        if contact.suppressed_at.is_some() || suppress::address_suppressed(tx, keys, email).await? {
            silenced.insert(row.contact_id);
        } else {
            sql::execute(
                tx,
                "UPDATE touches SET address_key = $1 WHERE id = $2",
                &[&keys.key(email), &row.touch.0],
            )
            .await?;
        }
    }
    if !silenced.is_empty() {
        // The claim counted no attempt: nothing was tried.
        for row in rows
            .iter()
            .filter(|r| r.channel == Channel::Email && silenced.contains(&r.contact_id))
        {
            sql::execute(
                tx,
                "UPDATE touches SET state = 'skipped', decision = 'skip', \
                 reason = 'suppressed', decided_at = $1, leased = FALSE, lease_token = NULL, \
                 next_attempt_at = NULL, attempts = GREATEST(attempts - 1, 0) \
                 WHERE id = $2 AND state = 'queued'",
                &[&now_ms, &row.touch.0],
            )
            .await?;
        }
        for contact in &silenced {
            suppress::suppress(tx, keys, ContactId(*contact), "suppressed", now_ms).await?;
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
            lease_token: token,
        });
    }
    Ok((leased, claimed))
}

/// Contacts by id, for ids that exist.
pub(crate) async fn contacts_by_id(
    tx: &Tx<'_>,
    ids: &[i64],
) -> Result<HashMap<i64, Contact>, StoreError> {
    let select = concat!(
        "SELECT ",
        contact_columns!(),
        " FROM contacts WHERE id = ANY($1)"
    );
    sql::fetch_all(tx, select, &[&ids], ContactRow::decode)
        .await?
        .into_iter()
        .map(|row| Ok((row.id, row.into_contact()?)))
        .collect()
}

/// `(step, active)` of each enrollment, by id.
pub(crate) async fn enrollment_steps(
    tx: &Tx<'_>,
    ids: &[i64],
) -> Result<HashMap<i64, (u32, bool)>, StoreError> {
    Ok(sql::fetch_all(
        tx,
        "SELECT id, step, state FROM enrollments WHERE id = ANY($1)",
        &[&ids],
        |row| {
            let step = (
                step_index(row, "step")?,
                get::<String>(row, "state")? == "active",
            );
            Ok((get::<i64>(row, "id")?, step))
        },
    )
    .await?
    .into_iter()
    .collect())
}

/// Moves an active enrollment to its next step, or completes it.
pub(crate) async fn advance(
    tx: &Tx<'_>,
    enrollment_id: i64,
    next: Option<NextTouch>,
    at: i64,
) -> Result<(), StoreError> {
    match next {
        Some(next) if next.then.is_some() => hand_off(tx, enrollment_id, next, at).await,
        Some(next) => advance_many(tx, &[(enrollment_id, at, next)]).await,
        None => {
            sql::execute(
                tx,
                "UPDATE enrollments SET state = 'completed', ended_at = $1 \
                 WHERE id = $2 AND state = 'active'",
                &[&at, &enrollment_id],
            )
            .await?;
            Ok(())
        }
    }
}

/// Records many dispatch results; deliveries, the common case, in a few statements
/// per batch instead of three per touch. Results whose lease is no longer held are
/// ignored.
pub(crate) async fn finish_dispatches(
    tx: &Tx<'_>,
    keys: &AddressKeys,
    finished: &[(Lease, Timestamp, DispatchResult)],
) -> Result<(), StoreError> {
    let mut delivered = Vec::new();
    for (lease, at, result) in finished {
        match result {
            DispatchResult::Delivered { next } => delivered.push((*lease, millis(*at), *next)),
            other => {
                finish_dispatch(tx, keys, *lease, *at, other).await?;
            }
        }
    }
    deliver_touches(tx, &delivered).await?;
    Ok(())
}

/// Marks queued touches still held by their lease sent, `(lease, sent at, next step)`
/// each, and moves their enrollments on. Returns how many were recorded.
pub(crate) async fn deliver_touches(
    tx: &Tx<'_>,
    rows: &[(Lease, i64, Option<NextTouch>)],
) -> Result<usize, StoreError> {
    // In the order given, so the next touches get ids in a repeatable order.
    let mut moves = Vec::new();
    let mut completions = Vec::new();
    let mut hand_offs = Vec::new();
    let mut recorded = 0;
    for (lease, at, next) in rows {
        let delivered = sql::fetch_optional(
            tx,
            "UPDATE touches SET state = 'sent', sent_at = $1, last_error = NULL, \
             next_attempt_at = NULL, leased = FALSE, lease_token = NULL \
             WHERE id = $2 AND state = 'queued' AND lease_token = $3 \
             RETURNING enrollment_id, kind",
            &[at, &lease.touch.0, &lease.token],
            step_enrollment,
        )
        .await?;
        let Some(enrollment) = delivered else {
            continue;
        };
        recorded += 1;
        let Some(enrollment) = enrollment else {
            continue;
        };
        match next {
            Some(next) if next.then.is_some() => hand_offs.push((enrollment, *at, *next)),
            Some(next) => moves.push((enrollment, *at, *next)),
            None => completions.push((enrollment, *at)),
        }
    }
    advance_many(tx, &moves).await?;
    for (enrollment, at, next) in hand_offs {
        hand_off(tx, enrollment, next, at).await?;
    }
    for (enrollment, at) in &completions {
        sql::execute(
            tx,
            "UPDATE enrollments SET state = 'completed', ended_at = $1 \
             WHERE id = $2 AND state = 'active'",
            &[at, enrollment],
        )
        .await?;
    }
    Ok(recorded)
}

/// Completes an active enrollment whose sequence has ended and enrolls its contact in
/// the process its `then` names, at that process's first step.
pub(crate) async fn hand_off(
    tx: &Tx<'_>,
    enrollment_id: i64,
    next: NextTouch,
    at: i64,
) -> Result<(), StoreError> {
    let Some(process_id) = next.then else {
        return advance_many(tx, &[(enrollment_id, at, next)]).await;
    };
    let completed = sql::fetch_optional(
        tx,
        "UPDATE enrollments SET state = 'completed', ended_at = $1 \
         WHERE id = $2 AND state = 'active' RETURNING contact_id",
        &[&at, &enrollment_id],
        |row| get::<i64>(row, "contact_id"),
    )
    .await?;
    if let Some(contact) = completed {
        let plan = super::signals::Enrollment {
            contact: ContactId(contact),
            process_id,
            first: next.step,
            due_at: next.due_at,
            enrolled_at: at,
            reenroll: true,
            // What follows a process was started by its end, not by a signal.
            trigger: None,
        };
        super::signals::enroll(tx, &plan, at).await?;
    }
    Ok(())
}

/// Moves active enrollments to their next step and plans it, `(enrollment, at, next)`
/// each.
pub(crate) async fn advance_many(
    tx: &Tx<'_>,
    moves: &[(i64, i64, NextTouch)],
) -> Result<(), StoreError> {
    for (enrollment, at, next) in moves {
        let moved: Option<(i64, i64, bool)> = sql::fetch_optional(
            tx,
            "UPDATE enrollments SET step = $1, paused_due_at = CASE WHEN paused_at IS NULL \
             THEN paused_due_at ELSE $3 END WHERE id = $2 AND state = 'active' \
             RETURNING contact_id, process_id, paused_at IS NOT NULL AS paused",
            &[&i64::from(next.step.step), enrollment, &millis(next.due_at)],
            |row| {
                Ok((
                    get(row, "contact_id")?,
                    get(row, "process_id")?,
                    get(row, "paused")?,
                ))
            },
        )
        .await?;
        let Some((contact, process, paused)) = moved else {
            continue;
        };
        // Paused while its last touch was on its way: the next one waits for the resume,
        // which brings it back at its due time (kept above).
        let due = if paused {
            crate::console::PARKED_AT
        } else {
            millis(next.due_at)
        };
        insert_pending(tx, *enrollment, contact, process, next.step, due, *at).await?;
    }
    Ok(())
}

/// Records one dispatch result if `lease` still holds its touch; returns whether it did.
pub(crate) async fn finish_dispatch(
    tx: &Tx<'_>,
    keys: &AddressKeys,
    lease: Lease,
    at: Timestamp,
    result: &DispatchResult,
) -> Result<bool, StoreError> {
    let at = millis(at);
    let (touch, token) = (lease.touch, lease.token);
    let recorded = match result {
        DispatchResult::Delivered { next } => {
            deliver_touches(tx, &[(lease, at, *next)]).await? == 1
        }
        DispatchResult::Retry { error, retry_at } => {
            sql::execute(
                tx,
                "UPDATE touches SET next_attempt_at = $1, last_error = $2, leased = FALSE, \
                 lease_token = NULL WHERE id = $3 AND state = 'queued' AND lease_token = $4",
                &[&(millis(*retry_at)), &(error.as_str()), &touch.0, &token],
            )
            .await?
                == 1
        }
        DispatchResult::Failed { error, next } => {
            let failed = sql::fetch_optional(
                tx,
                "UPDATE touches SET state = 'failed', last_error = $1, next_attempt_at = NULL, \
                 leased = FALSE, lease_token = NULL \
                 WHERE id = $2 AND state = 'queued' AND lease_token = $3 \
                 RETURNING enrollment_id, kind",
                &[&error, &touch.0, &token],
                step_enrollment,
            )
            .await?;
            if let Some(Some(enrollment)) = failed {
                advance(tx, enrollment, *next, at).await?;
            }
            failed.is_some()
        }
        DispatchResult::Bounced { error } => {
            let bounced = sql::fetch_optional(
                tx,
                "UPDATE touches SET state = 'failed', last_error = $1, next_attempt_at = NULL, \
                 leased = FALSE, lease_token = NULL \
                 WHERE id = $2 AND state = 'queued' AND lease_token = $3 \
                 RETURNING contact_id, address_key",
                &[&error, &touch.0, &token],
                |row| {
                    Ok((
                        get::<i64>(row, "contact_id")?,
                        get::<Option<String>>(row, "address_key")?,
                    ))
                },
            )
            .await?;
            let recorded = bounced.is_some();
            if let Some((contact, address_key)) = bounced {
                // The address it was sent to, even if the record has moved on since.
                if let Some(key) = address_key {
                    suppress::record(tx, &key, "bounced", at).await?;
                }
                suppress::suppress(tx, keys, ContactId(contact), "bounced", at).await?;
            }
            recorded
        }
    };
    Ok(recorded)
}

/// The enrollment a finished touch moves on: its own for a step, none for a keep-warm.
pub(super) fn step_enrollment(row: &Row) -> Result<Option<i64>, StoreError> {
    Ok(if get::<String>(row, "kind")? == "step" {
        Some(get(row, "enrollment_id")?)
    } else {
        None
    })
}

pub(crate) async fn release_all_claims(tx: &Tx<'_>, at: Timestamp) -> Result<u64, StoreError> {
    sql::execute(
        tx,
        "UPDATE touches SET next_attempt_at = $1, leased = FALSE, lease_token = NULL \
         WHERE state = 'queued' AND leased = TRUE",
        &[&(millis(at))],
    )
    .await
}

/// Records an event for a known contact (a task's outcome) and the stage change it
/// maps to, as ingest would; a repeated `message_id` changes nothing.
pub(crate) async fn track_for_contact(
    tx: &Tx<'_>,
    contact: ContactId,
    name: &str,
    message_id: &str,
    properties: &serde_json::Value,
    stage: Option<&StageName>,
    at: i64,
) -> Result<bool, StoreError> {
    // Held to the commit: events and stage changes become visible in id order.
    sql::lock_signal_writers(tx).await?;
    let inserted = sql::execute(
        tx,
        "INSERT INTO events (message_id, contact_id, kind, name, properties, occurred_at, \
         received_at) VALUES ($1, $2, 'track', $3, $4::text::jsonb, $5, $5) \
         ON CONFLICT (message_id) DO NOTHING",
        &[
            &message_id,
            &contact.0,
            &name,
            &(properties.to_string()),
            &at,
        ],
    )
    .await?;
    if inserted == 0 {
        return Ok(false);
    }
    let Some(stage) = stage else {
        return Ok(true);
    };
    let from: Option<String> = sql::fetch_optional(
        tx,
        "SELECT stage FROM contacts WHERE id = $1 FOR UPDATE",
        &[&contact.0],
        |row| get(row, "stage"),
    )
    .await?;
    if from.as_deref().is_some_and(|from| from != stage.as_str()) {
        sql::execute(
            tx,
            "UPDATE contacts SET stage = $1, updated_at = $2 WHERE id = $3",
            &[&(stage.as_str()), &at, &contact.0],
        )
        .await?;
        sql::execute(
            tx,
            "INSERT INTO stage_history (contact_id, from_stage, to_stage, reason, message_id, \
             at) VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &contact.0,
                &from,
                &(stage.as_str()),
                &name,
                &message_id,
                &at,
            ],
        )
        .await?;
    }
    Ok(true)
}

pub(crate) async fn next_at(
    tx: &Tx<'_>,
    sql: &'static str,
) -> Result<Option<Timestamp>, StoreError> {
    let at: Option<i64> = sql::fetch_one(tx, sql, &[], |row| get(row, "next")).await?;
    opt_timestamp(at, "next instant")
}
