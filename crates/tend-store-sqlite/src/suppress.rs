//! Suppression on SQLite: the keyed address records (see [`tend_store::suppression`]), the
//! bare-hash records earlier releases left, and the contact records they silence.

use super::engine::{count_cancelled, exit};
use super::sql::{self, fetch_in, get};
use crate::sql::db;
use rusqlite::{Connection, params};
use std::collections::{HashMap, HashSet};
use tend_core::ContactId;
use tend_store::StoreError;
use tend_store::suppression::{AddressKeys, SECRET_KEY, legacy_hash, parse_secret};

/// The install's secret, as the schema made it; an error naming the fix if it is
/// missing or unreadable, since a new one would break every unsubscribe link mailed.
pub(super) fn load_keys(conn: &Connection) -> Result<AddressKeys, StoreError> {
    let text: Option<String> = sql::fetch_optional(
        conn,
        "SELECT value FROM engine_state WHERE key = ?1",
        params![SECRET_KEY],
        |row| get(row, "value"),
    )?;
    let Some(text) = text else {
        return Err(StoreError::Secret(format!(
            "`{SECRET_KEY}` is missing from the engine_state table; restore the database \
             from a backup (a new secret would break every unsubscribe link already mailed)"
        )));
    };
    let secret = parse_secret(&text).ok_or_else(|| {
        StoreError::Secret(format!(
            "`{SECRET_KEY}` in the engine_state table is not at least 16 bytes of hex; \
             restore it from a backup (a new secret would break every unsubscribe link \
             already mailed)"
        ))
    })?;
    Ok(AddressKeys::new(&secret))
}

/// Migration 5's second half: records what earlier releases knew under keys. Every
/// suppressed contact's address is recorded; a bare hash matching one of them is
/// re-keyed with its reason and dropped.
pub(super) fn rekey_legacy(conn: &Connection) -> Result<(), StoreError> {
    let keys = load_keys(conn)?;
    let suppressed: Vec<(String, i64)> = sql::fetch_all(
        conn,
        "SELECT email, suppressed_at FROM contacts \
         WHERE suppressed_at IS NOT NULL AND email IS NOT NULL",
        [],
        |row| Ok((get(row, "email")?, get(row, "suppressed_at")?)),
    )?;
    for (email, at) in suppressed {
        let legacy = legacy_hash(&email);
        let reason: Option<String> = sql::fetch_optional(
            conn,
            "DELETE FROM legacy_suppressions WHERE email_hash = ?1 RETURNING reason",
            params![legacy],
            |row| get(row, "reason"),
        )?;
        record(
            conn,
            &keys.key(&email),
            reason.as_deref().unwrap_or("suppressed"),
            at,
        )?;
    }
    Ok(())
}

/// Records an address key as suppressed; returns `true` if it was not already.
pub(super) fn record(
    conn: &Connection,
    address_key: &str,
    reason: &str,
    at: i64,
) -> Result<bool, StoreError> {
    Ok(sql::execute(
        conn,
        "INSERT INTO suppressions (address_key, reason, created_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (address_key) DO NOTHING",
        params![address_key, reason, at],
    )? > 0)
}

/// Whether an address is suppressed, by its key or an earlier release's bare hash.
pub(super) fn address_suppressed(
    conn: &Connection,
    keys: &AddressKeys,
    address: &str,
) -> Result<bool, StoreError> {
    AddressCheck::new(conn, keys)?.suppressed(address)
}

/// Checks addresses one after another inside one transaction. The bare hashes of
/// earlier releases are hashed and looked up only while any remain: nothing adds them
/// any more, and most databases never had one, so the engine's check of every contact
/// it paces and every email it claims is one keyed lookup.
pub(super) struct AddressCheck<'c> {
    conn: &'c Connection,
    keys: &'c AddressKeys,
    legacy: bool,
}

