//! A contact's engine history, and moving it when contacts merge.

use super::*;

pub(crate) fn enrollments_of(
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

pub(crate) fn touches_of(
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
pub(crate) fn merge_contacts(
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
    cancel_planned(conn, &ids, "merged", "merged")?;
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
