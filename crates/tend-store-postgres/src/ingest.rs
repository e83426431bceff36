//! `Store::ingest` on PostgreSQL.
//!
//! A batch costs a fixed handful of look-ups whatever its size: one of already stored
//! message ids, one per kind of identity (user ids, anonymous ids, emails). Contacts are
//! resolved in memory in between, so a batch of 100 track events for known users reads
//! the database four times, not a hundred; then each row is written by a prepared one-row
//! statement. The contacts read are locked (`FOR UPDATE`) until the commit, and the batch
//! holds the signal writers' advisory lock, so two batches never interleave their
//! read-modify-write of one contact.

use crate::sql::{
    self, ContactRow, HistoryRow, Tx, contact_columns, db, json_object, json_text, millis,
};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use tend_core::{ContactId, Email, StageName};
use tend_store::suppression::AddressKeys;
use tend_store::{
    ContactTraits, Identity, IngestMessage, IngestOutcome, StageChange, StageEnrollment, StoreError,
};

/// Applies a batch inside the caller's transaction; the caller commits.
pub(crate) async fn run(
    tx: &Tx<'_>,
    keys: &AddressKeys,
    batch: &[IngestMessage],
    new_contact_stage: &StageName,
    received_at: i64,
) -> Result<IngestOutcome, StoreError> {
    let mut seen = HashSet::with_capacity(batch.len());
    let unique: Vec<&IngestMessage> = batch
        .iter()
        .filter(|m| seen.insert(m.message_id()))
        .collect();
    let ids: Vec<&str> = unique.iter().map(|m| m.message_id()).collect();
    // Held to the commit: events and stage changes become visible in id order.
    sql::lock_signal_writers(tx).await?;
    let stored: HashSet<String> = sql::fetch_all(
        tx,
        "SELECT message_id FROM events WHERE message_id = ANY($1)",
        &[&ids],
        |row| sql::get(row, "message_id"),
    )
    .await?
    .into_iter()
    .collect();
    let fresh: Vec<&IngestMessage> = unique
        .into_iter()
        .filter(|m| !stored.contains(m.message_id()))
        .collect();

    let mut state = Batch::new(new_contact_stage.as_str(), fresh.len());
    state.load(tx, keys, &fresh).await?;
    for message in &fresh {
        state.apply(tx, message).await?;
    }
    let stage_changes = state.write(tx, received_at).await?;
    Ok(IngestOutcome {
        accepted: fresh.len(),
        duplicates: batch.len() - fresh.len(),
        stage_changes,
    })
}

/// A contact as this batch sees it.
struct Working {
    row: ContactRow,
    /// Parsed attributes, present once a message needed them; written back into `row`.
    attrs: Option<Map<String, Value>>,
    dirty: bool,
}

impl Working {
    fn attrs(&mut self) -> Result<&mut Map<String, Value>, StoreError> {
        if self.attrs.is_none() {
            let what = format!("contact {} attributes", self.row.id);
            self.attrs = Some(json_object(&self.row.attributes, &what)?);
        }
        Ok(self.attrs.as_mut().expect("just parsed"))
    }

    fn touch(&mut self, at: i64) {
        self.dirty = true;
        self.row.updated_at = self.row.updated_at.max(at);
    }
}

struct EventRow<'a> {
    message_id: &'a str,
    contact_id: i64,
    kind: &'static str,
    name: Option<&'a str>,
    properties: String,
    occurred_at: i64,
}

/// Everything a batch reads once and writes once.
struct Batch<'a> {
    new_stage: &'a str,
    contacts: HashMap<i64, Working>,
    by_user: HashMap<String, i64>,
    by_anon: HashMap<String, i64>,
    by_email: HashMap<String, i64>,
    /// Addresses of this batch found in `suppressions`.
    suppressed: HashSet<String>,
    events: Vec<EventRow<'a>>,
    aliases: Vec<(String, i64, i64)>,
    history: Vec<HistoryRow>,
    changes: Vec<StageChange>,
}

impl<'a> Batch<'a> {
    fn new(new_stage: &'a str, messages: usize) -> Self {
        Batch {
            new_stage,
            contacts: HashMap::new(),
            by_user: HashMap::new(),
            by_anon: HashMap::new(),
            by_email: HashMap::new(),
            suppressed: HashSet::new(),
            events: Vec::with_capacity(messages),
            aliases: Vec::new(),
            history: Vec::new(),
            changes: Vec::new(),
        }
    }

