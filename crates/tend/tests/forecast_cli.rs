//! `tend forecast` on a business made by `tend init` with imported leads: text and
//! JSON, and its options checked.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn tend(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run tend")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn forecast_prints_the_coming_weeks_and_leaves_the_business_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let init = tend(tmp.path(), &["init", "studio"]);
    assert!(init.status.success(), "{}", text(&init.stderr));
    let dir = tmp.path().join("studio");
    let mut csv = String::from("email,name,stage,timezone\n");
    for n in 0..40 {
        csv.push_str(&format!("lead{n}@example.com,Lead {n},lead,Europe/Rome\n"));
    }
    std::fs::write(dir.join("leads.csv"), csv).unwrap();
    let import = tend(&dir, &["import", "contacts", "leads.csv"]);
    assert!(import.status.success(), "{}", text(&import.stderr));

    let out = tend(&dir, &["forecast", "--weeks", "2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(
        printed.contains("Forecast of the next 2 weeks"),
        "{printed}"
    );
    assert!(printed.contains("emails         per day"), "{printed}");
    assert!(printed.contains("keep every promise"), "{printed}");

    let out = tend(&dir, &["forecast", "--weeks", "2", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["days"].as_array().unwrap().len(), 14);
    // The forty imported leads enroll in the copy and are welcomed there.
    let emails: u64 = json["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["emails"].as_u64().unwrap())
        .sum();
    assert!(emails >= 40, "{}", json["days"]);
    // Nothing was sent from the live business.
    assert!(
        !dir.join("outbox").exists() || std::fs::read_dir(dir.join("outbox")).unwrap().count() == 0
    );

    let bad = tend(&dir, &["forecast", "--weeks", "0"]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("--weeks"),
        "{}",
        text(&bad.stderr)
    );
}
