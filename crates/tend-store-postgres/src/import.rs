//! `Store::import_contacts` on PostgreSQL: a chunk of CSV rows upserted by email, read with a
//! fixed number of look-ups, written by cached one-row statements, and not written at
//! all where a row changes nothing.

use crate::sql::{self, ContactRow, HistoryRow, Tx, contact_columns, db, json_object, json_text};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use tend_core::{ContactId, Email, StageName};
use tend_store::suppression::AddressKeys;
use tend_store::{
    ImportEnrollment, ImportOutcome, ImportRow, RowEffect, StageChange, StageEnrollment, StoreError,
};

/// One person of the chunk, as the rows so far left them.
struct Imported<'a> {
    email: &'a Email,
    row: ContactRow,
    /// Parsed attributes, present once a row had attributes to merge.
    attrs: Option<Map<String, Value>>,
    /// Not yet in the database: inserted at the end with its final state.
    is_new: bool,
    dirty: bool,
    /// Stage moves of an existing contact, in row order.
    moves: Vec<(String, String)>,
    /// How the stage changes of this person enroll: from the row that first named them.
    enrollment: StageEnrollment,
}

/// Applies a chunk inside the caller's transaction; the caller commits.
pub(crate) async fn run(
    tx: &Tx<'_>,
    keys: &AddressKeys,
    rows: &[ImportRow],
    default_stage: &StageName,
    at: i64,
    enrollment: ImportEnrollment,
) -> Result<ImportOutcome, StoreError> {
    // Held to the commit: stage changes become visible in id order.
    sql::lock_signal_writers(tx).await?;
    let mut outcome = ImportOutcome::default();
    let mut people: Vec<Imported> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(rows.len());

    let emails: Vec<&str> = {
        let mut seen = HashSet::with_capacity(rows.len());
        rows.iter()
            .map(|r| r.email.as_str())
            .filter(|e| seen.insert(*e))
            .collect()
    };
    let mut existing: HashMap<String, ContactRow> = HashMap::new();
    if !emails.is_empty() {
        // Row locks: a row that changes nothing leaves the contact untouched, and one that
        // does never overwrites a suppression committed meanwhile.
        let select = concat!(
            "SELECT ",
            contact_columns!(),
            " FROM contacts WHERE email = ANY($1) ORDER BY id FOR UPDATE"
        );
        for row in sql::fetch_all(tx, select, &[&emails], ContactRow::decode).await? {
            if let Some(email) = row.email.clone() {
                existing.insert(email, row);
            }
        }
    }
    let suppressed = suppressed_among(tx, keys, rows, &existing).await?;

    for (row_index, row) in rows.iter().enumerate() {
        let email = row.email.as_str();
        let Some(&i) = index.get(email) else {
            index.insert(email, people.len());
            let person = match existing.remove(email) {
                Some(stored) => {
                    let mut person = Imported {
                        email: &row.email,
                        row: stored,
                        attrs: None,
                        is_new: false,
                        dirty: false,
                        moves: Vec::new(),
                        enrollment: enrollment.for_row(row_index),
                    };
                    outcome.count(merge_row(&mut person, row, at)?);
                    person
                }
                None => {
                    outcome.inserted += 1;
                    outcome.effects.push(RowEffect::Inserted);
                    let mut person = new_person(row, default_stage, at, suppressed.contains(email));
                    person.enrollment = enrollment.for_row(row_index);
                    person
                }
            };
            people.push(person);
            continue;
        };
        outcome.count(merge_row(&mut people[i], row, at)?);
    }

    for person in people.iter_mut().filter(|p| p.dirty || p.is_new) {
        if let Some(attrs) = &person.attrs {
            person.row.attributes = json_text(attrs);
        }
    }
    let ids = insert_new(tx, &people).await?;

    let mut history = Vec::new();
    for person in &mut people {
        if person.is_new {
            person.row.id = *ids.get(person.email.as_str()).ok_or_else(|| {
                StoreError::Corrupt("an inserted contact came back without its id".into())
            })?;
            record(
                &mut history,
                &mut outcome.stage_changes,
                person.row.id,
                None,
                &person.row.stage,
                at,
                person.enrollment,
            );
        } else {
            for (from, to) in std::mem::take(&mut person.moves) {
                record(
                    &mut history,
                    &mut outcome.stage_changes,
                    person.row.id,
                    Some(from),
                    &to,
                    at,
                    person.enrollment,
                );
            }
        }
    }
    let changed: Vec<&ContactRow> = people
        .iter()
        .filter(|p| p.dirty && !p.is_new)
        .map(|p| &p.row)
        .collect();
    if !changed.is_empty() {
        sql::update_contacts(tx, &changed).await?;
    }
    if !history.is_empty() {
        sql::insert_history(tx, &history).await?;
    }
    Ok(outcome)
}

