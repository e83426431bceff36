//! Segment's own Python library (`segment-analytics-python`) pointed at the real server:
//! identify, track, page, screen, group and alias as a website's backend sends them, in
//! batches with `writeKey` in the body.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tend_testkit::web::Server;

const CONFIG: &str = r#"
public_url = "https://tend.example.com"
[business]
name = "Studio Rossi"
timezone = "Europe/Rome"
hours = "Mon-Sun 00:00-24:00"
[stages.on_event]
"Inquiry Received" = "lead"
"#;

/// Runs `calls` with `analytics` configured for the server; fails on any error the
/// library reports, printing it.
fn python(s: &Server, write_key: &str, calls: &str) -> std::process::Output {
    let calls: String = calls.lines().map(|line| format!("    {line}\n")).collect();
    let script = format!(
        "import sys\n\
         import segment.analytics as analytics\n\
         errors = []\n\
         analytics.write_key = {write_key:?}\n\
         analytics.host = {host:?}\n\
         analytics.sync_mode = True\n\
         analytics.max_retries = 0\n\
         analytics.on_error = lambda error, batch: errors.append(repr(error))\n\
         try:\n\
         {calls}\
         \x20   analytics.flush()\n\
         except Exception as error:\n\
         \x20   errors.append(str(error))\n\
         print('\\n'.join(errors))\n\
         sys.exit(1 if errors else 0)\n",
        host = s.base,
    );
    tend_testkit::require_python_module("segment.analytics");
    tend_testkit::run_python(&script, &[], b"")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_python_library_sends_every_call_tend_understands() {
    let s = Server::start(CONFIG, &[], &[]).await;
    let calls = "\
analytics.page(anonymous_id='visitor-9', category='Docs', name='Pricing', properties={'path': '/pricing'})
analytics.screen(anonymous_id='visitor-9', name='Home')
analytics.identify('bea', {'email': 'bea@example.com', 'name': 'Bea Verdi', 'plan': 'pro'})
analytics.group('bea', 'studio-verdi', {'name': 'Studio Verdi', 'employees': 4})
analytics.alias('visitor-9', 'bea')
analytics.track('bea', 'Inquiry Received', {'kitchen': True})
";
    let write_key = s.write_key.clone();
    let out = tokio::task::block_in_place(|| python(&s, &write_key, calls));
    assert!(
        out.status.success(),
        "the library reported errors: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let (status, body) = s.get("/api/contacts", &s.admin).await;
    assert_eq!(status, StatusCode::OK);
    let contacts = body["contacts"].as_array().unwrap();
    assert_eq!(
        contacts.len(),
        1,
        "alias joined the visitor to Bea: {contacts:?}"
    );
    let bea = &contacts[0];
    assert_eq!(bea["email"], "bea@example.com");
    assert_eq!(bea["name"], "Bea Verdi");
    assert_eq!(bea["stage"], "lead");
    assert_eq!(bea["attributes"]["plan"], "pro");
    assert_eq!(bea["attributes"]["groupId"], "studio-verdi");
    assert_eq!(bea["attributes"]["group"]["employees"], 4);
    let (_, detail) = s
        .get(&format!("/api/contacts/{}", bea["id"]), &s.admin)
        .await;
    let names: Vec<&str> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(names, ["Page Viewed", "Screen Viewed", "Inquiry Received"]);
    let page = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "Page Viewed")
        .unwrap();
    assert_eq!(
        (
            &page["properties"]["name"],
            &page["properties"]["category"],
            &page["properties"]["path"]
        ),
        (&json!("Pricing"), &json!("Docs"), &json!("/pricing"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_library_reports_a_wrong_write_key() {
    let s = Server::start(CONFIG, &[], &[]).await;
    let out = tokio::task::block_in_place(|| {
        python(
            &s,
            "tend_wrong",
            "analytics.track('bea', 'Inquiry Received')",
        )
    });
    assert!(!out.status.success());
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("401"), "{printed}");
    let (_, body) = s.get("/api/contacts", &s.admin).await;
    assert_eq!(body["contacts"], Value::Array(vec![]));
}
