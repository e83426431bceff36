//! `tend init` and `tend check`, run as the real binary on temporary folders.

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

/// Every file below `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(
                    path.strip_prefix(dir)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        }
    }
    out.sort();
    out
}

fn edit(path: &Path, from: &str, to: &str) {
    let old = fs::read_to_string(path).unwrap();
    assert!(old.contains(from), "{} has no `{from}`", path.display());
    fs::write(path, old.replacen(from, to, 1)).unwrap();
}

#[test]
fn init_writes_a_project_that_checks_clean() {
    let tmp = TempDir::new().unwrap();
    let out = tend(&["init", "studio"], tmp.path());
    assert!(out.status.success(), "init failed: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("tend check"), "{stdout}");
    assert!(stdout.contains("tend token create"), "{stdout}");
    assert!(stdout.contains("tend serve"), "{stdout}");

    let dir = tmp.path().join("studio");
    let files = files_under(&dir);
    assert!(files.contains(&"tend.toml".to_string()), "{files:?}");
    assert!(files.contains(&"processes/new-inquiry.toml".to_string()));
    assert!(files.contains(&"processes/customer.toml".to_string()));
    assert!(files.contains(&"processes/evergreen.toml".to_string()));
    assert!(files.contains(&"scenario.toml".to_string()), "{files:?}");
    assert!(stdout.contains("tend simulate"), "{stdout}");
    assert!(files.iter().filter(|f| f.starts_with("templates/")).count() >= 10);
    for file in &files {
        assert!(
            stdout.contains(file.as_str()),
            "{file} not listed in {stdout}"
        );
    }
    let config = fs::read_to_string(dir.join("tend.toml")).unwrap();
    assert!(config.contains("database_url = \"sqlite://tend.db\""));
    assert!(
        config.contains("# smtp_url"),
        "smtp_url must start commented out"
    );

    let out = tend(&["check", "studio"], tmp.path());
    assert!(out.status.success(), "check failed: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("ok: 3 processes, 36 steps, 26 templates"),
        "{stdout}"
    );
}

#[test]
fn init_and_check_default_to_the_current_folder() {
    let tmp = TempDir::new().unwrap();
    assert!(tend(&["init"], tmp.path()).status.success());
    assert!(tmp.path().join("tend.toml").is_file());
    let out = tend(&["check"], tmp.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn init_refuses_to_overwrite_and_writes_nothing() {
    let tmp = TempDir::new().unwrap();
    fs::write(tmp.path().join("tend.toml"), "mine").unwrap();
    let out = tend(&["init", "."], tmp.path());
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("tend.toml"), "{stderr}");
    assert!(stderr.contains("refusing to overwrite"), "{stderr}");
    assert_eq!(
        fs::read_to_string(tmp.path().join("tend.toml")).unwrap(),
        "mine"
    );
    assert_eq!(files_under(tmp.path()), ["tend.toml"]);

    // A single clashing file deep inside is enough to refuse everything.
    let tmp = TempDir::new().unwrap();
    fs::create_dir_all(tmp.path().join("templates")).unwrap();
    fs::write(tmp.path().join("templates/welcome.md"), "my welcome").unwrap();
    let out = tend(&["init", "."], tmp.path());
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("welcome.md"), "{stderr}");
    assert!(
        !stderr.contains("tend.toml"),
        "only clashing files are named: {stderr}"
    );
    assert_eq!(files_under(tmp.path()), ["templates/welcome.md"]);
    assert_eq!(
        fs::read_to_string(tmp.path().join("templates/welcome.md")).unwrap(),
        "my welcome"
    );
}

#[test]
fn a_broken_project_lists_every_error_with_its_position() {
    let tmp = TempDir::new().unwrap();
    assert!(tend(&["init", "biz"], tmp.path()).status.success());
    let dir = tmp.path().join("biz");
    edit(
        &dir.join("tend.toml"),
        "timezone = \"Europe/Rome\"",
        "timezone = \"Europe/Rom\"",
    );
    edit(
        &dir.join("tend.toml"),
        "min_gap = \"1d\"",
        "min_gap = \"3x\"",
    );
    edit(
        &dir.join("processes/new-inquiry.toml"),
        "email = \"how-we-work\"",
        "email = \"how-we-wrok\"",
    );
    edit(&dir.join("processes/customer.toml"), "minutes = 10\n", "");
    edit(
        &dir.join("templates/welcome.md"),
        "{{ business.name }}",
        "{{ bussiness.name }}",
    );
    edit(
        &dir.join("templates/referral.md"),
        "Know someone",
        "{% if %} Know someone",
    );

    let out = tend(&["check", "biz"], tmp.path());
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let expected = [
        "processes/customer.toml:45:1: step 6 is missing `minutes`",
        "processes/new-inquiry.toml:41:9: no template `how-we-wrok`: templates/how-we-wrok.md does not exist; did you mean `how-we-work`?",
        "templates/referral.md:1:16: template syntax:",
        "templates/welcome.md:5:34: unknown variable `bussiness.name`; did you mean `business.name`?",
        "tend.toml:16:12: `timezone`: `Europe/Rom` is not a known IANA time zone",
        "tend.toml:70:11: `min_gap`: duration `3x` has an unknown unit",
    ];
    for line in expected {
        assert!(
            stderr.lines().any(|l| l.starts_with(line)),
            "missing `{line}` in:\n{stderr}"
        );
    }
    let positioned = stderr
        .lines()
        .filter(|l| l.splitn(4, ':').count() == 4)
        .count();
    assert!(positioned >= expected.len(), "{stderr}");
    assert!(text(&out.stdout).is_empty());
}

#[test]
fn check_without_a_project_says_how_to_start() {
    let tmp = TempDir::new().unwrap();
    let out = tend(&["check", "."], tmp.path());
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("tend init"), "{stderr}");
}

