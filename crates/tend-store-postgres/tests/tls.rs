//! TLS to PostgreSQL with libpq's words (`sslmode`, `sslrootcert`), against the real
//! server `TEND_TEST_DATABASE_URL` names, else 127.0.0.1:5432, whose own certificate
//! (Debian's default: `ssl = on` with the "snakeoil" self-signed certificate) is the
//! root the verifying modes are given. Fails, never skips, when the server has TLS off.

use std::time::Duration;
use tend_store::{Store, StoreError};
use tend_store_conformance::postgres::ScratchDatabase;
use tend_store_postgres::{ELECTION_APPLICATION, PostgresStore};
use tend_testkit::wait_for;
use tokio_postgres::NoTls;

/// `url` with `params` added to its query.
fn with_params(url: &str, params: &str) -> String {
    let joiner = if url.contains('?') { '&' } else { '?' };
    format!("{url}{joiner}{params}")
}

/// The file of the server's certificate, which it is asked for (as superuser).
async fn server_certificate(database: &ScratchDatabase) -> String {
    let (client, connection) = tokio_postgres::connect(database.url(), NoTls)
        .await
        .expect("connecting in the clear to read the server's settings");
    tokio::spawn(connection);
    let ssl: String = client.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    assert_eq!(
        ssl, "on",
        "the PostgreSQL server of the tests has TLS off; these tests need `ssl = on` \
         (Debian's default, with its snakeoil certificate)"
    );
    let file: String = client
        .query_one("SHOW ssl_cert_file", &[])
        .await
        .unwrap()
        .get(0);
    let data: String = client
        .query_one("SHOW data_directory", &[])
        .await
        .unwrap()
        .get(0);
    if file.starts_with('/') {
        file
    } else {
        format!("{data}/{file}")
    }
}

/// This database's connections named `application`, and how many of them use TLS.
async fn connections(database: &ScratchDatabase, application: &str) -> (i64, i64) {
    let of = |only_tls: bool| {
        format!(
            "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s ON s.pid = a.pid \
             WHERE a.datname = current_database() AND a.application_name = '{application}' \
             AND ({} OR s.ssl)",
            !only_tls
        )
    };
    (
        database.query_i64(&of(false)).await,
        database.query_i64(&of(true)).await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_encrypts_the_pool_and_the_election_connection() {
    let database = ScratchDatabase::fresh().await;
    server_certificate(&database).await;
    let store = PostgresStore::open(&with_params(database.url(), "sslmode=require"))
        .await
        .expect("sslmode=require connects to a server with TLS on");
    let (all, encrypted) = connections(&database, "tend").await;
    assert!(all >= 1, "the pool keeps its first connection");
    assert_eq!(encrypted, all, "every pooled connection is encrypted");
    let _coordination = store.coordination().await.unwrap();
    wait_for(
        "the election connection, encrypted",
        Duration::from_secs(10),
        async || match connections(&database, ELECTION_APPLICATION).await {
            (1, 1) => Ok(()),
            seen => Err(format!("(connections, encrypted) = {seen:?}")),
        },
    )
    .await;
}

#[tokio::test]
async fn disable_connects_in_the_clear() {
    let database = ScratchDatabase::fresh().await;
    let _store = PostgresStore::open(&with_params(database.url(), "sslmode=disable"))
        .await
        .unwrap();
    let (all, encrypted) = connections(&database, "tend").await;
    assert!(all >= 1);
    assert_eq!(encrypted, 0);
}

#[tokio::test]
async fn verify_ca_trusts_the_roots_of_sslrootcert_and_no_others() {
    let database = ScratchDatabase::fresh().await;
    let root = server_certificate(&database).await;
    let _store = PostgresStore::open(&with_params(
        database.url(),
        &format!("sslmode=verify-ca&sslrootcert={root}"),
    ))
    .await
    .expect("the server's own certificate, given as the root, is trusted");
    let (all, encrypted) = connections(&database, "tend").await;
    assert_eq!(encrypted, all);

    // Without sslrootcert the roots are Mozilla's, and a self-signed server is not
    // among them: refused, with the reason, and nothing of the URL's password.
    let url = database
        .url()
        .replacen("postgres://postgres@", "postgres://postgres:hunter2@", 1);
    let error = PostgresStore::open(&with_params(&url, "sslmode=verify-ca"))
        .await
        .err()
        .expect("an untrusted certificate is refused");
    let text = error.to_string();
    assert!(matches!(error, StoreError::Backend(_)), "{text}");
    assert!(text.to_lowercase().contains("certificate"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[tokio::test]
async fn verify_full_also_checks_the_host_name() {
    let database = ScratchDatabase::fresh().await;
    let root = server_certificate(&database).await;
    // Debian's snakeoil certificate names a host, never the address 127.0.0.1.
    let by_address = database.url().replacen("@localhost", "@127.0.0.1", 1);
    assert!(by_address.contains("@127.0.0.1"), "{by_address}");
    let error = PostgresStore::open(&with_params(
        &by_address,
        &format!("sslmode=verify-full&sslrootcert={root}"),
    ))
    .await
    .err()
    .expect("a certificate issued for another name is refused");
    let text = error.to_string();
    assert!(text.contains("not valid for name"), "{text}");

    // The name the certificate was issued for is accepted, when this server is
    // reachable under it (Debian makes the snakeoil certificate for its host name;
    // PostgreSQL listens on localhost by default).
    let names = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in", &root])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if names.contains("DNS:localhost") {
        let by_name = by_address.replacen("@127.0.0.1", "@localhost", 1);
        PostgresStore::open(&with_params(
            &by_name,
            &format!("sslmode=verify-full&sslrootcert={root}"),
        ))
        .await
        .expect("verify-full accepts the certificate for the name it was issued for");
    } else {
        eprintln!(
            "the server's certificate is not for localhost ({names:?}): only the refusal is checked"
        );
    }
}

#[tokio::test]
async fn a_missing_root_file_is_named() {
    let error = PostgresStore::open(
        "postgres://postgres@127.0.0.1:5432/test?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
    )
    .await
    .err()
    .expect("refused");
    let text = error.to_string();
    assert!(text.contains("sslrootcert /nonexistent/ca.pem"), "{text}");
}
