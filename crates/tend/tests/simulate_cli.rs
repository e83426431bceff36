//! `tend simulate`, run as the real binary on the starter project `tend init` writes.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use tempfile::TempDir;

fn tend(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the tend binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn shorten(dir: &Path, days: u32) {
    let path = dir.join("scenario.toml");
    let scenario = fs::read_to_string(&path).unwrap();
    assert!(scenario.contains("days = 365"));
    fs::write(
        &path,
        scenario.replace("days = 365", &format!("days = {days}")),
    )
    .unwrap();
}

#[test]
fn simulate_writes_the_summary_and_the_report() {
    let tmp = TempDir::new().unwrap();
    assert!(tend(&["init", "studio"], tmp.path()).status.success());
    let dir = tmp.path().join("studio");
    shorten(&dir, 30);

    let out = tend(
        &[
            "simulate",
            "studio/scenario.toml",
            "--out",
            "sim",
            "--seed",
            "3",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for name in [
        "background",
        "campaign",
        "unthrottled",
        "days over capacity",
    ] {
        assert!(
            stdout.contains(name),
            "{name} missing from the table:\n{stdout}"
        );
    }

    let summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(tmp.path().join("sim/summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["seed"], 3);
    for strategy in ["background", "campaign", "unthrottled"] {
        let figures = &summary["strategies"][strategy];
        for key in [
            "conversions",
            "revenue",
            "peak_backlog",
            "mean_wait_days",
            "p90_wait_days",
            "days_over_capacity",
            "neglected_leads",
            "touches_per_conversion_median",
            "touches_per_conversion_p90",
            "cost",
        ] {
            assert!(figures[key].is_number(), "{strategy}.{key} in {summary}");
        }
    }
    let html = fs::read_to_string(tmp.path().join("sim/report.html")).unwrap();
    assert!(html.contains("<svg"));
    assert!(!html.contains("<script"));
}

#[test]
fn several_seeds_report_means_and_ranges() {
    let tmp = TempDir::new().unwrap();
    assert!(tend(&["init"], tmp.path()).status.success());
    shorten(tmp.path(), 14);
    let out = tend(
        &[
            "simulate",
            "scenario.toml",
            "--out",
            "sim",
            "--seeds",
            "1..2",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("means over 2 seeds"), "{stdout}");
    assert!(stdout.contains("earns most after cost"), "{stdout}");
    let summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(tmp.path().join("sim/summary.json")).unwrap())
            .unwrap();
    let seeds: Vec<_> = summary["seeds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["seed"].as_u64().unwrap())
        .collect();
    assert_eq!(seeds, [1, 2]);
    for strategy in ["background", "campaign", "unthrottled"] {
        let revenue = &summary["spread"][strategy]["revenue"];
        assert!(
            revenue["min"].as_f64() <= revenue["max"].as_f64(),
            "{summary}"
        );
        assert!(summary["seeds"][1]["strategies"][strategy]["revenue"].is_number());
    }
    let html = fs::read_to_string(tmp.path().join("sim/report.html")).unwrap();
    assert!(html.contains("seeds 1–2"));

    let bad = tend(
        &["simulate", "scenario.toml", "--seeds", "5..2"],
        tmp.path(),
    );
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("`5..2` is empty"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn a_bad_scenario_is_refused_with_its_position() {
    let tmp = TempDir::new().unwrap();
    assert!(tend(&["init"], tmp.path()).status.success());
    let path = tmp.path().join("scenario.toml");
    let scenario = fs::read_to_string(&path).unwrap();
    fs::write(&path, scenario.replace("take_up = 0.5", "take_up = 5")).unwrap();

    let out = tend(&["simulate", "scenario.toml", "--out", "sim"], tmp.path());
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("scenario.toml:")
            && stderr.contains("`population.take_up` must be between 0 and 1"),
        "{stderr}"
    );
    let line = scenario
        .lines()
        .position(|l| l.starts_with("take_up"))
        .unwrap()
        + 1;
    assert!(
        stderr.contains(&format!("scenario.toml:{line}:1:")),
        "{stderr}"
    );
    assert!(
        !tmp.path().join("sim").exists(),
        "nothing is written on error"
    );
}

#[test]
fn a_scenario_for_a_missing_project_says_so() {
    let tmp = TempDir::new().unwrap();
    fs::write(
        tmp.path().join("s.toml"),
        "[population]\nleads_per_week = 3\n",
    )
    .unwrap();
    let out = tend(&["simulate", "s.toml"], tmp.path());
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("tend.toml") && stderr.contains("tend init"),
        "{stderr}"
    );
}
