//! The console's actions on contacts and its lists of planned touches and deliveries,
//! on SQLite.

use super::sql::{self, get, get_at, millis, timestamp};
use jiff::Timestamp;
use rusqlite::{Connection, Row, params};
use std::collections::BTreeMap;
use tend_core::pacer::TouchId;
use tend_core::{ContactId, StageName};
use tend_store::StoreError;
use tend_store::{ConsoleAction, DeliveryView, PlannedLoad, PlannedTouch, StepCounts};

/// Where a paused enrollment's pending touch waits: 9999-01-01, after anything the
/// engine will ever reach. A step that follows while it is paused waits there too.
pub(crate) const PARKED_AT: i64 = 253_370_764_800_000;

pub(super) fn record_action(conn: &Connection, action: &ConsoleAction) -> Result<(), StoreError> {
    sql::execute(
        conn,
        "INSERT INTO console_actions (contact_id, by_email, action, detail, at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            action.contact_id.0,
            action.by,
            action.action,
            action.detail,
            millis(action.at)
        ],
    )?;
    Ok(())
}

pub(super) fn actions(
    conn: &Connection,
    contact: ContactId,
) -> Result<Vec<ConsoleAction>, StoreError> {
    sql::fetch_all(
        conn,
        "SELECT contact_id, by_email, action, detail, at FROM console_actions \
         WHERE contact_id = ?1 ORDER BY at, id",
        params![contact.0],
        |row| {
            Ok(ConsoleAction {
                contact_id: ContactId(get(row, "contact_id")?),
                by: get(row, "by_email")?,
                action: get(row, "action")?,
                detail: get(row, "detail")?,
                at: timestamp(get(row, "at")?, "console action at")?,
            })
        },
    )
}

pub(super) fn set_stage(
    conn: &Connection,
    contact: ContactId,
    stage: &StageName,
    by: &str,
    at: Timestamp,
) -> Result<bool, StoreError> {
    let Some(current) = sql::fetch_optional(
        conn,
        "SELECT stage FROM contacts WHERE id = ?1",
        params![contact.0],
        |row| get::<String>(row, "stage"),
    )?
    else {
        return Ok(false);
    };
    if current == stage.as_str() {
        return Ok(false);
    }
    sql::execute(
        conn,
        "UPDATE contacts SET stage = ?2, updated_at = ?3 WHERE id = ?1",
        params![contact.0, stage.as_str(), millis(at)],
    )?;
    // A stage change like ingest's: the engine reads it and enrolls or exits the contact.
    sql::execute(
        conn,
        "INSERT INTO stage_history (contact_id, from_stage, to_stage, reason, at) \
         VALUES (?1, ?2, ?3, 'console', ?4)",
        params![contact.0, current, stage.as_str(), millis(at)],
    )?;
    record_action(
        conn,
        &ConsoleAction {
            contact_id: contact,
            by: by.to_owned(),
            action: "stage".into(),
            detail: format!("stage {current} → {stage}"),
            at,
        },
    )?;
    Ok(true)
}

