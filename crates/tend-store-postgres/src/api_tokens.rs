//! API tokens on PostgreSQL: created by name, found by hash, listed, revoked, and their
//! last use recorded.

use crate::sql::{self, Tx, get, millis, timestamp};
use jiff::Timestamp;
use tend_store::{ApiToken, StoreError, TokenScope};
use tokio_postgres::Row;

const COLUMNS: &str = "id, name, scope, created_at, last_used_at";

pub(crate) async fn create(
    tx: &Tx<'_>,
    name: &str,
    scope: TokenScope,
    token_hash: &str,
    at: Timestamp,
) -> Result<ApiToken, StoreError> {
    // The unique name decides between two creators racing for it: the loser inserts
    // nothing and is told so.
    let id: Option<i64> = sql::fetch_optional(
        tx,
        "INSERT INTO api_tokens (name, scope, token_hash, created_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING RETURNING id",
        &[&name, &scope.as_str(), &token_hash, &millis(at)],
        |row| get(row, "id"),
    )
    .await?;
    let Some(id) = id else {
        return Err(StoreError::Conflict(format!(
            "a token named `{name}` exists; revoke it first or choose another name"
        )));
    };
    Ok(ApiToken {
        id,
        name: name.to_owned(),
        scope,
        // What a later read returns: the instant at millisecond precision.
        created_at: timestamp(millis(at), "token created_at")?,
        last_used_at: None,
    })
}

pub(crate) async fn find(tx: &Tx<'_>, token_hash: &str) -> Result<Option<ApiToken>, StoreError> {
    sql::fetch_optional(
        tx,
        &format!("SELECT {COLUMNS} FROM api_tokens WHERE token_hash = $1"),
        &[&token_hash],
        decode,
    )
    .await
}

pub(crate) async fn list(tx: &Tx<'_>) -> Result<Vec<ApiToken>, StoreError> {
    sql::fetch_all(
        tx,
        &format!("SELECT {COLUMNS} FROM api_tokens ORDER BY name"),
        &[],
        decode,
    )
    .await
}

pub(crate) async fn revoke(tx: &Tx<'_>, name: &str) -> Result<bool, StoreError> {
    Ok(sql::execute(tx, "DELETE FROM api_tokens WHERE name = $1", &[&name]).await? > 0)
}

pub(crate) async fn record_use(tx: &Tx<'_>, id: i64, at: Timestamp) -> Result<(), StoreError> {
    // Never moves backwards when two uses are written out of order.
    sql::execute(
        tx,
        "UPDATE api_tokens SET last_used_at = $2 \
         WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
        &[&id, &millis(at)],
    )
    .await?;
    Ok(())
}

fn decode(row: &Row) -> Result<ApiToken, StoreError> {
    let id: i64 = get(row, "id")?;
    let scope: String = get(row, "scope")?;
    Ok(ApiToken {
        id,
        name: get(row, "name")?,
        scope: TokenScope::parse(&scope)
            .ok_or_else(|| StoreError::Corrupt(format!("token {id}: unknown scope `{scope}`")))?,
        created_at: timestamp(get(row, "created_at")?, &format!("token {id} created_at"))?,
        last_used_at: sql::opt_timestamp(
            get(row, "last_used_at")?,
            &format!("token {id} last_used_at"),
        )?,
    })
}
