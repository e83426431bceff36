//! Every route checks its caller before reading a body, every body is bounded, and HTML
//! pages forbid what they do not need: on the real server over a real SQLite file.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tend_store::{TokenScope, tokens};
use tend_testkit::web::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONFIG: &str = r#"
public_url = "https://tend.example.com"
[business]
name = "Studio Rossi"
timezone = "Europe/Rome"
hours = "Mon-Sun 08:00-20:00"
[stages.on_event]
"Inquiry Received" = "lead"
[channels.email]
from = "Studio Rossi <hello@studio.example>"
"#;

const WELCOME: &str = "Subject: Welcome\n\nHello, [leave]({{ unsubscribe_url }}).";

const PROCESS: &str = r#"
name = "New inquiry"
enroll = { stage = "lead" }
max_gap = "10d"
[[steps]]
wait = "0d"
email = "welcome"
intent = "nurture"
"#;

async fn start() -> Server {
    Server::start(CONFIG, &[("new-inquiry", PROCESS)], &[("welcome", WELCOME)]).await
}

/// Every route that needs a token, with a body where the route takes one.
const GUARDED: &[(&str, &str)] = &[
    ("POST", "/v1/identify"),
    ("POST", "/v1/track"),
    ("POST", "/v1/page"),
    ("POST", "/v1/screen"),
    ("POST", "/v1/group"),
    ("POST", "/v1/alias"),
    ("POST", "/v1/batch"),
    ("GET", "/api/contacts"),
    ("GET", "/api/contacts/1"),
    ("DELETE", "/api/contacts/1"),
    ("GET", "/api/processes"),
    ("GET", "/api/pace"),
    ("PUT", "/api/capacity"),
    ("GET", "/api/reports/funnel"),
    ("GET", "/api/reports/touches-to-conversion"),
    ("GET", "/api/reports/pace"),
    ("GET", "/api/reports/neglect"),
    ("GET", "/api/tasks"),
    ("POST", "/api/tasks/1/complete"),
    ("POST", "/api/tasks/1/skip"),
    ("GET", "/metrics"),
    ("GET", "/agenda.ics"),
];