impl<'c> AddressCheck<'c> {
    /// A check for the transaction `conn` is in.
    pub(super) fn new(conn: &'c Connection, keys: &'c AddressKeys) -> Result<Self, StoreError> {
        let legacy = conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM legacy_suppressions)")
            .and_then(|mut any| any.query_row([], |row| row.get(0)))
            .map_err(db)?;
        Ok(AddressCheck { conn, keys, legacy })
    }

    /// Whether `address` is suppressed, by its key or an earlier release's bare hash.
    pub(super) fn suppressed(&self, address: &str) -> Result<bool, StoreError> {
        let mut keyed = self
            .conn
            .prepare_cached("SELECT 1 FROM suppressions WHERE address_key = ?1")
            .map_err(db)?;
        if keyed.exists(params![self.keys.key(address)]).map_err(db)? {
            return Ok(true);
        }
        if !self.legacy {
            return Ok(false);
        }
        let mut legacy = self
            .conn
            .prepare_cached("SELECT 1 FROM legacy_suppressions WHERE email_hash = ?1")
            .map_err(db)?;
        legacy.exists(params![legacy_hash(address)]).map_err(db)
    }
}

/// The addresses among `addresses` that are suppressed, as given.
pub(super) fn suppressed_among<'a>(
    conn: &Connection,
    keys: &AddressKeys,
    addresses: impl IntoIterator<Item = &'a str>,
) -> Result<HashSet<String>, StoreError> {
    let mut by_key: HashMap<String, &str> = HashMap::new();
    for address in addresses {
        by_key.insert(keys.key(address), address);
        by_key.insert(legacy_hash(address), address);
    }
    let mut suppressed = HashSet::new();
    if by_key.is_empty() {
        return Ok(suppressed);
    }
    let lookup: Vec<&str> = by_key.keys().map(String::as_str).collect();
    for head in [
        "SELECT address_key AS k FROM suppressions WHERE address_key IN",
        "SELECT email_hash AS k FROM legacy_suppressions WHERE email_hash IN",
    ] {
        for found in fetch_in(conn, head, "", &lookup, |row| get::<String>(row, "k"))? {
            if let Some(address) = by_key.get(&found) {
                suppressed.insert((*address).to_owned());
            }
        }
    }
    Ok(suppressed)
}

/// Suppresses a contact: its address is recorded, its enrollments end and everything
/// planned for it is cancelled. Returns `false` if there is no such contact.
pub(super) fn suppress(
    conn: &Connection,
    keys: &AddressKeys,
    id: ContactId,
    reason: &str,
    at: i64,
) -> Result<bool, StoreError> {
    let found: Option<Option<String>> = sql::fetch_optional(
        conn,
        "UPDATE contacts SET suppressed_at = COALESCE(suppressed_at, ?1) WHERE id = ?2 \
         RETURNING email",
        params![at, id.0],
        |row| get(row, "email"),
    )?;
    let Some(email) = found else {
        return Ok(false);
    };
    if let Some(email) = email {
        record(conn, &keys.key(&email), reason, at)?;
    }
    // Counted by why the contact is suppressed, not as an ordinary exit.
    exit(conn, id, None, reason, reason, at)?;
    // Touches of enrollments that already ended (keep-warm, retries) go too, and so do
    // open tasks: nobody calls a person who asked to hear nothing more.
    let cancelled = sql::execute(
        conn,
        "UPDATE touches SET state = 'cancelled', reason = 'suppressed' \
         WHERE contact_id = ?1 AND state IN ('pending', 'queued', 'open')",
        params![id.0],
    )?;
    count_cancelled(conn, reason, cancelled)?;
    Ok(true)
}

/// Records an address as unsubscribed and suppresses the records it was mailed to that
/// still hold it (a merge moved the touches to the record that stayed). Returns whether
/// anything changed.
pub(super) fn unsubscribe_address(
    conn: &Connection,
    keys: &AddressKeys,
    address_key: &str,
    at: i64,
) -> Result<bool, StoreError> {
    let mut changed = record(conn, address_key, "unsubscribed", at)?;
    let mailed: Vec<(i64, Option<String>)> = sql::fetch_all(
        conn,
        "SELECT id, email FROM contacts WHERE suppressed_at IS NULL AND id IN (\
           SELECT contact_id FROM touches WHERE address_key = ?1)",
        params![address_key],
        |row| Ok((get(row, "id")?, get(row, "email")?)),
    )?;
    for (id, email) in mailed {
        // A record that moved to another address since is not the one that said no.
        if email.is_some_and(|email| keys.key(&email) == address_key) {
            changed |= suppress(conn, keys, ContactId(id), "unsubscribed", at)?;
        }
    }
    Ok(changed)
}
