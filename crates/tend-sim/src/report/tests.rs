use super::*;
use crate::outcome::{SeedRun, StrategyRun};

fn summary(scale: u64) -> Summary {
    Summary {
        conversions: 40 * scale,
        revenue: 12345.678 * scale as f64,
        peak_backlog: 12 * scale as u32,
        mean_wait_days: 2.34 * scale as f64,
        p90_wait_days: 6.0 * scale as f64,
        days_over_capacity: 3 * scale as u32,
        neglected_leads: 5 * scale,
        touches_per_conversion_median: 4.0,
        touches_per_conversion_p90: 9.5,
        cost: 987.5 * scale as f64,
        leads: 300,
        touches: 1500 * scale,
        work_opened: 60,
        work_done: 55,
        unsubscribes: 7 * scale,
        referrals: 9,
        final_satisfaction: 0.9 / scale as f64,
        final_reputation: 0.8,
        cancelled_jobs: scale,
        rushed_jobs: 2 * scale,
        overtime_cost: 0.0,
        lost_to_competitors: 4,
        chase_hours: 0.0,
        utilisation: 0.7,
    }
}

fn run(strategy: Strategy, scale: u64, days: usize) -> StrategyRun {
    let start = jiff::civil::date(2025, 1, 15);
    let days = (0..days)
        .map(|i| DayRow {
            date: start
                .checked_add(jiff::Span::new().days(i as i64))
                .unwrap()
                .to_string(),
            backlog_peak: (i as u32 % 20) * scale as u32,
            touches: ((i * 7) % 13) as u32 * scale as u32,
            work_opened: 1,
            neglected_total: (i as u64 / 10) * scale,
            conversions_total: i as u64,
            satisfaction: 0.9,
            reputation: 0.8,
            revenue_total: i as f64 * 100.0,
            utilisation: 0.5,
        })
        .collect();
    StrategyRun {
        strategy,
        summary: summary(scale),
        days,
        touches_to_conversion: vec![0, 2 * scale, 5, 8, 3 * scale, 0, 1],
    }
}

fn report(days: usize) -> SimReport {
    SimReport {
        scenario: "Joe's <b>Plumbing</b> & Sons".to_string(),
        start: "2025-01-15".to_string(),
        days: days as u32,
        capacity_per_week: 7.5,
        capacity_line: 15.0,
        currency: "EUR".into(),
        seeds: vec![SeedRun {
            seed: 42,
            runs: Strategy::ALL
                .iter()
                .zip(1..)
                .map(|(&s, scale)| run(s, scale, days))
                .collect(),
        }],
    }
}

/// The same report over two seeds, the second with every run's figures doubled.
fn two_seeds(days: usize) -> SimReport {
    let mut r = report(days);
    let mut second = r.seeds[0].clone();
    second.seed = 43;
    for run in &mut second.runs {
        run.summary.revenue *= 2.0;
        for day in &mut run.days {
            day.backlog_peak *= 2;
        }
    }
    r.seeds.push(second);
    r
}

#[test]
fn page_names_every_strategy_and_draws_the_charts() {
    let html = render_html(&report(60));
    for strategy in Strategy::ALL {
        assert!(
            html.contains(strategy.name()),
            "{} missing",
            strategy.name()
        );
        assert!(html.contains(colour(strategy)));
    }
    assert!(html.matches("<svg viewBox=\"0 0 720").count() >= 5);
    assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
    assert!(html.contains("<figcaption>"));
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.trim_end().ends_with("</html>"));
}

#[test]
fn the_verdict_comes_first_and_names_the_best_after_cost() {
    let html = render_html(&report(60));
    let verdict = html.find("class=\"verdict\"").expect("a verdict");
    assert!(verdict < html.find("<table").unwrap());
    // Unthrottled (scale 3) earns most after cost in this made-up report.
    assert!(
        html.contains("Unthrottled earns most after cost: EUR 34,075"),
        "{html}"
    );
    assert!(html.contains("one seed cannot tell this from chance"));
}

#[test]
fn backlog_chart_shows_the_capacity_line() {
    let html = render_html(&report(60));
    assert!(html.contains("class=\"limit\""));
    assert!(html.contains("capacity line (15)"));
}

#[test]
fn page_is_self_contained() {
    let html = render_html(&report(60));
    assert!(!html.contains("<script"));
    assert!(!html.contains("http://"));
    assert!(!html.contains("https://"));
    assert!(!html.contains("<link"));
    assert!(!html.contains("<img"));
    assert!(!html.contains("url("));
}