#[test]
fn serve_refuses_a_database_it_cannot_open_and_keeps_the_password_out_of_the_error() {
    let tmp = TempDir::new().unwrap();
    assert!(tend(&["init", "biz"], tmp.path()).status.success());
    edit(
        &tmp.path().join("biz/tend.toml"),
        "database_url = \"sqlite://tend.db\"",
        // Port 1: nothing listens there.
        "database_url = \"postgres://tend:hunter2-secret@127.0.0.1:1/tend\"",
    );
    let out = tend(&["serve", "--config", "biz/tend.toml"], tmp.path());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("opening the database postgres://tend:***@127.0.0.1:1/tend")
            && stderr.contains("PostgreSQL at postgres://tend@127.0.0.1:1/tend"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "the password leaked: {stderr}");
    assert!(
        !tmp.path().join("biz/tend.db").exists(),
        "nothing is written"
    );
}

#[test]
fn check_warns_about_public_url_with_its_place_and_still_passes() {
    let tmp = TempDir::new().unwrap();
    assert!(tend(&["init", "biz"], tmp.path()).status.success());
    let config = tmp.path().join("biz/tend.toml");
    // The starter's http://127.0.0.1:7070: valid, but no one-click unsubscribe.
    let out = tend(&["check", "--config", "biz/tend.toml"], tmp.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0]
            .starts_with("tend.toml:10:14: warning: public_url http://127.0.0.1:7070 is not https")
            && lines[0].contains("RFC 8058"),
        "{stderr}"
    );
    assert!(
        text(&out.stdout).contains("(1 warning)"),
        "{}",
        text(&out.stdout)
    );

    // An https address, but the server moved to another port of the same host.
    edit(
        &config,
        "public_url = \"http://127.0.0.1:7070\"",
        "public_url = \"https://10.0.0.5:7070\"",
    );
    edit(
        &config,
        "listen = \"127.0.0.1:7070\"",
        "listen = \"10.0.0.5:8080\"",
    );
    let out = tend(&["check", "biz"], tmp.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let listen_line = fs::read_to_string(&config)
        .unwrap()
        .lines()
        .position(|l| l.starts_with("listen = "))
        .unwrap()
        + 1;
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        [format!(
            "tend.toml:{listen_line}:10: warning: unsubscribe links point at public_url \
             https://10.0.0.5:7070, but `tend serve` listens on 10.0.0.5:8080, so nothing \
             answers them there; make public_url the address contacts reach this server at, \
             or listen where it points"
        )],
    );

    // Behind a proxy with https: nothing to say. A bad listen address is an error.
    edit(
        &config,
        "public_url = \"https://10.0.0.5:7070\"",
        "public_url = \"https://tend.example.com\"",
    );
    edit(
        &config,
        "listen = \"10.0.0.5:8080\"",
        "listen = \"127.0.0.1:7070\"",
    );
    let out = tend(&["check", "biz"], tmp.path());
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stderr).is_empty(), "{}", text(&out.stderr));
    edit(
        &config,
        "listen = \"127.0.0.1:7070\"",
        "listen = \"localhost\"",
    );
    let out = tend(&["check", "biz"], tmp.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!(
            "tend.toml:{listen_line}:10: `listen`: `localhost` has no port"
        )),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn serve_warns_at_start_when_listen_moves_it_away_from_public_url() {
    // The starter's public_url is http://127.0.0.1:7070; the test server is elsewhere.
    let business = tend_testkit::Business::init(env!("CARGO_BIN_EXE_tend"));
    let server = business.serve();
    let log = server.log();
    let moved = format!(
        "unsubscribe links point at public_url http://127.0.0.1:7070, but `tend serve` \
         listens on {}",
        server.address()
    );
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains(&moved)),
        "{log}"
    );
    assert!(log.contains("RFC 8058"), "{log}");
}

