//! Scratch PostgreSQL databases: each test gets one of its own, created on the server a
//! `postgres://` URL names and dropped when the test ends (with any connection a killed
//! `tend serve` left open to it).

use std::sync::atomic::{AtomicU32, Ordering};
use tokio_postgres::NoTls;

/// The variable naming the database server (or SQLite file) the store's tests use.
pub const TEST_DATABASE_URL_VAR: &str = "TEND_TEST_DATABASE_URL";

/// A database made for one test; dropped, with any connection still open to it, when
/// this value is.
pub struct ScratchDatabase {
    /// The URL the database was made from, for dropping it.
    server_url: String,
    /// The database's name.
    name: String,
    /// The URL of the new database.
    url: String,
}

impl ScratchDatabase {
    /// Creates `tend_test_<unique>` on the server `server_url` names (connecting to the
    /// database it names to do so). Panics naming the server when it cannot: a suite
    /// asked to run against PostgreSQL never passes by skipping it.
    pub async fn create(server_url: &str) -> ScratchDatabase {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "tend_test_{}_{}_{}",
            std::process::id(),
            nanos,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let client = connect(server_url).await;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("creating database {name} on {server_url}: {e}"));
        ScratchDatabase {
            server_url: server_url.to_owned(),
            url: with_database(server_url, &name),
            name,
        }
    }

    /// A database of its own on the server PostgreSQL-only tests use ([`server_url`]).
    pub async fn fresh() -> ScratchDatabase {
        ScratchDatabase::create(&server_url()).await
    }

    /// The new database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs `sql` on the database and returns the first column of the first row: for
    /// a test to look at what several processes wrote.
    pub async fn query_i64(&self, sql: &str) -> i64 {
        let client = connect(&self.url).await;
        let row = client
            .query_one(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        row.get(0)
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        // Drop cannot await, and the test's runtime may be the current thread's: drop
        // the database from a thread with a runtime of its own.
        let server_url = self.server_url.clone();
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop the test database");
            runtime.block_on(async {
                let client = connect(&server_url).await;
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("dropping test database {}: {e}", self.name);
        }
    }
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to PostgreSQL at {url}: {e}"));
    tokio::spawn(connection);
    client
}

/// `url` with its database name (the path) replaced by `name`; parameters kept.
pub fn with_database(url: &str, name: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let after_path = rest[authority_end..]
        .find('?')
        .map_or("", |q| &rest[authority_end + q..]);
    format!(
        "{}{}/{name}{after_path}",
        &url[..scheme_end],
        &rest[..authority_end]
    )
}

/// The server PostgreSQL-only tests use: `TEND_TEST_DATABASE_URL` when it names one,
/// else the local server on 127.0.0.1:5432 (user `postgres`, database `test`).
pub fn server_url() -> String {
    match std::env::var(TEST_DATABASE_URL_VAR) {
        Ok(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => url,
        _ => "postgres://postgres@127.0.0.1:5432/test".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_name_is_replaced_and_parameters_kept() {
        assert_eq!(
            with_database("postgres://127.0.0.1:5432/?user=postgres", "t1"),
            "postgres://127.0.0.1:5432/t1?user=postgres"
        );
        assert_eq!(
            with_database("postgres://u@h:5432/test", "t2"),
            "postgres://u@h:5432/t2"
        );
        assert_eq!(with_database("postgres://h", "t3"), "postgres://h/t3");
    }
}
