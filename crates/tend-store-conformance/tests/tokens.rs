//! API tokens on any backend: stored by hash, named once, listed with their last use,
//! revoked by name.

use jiff::Timestamp;
use tend_store::{StoreError, TokenScope, tokens};
use tend_store_conformance::fixtures::at;
use tend_store_conformance::test_store;

#[tokio::test]
async fn tokens_are_named_once_listed_with_their_last_use_and_revoked_by_name() {
    let store = test_store().await;
    let site = tokens::hash_token("site-key");
    let created = store
        .create_token("site", TokenScope::Write, &site, at(1))
        .await
        .unwrap();
    let refused = store
        .create_token(
            "site",
            TokenScope::Admin,
            &tokens::hash_token("other"),
            at(2),
        )
        .await;
    assert!(
        matches!(&refused, Err(StoreError::Conflict(m)) if m.contains("`site`")),
        "{refused:?}"
    );
    store
        .create_token(
            "ops",
            TokenScope::Admin,
            &tokens::hash_token("ops-key"),
            at(3),
        )
        .await
        .unwrap();

    store.record_token_use(created.id, at(10)).await.unwrap();
    // A use written late never moves the last use backwards.
    store.record_token_use(created.id, at(5)).await.unwrap();
    let listed = store.list_tokens().await.unwrap();
    let names: Vec<(&str, &str, Option<Timestamp>)> = listed
        .iter()
        .map(|t| (t.name.as_str(), t.scope.as_str(), t.last_used_at))
        .collect();
    assert_eq!(
        names,
        [("ops", "admin", None), ("site", "write", Some(at(10)))]
    );

    assert!(store.revoke_token("site").await.unwrap());
    assert!(!store.revoke_token("site").await.unwrap());
    assert_eq!(store.find_token(&site).await.unwrap(), None);
    // The name is free again.
    store
        .create_token(
            "site",
            TokenScope::Write,
            &tokens::hash_token("new"),
            at(20),
        )
        .await
        .unwrap();
}