#[test]
fn check_reads_the_mail_providers_secrets_and_points_at_the_key_naming_them() {
    let tmp = TempDir::new().unwrap();
    let out = tend(&["init", "studio"], tmp.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = tmp.path().join("studio");
    let config = dir.join("tend.toml");
    let mut text_of_config = fs::read_to_string(&config).unwrap();
    let line = text_of_config.lines().count() + 4;
    text_of_config.push_str(
        "\n[channels.email.providers.postmark]\nuser = \"postmark\"\npassword_env = \"TEND_TEST_POSTMARK_UNSET\"\n\
         [channels.email.providers.mailgun]\nsigning_key_file = \"mailgun.secret\"\n\
         [channels.email.providers.sendgrid]\npublic_key = \"bm90IGEga2V5\"\n",
    );
    fs::write(&config, &text_of_config).unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(["check", "studio"])
        .current_dir(tmp.path())
        .env_remove("TEND_TEST_POSTMARK_UNSET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        said.contains(&format!(
            "tend.toml:{line}:16: `password_env`: the environment variable TEND_TEST_POSTMARK_UNSET is not set"
        )),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "tend.toml:{}:20: `signing_key_file`: cannot read",
            line + 2
        )),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "tend.toml:{}:14: `public_key`: not an ECDSA P-256",
            line + 4
        )),
        "{said}"
    );

    // Set and present, the project checks clean and no secret is printed.
    fs::write(dir.join("mailgun.secret"), "key-supersecret\n").unwrap();
    edit(
        &config,
        "bm90IGEga2V5",
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEiyQ1+tQP4pXRtwNrQ9gAf/y5guVsv+ldRch0q0WXnyPp001PeiYSjoWD0ez8aFelQ8VoU1ChBsBoQPboD8tKRA==",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(["check", "studio"])
        .current_dir(tmp.path())
        .env("TEND_TEST_POSTMARK_UNSET", "pm-hunter2")
        .output()
        .unwrap();
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{said}");
    assert!(
        !said.contains("hunter2") && !said.contains("supersecret"),
        "{said}"
    );
}
