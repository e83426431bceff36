//! Several nodes on one PostgreSQL database, in-process: two stores on one fresh
//! database elect one leader, the other takes over when the leader's connection dies,
//! a node that lost the lead cannot write the leader's writes, and a commit on one
//! node wakes the other. Against the server `TEND_TEST_DATABASE_URL` names, else
//! 127.0.0.1:5432; fails, never skips, without one.

use std::sync::Arc;
use std::time::Duration;
use tend_core::pacer::BudgetState;
use tend_store::{Coordination, Store, StoreError, Wake};
use tend_store_conformance::fixtures::{identify, prospect, traits, user};
use tend_store_conformance::postgres::ScratchDatabase;
use tend_store_postgres::{ELECTION_APPLICATION, PostgresStore};
use tend_testkit::wait_for;
use tokio_postgres::NoTls;

/// A node: its store and its part in the election.
async fn node(database: &ScratchDatabase) -> (Arc<PostgresStore>, Arc<dyn Coordination>) {
    let store = Arc::new(PostgresStore::open(database.url()).await.unwrap());
    let coordination = store.coordination().await.unwrap();
    (store, coordination)
}

async fn leaders(nodes: &[&Arc<dyn Coordination>]) -> usize {
    nodes.iter().filter(|c| c.leads()).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_leads_and_another_takes_over_when_its_connection_dies() {
    let database = ScratchDatabase::fresh().await;
    let (store_a, a) = node(&database).await;
    wait_for(
        "the first node to lead",
        Duration::from_secs(10),
        async || {
            if a.leads() {
                Ok(())
            } else {
                Err("no leader".to_owned())
            }
        },
    )
    .await;
    let (store_b, b) = node(&database).await;
    // B tries the lock every second and keeps failing while A holds it.
    tokio::time::timeout(Duration::from_millis(2_500), b.woken(Wake::Signals))
        .await
        .ok();
    assert_eq!(leaders(&[&a, &b]).await, 1);
    assert!(a.leads() && !b.leads());
    let now = jiff::Timestamp::now();
    store_a
        .record_decisions(now, &[], &BudgetState::default())
        .await
        .expect("the leader writes");
    let refused = store_b
        .record_decisions(now, &[], &BudgetState::default())
        .await
        .expect_err("a follower does not write the leader's writes");
    assert!(matches!(refused, StoreError::Conflict(_)), "{refused}");

    // The leader's election connection dies (a network cut, the server restarting
    // it); the node itself runs on.
    let (client, connection) = tokio_postgres::connect(database.url(), NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let cut = client
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1 AND datname = current_database() \
             AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)",
            &[&ELECTION_APPLICATION],
        )
        .await
        .unwrap();
    assert_eq!(cut, 1, "the leader's lock connection");
    wait_for("B to take over", Duration::from_secs(10), async || {
        if b.leads() {
            Ok(())
        } else {
            Err(format!("A leads: {}, B leads: {}", a.leads(), b.leads()))
        }
    })
    .await;
    store_b
        .record_decisions(now, &[], &BudgetState::default())
        .await
        .expect("the new leader writes");
    // A steps down when it sees its connection die, and cannot win back the lock B
    // holds.
    wait_for("A to step down", Duration::from_secs(10), async || {
        if a.leads() {
            Err("A still leads".to_owned())
        } else {
            Ok(())
        }
    })
    .await;
    let refused = store_a
        .record_decisions(now, &[], &BudgetState::default())
        .await
        .expect_err("the old leader's writes are refused");
    assert!(matches!(refused, StoreError::Conflict(_)), "{refused}");
    assert_eq!(leaders(&[&a, &b]).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_written_on_one_node_wakes_the_other() {
    let database = ScratchDatabase::fresh().await;
    let (_store_a, a) = node(&database).await;
    let (store_b, _b) = node(&database).await;
    // A listens before it tries the lock, so once it leads it hears every commit.
    wait_for("A to lead", Duration::from_secs(10), async || {
        if a.leads() {
            Ok(())
        } else {
            Err("no leader".to_owned())
        }
    })
    .await;
    // The wake-up A gave itself on winning is consumed first.
    tokio::time::timeout(Duration::from_millis(200), a.woken(Wake::Signals))
        .await
        .ok();
    let heard = tokio::spawn(async move {
        tokio::time::timeout(Duration::from_secs(5), a.woken(Wake::Signals)).await
    });
    // Give A's wait a moment to start; the notification is kept for it anyway.
    tokio::task::yield_now().await;
    let message = identify(
        "m-1",
        user("u-1"),
        traits(Some("ann@example.com"), None, serde_json::json!({})),
    );
    store_b.ingest(&[message], &prospect()).await.unwrap();
    heard
        .await
        .unwrap()
        .expect("A heard B's ingest within a second");
}
