//! Bad input at the two doors contacts come in by — `tend import contacts` and the
//! Segment API of `tend serve` — named by file and line or by field, with nothing
//! half-written. Real files, the real binary.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

/// A business from `tend init`.
struct Business {
    kit: tend_testkit::Business,
    dir: PathBuf,
}

impl Business {
    fn new() -> Business {
        let kit = tend_testkit::Business::init(env!("CARGO_BIN_EXE_tend"));
        Business {
            dir: kit.dir().to_owned(),
            kit,
        }
    }

    fn import(&self, name: &str, contents: &[u8]) -> Output {
        std::fs::write(self.dir.join(name), contents).unwrap();
        tend(&self.dir, &["import", "contacts", name])
    }

    fn token(&self, scope: &str) -> String {
        self.kit.token(scope)
    }
}

/// The lines of stderr that name a place in `file`.
fn rejections(output: &Output, file: &str) -> Vec<String> {
    stderr(output)
        .lines()
        .filter(|l| l.starts_with(&format!("{file}:")))
        .map(str::to_owned)
        .collect()
}

#[test]
fn errors_in_a_crlf_file_name_the_right_lines() {
    let business = Business::new();
    let out = business.import(
        "crlf.csv",
        b"email,name,stage\r\nann@example.com,Ann,lead\r\nnot-an-email,Bob,lead\r\ncat@example.com,Cat,wizard\r\n",
    );
    assert!(!out.status.success());
    assert_eq!(
        rejections(&out, "crlf.csv"),
        [
            "crlf.csv:3: `not-an-email` is not an email address: it has no `@`",
            "crlf.csv:4: unknown stage `wizard` (known: prospect, lead, customer, loyal, lapsed)",
        ]
    );
    assert!(stdout(&out).contains("1 new"), "{}", stdout(&out));
}

