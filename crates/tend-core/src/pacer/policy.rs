//! The business's pacing rules and what is wrong with them.

use super::{Budgets, Channel, ChannelSet, Period, Resource, Spend};
use crate::domain::TimeZoneName;
use crate::duration::Duration;
use crate::hours::{DailyWindow, WeeklyHours};
use jiff::tz::TimeZone;

/// Money per touch, by channel (`[costs]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChannelCosts {
    /// Per email.
    pub email: f64,
    /// Per webhook.
    pub webhook: f64,
    /// Per task.
    pub task: f64,
}

/// The business's pacing rules, built from plain config values.
#[derive(Debug, Clone)]
pub struct PacerPolicy {
    /// The business's zone: budget windows and opening hours are local to it.
    pub business_tz: TimeZone,
    /// When tasks may be planned and budgets accrue.
    pub business_hours: WeeklyHours,
    /// Contacts' local hours in which nothing reaches them.
    pub quiet_hours: Option<DailyWindow>,
    /// Limits per resource and window.
    pub budgets: Budgets,
    /// Money per touch.
    pub costs: ChannelCosts,
    /// Most touches to one contact in any rolling 7 days.
    pub per_contact_per_week: Option<u32>,
    /// Least time between two touches to one contact, across processes.
    pub min_gap: Duration,
    /// The channels `per_contact_per_week` and `min_gap` count and hold: those that
    /// reach the person. A webhook to the team's own systems or a task for a person
    /// neither counts nor waits for them unless listed.
    pub limited_channels: ChannelSet,
    /// How far ahead of a budget's accrual the first touch of an enrollment may spend,
    /// per resource (never past a window's limit).
    pub first_touch_reserve: Spend,
    /// How close to its `max_gap` deadline a capacity-held offer is swapped for keep-warm.
    pub keep_warm_margin: Duration,
    /// How long a capacity-held offer waits before it is presented again; capacity frees
    /// up through events the pacer cannot foresee.
    pub capacity_recheck: Duration,
}

/// A policy or state value the pacer cannot work with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PacerError {
    /// A budget limit is negative or not a number.
    #[error("budget `{resource}.per_{period}` is {value}; it must be a finite number ≥ 0")]
    InvalidLimit {
        /// The resource.
        resource: Resource,
        /// The window.
        period: Period,
        /// The rejected limit.
        value: f64,
    },
    /// A per-touch cost is negative or not a number.
    #[error("cost of one {channel} is {value}; it must be a finite number ≥ 0")]
    InvalidCost {
        /// The channel.
        channel: Channel,
        /// The rejected cost.
        value: f64,
    },
    /// A weekly cap of zero would defer every touch forever.
    #[error("per_contact_per_week must be at least 1")]
    ZeroFrequencyCap,
    /// A Beta prior outside its domain.
    #[error(
        "prior probability {probability} with strength {strength}: need 0 ≤ probability ≤ 1 and strength > 0"
    )]
    InvalidPrior {
        /// The rejected prior probability.
        probability: f64,
        /// The rejected strength.
        strength: f64,
    },
    /// Capacity values out of range.
    #[error("capacity {0} is invalid: values must be finite and ≥ 0, target_utilization in (0, 1]")]
    InvalidCapacity(String),
}

impl PacerPolicy {
    /// A policy with no budgets, costs, caps or quiet hours, a one-day keep-warm margin
    /// and an hourly capacity recheck.
    pub fn new(business_tz: &TimeZoneName, business_hours: WeeklyHours) -> Self {
        PacerPolicy {
            business_tz: business_tz.time_zone(),
            business_hours,
            quiet_hours: None,
            budgets: Budgets::default(),
            costs: ChannelCosts::default(),
            per_contact_per_week: None,
            min_gap: Duration::ZERO,
            limited_channels: ChannelSet::EMAIL,
            first_touch_reserve: Spend::default(),
            keep_warm_margin: Duration::from_secs(86_400),
            capacity_recheck: Duration::from_secs(3_600),
        }
    }

    /// Rejects negative or non-finite limits and costs and a zero weekly cap.
    pub fn validate(&self) -> Result<(), PacerError> {
        for resource in Resource::ALL {
            for period in Period::ALL {
                if let Some(value) = self.budgets.get(resource).get(period)
                    && !(value.is_finite() && value >= 0.0)
                {
                    return Err(PacerError::InvalidLimit {
                        resource,
                        period,
                        value,
                    });
                }
            }
        }
        for (channel, value) in [
            (Channel::Email, self.costs.email),
            (Channel::Webhook, self.costs.webhook),
            (Channel::Task, self.costs.task),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(PacerError::InvalidCost { channel, value });
            }
        }
        if self.per_contact_per_week == Some(0) {
            return Err(PacerError::ZeroFrequencyCap);
        }
        Ok(())
    }

    /// How far ahead a `max_gap` deadline counts as about to pass: the keep-warm margin
    /// (or the capacity recheck if longer, since a held offer is not looked at again
    /// before then) plus the longest stretch the business is closed in a week, when
    /// budgets do not accrue, so a contact whose deadline falls after a weekend is
    /// reached before it.
    pub fn neglect_horizon(&self) -> Duration {
        let base = self.keep_warm_margin.max(self.capacity_recheck);
        Duration::from_secs(base.as_secs() + longest_closure_secs(&self.business_hours))
    }

    /// What one touch on `channel` consumes (`minutes` counts only for tasks).
    pub fn cost_of(&self, channel: Channel, minutes: u32) -> Spend {
        match channel {
            Channel::Email => Spend {
                emails: 1.0,
                money: self.costs.email,
                ..Spend::default()
            },
            Channel::Webhook => Spend {
                webhooks: 1.0,
                money: self.costs.webhook,
                ..Spend::default()
            },
            Channel::Task => Spend {
                staff_minutes: f64::from(minutes),
                money: self.costs.task,
                ..Spend::default()
            },
        }
    }
}

/// The longest closed stretch of a week of opening hours (ignoring DST).
fn longest_closure_secs(hours: &WeeklyHours) -> u64 {
    const WEEK_MINUTES: u32 = 7 * 1440;
    let mut open: Vec<(u32, u32)> = Vec::new();
    for (day, weekday) in jiff::civil::Weekday::Monday
        .cycle_forward()
        .take(7)
        .enumerate()
    {
        let base = day as u32 * 1440;
        for (s, e) in hours.ranges(weekday) {
            let (s, e) = (base + u32::from(*s), base + u32::from(*e));
            match open.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => open.push((s, e)),
            }
        }
    }
    let (Some(first), Some(last)) = (open.first(), open.last()) else {
        return u64::from(WEEK_MINUTES) * 60;
    };
    let wrap = first.0 + WEEK_MINUTES - last.1;
    let longest = open
        .windows(2)
        .map(|w| w[1].0 - w[0].1)
        .fold(wrap, u32::max);
    u64::from(longest) * 60
}
