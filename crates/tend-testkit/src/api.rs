//! Segment ingest and the admin API of a running server, over real HTTP.

use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Segment ingest and the admin API of one running server.
pub struct Api {
    /// The HTTP client.
    pub client: reqwest::Client,
    /// The server's base URL.
    pub base: String,
    write_key: String,
    admin: String,
}

/// The email address of test lead `i`.
pub fn lead_email(i: usize) -> String {
    format!("lead{i:04}@example.com")
}

impl Api {
    /// A client for the server at `base` (`http://127.0.0.1:PORT`).
    pub fn new(base: &str, write_key: &str, admin: &str) -> Api {
        // reqwest is built without a default TLS provider; Tend installs ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Api {
            // The server closes a keep-alive connection idle for its header timeout
            // (10 s by default); a client reusing one it kept longer could write into a
            // socket being closed, so it lets idle ones go first.
            client: reqwest::Client::builder()
                .pool_idle_timeout(std::time::Duration::from_secs(5))
                .build()
                .expect("a plain HTTP client"),
            base: base.to_owned(),
            write_key: write_key.to_owned(),
            admin: admin.to_owned(),
        }
    }

    /// Posts one Segment call (`identify`, `track`, `batch`) with the write key.
    pub async fn segment(&self, call: &str, body: &Value) {
        let response = self
            .client
            .post(format!("{}/v1/{call}", self.base))
            .basic_auth(&self.write_key, Some(""))
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST /v1/{call}: {e}"));
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert_eq!(status, 200, "POST /v1/{call} answered {status}: {text}");
    }

    /// Identifies `count` people and tracks "Inquiry Received" for each in one batch,
    /// so each becomes a lead; person `i` is `lead_email(i)`.
    pub async fn new_leads(&self, count: usize) {
        self.new_leads_numbered(0..count).await;
    }

    /// [`Api::new_leads`] for people numbered `numbers`, so several servers can each
    /// take a share of one business's leads.
    pub async fn new_leads_numbered(&self, numbers: std::ops::Range<usize>) {
        let mut calls = Vec::with_capacity(2 * numbers.len());
        for i in numbers {
            let user = format!("lead-{i}");
            calls.push(json!({
                "type": "identify",
                "userId": user,
                "traits": { "email": lead_email(i), "name": format!("Lead {i}") },
            }));
            calls.push(json!({ "type": "track", "userId": user, "event": "Inquiry Received" }));
        }
        self.segment("batch", &json!({ "batch": calls })).await;
    }

    /// `GET path` with the admin token, as JSON.
    pub async fn get(&self, path: &str) -> Value {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.admin)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert_eq!(status, 200, "GET {path} answered {status}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}"))
    }

    /// Every contact in `stage`, all pages.
    pub async fn contacts_in(&self, stage: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = self
                .get(&format!(
                    "/api/contacts?stage={stage}&limit=500&cursor={cursor}"
                ))
                .await;
            all.extend(page["contacts"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = next.to_owned(),
                None => return all,
            }
        }
    }

    /// The welcome email touch (step 0) of every contact in `stage`, by email address,
    /// from `GET /api/contacts/{id}`.
    pub async fn welcome_touches(&self, stage: &str) -> BTreeMap<String, Value> {
        let mut touches = BTreeMap::new();
        for contact in self.contacts_in(stage).await {
            let email = contact["email"].as_str().expect("an email").to_owned();
            let detail = self.get(&format!("/api/contacts/{}", contact["id"])).await;
            let welcome = detail["touches"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["step"] == 0 && t["channel"] == "email" && t["kind"] == "step")
                .cloned()
                .unwrap_or(Value::Null);
            touches.insert(email, welcome);
        }
        touches
    }
}