fn new_person<'a>(
    row: &'a ImportRow,
    default_stage: &StageName,
    at: i64,
    suppressed: bool,
) -> Imported<'a> {
    Imported {
        email: &row.email,
        row: ContactRow {
            id: 0,
            email: Some(row.email.as_str().to_owned()),
            user_id: None,
            name: row.name.clone(),
            timezone: row.timezone.as_ref().map(|z| z.as_str().to_owned()),
            stage: row
                .stage
                .as_ref()
                .unwrap_or(default_stage)
                .as_str()
                .to_owned(),
            attributes: String::new(),
            created_at: at,
            updated_at: at,
            // An erased person who comes back stays suppressed.
            suppressed_at: suppressed.then_some(at),
            last_touch_at: None,
        },
        attrs: Some(row.attributes.clone()),
        is_new: true,
        dirty: false,
        moves: Vec::new(),
        enrollment: StageEnrollment::Now,
    }
}

/// Applies a row to a person already seen; returns whether anything changed.
fn merge_row(person: &mut Imported, row: &ImportRow, at: i64) -> Result<bool, StoreError> {
    let mut changed = false;
    if let Some(name) = &row.name
        && person.row.name.as_ref() != Some(name)
    {
        person.row.name = Some(name.clone());
        changed = true;
    }
    if let Some(zone) = &row.timezone
        && person.row.timezone.as_deref() != Some(zone.as_str())
    {
        person.row.timezone = Some(zone.as_str().to_owned());
        changed = true;
    }
    if !row.attributes.is_empty() {
        if person.attrs.is_none() {
            let what = format!("contact {} attributes", person.row.id);
            person.attrs = Some(json_object(&person.row.attributes, &what)?);
        }
        let attrs = person.attrs.as_mut().expect("just parsed");
        for (key, value) in &row.attributes {
            if attrs.get(key) != Some(value) {
                attrs.insert(key.clone(), value.clone());
                changed = true;
            }
        }
    }
    if let Some(stage) = &row.stage
        && person.row.stage != stage.as_str()
    {
        let from = std::mem::replace(&mut person.row.stage, stage.as_str().to_owned());
        if !person.is_new {
            person.moves.push((from, stage.as_str().to_owned()));
        }
        changed = true;
    }
    if changed && !person.is_new {
        person.dirty = true;
        person.row.updated_at = person.row.updated_at.max(at);
    }
    Ok(changed)
}

/// Emails of the chunk that are not contacts yet but are on the suppression list.
async fn suppressed_among(
    tx: &Tx<'_>,
    keys: &AddressKeys,
    rows: &[ImportRow],
    existing: &HashMap<String, ContactRow>,
) -> Result<HashSet<String>, StoreError> {
    let new = rows
        .iter()
        .map(|r| r.email.as_str())
        .filter(|email| !existing.contains_key(*email));
    crate::suppress::suppressed_among(tx, keys, new).await
}

/// Inserts the new people; returns their ids by email.
async fn insert_new(
    tx: &Tx<'_>,
    people: &[Imported<'_>],
) -> Result<HashMap<String, i64>, StoreError> {
    let insert = tx
        .prepare_cached(
            "INSERT INTO contacts (email, name, timezone, stage, attributes, created_at, \
             updated_at, suppressed_at) VALUES ($1, $2, $3, $4, $5::text::jsonb, $6, $7, $8) \
             RETURNING id",
        )
        .await
        .map_err(db)?;
    let mut ids = HashMap::new();
    for c in people.iter().filter(|p| p.is_new).map(|p| &p.row) {
        let row = tx
            .query_one(
                &insert,
                &[
                    &c.email,
                    &c.name,
                    &c.timezone,
                    &c.stage,
                    &c.attributes,
                    &c.created_at,
                    &c.updated_at,
                    &c.suppressed_at,
                ],
            )
            .await
            .map_err(db)?;
        if let Some(email) = &c.email {
            ids.insert(email.clone(), sql::get(&row, "id")?);
        }
    }
    Ok(ids)
}

fn record(
    history: &mut Vec<HistoryRow>,
    changes: &mut Vec<StageChange>,
    id: i64,
    from: Option<String>,
    to: &str,
    at: i64,
    enrollment: StageEnrollment,
) {
    changes.push(StageChange {
        contact_id: ContactId(id),
        from: from.clone().map(StageName::new),
        to: StageName::new(to),
    });
    history.push(HistoryRow {
        contact_id: id,
        from,
        to: to.to_owned(),
        reason: "import".to_owned(),
        message_id: None,
        at,
        enrollment,
    });
}
