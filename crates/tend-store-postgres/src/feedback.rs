//! Reports about sent mail on PostgreSQL (see [`tend_store::feedback`]): one row per
//! report, and the suppression a report causes, in one transaction.

use crate::sql::{self, Tx, get};
use crate::suppress;
use tend_core::ContactId;
use tend_store::StoreError;
use tend_store::feedback::{
    FeedbackAbout, FeedbackCounts, FeedbackKind, FeedbackOutcome, MailFeedback, TouchRecipient,
};
use tend_store::suppression::AddressKeys;

/// How far back soft bounces count towards suppressing an address.
const SOFT_BOUNCE_WINDOW_MS: i64 = 30 * 86_400_000;

/// The engine value remembering the last inbound message read: `<UIDVALIDITY>:<UID>`.
const INBOUND_CURSOR_KEY: &str = "inbound_cursor";

/// Where a touch went.
pub(crate) async fn touch_recipient(
    tx: &Tx<'_>,
    touch: i64,
) -> Result<Option<TouchRecipient>, StoreError> {
    sql::fetch_optional(
        tx,
        "SELECT contact_id, address_key FROM touches WHERE id = $1",
        &[&touch],
        |row| {
            Ok(TouchRecipient {
                contact: ContactId(get(row, "contact_id")?),
                address_key: get(row, "address_key")?,
            })
        },
    )
    .await
}

/// Records one report and suppresses its address when it says so.
pub(crate) async fn record(
    tx: &Tx<'_>,
    keys: &AddressKeys,
    feedback: &MailFeedback<'_>,
    at: i64,
) -> Result<FeedbackOutcome, StoreError> {
    let (touch, address_key) = match feedback.about {
        FeedbackAbout::Touch(id) => match touch_recipient(tx, id).await? {
            Some(TouchRecipient {
                address_key: Some(key),
                ..
            }) => (Some(id), key),
            _ => return Ok(FeedbackOutcome::UnknownTouch),
        },
        FeedbackAbout::AddressKey(key) => (None, key.to_owned()),
    };
    // The unique source decides between two readers of the same report.
    let inserted = sql::execute(
        tx,
        "INSERT INTO mail_feedback (source, kind, touch_id, address_key, detail, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (source) DO NOTHING",
        &[
            &feedback.source,
            &feedback.kind.as_str(),
            &touch,
            &address_key,
            &feedback.detail,
            &at,
        ],
    )
    .await?;
    if inserted == 0 {
        return Ok(FeedbackOutcome::Duplicate);
    }
    let suppress_now = match feedback.kind {
        FeedbackKind::SoftBounce => {
            let touches: i64 = sql::fetch_one(
                tx,
                "SELECT COUNT(DISTINCT COALESCE(touch_id, -id)) AS n FROM mail_feedback \
                 WHERE address_key = $1 AND kind = 'soft_bounce' AND created_at > $2",
                &[&address_key, &(at - SOFT_BOUNCE_WINDOW_MS)],
                |row| get(row, "n"),
            )
            .await?;
            touches >= i64::from(feedback.soft_bounce_limit.max(1))
        }
        _ => true,
    };
    if !suppress_now {
        return Ok(FeedbackOutcome::Recorded { suppressed: false });
    }
    let suppressed = suppress::suppress_address(
        tx,
        keys,
        &address_key,
        feedback.kind.suppression_reason(),
        at,
    )
    .await?;
    Ok(FeedbackOutcome::Recorded { suppressed })
}

/// Reports recorded so far, by kind.
pub(crate) async fn counts(tx: &Tx<'_>) -> Result<FeedbackCounts, StoreError> {
    let rows: Vec<(String, i64)> = sql::fetch_all(
        tx,
        "SELECT kind, COUNT(*) AS n FROM mail_feedback GROUP BY kind",
        &[],
        |row| Ok((get(row, "kind")?, get(row, "n")?)),
    )
    .await?;
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

/// The last inbound message read.
pub(crate) async fn inbound_cursor(tx: &Tx<'_>) -> Result<Option<(u32, u32)>, StoreError> {
    let Some(text) = crate::engine::value(tx, INBOUND_CURSOR_KEY).await? else {
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
pub(crate) async fn set_inbound_cursor(
    tx: &Tx<'_>,
    uid_validity: u32,
    uid: u32,
) -> Result<(), StoreError> {
    crate::engine::set_value(tx, INBOUND_CURSOR_KEY, &format!("{uid_validity}:{uid}")).await
}

/// Claims a webhook token until `expires_at` (ms): true if no unexpired claim of it
/// exists. The primary key decides between racing nodes: a second insert waits for the
/// first's transaction and then does nothing.
pub(crate) async fn claim_webhook_token(
    tx: &Tx<'_>,
    token_hash: &str,
    expires_at: i64,
    now: i64,
) -> Result<bool, StoreError> {
    // Pruning here keeps the table at the tokens of the last few minutes, and frees an
    // expired token's row for the insert below.
    sql::execute(
        tx,
        "DELETE FROM webhook_tokens WHERE expires_at <= $1",
        &[&now],
    )
    .await?;
    let inserted = sql::execute(
        tx,
        "INSERT INTO webhook_tokens (token_hash, expires_at) VALUES ($1, $2) \
         ON CONFLICT (token_hash) DO NOTHING",
        &[&token_hash, &expires_at],
    )
    .await?;
    Ok(inserted == 1)
}

/// Withdraws a webhook token's claim.
pub(crate) async fn release_webhook_token(tx: &Tx<'_>, token_hash: &str) -> Result<(), StoreError> {
    sql::execute(
        tx,
        "DELETE FROM webhook_tokens WHERE token_hash = $1",
        &[&token_hash],
    )
    .await?;
    Ok(())
}
