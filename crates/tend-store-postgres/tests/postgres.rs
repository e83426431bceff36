//! What only the PostgreSQL backend does: its migrations, its refusal of a newer
//! schema, and how it names a server it cannot reach. Runs against the server
//! `TEND_TEST_DATABASE_URL` names, else 127.0.0.1:5432; fails, never skips, without one.

use tend_store::StoreError;
use tend_store::suppression::Secret;
use tend_store_conformance::postgres::{ScratchDatabase, server_url};
use tend_store_postgres::PostgresStore;
use tokio_postgres::NoTls;

async fn raw(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

#[tokio::test]
async fn a_database_from_a_newer_release_is_refused_untouched() {
    let database = ScratchDatabase::create(&server_url()).await;
    drop(PostgresStore::open(database.url()).await.unwrap());
    let client = raw(database.url()).await;
    let applied = migration_count(&client).await;
    client
        .batch_execute(
            "INSERT INTO tend_schema_migrations (version, description, applied_at) \
             VALUES (99, 'from the future', 0)",
        )
        .await
        .unwrap();
    let err = PostgresStore::open(database.url())
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, StoreError::Migrate(_)), "{err}");
    assert!(err.to_string().contains("99"), "{err}");
    assert!(err.to_string().contains("newer Tend"), "{err}");
    assert_eq!(
        migration_count(&client).await,
        applied + 1,
        "nothing was applied or removed"
    );
}

/// How many migrations the database records, each version once.
async fn migration_count(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one(
            "SELECT COUNT(DISTINCT version) FROM tend_schema_migrations \
             HAVING COUNT(DISTINCT version) = COUNT(*)",
            &[],
        )
        .await
        .expect("each migration recorded once")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_migrate_once_and_share_one_secret() {
    let database = ScratchDatabase::create(&server_url()).await;
    let url = database.url().to_owned();
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PostgresStore::open(&url).await })
        })
        .collect();
    let mut secrets = Vec::new();
    for start in starts {
        let store = start.await.unwrap().expect("every node opens the database");
        secrets.push(
            tend_store::Store::secret(&store, Secret::Signing)
                .await
                .unwrap(),
        );
    }
    assert!(secrets.windows(2).all(|pair| pair[0] == pair[1]));
    assert_eq!(secrets[0].len(), 32);
    let client = raw(&url).await;
    let rows = client
        .query("SELECT version FROM tend_schema_migrations", &[])
        .await
        .unwrap();
    assert_eq!(
        i64::try_from(rows.len()).unwrap(),
        migration_count(&client).await,
        "every migration was applied once"
    );
}

#[tokio::test]
async fn a_server_that_cannot_be_reached_is_named_without_its_password() {
    // Port 1: nothing listens there.
    let err = PostgresStore::open("postgres://tend:hunter2@127.0.0.1:1/tend")
        .await
        .err()
        .expect("no server");
    let message = err.to_string();
    assert!(message.contains("tend@127.0.0.1:1/tend"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[tokio::test]
async fn a_malformed_url_is_refused_without_echoing_it() {
    let err = PostgresStore::open("postgres://tend:hunter2@127.0.0.1:notaport/tend")
        .await
        .err()
        .expect("malformed");
    let message = err.to_string();
    assert!(!message.contains("hunter2"), "{message}");
}
