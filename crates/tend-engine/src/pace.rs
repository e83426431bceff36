//! What the pacer is doing, for `GET /api/pace` and `/metrics`: each budget window,
//! capacity and its headroom, held-back touches by reason, and whether the budgets can
//! keep the `max_gap` promise for everyone enrolled.

use crate::engine::{Engine, EngineError};
use crate::expected::{Expected, OfferStepView};
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use std::collections::BTreeMap;
use tend_core::pacer::{
    BudgetState, BudgetStatus, Channel, DeficitReport, ProcessId, ProcessLoad, Reason, deficit,
};
use tend_core::process::StepChannel;
use tend_store::PacingSnapshot;

/// Capacity as the pace report shows it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CapacityView {
    /// Work items the business can take on per week.
    pub per_week: f64,
    /// Share of capacity offers may fill.
    pub target_utilization: f64,
    /// How far ahead expected work counts, e.g. `2w`.
    pub horizon: String,
    /// The longest new work should wait for the team, e.g. `10d`, if bounded.
    pub max_wait: Option<String>,
    /// The most work open or expected at once: `target_utilization × per_week ×
    /// horizon`, and no more than the team reaches within `max_wait`.
    pub limit: f64,
    /// Work items open now.
    pub open_work: f64,
    /// Expected work from offers sent within the horizon and not answered yet.
    pub expected_in_flight: f64,
    /// What is left for new offers (never below 0).
    pub headroom: f64,
    /// Days new work would wait now for the team, with the work open or expected ahead
    /// of it; absent when the team takes on no work.
    pub predicted_wait_days: Option<f64>,
}

/// The budgets' shortfall against the `max_gap` promise.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeficitView {
    /// Whether every limited resource covers the promise.
    pub covered: bool,
    /// One sentence per short resource, e.g. "4000 enrolled contacts with gaps of up to
    /// 10 days need 400 emails a day; the budget allows 200."
    pub messages: Vec<String>,
    /// The figures, with the limits that would cover them.
    #[serde(flatten)]
    pub report: DeficitReport,
}

/// Everything `GET /api/pace` shows.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PaceReport {
    /// When it was computed.
    pub at: Timestamp,
    /// Every limited budget window now.
    pub budgets: Vec<BudgetStatus>,
    /// Capacity now.
    pub capacity: CapacityView,
    /// Pending touches per reason they are held back for (every reason listed).
    pub held: BTreeMap<String, u64>,
    /// Active enrollments per process.
    pub enrolled: BTreeMap<String, u64>,
    /// Whether the budgets keep the `max_gap` promise.
    pub deficit: DeficitView,
    /// Per offer step: its learned response rate and delays, and its work in flight.
    pub offers: Vec<OfferStepView>,
    /// Bounces, complaints and unsubscribe requests reported after sends, so far.
    pub mail_feedback: tend_store::feedback::FeedbackCounts,
}

impl Engine {
    /// The pacer's current state; see [`PaceReport`].
    pub async fn pace(&self) -> Result<PaceReport, EngineError> {
        let now = self.clock().now();
        let config = &self.project().config;
        let horizon = SignedDuration::from_millis(config.capacity.horizon.as_millis());
        let snapshot = self
            .store()
            .pacing_snapshot(now.saturating_sub(horizon).unwrap_or(now), now, true)
            .await?;
        let budget: BudgetState = snapshot.budget.clone();
        let expected = self.learned(&snapshot)?;
        let capacity = self.capacity_state(&snapshot, &expected);
        let offers = offer_steps(self, &snapshot, &expected);
        let counts = self.store().pace_counts().await?;
        let mut held: BTreeMap<String, u64> =
            Reason::ALL.iter().map(|r| (r.to_string(), 0)).collect();
        for (reason, n) in counts.held {
            *held.entry(reason).or_default() += n;
        }
        let mut enrolled: BTreeMap<String, u64> = self
            .book()
            .iter()
            .map(|b| (b.process.id.clone(), 0))
            .collect();
        let mut loads = Vec::new();
        let paused: BTreeMap<i64, u64> = counts.paused.into_iter().collect();
        for (process_id, n) in counts.enrolled {
            let Some(bound) = self.book().get(process_id) else {
                continue;
            };
            enrolled.insert(bound.process.id.clone(), n);
            // What `max_gap` costs is owed to the enrollments that run, not the paused.
            let running = n.saturating_sub(paused.get(&process_id).copied().unwrap_or(0));
            loads.extend(process_loads(
                ProcessId(process_id),
                &bound.process,
                running,
            ));
        }
        let report = deficit(&loads, self.policy());
        let messages = deficit_messages(&report, &loads);
        Ok(PaceReport {
            at: now,
            budgets: budget.status(self.policy(), now),
            capacity: CapacityView {
                per_week: capacity.per_week,
                target_utilization: capacity.target_utilization,
                horizon: config.capacity.horizon.to_string(),
                max_wait: config.capacity.max_wait.map(|w| w.to_string()),
                limit: capacity.limit(),
                open_work: capacity.open_work,
                expected_in_flight: capacity.expected_in_flight,
                headroom: (capacity.limit() - capacity.load()).max(0.0),
                predicted_wait_days: capacity.predicted_wait_days(),
            },
            held,
            enrolled,
            deficit: DeficitView {
                covered: report.covered,
                messages,
                report,
            },
            offers,
            mail_feedback: self.store().mail_feedback_counts().await?,
        })
    }
}

