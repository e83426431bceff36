//! Dispatch leases, their results and the enrollments they move on.

use super::*;

/// Leases up to `limit` queued touches. Every email is checked against the
/// suppression list in this same transaction, by the address it would go to now:
/// a suppressed one is skipped (reason `suppressed`) and its contact suppressed, so no
/// merge, address change or import can route a send around an unsubscribe.
pub(crate) fn claim_dispatch(
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
pub(super) fn claim_once(
    conn: &Connection,
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
    }
    let rows = sql::fetch_all(
        conn,
        "UPDATE touches SET next_attempt_at = ?1, attempts = attempts + 1, leased = 1, \
         lease_token = ?4 WHERE id IN (\
           SELECT id FROM touches WHERE state = 'queued' AND next_attempt_at <= ?2 \
           ORDER BY next_attempt_at, id LIMIT ?3) \
         RETURNING id, enrollment_id, contact_id, process_id, step, kind, channel, intent, \
         attempts",
        params![now_ms.saturating_add(lease_ms), now_ms, limit, token],
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
    let check = suppress::AddressCheck::new(conn, keys)?;
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
        if contact.suppressed_at.is_some() || check.suppressed(email)? {
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
             decided_at = ?1, leased = 0, lease_token = NULL, next_attempt_at = NULL, \
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
            lease_token: token,
        });
    }
    Ok((leased, claimed))
}

/// Contacts by id, for ids that exist.
pub(super) fn contacts_by_id(
    conn: &Connection,
    ids: &[i64],
) -> Result<HashMap<i64, Contact>, StoreError> {
    let head = concat!("SELECT ", contact_columns!(), " FROM contacts WHERE id IN");
    sql::fetch_in(conn, head, "", ids, ContactRow::decode)?
        .into_iter()
        .map(|row| Ok((row.id, row.into_contact()?)))
        .collect()
}