    /// Loads every contact, alias and suppression the batch can refer to, so that a miss
    /// in memory afterwards means "not in the database" too.
    async fn load(
        &mut self,
        tx: &Tx<'_>,
        keys: &AddressKeys,
        messages: &[&'a IngestMessage],
    ) -> Result<(), StoreError> {
        let mut user_ids = HashSet::new();
        let mut anon_ids = HashSet::new();
        let mut emails: HashSet<&Email> = HashSet::new();
        for message in messages {
            let identity = match message {
                IngestMessage::Identify {
                    identity, traits, ..
                } => {
                    emails.extend(traits.email.as_ref());
                    identity
                }
                IngestMessage::Track { identity, .. } => identity,
                IngestMessage::Alias {
                    previous_id,
                    user_id,
                    ..
                } => {
                    // An earlier id may be either kind.
                    user_ids.extend([previous_id.as_str(), user_id.as_str()]);
                    anon_ids.insert(previous_id.as_str());
                    continue;
                }
            };
            user_ids.extend(identity.user_id.as_deref());
            anon_ids.extend(identity.anonymous_id.as_deref());
        }
        // Row locks on every contact the batch may write back, so a suppression or an
        // erasure committed meanwhile is not overwritten by this batch's copy.
        const BY: &str = concat!("SELECT ", contact_columns!(), " FROM contacts WHERE");

        if !user_ids.is_empty() {
            let keys: Vec<&str> = user_ids.into_iter().collect();
            for row in sql::fetch_all(
                tx,
                &format!("{BY} user_id = ANY($1) ORDER BY id FOR UPDATE"),
                &[&keys],
                ContactRow::decode,
            )
            .await?
            {
                self.add(row);
            }
        }
        if !anon_ids.is_empty() {
            let keys: Vec<&str> = anon_ids.into_iter().collect();
            let rows = sql::fetch_all(
                tx,
                "SELECT anonymous_id, contact_id FROM contact_aliases \
                 WHERE anonymous_id = ANY($1)",
                &[&keys],
                |row| {
                    Ok((
                        sql::get::<String>(row, "anonymous_id")?,
                        sql::get::<i64>(row, "contact_id")?,
                    ))
                },
            )
            .await?;
            let mut missing = Vec::new();
            for (anonymous_id, contact_id) in rows {
                self.by_anon.insert(anonymous_id, contact_id);
                if !self.contacts.contains_key(&contact_id) {
                    missing.push(contact_id);
                }
            }
            if !missing.is_empty() {
                for row in sql::fetch_all(
                    tx,
                    &format!("{BY} id = ANY($1) ORDER BY id FOR UPDATE"),
                    &[&missing],
                    ContactRow::decode,
                )
                .await?
                {
                    self.add(row);
                }
            }
        }
        if !emails.is_empty() {
            let addresses: Vec<&str> = emails.iter().map(|e| e.as_str()).collect();
            for row in sql::fetch_all(
                tx,
                &format!("{BY} email = ANY($1) ORDER BY id FOR UPDATE"),
                &[&addresses],
                ContactRow::decode,
            )
            .await?
            {
                self.add(row);
            }
            self.suppressed =
                crate::suppress::suppressed_among(tx, keys, addresses.iter().copied()).await?;
        }
        Ok(())
    }

    fn add(&mut self, row: ContactRow) {
        if self.contacts.contains_key(&row.id) {
            return;
        }
        if let Some(user_id) = &row.user_id {
            self.by_user.insert(user_id.clone(), row.id);
        }
        if let Some(email) = &row.email {
            self.by_email.insert(email.clone(), row.id);
        }
        self.contacts.insert(
            row.id,
            Working {
                row,
                attrs: None,
                dirty: false,
            },
        );
    }

    fn contact(&mut self, id: i64) -> &mut Working {
        self.contacts
            .get_mut(&id)
            .expect("resolved contacts are loaded")
    }

    async fn apply(&mut self, tx: &Tx<'_>, message: &'a IngestMessage) -> Result<(), StoreError> {
        match message {
            IngestMessage::Track {
                message_id,
                identity,
                event,
                properties,
                at,
                stage_change,
            } => {
                let at = millis(*at);
                let (id, _) = self.resolve(tx, identity, None, at).await?;
                self.events.push(EventRow {
                    message_id,
                    contact_id: id,
                    kind: "track",
                    name: Some(event),
                    properties: json_text(properties),
                    occurred_at: at,
                });
                if let Some(to) = stage_change {
                    self.move_stage(id, to.as_str(), event, Some(message_id), at);
                }
            }
            IngestMessage::Identify {
                message_id,
                identity,
                traits,
                at,
            } => {
                let at = millis(*at);
                let email = traits.email.as_ref().map(Email::as_str);
                let (id, email_is_theirs) = self.resolve(tx, identity, email, at).await?;
                self.apply_traits(id, traits, email_is_theirs, at)?;
                self.events.push(EventRow {
                    message_id,
                    contact_id: id,
                    kind: "identify",
                    name: None,
                    properties: identify_properties(traits),
                    occurred_at: at,
                });
            }
            IngestMessage::Alias {
                message_id,
                previous_id,
                user_id,
                at,
            } => {
                let at = millis(*at);
                let id = self.alias(tx, previous_id, user_id, at).await?;
                let mut properties = Map::new();
                properties.insert("previousId".into(), previous_id.as_str().into());
                self.events.push(EventRow {
                    message_id,
                    contact_id: id,
                    kind: "identify",
                    name: None,
                    properties: json_text(&properties),
                    occurred_at: at,
                });
            }
        }
        Ok(())
    }

    /// Links `previous` to `user_id`: the records known by each merge into one that
    /// answers to `user_id` (unless they hold different addresses: two people then, kept
    /// apart), and `previous` stays an alias of it for anonymous messages.
    async fn alias(
        &mut self,
        tx: &Tx<'_>,
        previous: &str,
        user_id: &str,
        at: i64,
    ) -> Result<i64, StoreError> {
        let prior = self
            .by_user
            .get(previous)
            .or_else(|| self.by_anon.get(previous))
            .copied();
        let current = self.by_user.get(user_id).copied();
        let id = match (prior, current) {
            (Some(p), Some(c)) if p != c => {
                let (a, b) = (&self.contacts[&p].row, &self.contacts[&c].row);
                if a.email.is_some() && b.email.is_some() && a.email != b.email {
                    tracing::warn!(
                        contact = c,
                        other = p,
                        "alias: both records have different addresses; keeping them apart"
                    );
                    return Ok(c);
                }
                self.merge(tx, p, c, at).await?
            }
            (Some(p), None) => {
                let owner = self.contacts[&p].row.user_id.as_deref();
                if owner.is_some() && owner != Some(previous) {
                    tracing::warn!(
                        contact = p,
                        "alias: previousId belongs to a contact with another userId; \
                         keeping them apart"
                    );
                    self.create(tx, Some(user_id), None, at).await?
                } else {
                    p
                }
            }
            (None, Some(c)) | (Some(c), Some(_)) => c,
            (None, None) => self.create(tx, Some(user_id), None, at).await?,
        };
        let contact = self.contact(id);
        if contact.row.user_id.as_deref() != Some(user_id) {
            let old = contact.row.user_id.replace(user_id.to_owned());
            contact.touch(at);
            if let Some(old) = old {
                self.by_user.remove(&old);
            }
            self.by_user.insert(user_id.to_owned(), id);
        }
        if !self.by_anon.contains_key(previous) {
            self.by_anon.insert(previous.to_owned(), id);
            self.aliases.push((previous.to_owned(), id, at));
        }
        Ok(id)
    }

    /// Finds or creates the message's contact and links its identifiers to it. Returns
    /// the contact and whether the message's email may be set on it (it may not when the
    /// address already belongs to a different known person).
    async fn resolve(
        &mut self,
        tx: &Tx<'_>,
        identity: &Identity,
        email: Option<&str>,
        at: i64,
    ) -> Result<(i64, bool), StoreError> {
        let user_id = identity.user_id.as_deref();
        let by_user = user_id.and_then(|u| self.by_user.get(u).copied());
        // A device once used by a known user does not make a different user that person.
        let by_anon = match by_user {
            Some(_) => None,
            None => identity
                .anonymous_id
                .as_deref()
                .and_then(|a| self.by_anon.get(a).copied())
                .filter(|id| {
                    let owner = self.contacts[id].row.user_id.as_deref();
                    user_id.is_none() || owner.is_none() || owner == user_id
                }),
        };
        let known = by_user.or(by_anon);
        let by_email = email.and_then(|e| self.by_email.get(e).copied());

        let (id, email_is_theirs) = match (known, by_email) {
            (None, None) => (self.create(tx, user_id, email, at).await?, true),
            (Some(id), None) => (id, true),
            (Some(a), Some(b)) if a == b => (a, true),
            (None, Some(holder)) => {
                let holder_user = self.contacts[&holder].row.user_id.as_deref();
                match (user_id, holder_user) {
                    (Some(mine), Some(theirs)) if mine != theirs => {
                        tracing::warn!(
                            contact = holder,
                            "identify: email already belongs to a contact with another userId; \
                             keeping them apart"
                        );
                        (self.create(tx, user_id, None, at).await?, false)
                    }
                    _ => (holder, true),
                }
            }
            (Some(a), Some(b)) => {
                let (ca, cb) = (&self.contacts[&a].row, &self.contacts[&b].row);
                // Two records of one person: the one we knew by id has no email yet and
                // the email's owner has no conflicting user id.
                if ca.email.is_none() && (ca.user_id.is_none() || cb.user_id.is_none()) {
                    (self.merge(tx, a, b, at).await?, true)
                } else {
                    tracing::warn!(
                        contact = a,
                        other = b,
                        "identify: email already belongs to another contact; not moving it"
                    );
                    (a, false)
                }
            }
        };
        self.link(id, identity, at);
        Ok((id, email_is_theirs))
    }

    fn link(&mut self, id: i64, identity: &Identity, at: i64) {
        if let Some(user_id) = &identity.user_id
            && !self.by_user.contains_key(user_id)
        {
            let contact = self.contact(id);
            if contact.row.user_id.is_none() {
                contact.row.user_id = Some(user_id.clone());
                contact.touch(at);
                self.by_user.insert(user_id.clone(), id);
            }
        }
        if let Some(anon) = &identity.anonymous_id
            && !self.by_anon.contains_key(anon)
        {
            self.by_anon.insert(anon.clone(), id);
            self.aliases.push((anon.clone(), id, at));
        }
    }

    /// Inserts a contact right away: its id is needed by the rows that follow.
    async fn create(
        &mut self,
        tx: &Tx<'_>,
        user_id: Option<&str>,
        email: Option<&str>,
        at: i64,
    ) -> Result<i64, StoreError> {
        // An erased person who comes back stays suppressed.
        let suppressed_at = email.filter(|e| self.suppressed.contains(*e)).map(|_| at);
        let id: i64 = sql::fetch_one(
            tx,
            "INSERT INTO contacts (email, user_id, stage, attributes, created_at, updated_at, \
             suppressed_at) VALUES ($1, $2, $3, '{}', $4, $4, $5) RETURNING id",
            &[&email, &user_id, &self.new_stage, &at, &suppressed_at],
            |row| sql::get(row, "id"),
        )
        .await?;
        self.add(ContactRow {
            id,
            email: email.map(str::to_owned),
            user_id: user_id.map(str::to_owned),
            name: None,
            timezone: None,
            stage: self.new_stage.to_owned(),
            attributes: "{}".to_owned(),
            created_at: at,
            updated_at: at,
            suppressed_at,
            last_touch_at: None,
        });
        self.history.push(HistoryRow {
            contact_id: id,
            from: None,
            to: self.new_stage.to_owned(),
            reason: "created".to_owned(),
            message_id: None,
            at,
            enrollment: StageEnrollment::Now,
        });
        self.changes.push(StageChange {
            contact_id: ContactId(id),
            from: None,
            to: StageName::new(self.new_stage),
        });
        Ok(id)
    }

    /// Folds two records of one person into the older one. The stage reached by the
    /// most recent change wins, whichever record it was on; a stage merely given at
    /// creation is no decision, so it never overrides the older record's.
    async fn merge(&mut self, tx: &Tx<'_>, a: i64, b: i64, at: i64) -> Result<i64, StoreError> {
        let (keep, gone) = (a.min(b), a.max(b));
        let mut last_change: HashMap<i64, i64> = HashMap::new();
        let rows = sql::fetch_all(
            tx,
            "SELECT contact_id, MAX(at) AS last_at FROM stage_history \
             WHERE contact_id IN ($1, $2) AND from_stage IS NOT NULL GROUP BY contact_id",
            &[&keep, &gone],
            |row| {
                Ok((
                    sql::get::<i64>(row, "contact_id")?,
                    sql::get::<Option<i64>>(row, "last_at")?,
                ))
            },
        )
        .await?;
        for (contact_id, last) in rows {
            last_change.insert(contact_id, last.unwrap_or(i64::MIN));
        }
        for h in self
            .history
            .iter()
            .filter(|h| h.from.is_some() && (h.contact_id == keep || h.contact_id == gone))
        {
            let entry = last_change.entry(h.contact_id).or_insert(i64::MIN);
            *entry = (*entry).max(h.at);
        }

        crate::engine::merge_contacts(tx, keep, gone, at).await?;
        for statement in [
            "UPDATE events SET contact_id = $1 WHERE contact_id = $2",
            "UPDATE contact_aliases SET contact_id = $1 WHERE contact_id = $2",
            "UPDATE stage_history SET contact_id = $1 WHERE contact_id = $2",
        ] {
            sql::execute(tx, statement, &[&keep, &gone]).await?;
        }
        // Also frees the unique email and user id for the record that keeps them.
        sql::execute(tx, "DELETE FROM contacts WHERE id = $1", &[&gone]).await?;

        let mut old = self
            .contacts
            .remove(&gone)
            .expect("merged contacts are loaded");
        let old_attrs = std::mem::take(old.attrs()?);
        let old = old.row;
        let contact = self.contact(keep);
        let mut attrs = old_attrs;
        attrs.extend(std::mem::take(contact.attrs()?));
        contact.attrs = Some(attrs);
        let row = &mut contact.row;
        row.email = row.email.take().or(old.email);
        row.user_id = row.user_id.take().or(old.user_id);
        row.name = row.name.take().or(old.name);
        row.timezone = row.timezone.take().or(old.timezone);
        row.created_at = row.created_at.min(old.created_at);
        row.suppressed_at = match (row.suppressed_at, old.suppressed_at) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        };
        row.last_touch_at = row.last_touch_at.max(old.last_touch_at);
        contact.touch(at);

        for map in [&mut self.by_user, &mut self.by_anon, &mut self.by_email] {
            map.values_mut()
                .filter(|id| **id == gone)
                .for_each(|id| *id = keep);
        }
        self.events
            .iter_mut()
            .filter(|e| e.contact_id == gone)
            .for_each(|e| e.contact_id = keep);
        self.aliases
            .iter_mut()
            .filter(|a| a.1 == gone)
            .for_each(|a| a.1 = keep);
        self.history
            .iter_mut()
            .filter(|h| h.contact_id == gone)
            .for_each(|h| h.contact_id = keep);
        // The engine must not enroll a record that no longer exists; the kept record's
        // own move, if any, is reported below.
        self.changes.retain(|c| c.contact_id.0 != gone);

        let latest = |id| last_change.get(&id).copied().unwrap_or(i64::MIN);
        if latest(gone) > latest(keep) {
            // Never dated before the change it carries over, so the timeline reads in order.
            let when = at.max(latest(gone));
            self.move_stage(keep, &old.stage, "merge", None, when);
        }
        tracing::info!(
            contact = keep,
            merged = gone,
            "identify: merged two contacts"
        );
        Ok(keep)
    }

