//! Reports about sent mail on SQLite (see [`tend_store::feedback`]): one row per report,
//! and the suppression a report causes, in one transaction.

use super::sql::{self, get};
use super::suppress;
use crate::sql::db;
use rusqlite::{Connection, params};
use tend_core::ContactId;
use tend_store::StoreError;
use tend_store::feedback::{
    FeedbackAbout, FeedbackCounts, FeedbackKind, FeedbackOutcome, MailFeedback, TouchRecipient,
};
use tend_store::suppression::AddressKeys;

/// How far back soft bounces count towards suppressing an address: an address that
/// was full in spring and fine since is not suppressed for it in autumn.
const SOFT_BOUNCE_WINDOW_MS: i64 = 30 * 86_400_000;

/// Where a touch went.
pub(super) fn touch_recipient(
    conn: &Connection,
    touch: i64,
) -> Result<Option<TouchRecipient>, StoreError> {
    sql::fetch_optional(
        conn,
        "SELECT contact_id, address_key FROM touches WHERE id = ?1",
        params![touch],
        |row| {
            Ok(TouchRecipient {
                contact: ContactId(get(row, "contact_id")?),
                address_key: get(row, "address_key")?,
            })
        },
    )
}

/// Records one report and suppresses its address when it says so.
pub(super) fn record(
    conn: &Connection,
    keys: &AddressKeys,
    feedback: &MailFeedback<'_>,
    at: i64,
) -> Result<FeedbackOutcome, StoreError> {
    let mut seen = conn
        .prepare_cached("SELECT 1 FROM mail_feedback WHERE source = ?1")
        .map_err(db)?;
    if seen.exists(params![feedback.source]).map_err(db)? {
        return Ok(FeedbackOutcome::Duplicate);
    }
    let (touch, address_key) = match feedback.about {
        FeedbackAbout::Touch(id) => match touch_recipient(conn, id)? {
            Some(TouchRecipient {
                address_key: Some(key),
                ..
            }) => (Some(id), key),
            _ => return Ok(FeedbackOutcome::UnknownTouch),
        },
        FeedbackAbout::AddressKey(key) => (None, key.to_owned()),
    };
    sql::execute(
        conn,
        "INSERT INTO mail_feedback (source, kind, touch_id, address_key, detail, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            feedback.source,
            feedback.kind.as_str(),
            touch,
            address_key,
            feedback.detail,
            at
        ],
    )?;
    let suppress_now = match feedback.kind {
        FeedbackKind::SoftBounce => {
            let touches: i64 = sql::fetch_one(
                conn,
                "SELECT COUNT(DISTINCT COALESCE(touch_id, -id)) AS n FROM mail_feedback \
                 WHERE address_key = ?1 AND kind = 'soft_bounce' AND created_at > ?2",
                params![address_key, at - SOFT_BOUNCE_WINDOW_MS],
                |row| get(row, "n"),
            )?;
            touches >= i64::from(feedback.soft_bounce_limit.max(1))
        }
        _ => true,
    };
    if !suppress_now {
        return Ok(FeedbackOutcome::Recorded { suppressed: false });
    }
    let suppressed = suppress_address(
        conn,
        keys,
        &address_key,
        feedback.kind.suppression_reason(),
        at,
    )?;
    Ok(FeedbackOutcome::Recorded { suppressed })
}

/// Records an address as suppressed for `reason` and suppresses the contacts that
/// still hold it (by their current address, so a record that moved on is left alone).
/// Returns whether anything changed.
fn suppress_address(
    conn: &Connection,
    keys: &AddressKeys,
    address_key: &str,
    reason: &str,
    at: i64,
) -> Result<bool, StoreError> {
    let mut changed = suppress::record(conn, address_key, reason, at)?;
    let holders: Vec<(i64, Option<String>)> = sql::fetch_all(
        conn,
        "SELECT id, email FROM contacts WHERE suppressed_at IS NULL AND id IN (\
           SELECT contact_id FROM touches WHERE address_key = ?1)",
        params![address_key],
        |row| Ok((get(row, "id")?, get(row, "email")?)),
    )?;
    for (id, email) in holders {
        if email.is_some_and(|email| keys.key(&email) == address_key) {
            changed |= suppress::suppress(conn, keys, ContactId(id), reason, at)?;
        }
    }
    Ok(changed)
}

/// Reports recorded so far, by kind.
pub(super) fn counts(conn: &Connection) -> Result<FeedbackCounts, StoreError> {
    let rows: Vec<(String, i64)> = sql::fetch_all(
        conn,
        "SELECT kind, COUNT(*) AS n FROM mail_feedback GROUP BY kind",
        [],
        |row| Ok((get(row, "kind")?, get(row, "n")?)),
    )?;
    let mut counts = FeedbackCounts::default();
    for (kind, n) in rows {
        let n = u64::try_from(n).unwrap_or(0);
        match kind.as_str() {
            "hard_bounce" => counts.hard_bounces = n,
            "soft_bounce" => counts.soft_bounces = n,
            "complaint" => counts.complaints = n,
            "unsubscribe" => counts.unsubscribes = n,
            _ => {}
        }
    }
    Ok(counts)
}

/// The engine value remembering the last inbound message read: `<UIDVALIDITY>:<UID>`.
const INBOUND_CURSOR_KEY: &str = "inbound_cursor";

/// The last inbound message read.
pub(super) fn inbound_cursor(conn: &Connection) -> Result<Option<(u32, u32)>, StoreError> {
    let Some(text) = crate::engine::value(conn, INBOUND_CURSOR_KEY)? else {
        return Ok(None);
    };
    let parsed = text
        .split_once(':')
        .and_then(|(v, u)| Some((v.parse().ok()?, u.parse().ok()?)));
    parsed.map(Some).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "the stored inbound cursor `{text}` is not VALIDITY:UID"
        ))
    })
}

/// Records the last inbound message read.
pub(super) fn set_inbound_cursor(
    conn: &Connection,
    uid_validity: u32,
    uid: u32,
) -> Result<(), StoreError> {
    crate::engine::set_value(conn, INBOUND_CURSOR_KEY, &format!("{uid_validity}:{uid}"))
}

/// Claims a webhook token until `expires_at` (ms): true if no unexpired claim of it
/// exists. Runs in the pool's write transaction, so two claims never interleave.
pub(super) fn claim_webhook_token(
    conn: &Connection,
    token_hash: &str,
    expires_at: i64,
    now: i64,
) -> Result<bool, StoreError> {
    // Pruning here keeps the table at the tokens of the last few minutes, and frees an
    // expired token's row for the insert below.
    sql::execute(
        conn,
        "DELETE FROM webhook_tokens WHERE expires_at <= ?1",
        params![now],
    )?;
    let inserted = sql::execute(
        conn,
        "INSERT INTO webhook_tokens (token_hash, expires_at) VALUES (?1, ?2) \
         ON CONFLICT (token_hash) DO NOTHING",
        params![token_hash, expires_at],
    )?;
    Ok(inserted == 1)
}

/// Withdraws a webhook token's claim.
pub(super) fn release_webhook_token(conn: &Connection, token_hash: &str) -> Result<(), StoreError> {
    sql::execute(
        conn,
        "DELETE FROM webhook_tokens WHERE token_hash = ?1",
        params![token_hash],
    )?;
    Ok(())
}
