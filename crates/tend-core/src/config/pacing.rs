//! The pacing part of `tend.toml`: `[capacity]`, `[budget]`, `[costs]` and `[limits]`,
//! what the pacer is given to keep marketing at the pace the business can serve.

use super::{BUDGET_RESOURCES, CHANNELS};
use crate::check::{Fields, Report, expect_number};
use crate::duration::Duration;
use crate::hours::DailyWindow;
use std::collections::BTreeMap;

/// `[capacity]`: how much new work the business can take on.
#[derive(Debug, Clone, PartialEq)]
pub struct Capacity {
    /// Work items per week.
    pub per_week: f64,
    /// Share of capacity the pacer may fill, in `(0, 1]`.
    pub target_utilization: f64,
    /// How far ahead expected work is counted.
    pub horizon: Duration,
    /// Prior probability that an offer turns into work, before responses are observed.
    pub offer_probability: f64,
    /// Prior mean time from an offer to its response, before delays are observed; when
    /// set, an unanswered offer's expected work fades with the delays learned per step,
    /// otherwise evenly over the horizon.
    pub response_delay: Option<Duration>,
    /// The longest new work should wait for the team: offers are held while the work
    /// open or expected would take longer than this to reach; `None`: no such bound.
    pub max_wait: Option<Duration>,
}

impl Default for Capacity {
    fn default() -> Self {
        Capacity {
            per_week: 10.0,
            target_utilization: 0.85,
            horizon: Duration::from_secs(14 * 86_400),
            offer_probability: 0.2,
            response_delay: None,
            max_wait: None,
        }
    }
}

/// Limits on one budget resource; any subset may be set.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BudgetLimits {
    /// Per local business day.
    pub per_day: Option<f64>,
    /// Per week (Monday to Sunday, business time zone).
    pub per_week: Option<f64>,
    /// Per calendar month.
    pub per_month: Option<f64>,
    /// How far ahead of the accrual the first touch of an enrollment may spend (never
    /// past a window's limit); `None`: [`default_reserve`] of the limits.
    pub reserve: Option<f64>,
}

/// The first-touch reserve when `reserve` is not set: a twentieth of the smallest
/// limit, in whole units for countable resources.
pub fn default_reserve(limits: &BudgetLimits, countable: bool) -> f64 {
    let smallest = [limits.per_day, limits.per_week, limits.per_month]
        .into_iter()
        .flatten()
        .fold(f64::INFINITY, f64::min);
    if !smallest.is_finite() {
        return 0.0;
    }
    let share = smallest / 20.0;
    if countable { share.ceil() } else { share }
}

/// `[limits]`: how often one contact may be touched.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// At most this many touches per contact in any rolling week.
    pub per_contact_per_week: u32,
    /// At least this long between two touches to one contact.
    pub min_gap: Duration,
    /// No touches in this window of the contact's local time; `None` when set to `"none"`.
    pub quiet_hours: Option<DailyWindow>,
    /// The channels `per_contact_per_week` and `min_gap` count and hold: the ones that
    /// reach the person.
    pub channels: Vec<crate::pacer::Channel>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_contact_per_week: 3,
            min_gap: Duration::from_secs(86_400),
            quiet_hours: Some(DailyWindow::parse("21:00-08:00").expect("valid default")),
            channels: vec![crate::pacer::Channel::Email],
        }
    }
}

/// Reads `[capacity]`; absent keys keep their defaults.
pub(super) fn read_capacity(report: &mut Report<'_>, top: &Fields<'_, '_>) -> Capacity {
    let mut capacity = Capacity::default();
    let Some(fields) = top.get("capacity").and_then(|item| {
        Fields::nested(
            report,
            item,
            "[capacity]",
            &[
                "per_week",
                "target_utilization",
                "horizon",
                "offer_probability",
                "response_delay",
                "max_wait",
            ],
        )
    }) else {
        return capacity;
    };
    if let Some(n) = fields.number(report, "per_week") {
        if *n.get_ref() < 0.0 {
            report.error(n.span().start, "`per_week` must not be negative");
        }
        capacity.per_week = *n.get_ref();
    }
    if let Some(u) = fields.number(report, "target_utilization") {
        let value = *u.get_ref();
        if value <= 0.0 || value > 1.0 {
            report.error(
                u.span().start,
                format!(
                    "`target_utilization` must be above 0 and at most 1 (e.g. 0.85), found {value}"
                ),
            );
        }
        capacity.target_utilization = value;
    }
    if let Some(h) = fields.parsed(report, "horizon", Duration::parse) {
        if *h.get_ref() == Duration::ZERO {
            report.error(h.span().start, "`horizon` must be longer than zero");
        }
        capacity.horizon = h.into_inner();
    }
    if let Some(p) = fields.number(report, "offer_probability") {
        let value = *p.get_ref();
        if !(0.0..=1.0).contains(&value) {
            report.error(
                p.span().start,
                format!("`offer_probability` must be between 0 and 1 (e.g. 0.2), found {value}"),
            );
        }
        capacity.offer_probability = value;
    }
    if let Some(d) = fields.parsed(report, "response_delay", Duration::parse) {
        if *d.get_ref() == Duration::ZERO {
            report.error(d.span().start, "`response_delay` must be longer than zero");
        }
        capacity.response_delay = Some(d.into_inner());
    }
    if let Some(w) = fields.parsed(report, "max_wait", Duration::parse) {
        if *w.get_ref() == Duration::ZERO {
            report.error(
                w.span().start,
                "`max_wait` must be longer than zero (leave it out for no bound)",
            );
        }
        capacity.max_wait = Some(w.into_inner());
    }
    capacity
}

