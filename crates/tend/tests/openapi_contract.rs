//! `/api/openapi.json` against a live `tend serve`: the document is valid OpenAPI 3.1
//! by `openapi-spec-validator`, lists every `/v1` and `/api` operation with its
//! security, and leaks nothing of the install; then `schemathesis` throws generated
//! requests at every operation, with an admin token and a write key, and finds no 5xx
//! and no answer its schema does not allow (status, content type, headers, body).
//!
//! The schemathesis run is bounded: a fixed seed, at most 20 cases per operation and
//! phase (examples, coverage, fuzzing). On the 2-core development machine it ran 1,861
//! cases in about 45 s with a load average of 13.
//!
//! Needs Python 3 with openapi-spec-validator and schemathesis; fails, never skips,
//! without them.

use serde_json::{Value, json};
use std::collections::BTreeSet;
use tend_testkit::{Studio, require_python_module, run_python, run_python_in};

/// The generated cases per operation and phase; with the seed, what bounds the run.
const MAX_EXAMPLES: &str = "20";
/// Schemathesis's seed: the same cases on every run, so a landing never depends on luck.
const SEED: &str = "1";

fn config() -> String {
    r#"database_url = "sqlite://tend.db"
public_url = "https://tend.example.com"

[business]
name = "Studio Rossi"
timezone = "Europe/Rome"
hours = "Mon-Sun 00:00-24:00"

[limits]
quiet_hours = "none"

[stages]
order = ["prospect", "lead", "customer", "loyal", "lapsed"]

[stages.on_event]
"Inquiry Received" = "lead"
"Order Completed" = "customer"

[channels.email]
from = "Studio Rossi <hello@example.com>"
"#
    .to_owned()
}

/// Every operation the router serves under `/v1` and `/api`, as `METHOD path`.
const OPERATIONS: [&str; 24] = [
    "POST /v1/identify",
    "POST /v1/track",
    "POST /v1/page",
    "POST /v1/screen",
    "POST /v1/group",
    "POST /v1/alias",
    "POST /v1/batch",
    "POST /v1/mail/postmark",
    "POST /v1/mail/mailgun",
    "POST /v1/mail/sendgrid",
    "GET /api/contacts",
    "GET /api/contacts/{id}",
    "DELETE /api/contacts/{id}",
    "GET /api/processes",
    "GET /api/pace",
    "GET /api/forecast",
    "PUT /api/capacity",
    "GET /api/reports/funnel",
    "GET /api/reports/touches-to-conversion",
    "GET /api/reports/pace",
    "GET /api/reports/neglect",
    "GET /api/tasks",
    "POST /api/tasks/{id}/complete",
    "POST /api/tasks/{id}/skip",
];

async fn document(base: &str) -> (reqwest::StatusCode, String, String) {
    let response = reqwest::get(format!("{base}/api/openapi.json"))
        .await
        .expect("GET /api/openapi.json");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, response.text().await.expect("body"))
}

