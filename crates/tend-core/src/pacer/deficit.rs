//! Deficit: whether the budgets can keep the `max_gap` promise for everyone enrolled,
//! and what budget would.
//!
//! Keeping the promise takes at least one touch per contact per `max_gap`; normally that
//! touch is the process's keep-warm email, so a process's load is counted in the channel
//! of its cheapest touch. Needs are in calendar days; a daily limit only accrues on days
//! with business hours, so a `per_day` limit of a business closed at weekends yields
//! five sevenths of its face value per calendar day.

use super::{Channel, PacerPolicy, ProcessId};
use crate::duration::Duration;
use crate::pacer::budget::{Limits, Period, Resource};
use jiff::civil::Weekday;

const DAY_SECS: f64 = 86_400.0;

/// One process's promise: this many contacts, each touched at least once per `max_gap`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProcessLoad {
    /// The process.
    pub process: ProcessId,
    /// Contacts currently enrolled.
    pub enrolled: u64,
    /// The longest a contact may wait for a touch.
    pub max_gap: Duration,
    /// Channel of the touch that keeps the promise (the keep-warm email, usually).
    pub channel: Channel,
    /// Estimated minutes when that touch is a task.
    pub minutes: u32,
}

impl ProcessLoad {
    /// A process whose promise is kept by email.
    pub fn email(process: ProcessId, enrolled: u64, max_gap: Duration) -> Self {
        ProcessLoad {
            process,
            enrolled,
            max_gap,
            channel: Channel::Email,
            minutes: 0,
        }
    }
}

/// Need against budget for one resource.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResourceDeficit {
    /// The resource.
    pub resource: Resource,
    /// Average amount per calendar day the promise needs.
    pub required_per_day: f64,
    /// Average amount per calendar day the tightest limit allows; `None` if unlimited.
    pub available_per_day: Option<f64>,
    /// `required - available` when positive, else zero.
    pub shortfall_per_day: f64,
    /// The configured limits raised just enough to cover the need.
    pub suggested: Limits,
}

/// The deficit report: one entry per resource the promise needs.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeficitReport {
    /// Whether every resource covers its need.
    pub covered: bool,
    /// Need and availability per resource.
    pub resources: Vec<ResourceDeficit>,
}

/// Compares what the `max_gap` promises of `loads` need with `policy`'s budgets.
pub fn deficit(loads: &[ProcessLoad], policy: &PacerPolicy) -> DeficitReport {
    let mut required = [0.0f64; 4];
    for load in loads {
        let gap_days = load.max_gap.as_secs() as f64 / DAY_SECS;
        if load.enrolled == 0 {
            continue;
        }
        let touches_per_day = if gap_days > 0.0 {
            load.enrolled as f64 / gap_days
        } else {
            f64::INFINITY
        };
        let cost = policy.cost_of(load.channel, load.minutes).as_array();
        for (need, c) in required.iter_mut().zip(cost) {
            if c > 0.0 {
                *need += touches_per_day * c;
            }
        }
    }
    let open_days = Weekday::Monday
        .cycle_forward()
        .take(7)
        .filter(|d| !policy.business_hours.ranges(*d).is_empty())
        .count() as f64;
    let mut resources = Vec::new();
    for resource in Resource::ALL {
        let need = required[resource as usize];
        if need <= 0.0 {
            continue;
        }
        let limits = *policy.budgets.get(resource);
        let per_day_factor = |period: Period| match period {
            Period::Day => open_days / 7.0,
            _ => 1.0 / period.average_days(),
        };
        let available = Period::ALL
            .iter()
            .filter_map(|p| limits.get(*p).map(|l| l * per_day_factor(*p)))
            .reduce(f64::min);
        let shortfall = available.map_or(0.0, |a| (need - a).max(0.0));
        let mut suggested = limits;
        for period in Period::ALL {
            if let Some(limit) = limits.get(period) {
                let factor = per_day_factor(period);
                let covering = if factor > 0.0 {
                    round_up(resource, need / factor)
                } else {
                    f64::INFINITY
                };
                suggested.set(period, Some(limit.max(covering)));
            }
        }
        resources.push(ResourceDeficit {
            resource,
            required_per_day: need,
            available_per_day: available,
            shortfall_per_day: shortfall,
            suggested,
        });
    }
    DeficitReport {
        covered: resources.iter().all(|r| r.shortfall_per_day <= 0.0),
        resources,
    }
}

/// Whole units for countable resources, cents for money; a tiny tolerance keeps exact
/// quotients such as 400.0000000001 from rounding up to 401.
fn round_up(resource: Resource, amount: f64) -> f64 {
    let scale = if resource.is_countable() { 1.0 } else { 100.0 };
    ((amount * scale) - 1e-9).ceil() / scale
}
