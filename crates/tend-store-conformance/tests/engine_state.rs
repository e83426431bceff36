//! The engine's own state on any backend: the pacer's budget usage and the install's
//! secrets.

use jiff::Timestamp;
use tend_core::pacer::{BudgetState, Period, Resource, WindowUsage};
use tend_store::suppression::Secret;
use tend_store_conformance::fixtures::at;
use tend_store_conformance::test_store;

#[tokio::test]
async fn budget_usage_is_empty_at_first_and_reads_back_as_recorded() {
    let store = test_store().await;
    let now = at(100);
    let first = store.pacing_snapshot(at(0), now, false).await.unwrap();
    assert_eq!(first.budget, BudgetState::default());
    assert_eq!(first.open_work, 0.0);

    let spent = BudgetState {
        windows: vec![WindowUsage {
            resource: Resource::Emails,
            period: Period::Day,
            window_start: at(0),
            used: 3.5,
        }],
        reservations: Vec::new(),
    };
    store.record_decisions(now, &[], &spent).await.unwrap();
    let again = store.pacing_snapshot(at(0), now, false).await.unwrap();
    assert_eq!(again.budget, spent);
}

#[tokio::test]
async fn open_work_set_by_hand_reads_back() {
    let store = test_store().await;
    store.set_open_work(4.0, at(1)).await.unwrap();
    let snapshot = store
        .pacing_snapshot(at(0), Timestamp::from_second(1_700_000_100).unwrap(), false)
        .await
        .unwrap();
    assert_eq!(snapshot.open_work, 4.0);
}

#[tokio::test]
async fn the_schema_makes_distinct_secrets_that_stay_put() {
    let store = test_store().await;
    let signing = store.secret(Secret::Signing).await.unwrap();
    let instance = store.secret(Secret::Instance).await.unwrap();
    assert!(
        signing.len() >= 16,
        "a signing key of {} bytes",
        signing.len()
    );
    assert!(!instance.is_empty());
    assert_ne!(signing, instance);
    assert_eq!(store.secret(Secret::Signing).await.unwrap(), signing);
}