/// `(step, active)` of each enrollment, by id.
pub(super) fn enrollment_steps(
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
pub(super) fn advance(
    conn: &Connection,
    enrollment_id: i64,
    next: Option<NextTouch>,
    at: i64,
) -> Result<(), StoreError> {
    match next {
        Some(next) if next.then.is_some() => hand_off(conn, enrollment_id, next, at),
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
/// per batch instead of three per touch. Results whose lease is no longer held are
/// ignored.
pub(crate) fn finish_dispatches(
    conn: &Connection,
    keys: &AddressKeys,
    finished: &[(Lease, Timestamp, DispatchResult)],
) -> Result<(), StoreError> {
    let mut delivered = Vec::new();
    for (lease, at, result) in finished {
        match result {
            DispatchResult::Delivered { next } => delivered.push((*lease, millis(*at), *next)),
            other => {
                finish_dispatch(conn, keys, *lease, *at, other)?;
            }
        }
    }
    deliver_touches(conn, &delivered)?;
    Ok(())
}

/// Marks queued touches still held by their lease sent, `(lease, sent at, next step)`
/// each, and moves their enrollments on. Returns how many were recorded.
pub(super) fn deliver_touches(
    conn: &Connection,
    rows: &[(Lease, i64, Option<NextTouch>)],
) -> Result<usize, StoreError> {
    let mut deliver = conn
        .prepare_cached(
            "UPDATE touches SET state = 'sent', sent_at = ?1, last_error = NULL, \
         next_attempt_at = NULL, leased = 0, lease_token = NULL \
         WHERE id = ?2 AND state = 'queued' AND lease_token = ?3 \
         RETURNING enrollment_id, kind",
        )
        .map_err(db)?;
    // In the order given, so the next touches get ids in a repeatable order.
    let mut moves = Vec::new();
    let mut completions = Vec::new();
    let mut hand_offs = Vec::new();
    let mut recorded = 0;
    for (lease, at, next) in rows {
        let mut returned = deliver
            .query(params![at, lease.touch.0, lease.token])
            .map_err(db)?;
        let Some(row) = returned.next().map_err(db)? else {
            continue;
        };
        recorded += 1;
        let Some(enrollment) = step_enrollment(row)? else {
            continue;
        };
        match next {
            Some(next) if next.then.is_some() => hand_offs.push((enrollment, *at, *next)),
            Some(next) => moves.push((enrollment, *at, *next)),
            None => completions.push((enrollment, *at)),
        }
    }
    advance_many(conn, &moves)?;
    for (enrollment, at, next) in hand_offs {
        hand_off(conn, enrollment, next, at)?;
    }
    let mut complete = conn
        .prepare_cached(
            "UPDATE enrollments SET state = 'completed', ended_at = ?1 \
         WHERE id = ?2 AND state = 'active'",
        )
        .map_err(db)?;
    for (enrollment, at) in &completions {
        complete.execute(params![at, enrollment]).map_err(db)?;
    }
    Ok(recorded)
}

/// Completes an active enrollment whose sequence has ended and enrolls its contact in
/// the process its `then` names, at that process's first step.
pub(super) fn hand_off(
    conn: &Connection,
    enrollment_id: i64,
    next: NextTouch,
    at: i64,
) -> Result<(), StoreError> {
    let Some(process_id) = next.then else {
        return advance_many(conn, &[(enrollment_id, at, next)]);
    };
    let completed = sql::fetch_optional(
        conn,
        "UPDATE enrollments SET state = 'completed', ended_at = ?1 \
         WHERE id = ?2 AND state = 'active' RETURNING contact_id",
        params![at, enrollment_id],
        |row| get::<i64>(row, "contact_id"),
    )?;
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
        super::signals::enroll(conn, &plan, at)?;
    }
    Ok(())
}

/// Moves active enrollments to their next step and plans it, `(enrollment, at, next)`
/// each.
pub(super) fn advance_many(
    conn: &Connection,
    moves: &[(i64, i64, NextTouch)],
) -> Result<(), StoreError> {
    let mut step = conn
        .prepare_cached(
            "UPDATE enrollments SET step = ?1, paused_due_at = CASE WHEN paused_at IS NULL \
             THEN paused_due_at ELSE ?3 END WHERE id = ?2 AND state = 'active' \
             RETURNING contact_id, process_id, paused_at IS NOT NULL AS paused",
        )
        .map_err(db)?;
    for (enrollment, at, next) in moves {
        let mut returned = step
            .query(params![next.step.step, enrollment, millis(next.due_at)])
            .map_err(db)?;
        let Some(row) = returned.next().map_err(db)? else {
            continue;
        };
        let (contact, process) = (get(row, "contact_id")?, get(row, "process_id")?);
        // Paused while its last touch was on its way: the next one waits for the resume,
        // which brings it back at its due time (kept above).
        let due = if get::<bool>(row, "paused")? {
            crate::console::PARKED_AT
        } else {
            millis(next.due_at)
        };
        drop(returned);
        insert_pending(conn, *enrollment, contact, process, next.step, due, *at)?;
    }
    Ok(())
}

/// Records one dispatch result if `lease` still holds its touch; returns whether it did.
pub(crate) fn finish_dispatch(
    conn: &Connection,
    keys: &AddressKeys,
    lease: Lease,
    at: Timestamp,
    result: &DispatchResult,
) -> Result<bool, StoreError> {
    let at = millis(at);
    let (touch, token) = (lease.touch, lease.token);
    let recorded = match result {
        DispatchResult::Delivered { next } => deliver_touches(conn, &[(lease, at, *next)])? == 1,
        DispatchResult::Retry { error, retry_at } => {
            sql::execute(
                conn,
                "UPDATE touches SET next_attempt_at = ?1, last_error = ?2, leased = 0, \
                 lease_token = NULL WHERE id = ?3 AND state = 'queued' AND lease_token = ?4",
                params![millis(*retry_at), error.as_str(), touch.0, token],
            )? == 1
        }
        DispatchResult::Failed { error, next } => {
            let failed = sql::fetch_optional(
                conn,
                "UPDATE touches SET state = 'failed', last_error = ?1, next_attempt_at = NULL, \
                 leased = 0, lease_token = NULL \
                 WHERE id = ?2 AND state = 'queued' AND lease_token = ?3 \
                 RETURNING enrollment_id, kind",
                params![error, touch.0, token],
                step_enrollment,
            )?;
            if let Some(Some(enrollment)) = failed {
                advance(conn, enrollment, *next, at)?;
            }
            failed.is_some()
        }
        DispatchResult::Bounced { error } => {
            let bounced = sql::fetch_optional(
                conn,
                "UPDATE touches SET state = 'failed', last_error = ?1, next_attempt_at = NULL, \
                 leased = 0, lease_token = NULL \
                 WHERE id = ?2 AND state = 'queued' AND lease_token = ?3 \
                 RETURNING contact_id, address_key",
                params![error, touch.0, token],
                |row| {
                    Ok((
                        get::<i64>(row, "contact_id")?,
                        get::<Option<String>>(row, "address_key")?,
                    ))
                },
            )?;
            let recorded = bounced.is_some();
            if let Some((contact, address_key)) = bounced {
                // The address it was sent to, even if the record has moved on since.
                if let Some(key) = address_key {
                    suppress::record(conn, &key, "bounced", at)?;
                }
                suppress::suppress(conn, keys, ContactId(contact), "bounced", at)?;
            }
            recorded
        }
    };
    Ok(recorded)
}

/// The enrollment a finished touch moves on: its own for a step, none for a keep-warm.
pub(super) fn step_enrollment(row: &Row<'_>) -> Result<Option<i64>, StoreError> {
    Ok(if get::<String>(row, "kind")? == "step" {
        Some(get(row, "enrollment_id")?)
    } else {
        None
    })
}

pub(crate) fn release_all_claims(conn: &Connection, at: Timestamp) -> Result<u64, StoreError> {
    sql::execute(
        conn,
        "UPDATE touches SET next_attempt_at = ?1, leased = 0, lease_token = NULL \
         WHERE state = 'queued' AND leased = 1",
        params![millis(at)],
    )
}

/// Records an event for a known contact (a task's outcome) and the stage change it
/// maps to, as ingest would; a repeated `message_id` changes nothing.
pub(crate) fn track_for_contact(
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

pub(crate) fn next_at(
    conn: &Connection,
    sql: &'static str,
) -> Result<Option<Timestamp>, StoreError> {
    let at: Option<i64> = sql::fetch_one(conn, sql, [], |row| get(row, "next"))?;
    opt_timestamp(at, "next instant")
}
