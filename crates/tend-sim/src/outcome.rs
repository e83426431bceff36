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
    /// Days on which the backlog exceeded the team's capacity line.
    pub days_over_capacity: u32,
    /// Leads left without a touch for longer than their process's `max_gap`.
    pub neglected_leads: u64,
    /// Median touches a lead received before converting.
    pub touches_per_conversion_median: f64,
    /// 90th percentile of touches before converting.
    pub touches_per_conversion_p90: f64,
    /// Money spent: touches at `[costs]`, staff time on tasks, and overtime.
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
    /// Mean satisfaction of the customers at the end, 0–1; long waits, rushed work
    /// and cancelled jobs lower it.
    pub final_satisfaction: f64,
    /// Public reputation at the end, 0–1: the quality of the recent jobs.
    pub final_reputation: f64,
    /// Jobs their customers cancelled while waiting (their revenue is lost).
    pub cancelled_jobs: u64,
    /// Jobs started while the backlog was over the capacity line.
    pub rushed_jobs: u64,
    /// Overtime paid while over the capacity line (part of `cost`).
    pub overtime_cost: f64,
    /// Leads who went to a competitor: forgotten past `max_gap`, or pressed too hard.
    pub lost_to_competitors: u64,
    /// Staff hours spent on customers chasing jobs overdue past their tolerance.
    pub chase_hours: f64,
    /// Share of the team's normal working time spent on jobs (above 1 with overtime).
    pub utilisation: f64,
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
    /// Mean customer satisfaction at the end of the day, 0–1.
    pub satisfaction: f64,
    /// Public reputation at the end of the day, 0–1.
    pub reputation: f64,
    /// Revenue so far (cumulative).
    pub revenue_total: f64,
    /// Share of the team's normal working time spent on jobs over the past seven days
    /// (above 1 with overtime).
    pub utilisation: f64,
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

/// One seed's population run through each strategy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeedRun {
    /// The random seed.
    pub seed: u64,
    /// Each strategy's result, in [`Strategy::ALL`] order.
    pub runs: Vec<StrategyRun>,
}

/// A figure over the seeds: its mean and its range.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// Mean over the seeds.
    pub mean: f64,
    /// Lowest seed.
    pub min: f64,
    /// Highest seed.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; all NaN when there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Spread {
        let (mut n, mut sum, mut min, mut max) = (0usize, 0.0, f64::INFINITY, f64::NEG_INFINITY);
        for v in values {
            n += 1;
            sum += v;
            min = min.min(v);
            max = max.max(v);
        }
        if n == 0 {
            return Spread {
                mean: f64::NAN,
                min: f64::NAN,
                max: f64::NAN,
            };
        }
        Spread {
            mean: sum / n as f64,
            min,
            max,
        }
    }

    /// Whether the seeds disagree at all.
    pub fn varies(&self) -> bool {
        self.max > self.min
    }
}

/// The whole simulation: the setting and, for each seed, every strategy's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimReport {
    /// The scenario's name (its file stem unless it names itself).
    pub scenario: String,
    /// First simulated day.
    pub start: String,
    /// Days simulated.
    pub days: u32,
    /// Work items the team serves per week.
    pub capacity_per_week: f64,
    /// Work items open above which a day counts as over capacity: the team's own
    /// capacity over `business.capacity_line`, the same for every strategy.
    pub capacity_line: f64,
    /// Written beside money, from `business.currency`.
    pub currency: String,
    /// One entry per seed, in seed order.
    pub seeds: Vec<SeedRun>,
}

impl SimReport {
    /// The strategies run, in report order.
    pub fn strategies(&self) -> Vec<Strategy> {
        self.seeds
            .first()
            .map(|s| s.runs.iter().map(|r| r.strategy).collect())
            .unwrap_or_default()
    }

    /// The seeds run, in order.
    pub fn seed_list(&self) -> Vec<u64> {
        self.seeds.iter().map(|s| s.seed).collect()
    }

    /// `strategy`'s run on every seed, in seed order.
    pub fn runs_of(&self, strategy: Strategy) -> Vec<&StrategyRun> {
        self.seeds
            .iter()
            .filter_map(|s| s.runs.iter().find(|r| r.strategy == strategy))
            .collect()
    }

    /// Mean and range over the seeds of one figure of `strategy`.
    pub fn spread(&self, strategy: Strategy, figure: impl Fn(&Summary) -> f64) -> Spread {
        Spread::of(self.runs_of(strategy).iter().map(|r| figure(&r.summary)))
    }

    /// `summary.json`: `scenario`, `days`, `currency`, `seed` (with one seed), and
    /// `strategies` (each figure's mean over the seeds: with one seed, its figures),
    /// `spread` (per strategy and figure: mean, min, max) and `seeds` (per seed, each
    /// strategy's figures).
    pub fn summary_json(&self) -> serde_json::Value {
        use serde_json::{Map, Value, json};
        let figures = |summary: &Summary| match serde_json::to_value(summary) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        let mut means = Map::new();
        let mut spreads = Map::new();
        for strategy in self.strategies() {
            let per_seed: Vec<Map<String, Value>> = self
                .runs_of(strategy)
                .iter()
                .map(|r| figures(&r.summary))
                .collect();
            let Some(first) = per_seed.first() else {
                continue;
            };
            let (mut mean, mut spread) = (Map::new(), Map::new());
            for key in first.keys() {
                let values = per_seed.iter().filter_map(|m| m.get(key)?.as_f64());
                let s = Spread::of(values);
                let round = |v: f64| (v * 100.0).round() / 100.0;
                mean.insert(
                    key.clone(),
                    if per_seed.len() == 1 {
                        first[key].clone()
                    } else {
                        json!(round(s.mean))
                    },
                );
                spread.insert(
                    key.clone(),
                    json!({"mean": round(s.mean), "min": s.min, "max": s.max}),
                );
            }
            means.insert(strategy.name().to_owned(), Value::Object(mean));
            spreads.insert(strategy.name().to_owned(), Value::Object(spread));
        }
        let seeds: Vec<Value> = self
            .seeds
            .iter()
            .map(|s| {
                let strategies: Map<String, Value> = s
                    .runs
                    .iter()
                    .map(|r| {
                        (
                            r.strategy.name().to_owned(),
                            Value::Object(figures(&r.summary)),
                        )
                    })
                    .collect();
                json!({"seed": s.seed, "strategies": strategies})
            })
            .collect();
        let mut out = json!({
            "scenario": self.scenario,
            "days": self.days,
            "currency": self.currency,
            "capacity_line": self.capacity_line,
            "strategies": means,
            "spread": spreads,
            "seeds": seeds,
        });
        if let [only] = self.seeds.as_slice() {
            out["seed"] = json!(only.seed);
        }
        out
    }
}