async fn call(s: &Server, method: &str, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut request = s
        .client
        .request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{path}", s.base),
        )
        .header("content-type", "application/json")
        .body(r#"{"open_work": 1, "outcome": "replied", "userId": "u", "event": "E"}"#);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_guarded_route_refuses_a_missing_unknown_or_wrong_scope_token() {
    let s = start().await;
    let store = s.engine.store();
    let metrics = tokens::generate_token();
    store
        .create_token(
            "scraper",
            TokenScope::Metrics,
            &tokens::hash_token(&metrics),
            jiff::Timestamp::now(),
        )
        .await
        .unwrap();
    for (method, path) in GUARDED {
        let (status, body) = call(&s, method, path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized", "{method} {path}");
        let (status, _) = call(&s, method, path, Some("tend_not-a-token")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        // A scraper's token reads /metrics and nothing else.
        let (status, _) = call(&s, method, path, Some(&metrics)).await;
        let expected = if *path == "/metrics" {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(status, expected, "{method} {path} with a metrics token");
    }
    // Public routes stay public.
    let (status, _) = call(&s, "GET", "/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_calendar_token_is_the_only_one_accepted_in_a_url() {
    let s = start().await;
    let feed = |query: String| {
        s.client
            .get(format!("{}/agenda.ics?{query}", s.base))
            .send()
    };
    let status = |r: reqwest::Response| r.status();
    assert_eq!(
        status(feed(format!("token={}", s.calendar)).await.unwrap()),
        StatusCode::OK
    );
    // As a calendar app may encode it.
    let encoded = s.calendar.replace('_', "%5F");
    assert_eq!(
        status(feed(format!("x=1&token={encoded}")).await.unwrap()),
        StatusCode::OK
    );
    assert_eq!(
        status(feed(format!("token={}", s.admin)).await.unwrap()),
        StatusCode::FORBIDDEN,
        "an admin token must not travel in a URL"
    );
    assert_eq!(
        status(feed(format!("token={}", s.write_key)).await.unwrap()),
        StatusCode::FORBIDDEN
    );
    // In a header an admin token may read the feed.
    let response = s
        .client
        .get(format!("{}/agenda.ics", s.base))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // Nor does any other route take a token from the query string.
    let (status, _) = s.get(&format!("/api/contacts?token={}", s.admin), "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_revoked_token_is_refused_at_once_and_uses_are_recorded() {
    let s = start().await;
    let store = s.engine.store();
    let (status, _) = s.get("/api/contacts", &s.admin).await;
    assert_eq!(status, StatusCode::OK);
    s.post_segment("track", json!({"userId": "u1", "event": "Clicked"}))
        .await;
    let listed = store.list_tokens().await.unwrap();
    let used: Vec<(&str, bool)> = listed
        .iter()
        .map(|t| (t.name.as_str(), t.last_used_at.is_some()))
        .collect();
    assert_eq!(
        used,
        [("admin", true), ("calendar", false), ("write", true)]
    );

    assert!(store.revoke_token("write").await.unwrap());
    let response = s
        .client
        .post(format!("{}/v1/track", s.base))
        .basic_auth(&s.write_key, Some(""))
        .json(&json!({"userId": "u1", "event": "Clicked"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // Nor in the body.
    let response = s
        .client
        .post(format!("{}/v1/track", s.base))
        .json(&json!({"userId": "u1", "event": "Clicked", "writeKey": s.write_key}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(store.revoke_token("admin").await.unwrap());
    let (status, _) = s.get("/api/contacts", &s.admin).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

const HUGE: usize = 200 * 1024 * 1024;

/// Sends a 200 MB body (announced, or chunked without a length) and returns the status
/// the server answers with while the client is still sending.
async fn send_huge(base: &str, head: &str, chunked: bool) -> u16 {
    let address = base.trim_start_matches("http://");
    let stream = TcpStream::connect(address).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let framing = if chunked {
        "Transfer-Encoding: chunked\r\n".to_owned()
    } else {
        format!("Content-Length: {HUGE}\r\n")
    };
    let request = format!("{head}Host: tend\r\nContent-Type: application/json\r\n{framing}\r\n");
    let writer = tokio::spawn(async move {
        write.write_all(request.as_bytes()).await?;
        let chunk = vec![b' '; 64 * 1024];
        let mut sent = 0;
        while sent < HUGE {
            if chunked {
                write
                    .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .await?;
            }
            write.write_all(&chunk).await?;
            if chunked {
                write.write_all(b"\r\n").await?;
            }
            sent += chunk.len();
        }
        std::io::Result::Ok(sent)
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = read.read(&mut buf).await.expect("the server answers");
        assert!(n > 0, "closed without an answer");
        answer.extend_from_slice(&buf[..n]);
    }
    writer.abort();
    let text = String::from_utf8_lossy(&answer);
    text[9..12].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mb_body_is_refused_without_reading_it() {
    let s = start().await;
    // Warm up what a first request allocates once.
    let (status, _) = s.get("/api/contacts", &s.admin).await;
    assert_eq!(status, StatusCode::OK);
    let before = resident_bytes();

    let basic = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("{}:", s.write_key))
    };
    let admin = format!("Authorization: Bearer {}\r\n", s.admin);
    let cases = [
        ("PUT /api/capacity HTTP/1.1\r\n".to_owned(), 401),
        ("POST /api/tasks/1/complete HTTP/1.1\r\n".to_owned(), 401),
        ("POST /api/tasks/1/skip HTTP/1.1\r\n".to_owned(), 401),
        ("POST /v1/batch HTTP/1.1\r\n".to_owned(), 413),
        ("POST /v1/track HTTP/1.1\r\n".to_owned(), 413),
        ("POST /unsubscribe/abc HTTP/1.1\r\n".to_owned(), 404),
        ("GET /metrics HTTP/1.1\r\n".to_owned(), 401),
        (format!("PUT /api/capacity HTTP/1.1\r\n{admin}"), 413),
        (
            format!("POST /api/tasks/1/complete HTTP/1.1\r\n{admin}"),
            413,
        ),
        (
            format!("POST /v1/batch HTTP/1.1\r\nAuthorization: Basic {basic}\r\n"),
            413,
        ),
    ];
    for chunked in [false, true] {
        for (head, expected) in &cases {
            let status = send_huge(&s.base, head, chunked).await;
            assert_eq!(status, *expected, "{head} chunked={chunked}");
        }
    }
    let grown = resident_bytes().saturating_sub(before);
    assert!(
        grown < 20 * 1024 * 1024,
        "resident memory grew by {} MB",
        grown / 1024 / 1024
    );
}

#[tokio::test]
async fn html_pages_forbid_scripts_framing_and_referrers() {
    let s = start().await;
    s.lead_ann().await;
    let mail = &s.outbox_mails()[0];
    let start = mail.find("https://tend.example.com/unsubscribe/").unwrap();
    let link: String = mail[start..]
        .chars()
        .take_while(|c| !matches!(c, '>' | ',' | '"' | ')' | '\r' | '\n'))
        .collect();
    let valid = link.replace("https://tend.example.com", &s.base);
    let invalid = format!("{}/unsubscribe/forged", s.base);
    for (method, url) in [
        (Method::GET, &valid),
        (Method::GET, &invalid),
        (Method::POST, &invalid),
        (Method::POST, &valid),
    ] {
        let response = s.client.request(method.clone(), url).send().await.unwrap();
        let headers = response.headers().clone();
        let html = response.text().await.unwrap();
        assert!(html.starts_with("<!doctype html>"), "{method} {url}");
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(policy.starts_with("default-src 'none'"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert!(policy.contains("form-action 'self'"), "{policy}");
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["x-frame-options"], "DENY");
        // The page's one inline style is the one the policy's hash allows.
        let style = html
            .split("<style>")
            .nth(1)
            .and_then(|rest| rest.split("</style>").next())
            .unwrap();
        let hash = {
            use base64::Engine;
            use sha2::Digest;
            base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(style))
        };
        assert!(policy.contains(&format!("'sha256-{hash}'")), "{policy}");
    }
}
