//! What a strategy's run is measured by: counters per simulated day for the charts,
//! and the summary figures at the end.

use crate::outcome::{DayRow, Strategy, StrategyRun, Summary};
use crate::setup::Setting;
use crate::world::World;

/// Touches the engine delivered, by channel, for the cost.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Every delivered touch: emails, webhooks and completed tasks.
    pub touches: u64,
    pub emails: u64,
    pub webhooks: u64,
    pub tasks: u64,
    /// Staff minutes the completed tasks took.
    pub task_minutes: u64,
}

/// Per-day counters for the charts.
pub(crate) struct Days {
    pub touches: Vec<u32>,
    pub work_opened: Vec<u32>,
    pub backlog_peak: Vec<Option<u32>>,
    pub neglected: Vec<u64>,
    pub conversions: Vec<u64>,
    pub satisfaction: Vec<Option<f64>>,
}

impl Days {
    /// Counters for `days` days.
    pub fn new(days: usize) -> Days {
        Days {
            touches: vec![0; days],
            work_opened: vec![0; days],
            backlog_peak: vec![None; days],
            neglected: vec![0; days],
            conversions: vec![0; days],
            satisfaction: vec![None; days],
        }
    }

    /// Notes the model's state on `day`.
    pub fn observe(&mut self, day: usize, world: &World) {
        if let Some(peak) = self.backlog_peak.get_mut(day) {
            *peak = Some(peak.unwrap_or(0).max(world.backlog()));
            self.satisfaction[day] = Some(world.satisfaction);
        }
    }

    fn rows(self, setting: &Setting) -> Vec<DayRow> {
        let mut rows = Vec::with_capacity(self.touches.len());
        let (mut backlog, mut satisfaction) = (0, 1.0);
        let (mut neglected, mut conversions) = (0, 0);
        for day in 0..self.touches.len() {
            backlog = self.backlog_peak[day].unwrap_or(backlog);
            satisfaction = self.satisfaction[day].unwrap_or(satisfaction);
            neglected += self.neglected[day];
            conversions += self.conversions[day];
            let date = setting
                .scenario
                .simulation
                .start
                .checked_add(jiff::Span::new().days(i64::try_from(day).unwrap_or(0)))
                .map_or_else(|_| String::new(), |d| d.to_string());
            rows.push(DayRow {
                date,
                backlog_peak: backlog,
                touches: self.touches[day],
                work_opened: self.work_opened[day],
                neglected_total: neglected,
                conversions_total: conversions,
                satisfaction,
            });
        }
        rows
    }
}

/// The strategy's result: the summary from the model's tally, the counters and the days.
pub(crate) fn finish(
    setting: &Setting,
    strategy: Strategy,
    counters: &Counters,
    days: Days,
    world: &World,
) -> StrategyRun {
    let config = &setting.project.config;
    let tally = &world.tally;
    let mut conversions = tally.touches_to_conversion.clone();
    conversions.sort_unstable();
    let mut waits = tally.waits_days.clone();
    waits.sort_by(f64::total_cmp);
    let line = setting.capacity_line;
    let days_over_capacity = days
        .backlog_peak
        .iter()
        .filter(|peak| peak.is_some_and(|p| f64::from(p) > line))
        .count();
    let cost = counters.emails as f64 * config.cost("email")
        + counters.webhooks as f64 * config.cost("webhook")
        + counters.tasks as f64 * config.cost("task")
        + counters.task_minutes as f64 / 60.0 * setting.scenario.business.staff_cost_per_hour;
    let mut histogram = vec![0u64; conversions.last().map_or(0, |m| *m as usize + 1)];
    for n in &conversions {
        histogram[*n as usize] += 1;
    }
    let summary = Summary {
        conversions: conversions.len() as u64,
        revenue: round2(tally.revenue),
        peak_backlog: tally.peak_backlog,
        mean_wait_days: round2(mean(&waits)),
        p90_wait_days: round2(percentile(&waits, 0.9)),
        days_over_capacity: u32::try_from(days_over_capacity).unwrap_or(u32::MAX),
        neglected_leads: tally.neglected,
        touches_per_conversion_median: percentile_u32(&conversions, 0.5),
        touches_per_conversion_p90: percentile_u32(&conversions, 0.9),
        cost: round2(cost),
        leads: tally.leads,
        touches: counters.touches,
        work_opened: tally.work_opened,
        work_done: tally.work_done,
        unsubscribes: tally.unsubscribes,
        referrals: tally.referrals,
        final_satisfaction: round2(world.satisfaction),
    };
    StrategyRun {
        strategy,
        summary,
        days: days.rows(setting),
        touches_to_conversion: histogram,
    }
}

/// Adds `n` to a day's counter; days past the end of the run are not counted.
pub(crate) fn count_on<T: std::ops::AddAssign>(counts: &mut [T], day: usize, n: T) {
    if let Some(count) = counts.get_mut(day) {
        *count += n;
    }
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

/// Nearest-rank percentile of sorted values; 0 for none.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn percentile_u32(sorted: &[u32], q: f64) -> f64 {
    let values: Vec<f64> = sorted.iter().map(|v| f64::from(*v)).collect();
    percentile(&values, q)
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}
