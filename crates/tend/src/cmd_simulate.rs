//! `tend simulate`: the business's marketing, three ways, before living it — on one
//! seed or on many, to tell a difference from chance.

use crate::project;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::ops::RangeInclusive;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use tend_sim::{Plan, Scenario};

/// The most seeds one run accepts: each is a full simulation per strategy.
const MAX_SEEDS: u64 = 1_000;

/// Parses `--seeds A..B` (both included; `A..=B` is read the same way).
pub fn parse_seeds(text: &str) -> Result<RangeInclusive<u64>, String> {
    tend_sim::parse_seeds(text, MAX_SEEDS)
}

/// Runs the scenario and writes `summary.json` and `report.html` into `out`.
pub fn run(
    scenario_path: &Path,
    out: &Path,
    seed: Option<u64>,
    seeds: Option<RangeInclusive<u64>>,
) -> anyhow::Result<ExitCode> {
    // Quiet by default: the engine's own log would drown the progress bar.
    crate::init_tracing_at("warn");
    let mut scenario = Scenario::load(scenario_path)?;
    if let Some(seed) = seed {
        scenario.simulation.seed = seed;
    }
    let plan = match seeds {
        Some(seeds) => Plan::seeds(seeds),
        None => Plan::of(&scenario),
    };
    let scenario_dir = project::project_dir(scenario_path);
    let project_dir = match &scenario.project {
        Some(dir) => scenario_dir.join(dir),
        None => scenario_dir,
    };
    let project = project::load_valid_project(&project_dir.join("tend.toml"))?;
    let name = scenario.name.clone().unwrap_or_else(|| {
        scenario_path
            .file_stem()
            .map_or_else(|| "scenario".into(), |s| s.to_string_lossy().into_owned())
    });

    let runs = (plan.seeds.len() * plan.strategies.len()) as u64;
    let total = u64::from(scenario.simulation.days) * runs;
    let seeds_text = match plan.seeds.as_slice() {
        [one] => format!("seed {one}"),
        [first, .., last] => format!("seeds {first}–{last}"),
        [] => "no seed".into(),
    };
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:40}] {pos}/{len} strategy-days, {elapsed} (eta {eta})",
            )
            .context("progress bar template")?
            .progress_chars("=> "),
        );
        bar.set_message("simulating");
        bar
    } else {
        eprintln!(
            "simulating {} days of `{name}` three ways ({seeds_text})…",
            scenario.simulation.days
        );
        ProgressBar::hidden()
    };
    let ticker = bar.clone();
    let progress: tend_sim::Progress = Arc::new(move |days| ticker.inc(days));

    let started = std::time::Instant::now();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let report = runtime.block_on(tend_sim::simulate(
        &scenario, &name, &project, &plan, progress,
    ))?;
    bar.finish_and_clear();

    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let summary = report.summary_json();
    let summary_path = out.join("summary.json");
    std::fs::write(
        &summary_path,
        serde_json::to_string_pretty(&summary)? + "\n",
    )
    .with_context(|| format!("writing {}", summary_path.display()))?;
    let html_path = out.join("report.html");
    std::fs::write(&html_path, tend_sim::report::render_html(&report))
        .with_context(|| format!("writing {}", html_path.display()))?;

    print!("{}", tend_sim::table::render_table(&report));
    println!(
        "\n{} simulated days × {} runs ({seeds_text}) in {:.1} s; wrote {} and {}",
        scenario.simulation.days,
        runs,
        started.elapsed().as_secs_f64(),
        summary_path.display(),
        html_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_seeds;

    #[test]
    fn seed_ranges_include_both_ends() {
        assert_eq!(parse_seeds("1..8"), Ok(1..=8));
        assert_eq!(parse_seeds("3..=3"), Ok(3..=3));
        assert!(parse_seeds("8..1").unwrap_err().contains("empty"));
        assert!(parse_seeds("1-8").unwrap_err().contains("write it as 1..8"));
        assert!(parse_seeds("a..3").unwrap_err().contains("`a`"));
        assert!(parse_seeds("0..5000").unwrap_err().contains("more than"));
    }
}
