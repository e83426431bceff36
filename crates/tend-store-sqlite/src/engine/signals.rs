//! Reading stage changes and events, and what they do: enrollment, exits, wake-ups.

use super::*;

pub(crate) fn read_signals(
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
        "SELECT id, contact_id, from_stage, to_stage, at, enrolls, enroll_not_before \
         FROM stage_history WHERE id > ?1 ORDER BY id LIMIT ?2",
        params![after.stage_history, limit],
        |row| {
            let id: i64 = get(row, "id")?;
            let at: i64 = get(row, "at")?;
            let from: Option<String> = get(row, "from_stage")?;
            let not_before: Option<i64> = get(row, "enroll_not_before")?;
            let enrollment = match (get::<bool>(row, "enrolls")?, not_before) {
                (false, _) => StageEnrollment::No,
                (true, None) => StageEnrollment::Now,
                (true, Some(ms)) => {
                    StageEnrollment::NotBefore(timestamp(ms, "stage change enroll_not_before")?)
                }
            };
            let signal = Signal::StageEntered {
                contact: ContactId(get(row, "contact_id")?),
                from: from.map(StageName::new),
                to: StageName::new(get::<String>(row, "to_stage")?),
                at: timestamp(at, "stage change at")?,
                enrollment,
                id,
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
                    id,
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

pub(crate) fn apply_signals(
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
                enrolled_at,
                reenroll,
                trigger,
            } => {
                let plan = Enrollment {
                    contact: *contact,
                    process_id: *process_id,
                    first: *first,
                    due_at: *due_at,
                    enrolled_at: millis(*enrolled_at),
                    reenroll: *reenroll,
                    trigger: *trigger,
                };
                if enroll(conn, &plan, at_ms)? {
                    outcome.enrolled += 1;
                }
            }
            EngineAction::Exit {
                contact,
                process_id,
                reason,
            } => {
                outcome.exited += exit(conn, *contact, *process_id, reason, "exited", at_ms)?;
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
pub(crate) fn wake_capacity_held(
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

/// One enrollment to create.
pub(super) struct Enrollment {
    pub contact: ContactId,
    pub process_id: i64,
    pub first: StepSpec,
    pub due_at: Timestamp,
    /// When it starts (milliseconds); an imported contact's may be later than `at`.
    pub enrolled_at: i64,
    /// Whether a contact who was enrolled before may enter again.
    pub reenroll: bool,
    /// The event or stage change it came from.
    pub trigger: Option<EnrollTrigger>,
}

/// Creates the enrollment and its first touch at `at`, unless the contact is
/// suppressed or already enrolled (or was, without re-entry); returns whether it did.
pub(super) fn enroll(conn: &Connection, plan: &Enrollment, at: i64) -> Result<bool, StoreError> {
    let &Enrollment {
        contact,
        process_id,
        first,
        due_at,
        enrolled_at,
        reenroll,
        trigger,
    } = plan;
    let (trigger_event, trigger_stage_change) = match trigger {
        Some(EnrollTrigger::Event(id)) => (Some(id), None),
        Some(EnrollTrigger::StageChange(id)) => (None, Some(id)),
        None => (None, None),
    };
    let enrolled = sql::fetch_optional(
        conn,
        "INSERT INTO enrollments (contact_id, process_id, state, step, enrolled_at, \
           trigger_event_id, trigger_stage_change_id) \
         SELECT c.id, ?1, 'active', ?2, ?3, ?6, ?7 FROM contacts c \
         WHERE c.id = ?4 AND c.suppressed_at IS NULL AND NOT EXISTS (\
           SELECT 1 FROM enrollments e WHERE e.contact_id = c.id AND e.process_id = ?1 \
           AND (e.state = 'active' OR ?5 = 0)) \
         RETURNING id",
        params![
            process_id,
            i64::from(first.step),
            enrolled_at,
            contact.0,
            reenroll,
            trigger_event,
            trigger_stage_change
        ],
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

pub(super) fn insert_pending(
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
            step.channel.as_str(),
            step.intent.as_str(),
            due_at,
            at
        ],
    )?;
    Ok(())
}

/// Ends a contact's active enrollments (in one process, or all) for `reason` and
/// cancels their planned touches, counted under `cause`.
pub(crate) fn exit(
    conn: &Connection,
    contact: ContactId,
    process_id: Option<i64>,
    reason: &str,
    cause: &str,
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
    cancel_planned(conn, &ids, "exited", cause)?;
    Ok(ids.len() as u64)
}

/// What started an enrollment (see [`tend_store::Store::enrollment_trigger`]).
pub(crate) fn enrollment_trigger(
    conn: &Connection,
    enrollment_id: i64,
) -> Result<Option<EnrollmentTrigger>, StoreError> {
    let row = sql::fetch_optional(
        conn,
        "SELECT e.trigger_event_id, h.from_stage, h.to_stage, h.at, h.message_id AS cause \
         FROM enrollments e LEFT JOIN stage_history h ON h.id = e.trigger_stage_change_id \
         WHERE e.id = ?1",
        params![enrollment_id],
        |row| {
            Ok((
                get::<Option<i64>>(row, "trigger_event_id")?,
                get::<Option<String>>(row, "from_stage")?,
                get::<Option<String>>(row, "to_stage")?,
                get::<Option<i64>>(row, "at")?,
                get::<Option<String>>(row, "cause")?,
            ))
        },
    )?;
    let Some((event_id, from, to, at, cause)) = row else {
        return Ok(None);
    };
    if let Some(id) = event_id {
        return Ok(trigger_event(conn, "id = ?1", &id)?.map(EnrollmentTrigger::Event));
    }
    let (Some(to), Some(at)) = (to, at) else {
        return Ok(None);
    };
    let event = match cause {
        Some(message_id) => trigger_event(conn, "message_id = ?1", &message_id)?,
        None => None,
    };
    Ok(Some(EnrollmentTrigger::StageChange {
        from,
        to,
        timestamp: timestamp(at, "stage change at")?,
        event,
    }))
}

/// The tracked event `condition` (on `id` or `message_id`) names, if it is still there.
fn trigger_event(
    conn: &Connection,
    condition: &str,
    key: &dyn ToSql,
) -> Result<Option<TriggerEvent>, StoreError> {
    sql::fetch_optional(
        conn,
        &format!(
            "SELECT name, properties, occurred_at FROM events WHERE {condition} AND kind = 'track'"
        ),
        params![key],
        |row| {
            let properties: String = get(row, "properties")?;
            Ok(TriggerEvent {
                event: get::<Option<String>>(row, "name")?.unwrap_or_default(),
                properties: serde_json::from_str(&properties).map_err(|e| {
                    StoreError::Corrupt(format!("an event's properties are not JSON: {e}"))
                })?,
                timestamp: timestamp(get(row, "occurred_at")?, "event occurred_at")?,
            })
        },
    )
}
