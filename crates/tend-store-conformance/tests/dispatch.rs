//! Dispatch leases on any backend: a queued touch is leased to one claimer at a time,
//! a lease that runs out is taken again with its attempt counted, a retry comes back
//! when its time comes, and a finished send is never claimed again.

use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use tend_core::pacer::{BudgetState, Channel, Intent, TouchId};
use tend_core::{ContactId, StageName};
use tend_store::{
    Backfill, DecisionRecord, DispatchResult, ProcessSync, StepSpec, Store, TouchView,
};
use tend_store_conformance::fixtures::*;
use tend_store_conformance::test_store;

const LEASE_MS: i64 = 60_000;

fn lead() -> StageName {
    StageName::new("lead")
}

/// `contacts` leads enrolled in a one-email process whose touches are queued for
/// dispatch at `at(10)`; returns the contacts.
async fn queued_emails(store: &dyn Store, contacts: usize) -> Vec<ContactId> {
    let batch: Vec<_> = (0..contacts)
        .map(|n| {
            identify(
                &format!("m{n}"),
                user(&format!("u{n}")),
                traits(Some(&format!("c{n}@example.com")), Some("C"), json!({})),
            )
        })
        .collect();
    store.ingest(&batch, &lead()).await.unwrap();
    let steps = vec!["email:welcome".to_owned()];
    let stage = lead();
    let synced = store
        .sync_process(&ProcessSync {
            key: "welcome",
            steps: &steps,
            previous: None,
            moves: &[],
            backfill: Some(Backfill {
                stage: &stage,
                first: StepSpec {
                    step: 0,
                    channel: Channel::Email,
                    intent: Intent::Nurture,
                },
                due_at: at(10),
            }),
            at: at(5),
        })
        .await
        .unwrap();
    assert_eq!(synced.enrolled, contacts as u64);
    let due = store.due_touches(at(10), 1_000).await.unwrap();
    assert_eq!(due.touches.len(), contacts);
    let queue: Vec<DecisionRecord> = due
        .touches
        .iter()
        .map(|t| DecisionRecord::Queue {
            touch: t.touch,
            probability: None,
        })
        .collect();
    store
        .record_decisions(at(10), &queue, &BudgetState::default())
        .await
        .unwrap();
    let mut ids: Vec<ContactId> = due.touches.iter().map(|t| t.contact).collect();
    ids.sort();
    ids.dedup();
    ids
}

async fn touch_of(store: &dyn Store, contact: ContactId) -> TouchView {
    let mut touches = store.touches_of(contact, 10).await.unwrap();
    assert_eq!(touches.len(), 1, "{touches:?}");
    touches.remove(0)
}

#[tokio::test]
async fn a_queued_touch_is_leased_to_one_claimer_until_its_lease_runs_out() {
    let store = test_store().await;
    let contact = queued_emails(&*store, 1).await[0];

    let first = store.claim_dispatch(at(10), LEASE_MS, 10).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!((first[0].contact.id, first[0].attempts), (contact, 1));
    assert!(
        store
            .claim_dispatch(at(11), LEASE_MS, 10)
            .await
            .unwrap()
            .is_empty(),
        "a held lease is not handed out twice"
    );

    // The claimer died: once the lease runs out the touch is taken again.
    let expired = later(at(10), LEASE_MS + 1_000);
    let again = store.claim_dispatch(expired, LEASE_MS, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].touch, again[0].attempts), (first[0].touch, 2));

    store
        .finish_dispatch(
            again[0].lease(),
            expired,
            &DispatchResult::Delivered { next: None },
        )
        .await
        .unwrap();
    assert_eq!(touch_of(&*store, contact).await.state, "sent");
    let much_later = later(expired, 10 * LEASE_MS);
    assert!(
        store
            .claim_dispatch(much_later, LEASE_MS, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.next_dispatch_at().await.unwrap(), None);
}

#[tokio::test]
async fn a_retry_waits_for_its_time_and_counts_its_attempt() {
    let store = test_store().await;
    let contact = queued_emails(&*store, 1).await[0];
    let claimed = store.claim_dispatch(at(10), LEASE_MS, 10).await.unwrap();
    let touch: TouchId = claimed[0].touch;
    store
        .finish_dispatch(
            claimed[0].lease(),
            at(12),
            &DispatchResult::Retry {
                error: "450 try later".into(),
                retry_at: at(100),
            },
        )
        .await
        .unwrap();
    assert_eq!(touch_of(&*store, contact).await.state, "queued");
    assert_eq!(store.next_dispatch_at().await.unwrap(), Some(at(100)));
    assert!(
        store
            .claim_dispatch(at(50), LEASE_MS, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let retried = store.claim_dispatch(at(100), LEASE_MS, 10).await.unwrap();
    assert_eq!((retried[0].touch, retried[0].attempts), (touch, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claimers_never_share_a_touch() {
    let store = test_store().await;
    let contacts = queued_emails(&*store, 40).await;
    let shared: Arc<dyn Store> = Arc::clone(&store.store);
    let claimers: Vec<_> = (0..4)
        .map(|_| {
            let store = Arc::clone(&shared);
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let claimed = store.claim_dispatch(at(10), LEASE_MS, 3).await.unwrap();
                    if claimed.is_empty() {
                        return mine;
                    }
                    mine.extend(claimed.into_iter().map(|c| c.touch));
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    let mut total = 0;
    for claimer in claimers {
        for touch in claimer.await.unwrap() {
            total += 1;
            assert!(seen.insert(touch), "{touch:?} was claimed twice");
        }
    }
    assert_eq!(total, contacts.len());
}

#[tokio::test]
async fn a_holder_whose_lease_ran_out_cannot_record_over_the_next_claim() {
    let store = test_store().await;
    let contact = queued_emails(&*store, 1).await[0];
    let stale = store.claim_dispatch(at(10), LEASE_MS, 10).await.unwrap();
    // The first holder stalls past its lease; another dispatcher takes the touch.
    let expired = later(at(10), LEASE_MS + 1_000);
    let current = store.claim_dispatch(expired, LEASE_MS, 10).await.unwrap();
    assert_eq!(current[0].touch, stale[0].touch);
    assert_ne!(
        current[0].lease(),
        stale[0].lease(),
        "each claim has its own token"
    );

    // The stalled holder wakes up and reports a permanent failure: refused.
    let failed = DispatchResult::Failed {
        error: "554 rejected".into(),
        next: None,
    };
    assert!(
        !store
            .finish_dispatch(stale[0].lease(), expired, &failed)
            .await
            .unwrap()
    );
    store
        .finish_and_claim(&[(stale[0].lease(), expired, failed)], expired, LEASE_MS, 0)
        .await
        .unwrap();
    let touch = touch_of(&*store, contact).await;
    assert_eq!((touch.state.as_str(), touch.last_error), ("queued", None));

    // The current holder's result is the one recorded.
    assert!(
        store
            .finish_dispatch(
                current[0].lease(),
                expired,
                &DispatchResult::Delivered { next: None },
            )
            .await
            .unwrap()
    );
    assert_eq!(touch_of(&*store, contact).await.state, "sent");
    // Once recorded, no lease finishes it again.
    assert!(
        !store
            .finish_dispatch(
                current[0].lease(),
                expired,
                &DispatchResult::Delivered { next: None },
            )
            .await
            .unwrap()
    );
}
