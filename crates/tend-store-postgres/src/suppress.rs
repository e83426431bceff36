//! Suppression on PostgreSQL: the keyed address records (see
//! [`tend_store::suppression`]), the bare-hash records older SQLite files carried over,
//! and the contact records they silence.

use crate::engine::{count_cancelled, exit};
use crate::sql::{self, Tx, get};
use std::collections::{HashMap, HashSet};
use tend_core::ContactId;
use tend_store::StoreError;
use tend_store::suppression::{AddressKeys, SECRET_KEY, legacy_hash, parse_secret};

/// The install's secret, as the schema made it; an error naming the fix if it is
/// missing or unreadable, since a new one would break every unsubscribe link mailed.
pub(crate) async fn load_keys(tx: &Tx<'_>) -> Result<AddressKeys, StoreError> {
    let text: Option<String> = sql::fetch_optional(
        tx,
        "SELECT value FROM engine_state WHERE key = $1",
        &[&SECRET_KEY],
        |row| get(row, "value"),
    )
    .await?;
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

/// Records an address key as suppressed; returns `true` if it was not already.
pub(crate) async fn record(
    tx: &Tx<'_>,
    address_key: &str,
    reason: &str,
    at: i64,
) -> Result<bool, StoreError> {
    Ok(sql::execute(
        tx,
        "INSERT INTO suppressions (address_key, reason, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (address_key) DO NOTHING",
        &[&address_key, &reason, &at],
    )
    .await?
        > 0)
}

/// Whether an address is suppressed, by its key or an earlier release's bare hash.
pub(crate) async fn address_suppressed(
    tx: &Tx<'_>,
    keys: &AddressKeys,
    address: &str,
) -> Result<bool, StoreError> {
    sql::fetch_one(
        tx,
        "SELECT EXISTS (SELECT 1 FROM suppressions WHERE address_key = $1) \
         OR EXISTS (SELECT 1 FROM legacy_suppressions WHERE email_hash = $2) AS suppressed",
        &[&keys.key(address), &legacy_hash(address)],
        |row| get(row, "suppressed"),
    )
    .await
}

/// The addresses among `addresses` that are suppressed, as given.
pub(crate) async fn suppressed_among<'a>(
    tx: &Tx<'_>,
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
    let found: Vec<String> = sql::fetch_all(
        tx,
        "SELECT address_key AS k FROM suppressions WHERE address_key = ANY($1) \
         UNION ALL SELECT email_hash AS k FROM legacy_suppressions WHERE email_hash = ANY($1)",
        &[&lookup],
        |row| get(row, "k"),
    )
    .await?;
    for key in found {
        if let Some(address) = by_key.get(&key) {
            suppressed.insert((*address).to_owned());
        }
    }
    Ok(suppressed)
}

/// Suppresses a contact: its address is recorded, its enrollments end and everything
/// planned for it is cancelled. Returns `false` if there is no such contact.
pub(crate) async fn suppress(
    tx: &Tx<'_>,
    keys: &AddressKeys,
    id: ContactId,
    reason: &str,
    at: i64,
) -> Result<bool, StoreError> {
    let found: Option<Option<String>> = sql::fetch_optional(
        tx,
        "UPDATE contacts SET suppressed_at = COALESCE(suppressed_at, $1) WHERE id = $2 \
         RETURNING email",
        &[&at, &id.0],
        |row| get(row, "email"),
    )
    .await?;
    let Some(email) = found else {
        return Ok(false);
    };
    if let Some(email) = email {
        record(tx, &keys.key(&email), reason, at).await?;
    }
    // Counted by why the contact is suppressed, not as an ordinary exit.
    exit(tx, id, None, reason, reason, at).await?;
    // Touches of enrollments that already ended (keep-warm, retries) go too, and so do
    // open tasks: nobody calls a person who asked to hear nothing more.
    let cancelled = sql::execute(
        tx,
        "UPDATE touches SET state = 'cancelled', reason = 'suppressed' \
         WHERE contact_id = $1 AND state IN ('pending', 'queued', 'open')",
        &[&id.0],
    )
    .await?;
    count_cancelled(tx, reason, cancelled).await?;
    Ok(true)
}

/// Records an address as suppressed for `reason` and suppresses the records it was
/// mailed to that still hold it (a merge moved the touches to the record that stayed;
/// a record that moved to another address since is not the one that said no). Returns
/// whether anything changed.
pub(crate) async fn suppress_address(
    tx: &Tx<'_>,
    keys: &AddressKeys,
    address_key: &str,
    reason: &str,
    at: i64,
) -> Result<bool, StoreError> {
    let mut changed = record(tx, address_key, reason, at).await?;
    let holders: Vec<(i64, Option<String>)> = sql::fetch_all(
        tx,
        "SELECT id, email FROM contacts WHERE suppressed_at IS NULL AND id IN (\
           SELECT contact_id FROM touches WHERE address_key = $1)",
        &[&address_key],
        |row| Ok((get(row, "id")?, get(row, "email")?)),
    )
    .await?;
    for (id, email) in holders {
        if email.is_some_and(|email| keys.key(&email) == address_key) {
            changed |= suppress(tx, keys, ContactId(id), reason, at).await?;
        }
    }
    Ok(changed)
}
