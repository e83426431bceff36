//! Reading stage changes and events, and what they do: enrollment, exits, wake-ups.

use super::*;

pub(crate) async fn read_signals(
    tx: &Tx<'_>,
    after: SignalCursor,
    event_names: &[String],
    limit: u32,
) -> Result<SignalBatch, StoreError> {
    let limit = i64::from(limit.max(1));
    let mut next = after;
    // (at, rank, id): at equal instants an event comes before the stage change it caused.
    let mut keyed: Vec<((i64, u8, i64), Signal)> = Vec::new();

    let changes = sql::fetch_all(
        tx,
        "SELECT id, contact_id, from_stage, to_stage, at, enrolls, enroll_not_before \
         FROM stage_history WHERE id > $1 ORDER BY id LIMIT $2",
        &[&after.stage_history, &limit],
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
    )
    .await?;
    if let Some(((_, _, last), _)) = changes.last() {
        next.stage_history = *last;
    }
    keyed.extend(changes);

    let top: Option<i64> = sql::fetch_one(tx, "SELECT MAX(id) AS top FROM events", &[], |row| {
        get(row, "top")
    })
    .await?;
    let top = top.unwrap_or(0);
    if top > after.events {
        if event_names.is_empty() {
            next.events = top;
        } else {
            let names: Vec<&str> = event_names.iter().map(String::as_str).collect();
            let events = sql::fetch_all(
                tx,
                "SELECT id, contact_id, name, occurred_at FROM events \
                 WHERE id > $1 AND id <= $2 AND kind = 'track' AND name = ANY($3) \
                 ORDER BY id LIMIT $4",
                &[&after.events, &top, &names, &limit],
                |row| {
                    let id: i64 = get(row, "id")?;
                    let at: i64 = get(row, "occurred_at")?;
                    let signal = Signal::Event {
                        id,
                        contact: ContactId(get(row, "contact_id")?),
                        name: get(row, "name")?,
                        at: timestamp(at, "event occurred_at")?,
                    };
                    Ok(((at, 0, id), signal))
                },
            )
            .await?;
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

pub(crate) async fn apply_signals(
    tx: &Tx<'_>,
    from: SignalCursor,
    to: SignalCursor,
    actions: &[EngineAction],
    at: Timestamp,
) -> Result<ApplyOutcome, StoreError> {
    // The cursor's row stays locked to the commit, so two appliers cannot both pass.
    sql::execute(
        tx,
        "SELECT 1 FROM engine_state WHERE key = $1 FOR UPDATE",
        &[&CURSOR_KEY],
    )
    .await?;
    let current = cursor(tx).await?;
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
                if enroll(tx, &plan, at_ms).await? {
                    outcome.enrolled += 1;
                }
            }
            EngineAction::Exit {
                contact,
                process_id,
                reason,
            } => {
                outcome.exited += exit(tx, *contact, *process_id, reason, "exited", at_ms).await?;
            }
            EngineAction::OpenWork(delta) => {
                if *delta < 0.0 {
                    outcome.work_closed += 1;
                }
                add_open_work(tx, *delta).await?;
                sql::execute(
                    tx,
                    "INSERT INTO work_log (at, delta) VALUES ($1, $2)",
                    &[&at_ms, delta],
                )
                .await?;
            }
            EngineAction::Responded { contact, since } => {
                let answered = sql::fetch_optional(
                    tx,
                    "UPDATE touches SET responded_at = $1 WHERE id = (\
                       SELECT id FROM touches WHERE contact_id = $2 AND intent = 'offer' \
                       AND admitted_at >= $3 AND responded_at IS NULL \
                       ORDER BY admitted_at DESC, id DESC LIMIT 1) \
                     RETURNING process_id, step, admitted_at",
                    &[&at_ms, &contact.0, &(millis(*since))],
                    |row| {
                        Ok((
                            get::<i64>(row, "process_id")?,
                            get::<i64>(row, "step")?,
                            get::<i64>(row, "admitted_at")?,
                        ))
                    },
                )
                .await?;
                if let Some((process_id, step, admitted_at)) = answered {
                    let delay_days = (at_ms - admitted_at).max(0) as f64 / 86_400_000.0;
                    sql::execute(
                        tx,
                        "UPDATE offer_stats SET responded = responded + 1, \
                         delays = delays + 1, delay_days_sum = delay_days_sum + $3 \
                         WHERE process_id = $1 AND step = $2",
                        &[&process_id, &step, &delay_days],
                    )
                    .await?;
                    outcome.responses += 1;
                }
            }
        }
    }
    let text = serde_json::to_string(&to).expect("a cursor serializes");
    set_value(tx, CURSOR_KEY, &text).await?;
    Ok(outcome)
}