#[test]
fn scenario_name_is_escaped() {
    let html = render_html(&report(60));
    assert!(!html.contains("<b>Plumbing"));
    assert!(html.contains("Joe&#39;s &lt;b&gt;Plumbing&lt;/b&gt; &amp; Sons"));
}

#[test]
fn summary_table_formats_numbers_for_people() {
    let html = render_html(&report(60));
    assert_eq!(html.matches("<tr><td>").count(), ROWS.len());
    assert!(html.contains(">12,346</td>"), "revenue with separators");
    assert!(html.contains(">11,358</td>"), "revenue minus cost");
    assert!(html.contains(">2.3</td>"), "wait days with one decimal");
    assert!(html.contains(">90%</td>"));
    assert!(html.contains("capacity 7.5 work items per week"));
    assert!(html.contains("amounts in EUR"));
    // Unthrottled has the most conversions, background the lowest cost.
    assert!(html.contains("<td class=\"best\">120</td>"));
    assert!(html.contains("<td class=\"best\">988</td>"));
}

#[test]
fn several_seeds_show_means_ranges_and_bands() {
    let html = render_html(&two_seeds(60));
    assert!(html.contains("seeds 42–43"));
    // Background's revenue: 12,346 on one seed, 24,691 on the other.
    assert!(
        html.contains(">18,519<small>12,346 – 24,691</small></td>"),
        "{html}"
    );
    assert!(html.contains("class=\"band\""));
    assert!(html.contains("on every one of the 2 seeds"));
}

#[test]
fn empty_report_renders() {
    let mut empty = report(0);
    for run in &mut empty.seeds[0].runs {
        run.touches_to_conversion.clear();
    }
    let html = render_html(&empty);
    assert!(html.contains("No days were simulated."));
    assert!(html.contains("Nothing to show."));
    assert!(!html.contains("NaN"));
}

#[test]
fn flat_zero_single_day_and_single_strategy_render() {
    let mut flat = report(1);
    flat.seeds[0].runs.truncate(1);
    flat.capacity_line = 0.0;
    for run in &mut flat.seeds[0].runs {
        run.touches_to_conversion = vec![0; 5];
        for day in &mut run.days {
            day.backlog_peak = 0;
            day.touches = 0;
            day.neglected_total = 0;
        }
        run.summary.revenue = f64::NAN;
    }
    let html = render_html(&flat);
    assert!(!html.contains("NaN"));
    assert!(!html.contains(">inf"));
    assert!(html.contains("<circle"));
    assert!(!html.contains("campaign"));
}

#[test]
fn long_histograms_pool_their_tail() {
    let mut long = report(10);
    long.seeds[0].runs[0].touches_to_conversion = (0..200).collect();
    let html = render_html(&long);
    assert!(html.contains(">30+<"));
}

#[test]
fn the_verdict_places_background_and_shares_ties() {
    let mut r = report(30);
    for run in &mut r.seeds[0].runs {
        if run.strategy != Strategy::Campaign {
            run.summary.neglected_leads = 0;
        }
    }
    let text = crate::verdict(&r);
    assert!(
        text.contains("Background earns EUR 11,358 (66.7% less)."),
        "{text}"
    );
    assert!(
        text.contains("background and unthrottled leave the fewest leads neglected (0 each, against 10 for campaign)"),
        "{text}"
    );
    assert!(
        text.contains("Background keeps waits shortest (a job waits 2.3 days"),
        "{text}"
    );
}

#[test]
fn a_fragment_for_another_page_thins_long_charts_and_keeps_their_spikes() {
    let mut long = report(1095);
    // One day's backlog far above every other: grouping must not average it away.
    long.seeds[0].runs[0].days[500].backlog_peak = 10_000;
    let html = render_fragment(&long, 120);
    assert!(
        !html.contains("<html") && !html.contains("<style"),
        "embeddable"
    );
    assert!(
        html.contains("Each point is the highest of 10 days."),
        "says so"
    );
    for line in html.lines().filter(|l| l.starts_with("<path d=\"M")) {
        let points = line.matches('L').count() + 1;
        assert!(points <= 110, "{points} points in {line}");
    }
    // The axis reaches the spike: 10,000 (a tick label of 10k or more).
    assert!(
        html.contains(">10k<") || html.contains(">10,000<"),
        "the spike stays"
    );
    // The whole page draws every day.
    assert!(!render_html(&long).contains("Each point is the highest"));
}