/// Every offer step that has sent something, in process and step order.
fn offer_steps(
    engine: &Engine,
    snapshot: &PacingSnapshot,
    expected: &Expected,
) -> Vec<OfferStepView> {
    let mut steps: Vec<OfferStepView> = snapshot
        .offer_stats
        .iter()
        .map(|s| {
            let key = (s.process_id, s.step);
            let (in_flight, expected_work) =
                expected.in_flight.get(&key).copied().unwrap_or_default();
            let delays = expected.delays.get(&key);
            OfferStepView {
                process: engine
                    .book()
                    .get(s.process_id)
                    .map_or_else(|| s.process_id.to_string(), |b| b.process.id.clone()),
                step: s.step,
                sent: s.sent,
                responded: s.responded,
                probability: expected
                    .probabilities
                    .get(&key)
                    .copied()
                    .unwrap_or_default(),
                mean_response_days: delays.map_or(0.0, |d| d.mean_days),
                delays_observed: delays.map_or(0, |d| d.observed),
                in_flight,
                expected_work,
            }
        })
        .collect();
    steps.sort_by(|a, b| (&a.process, a.step).cmp(&(&b.process, b.step)));
    steps
}

/// A process's steady load: one touch per `max_gap` per enrolled contact, split over
/// its channels in the proportion its steps use them.
fn process_loads(id: ProcessId, process: &tend_core::Process, enrolled: u64) -> Vec<ProcessLoad> {
    let steps = process.steps.len().max(1) as f64;
    let mut by_channel: BTreeMap<Channel, (f64, u64)> = BTreeMap::new();
    for step in &process.steps {
        let entry = by_channel.entry(step.channel.kind()).or_insert((0.0, 0));
        entry.0 += 1.0;
        if let StepChannel::Task { minutes, .. } = step.channel {
            entry.1 += u64::from(minutes);
        }
    }
    by_channel
        .into_iter()
        .map(|(channel, (count, minutes))| ProcessLoad {
            process: id,
            enrolled: (enrolled as f64 * count / steps).round() as u64,
            max_gap: process.max_gap,
            channel,
            minutes: (minutes as f64 / count).round() as u32,
        })
        .collect()
}

fn deficit_messages(report: &DeficitReport, loads: &[ProcessLoad]) -> Vec<String> {
    let contacts: u64 = loads.iter().map(|l| l.enrolled).sum();
    let longest_gap_days = loads
        .iter()
        .map(|l| l.max_gap.as_secs() as f64 / 86_400.0)
        .fold(0.0, f64::max);
    report
        .resources
        .iter()
        .filter(|r| r.shortfall_per_day > 0.0)
        .map(|r| {
            let unit = match r.resource.to_string().as_str() {
                "emails" => "emails",
                "webhooks" => "webhook calls",
                "staff_minutes" => "staff minutes",
                _ => "in money",
            };
            format!(
                "{contacts} enrolled contacts with gaps of up to {longest_gap_days:.0} days need \
                 {:.0} {unit} a day; the budget allows {:.0}. Raise `[budget] {}` to cover it \
                 (suggested: {}).",
                r.required_per_day,
                r.available_per_day.unwrap_or(0.0),
                r.resource,
                suggestion(r)
            )
        })
        .collect()
}

fn suggestion(r: &tend_core::pacer::ResourceDeficit) -> String {
    let mut parts = Vec::new();
    for (name, value) in [
        ("per_day", r.suggested.per_day),
        ("per_week", r.suggested.per_week),
        ("per_month", r.suggested.per_month),
    ] {
        if let Some(v) = value {
            parts.push(format!("{name} = {v}"));
        }
    }
    parts.join(", ")
}