pub(super) fn set_paused(
    conn: &Connection,
    contact: ContactId,
    enrollment: i64,
    paused: bool,
    by: &str,
    at: Timestamp,
) -> Result<bool, StoreError> {
    let Some((process, paused_now)) = sql::fetch_optional(
        conn,
        "SELECT p.key AS process, e.paused_at IS NOT NULL AS paused FROM enrollments e \
         JOIN processes p ON p.id = e.process_id \
         WHERE e.id = ?1 AND e.contact_id = ?2 AND e.state = 'active'",
        params![enrollment, contact.0],
        |row| Ok((get::<String>(row, "process")?, get::<bool>(row, "paused")?)),
    )?
    else {
        return Ok(false);
    };
    if paused_now == paused {
        return Ok(false);
    }
    if paused {
        // The pending touch's due time is kept for the resume; the touch waits parked.
        sql::execute(
            conn,
            "UPDATE enrollments SET paused_at = ?2, paused_due_at = (SELECT MIN(due_at) \
             FROM touches WHERE enrollment_id = ?1 AND state = 'pending') WHERE id = ?1",
            params![enrollment, millis(at)],
        )?;
        sql::execute(
            conn,
            "UPDATE touches SET due_at = ?2 WHERE enrollment_id = ?1 AND state = 'pending'",
            params![enrollment, PARKED_AT],
        )?;
    } else {
        // Back on its schedule: when it was due, or now if that has passed.
        sql::execute(
            conn,
            "UPDATE touches SET due_at = MAX(?2, COALESCE((SELECT paused_due_at \
             FROM enrollments WHERE id = ?1), ?2)) \
             WHERE enrollment_id = ?1 AND state = 'pending'",
            params![enrollment, millis(at)],
        )?;
        sql::execute(
            conn,
            "UPDATE enrollments SET paused_at = NULL, paused_due_at = NULL WHERE id = ?1",
            params![enrollment],
        )?;
    }
    let verb = if paused { "pause" } else { "resume" };
    record_action(
        conn,
        &ConsoleAction {
            contact_id: contact,
            by: by.to_owned(),
            action: verb.into(),
            detail: format!("{verb}d {process}"),
            at,
        },
    )?;
    Ok(true)
}

pub(super) fn paused(conn: &Connection, contact: ContactId) -> Result<Vec<i64>, StoreError> {
    sql::fetch_all(
        conn,
        "SELECT id FROM enrollments WHERE contact_id = ?1 AND paused_at IS NOT NULL \
         AND state = 'active'",
        params![contact.0],
        |row| get(row, "id"),
    )
}

const PLANNED_COLUMNS: &str = "t.id, t.contact_id, c.name, c.email, t.process_id, \
     p.key AS process, t.step, t.channel, t.intent, t.state, t.due_at, t.reason, t.until_at, \
     t.title";

pub(super) fn planned(
    conn: &Connection,
    from: Timestamp,
    to: Timestamp,
    limit: u32,
) -> Result<Vec<PlannedTouch>, StoreError> {
    // Two index ranges (pending by due time, tasks by state and due time), merged.
    let mut touches = sql::fetch_all(
        conn,
        &format!(
            "SELECT {PLANNED_COLUMNS} FROM touches t JOIN contacts c ON c.id = t.contact_id \
             JOIN processes p ON p.id = t.process_id \
             WHERE t.state = 'pending' AND t.due_at >= ?1 AND t.due_at < ?2 \
             ORDER BY t.due_at LIMIT ?3"
        ),
        params![millis(from), millis(to), limit],
        decode_planned,
    )?;
    touches.extend(sql::fetch_all(
        conn,
        &format!(
            "SELECT {PLANNED_COLUMNS} FROM touches t JOIN contacts c ON c.id = t.contact_id \
             JOIN processes p ON p.id = t.process_id \
             WHERE t.channel = 'task' AND t.state = 'open' AND t.due_at >= ?1 AND t.due_at < ?2 \
             ORDER BY t.due_at LIMIT ?3"
        ),
        params![millis(from), millis(to), limit],
        decode_planned,
    )?);
    touches.sort_by_key(|t| (t.due_at, t.id.0));
    touches.truncate(limit as usize);
    Ok(touches)
}

pub(super) fn planned_load(
    conn: &Connection,
    from: Timestamp,
    to: Timestamp,
    limit: u32,
) -> Result<Vec<PlannedLoad>, StoreError> {
    // `planned`'s two ranges, the pending one from the covering `touches_due` alone.
    let columns = "t.id, t.process_id, t.step, t.channel, t.state, t.due_at, t.until_at";
    let mut touches = sql::fetch_all(
        conn,
        &format!(
            "SELECT {columns} FROM touches t \
             WHERE t.state = 'pending' AND t.due_at >= ?1 AND t.due_at < ?2 \
             ORDER BY t.due_at LIMIT ?3"
        ),
        params![millis(from), millis(to), limit],
        decode_load,
    )?;
    touches.extend(sql::fetch_all(
        conn,
        &format!(
            "SELECT {columns} FROM touches t \
             WHERE t.channel = 'task' AND t.state = 'open' AND t.due_at >= ?1 AND t.due_at < ?2 \
             ORDER BY t.due_at LIMIT ?3"
        ),
        params![millis(from), millis(to), limit],
        decode_load,
    )?);
    touches.sort_by_key(|t| (t.due_at, t.id.0));
    touches.truncate(limit as usize);
    Ok(touches)
}