    fn apply_traits(
        &mut self,
        id: i64,
        traits: &ContactTraits,
        email_is_theirs: bool,
        at: i64,
    ) -> Result<(), StoreError> {
        let mut changed = false;
        if email_is_theirs && let Some(email) = &traits.email {
            changed |= self.set_email(id, email.as_str(), at);
        }
        let contact = self.contact(id);
        if let Some(name) = &traits.name
            && contact.row.name.as_ref() != Some(name)
        {
            contact.row.name = Some(name.clone());
            changed = true;
        }
        if let Some(zone) = &traits.timezone
            && contact.row.timezone.as_deref() != Some(zone.as_str())
        {
            contact.row.timezone = Some(zone.as_str().to_owned());
            changed = true;
        }
        if !traits.attributes.is_empty() {
            let attrs = contact.attrs()?;
            for (key, value) in &traits.attributes {
                if attrs.get(key) != Some(value) {
                    attrs.insert(key.clone(), value.clone());
                    changed = true;
                }
            }
        }
        if changed {
            contact.touch(at);
        }
        Ok(())
    }

    fn set_email(&mut self, id: i64, email: &str, at: i64) -> bool {
        let suppressed = self.suppressed.contains(email);
        let contact = self
            .contacts
            .get_mut(&id)
            .expect("resolved contacts are loaded");
        if contact.row.email.as_deref() == Some(email) {
            return false;
        }
        if let Some(old) = contact.row.email.replace(email.to_owned()) {
            self.by_email.remove(&old);
        }
        if suppressed && contact.row.suppressed_at.is_none() {
            contact.row.suppressed_at = Some(at);
        }
        self.by_email.insert(email.to_owned(), id);
        true
    }

