//! Which database a business lives in, decided in one place for every command:
//! `TEND_DATABASE_URL` when set (a deployment's secret store can hold a password that
//! `tend.toml` should not), else `database_url` in `tend.toml`. A `sqlite:` URL is a
//! file beside `tend.toml` (when relative); a `postgres://` URL is a server.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tend_store::{Store, StoreError};

/// The environment variable that overrides `database_url`.
pub const DATABASE_URL_VAR: &str = "TEND_DATABASE_URL";

/// The database a command opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file: one `tend serve` at a time, the file beside `tend.toml` unless
    /// the URL gives an absolute path.
    Sqlite(PathBuf),
    /// A PostgreSQL database, by URL: several `tend serve` nodes may share it.
    Postgres(String),
}

impl Database {
    /// The database of the project whose config is `config_path`, with `database_url`
    /// as `tend.toml` says it: `TEND_DATABASE_URL` wins when set.
    pub fn of(config_path: &Path, database_url: &str) -> anyhow::Result<Database> {
        match std::env::var(DATABASE_URL_VAR) {
            Ok(url) if !url.trim().is_empty() => Database::parse(config_path, url.trim())
                .with_context(|| format!("in the environment variable {DATABASE_URL_VAR}")),
            _ => {
                Database::parse(config_path, database_url).context("in `database_url` of tend.toml")
            }
        }
    }

    /// Reads `url`; a relative SQLite path is taken from the folder holding
    /// `config_path`.
    fn parse(config_path: &Path, url: &str) -> anyhow::Result<Database> {
        if tend_store_postgres::is_postgres_url(url) {
            return Ok(Database::Postgres(url.to_owned()));
        }
        let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        else {
            return Err(StoreError::UnsupportedUrl(without_password(url)).into());
        };
        if path.is_empty() {
            bail!("`{url}` names no file: write sqlite://tend.db or sqlite:///absolute/path");
        }
        Ok(Database::Sqlite(
            crate::project::project_dir(config_path).join(path),
        ))
    }

    /// The SQLite file, or `None` for a server database.
    pub fn sqlite_file(&self) -> Option<&Path> {
        match self {
            Database::Sqlite(path) => Some(path),
            Database::Postgres(_) => None,
        }
    }

    /// The SQLite file for a command that only applies to one (`doing` says what it
    /// does); on PostgreSQL, an error saying so and what to use instead.
    pub fn sqlite_only(&self, doing: &str, instead: &str) -> anyhow::Result<&Path> {
        match self {
            Database::Sqlite(path) => Ok(path),
            Database::Postgres(_) => bail!(
                "{doing} is for a SQLite database, and this business is on PostgreSQL ({}): \
                 {instead}",
                self.shown()
            ),
        }
    }

    /// Where the database is, fit for logs and errors (no password).
    pub fn shown(&self) -> String {
        match self {
            Database::Sqlite(path) => path.display().to_string(),
            Database::Postgres(url) => without_password(url),
        }
    }

    /// Opens the store, bringing its schema up to date.
    pub async fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        let store: Arc<dyn Store> = match self {
            Database::Sqlite(path) => {
                refuse_if_moved(path)?;
                Arc::new(
                    tend_store_sqlite::SqliteStore::open(path)
                        .await
                        .with_context(|| format!("opening the database {}", path.display()))?,
                )
            }
            Database::Postgres(url) => Arc::new(
                tend_store_postgres::PostgresStore::open(url)
                    .await
                    .with_context(|| format!("opening the database {}", without_password(url)))?,
            ),
        };
        Ok(store)
    }
}

/// An error when `tend migrate` moved the business out of the SQLite file at `path`:
/// served (or written) beside the database it moved to, the touches pending in both
/// would go out twice, and what is written here would never reach the live business.
pub fn refuse_if_moved(path: &Path) -> anyhow::Result<()> {
    let moved =
        tend_store_sqlite::moved_to(path).with_context(|| format!("reading {}", path.display()))?;
    if let Some(moved) = moved {
        bail!(
            "{} was {moved}, and the business is served from there now: set database_url \
             in tend.toml (or TEND_DATABASE_URL) to it. Serving this file as well would send \
             the touches pending in both twice. To take the file back on purpose, once \
             nothing serves {} any more, run `tend migrate --reclaim`.",
            path.display(),
            moved.target
        );
    }
    Ok(())
}

/// `scheme://user:password@host/…` with the password replaced by `***`.
pub fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    match rest[..at].split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::{Database, without_password};
    use std::path::{Path, PathBuf};

    #[test]
    fn the_backend_is_chosen_from_the_url() {
        let config = Path::new("/srv/studio/tend.toml");
        assert_eq!(
            Database::parse(config, "sqlite://tend.db").unwrap(),
            Database::Sqlite(PathBuf::from("/srv/studio/tend.db"))
        );
        assert_eq!(
            Database::parse(config, "sqlite:///var/lib/tend.db").unwrap(),
            Database::Sqlite(PathBuf::from("/var/lib/tend.db"))
        );
        assert_eq!(
            Database::parse(config, "postgresql://tend@db/tend").unwrap(),
            Database::Postgres("postgresql://tend@db/tend".into())
        );
        let refused = Database::parse(config, "mysql://root:hunter2@db/tend").unwrap_err();
        let said = format!("{refused:#}");
        assert!(said.contains("mysql://root:***@db/tend"), "{said}");
        assert!(!said.contains("hunter2"), "{said}");
    }

    #[test]
    fn a_password_is_never_shown() {
        assert_eq!(
            without_password("postgres://tend:s3cret@db.example:5432/tend"),
            "postgres://tend:***@db.example:5432/tend"
        );
        assert_eq!(without_password("postgres://db/tend"), "postgres://db/tend");
        assert_eq!(without_password("sqlite://tend.db"), "sqlite://tend.db");
    }

    #[test]
    fn sqlite_only_commands_say_they_do_not_apply_to_postgres() {
        let pg = Database::Postgres("postgres://tend:s3cret@db/tend".into());
        let said = pg
            .sqlite_only("`tend backup`", "use pg_dump")
            .unwrap_err()
            .to_string();
        assert!(said.contains("PostgreSQL"), "{said}");
        assert!(said.contains("pg_dump"), "{said}");
        assert!(!said.contains("s3cret"), "{said}");
    }
}
