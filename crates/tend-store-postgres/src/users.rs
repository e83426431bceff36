//! The console's people and sessions on PostgreSQL.

use crate::sql::{self, Tx, get, millis, timestamp};
use jiff::Timestamp;
use tend_store::{Role, Session, StoreError, User};
use tokio_postgres::Row;

const COLUMNS: &str = "u.id, u.email, u.role, u.password_hash, u.created_at";

pub(crate) async fn upsert(
    tx: &Tx<'_>,
    email: &str,
    role: Role,
    password_hash: &str,
    at: Timestamp,
) -> Result<(User, bool), StoreError> {
    // One statement, so two nodes adding the same person cannot both insert; `xmax = 0`
    // tells an inserted row from an updated one.
    let created: bool = sql::fetch_one(
        tx,
        "INSERT INTO users (email, role, password_hash, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (email) DO UPDATE SET role = excluded.role, \
         password_hash = excluded.password_hash \
         RETURNING (xmax = 0) AS created",
        &[&email, &role.as_str(), &password_hash, &millis(at)],
        |row| get(row, "created"),
    )
    .await?;
    if !created {
        // A new password or role ends the sessions opened under the old ones.
        sql::execute(
            tx,
            "DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE email = $1)",
            &[&email],
        )
        .await?;
    }
    let user = find(tx, email)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("user {email} vanished after writing")))?;
    Ok((user, created))
}

pub(crate) async fn find(tx: &Tx<'_>, email: &str) -> Result<Option<User>, StoreError> {
    sql::fetch_optional(
        tx,
        &format!("SELECT {COLUMNS} FROM users u WHERE u.email = $1"),
        &[&email],
        decode,
    )
    .await
}

pub(crate) async fn list(tx: &Tx<'_>) -> Result<Vec<User>, StoreError> {
    sql::fetch_all(
        tx,
        &format!("SELECT {COLUMNS} FROM users u ORDER BY u.email"),
        &[],
        decode,
    )
    .await
}

pub(crate) async fn create_session(
    tx: &Tx<'_>,
    user_id: i64,
    token_hash: &str,
    csrf: &str,
    at: Timestamp,
    expires_at: Timestamp,
) -> Result<(), StoreError> {
    sql::execute(
        tx,
        "DELETE FROM sessions WHERE expires_at <= $1",
        &[&millis(at)],
    )
    .await?;
    sql::execute(
        tx,
        "INSERT INTO sessions (token_hash, user_id, csrf, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &token_hash,
            &user_id,
            &csrf,
            &millis(at),
            &millis(expires_at),
        ],
    )
    .await?;
    Ok(())
}

pub(crate) async fn session(
    tx: &Tx<'_>,
    token_hash: &str,
    now: Timestamp,
) -> Result<Option<Session>, StoreError> {
    sql::fetch_optional(
        tx,
        &format!(
            "SELECT {COLUMNS}, s.csrf, s.expires_at FROM sessions s \
             JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1 AND s.expires_at > $2"
        ),
        &[&token_hash, &millis(now)],
        |row| {
            Ok(Session {
                user: decode(row)?,
                csrf: get(row, "csrf")?,
                expires_at: timestamp(get(row, "expires_at")?, "session expires_at")?,
            })
        },
    )
    .await
}

pub(crate) async fn delete_session(tx: &Tx<'_>, token_hash: &str) -> Result<(), StoreError> {
    sql::execute(
        tx,
        "DELETE FROM sessions WHERE token_hash = $1",
        &[&token_hash],
    )
    .await?;
    Ok(())
}

fn decode(row: &Row) -> Result<User, StoreError> {
    let id: i64 = get(row, "id")?;
    let role: String = get(row, "role")?;
    Ok(User {
        id,
        email: get(row, "email")?,
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Corrupt(format!("user {id}: unknown role `{role}`")))?,
        password_hash: get(row, "password_hash")?,
        created_at: timestamp(get(row, "created_at")?, &format!("user {id} created_at"))?,
    })
}

/// The advisory lock login attempts are claimed under, so concurrent claims on any node
/// count one after another ("TENDLOGN" in ASCII).
const LOGIN_ATTEMPTS_LOCK: i64 = 0x5445_4E44_4C4F_474E;

/// Claims a login attempt against each key's limit (see
/// [`tend_store::ConsoleStore::claim_login_attempt`]).
pub(crate) async fn claim_login_attempt(
    tx: &Tx<'_>,
    attempt: &str,
    keys: &[(&str, u32)],
    since: i64,
    at: i64,
) -> Result<bool, StoreError> {
    // Without the lock two claims racing under READ COMMITTED would each count the
    // attempts committed before it and miss the other's: a burst of parallel guesses
    // would all pass. Logins are rare, so one lock for all of them costs nothing.
    sql::execute(
        tx,
        "SELECT pg_advisory_xact_lock($1)",
        &[&LOGIN_ATTEMPTS_LOCK],
    )
    .await?;
    sql::execute(tx, "DELETE FROM login_attempts WHERE at < $1", &[&since]).await?;
    for (key, limit) in keys {
        let made: i64 = sql::fetch_one(
            tx,
            "SELECT count(*) AS n FROM login_attempts WHERE key = $1 AND at >= $2",
            &[key, &since],
            |row| get(row, "n"),
        )
        .await?;
        if made >= i64::from(*limit) {
            return Ok(false);
        }
    }
    for (key, _) in keys {
        sql::execute(
            tx,
            "INSERT INTO login_attempts (key, at, attempt) VALUES ($1, $2, $3)",
            &[key, &at, &attempt],
        )
        .await?;
    }
    Ok(true)
}

/// Withdraws a login attempt whose password was right.
pub(crate) async fn forget_login_attempt(tx: &Tx<'_>, attempt: &str) -> Result<(), StoreError> {
    sql::execute(
        tx,
        "DELETE FROM login_attempts WHERE attempt = $1",
        &[&attempt],
    )
    .await?;
    Ok(())
}
