//! `tend backup` beside a running server, and `tend restore` refusing while one holds
//! the database, then restoring once it has stopped; on a business made by `tend init`.

use std::path::Path;
use std::process::{Command, Output};

fn tend(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run tend")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn backup_runs_beside_the_server_and_restore_waits_for_it_to_stop() {
    let business = tend_testkit::Business::init(env!("CARGO_BIN_EXE_tend"));
    let dir = business.dir().to_owned();
    std::fs::write(
        dir.join("people.csv"),
        "email,name\nann@example.com,Ann\nbo@example.com,Bo\n",
    )
    .unwrap();
    let server = business.serve();
    let address = server.base.clone();
    let import = tend(&dir, &["import", "contacts", "people.csv"]);
    assert!(import.status.success(), "{}", stderr(&import));

    let backup = tend(&dir, &["backup", "nightly.tend"]);
    assert!(backup.status.success(), "{}", stderr(&backup));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("nightly.tend"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = tend(&dir, &["backup", "nightly.tend"]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("--force"), "{}", stderr(&again));
    assert!(
        tend(&dir, &["backup", "nightly.tend", "--force"])
            .status
            .success()
    );

    let refused = tend(&dir, &["restore", "nightly.tend"]);
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(message.contains("already running"), "{message}");
    assert!(message.contains(&address), "{message}");
    assert!(message.contains("nothing was changed"), "{message}");
    assert!(!dir.join("tend.db.before-restore").exists());

    drop(server);
    // A contact added after the backup is gone once it is restored.
    std::fs::write(dir.join("late.csv"), "email\nlate@example.com\n").unwrap();
    assert!(
        tend(&dir, &["import", "contacts", "late.csv"])
            .status
            .success()
    );
    let restored = tend(&dir, &["restore", "nightly.tend"]);
    assert!(restored.status.success(), "{}", stderr(&restored));
    assert!(
        stderr(&restored).contains("2 contacts"),
        "{}",
        stderr(&restored)
    );
    assert!(dir.join("tend.db.before-restore").exists());
    let _server = business.serve();
}