/// Adds work items opened (positive) or closed (negative) in one atomic update, never
/// going below zero: no read-modify-write that a concurrent writer could undo.
pub(crate) async fn add_open_work(tx: &Tx<'_>, delta: f64) -> Result<(), StoreError> {
    sql::execute(
        tx,
        "INSERT INTO engine_state (key, value) VALUES ($1, GREATEST(0, $2::float8)::text) \
         ON CONFLICT (key) DO UPDATE \
         SET value = GREATEST(0, engine_state.value::float8 + $2::float8)::text",
        &[&OPEN_WORK_KEY, &delta],
    )
    .await?;
    Ok(())
}

/// Makes up to `limit` offers held back by capacity due now, those whose contacts have
/// waited longest since their last touch (or enrollment) first, as the pacer ranks them.
pub(crate) async fn wake_capacity_held(
    tx: &Tx<'_>,
    at: i64,
    limit: u32,
) -> Result<u64, StoreError> {
    sql::execute(
        tx,
        "UPDATE touches SET due_at = $1 WHERE id IN (\
           SELECT t.id FROM touches t JOIN enrollments e ON e.id = t.enrollment_id \
           JOIN contacts c ON c.id = t.contact_id \
           WHERE t.state = 'pending' AND t.reason = 'capacity' AND t.due_at > $1 \
           ORDER BY GREATEST(COALESCE(c.last_touch_at, e.enrolled_at), e.enrolled_at), t.id \
           LIMIT $2)",
        &[&at, &i64::from(limit)],
    )
    .await
}

/// One enrollment to create.
pub(crate) struct Enrollment {
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
pub(crate) async fn enroll(tx: &Tx<'_>, plan: &Enrollment, at: i64) -> Result<bool, StoreError> {
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
        tx,
        "INSERT INTO enrollments (contact_id, process_id, state, step, enrolled_at, \
           trigger_event_id, trigger_stage_change_id) \
         SELECT c.id, $1::bigint, 'active', $2::bigint, $3::bigint, $6::bigint, $7::bigint \
         FROM contacts c \
         WHERE c.id = $4 AND c.suppressed_at IS NULL AND NOT EXISTS (\
           SELECT 1 FROM enrollments e WHERE e.contact_id = c.id AND e.process_id = $1 \
           AND (e.state = 'active' OR NOT $5::boolean)) \
         RETURNING id",
        &[
            &process_id,
            &(i64::from(first.step)),
            &enrolled_at,
            &contact.0,
            &reenroll,
            &trigger_event,
            &trigger_stage_change,
        ],
        |row| get::<i64>(row, "id"),
    )
    .await?;
    let Some(enrollment_id) = enrolled else {
        return Ok(false);
    };
    insert_pending(
        tx,
        enrollment_id,
        contact.0,
        process_id,
        first,
        millis(due_at),
        at,
    )
    .await?;
    Ok(true)
}

