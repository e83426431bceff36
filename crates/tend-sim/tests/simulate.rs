//! The simulator on the starter business that `tend init` writes: the real engine,
//! a real SQLite file per strategy, a virtual clock.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use tend_core::check::{Project, ProjectSources, SourceFile, check_project};
use tend_sim::{Congestion, Plan, Scenario, SimReport, Strategy, Summary, simulate};

fn starter_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tend/starter")
}

fn read_folder(dir: &Path, folder: &str) -> Vec<SourceFile> {
    let mut files: Vec<SourceFile> = std::fs::read_dir(dir.join(folder))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let name = format!("{folder}/{}", p.file_name().unwrap().to_string_lossy());
            SourceFile::new(name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

/// The starter project, with `tend.toml` edited by `edit`.
fn starter_project(edit: impl Fn(&str) -> String) -> Project {
    let dir = starter_dir();
    let config = std::fs::read_to_string(dir.join("tend.toml")).unwrap();
    let sources = ProjectSources {
        config: SourceFile::new("tend.toml", edit(&config)),
        processes: read_folder(&dir, "processes"),
        templates: read_folder(&dir, "templates"),
    };
    check_project(&sources).unwrap_or_else(|d| panic!("starter project: {d:?}"))
}

/// The starter scenario, with its text edited by `edit`.
fn starter_scenario(edit: impl Fn(&str) -> String) -> Scenario {
    let text = std::fs::read_to_string(starter_dir().join("scenario.toml")).unwrap();
    Scenario::parse("scenario.toml", &edit(&text)).unwrap()
}

async fn run(scenario: &Scenario, project: &Project) -> SimReport {
    simulate(
        scenario,
        "test",
        project,
        &Plan::of(scenario),
        Arc::new(|_| {}),
    )
    .await
    .unwrap()
}

fn summary(report: &SimReport, strategy: Strategy) -> &Summary {
    &report.seeds[0]
        .runs
        .iter()
        .find(|r| r.strategy == strategy)
        .unwrap()
        .summary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_gives_the_same_summary_alone_or_among_others() {
    let project = starter_project(str::to_owned);
    let scenario = starter_scenario(|s| s.replace("days = 365", "days = 60"));
    let alone = run(&scenario, &project).await;
    let both = simulate(
        &scenario,
        "test",
        &project,
        &Plan::seeds([8, 7]),
        Arc::new(|_| {}),
    )
    .await
    .unwrap();
    assert_eq!(both.seed_list(), [8, 7]);
    assert_eq!(
        alone.seeds[0], both.seeds[1],
        "seed 7 alone and among others"
    );
    assert!(summary(&alone, Strategy::Background).touches > 0);
    assert_ne!(
        both.seeds[0].runs[0].summary, both.seeds[1].runs[0].summary,
        "another seed must give another population"
    );

    // summary.json: means and ranges over the seeds, and every seed's own figures.
    let json = both.summary_json();
    let revenue = |seed: usize| {
        json["seeds"][seed]["strategies"]["background"]["revenue"]
            .as_f64()
            .unwrap()
    };
    let spread = &json["spread"]["background"]["revenue"];
    assert_eq!(spread["min"].as_f64().unwrap(), revenue(0).min(revenue(1)));
    assert_eq!(spread["max"].as_f64().unwrap(), revenue(0).max(revenue(1)));
    let mean = json["strategies"]["background"]["revenue"]
        .as_f64()
        .unwrap();
    assert!(
        (mean - (revenue(0) + revenue(1)) / 2.0).abs() < 0.01,
        "{json}"
    );
    assert!(json.get("seed").is_none());
    assert_eq!(alone.summary_json()["seed"], 7);
}

/// The starter year: Tend's pacer keeps the team within capacity, bursts do not, and
/// people need the many touches the seeds speak of before they buy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_starter_year_stays_within_capacity_only_with_the_pacer() {
    let project = starter_project(str::to_owned);
    let scenario = starter_scenario(str::to_owned);
    let report = run(&scenario, &project).await;
    let background = summary(&report, Strategy::Background);
    let campaign = summary(&report, Strategy::Campaign);
    let unthrottled = summary(&report, Strategy::Unthrottled);
    let table = tend_sim::table::render_table(&report);

    assert_eq!(background.days_over_capacity, 0, "\n{table}");
    assert!(campaign.days_over_capacity > 0, "\n{table}");
    assert!(unthrottled.days_over_capacity > 0, "\n{table}");
    // No neglect, and no more pestering than sending everything at once: held offers
    // give their place to keep-warm instead of piling up (issue 11).
    assert_eq!(background.neglected_leads, 0, "\n{table}");
    assert!(
        background.touches as f64 <= 1.25 * unthrottled.touches as f64,
        "\n{table}"
    );
    assert!(
        background.conversions > 0 && campaign.conversions > 0,
        "\n{table}"
    );
    // One row per day, and the backlog chart agrees with the summary.
    for run in &report.seeds[0].runs {
        assert_eq!(run.days.len(), 365);
        let peak = run.days.iter().map(|d| d.backlog_peak).max().unwrap();
        assert_eq!(peak, run.summary.peak_backlog, "{:?}", run.strategy);
        let histogram: u64 = run.touches_to_conversion.iter().sum();
        assert_eq!(histogram, run.summary.conversions);
        let last = run.days.last().unwrap();
        assert_eq!(
            last.neglected_total, run.summary.neglected_leads,
            "{:?}",
            run.strategy
        );
    }
}

/// With budgets and capacity that cover every lead, the pacer touches every enrolled
/// lead within `max_gap`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_lead_is_neglected_when_the_budget_covers_them() {
    let project = starter_project(|config| {
        config.replace("per_week = 6", "per_week = 40").replace(
            "staff_minutes = { per_day = 180 }",
            "staff_minutes = { per_day = 600 }",
        )
    });
    let scenario = starter_scenario(|s| s.replace("days = 365", "days = 120"));
    let report = run(&scenario, &project).await;
    let background = summary(&report, Strategy::Background);
    let table = tend_sim::table::render_table(&report);
    assert!(background.leads > 100, "\n{table}");
    assert_eq!(background.neglected_leads, 0, "\n{table}");
}

/// A lead handed to the evergreen process after the new-inquiry sequence (as the
/// starter does) hears from it every month or two at first: neglect is judged by the
/// `max_gap` of the process that holds the lead, not by the ten days of the sequence it
/// left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lead_handed_to_a_slower_process_is_judged_by_its_max_gap() {
    let roomy = |config: &str| {
        config.replace("per_week = 6", "per_week = 40").replace(
            "staff_minutes = { per_day = 180 }",
            "staff_minutes = { per_day = 600 }",
        )
    };
    let handed_over = starter_project(roomy);
    let mut alone = handed_over.clone();
    let new_inquiry = alone
        .processes
        .iter_mut()
        .find(|p| p.id == "new-inquiry")
        .unwrap();
    assert_eq!(
        new_inquiry.then.as_deref(),
        Some("evergreen"),
        "the starter's leads who did not book move to evergreen"
    );
    new_inquiry.then = None;
    let background = plan(&[7], &[Strategy::Background]);
    let days = |s: &mut Scenario| s.simulation.days = 200;
    let (alone, handed) = tokio::join!(
        run_on(alone, background.clone(), days),
        run_on(handed_over, background, days),
    );
    let figure = |r: &SimReport, f: fn(&Summary) -> f64| total(r, Strategy::Background, f);
    let table = |r: &SimReport| tend_sim::table::render_table(r);
    assert!(
        figure(&handed, |s| s.touches as f64) > figure(&alone, |s| s.touches as f64) + 100.0,
        "evergreen must reach the leads after their sequence\n{}\n{}",
        table(&alone),
        table(&handed)
    );
    assert_eq!(
        figure(&alone, |s| s.neglected_leads as f64),
        0.0,
        "\n{}",
        table(&alone)
    );
    assert_eq!(
        figure(&handed, |s| s.neglected_leads as f64),
        0.0,
        "\n{}",
        table(&handed)
    );
}

