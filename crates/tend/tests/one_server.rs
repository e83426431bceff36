//! One engine per database: a second `tend serve` on the same file refuses to start and
//! names the running one; CLI writers keep working beside it; a killed server's lock
//! does not block a restart. And the files `tend init` and `tend serve` write are the
//! owner's only.

use std::path::Path;
use std::time::Duration;
use tend_testkit::Business;

fn business() -> Business {
    Business::init(env!("CARGO_BIN_EXE_tend"))
}

#[test]
fn a_second_server_on_the_same_database_refuses_to_start_and_names_the_first() {
    let business = business();
    let dir = business.dir();
    let mut first = business.serve();

    let (status, stderr) = business.serve_expecting_exit(Duration::from_secs(30));
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("already running"), "{stderr}");
    assert!(stderr.contains(&format!("pid {}", first.pid())), "{stderr}");
    assert!(stderr.contains(&first.base), "{stderr}");

    // CLI writers work beside the running server.
    std::fs::write(dir.join("people.csv"), "email,name\nann@example.com,Ann\n").unwrap();
    let import = business.tend(&["import", "contacts", "people.csv"]);
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let token = business.tend(&["token", "create", "--name", "site", "--scope", "write"]);
    assert!(token.status.success());

    // Killed without a chance to clean up: the lock goes with the process.
    first.kill_hard();
    let _again = business.serve();
}

#[cfg(unix)]
#[test]
fn the_config_and_the_database_are_the_owners_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let business = business();
    let dir = business.dir();
    assert_eq!(mode(&dir.join("tend.toml")), 0o600);
    let _server = business.serve();
    for file in ["tend.db", "tend.db-wal", "tend.db-shm", "tend.db.lock"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
}
