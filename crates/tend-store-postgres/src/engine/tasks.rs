//! Tasks for people: the agenda and finishing a task.

use super::*;

pub(super) const TASK_SELECT: &str = "SELECT t.id AS id, t.contact_id, c.name AS contact_name, \
     c.email AS contact_email, p.key AS process, t.step, t.title, t.minutes, t.due_at AS due_at, \
     t.state, t.completed_at, t.outcome, t.note \
     FROM touches t JOIN contacts c ON c.id = t.contact_id \
     JOIN processes p ON p.id = t.process_id";

pub(super) fn task_view(row: &Row) -> Result<TaskView, StoreError> {
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

pub(crate) async fn tasks(
    tx: &Tx<'_>,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<TaskView>, StoreError> {
    // Only finishing a task (done or skipped) sets `completed_at`, so the second half
    // needs no state test, and the planner can use the range of `touches_completed`.
    let sql = format!(
        "{TASK_SELECT} WHERE t.channel = 'task' AND t.state = 'open' AND t.due_at < $1 \
         UNION ALL {TASK_SELECT} WHERE t.channel = 'task' \
         AND t.completed_at >= $2 AND t.completed_at < $1 \
         ORDER BY due_at, id"
    );
    sql::fetch_all(tx, &sql, &[&(millis(to)), &(millis(from))], task_view).await
}

pub(crate) async fn task(tx: &Tx<'_>, id: TouchId) -> Result<Option<TaskView>, StoreError> {
    let sql =
        format!("{TASK_SELECT} WHERE t.id = $1 AND t.channel = 'task' AND t.title IS NOT NULL");
    sql::fetch_optional(tx, &sql, &[&id.0], task_view).await
}

pub(crate) async fn finish_task(
    tx: &Tx<'_>,
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
        tx,
        "UPDATE touches SET state = $1, completed_at = $2, outcome = $3, note = $4, \
         decision = CASE WHEN $1 = 'skipped' THEN 'skip' ELSE decision END \
         WHERE id = $5 AND channel = 'task' AND state = 'open' \
         RETURNING enrollment_id, contact_id",
        &[&state, &at, &outcome, &note, &id.0],
        |row| {
            Ok((
                get::<i64>(row, "enrollment_id")?,
                get::<i64>(row, "contact_id")?,
            ))
        },
    )
    .await?;
    let Some((enrollment, contact)) = finished else {
        return Ok(false);
    };
    advance(tx, enrollment, next, at).await?;
    // In the same transaction: a crash never completes the task without its outcome.
    if let Some(event) = event {
        track_for_contact(
            tx,
            ContactId(contact),
            event.name,
            &event.message_id,
            &event.properties,
            event.stage,
            at,
        )
        .await?;
    }
    Ok(true)
}