/// One row of `planned_load`'s columns, read by position: Today reads up to 20,000 of
/// them, and finding each column by its name took a good part of the page's time.
fn decode_load(row: &Row<'_>) -> Result<PlannedLoad, StoreError> {
    let id: i64 = get_at(row, 0, "id")?;
    // The touch is named only when its instant is not one: no text made per row.
    let instant = |ms: i64| {
        Timestamp::from_millisecond(ms).or_else(|_| timestamp(ms, &format!("touch {id}")))
    };
    Ok(PlannedLoad {
        id: TouchId(id),
        process_id: get_at(row, 1, "process_id")?,
        step: u32::try_from(get_at::<i64>(row, 2, "step")?).unwrap_or(0),
        channel: get_at(row, 3, "channel")?,
        state: get_at(row, 4, "state")?,
        due_at: instant(get_at(row, 5, "due_at")?)?,
        until: get_at::<Option<i64>>(row, 6, "until_at")?
            .map(instant)
            .transpose()?,
    })
}

pub(super) fn planned_tasks(
    conn: &Connection,
    from: Timestamp,
    to: Timestamp,
    limit: u32,
) -> Result<Vec<PlannedTouch>, StoreError> {
    // The range of `touches_due`, its channel read from the index.
    sql::fetch_all(
        conn,
        &format!(
            "SELECT {PLANNED_COLUMNS} FROM touches t JOIN contacts c ON c.id = t.contact_id \
             JOIN processes p ON p.id = t.process_id \
             WHERE t.state = 'pending' AND t.due_at >= ?1 AND t.due_at < ?2 \
             AND t.channel = 'task' ORDER BY t.due_at, t.id LIMIT ?3"
        ),
        params![millis(from), millis(to), limit],
        decode_planned,
    )
}

pub(super) fn held(
    conn: &Connection,
    reason: &str,
    limit: u32,
) -> Result<Vec<PlannedTouch>, StoreError> {
    sql::fetch_all(
        conn,
        &format!(
            "SELECT {PLANNED_COLUMNS} FROM touches t JOIN contacts c ON c.id = t.contact_id \
             JOIN processes p ON p.id = t.process_id \
             WHERE t.state = 'pending' AND t.reason = ?1 ORDER BY t.due_at LIMIT ?2"
        ),
        params![reason, limit],
        decode_planned,
    )
}

fn decode_planned(row: &Row<'_>) -> Result<PlannedTouch, StoreError> {
    let id: i64 = get(row, "id")?;
    let what = format!("touch {id}");
    Ok(PlannedTouch {
        id: TouchId(id),
        contact_id: ContactId(get(row, "contact_id")?),
        contact_name: get(row, "name")?,
        contact_email: get(row, "email")?,
        process_id: get(row, "process_id")?,
        process: get(row, "process")?,
        step: u32::try_from(get::<i64>(row, "step")?).unwrap_or(0),
        channel: get(row, "channel")?,
        intent: get(row, "intent")?,
        state: get(row, "state")?,
        due_at: timestamp(get(row, "due_at")?, &what)?,
        reason: get(row, "reason")?,
        until: get::<Option<i64>>(row, "until_at")?
            .map(|ms| timestamp(ms, &what))
            .transpose()?,
        title: get(row, "title")?,
    })
}

