//! What Segment ingest accepts and refuses, through the real server and engine: message
//! ids, write keys, timestamps, identifiers, deep nesting, and the page, screen, group
//! and alias calls.

use jiff::{SignedDuration, Timestamp};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tend_store::{TokenScope, tokens};
use tend_testkit::web::Server;

const CONFIG: &str = r#"
public_url = "https://tend.example.com"
[business]
name = "Studio Rossi"
timezone = "Europe/Rome"
hours = "Mon-Sun 00:00-24:00"
[stages.on_event]
"Inquiry Received" = "lead"
[work]
opened = "Job Opened"
closed = "Job Completed"
[channels.email]
from = "Studio Rossi <hello@studio.example>"
"#;

async fn start() -> Server {
    Server::start(CONFIG, &[], &[]).await
}

async fn send(s: &Server, route: &str, key: &str, body: &Value) -> (StatusCode, Value) {
    let response = s
        .client
        .post(format!("{}/v1/{route}", s.base))
        .basic_auth(key, Some(""))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn open_work(s: &Server) -> f64 {
    s.after(0).await;
    let (status, body) = s.get("/api/pace", &s.admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["capacity"]["open_work"].as_f64().unwrap()
}

async fn contacts(s: &Server) -> Vec<Value> {
    let (status, body) = s.get("/api/contacts", &s.admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["contacts"].as_array().unwrap().clone()
}

#[tokio::test]
async fn messages_without_an_id_all_count_and_ids_are_deduplicated_per_write_key() {
    let s = start().await;
    let job = json!({"userId": "customer", "event": "Job Opened"});
    for _ in 0..2 {
        let (status, body) = send(&s, "track", &s.write_key, &job).await;
        assert_eq!(
            (status, &body["accepted"]),
            (StatusCode::OK, &json!(1)),
            "{body}"
        );
    }
    assert_eq!(
        open_work(&s).await,
        2.0,
        "two jobs sent without ids are two jobs"
    );

    // A retry with the same id from the same key is a duplicate...
    let with_id = json!({"userId": "customer", "event": "Job Opened", "messageId": "job-3"});
    send(&s, "track", &s.write_key, &with_id).await;
    let (_, body) = send(&s, "track", &s.write_key, &with_id).await;
    assert_eq!(body["duplicates"], 1);
    assert_eq!(open_work(&s).await, 3.0);

    // ...but another integration's key owns its own ids.
    let crm = tokens::generate_token();
    s.engine
        .store()
        .create_token(
            "crm",
            TokenScope::Write,
            &tokens::hash_token(&crm),
            Timestamp::now(),
        )
        .await
        .unwrap();
    let (status, body) = send(&s, "track", &crm, &with_id).await;
    assert_eq!(
        (status, &body["accepted"]),
        (StatusCode::OK, &json!(1)),
        "{body}"
    );
    assert_eq!(open_work(&s).await, 4.0);
}

#[tokio::test]
async fn timestamps_must_fall_between_five_years_before_receipt_and_a_day_after() {
    let s = start().await;
    let now = Timestamp::now();
    let at = |hours: i64| (now + SignedDuration::from_hours(hours)).to_string();
    for bad in [
        "0001-01-01T00:00:00Z".to_owned(),
        "9999-12-31T23:59:59Z".to_owned(),
        at(-24 * 366 * 5 - 48),
        at(25),
    ] {
        let event = json!({"userId": "u", "event": "E", "timestamp": bad});
        let (status, body) = send(&s, "track", &s.write_key, &event).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"]["field"], "timestamp", "{bad}");
        let batch = json!({"batch": [{"type": "identify", "userId": "u", "timestamp": bad}]});
        let (status, body) = send(&s, "batch", &s.write_key, &batch).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["field"], "batch[0].timestamp");
    }
    assert!(contacts(&s).await.is_empty(), "nothing written");
    for good in [at(-24 * 365 * 4), at(23)] {
        let event = json!({"userId": "u", "event": "E", "timestamp": good});
        let (status, body) = send(&s, "track", &s.write_key, &event).await;
        assert_eq!(status, StatusCode::OK, "{good}: {body}");
    }
}

#[tokio::test]
async fn identifiers_refuse_control_characters_and_are_measured_after_trimming() {
    let s = start().await;
    let cases = [
        (json!({"userId": "ann\u{0}", "event": "E"}), "userId"),
        (
            json!({"anonymousId": "a\u{7}b", "event": "E"}),
            "anonymousId",
        ),
        (json!({"userId": "u", "event": "Sign\nup"}), "event"),
        (
            json!({"userId": "u", "event": "E", "messageId": "m\u{1b}[31m"}),
            "messageId",
        ),
        (json!({"userId": "x".repeat(257), "event": "E"}), "userId"),
    ];
    for (message, field) in &cases {
        let (status, body) = send(&s, "track", &s.write_key, message).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{message}: {body}");
        assert_eq!(body["error"]["field"], *field, "{body}");
    }
    assert!(contacts(&s).await.is_empty(), "nothing written");

    // Surrounding spaces do not count towards the limit, and are not kept.
    let padded = format!("  {}  \t", "x".repeat(256));
    let (status, body) = send(
        &s,
        "track",
        &s.write_key,
        &json!({"userId": padded, "event": " E "}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(contacts(&s).await[0]["user_id"], "x".repeat(256));
}

#[tokio::test]
async fn a_batch_nested_too_deeply_gets_a_400_naming_the_message() {
    let s = start().await;
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    for item in [
        deep.clone(),
        format!(r#"{{"type":"track","userId":"u","event":"E","properties":{{"x":{deep}}}}}"#),
    ] {
        let body = format!(r#"{{"batch":[{item}]}}"#);
        let response = s
            .client
            .post(format!("{}/v1/batch", s.base))
            .basic_auth(&s.write_key, Some(""))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("an answer, not a dropped connection");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["field"], "batch[0]", "{error}");
    }
}

#[tokio::test]
async fn a_write_key_in_the_body_is_accepted_as_segment_clients_send_it() {
    let s = start().await;
    let post = |body: Value| {
        s.client
            .post(format!("{}/v1/batch", s.base))
            .json(&body)
            .send()
    };
    let batch = |key: Value| json!({"writeKey": key, "batch": [{"type": "track", "userId": "u", "event": "E"}]});
    let response = post(batch(json!(s.write_key))).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        post(batch(json!("tend_wrong"))).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(batch(json!(s.calendar))).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(batch(Value::Null)).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let response = post(batch(json!(42))).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["field"], "writeKey");
    // On a single-message route too.
    let response = s
        .client
        .post(format!("{}/v1/identify", s.base))
        .json(&json!({"writeKey": s.write_key, "userId": "u2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(contacts(&s).await.len(), 2);
}

#[tokio::test]
async fn page_screen_group_and_alias_each_do_what_segment_means() {
    let s = start().await;
    let ok = |(status, body): (StatusCode, Value)| assert_eq!(status, StatusCode::OK, "{body}");
    ok(send(&s, "page", &s.write_key, &json!({"anonymousId": "visitor", "name": "Pricing", "category": "Docs", "properties": {"path": "/pricing"}})).await);
    ok(send(
        &s,
        "screen",
        &s.write_key,
        &json!({"anonymousId": "visitor", "name": "Home"}),
    )
    .await);
    ok(send(
        &s,
        "identify",
        &s.write_key,
        &json!({"userId": "ann", "traits": {"email": "ann@example.com"}}),
    )
    .await);
    ok(send(&s, "group", &s.write_key, &json!({"userId": "ann", "groupId": "acme", "traits": {"name": "Acme", "email": "office@acme.example"}})).await);
    assert_eq!(contacts(&s).await.len(), 2, "the visitor and Ann, apart");
    ok(send(
        &s,
        "alias",
        &s.write_key,
        &json!({"previousId": "visitor", "userId": "ann"}),
    )
    .await);

    let all = contacts(&s).await;
    assert_eq!(all.len(), 1, "alias merged the visitor into Ann: {all:?}");
    let ann = &all[0];
    assert_eq!(ann["user_id"], "ann");
    assert_eq!(
        ann["email"], "ann@example.com",
        "a group's traits are not the person's"
    );
    assert_eq!(ann["attributes"]["groupId"], "acme");
    assert_eq!(ann["attributes"]["group"]["name"], "Acme");
    let (_, detail) = s
        .get(&format!("/api/contacts/{}", ann["id"]), &s.admin)
        .await;
    let events: Vec<(&str, &Value)> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "event" && e["name"].is_string())
        .map(|e| (e["name"].as_str().unwrap(), &e["properties"]["name"]))
        .collect();
    assert_eq!(
        events,
        [
            ("Page Viewed", &json!("Pricing")),
            ("Screen Viewed", &json!("Home"))
        ]
    );
    // The visitor's device keeps pointing at Ann.
    ok(send(
        &s,
        "track",
        &s.write_key,
        &json!({"anonymousId": "visitor", "event": "Inquiry Received"}),
    )
    .await);
    let all = contacts(&s).await;
    assert_eq!((all.len(), &all[0]["stage"]), (1, &json!("lead")));

    for (route, message, field) in [
        ("alias", json!({"userId": "ann"}), "previousId"),
        ("alias", json!({"previousId": "v"}), "userId"),
        ("group", json!({"userId": "ann"}), "groupId"),
        ("page", json!({"userId": "ann", "name": 3}), "name"),
    ] {
        let (status, body) = send(&s, route, &s.write_key, &message).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{route} {message}: {body}");
        assert_eq!(body["error"]["field"], field);
    }
}