/// Runs `plan` on the starter project and scenario, the scenario edited by `edit`.
async fn run_plan(plan: Plan, edit: impl Fn(&mut Scenario)) -> SimReport {
    run_on(starter_project(str::to_owned), plan, edit).await
}

async fn run_on(project: Project, plan: Plan, edit: impl Fn(&mut Scenario)) -> SimReport {
    let mut scenario = starter_scenario(str::to_owned);
    edit(&mut scenario);
    simulate(&scenario, "test", &project, &plan, Arc::new(|_| {}))
        .await
        .unwrap()
}

fn plan(seeds: &[u64], strategies: &[Strategy]) -> Plan {
    Plan {
        seeds: seeds.to_vec(),
        strategies: strategies.to_vec(),
        threads: None,
    }
}

/// Summed over the seeds of a report.
fn total(report: &SimReport, strategy: Strategy, figure: fn(&Summary) -> f64) -> f64 {
    report
        .runs_of(strategy)
        .iter()
        .map(|r| figure(&r.summary))
        .sum()
}

/// Customers who accept shorter waits cost a flooding strategy revenue: overload has
/// consequences in the model, so waits are not free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impatient_customers_cost_unthrottled_revenue() {
    let unthrottled = plan(&[7], &[Strategy::Unthrottled]);
    let (patient, impatient) = tokio::join!(
        run_plan(unthrottled.clone(), |_| {}),
        run_plan(unthrottled, |s| {
            let half = s.business.wait_tolerance.as_secs() / 2;
            s.business.wait_tolerance = tend_core::Duration::from_secs(half);
        }),
    );
    let revenue = |r: &SimReport| total(r, Strategy::Unthrottled, |s| s.revenue);
    assert!(
        revenue(&impatient) <= 0.97 * revenue(&patient),
        "halving wait_tolerance: {} against {}\n{}\n{}",
        revenue(&impatient),
        revenue(&patient),
        tend_sim::table::render_table(&patient),
        tend_sim::table::render_table(&impatient)
    );
}

