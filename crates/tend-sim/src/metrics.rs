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
    pub reputation: Vec<Option<f64>>,
    pub revenue: Vec<Option<f64>>,
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
            reputation: vec![None; days],
            revenue: vec![None; days],
        }
    }

    /// Notes the model's state on `day`.
    pub fn observe(&mut self, day: usize, world: &World) {
        if let Some(peak) = self.backlog_peak.get_mut(day) {
            *peak = Some(peak.unwrap_or(0).max(world.backlog()));
            self.satisfaction[day] = Some(world.satisfaction());
            self.reputation[day] = Some(world.reputation());
            self.revenue[day] = Some(world.tally.revenue);
        }
    }

    fn rows(self, setting: &Setting, busy: &[f64]) -> Vec<DayRow> {
        let mut rows = Vec::with_capacity(self.touches.len());
        let (mut backlog, mut satisfaction, mut reputation) = (0, 1.0, 1.0);
        let (mut neglected, mut conversions, mut revenue) = (0, 0, 0.0);
        for day in 0..self.touches.len() {
            backlog = self.backlog_peak[day].unwrap_or(backlog);
            satisfaction = self.satisfaction[day].unwrap_or(satisfaction);
            reputation = self.reputation[day].unwrap_or(reputation);
            revenue = self.revenue[day].unwrap_or(revenue);
            // The past week's share, since one day of a one-job-at-a-time team is
            // all or nothing.
            let week = &busy[day.saturating_sub(6)..=day];
            let utilisation = week.iter().sum::<f64>() / week.len() as f64;
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
                reputation,
                revenue_total: revenue,
                utilisation,
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
    let mut waits = world.team.work.waits_days.clone();
    waits.sort_by(f64::total_cmp);
    let line = setting.capacity_line;
    let days_over_capacity = days
        .backlog_peak
        .iter()
        .filter(|peak| peak.is_some_and(|p| f64::from(p) > line))
        .count();
    let business = &setting.scenario.business;
    let work = &world.team.work;
    let overtime_cost = work.overtime_hours
        * business.staff_cost_per_hour
        * setting.scenario.congestion.overtime_premium;
    let cost = counters.emails as f64 * config.cost("email")
        + counters.webhooks as f64 * config.cost("webhook")
        + counters.tasks as f64 * config.cost("task")
        + counters.task_minutes as f64 / 60.0 * business.staff_cost_per_hour
        + overtime_cost;
    let busy = busy_by_day(setting, &work.busy, days.touches.len());
    let utilisation = if busy.is_empty() {
        0.0
    } else {
        busy.iter().sum::<f64>() / busy.len() as f64
    };
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
        final_satisfaction: round2(world.satisfaction()),
        final_reputation: round2(world.reputation()),
        cancelled_jobs: tally.cancelled,
        rushed_jobs: work.rushed,
        overtime_cost: round2(overtime_cost),
        lost_to_competitors: tally.lost_to_competitors,
        chase_hours: round2(work.chase_hours),
        utilisation: round2(utilisation),
    };
    StrategyRun {
        strategy,
        summary,
        days: days.rows(setting, &busy),
        touches_to_conversion: histogram,
    }
}

/// Share of each day's normal working time the team worked (above 1 with overtime),
/// from its jobs' start, end and pace.
fn busy_by_day(
    setting: &Setting,
    busy: &[(jiff::Timestamp, jiff::Timestamp, f64)],
    days: usize,
) -> Vec<f64> {
    const DAY: f64 = 86_400.0;
    let mut share = vec![0.0; days];
    let origin = setting.start;
    for &(from, to, pace) in busy {
        let a = from.duration_since(origin).as_secs_f64() / DAY;
        let b = to.duration_since(origin).as_secs_f64() / DAY;
        let mut t = a.max(0.0);
        while t < b && (t as usize) < days {
            let day = t as usize;
            let end = b.min(day as f64 + 1.0);
            share[day] += (end - t) * pace;
            t = end;
        }
    }
    share
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
