//! The real HTTP server on port 0 over a real SQLite file in a temp folder.

use flate2::Compression;
use flate2::write::GzEncoder;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use tend_core::StageName;
use tend_store::{Store, TokenScope, tokens};
use tend_store_sqlite::SqliteStore;
use tend_web::{AppState, IngestRules};

struct Server {
    base: String,
    write_key: String,
    admin: String,
    client: reqwest::Client,
    dir: tempfile::TempDir,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Server {
    async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&dir.path().join("tend.db"))
                .await
                .unwrap(),
        );
        let now = jiff::Timestamp::now();
        let write_key = tokens::generate_token();
        let admin = tokens::generate_token();
        store
            .create_token(
                "site",
                TokenScope::Write,
                &tokens::hash_token(&write_key),
                now,
            )
            .await
            .unwrap();
        store
            .create_token("ops", TokenScope::Admin, &tokens::hash_token(&admin), now)
            .await
            .unwrap();
        let rules = IngestRules {
            new_contact_stage: StageName::new("prospect"),
            on_event: HashMap::from([
                ("Inquiry Received".to_owned(), StageName::new("lead")),
                ("Order Completed".to_owned(), StageName::new("customer")),
            ]),
        };
        let processes = json!([{ "id": "new-inquiry", "name": "New inquiry", "steps": [] }]);
        let state = AppState::new(store, rules, processes);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(tend_web::serve(listener, state, async {
            let _ = rx.await;
        }));
        Server {
            base,
            write_key,
            admin,
            client: {
                tend_engine::webhook::install_crypto_provider();
                reqwest::Client::new()
            },
            dir,
            _shutdown: tx,
        }
    }

    async fn ingest(&self, route: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}/v1/{route}", self.base))
            .basic_auth(&self.write_key, Some(""))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn api(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.admin)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn contacts(&self, query: &str) -> Vec<Value> {
        let (status, body) = self.api(&format!("/api/contacts?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["contacts"].as_array().unwrap().clone()
    }
}

fn identify(user: &str, email: &str) -> Value {
    json!({ "userId": user, "traits": { "email": email, "name": "Ann Smith", "timezone": "Europe/Rome", "plan": "pro" } })
}

#[tokio::test]
async fn identify_then_track_moves_the_contact_and_shows_its_timeline() {
    let server = Server::start().await;
    let (status, body) = server
        .ingest("identify", &identify("u1", "Ann@Example.com"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["success"], true);

    let found = server.contacts("q=ann%40example").await;
    assert_eq!(found.len(), 1);
    let contact = &found[0];
    assert_eq!(contact["email"], "ann@example.com");
    assert_eq!(contact["name"], "Ann Smith");
    assert_eq!(contact["timezone"], "Europe/Rome");
    assert_eq!(contact["stage"], "prospect");
    assert_eq!(contact["attributes"]["plan"], "pro");

    let (status, _) = server
        .ingest(
            "track",
            &json!({ "userId": "u1", "event": "Order Completed", "properties": { "total": 120 } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let id = contact["id"].as_i64().unwrap();
    let (status, detail) = server.api(&format!("/api/contacts/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["stage"], "customer");
    let timeline = detail["timeline"].as_array().unwrap();
    assert!(timeline.iter().any(|e| e["type"] == "event"
        && e["name"] == "Order Completed"
        && e["properties"]["total"] == 120));
    assert!(timeline.iter().any(|e| e["type"] == "stage_change"
        && e["to"] == "customer"
        && e["reason"] == "Order Completed"));
    assert_eq!(server.contacts("stage=customer").await.len(), 1);
    assert_eq!(server.contacts("stage=prospect").await.len(), 0);
}

#[tokio::test]
async fn anonymous_visitor_is_merged_when_identified_by_email() {
    let server = Server::start().await;
    server
        .ingest(
            "track",
            &json!({ "anonymousId": "anon-7", "event": "Viewed Pricing" }),
        )
        .await;
    server
        .ingest("identify", &json!({ "anonymousId": "anon-7", "userId": "u7", "traits": { "email": "bo@example.com" } }))
        .await;
    let all = server.contacts("").await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["email"], "bo@example.com");
}

#[tokio::test]
async fn gzip_bodies_are_accepted_as_segment_clients_send_them() {
    let server = Server::start().await;
    let batch = json!({ "batch": [
        { "type": "identify", "userId": "g1", "traits": { "email": "gz@example.com" } },
        { "type": "track", "userId": "g1", "event": "Inquiry Received" },
    ]});
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(batch.to_string().as_bytes()).unwrap();
    let response = server
        .client
        .post(format!("{}/v1/batch", server.base))
        .basic_auth(&server.write_key, Some(""))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(encoder.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let leads = server.contacts("stage=lead").await;
    assert_eq!(leads.len(), 1);
    assert_eq!(leads[0]["email"], "gz@example.com");
}

#[tokio::test]
async fn repeated_message_ids_are_recorded_once() {
    let server = Server::start().await;
    let event = json!({ "userId": "u1", "event": "Clicked", "messageId": "m-1" });
    let (_, first) = server.ingest("track", &event).await;
    let (status, second) = server.ingest("track", &event).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (first["accepted"].as_u64(), second["duplicates"].as_u64()),
        (Some(1), Some(1))
    );
    let id = server.contacts("").await[0]["id"].as_i64().unwrap();
    let (_, detail) = server.api(&format!("/api/contacts/{id}")).await;
    let clicks = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == "Clicked")
        .count();
    assert_eq!(clicks, 1);
}

#[tokio::test]
async fn credentials_are_required_and_scoped() {
    let server = Server::start().await;
    let url = format!("{}/v1/track", server.base);
    let body = json!({ "userId": "u1", "event": "X" });
    let none = server.client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    let unknown = server
        .client
        .post(&url)
        .basic_auth("tend_nope", Some(""))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let error: Value = unknown.json().await.unwrap();
    assert_eq!(error["error"]["code"], "unauthorized");

    // A write key feeds Segment ingest but cannot read people's data.
    let read = server
        .client
        .get(format!("{}/api/contacts", server.base))
        .bearer_auth(&server.write_key)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::FORBIDDEN);
    let anonymous = server
        .client
        .get(format!("{}/api/contacts", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let health = server
        .client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn invalid_payloads_name_the_field_and_write_nothing() {
    let server = Server::start().await;
    let cases = [
        ("track", json!({ "event": "X" }), "userId"),
        ("track", json!({ "userId": "u1" }), "event"),
        (
            "track",
            json!({ "userId": "u1", "event": "X", "timestamp": "yesterday" }),
            "timestamp",
        ),
        (
            "track",
            json!({ "userId": "u1", "event": "X", "properties": [1] }),
            "properties",
        ),
        (
            "identify",
            json!({ "userId": "u1", "traits": { "email": "not-an-email" } }),
            "traits.email",
        ),
        (
            "identify",
            json!({ "userId": "u1", "traits": { "timezone": "Mars/Base" } }),
            "traits.timezone",
        ),
        ("identify", json!({ "userId": ["u1"] }), "userId"),
        (
            "batch",
            json!({ "batch": [
                { "type": "identify", "userId": "ok", "traits": { "email": "ok@example.com" } },
                { "type": "identify", "userId": "u2", "traits": { "email": "broken" } },
            ]}),
            "batch[1].traits.email",
        ),
        (
            "batch",
            json!({ "batch": [{ "userId": "u1", "event": "X" }] }),
            "batch[0].type",
        ),
        (
            "batch",
            json!({ "batch": [{ "type": "launch", "userId": "u1" }] }),
            "batch[0].type",
        ),
        ("batch", json!({ "items": [] }), "batch"),
    ];
    for (route, body, field) in cases {
        let (status, error) = server.ingest(route, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{route} {body}: {error}");
        assert_eq!(error["error"]["field"], field, "{route} {body}: {error}");
    }
    let not_json = server
        .client
        .post(format!("{}/v1/track", server.base))
        .basic_auth(&server.write_key, Some(""))
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
    // The valid first message of the rejected batch was not written either.
    assert!(server.contacts("").await.is_empty());
}

#[tokio::test]
async fn oversized_messages_and_batches_get_413() {
    let server = Server::start().await;
    let big = "x".repeat(33 * 1024);
    let (status, error) = server
        .ingest(
            "track",
            &json!({ "userId": "u1", "event": "X", "properties": { "blob": big } }),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{error}");

    let item =
        json!({ "type": "track", "userId": "u1", "event": "X", "properties": { "blob": big } });
    let (status, error) = server.ingest("batch", &json!({ "batch": [item] })).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("batch[0]"),
        "{error}"
    );

    let medium = "y".repeat(20 * 1024);
    let items: Vec<Value> = (0..30)
        .map(|i| json!({ "type": "track", "userId": format!("u{i}"), "event": "X", "properties": { "blob": medium } }))
        .collect();
    let (status, _) = server.ingest("batch", &json!({ "batch": items })).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(server.contacts("").await.is_empty());
}

#[tokio::test]
async fn contact_pages_walk_every_contact_once() {
    let server = Server::start().await;
    let batch: Vec<Value> = (0..25)
        .map(|i| json!({ "type": "identify", "userId": format!("u{i}"), "traits": { "email": format!("p{i}@example.com") } }))
        .collect();
    let (status, _) = server.ingest("batch", &json!({ "batch": batch })).await;
    assert_eq!(status, StatusCode::OK);
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = server
            .api(&format!("/api/contacts?limit=10&cursor={cursor}"))
            .await;
        assert_eq!(status, StatusCode::OK);
        seen.extend(
            page["contacts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["email"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 25);
    let (status, error) = server.api("/api/contacts?limit=abc").await;
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("limit"))
    );
    let (status, error) = server.api("/api/contacts?limit=0").await;
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("limit"))
    );
}

#[tokio::test]
async fn erasing_a_contact_removes_it_and_keeps_it_suppressed() {
    let server = Server::start().await;
    server
        .ingest("identify", &identify("u1", "erase.me@example.com"))
        .await;
    server
        .ingest(
            "track",
            &json!({ "userId": "u1", "event": "Inquiry Received" }),
        )
        .await;
    let id = server.contacts("").await[0]["id"].as_i64().unwrap();
    let erase = |id: i64| {
        server
            .client
            .delete(format!("{}/api/contacts/{id}", server.base))
            .bearer_auth(&server.admin)
            .send()
    };
    assert_eq!(erase(id).await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(
        server.api(&format!("/api/contacts/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(erase(id).await.unwrap().status(), StatusCode::NOT_FOUND);

    for file in ["tend.db", "tend.db-wal", "tend.db-shm"] {
        let bytes = std::fs::read(server.dir.path().join(file)).unwrap_or_default();
        let found = bytes
            .windows(b"erase.me@example.com".len())
            .any(|w| w == b"erase.me@example.com");
        assert!(!found, "the erased email is still in {file}");
    }
    // The same person coming back is kept from every send.
    server
        .ingest("identify", &identify("u9", "erase.me@example.com"))
        .await;
    let back = server.contacts("q=erase.me").await;
    assert!(!back[0]["suppressed_at"].is_null(), "{back:?}");
}

#[tokio::test]
async fn processes_are_listed_for_admins() {
    let server = Server::start().await;
    let (status, body) = server.api("/api/processes").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["processes"][0]["id"], "new-inquiry");
    let (status, _) = server.api("/api/contacts/abc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
