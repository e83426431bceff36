//! The console's login rate limit on any backend: attempts count per key within the
//! window, a withdrawn attempt does not count, old attempts stop counting, and of many
//! claims racing over the pool's connections no more than the limit succeed.

use std::sync::Arc;
use tend_store::Store;
use tend_store_conformance::fixtures::at;
use tend_store_conformance::test_store;

const ACCOUNT: &str = "account:ann@example.com";
const ADDRESS: &str = "address:192.0.2.1";

#[tokio::test]
async fn attempts_count_per_key_within_the_window_and_a_withdrawn_one_does_not() {
    let store = test_store().await;
    let s = &*store;
    let keys = [(ACCOUNT, 3), (ADDRESS, 10)];
    for i in 0..3 {
        let attempt = format!("guess-{i}");
        assert!(
            s.claim_login_attempt(&attempt, &keys, at(0), at(10 + i))
                .await
                .unwrap()
        );
    }
    assert!(
        !s.claim_login_attempt("guess-3", &keys, at(0), at(20))
            .await
            .unwrap(),
        "the account's fourth attempt is refused"
    );
    // The refused attempt was not recorded: the address has three, not four.
    let other_account = [("account:bo@example.com", 3), (ADDRESS, 4)];
    assert!(
        s.claim_login_attempt("bo-1", &other_account, at(0), at(21))
            .await
            .unwrap()
    );
    assert!(
        !s.claim_login_attempt("bo-2", &other_account, at(0), at(22))
            .await
            .unwrap(),
        "the address has reached its limit of four"
    );

    // A right password withdraws its attempt: the account has room for one more.
    s.forget_login_attempt("guess-1").await.unwrap();
    assert!(
        s.claim_login_attempt("guess-4", &keys, at(0), at(30))
            .await
            .unwrap()
    );
    assert!(
        !s.claim_login_attempt("guess-5", &keys, at(0), at(31))
            .await
            .unwrap()
    );

    // Once the window has moved past them, old attempts no longer count.
    assert!(
        s.claim_login_attempt("later", &keys, at(25), at(900))
            .await
            .unwrap(),
        "only guess-4 (at 30) is left in the window"
    );
}

// Several threads, so the claims are in flight on several connections at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_racing_attempts_no_more_than_the_limit_are_let_through() {
    let store = test_store().await;
    let shared: Arc<dyn Store> = Arc::clone(&store.store);
    let claims: Vec<_> = (0..12)
        .map(|i| {
            let s = Arc::clone(&shared);
            tokio::spawn(async move {
                s.claim_login_attempt(&format!("race-{i}"), &[(ACCOUNT, 5)], at(0), at(1))
                    .await
            })
        })
        .collect();
    let mut through = 0;
    for claim in claims {
        through += usize::from(claim.await.unwrap().unwrap());
    }
    assert_eq!(
        through, 5,
        "exactly the limit's five attempts are let through"
    );
}
