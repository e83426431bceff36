//! What a simulation produces: per strategy, the summary figures, a row per simulated
//! day for the charts, and the touches-to-conversion histogram.

use serde::Serialize;

/// The three ways of running the same marketing that one simulation compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Tend's pacer with the scenario's budgets and capacity.
    Background,
    /// Bursts: whenever the backlog is low, a promotion to every open lead and
    /// everything due goes out at once, unpaced; nothing in between.
    Campaign,
    /// Every due touch goes out at once, with no budget, capacity or frequency limit.
    Unthrottled,
}

impl Strategy {
    /// All strategies, in report order.
    pub const ALL: [Strategy; 3] = [
        Strategy::Background,
        Strategy::Campaign,
        Strategy::Unthrottled,
    ];

    /// The lowercase name used in `summary.json` and the report.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Background => "background",
            Strategy::Campaign => "campaign",
            Strategy::Unthrottled => "unthrottled",
        }
    }
}

/// One strategy's year in figures; the keys of `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Leads who became customers.
    pub conversions: u64,
    /// Value of the work completed.
    pub revenue: f64,
    /// Most work items open (waiting or in progress) at once.
    pub peak_backlog: u32,
    /// Mean days a work item waited before the team started it.
    pub mean_wait_days: f64,
    /// 90th percentile of those waits.
    pub p90_wait_days: f64,
    /// Days on which the backlog exceeded what the team can serve within the horizon.
    pub days_over_capacity: u32,
    /// Leads left without a touch for longer than their process's `max_gap`.
    pub neglected_leads: u64,
    /// Median touches a lead received before converting.
    pub touches_per_conversion_median: f64,
    /// 90th percentile of touches before converting.
    pub touches_per_conversion_p90: f64,
    /// Money spent: touches at `[costs]` plus staff time on tasks.
    pub cost: f64,
    /// Leads who arrived (including those present on day one and referrals).
    pub leads: u64,
    /// Touches delivered: emails, webhooks and completed tasks.
    pub touches: u64,
    /// Work items opened (first jobs and repeat work).
    pub work_opened: u64,
    /// Work items completed.
    pub work_done: u64,
    /// Contacts who unsubscribed.
    pub unsubscribes: u64,
    /// Leads who came by referral.
    pub referrals: u64,
    /// Customer satisfaction at the end, 0–1; long waits lower it.
    pub final_satisfaction: f64,
}

/// One simulated day, for the charts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayRow {
    /// The day, `YYYY-MM-DD`, in the business's time zone.
    pub date: String,
    /// Most work items open at any moment of the day.
    pub backlog_peak: u32,
    /// Touches delivered that day.
    pub touches: u32,
    /// Work items opened that day.
    pub work_opened: u32,
    /// Leads neglected so far (cumulative).
    pub neglected_total: u64,
    /// Conversions so far (cumulative).
    pub conversions_total: u64,
    /// Customer satisfaction at the end of the day, 0–1.
    pub satisfaction: f64,
}

/// One strategy's full result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StrategyRun {
    /// Which strategy.
    pub strategy: Strategy,
    /// The figures.
    pub summary: Summary,
    /// One row per simulated day.
    pub days: Vec<DayRow>,
    /// `histogram[n]` = conversions that took `n` touches.
    pub touches_to_conversion: Vec<u64>,
}

/// The whole simulation: the setting and every strategy's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimReport {
    /// The scenario's name (its file stem unless it names itself).
    pub scenario: String,
    /// The random seed used.
    pub seed: u64,
    /// First simulated day.
    pub start: String,
    /// Days simulated.
    pub days: u32,
    /// Work items the team serves per week.
    pub capacity_per_week: f64,
    /// Backlog above which a day counts as over capacity: a week's capacity times
    /// the horizon, in weeks.
    pub backlog_limit: f64,
    /// Each strategy's result, in [`Strategy::ALL`] order.
    pub runs: Vec<StrategyRun>,
}

impl SimReport {
    /// `summary.json`: `{"scenario", "seed", "days", "strategies": {name: summary}}`.
    pub fn summary_json(&self) -> serde_json::Value {
        let strategies: serde_json::Map<String, serde_json::Value> = self
            .runs
            .iter()
            .map(|run| {
                (
                    run.strategy.name().to_owned(),
                    serde_json::to_value(&run.summary).unwrap_or_default(),
                )
            })
            .collect();
        serde_json::json!({
            "scenario": self.scenario,
            "seed": self.seed,
            "days": self.days,
            "strategies": strategies,
        })
    }
}
