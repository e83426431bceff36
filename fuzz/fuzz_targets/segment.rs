//! A Segment request body, validated exactly as `POST /v1/{route}` validates it; the
//! first byte picks the route.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use tend_core::StageName;
use tend_store::{ApiToken, TokenScope};
use tend_store_sqlite::{SqliteStore};
use tend_web::{AppState, IngestRules};

const ROUTES: [&str; 7] = [
    "identify", "track", "page", "screen", "group", "alias", "batch",
];

static STATE: LazyLock<(AppState, ApiToken)> = LazyLock::new(|| {
    let store = SqliteStore::open_scratch().expect("a scratch store");
    let rules = IngestRules {
        new_contact_stage: StageName::new("prospect"),
        on_event: HashMap::from([("Inquiry Received".to_owned(), StageName::new("lead"))]),
    };
    let state = AppState::new(Arc::new(store), rules, serde_json::json!([]));
    let token = ApiToken {
        id: 1,
        name: "site".into(),
        scope: TokenScope::Write,
        created_at: jiff::Timestamp::UNIX_EPOCH,
        last_used_at: None,
    };
    (state, token)
});

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let route = ROUTES[usize::from(selector) % ROUTES.len()];
    let (state, token) = &*STATE;
    if let Err(error) = tend_web::validate_segment_body(state, route, body, token) {
        // Every refusal is a client error with something to say.
        let _ = error.to_string();
    }
});