/// Whether the send `t` bounced, by the records that say so: a bounce report about it
/// (from the bounce mailbox or a provider's webhook, after it was sent), or, for a send
/// the mail server refused outright, the address's suppression as bounced.
const BOUNCED: &str = "(EXISTS (SELECT 1 FROM mail_feedback f WHERE f.touch_id = t.id \
     AND f.kind IN ('hard_bounce', 'soft_bounce')) \
     OR (t.state = 'failed' AND EXISTS (SELECT 1 FROM suppressions s \
     WHERE s.address_key = t.address_key AND s.reason = 'bounced')))";

pub(super) fn deliveries(
    conn: &Connection,
    status: Option<&str>,
    contact: Option<ContactId>,
    limit: u32,
) -> Result<Vec<DeliveryView>, StoreError> {
    let columns = format!(
        "t.id, t.contact_id, c.email, p.key AS process, t.step, t.channel, t.state, \
         t.attempts, t.last_error, COALESCE(t.sent_at, t.decided_at, t.due_at) AS at, \
         {BOUNCED} AS bounced \
         FROM touches t LEFT JOIN contacts c ON c.id = t.contact_id \
         JOIN processes p ON p.id = t.process_id"
    );
    let query = if contact.is_some() {
        // One contact's sends: its range of `touches_contact_admitted`.
        let status_sql = match status {
            Some("sent") => format!("t.state = 'sent' AND NOT {BOUNCED}"),
            Some("retrying") => "t.state = 'queued' AND t.attempts > 0".to_owned(),
            Some("failed") => format!("t.state = 'failed' AND NOT {BOUNCED}"),
            Some("bounced") => BOUNCED.to_owned(),
            _ => "(t.state IN ('sent', 'failed') OR (t.state = 'queued' AND t.attempts > 0))"
                .to_owned(),
        };
        format!(
            "SELECT {columns} WHERE t.channel IN ('email', 'webhook') AND {status_sql} \
             AND t.contact_id = ?2 ORDER BY t.id DESC LIMIT ?1"
        )
    } else {
        // Every contact's: each state the newest end of its range of `touches_sent`
        // (the terms of its WHERE repeated, so the planner may use it), a bounce by the
        // reports that name its touch; merged. As one condition, a filter that matched
        // little (retrying, failed, bounced) read every touch ever made.
        let sent = "t.channel IN ('email', 'webhook') AND t.state IN ('sent', 'failed', 'queued')";
        let parts = match status {
            Some("sent") => vec![format!("{sent} AND t.state = 'sent' AND NOT {BOUNCED}")],
            Some("retrying") => vec![format!("{sent} AND t.state = 'queued' AND t.attempts > 0")],
            Some("failed") => vec![format!("{sent} AND t.state = 'failed' AND NOT {BOUNCED}")],
            Some("bounced") => vec![
                "t.channel IN ('email', 'webhook') AND t.id IN (SELECT f.touch_id \
                 FROM mail_feedback f WHERE f.touch_id IS NOT NULL \
                 AND f.kind IN ('hard_bounce', 'soft_bounce'))"
                    .to_owned(),
                format!("{sent} AND t.state = 'failed' AND {BOUNCED}"),
            ],
            _ => vec![
                format!("{sent} AND t.state = 'sent'"),
                format!("{sent} AND t.state = 'failed'"),
                format!("{sent} AND t.state = 'queued' AND t.attempts > 0"),
            ],
        };
        let parts: Vec<String> = parts
            .iter()
            .map(|part| {
                format!(
                    "SELECT * FROM (SELECT {columns} WHERE {part} AND ?2 IS NULL \
                     ORDER BY t.id DESC LIMIT ?1) AS part"
                )
            })
            .collect();
        format!("{} ORDER BY id DESC LIMIT ?1", parts.join(" UNION "))
    };
    sql::fetch_all(conn, &query, params![limit, contact.map(|c| c.0)], |row| {
        let id: i64 = get(row, "id")?;
        let state: String = get(row, "state")?;
        let last_error: Option<String> = get(row, "last_error")?;
        let status = match state.as_str() {
            _ if get::<bool>(row, "bounced")? => "bounced",
            "sent" => "sent",
            "queued" => "retrying",
            _ => "failed",
        };
        Ok(DeliveryView {
            id: TouchId(id),
            contact_id: ContactId(get(row, "contact_id")?),
            contact_email: get(row, "email")?,
            process: get(row, "process")?,
            step: u32::try_from(get::<i64>(row, "step")?).unwrap_or(0),
            channel: get(row, "channel")?,
            status: status.into(),
            attempts: u32::try_from(get::<i64>(row, "attempts")?).unwrap_or(0),
            last_error,
            at: timestamp(get(row, "at")?, &format!("touch {id}"))?,
        })
    })
}