#[tokio::test]
async fn the_document_is_valid_openapi_and_covers_every_route() {
    require_python_module("openapi_spec_validator");
    let studio = Studio::new(env!("CARGO_BIN_EXE_tend"), &config());
    let server = studio.business.serve();
    // Installs the TLS provider reqwest is built without, before any client is made.
    let _ = studio.api(&server);

    // Public, like any API reference: no token needed.
    let (status, content_type, text) = document(&server.base).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(content_type, "application/json");

    const VALIDATE: &str = "\
import json, sys
from openapi_spec_validator import validate
document = json.load(sys.stdin)
validate(document)
print(document['openapi'])
";
    let out = run_python(VALIDATE, &[], text.as_bytes());
    assert!(
        out.status.success(),
        "openapi-spec-validator refused the document: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "3.1.0");

    let document: Value = serde_json::from_str(&text).expect("JSON");
    let mut served = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            served.insert(format!("{} {path}", method.to_uppercase()));
            let security = &operation["security"];
            // Each provider's webhook authenticates its provider's way; Mailgun's
            // signature is inside the body, which OpenAPI cannot name as a scheme, so
            // its operation says so in words.
            let expected = if path == "/v1/mail/postmark" {
                json!([{ "postmark_basic": [] }])
            } else if path == "/v1/mail/sendgrid" {
                json!([{ "sendgrid_signature": [] }])
            } else if path == "/v1/mail/mailgun" {
                assert!(
                    operation["description"]
                        .as_str()
                        .is_some_and(|d| d.contains("HMAC-SHA256")),
                    "{operation}"
                );
                Value::Null
            } else if path.starts_with("/v1/") {
                json!([{ "write_key": [] }, { "write_key_bearer": [] }])
            } else {
                json!([{ "admin_token": [] }])
            };
            assert_eq!(security, &expected, "{method} {path}");
            for status in ["401", "403", "500"] {
                assert_eq!(
                    operation["responses"][status]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} documents its {status} with the error body"
                );
            }
            assert!(
                operation["responses"]
                    .as_object()
                    .expect("responses")
                    .keys()
                    .any(|s| s.starts_with('2')),
                "{method} {path} documents its success"
            );
        }
    }
    let expected: BTreeSet<String> = OPERATIONS.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(served, expected);

    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["admin_token"]["scheme"], "bearer");
    assert_eq!(schemes["write_key"]["scheme"], "basic");
    assert_eq!(schemes["write_key_bearer"]["scheme"], "bearer");
    assert_eq!(schemes["postmark_basic"]["scheme"], "basic");
    assert_eq!(
        schemes["sendgrid_signature"]["name"],
        "x-twilio-email-event-webhook-signature"
    );
    let error = &document["components"]["schemas"]["ErrorDetail"];
    assert_eq!(error["required"], json!(["code", "message"]));

    // Nothing of this install: no server address, no token, no business data.
    assert!(document.get("servers").is_none(), "names no server");
    for secret in [&studio.admin, &studio.write_key] {
        assert!(!text.contains(secret.as_str()), "a token leaked");
    }
    assert!(!text.contains("Studio Rossi"), "the business's name leaked");
    assert!(
        !text.contains(server.address()),
        "the listen address leaked"
    );
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_schema() {
    require_python_module("schemathesis");
    let studio = Studio::new(env!("CARGO_BIN_EXE_tend"), &config());
    let server = studio.business.serve();
    let api = studio.api(&server);
    // Contacts to list, read and erase; ids start at 1, which the document's examples use.
    api.new_leads(5).await;

    let settings = studio.business.scratch().join("schemathesis.toml");
    // The credentials come from the environment, never the command line, which every
    // user of the machine can read; each operation gets the scheme it declares.
    std::fs::write(
        &settings,
        r#"[auth.openapi.admin_token]
bearer = "${TEND_ADMIN}"

[auth.openapi.write_key]
username = "${TEND_WRITE_KEY}"
password = ""

[auth.openapi.write_key_bearer]
bearer = "${TEND_WRITE_KEY}"
"#,
    )
    .expect("write schemathesis.toml");
    const SCHEMATHESIS: &str = "\
import sys
from schemathesis.cli import schemathesis
sys.argv[0] = 'schemathesis'
sys.exit(schemathesis())
";
    let url = format!("{}/api/openapi.json", server.base);
    // Run in the scratch folder: schemathesis keeps a cache of past failures where it
    // runs and replays them, which would make this run depend on earlier ones.
    let out = run_python_in(
        studio.business.scratch(),
        SCHEMATHESIS,
        &[
            "--no-color",
            "--config-file",
            settings.to_str().expect("a UTF-8 path"),
            "run",
            &url,
            "--seed",
            SEED,
            "--max-examples",
            MAX_EXAMPLES,
            "--phases",
            "examples,coverage,fuzzing",
            "--workers",
            "1",
            // A year's forecast (`GET /api/forecast?weeks=52`) runs the business forward
            // on a debug build; on a loaded 2-core machine it took longer than
            // schemathesis's default 10 s. The test judges answers, not latency.
            "--request-timeout",
            "120",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_headers_conformance,response_schema_conformance",
        ],
        &[
            ("TEND_ADMIN", &studio.admin),
            ("TEND_WRITE_KEY", &studio.write_key),
        ],
        b"",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with(|c: char| c.is_ascii_digit()) && line.contains(" generated"))
        .unwrap_or("no summary line")
        .to_owned();
    eprintln!("schemathesis: {summary}");
    assert!(
        out.status.success(),
        "schemathesis found problems ({summary}):\n{stdout}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    // Every operation was exercised, each with many cases.
    assert!(stdout.contains("Tested: 24"), "{stdout}");
    let generated: u64 = summary
        .split_whitespace()
        .next()
        .and_then(|n| n.replace(',', "").parse().ok())
        .unwrap_or_else(|| panic!("cannot read the case count from {summary:?}"));
    assert!(generated >= 500, "only {generated} cases ran:\n{stdout}");
    assert!(
        !server.log().contains("request failed"),
        "a request failed inside the server:\n{}",
        server.log()
    );
}
