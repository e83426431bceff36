//! Single-use webhook tokens on any backend: a token is claimed once until it expires,
//! a withdrawn claim can be made again, and of many claims racing over the pool's
//! connections exactly one wins.

use std::sync::Arc;
use tend_store::Store;
use tend_store_conformance::fixtures::at;
use tend_store_conformance::test_store;

#[tokio::test]
async fn a_webhook_token_is_claimed_once_until_it_expires() {
    let store = test_store().await;
    assert!(
        store
            .claim_webhook_token("a", at(900), at(0))
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_webhook_token("a", at(900), at(10))
            .await
            .unwrap(),
        "a replay within the window is refused"
    );
    assert!(
        store
            .claim_webhook_token("b", at(910), at(10))
            .await
            .unwrap()
    );

    // A request that failed inside Tend gives its token back for the provider's retry.
    store.release_webhook_token("a").await.unwrap();
    assert!(
        store
            .claim_webhook_token("a", at(920), at(20))
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_webhook_token("a", at(920), at(21))
            .await
            .unwrap()
    );
    // Releasing a token never claimed changes nothing.
    store.release_webhook_token("never").await.unwrap();
    assert!(
        !store
            .claim_webhook_token("b", at(910), at(30))
            .await
            .unwrap()
    );

    // Once expired, a token's row is pruned and the token may be claimed again (its
    // signature's timestamp would be refused before it got here anyway).
    assert!(
        store
            .claim_webhook_token("a", at(1900), at(921))
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_webhook_token("b", at(1900), at(921))
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_webhook_token("a", at(1900), at(922))
            .await
            .unwrap()
    );
}

// Several threads, so the claims are in flight on several connections at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_racing_claims_of_one_token_exactly_one_wins() {
    let store = test_store().await;
    let shared: Arc<dyn Store> = Arc::clone(&store.store);
    let claims: Vec<_> = (0..8)
        .map(|_| {
            let s = Arc::clone(&shared);
            tokio::spawn(async move { s.claim_webhook_token("raced", at(900), at(0)).await })
        })
        .collect();
    let mut won = 0;
    for claim in claims {
        won += usize::from(claim.await.unwrap().unwrap());
    }
    assert_eq!(won, 1, "exactly one of the racing requests is accepted");
}