pub(super) fn process_step_counts(
    conn: &Connection,
    process_key: &str,
    conversion_stage: &StageName,
) -> Result<Vec<StepCounts>, StoreError> {
    let Some(process_id) = sql::fetch_optional(
        conn,
        "SELECT id FROM processes WHERE key = ?1",
        params![process_key],
        |row| get::<i64>(row, "id"),
    )?
    else {
        return Ok(Vec::new());
    };
    let mut steps: BTreeMap<u32, StepCounts> = BTreeMap::new();
    let step_of = |row: &Row<'_>| -> Result<u32, StoreError> {
        Ok(u32::try_from(get::<i64>(row, "step")?).unwrap_or(0))
    };
    // One process's entries of the covering index `touches_process_step`.
    let counted = sql::fetch_all(
        conn,
        "SELECT step, kind, state, reason, COUNT(*) AS n FROM touches \
         WHERE process_id = ?1 GROUP BY step, kind, state, reason",
        params![process_id],
        |row| {
            Ok((
                step_of(row)?,
                get::<String>(row, "kind")?,
                get::<String>(row, "state")?,
                get::<Option<String>>(row, "reason")?,
                u64::try_from(get::<i64>(row, "n")?).unwrap_or(0),
            ))
        },
    )?;
    for (step, kind, state, reason, n) in counted {
        steps
            .entry(step)
            .or_default()
            .add_touches(&kind, &state, reason, n);
    }
    let offers = sql::fetch_all(
        conn,
        "SELECT step, sent, responded FROM offer_stats WHERE process_id = ?1",
        params![process_id],
        |row| {
            Ok((
                step_of(row)?,
                u64::try_from(get::<i64>(row, "sent")?).unwrap_or(0),
                u64::try_from(get::<i64>(row, "responded")?).unwrap_or(0),
            ))
        },
    )?;
    for (step, sent, responded) in offers {
        let counts = steps.entry(step).or_default();
        counts.offers = sent;
        counts.responded = responded;
    }
    // Each contact's first entry into the conversion stage (`stage_history_to_stage`),
    // credited to the last touch admitted before it (one step back from the end of the
    // contact's range of `touches_contact_admitted`), when that touch was one of this
    // process's steps. The last touches are materialized and the touches read by id
    // (CROSS JOIN fixes the order): as a join condition, SQLite ran the correlated
    // subquery once per touch of the process, minutes at 100,000 contacts.
    let conversions = sql::fetch_all(
        conn,
        "WITH firsts AS (SELECT contact_id, MIN(at) AS at FROM stage_history \
               WHERE to_stage = ?2 GROUP BY contact_id), \
         last AS MATERIALIZED (SELECT (SELECT l.id FROM touches l \
               WHERE l.contact_id = f.contact_id AND l.admitted_at IS NOT NULL \
               AND l.admitted_at <= f.at ORDER BY l.admitted_at DESC, l.id DESC LIMIT 1) \
               AS id FROM firsts f) \
         SELECT t.step, COUNT(*) AS n FROM last CROSS JOIN touches t ON t.id = last.id \
         WHERE t.process_id = ?1 AND t.kind = 'step' GROUP BY t.step",
        params![process_id, conversion_stage.as_str()],
        |row| {
            Ok((
                step_of(row)?,
                u64::try_from(get::<i64>(row, "n")?).unwrap_or(0),
            ))
        },
    )?;
    for (step, n) in conversions {
        steps.entry(step).or_default().conversions = n;
    }
    Ok(steps
        .into_iter()
        .map(|(step, counts)| StepCounts { step, ..counts })
        .collect())
}

