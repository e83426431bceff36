//! One engine per database: a second `tend serve` on the same file refuses to start and
//! names the running one; CLI writers keep working beside it; a killed server's lock
//! does not block a restart. And the files `tend init` and `tend serve` write are the
//! owner's only.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn tend(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run tend")
}

fn business() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let init = tend(tmp.path(), &["init", "studio"]);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let dir = tmp.path().join("studio");
    (tmp, dir)
}

fn spawn_serve(dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Starts a server and returns it with the address it printed.
fn serve(dir: &Path) -> (Child, String) {
    let mut child = spawn_serve(dir);
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("serve did not start: {line:?}"))
        .to_owned();
    (child, address)
}

/// Waits for a process that should exit on its own; kills it and fails if it does not.
fn exits(mut child: Child) -> (std::process::ExitStatus, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            return (status, stderr);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the second server kept running beside the first");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_second_server_on_the_same_database_refuses_to_start_and_names_the_first() {
    let (_tmp, dir) = business();
    let (mut first, address) = serve(&dir);

    let (status, stderr) = exits(spawn_serve(&dir));
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("already running"), "{stderr}");
    assert!(stderr.contains(&format!("pid {}", first.id())), "{stderr}");
    assert!(stderr.contains(&address), "{stderr}");

    // CLI writers work beside the running server.
    std::fs::write(dir.join("people.csv"), "email,name\nann@example.com,Ann\n").unwrap();
    let import = tend(&dir, &["import", "contacts", "people.csv"]);
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let token = tend(
        &dir,
        &["token", "create", "--name", "site", "--scope", "write"],
    );
    assert!(token.status.success());

    // Killed without a chance to clean up: the lock goes with the process.
    first.kill().unwrap();
    first.wait().unwrap();
    let (mut again, _) = serve(&dir);
    let _ = again.kill();
    let _ = again.wait();
}

#[cfg(unix)]
#[test]
fn the_config_and_the_database_are_the_owners_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let (_tmp, dir) = business();
    assert_eq!(mode(&dir.join("tend.toml")), 0o600);
    let (mut server, _) = serve(&dir);
    for file in ["tend.db", "tend.db-wal", "tend.db-shm", "tend.db.lock"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    let _ = server.kill();
    let _ = server.wait();
}
