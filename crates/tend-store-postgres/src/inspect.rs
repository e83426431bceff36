//! A read-only look at a PostgreSQL database for `tend doctor`: reachable, holding a
//! Tend schema this binary knows, with the install's secrets. Nothing is migrated or
//! written, so it is safe beside running nodes and on a database not yet used.

use crate::migrations::MIGRATIONS;
use crate::sql::db;
use tend_store::StoreError;
use tend_store::suppression::{SECRET_KEY, Secret};

/// What a look at the database found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// Where it is, without the password.
    pub target: String,
    /// The schema version applied; 0 when Tend never ran on it.
    pub schema_version: i64,
    /// The newest schema version this binary has.
    pub newest_version: i64,
    /// Contacts stored.
    pub contacts: i64,
    /// Whether the install's signing secret and instance id are present.
    pub secrets_present: bool,
    /// The TLS version of the connection as the server reports it; `None` in the clear.
    pub tls_version: Option<String>,
    /// How the server's certificate was checked, in words.
    pub certificate: &'static str,
    /// Whether the certificate was checked against a trusted root and the host name
    /// (`verify-full`).
    pub host_verified: bool,
    /// Whether the URL names a server beyond this machine (not a loopback address, not
    /// `localhost`, not a socket), where an unverified connection can be intercepted.
    pub remote: bool,
}

/// Connects to the database `url` names and reads its schema version, contact count
/// and secrets, writing nothing.
pub async fn inspect(url: &str) -> Result<Inspection, StoreError> {
    let (pool, connect) = crate::pool::build(url)?;
    let certificate = connect.check.describe();
    let host_verified = connect.check == crate::tls::Check::ChainAndName;
    let remote = connect.is_remote();
    let target = connect.target;
    let client = pool
        .get()
        .await
        .map_err(|e| crate::pool::pool_error(&target, e))?;
    let tls_version: Option<String> = client
        .query_one(
            "SELECT CASE WHEN ssl THEN version END AS version FROM pg_stat_ssl \
             WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(db)?
        .try_get("version")
        .map_err(db)?;
    let newest_version = MIGRATIONS.last().map_or(0, |(version, _, _)| *version);
    let has_schema: bool = client
        .query_one(
            "SELECT to_regclass('tend_schema_migrations') IS NOT NULL AS present",
            &[],
        )
        .await
        .map_err(db)?
        .try_get("present")
        .map_err(db)?;
    if !has_schema {
        return Ok(Inspection {
            target,
            schema_version: 0,
            newest_version,
            contacts: 0,
            secrets_present: false,
            tls_version,
            certificate,
            host_verified,
            remote,
        });
    }
    let row = client
        .query_one(
            "SELECT (SELECT COALESCE(MAX(version), 0) FROM tend_schema_migrations) AS version, \
                    (SELECT COUNT(*) FROM contacts) AS contacts, \
                    (SELECT COUNT(*) FROM engine_state WHERE key IN ($1, $2)) AS secrets",
            &[&SECRET_KEY, &Secret::Instance.key()],
        )
        .await
        .map_err(db)?;
    let secrets: i64 = row.try_get("secrets").map_err(db)?;
    Ok(Inspection {
        target,
        schema_version: row.try_get("version").map_err(db)?,
        newest_version,
        contacts: row.try_get("contacts").map_err(db)?,
        secrets_present: secrets == 2,
        tls_version,
        certificate,
        host_verified,
        remote,
    })
}