#[async_trait::async_trait]
impl tend_store::ConsoleStore for super::SqliteStore {
    async fn upsert_user(
        &self,
        email: &str,
        role: tend_store::Role,
        password_hash: &str,
        at: Timestamp,
    ) -> Result<(tend_store::User, bool), StoreError> {
        self.pool
            .write(|tx| super::users::upsert(tx, email, role, password_hash, at))
            .await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<tend_store::User>, StoreError> {
        self.pool.read(|tx| super::users::find(tx, email)).await
    }

    async fn list_users(&self) -> Result<Vec<tend_store::User>, StoreError> {
        self.pool.read(|tx| super::users::list(tx)).await
    }

    async fn create_session(
        &self,
        user_id: i64,
        token_hash: &str,
        csrf: &str,
        at: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        self.pool
            .write(|tx| super::users::create_session(tx, user_id, token_hash, csrf, at, expires_at))
            .await
    }

    async fn session(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<tend_store::Session>, StoreError> {
        self.pool
            .read(|tx| super::users::session(tx, token_hash, now))
            .await
    }

    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        self.pool
            .write(|tx| super::users::delete_session(tx, token_hash))
            .await
    }

    async fn claim_login_attempt(
        &self,
        attempt: &str,
        keys: &[(&str, u32)],
        since: Timestamp,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.pool
            .write(|tx| {
                super::users::claim_login_attempt(tx, attempt, keys, millis(since), millis(at))
            })
            .await
    }

    async fn forget_login_attempt(&self, attempt: &str) -> Result<(), StoreError> {
        self.pool
            .write(|tx| super::users::forget_login_attempt(tx, attempt))
            .await
    }

    async fn record_console_action(&self, action: &ConsoleAction) -> Result<(), StoreError> {
        self.pool.write(|tx| record_action(tx, action)).await
    }

    async fn console_actions(&self, contact: ContactId) -> Result<Vec<ConsoleAction>, StoreError> {
        self.pool.read(|tx| actions(tx, contact)).await
    }

    async fn set_contact_stage(
        &self,
        contact: ContactId,
        stage: &StageName,
        by: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.pool
            .write(|tx| set_stage(tx, contact, stage, by, at))
            .await
    }

    async fn set_enrollment_paused(
        &self,
        contact: ContactId,
        enrollment: i64,
        paused: bool,
        by: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.pool
            .write(|tx| set_paused(tx, contact, enrollment, paused, by, at))
            .await
    }

    async fn paused_enrollments(&self, contact: ContactId) -> Result<Vec<i64>, StoreError> {
        self.pool.read(|tx| paused(tx, contact)).await
    }

    async fn planned_touches(
        &self,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> Result<Vec<PlannedTouch>, StoreError> {
        self.pool.read(|tx| planned(tx, from, to, limit)).await
    }

    async fn planned_load(
        &self,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> Result<Vec<PlannedLoad>, StoreError> {
        self.pool.read(|tx| planned_load(tx, from, to, limit)).await
    }

    async fn planned_tasks(
        &self,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> Result<Vec<PlannedTouch>, StoreError> {
        self.pool
            .read(|tx| planned_tasks(tx, from, to, limit))
            .await
    }

    async fn held_touches(
        &self,
        reason: &str,
        limit: u32,
    ) -> Result<Vec<PlannedTouch>, StoreError> {
        self.pool.read(|tx| held(tx, reason, limit)).await
    }

    async fn deliveries(
        &self,
        status: Option<&str>,
        contact: Option<ContactId>,
        limit: u32,
    ) -> Result<Vec<DeliveryView>, StoreError> {
        self.pool
            .read(|tx| deliveries(tx, status, contact, limit))
            .await
    }

    async fn process_step_counts(
        &self,
        process_key: &str,
        conversion_stage: &StageName,
    ) -> Result<Vec<StepCounts>, StoreError> {
        self.pool
            .read(|tx| process_step_counts(tx, process_key, conversion_stage))
            .await
    }
}
