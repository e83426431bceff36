//! No input reaches a panic: arbitrary bytes and arbitrary JSON posted to every ingest
//! route always get an answer, and every refusal is a 4xx with a JSON body naming the
//! field (or `body`).

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use tend_testkit::web::Server;

const CONFIG: &str = r#"
[business]
name = "Studio Rossi"
timezone = "Europe/Rome"
hours = "Mon-Sun 00:00-24:00"
[stages.on_event]
"Inquiry Received" = "lead"
"#;

const ROUTES: &[&str] = &[
    "identify", "track", "page", "screen", "group", "alias", "batch",
];

/// Keys Segment messages use, so random objects often reach the field checks.
const KEYS: &[&str] = &[
    "type",
    "userId",
    "anonymousId",
    "previousId",
    "groupId",
    "event",
    "name",
    "category",
    "messageId",
    "timestamp",
    "traits",
    "properties",
    "batch",
    "writeKey",
    "email",
    "timezone",
    "firstName",
    "context",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        ".{0,40}".prop_map(Value::String),
        Just(json!("2026-12-01T10:00:00Z")),
        Just(json!("0001-01-01T00:00:00Z")),
        Just(json!("ann@example.com")),
        Just(json!("Europe/Rome")),
        Just(json!("x\u{0}y")),
        Just(json!("track")),
        Just(json!("identify")),
        Just(json!("alias")),
        Just(json!("page")),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..8).prop_map(|pairs| {
                let map: Map<String, Value> =
                    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
                Value::Object(map)
            }),
        ]
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        json_value().prop_map(|v| json!({"batch": [v]}).to_string().into_bytes()),
        // Deep nesting, as a parser's recursion limit meets it.
        (1usize..400).prop_map(|depth| {
            format!(
                r#"{{"batch":[{}{}]}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            )
            .into_bytes()
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_body_to_any_ingest_route_gets_an_answer_and_refusals_name_the_field(
        route in prop::sample::select(ROUTES),
        body in body(),
        gzip_header in any::<bool>(),
    ) {
        let runtime = runtime();
        let (status, answer) = runtime.block_on(async {
            let s = server().await;
            let mut request = s
                .client
                .post(format!("{}/v1/{route}", s.base))
                .basic_auth(&s.write_key, Some(""))
                .header("content-type", "application/json")
                .body(body.clone());
            if gzip_header {
                request = request.header("content-encoding", "gzip");
            }
            let response = request.send().await.expect("an answer, not a dropped connection");
            let status = response.status();
            (status, response.bytes().await.unwrap())
        });
        let answer: Value = serde_json::from_slice(&answer).expect("a JSON answer");
        if status.is_success() {
            prop_assert_eq!(&answer["success"], &json!(true));
        } else {
            prop_assert!(status.is_client_error(), "{} for {:?}", status, String::from_utf8_lossy(&body));
            let field = answer["error"]["field"].as_str().unwrap_or_default();
            prop_assert!(!field.is_empty(), "no field named: {}", answer);
        }
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// One server for every case, started on the shared runtime.
async fn server() -> &'static Server {
    static SERVER: tokio::sync::OnceCell<Server> = tokio::sync::OnceCell::const_new();
    SERVER.get_or_init(|| Server::start(CONFIG, &[], &[])).await
}