/// With every consequence of overload switched off, flooding cannot lose revenue to
/// the pacer: the model is not a foregone conclusion in the pacer's favour. Summed over
/// seeds 1–8: with congestion off both strategies are capped by the same team, and when
/// the pacer keeps that team as busy as flooding does (learned response delays let it)
/// one seed's sign is a job or two of chance either way (2026-12-05, seeds 7 and 8:
/// 282 and 279 jobs paced against 280 and 277 flooded; 2,206 against 2,215 summed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_congestion_unthrottled_earns_at_least_as_much_as_background() {
    let report = run_plan(
        plan(
            &[1, 2, 3, 4, 5, 6, 7, 8],
            &[Strategy::Background, Strategy::Unthrottled],
        ),
        |s| s.congestion = Congestion::off(),
    )
    .await;
    let revenue = |s| total(&report, s, |s| s.revenue);
    assert!(
        revenue(Strategy::Unthrottled) >= revenue(Strategy::Background),
        "\n{}",
        tend_sim::table::render_table(&report)
    );
    assert_eq!(
        total(&report, Strategy::Unthrottled, |s| s.cancelled_jobs as f64),
        0.0
    );
}

/// A team twice as large completes more jobs, whatever the strategy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doubling_capacity_completes_more_jobs_in_every_strategy() {
    let short = |s: &mut Scenario| s.simulation.days = 120;
    let (base, doubled) = tokio::join!(
        run_plan(plan(&[7], &Strategy::ALL), short),
        // The team and the pacer both know it: tend.toml's capacity doubles.
        run_on(
            starter_project(|c| c.replace("per_week = 6\n", "per_week = 12\n")),
            plan(&[7], &Strategy::ALL),
            short
        ),
    );
    for strategy in Strategy::ALL {
        let done = |r: &SimReport| total(r, strategy, |s| s.work_done as f64);
        assert!(
            done(&doubled) > done(&base),
            "{strategy:?}: {} jobs with twice the team, {} without\n{}\n{}",
            done(&doubled),
            done(&base),
            tend_sim::table::render_table(&base),
            tend_sim::table::render_table(&doubled)
        );
    }
}
