//! The console's people and sessions on SQLite.

use super::sql::{self, get, millis, timestamp};
use jiff::Timestamp;
use rusqlite::{Connection, Row, params};
use tend_store::StoreError;
use tend_store::{Role, Session, User};

const COLUMNS: &str = "u.id, u.email, u.role, u.password_hash, u.created_at";

pub(super) fn upsert(
    conn: &Connection,
    email: &str,
    role: Role,
    password_hash: &str,
    at: Timestamp,
) -> Result<(User, bool), StoreError> {
    let existing = find(conn, email)?;
    let created = existing.is_none();
    if created {
        sql::execute(
            conn,
            "INSERT INTO users (email, role, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![email, role.as_str(), password_hash, millis(at)],
        )?;
    } else {
        sql::execute(
            conn,
            "UPDATE users SET role = ?2, password_hash = ?3 WHERE email = ?1",
            params![email, role.as_str(), password_hash],
        )?;
        // A new password or role ends the sessions opened under the old ones.
        sql::execute(
            conn,
            "DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE email = ?1)",
            params![email],
        )?;
    }
    let user = find(conn, email)?
        .ok_or_else(|| StoreError::Corrupt(format!("user {email} vanished after writing")))?;
    Ok((user, created))
}

pub(super) fn find(conn: &Connection, email: &str) -> Result<Option<User>, StoreError> {
    sql::fetch_optional(
        conn,
        &format!("SELECT {COLUMNS} FROM users u WHERE u.email = ?1"),
        params![email],
        decode,
    )
}

pub(super) fn list(conn: &Connection) -> Result<Vec<User>, StoreError> {
    sql::fetch_all(
        conn,
        &format!("SELECT {COLUMNS} FROM users u ORDER BY u.email"),
        [],
        decode,
    )
}

pub(super) fn create_session(
    conn: &Connection,
    user_id: i64,
    token_hash: &str,
    csrf: &str,
    at: Timestamp,
    expires_at: Timestamp,
) -> Result<(), StoreError> {
    sql::execute(
        conn,
        "DELETE FROM sessions WHERE expires_at <= ?1",
        params![millis(at)],
    )?;
    sql::execute(
        conn,
        "INSERT INTO sessions (token_hash, user_id, csrf, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![token_hash, user_id, csrf, millis(at), millis(expires_at)],
    )?;
    Ok(())
}

pub(super) fn session(
    conn: &Connection,
    token_hash: &str,
    now: Timestamp,
) -> Result<Option<Session>, StoreError> {
    sql::fetch_optional(
        conn,
        &format!(
            "SELECT {COLUMNS}, s.csrf, s.expires_at FROM sessions s \
             JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?1 AND s.expires_at > ?2"
        ),
        params![token_hash, millis(now)],
        |row| {
            Ok(Session {
                user: decode(row)?,
                csrf: get(row, "csrf")?,
                expires_at: timestamp(get(row, "expires_at")?, "session expires_at")?,
            })
        },
    )
}

pub(super) fn delete_session(conn: &Connection, token_hash: &str) -> Result<(), StoreError> {
    sql::execute(
        conn,
        "DELETE FROM sessions WHERE token_hash = ?1",
        params![token_hash],
    )?;
    Ok(())
}

fn decode(row: &Row<'_>) -> Result<User, StoreError> {
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

/// Claims a login attempt against each key's limit (see
/// [`tend_store::ConsoleStore::claim_login_attempt`]). Runs in the pool's write
/// transaction, so two claims never interleave.
pub(super) fn claim_login_attempt(
    conn: &Connection,
    attempt: &str,
    keys: &[(&str, u32)],
    since: i64,
    at: i64,
) -> Result<bool, StoreError> {
    sql::execute(
        conn,
        "DELETE FROM login_attempts WHERE at < ?1",
        params![since],
    )?;
    for (key, limit) in keys {
        let made: i64 = sql::fetch_one(
            conn,
            "SELECT count(*) AS n FROM login_attempts WHERE key = ?1 AND at >= ?2",
            params![key, since],
            |row| get(row, "n"),
        )?;
        if made >= i64::from(*limit) {
            return Ok(false);
        }
    }
    for (key, _) in keys {
        sql::execute(
            conn,
            "INSERT INTO login_attempts (key, at, attempt) VALUES (?1, ?2, ?3)",
            params![key, at, attempt],
        )?;
    }
    Ok(true)
}

/// Withdraws a login attempt whose password was right.
pub(super) fn forget_login_attempt(conn: &Connection, attempt: &str) -> Result<(), StoreError> {
    sql::execute(
        conn,
        "DELETE FROM login_attempts WHERE attempt = ?1",
        params![attempt],
    )?;
    Ok(())
}