    fn move_stage(&mut self, id: i64, to: &str, reason: &str, cause: Option<&str>, at: i64) {
        let contact = self.contact(id);
        if contact.row.stage == to {
            return;
        }
        let from = std::mem::replace(&mut contact.row.stage, to.to_owned());
        contact.touch(at);
        self.changes.push(StageChange {
            contact_id: ContactId(id),
            from: Some(StageName::new(from.clone())),
            to: StageName::new(to),
        });
        self.history.push(HistoryRow {
            contact_id: id,
            from: Some(from),
            to: to.to_owned(),
            reason: reason.to_owned(),
            message_id: cause.map(str::to_owned),
            at,
            enrollment: StageEnrollment::Now,
        });
    }

    /// Writes contacts, aliases, events and history, in that order for the foreign keys.
    async fn write(
        mut self,
        tx: &Tx<'_>,
        received_at: i64,
    ) -> Result<Vec<StageChange>, StoreError> {
        let mut dirty: Vec<&ContactRow> = Vec::new();
        for contact in self.contacts.values_mut().filter(|c| c.dirty) {
            if let Some(attrs) = &contact.attrs {
                contact.row.attributes = json_text(attrs);
            }
        }
        dirty.extend(self.contacts.values().filter(|c| c.dirty).map(|c| &c.row));
        dirty.sort_by_key(|row| row.id);
        if !dirty.is_empty() {
            sql::update_contacts(tx, &dirty).await?;
        }
        if !self.aliases.is_empty() {
            insert_aliases(tx, &self.aliases).await?;
        }
        insert_events(tx, self.events, received_at).await?;
        if !self.history.is_empty() {
            sql::insert_history(tx, &self.history).await?;
        }
        Ok(self.changes)
    }
}

