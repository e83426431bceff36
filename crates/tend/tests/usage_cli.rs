//! The command line as a whole, run as the real binary: every command takes `--config`,
//! a bad argument anywhere is a usage error (exit 2) told in one `error:` line naming
//! the argument, a failure is told once, and `--date` takes today, tomorrow or a date.

use std::path::Path;
use std::process::Output;
use tend_testkit::serve::{Business, run};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The lines of standard error that report an error.
fn error_lines(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter(|line| line.starts_with("error:"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_bad_argument_to_any_command_is_a_usage_error_naming_it() {
    let business = Business::init(env!("CARGO_BIN_EXE_tend"));
    // (the command, what its one error line must name)
    let cases: &[(&[&str], &str)] = &[
        (&["init", "--bogus"], "--bogus"),
        (&["check", "no-such-folder"], "[DIR]"),
        (&["check", "--config", "missing.toml"], "--config"),
        (&["check", ".", "--config", "tend.toml"], "--config"),
        (&["serve", "--listen", "7070"], "--listen"),
        (&["serve", "--config", "missing.toml"], "--config"),
        (&["agenda", "--date", "yesterday"], "--date"),
        (&["agenda", "--date", "2026-02-30"], "--date"),
        (&["agenda", "--config", "missing.toml"], "--config"),
        (&["report", "funnel", "--days", "0"], "--days"),
        (&["report", "everything"], "<REPORT>"),
        (&["simulate", "missing.toml"], "<SCENARIO>"),
        (&["simulate", "scenario.toml", "--seeds", "8..1"], "--seeds"),
        (&["forecast", "--weeks", "99"], "--weeks"),
        (&["forecast", "--config", "."], "--config"),
        (&["backup"], "<FILE>"),
        (&["restore", "missing.db"], "<FILE>"),
        (&["doctor", "--listen", "nowhere"], "--listen"),
        (&["import", "contacts", "missing.csv"], "<FILE>"),
        (&["import", "contacts"], "<FILE>"),
        (
            &["token", "create", "--name", "site", "--scope", "bogus"],
            "--scope",
        ),
        (&["token", "create", "--name", "  "], "--name"),
        (&["token", "list", "--config", "missing.toml"], "--config"),
        (&["token", "revoke"], "<NAME>"),
        (
            &["user", "add", "not-an-address", "--role", "owner"],
            "<EMAIL>",
        ),
        (
            &["user", "add", "ann@example.com", "--role", "boss"],
            "--role",
        ),
        (&["nonsense"], "nonsense"),
    ];
    for (args, named) in cases {
        let out = business.tend(args);
        let shown = args.join(" ");
        assert_eq!(
            out.status.code(),
            Some(2),
            "tend {shown}: exit code; stderr:\n{}",
            stderr(&out)
        );
        let errors = error_lines(&out);
        assert_eq!(
            errors.len(),
            1,
            "tend {shown}: one error line, got:\n{}",
            stderr(&out)
        );
        assert!(
            errors[0].contains(named),
            "tend {shown}: the error does not name {named}: {}",
            errors[0]
        );
        assert!(stdout(&out).is_empty(), "tend {shown}: {}", stdout(&out));
    }
    // Nothing was created by the refused commands.
    assert!(!business.dir().join("tend.db").exists());
}

#[test]
fn a_failure_is_told_once() {
    let business = Business::init(env!("CARGO_BIN_EXE_tend"));
    // An IO error under a context that already quotes it.
    assert!(business.tend(&["token", "list"]).status.success());
    let out = business.tend(&["backup", "no-such-folder/snapshot.db"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "{}", stderr(&out));
    assert!(
        errors[0].contains("no-such-folder/snapshot.db"),
        "{}",
        errors[0]
    );
    assert_eq!(
        errors[0].matches("No such file or directory").count(),
        1,
        "{}",
        errors[0]
    );

    // A scenario whose project is missing: the command's own message, once.
    std::fs::write(
        business.scratch().join("elsewhere.toml"),
        "project = \"nowhere\"\n",
    )
    .unwrap();
    let out = business.tend(&["simulate", "../elsewhere.toml"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(error_lines(&out).len(), 1, "{}", stderr(&out));
}

#[test]
fn every_command_takes_config_and_check_keeps_its_folder() {
    let business = Business::init(env!("CARGO_BIN_EXE_tend"));
    let outside = business.scratch();
    let config = business.dir().join("tend.toml");
    let config = config.to_str().unwrap();
    for args in [
        vec!["check", "--config", config],
        vec!["check", "studio"],
        vec!["agenda", "--config", config],
        vec!["report", "pace", "--config", config],
        vec!["token", "list", "--config", config],
        vec![
            "forecast",
            "--weeks",
            "1",
            "--history",
            "1",
            "--config",
            config,
        ],
    ] {
        let out = run(Path::new(env!("CARGO_BIN_EXE_tend")), outside, &args);
        assert!(
            out.status.success(),
            "tend {}: {}",
            args.join(" "),
            stderr(&out)
        );
    }
}

#[test]
fn agenda_dates_are_today_tomorrow_or_a_day() {
    let business = Business::init(env!("CARGO_BIN_EXE_tend"));
    let tz = jiff::tz::TimeZone::get("Europe/Rome").unwrap();
    let heading = |args: &[&str]| {
        let out = business.tend(args);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out).lines().next().unwrap_or_default().to_owned()
    };
    // The day may turn between reading the clock and running the command.
    let days = |shift: i64| {
        let before = jiff::Timestamp::now().to_zoned_datetime(tz.clone()).date();
        let after = jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_secs(60))
            .unwrap()
            .to_zoned_datetime(tz.clone())
            .date();
        [before, after].map(|d| {
            d.checked_add(jiff::Span::new().days(shift))
                .unwrap()
                .strftime("%Y-%m-%d")
                .to_string()
        })
    };
    let today = heading(&["agenda", "--date", "today"]);
    assert!(days(0).iter().any(|d| today.contains(d)), "{today}");
    assert_eq!(heading(&["agenda"]), today);
    let tomorrow = heading(&["agenda", "--date", "TOMORROW"]);
    assert!(days(1).iter().any(|d| tomorrow.contains(d)), "{tomorrow}");
    let fixed = heading(&["agenda", "--date", "2027-03-01"]);
    assert!(fixed.starts_with("Agenda for Mon 2027-03-01"), "{fixed}");
}