#[test]
fn errors_after_a_quoted_multi_line_field_name_the_line_the_row_starts_on() {
    let business = Business::new();
    for (file, newline) in [("lf.csv", "\n"), ("crlf.csv", "\r\n")] {
        let text = [
            "email,name,notes",
            "ann@example.com,Ann,\"first line",
            "second line",
            "third line\"",
            "bad@,Bob,one line",
            "cat@example.com,\"Cat",
            "Smith\",x",
            "dan@example.com,Dan,\"a,b\"\"c\",extra",
            "",
        ]
        .join(newline);
        let out = business.import(file, text.as_bytes());
        assert!(!out.status.success());
        assert_eq!(
            rejections(&out, file),
            [
                format!("{file}:5: `bad@` is not an email address: nothing after the `@`"),
                format!("{file}:8: expected 3 fields, found 4"),
            ],
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn addresses_the_sender_would_refuse_are_rejected_at_import() {
    let business = Business::new();
    let out = business.import(
        "people.csv",
        b"email,name\n.dot..x@example.com,Dot\nok@example.com,Ok\nx@exa_mple.com,Underscore\n",
    );
    assert!(!out.status.success());
    assert_eq!(
        rejections(&out, "people.csv"),
        [
            "people.csv:2: `.dot..x@example.com` is not an email address: the part before the `@` starts or ends with a dot, or has two in a row",
            "people.csv:4: `x@exa_mple.com` is not an email address: the domain may hold only letters, digits, dots and hyphens, and each part must start and end with a letter or digit",
        ]
    );
    assert!(stdout(&out).contains("1 new"), "{}", stdout(&out));
}

#[test]
fn an_oversized_field_rejects_its_row_and_writes_nothing_of_it() {
    let business = Business::new();
    let huge = "x".repeat(40 * 1024);
    let text = format!(
        "email,name,notes\nann@example.com,Ann,{huge}\nbob@example.com,{huge},short\ncat@example.com,Cat,short\n"
    );
    let out = business.import("big.csv", text.as_bytes());
    assert!(!out.status.success());
    assert_eq!(
        rejections(&out, "big.csv"),
        [
            "big.csv:2: `notes` is 40960 bytes long; a field may hold at most 32768",
            "big.csv:3: `name` is 40960 bytes long; a field may hold at most 32768",
        ]
    );
    assert!(stdout(&out).contains("1 new"), "{}", stdout(&out));
    // Re-importing with the fields fixed adds Ann and Bob as new contacts: nothing of
    // theirs was written the first time.
    let out = business.import(
        "fixed.csv",
        b"email,name,notes\nann@example.com,Ann,ok\nbob@example.com,Bob,ok\ncat@example.com,Cat,short\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("2 new, 0 updated, 1 unchanged"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test]
async fn segment_ingest_refuses_an_address_the_sender_would_refuse() {
    let business = Business::new();
    let write_key = business.token("write");
    let admin = business.token("admin");
    let server = business.kit.serve();
    tend_engine::webhook::install_crypto_provider();
    let client = reqwest::Client::new();
    for address in [".dot..x@example.com", "a..b@example.com", "x@exa_mple.com"] {
        let response = client
            .post(format!("{}/v1/identify", server.base))
            .basic_auth(&write_key, Some(""))
            .json(&json!({ "userId": "u-1", "traits": { "email": address } }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{address}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["field"], "traits.email", "{address}: {body}");
    }
    let page: Value = client
        .get(format!("{}/api/contacts", server.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["contacts"], json!([]), "nothing was written");
}

#[test]
fn an_endless_row_stops_the_import_there_keeping_the_rows_before() {
    let business = Business::new();
    let mut text =
        String::from("email,name,notes\nann@example.com,Ann,short\nbob@example.com,Bob,\"");
    text.push_str(&"y".repeat(5 << 20));
    text.push_str("\"\ncat@example.com,Cat,short\n");
    let out = business.import("endless.csv", text.as_bytes());
    assert!(!out.status.success());
    assert_eq!(
        rejections(&out, "endless.csv"),
        [
            "endless.csv:3: this row is longer than 4194304 bytes; it and the rest of the file were not read"
        ]
    );
    assert!(stdout(&out).contains("1 new"), "{}", stdout(&out));
}

#[test]
fn a_bad_enroll_choice_exits_2_naming_it() {
    let business = Business::new();
    std::fs::write(business.dir.join("people.csv"), "email\nann@example.com\n").unwrap();
    for bad in ["later", "spread:14", "spread:0d"] {
        let out = tend(
            &business.dir,
            &["import", "contacts", "people.csv", "--enroll", bad],
        );
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(stderr(&out).contains("--enroll"), "{}", stderr(&out));
        assert!(stderr(&out).contains(bad), "{}", stderr(&out));
    }
}

#[tokio::test]
async fn a_spread_import_starts_each_row_at_its_own_instant_across_the_days() {
    let business = Business::new();
    let mut csv = String::from("email,name,stage\n");
    for i in 0..10 {
        csv.push_str(&format!("lead{i}@example.com,Lead {i},lead\n"));
    }
    csv.push_str("not-an-email,Nobody,lead\n");
    std::fs::write(business.dir.join("people.csv"), csv).unwrap();
    let before = jiff::Timestamp::now();
    let out = tend(
        &business.dir,
        &["import", "contacts", "people.csv", "--enroll", "spread:10d"],
    );
    let after = jiff::Timestamp::now();
    assert_eq!(out.status.code(), Some(1), "a row was rejected");
    assert!(stdout(&out).contains("10 new"), "{}", stdout(&out));
    assert!(stdout(&out).contains("spread over 10d"), "{}", stdout(&out));

    // The engine reads each new contact's stage change with its own start, a day
    // apart in file order (the bad row takes no place in the spread).
    let store = tend_store_sqlite::SqliteStore::open(&business.dir.join("tend.db"))
        .await
        .unwrap();
    let batch = tend_store::Store::read_signals(&store, Default::default(), &[], 100)
        .await
        .unwrap();
    let starts: Vec<jiff::Timestamp> = batch
        .signals
        .iter()
        .map(|signal| match signal {
            tend_store::Signal::StageEntered {
                enrollment: tend_store::StageEnrollment::NotBefore(start),
                ..
            } => *start,
            other => panic!("expected a spread stage change, got {other:?}"),
        })
        .collect();
    assert_eq!(starts.len(), 10);
    assert!(starts[0] >= before && starts[0] <= after, "{starts:?}");
    for (i, start) in starts.iter().enumerate() {
        assert_eq!(
            *start,
            starts[0] + jiff::SignedDuration::from_hours(24 * i as i64),
            "row {i}"
        );
    }

    // `none` records changes that enroll nobody.
    std::fs::write(
        business.dir.join("more.csv"),
        "email,stage\nmore@example.com,lead\n",
    )
    .unwrap();
    let out = tend(
        &business.dir,
        &["import", "contacts", "more.csv", "--enroll", "none"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("nobody was enrolled"),
        "{}",
        stdout(&out)
    );
    let batch = tend_store::Store::read_signals(&store, batch.next, &[], 100)
        .await
        .unwrap();
    assert!(
        matches!(
            batch.signals.as_slice(),
            [tend_store::Signal::StageEntered {
                enrollment: tend_store::StageEnrollment::No,
                ..
            }]
        ),
        "{:?}",
        batch.signals
    );
}
