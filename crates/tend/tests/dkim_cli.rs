//! `tend check` and `tend serve` with a DKIM key configured: a key file that cannot
//! be read or used is an error at the `dkim_key_file` key, naming the file and never
//! its contents; a good one checks clean.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use tempfile::TempDir;

fn tend(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(args)
        .current_dir(cwd)
        .env_remove("TEND_SMTP_URL")
        .output()
        .expect("the tend binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A starter business whose `[channels.email]` names `key_file` as its DKIM key; the
/// line and column of the value in `tend.toml`.
fn business_with_dkim(tmp: &TempDir, key_file: &str) -> (usize, usize) {
    assert!(tend(&["init", "biz"], tmp.path()).status.success());
    let config = tmp.path().join("biz/tend.toml");
    let text = fs::read_to_string(&config).unwrap();
    let anchor = "[channels.email]\n";
    let at = text.find(anchor).expect("starter has [channels.email]") + anchor.len();
    let keys = format!("dkim_selector = \"tend2026\"\ndkim_key_file = \"{key_file}\"\n");
    let edited = format!("{}{keys}{}", &text[..at], &text[at..]);
    fs::write(&config, &edited).unwrap();
    let line = edited[..at].lines().count() + 2;
    (line, "dkim_key_file = ".len() + 1)
}

#[test]
fn a_missing_key_file_fails_check_and_serve_at_its_key() {
    let tmp = TempDir::new().unwrap();
    let (line, col) = business_with_dkim(&tmp, "keys/dkim.pem");
    let out = tend(&["check", "biz"], tmp.path());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "tend.toml:{line}:{col}: `dkim_key_file`: cannot read the DKIM key file"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("keys/dkim.pem"), "{stderr}");

    let out = tend(&["serve", "--config", "biz/tend.toml"], tmp.path());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("keys/dkim.pem"), "{stderr}");
    assert!(
        !tmp.path().join("biz/tend.db").exists(),
        "nothing is written"
    );
}

#[test]
fn a_file_that_is_no_key_fails_without_showing_its_contents() {
    let tmp = TempDir::new().unwrap();
    let (line, col) = business_with_dkim(&tmp, "dkim.pem");
    fs::write(
        tmp.path().join("biz/dkim.pem"),
        "-----BEGIN PRIVATE KEY-----\nhunter2hunter2\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    for args in [
        &["check", "biz"][..],
        &["serve", "--config", "biz/tend.toml"][..],
    ] {
        let out = tend(args, tmp.path());
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("dkim.pem"), "{args:?}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{args:?}: {stderr}");
        if args[0] == "check" {
            assert!(
                stderr.contains(&format!("tend.toml:{line}:{col}: `dkim_key_file`")),
                "{stderr}"
            );
        }
    }
}

#[test]
fn a_good_key_checks_clean() {
    let tmp = TempDir::new().unwrap();
    business_with_dkim(&tmp, "dkim.pem");
    let key = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tend-engine/tests/fixtures/dkim/ed25519.pem");
    fs::copy(key, tmp.path().join("biz/dkim.pem")).unwrap();
    let out = tend(&["check", "biz"], tmp.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
}
