//! `tend user add` as the real binary over a real SQLite file: the password read from
//! standard input and stored as an argon2id hash that logs in, a short or missing
//! password refused with nothing changed, a second run resetting role and password and
//! ending the person's sessions, and a bad role a usage error (exit 2) naming it.

use jiff::{SignedDuration, Timestamp};
use std::process::Output;
use tend_store::{ConsoleStore, Role};
use tend_store_sqlite::SqliteStore;
use tend_testkit::serve::Business;
use tend_web::console::session::verify_password;

const ANN: &str = "ann@example.com";
const PASSWORD: &str = "correct horse battery";

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn add(business: &Business, email: &str, role: &str, stdin: &str) -> Output {
    business.tend_with_input(&["user", "add", email, "--role", role], stdin.as_bytes())
}

async fn store(business: &Business) -> SqliteStore {
    SqliteStore::open(&business.dir().join("tend.db"))
        .await
        .unwrap()
}

#[tokio::test]
async fn the_password_comes_from_stdin_is_stored_hashed_and_a_second_run_resets_it() {
    let business = Business::init(env!("CARGO_BIN_EXE_tend"));

    let out = add(
        &business,
        "Ann@Example.com",
        "owner",
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("owner ann@example.com added"),
        "{}",
        stderr(&out)
    );
    let db = store(&business).await;
    let ann = db.user_by_email(ANN).await.unwrap().expect("Ann is stored");
    assert_eq!(ann.role, Role::Owner);
    assert!(
        ann.password_hash.starts_with("$argon2id$"),
        "hashed, not clear"
    );
    assert!(!ann.password_hash.contains(PASSWORD));
    assert!(verify_password(PASSWORD, &ann.password_hash));
    assert!(!verify_password("correct horse", &ann.password_hash));

    // Too short, or nothing on stdin: refused, and the stored password still works.
    for (typed, says) in [
        ("short\n", "the password has 5 characters; use at least 10"),
        ("", "the password has 0 characters"),
    ] {
        let out = add(&business, ANN, "owner", typed);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
    }
    let unchanged = db.user_by_email(ANN).await.unwrap().unwrap();
    assert_eq!(unchanged.password_hash, ann.password_hash);

    // A logged-in session, then a second run: new role and password, sessions ended.
    let now = Timestamp::now();
    db.create_session(
        ann.id,
        "session-hash",
        "csrf",
        now,
        now.saturating_add(SignedDuration::from_hours(1)).unwrap(),
    )
    .await
    .unwrap();
    assert!(db.session("session-hash", now).await.unwrap().is_some());
    let out = add(&business, ANN, "staff", "another long password\r\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("staff ann@example.com updated (their sessions ended)"),
        "{}",
        stderr(&out)
    );
    let ann = db.user_by_email(ANN).await.unwrap().unwrap();
    assert_eq!(ann.role, Role::Staff);
    assert!(verify_password("another long password", &ann.password_hash));
    assert!(!verify_password(PASSWORD, &ann.password_hash));
    assert!(db.session("session-hash", now).await.unwrap().is_none());
    assert_eq!(
        db.list_users().await.unwrap().len(),
        1,
        "updated, not added"
    );
}

#[test]
fn a_bad_role_is_a_usage_error_naming_the_choices() {
    let business = Business::init(env!("CARGO_BIN_EXE_tend"));
    let out = add(&business, ANN, "boss", &format!("{PASSWORD}\n"));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(text.contains("'boss'") && text.contains("--role"), "{text}");
    assert!(text.contains("owner") && text.contains("staff"), "{text}");
    assert!(!business.dir().join("tend.db").exists(), "nothing created");
}