pub(crate) async fn insert_pending(
    tx: &Tx<'_>,
    enrollment_id: i64,
    contact_id: i64,
    process_id: i64,
    step: StepSpec,
    due_at: i64,
    at: i64,
) -> Result<(), StoreError> {
    sql::execute(
        tx,
        "INSERT INTO touches (enrollment_id, contact_id, process_id, step, kind, channel, \
         intent, state, due_at, created_at) \
         VALUES ($1, $2, $3, $4, 'step', $5, $6, 'pending', $7, $8)",
        &[
            &enrollment_id,
            &contact_id,
            &process_id,
            &(i64::from(step.step)),
            &(step.channel.as_str()),
            &(step.intent.as_str()),
            &due_at,
            &at,
        ],
    )
    .await?;
    Ok(())
}

/// Ends a contact's active enrollments (in one process, or all) for `reason` and
/// cancels their planned touches, counted under `cause`.
pub(crate) async fn exit(
    tx: &Tx<'_>,
    contact: ContactId,
    process_id: Option<i64>,
    reason: &str,
    cause: &str,
    at: i64,
) -> Result<u64, StoreError> {
    let id = |row: &Row| get::<i64>(row, "id");
    let ids = match process_id {
        Some(process_id) => {
            sql::fetch_all(
                tx,
                "UPDATE enrollments SET state = 'exited', ended_at = $1, end_reason = $2 \
             WHERE contact_id = $3 AND process_id = $4 AND state = 'active' RETURNING id",
                &[&at, &reason, &contact.0, &process_id],
                id,
            )
            .await?
        }
        None => {
            sql::fetch_all(
                tx,
                "UPDATE enrollments SET state = 'exited', ended_at = $1, end_reason = $2 \
             WHERE contact_id = $3 AND state = 'active' RETURNING id",
                &[&at, &reason, &contact.0],
                id,
            )
            .await?
        }
    };
    cancel_planned(tx, &ids, "exited", cause).await?;
    Ok(ids.len() as u64)
}

/// What started an enrollment (see [`tend_store::Store::enrollment_trigger`]).
pub(crate) async fn enrollment_trigger(
    tx: &Tx<'_>,
    enrollment_id: i64,
) -> Result<Option<EnrollmentTrigger>, StoreError> {
    let row = sql::fetch_optional(
        tx,
        "SELECT e.trigger_event_id, h.from_stage, h.to_stage, h.at, h.message_id AS cause \
         FROM enrollments e LEFT JOIN stage_history h ON h.id = e.trigger_stage_change_id \
         WHERE e.id = $1",
        &[&enrollment_id],
        |row| {
            Ok((
                get::<Option<i64>>(row, "trigger_event_id")?,
                get::<Option<String>>(row, "from_stage")?,
                get::<Option<String>>(row, "to_stage")?,
                get::<Option<i64>>(row, "at")?,
                get::<Option<String>>(row, "cause")?,
            ))
        },
    )
    .await?;
    let Some((event_id, from, to, at, cause)) = row else {
        return Ok(None);
    };
    if let Some(id) = event_id {
        return Ok(trigger_event(tx, "id = $1", &id)
            .await?
            .map(EnrollmentTrigger::Event));
    }
    let (Some(to), Some(at)) = (to, at) else {
        return Ok(None);
    };
    let event = match cause {
        Some(message_id) => trigger_event(tx, "message_id = $1", &message_id).await?,
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
async fn trigger_event(
    tx: &Tx<'_>,
    condition: &str,
    key: sql::Param<'_>,
) -> Result<Option<TriggerEvent>, StoreError> {
    sql::fetch_optional(
        tx,
        &format!(
            "SELECT name, properties, occurred_at FROM events WHERE {condition} AND kind = 'track'"
        ),
        &[key],
        |row| {
            Ok(TriggerEvent {
                event: get::<Option<String>>(row, "name")?.unwrap_or_default(),
                properties: get(row, "properties")?,
                timestamp: timestamp(get(row, "occurred_at")?, "event occurred_at")?,
            })
        },
    )
    .await
}
