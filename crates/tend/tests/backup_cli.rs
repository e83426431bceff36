//! `tend backup` beside a running server, and `tend restore` refusing while one holds
//! the database, then restoring once it has stopped; on a business made by `tend init`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

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

/// A running `tend serve`, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(dir: &Path) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("serve did not start: {line:?}"))
        .to_owned();
    (Server(child), address)
}

#[test]
fn backup_runs_beside_the_server_and_restore_waits_for_it_to_stop() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(tend(tmp.path(), &["init", "studio"]).status.success());
    let dir = tmp.path().join("studio");
    std::fs::write(
        dir.join("people.csv"),
        "email,name\nann@example.com,Ann\nbo@example.com,Bo\n",
    )
    .unwrap();
    let (server, address) = serve(&dir);
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
    let (_server, _) = serve(&dir);
}