/// An identify's traits as stored with the event, so the record shows what was sent.
fn identify_properties(traits: &ContactTraits) -> String {
    let mut map = traits.attributes.clone();
    if let Some(email) = &traits.email {
        map.insert("email".into(), email.as_str().into());
    }
    if let Some(name) = &traits.name {
        map.insert("name".into(), name.as_str().into());
    }
    if let Some(zone) = &traits.timezone {
        map.insert("timezone".into(), zone.as_str().into());
    }
    json_text(&map)
}

async fn insert_aliases(tx: &Tx<'_>, aliases: &[(String, i64, i64)]) -> Result<(), StoreError> {
    let insert = tx
        .prepare_cached(
            "INSERT INTO contact_aliases (anonymous_id, contact_id, created_at) \
             VALUES ($1, $2, $3) ON CONFLICT (anonymous_id) DO NOTHING",
        )
        .await
        .map_err(db)?;
    for (anon, id, at) in aliases {
        tx.execute(&insert, &[anon, id, at]).await.map_err(db)?;
    }
    Ok(())
}

/// Inserts the batch's events, one prepared statement per row on one round trip each.
async fn insert_events(
    tx: &Tx<'_>,
    events: Vec<EventRow<'_>>,
    received_at: i64,
) -> Result<(), StoreError> {
    let insert = tx
        .prepare_cached(
            "INSERT INTO events (message_id, contact_id, kind, name, properties, occurred_at, \
             received_at) VALUES ($1, $2, $3, $4, $5::text::jsonb, $6, $7) \
             ON CONFLICT (message_id) DO NOTHING",
        )
        .await
        .map_err(db)?;
    for e in &events {
        tx.execute(
            &insert,
            &[
                &e.message_id,
                &e.contact_id,
                &e.kind,
                &e.name,
                &e.properties,
                &e.occurred_at,
                &received_at,
            ],
        )
        .await
        .map_err(db)?;
    }
    Ok(())
}