/// Reads `[budget]`: each known resource's limits and first-touch reserve.
pub(super) fn read_budget(
    report: &mut Report<'_>,
    top: &Fields<'_, '_>,
) -> BTreeMap<String, BudgetLimits> {
    let mut budget = BTreeMap::new();
    let Some(fields) = top
        .get("budget")
        .and_then(|item| Fields::nested(report, item, "[budget]", BUDGET_RESOURCES))
    else {
        return budget;
    };
    for (key, item) in fields.entries() {
        let resource: &str = key.get_ref();
        if !BUDGET_RESOURCES.contains(&resource) {
            continue;
        }
        let Some(limits) = Fields::nested(
            report,
            item,
            format!("budget `{resource}`"),
            &["per_day", "per_week", "per_month", "reserve"],
        ) else {
            continue;
        };
        let mut read = |period: &str| {
            let n = limits.number(report, period)?;
            if *n.get_ref() < 0.0 {
                report.error(n.span().start, format!("`{period}` must not be negative"));
            }
            Some(*n.get_ref())
        };
        let parsed = BudgetLimits {
            per_day: read("per_day"),
            per_week: read("per_week"),
            per_month: read("per_month"),
            reserve: read("reserve"),
        };
        budget.insert(resource.to_owned(), parsed);
    }
    budget
}

/// Reads `[costs]`: money per touch of each channel.
pub(super) fn read_costs(report: &mut Report<'_>, top: &Fields<'_, '_>) -> BTreeMap<String, f64> {
    let mut costs = BTreeMap::new();
    let Some(fields) = top
        .get("costs")
        .and_then(|item| Fields::nested(report, item, "[costs]", CHANNELS))
    else {
        return costs;
    };
    for (key, item) in fields.entries() {
        let channel: &str = key.get_ref();
        if !CHANNELS.contains(&channel) {
            continue;
        }
        if let Some(n) = expect_number(report, item, channel) {
            if *n.get_ref() < 0.0 {
                report.error(n.span().start, format!("`{channel}` must not be negative"));
            }
            costs.insert(channel.to_owned(), *n.get_ref());
        }
    }
    costs
}

/// Reads `[limits]`: how often one contact may be touched, and on which channels.
pub(super) fn read_limits(report: &mut Report<'_>, top: &Fields<'_, '_>) -> Limits {
    let mut limits = Limits::default();
    let Some(fields) = top.get("limits").and_then(|item| {
        Fields::nested(
            report,
            item,
            "[limits]",
            &["per_contact_per_week", "min_gap", "quiet_hours", "channels"],
        )
    }) else {
        return limits;
    };
    if let Some(n) = fields.count(report, "per_contact_per_week") {
        if *n.get_ref() == 0 {
            report.error(
                n.span().start,
                "`per_contact_per_week` must be at least 1, or no contact could ever be touched",
            );
        }
        limits.per_contact_per_week = *n.get_ref();
    }
    if let Some(gap) = fields.parsed(report, "min_gap", Duration::parse) {
        limits.min_gap = gap.into_inner();
    }
    let quiet = |text: &str| match text.trim() {
        "none" => Ok(None),
        window => DailyWindow::parse(window).map(Some),
    };
    if let Some(window) = fields.parsed(report, "quiet_hours", quiet) {
        limits.quiet_hours = window.into_inner();
    }
    if fields.has("channels")
        && let Some(list) = fields.str_list(report, "channels")
    {
        let mut channels = Vec::new();
        for name in list {
            let channel = match crate::pacer::Channel::parse(name.get_ref().trim()) {
                Some(channel) => channel,
                None => {
                    let other = name.get_ref().trim();
                    report.error(
                        name.span().start,
                        format!(
                            "unknown channel `{other}` in `channels`; expected one of {}",
                            CHANNELS.join(", ")
                        ),
                    );
                    continue;
                }
            };
            if !channels.contains(&channel) {
                channels.push(channel);
            }
        }
        limits.channels = channels;
    }
    limits
}
