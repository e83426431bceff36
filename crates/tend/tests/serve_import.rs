//! The real `tend` binary: init a business, create tokens, serve on port 0, feed it,
//! import CSV files — as a new user would.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;
use tend_testkit::Serve;

fn tend(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run tend")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A business from `tend init`, with a write key and an admin token.
struct Business {
    kit: tend_testkit::Business,
    dir: PathBuf,
    write_key: String,
    admin: String,
}

impl Business {
    fn new() -> Business {
        let kit = tend_testkit::Business::init(env!("CARGO_BIN_EXE_tend"));
        Business {
            dir: kit.dir().to_owned(),
            write_key: kit.token("write"),
            admin: kit.token("admin"),
            kit,
        }
    }

    fn serve(&self) -> Serve {
        self.kit.serve()
    }
}

#[tokio::test]
async fn a_new_business_serves_segment_ingest_and_the_api() {
    let business = Business::new();
    let server = business.serve();
    tend_engine::webhook::install_crypto_provider();
    let client = reqwest::Client::new();
    let health = client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let identify =
        json!({ "userId": "u-42", "traits": { "email": "ann@example.com", "name": "Ann Smith" } });
    let response = client
        .post(format!("{}/v1/identify", server.base))
        .basic_auth(&business.write_key, Some(""))
        .json(&identify)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The starter maps "Order Completed" to the customer stage.
    let track = json!({ "userId": "u-42", "event": "Order Completed" });
    let response = client
        .post(format!("{}/v1/track", server.base))
        .basic_auth(&business.write_key, Some(""))
        .json(&track)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let page: Value = client
        .get(format!("{}/api/contacts?q=ann", server.base))
        .bearer_auth(&business.admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["contacts"][0]["email"], "ann@example.com");
    assert_eq!(page["contacts"][0]["stage"], "customer");

    let processes: Value = client
        .get(format!("{}/api/processes", server.base))
        .bearer_auth(&business.admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let processes = processes["processes"].as_array().unwrap();
    assert!(processes.len() >= 2, "{processes:?}");
    assert!(
        processes
            .iter()
            .any(|p| p["steps"].as_array().is_some_and(|s| s.len() >= 9))
    );
}

#[test]
fn serve_refuses_an_invalid_project_and_says_where() {
    let business = Business::new();
    let config = business.dir.join("tend.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replacen("[business]", "[business]\nmood = \"sunny\"", 1),
    )
    .unwrap();
    let out = tend(&business.dir, &["serve", "--listen", "127.0.0.1:0"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("tend.toml:"), "{}", stderr(&out));
    assert!(stderr(&out).contains("mood"), "{}", stderr(&out));
}

#[test]
fn token_create_rejects_an_unknown_scope() {
    let business = Business::new();
    let out = tend(
        &business.dir,
        &["token", "create", "--name", "x", "--scope", "root"],
    );
    assert!(!out.status.success());
    assert!(stdout(&out).is_empty());
    assert!(stderr(&out).contains("root"), "{}", stderr(&out));
}

#[test]
fn import_reports_bad_rows_by_line_and_keeps_the_good_ones() {
    let business = Business::new();
    let csv = business.dir.join("people.csv");
    std::fs::write(
        &csv,
        "email,name,stage,timezone,city\n\
         ann@example.com,Ann,lead,Europe/Rome,Milan\n\
         not-an-email,Bob,lead,Europe/Rome,\n\
         cat@example.com,Cat,wizard,Europe/Rome,\n\
         dan@example.com,Dan,lead,Mars/Olympus,\n\
         eve@example.com,Eve,,,Turin\n\
         ANN@example.com,Ann again,lead,,\n",
    )
    .unwrap();
    let out = tend(&business.dir, &["import", "contacts", "people.csv"]);
    assert!(
        !out.status.success(),
        "rejected rows make the exit non-zero"
    );
    let errors = stderr(&out);
    assert!(
        errors.contains("people.csv:3: `not-an-email` is not an email address"),
        "{errors}"
    );
    assert!(
        errors.contains("people.csv:4: unknown stage `wizard`"),
        "{errors}"
    );
    assert!(
        errors.contains("people.csv:5: `Mars/Olympus` is not a known IANA time zone"),
        "{errors}"
    );
    assert!(
        errors.contains("people.csv:7: ann@example.com is already on line 2"),
        "{errors}"
    );
    assert!(stdout(&out).contains("imported 2 rows"), "{}", stdout(&out));

    let again = tend(&business.dir, &["import", "contacts", "people.csv"]);
    assert!(
        stdout(&again).contains("0 new, 0 updated, 2 unchanged"),
        "{}",
        stdout(&again)
    );

    let good = business.dir.join("good.csv");
    std::fs::write(&good, "email,name\nfay@example.com,Fay\n").unwrap();
    let out = tend(&business.dir, &["import", "contacts", "good.csv"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("1 new"), "{}", stdout(&out));
}

#[test]
fn import_without_an_email_column_is_refused() {
    let business = Business::new();
    std::fs::write(business.dir.join("bad.csv"), "name,stage\nAnn,lead\n").unwrap();
    let out = tend(&business.dir, &["import", "contacts", "bad.csv"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("bad.csv:1: missing column `email`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_hundred_thousand_rows_import_and_reimport_unchanged() {
    let business = Business::new();
    let path = business.dir.join("big.csv");
    let mut text = String::from("email,name,stage,timezone,source\n");
    for i in 0..100_000 {
        text.push_str(&format!(
            "person{i}@example.com,Person {i},lead,Europe/Rome,fair\n"
        ));
    }
    std::fs::write(&path, text).unwrap();
    let out = tend(&business.dir, &["import", "contacts", "big.csv"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("100000 new"), "{}", stdout(&out));
    let again = tend(&business.dir, &["import", "contacts", "big.csv"]);
    assert!(
        stdout(&again).contains("0 new, 0 updated, 100000 unchanged"),
        "{}",
        stdout(&again)
    );
}

#[tokio::test]
async fn tokens_are_listed_refused_twice_and_revoked_while_the_server_runs() {
    let business = Business::new();
    let again = tend(
        &business.dir,
        &["token", "create", "--name", "write", "--scope", "admin"],
    );
    assert!(!again.status.success(), "a second token named `write`");
    assert!(stdout(&again).is_empty());
    assert!(stderr(&again).contains("`write`"), "{}", stderr(&again));

    let server = business.serve();
    tend_engine::webhook::install_crypto_provider();
    let client = reqwest::Client::new();
    let track = |key: &str| {
        client
            .post(format!("{}/v1/track", server.base))
            .basic_auth(key, Some(""))
            .json(&json!({ "userId": "u-1", "event": "Clicked" }))
            .send()
    };
    assert_eq!(track(&business.write_key).await.unwrap().status(), 200);

    let listed = tend(&business.dir, &["token", "list"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let lines: Vec<Vec<String>> = stdout(&listed)
        .lines()
        .map(|l| {
            l.split("  ")
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    assert_eq!(lines[0], ["NAME", "SCOPE", "CREATED", "LAST USED"]);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(&lines[1][..2], ["admin", "admin"]);
    assert_eq!(lines[1][3], "never");
    assert_eq!(&lines[2][..2], ["write", "write"]);
    assert!(lines[2][3].ends_with("UTC"), "used just now: {lines:?}");
    assert!(
        !stdout(&listed).contains(&business.write_key),
        "no secret is shown"
    );

    let revoked = tend(&business.dir, &["token", "revoke", "write"]);
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    // The running server refuses it on the very next request.
    assert_eq!(track(&business.write_key).await.unwrap().status(), 401);
    let unknown = tend(&business.dir, &["token", "revoke", "write"]);
    assert!(!unknown.status.success());
    assert!(stderr(&unknown).contains("no token named `write`"));
}

#[test]
fn sigterm_stops_the_server_within_its_grace_while_clients_hold_sockets_open() {
    use std::io::Write;
    let business = Business::new();
    let config = business.dir.join("tend.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("header_timeout = \"10s\"", "header_timeout = \"1h\"")
        .replace("shutdown_grace = \"10s\"", "shutdown_grace = \"1s\"");
    assert!(
        text.contains("shutdown_grace = \"1s\""),
        "the starter sets [http]"
    );
    std::fs::write(&config, text).unwrap();
    let mut server = business.serve();
    let address = server.address().to_owned();
    let _idle = std::net::TcpStream::connect(&address).unwrap();
    let mut half_sent = std::net::TcpStream::connect(&address).unwrap();
    half_sent
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: te")
        .unwrap();

    server.sigterm();
    let status = server.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "{status:?}");
}
