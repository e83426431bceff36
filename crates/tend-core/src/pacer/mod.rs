//! The pacer (DESIGN.md §3): each tick, decide which due touches go now and why the
//! others wait, so marketing runs as a steady background process instead of bursts.
//!
//! [`decide`] is a pure function of its inputs and `now`: no clock, no IO, no
//! randomness. For a batch whose touch ids are distinct, each touch's decision depends
//! on the set of touches, not on their order in the slice.
//!
//! Per touch, in priority order (most urgent first, see [`DueTouch`]):
//! 1. suppressed contact → `skip(suppressed)`; exited enrollment or erased contact →
//!    `skip(exited)`;
//! 2. on the channels the limits count ([`PacerPolicy::limited_channels`]), frequency
//!    cap (touches in the rolling 7 days) or `min_gap` since the last touch →
//!    `defer(frequency_cap)` until both allow it and the channel's hours are open
//!    (reported as `quiet_hours`/`business_hours` instead when those bind longer);
//! 3. offers that would push expected work past the capacity limit →
//!    `defer(capacity)`, or the keep-warm substitution below;
//! 4. emails and webhooks inside the contact's quiet hours (in the contact's own zone)
//!    → `defer(quiet_hours)` until they end; tasks outside the business's hours →
//!    `defer(business_hours)` until it opens;
//! 5. touches whose cost has not accrued yet in every limited budget window → deferred
//!    until it will have (and the channel's hours are open), with reason `budget` when
//!    a window's limit is spent, `business_hours` when the business is closed so
//!    nothing accrues, `budget_accruing` otherwise. The first touch of an enrollment
//!    (email or webhook) may spend ahead of the accrual by
//!    [`PacerPolicy::first_touch_reserve`], never past a window's limit.
//!
//! Priority: a contact's deadline is its last touch (or its enrollment, if later) plus
//! the process's `max_gap`. Deadlines within the neglect horizon
//! ([`PacerPolicy::neglect_horizon`]) make a touch critical: critical touches go first,
//! earliest deadline first; the rest follow by urgency (see [`DueTouch`]). A critical
//! touch that is deferred (quiet hours, business hours, frequency rules, budget) leaves a
//! [`Reservation`] in the budget state, so the allowance accruing while its contact is
//! out of reach waits for it instead of going to less urgent contacts who happen to be
//! reachable first.
//!
//! Touches admitted earlier in the batch count against later ones: they are sent at
//! `now` for the frequency rules, spent for budgets, and in flight for capacity. Once a
//! touch is deferred for budget, the allowance it waits for is reserved, so less urgent
//! touches cannot overtake it on that resource in that window.
//!
//! Keep-warm contract: when an offer is held back by capacity, its process has a
//! keep-warm template, and the contact's `max_gap` deadline falls before
//! `now + neglect_horizon` (see [`PacerPolicy::neglect_horizon`]), the decision is
//! [`Decision::Replace`]. The engine then sends the keep-warm template to the contact
//! now, as a nurture email (the pacer has already charged it to the email and money
//! budgets and counted it against the contact's frequency limits), records it as a touch
//! to the contact, and moves the enrollment past the offer, which is not sent: the offer
//! waited as long as its contact could, and keeping it pending would keep its contact
//! in a pool of held leads that only grows while capacity stays short, each of them
//! costing a keep-warm per `max_gap` for ever. A keep-warm that itself cannot go now
//! (quiet hours, budget) turns the decision into a deferral with that reason. An offer
//! that is not an email (a call, a webhook) and waits for its own budget (staff
//! minutes, say) is different, since that budget does come: if the keep-warm email
//! fits now, it goes as [`Decision::Substitute`], and the offer stays pending until
//! `offer_retry_at`, when its budget should allow.

mod budget;
mod capacity;
mod deficit;
mod zones;

#[cfg(test)]
mod tests;

pub use budget::{
    BudgetState, BudgetStatus, Budgets, Limits, Period, Reservation, Resource, Spend, WindowUsage,
};
pub use capacity::{BetaPosterior, CapacityState, CapacityStatus, ResponseDelays};
pub use deficit::{DeficitReport, ProcessLoad, ResourceDeficit, deficit};
pub use zones::{ZoneId, ZoneTable};

use crate::domain::{ContactId, TimeZoneName};
use crate::duration::Duration;
use crate::hours::{DailyWindow, WeeklyHours};
use budget::{Budgeter, HoldRank, Shortfall, ts};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

const WEEK_MS: i64 = 604_800_000;
/// Urgency is bucketed so that expected value can break ties: one level per tenth of
/// `max_gap` elapsed since the contact's last touch.
const URGENCY_LEVELS_PER_GAP: i128 = 10;
/// How long a reservation outlives the `until` of its deferral, in case the touch is
/// never presented again (exited, deleted, or the engine was down).
const RESERVATION_GRACE_MS: i64 = 2 * 3_600_000;
/// Float slack so offers that exactly fill capacity are admitted.
const CAPACITY_EPSILON: f64 = 1e-9;

/// A touch's database id.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct TouchId(pub i64);

/// A process's database id.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct ProcessId(pub i64);

/// How a touch reaches the contact.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// An email to the contact; subject to quiet hours.
    Email,
    /// A webhook about the contact; subject to quiet hours, as it usually reaches them.
    Webhook,
    /// Work for a human; planned only within business hours.
    Task,
}

impl Channel {
    /// Every channel, in the order config lists them.
    pub const ALL: [Channel; 3] = [Channel::Email, Channel::Webhook, Channel::Task];

    /// The channel's name in config, process files and storage: `email`, `webhook` or
    /// `task`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Webhook => "webhook",
            Channel::Task => "task",
        }
    }

    /// The channel of that name, as [`Channel::as_str`] writes it.
    pub fn parse(name: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

/// Writes the channel's config name (`email`).
impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of channels, such as those `[limits] channels` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ChannelSet(u8);

impl ChannelSet {
    /// Email only: what reaches the person in the default configuration.
    pub const EMAIL: ChannelSet = ChannelSet(1);
    /// Every channel.
    pub const ALL: ChannelSet = ChannelSet(0b111);

    fn bit(channel: Channel) -> u8 {
        match channel {
            Channel::Email => 1,
            Channel::Webhook => 2,
            Channel::Task => 4,
        }
    }

    /// The set of these channels.
    pub fn of(channels: &[Channel]) -> Self {
        ChannelSet(channels.iter().fold(0, |bits, c| bits | Self::bit(*c)))
    }

    /// Whether `channel` is in the set.
    pub fn contains(self, channel: Channel) -> bool {
        self.0 & Self::bit(channel) != 0
    }

    /// Whether every channel is in the set.
    pub fn is_all(self) -> bool {
        self == Self::ALL
    }
}

/// Whether a touch asks for something that creates work.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// A call to action; admitted only within capacity.
    Offer,
    /// Keeps the relationship warm; never held back by capacity.
    Nurture,
}

impl Intent {
    /// `offer` or `nurture`, as process files and storage spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Intent::Offer => "offer",
            Intent::Nurture => "nurture",
        }
    }

    /// The intent of that name, as [`Intent::as_str`] writes it.
    pub fn parse(name: &str) -> Option<Intent> {
        [Intent::Offer, Intent::Nurture]
            .into_iter()
            .find(|i| i.as_str() == name)
    }
}

impl std::fmt::Display for Intent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a touch was held back, as the API shows it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A budget window's limit is spent; the touch waits for the next window.
    Budget,
    /// The budget is still accruing over business hours; the touch waits for its share.
    BudgetAccruing,
    /// The business cannot take on the work an offer may create.
    Capacity,
    /// The contact's local quiet hours.
    QuietHours,
    /// The business is closed: a task outside opening hours, or a touch whose budget
    /// accrues only once it opens.
    BusinessHours,
    /// The per-contact weekly cap or minimum gap.
    FrequencyCap,
    /// The contact unsubscribed or is suppressed.
    Suppressed,
    /// The contact left the process (or was erased).
    Exited,
}

/// Writes the name the API uses (`quiet_hours`).
impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reason::Budget => "budget",
            Reason::BudgetAccruing => "budget_accruing",
            Reason::Capacity => "capacity",
            Reason::QuietHours => "quiet_hours",
            Reason::BusinessHours => "business_hours",
            Reason::FrequencyCap => "frequency_cap",
            Reason::Suppressed => "suppressed",
            Reason::Exited => "exited",
        })
    }
}

impl Reason {
    /// Every reason.
    pub const ALL: [Reason; 8] = [
        Reason::Budget,
        Reason::BudgetAccruing,
        Reason::Capacity,
        Reason::QuietHours,
        Reason::BusinessHours,
        Reason::FrequencyCap,
        Reason::Suppressed,
        Reason::Exited,
    ];
}

/// What is sent instead of a held-back offer.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Substitution {
    /// The process's keep-warm template, sent as a nurture email.
    KeepWarm,
}

/// The pacer's verdict on one touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Dispatch now; its budget has been charged.
    Send,
    /// Present the touch again at `until` (always after `now`).
    Defer {
        /// When to present it again: when the blocking condition is expected to lift.
        until: Timestamp,
        /// The condition.
        reason: Reason,
    },
    /// Send the substitute now and keep the touch pending until `offer_retry_at`; see the
    /// module docs for the contract.
    Substitute {
        /// What to send instead.
        with: Substitution,
        /// When to present the held-back offer again.
        offer_retry_at: Timestamp,
    },
    /// Send the substitute now in the offer's place: the offer is not sent and the
    /// contact's sequence moves on past it, as if it had been. Given to an offer held
    /// back by capacity when its contact needs a touch, so held offers never pile up
    /// into a pool that keep-warm emails must serve for ever.
    Replace {
        /// What to send instead.
        with: Substitution,
    },
    /// Drop the touch; it must never be sent.
    Skip {
        /// Why.
        reason: Reason,
    },
}

/// A decision labelled with its touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct TouchDecision {
    /// The touch decided on.
    pub touch: TouchId,
    /// The decision.
    #[serde(flatten)]
    pub decision: Decision,
}

/// A touch that is due, with what the pacer needs to know about its step and process.
///
/// Priority: a contact's deadline is the time it last heard from Tend — its last touch
/// from any process, or its enrollment in this process if that is later — plus
/// `max_gap`. Touches whose deadline has passed or falls within the neglect horizon
/// ([`PacerPolicy::neglect_horizon`]) come first, earliest deadline first.
/// The others follow by urgency, the time waited in tenths of `max_gap`, so every waiting
/// contact rises over time; equal urgency goes to higher `expected_value`, then earlier
/// `due`, then lower touch id.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DueTouch {
    /// The touch's id.
    pub touch: TouchId,
    /// Who it is for.
    pub contact: ContactId,
    /// The process it belongs to.
    pub process: ProcessId,
    /// Index of the step in the process.
    pub step: u32,
    /// Email, webhook or task.
    pub channel: Channel,
    /// Offer or nurture.
    pub intent: Intent,
    /// Estimated staff minutes, for tasks.
    pub minutes: u32,
    /// When the step became due (after a deferral, the `until` it was given).
    pub due: Timestamp,
    /// When the contact enrolled in the process; the promise runs from here until the
    /// first touch. Not `due`, which moves with every deferral.
    pub enrolled_at: Timestamp,
    /// The process's promise: longest wait between touches to an enrolled contact.
    pub max_gap: Duration,
    /// Whether the process has a keep-warm template.
    pub keep_warm: bool,
    /// Whether the contact has left this process; an enrollment fact, unlike suppression.
    pub exited: bool,
    /// Value if the touch succeeds; only orders touches of equal urgency.
    pub expected_value: f64,
    /// Probability that an offer creates work (see [`BetaPosterior`]).
    pub offer_probability: f64,
    /// The first touch of its enrollment: an email or webhook goes at any hour the
    /// contact's quiet hours allow, spending ahead of the accrual from
    /// [`PacerPolicy::first_touch_reserve`], since a first reply is what a new lead waits for.
    pub first: bool,
}

/// What the pacer knows about a contact.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ContactState {
    /// Unsubscribed or otherwise suppressed: nothing may be sent.
    pub suppressed: bool,
    /// The contact's time zone; an id the [`ZoneTable`] did not issue means the
    /// business's zone.
    pub zone: ZoneId,
    /// The last touch to the contact from any process.
    pub last_touch: Option<Timestamp>,
    /// Every touch to the contact in the last 7 days on a channel the frequency limits
    /// count ([`PacerPolicy::limited_channels`]), any order (older ones are ignored).
    pub recent: Vec<Timestamp>,
}

/// Where the pacer looks up contacts' state; a contact without state is treated as
/// erased.
pub trait ContactStates {
    /// The state of `id`, if known.
    fn contact_state(&self, id: ContactId) -> Option<&ContactState>;
}

impl<S: BuildHasher> ContactStates for HashMap<ContactId, ContactState, S> {
    fn contact_state(&self, id: ContactId) -> Option<&ContactState> {
        self.get(&id)
    }
}

impl ContactStates for BTreeMap<ContactId, ContactState> {
    fn contact_state(&self, id: ContactId) -> Option<&ContactState> {
        self.get(&id)
    }
}

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

/// Everything one tick hands the pacer besides the policy and `now`.
#[derive(Debug, Clone, Copy)]
pub struct PacerInput<'a, C: ?Sized> {
    /// The due touches (a bounded batch).
    pub touches: &'a [DueTouch],
    /// State of at least the batch's contacts.
    pub contacts: &'a C,
    /// The zones `ContactState::zone` refers to.
    pub zones: &'a ZoneTable,
    /// Budget usage so far.
    pub budget: &'a BudgetState,
    /// Capacity; `None` means offers are not limited by capacity.
    pub capacity: Option<CapacityState>,
}

/// Counts of held-back touches per reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReasonCounts {
    /// Held because a budget window's limit is spent.
    pub budget: u32,
    /// Held while the budget accrues.
    #[serde(default)]
    pub budget_accruing: u32,
    /// Held for capacity.
    pub capacity: u32,
    /// Held for the contact's quiet hours.
    pub quiet_hours: u32,
    /// Tasks held for business hours.
    pub business_hours: u32,
    /// Held for the frequency cap or minimum gap.
    pub frequency_cap: u32,
    /// Suppressed contacts.
    pub suppressed: u32,
    /// Exited enrollments.
    pub exited: u32,
}

impl ReasonCounts {
    /// The count for one reason.
    pub fn get(&self, reason: Reason) -> u32 {
        match reason {
            Reason::Budget => self.budget,
            Reason::BudgetAccruing => self.budget_accruing,
            Reason::Capacity => self.capacity,
            Reason::QuietHours => self.quiet_hours,
            Reason::BusinessHours => self.business_hours,
            Reason::FrequencyCap => self.frequency_cap,
            Reason::Suppressed => self.suppressed,
            Reason::Exited => self.exited,
        }
    }

    /// Adds one to a reason's count.
    pub fn add(&mut self, reason: Reason) {
        let slot = match reason {
            Reason::Budget => &mut self.budget,
            Reason::BudgetAccruing => &mut self.budget_accruing,
            Reason::Capacity => &mut self.capacity,
            Reason::QuietHours => &mut self.quiet_hours,
            Reason::BusinessHours => &mut self.business_hours,
            Reason::FrequencyCap => &mut self.frequency_cap,
            Reason::Suppressed => &mut self.suppressed,
            Reason::Exited => &mut self.exited,
        };
        *slot += 1;
    }

    /// The sum over all reasons.
    pub fn total(&self) -> u32 {
        Reason::ALL.iter().map(|r| self.get(*r)).sum()
    }
}

/// A batch's outcome for visibility (`GET /api/pace`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PaceSummary {
    /// The batch's `now`.
    pub at: Timestamp,
    /// Touches to send.
    pub sent: u32,
    /// Offers replaced by keep-warm.
    pub substituted: u32,
    /// Deferred touches per reason.
    pub deferred: ReasonCounts,
    /// Skipped touches per reason.
    pub skipped: ReasonCounts,
    /// Every limited budget window after the batch.
    pub budgets: Vec<BudgetStatus>,
    /// Capacity after the batch, if limited.
    pub capacity: Option<CapacityStatus>,
}

/// What [`decide`] returns.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PacerOutput {
    /// One decision per input touch, in input order.
    pub decisions: Vec<TouchDecision>,
    /// Budget usage including this batch's sends, to persist with the decisions.
    pub budget: BudgetState,
    /// Counts and budget status.
    pub summary: PaceSummary,
}

/// Decides every touch of `input` at `now`; see the module docs.
pub fn decide<C: ContactStates + ?Sized>(
    policy: &PacerPolicy,
    input: &PacerInput<'_, C>,
    now: Timestamp,
) -> PacerOutput {
    let now_ms = now.as_millisecond();
    let touches = input.touches;
    let critical_horizon = now_ms.saturating_add(policy.neglect_horizon().as_millis());
    // Two passes over the contacts, so the cache misses of one pass (state, then its
    // recent touches) overlap across touches instead of queueing behind each other.
    let mut seen: Vec<Option<Seen<'_>>> = touches
        .iter()
        .map(|t| input.contacts.contact_state(t.contact).map(Seen::head))
        .collect();
    let mut order: Vec<(PriorityKey, u32)> = Vec::with_capacity(touches.len());
    for (i, (t, view)) in touches.iter().zip(&mut seen).enumerate() {
        if let Some(view) = view {
            view.scan_recent(now_ms, policy.limited_channels.is_all());
        }
        order.push((
            priority_key(t, view.as_ref(), now_ms, critical_horizon),
            i as u32,
        ));
    }
    order.sort_unstable();

    let mut batch = Batch::new(policy, input.zones, input.budget, input.capacity, now_ms);
    batch.critical_before = critical_horizon;
    let mut decisions: Vec<TouchDecision> = touches
        .iter()
        .map(|t| TouchDecision {
            touch: t.touch,
            decision: Decision::Send,
        })
        .collect();
    let mut sent = 0;
    let mut substituted = 0;
    let mut deferred = ReasonCounts::default();
    let mut skipped = ReasonCounts::default();
    for (_, i) in order {
        let i = i as usize;
        let decision = batch.decide_one(&touches[i], seen[i].as_ref());
        match decision {
            Decision::Send => sent += 1,
            Decision::Substitute { .. } | Decision::Replace { .. } => substituted += 1,
            Decision::Defer { reason, .. } => deferred.add(reason),
            Decision::Skip { reason } => skipped.add(reason),
        }
        decisions[i].decision = decision;
    }
    let capacity = input.capacity.map(|c| CapacityStatus {
        limit: c.limit(),
        open_work: c.open_work,
        expected_in_flight: c.expected_in_flight,
        admitted: batch.capacity_admitted,
    });
    PacerOutput {
        decisions,
        budget: batch.budget.state(),
        summary: PaceSummary {
            at: now,
            sent,
            substituted,
            deferred,
            skipped,
            budgets: batch.budget.status(),
            capacity,
        },
    }
}

/// A critical touch's rank, the same order the batch uses for it.
fn hold_rank(t: &DueTouch, deadline: i64) -> HoldRank {
    (deadline, Reverse(ordered_bits(t.expected_value)), t.touch.0)
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

/// Sort key, smallest first: critical touches (deadline inside the keep-warm horizon or
/// past) by earliest deadline, then the rest by urgency level descending; then expected
/// value descending, due ascending, touch id ascending.
type PriorityKey = (bool, i64, Reverse<u64>, i64, i64);

fn priority_key(
    t: &DueTouch,
    seen: Option<&Seen<'_>>,
    now_ms: i64,
    critical_horizon: i64,
) -> PriorityKey {
    let reference = waiting_since(t, seen);
    let deadline = reference.saturating_add(t.max_gap.as_millis());
    let primary = if deadline <= critical_horizon {
        // Earliest deadline first is what keeps the most deadlines when the budget
        // cannot serve every critical contact at once.
        deadline
    } else {
        let gap = i128::from(t.max_gap.as_millis());
        let elapsed = i128::from(now_ms.saturating_sub(reference).max(0));
        let level = if gap == 0 {
            i64::MAX
        } else {
            i64::try_from(elapsed * URGENCY_LEVELS_PER_GAP / gap).unwrap_or(i64::MAX)
        };
        -level
    };
    let critical = deadline <= critical_horizon;
    (
        !critical,
        primary,
        Reverse(ordered_bits(t.expected_value)),
        // Critical touches skip `due` so the order matches their reservations' rank.
        if critical { 0 } else { t.due.as_millisecond() },
        t.touch.0,
    )
}

/// Maps an `f64` to a `u64` with the same order; NaN counts as zero.
fn ordered_bits(x: f64) -> u64 {
    let bits = if x.is_nan() { 0.0f64 } else { x }.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// The inverse of [`ordered_bits`], as `f64` bits.
fn unordered_bits(key: u64) -> u64 {
    if key >> 63 == 1 {
        key & !(1 << 63)
    } else {
        !key
    }
}

/// Since when the contact has waited for a touch, as far as this enrollment's promise is
/// concerned.
fn waiting_since(t: &DueTouch, seen: Option<&Seen<'_>>) -> i64 {
    let enrolled = t.enrolled_at.as_millisecond();
    seen.and_then(|s| s.last)
        .map_or(enrolled, |last| last.max(enrolled))
}

/// What a batch needs of a contact's state, read once: with a million contacts the
/// state is cold in cache, and reading it again per decision doubled the cost.
#[derive(Debug, Clone, Copy)]
struct Seen<'s> {
    recent: &'s [Timestamp],
    suppressed: bool,
    zone: ZoneId,
    /// Last touch from any process.
    last: Option<i64>,
    /// Last touch on a channel the frequency limits count.
    last_limited: Option<i64>,
    /// Touches in the rolling week ending at `now` on a channel the limits count.
    in_week: u32,
}

impl<'s> Seen<'s> {
    /// Reads the state itself.
    fn head(c: &'s ContactState) -> Self {
        Seen {
            recent: &c.recent,
            suppressed: c.suppressed,
            zone: c.zone,
            last: c.last_touch.map(|t| t.as_millisecond()),
            last_limited: None,
            in_week: 0,
        }
    }

    /// Reads the recent touches the state points to; with `all_limited`, every touch
    /// counts for the limits, the last one of any channel too.
    fn scan_recent(&mut self, now_ms: i64, all_limited: bool) {
        let from = now_ms - WEEK_MS;
        if all_limited {
            self.last_limited = self.last;
        }
        for t in self.recent {
            let t = t.as_millisecond();
            self.last = self.last.max(Some(t));
            self.last_limited = self.last_limited.max(Some(t));
            self.in_week += u32::from(t > from);
        }
    }
}

/// Multiplicative hashing for ids: fast, and no per-process random seed is needed since
/// the map is only used for lookups.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64);
    }
}

#[derive(Clone, Copy)]
enum QuietNow {
    Unknown,
    Open,
    Until(i64),
}

/// The running state of one batch.
struct Batch<'a> {
    policy: &'a PacerPolicy,
    zones: &'a ZoneTable,
    now_ms: i64,
    budget: Budgeter<'a>,
    capacity: Option<CapacityState>,
    capacity_admitted: f64,
    /// Once one offer is held for capacity, later (less urgent) offers are too, so a
    /// stream of small offers cannot starve a larger, more urgent one.
    capacity_closed: bool,
    /// Deadlines up to this instant are about to pass (see `neglect_horizon`).
    critical_before: i64,
    /// `None` while the business is open; otherwise when it opens next.
    business_opens: Option<i64>,
    /// Per zone (plus one slot for the business zone): quiet-hours status at `now`.
    quiet_now: Vec<QuietNow>,
    /// Touches admitted to each contact in this batch, all at `now`.
    admitted: HashMap<ContactId, u32, BuildHasherDefault<IdHasher>>,
}

impl<'a> Batch<'a> {
    fn new(
        policy: &'a PacerPolicy,
        zones: &'a ZoneTable,
        budget: &BudgetState,
        capacity: Option<CapacityState>,
        now_ms: i64,
    ) -> Self {
        let now = ts(now_ms);
        let tz = &policy.business_tz;
        let business_opens = if policy.business_hours.is_open_at(tz.to_datetime(now)) {
            None
        } else {
            Some(policy.business_hours.next_open(now, tz).as_millisecond())
        };
        Batch {
            policy,
            zones,
            now_ms,
            budget: Budgeter::new(policy, budget, now_ms),
            capacity,
            capacity_admitted: 0.0,
            capacity_closed: false,
            critical_before: now_ms,
            business_opens,
            quiet_now: vec![QuietNow::Unknown; zones.len() + 1],
            admitted: HashMap::default(),
        }
    }

    fn zone(&self, id: ZoneId) -> (&'a TimeZone, usize) {
        match self.zones.get(id) {
            Some(tz) => (tz, id.0 as usize),
            None => (&self.policy.business_tz, self.zones.len()),
        }
    }

    fn quiet_until_now(&mut self, zone: ZoneId) -> Option<i64> {
        let quiet = self.policy.quiet_hours?;
        let (tz, slot) = self.zone(zone);
        if let QuietNow::Unknown = self.quiet_now[slot] {
            self.quiet_now[slot] = match quiet.end_after(ts(self.now_ms), tz) {
                Some(end) => QuietNow::Until(end.as_millisecond()),
                None => QuietNow::Open,
            };
        }
        match self.quiet_now[slot] {
            QuietNow::Until(end) => Some(end),
            _ => None,
        }
    }

    fn time_block_now(&mut self, channel: Channel, zone: ZoneId) -> Option<(Reason, i64)> {
        match channel {
            Channel::Task => self.business_opens.map(|at| (Reason::BusinessHours, at)),
            Channel::Email | Channel::Webhook => self
                .quiet_until_now(zone)
                .map(|end| (Reason::QuietHours, end)),
        }
    }

    /// The first instant at or after `at_ms` the channel's hours allow.
    fn next_allowed(&self, channel: Channel, zone: ZoneId, at_ms: i64) -> i64 {
        match channel {
            Channel::Task => self
                .policy
                .business_hours
                .next_open(ts(at_ms), &self.policy.business_tz)
                .as_millisecond(),
            Channel::Email | Channel::Webhook => match self.policy.quiet_hours {
                Some(quiet) => quiet
                    .end_after(ts(at_ms), self.zone(zone).0)
                    .map_or(at_ms, |t| t.as_millisecond()),
                None => at_ms,
            },
        }
    }

    /// When the weekly cap and minimum gap would next allow a touch, if they block now.
    fn frequency_until(&self, c: &Seen<'_>, admitted: u32) -> Option<i64> {
        let now = self.now_ms;
        let mut until = None;
        let gap = self.policy.min_gap.as_millis();
        if gap > 0 {
            let last = c.last_limited.max((admitted > 0).then_some(now));
            if let Some(last) = last
                && now < last.saturating_add(gap)
            {
                until = Some(last.saturating_add(gap));
            }
        }
        if let Some(cap) = self.policy.per_contact_per_week {
            let cap = cap.max(1) as usize;
            let from = now - WEEK_MS;
            let in_window = c.in_week as usize + admitted as usize;
            if in_window >= cap {
                // The touch fits once the (in_window - cap)-th oldest touch in the
                // window is a week old.
                let mut times: Vec<i64> = c
                    .recent
                    .iter()
                    .map(|t| t.as_millisecond())
                    .filter(|t| *t > from)
                    .chain(std::iter::repeat_n(now, admitted as usize))
                    .collect();
                let k = in_window - cap;
                let (_, kth, _) = times.select_nth_unstable(k);
                let cap_until = kth.saturating_add(WEEK_MS);
                until = Some(until.map_or(cap_until, |u: i64| u.max(cap_until)));
            }
        }
        until
    }

    fn defer(&self, reason: Reason, until_ms: i64) -> Decision {
        Decision::Defer {
            until: ts(until_ms.max(self.now_ms + 1)),
            reason,
        }
    }

    fn admit(&mut self, contact: ContactId) {
        *self.admitted.entry(contact).or_insert(0) += 1;
    }

    fn decide_one(&mut self, t: &DueTouch, seen: Option<&Seen<'_>>) -> Decision {
        self.budget.release(t.touch);
        let Some(c) = seen else {
            return Decision::Skip {
                reason: Reason::Exited,
            };
        };
        if c.suppressed {
            return Decision::Skip {
                reason: Reason::Suppressed,
            };
        }
        if t.exited {
            return Decision::Skip {
                reason: Reason::Exited,
            };
        }
        let deadline = waiting_since(t, Some(c)).saturating_add(t.max_gap.as_millis());
        let critical = deadline <= self.critical_before;
        let rank = critical.then(|| hold_rank(t, deadline));
        self.budget.advance(rank);
        let cost = self.policy.cost_of(t.channel, t.minutes).as_array();
        let limited = self.policy.limited_channels.contains(t.channel);
        let admitted = self.admitted.get(&t.contact).copied().unwrap_or(0);
        if limited && let Some(f) = self.frequency_until(c, admitted) {
            let (reason, until) = match self.time_block_now(t.channel, c.zone) {
                Some((reason, end)) if f < end => (reason, end),
                _ => (
                    Reason::FrequencyCap,
                    self.next_allowed(t.channel, c.zone, f),
                ),
            };
            return self.defer_holding(rank, &cost, reason, until, false);
        }

        // Capacity comes before the offer's own hours: a held offer is not sent anyway,
        // and its keep-warm substitute has hours of its own.
        let probability = if t.offer_probability.is_nan() {
            1.0
        } else {
            t.offer_probability.clamp(0.0, 1.0)
        };
        let counts_for_capacity = t.intent == Intent::Offer && self.capacity.is_some();
        if counts_for_capacity && let Some(cap) = self.capacity {
            let over =
                cap.load() + self.capacity_admitted + probability > cap.limit() + CAPACITY_EPSILON;
            if self.capacity_closed || over {
                self.capacity_closed = true;
                return self.hold_for_capacity(t, c, rank);
            }
        }

        if let Some((reason, end)) = self.time_block_now(t.channel, c.zone) {
            return self.defer_holding(rank, &cost, reason, end, false);
        }

        let ahead = (t.first && t.channel != Channel::Task)
            .then(|| self.policy.first_touch_reserve.as_array());
        match self.budget.try_spend(&cost, ahead.as_ref(), self.now_ms) {
            Ok(()) => {
                if limited {
                    self.admit(t.contact);
                }
                if counts_for_capacity {
                    self.capacity_admitted += probability;
                }
                Decision::Send
            }
            Err(short) => {
                let reason = self.budget_reason(short);
                let mut until = self.next_allowed(t.channel, c.zone, short.until);
                // A call waiting for staff time must not leave its contact untouched
                // past `max_gap` when an email can still go.
                if t.intent == Intent::Offer && t.keep_warm && t.channel != Channel::Email {
                    if rank.is_some() {
                        return match self.keep_warm_now(t, c, Some(until)) {
                            Ok(decision) => decision,
                            // Look again as soon as the keep-warm could go, not only
                            // once the offer's own budget allows: that may be too late.
                            Err((reason, at, by_budget)) => {
                                let email = self.policy.cost_of(Channel::Email, 0).as_array();
                                self.defer_holding(rank, &email, reason, at.min(until), by_budget)
                            }
                        };
                    }
                    // Not urgent yet: look again by the time it is, in case the budget
                    // still has not come.
                    let horizon = self.critical_before.saturating_sub(self.now_ms);
                    let urgent_at = deadline.saturating_sub(horizon);
                    if urgent_at > self.now_ms {
                        until = until.min(urgent_at);
                    }
                }
                self.defer_holding(rank, &cost, reason, until, true)
            }
        }
    }

    /// Sends keep-warm in place of an offer that is retried at `retry_ms` (at least
    /// `min_gap` from now), or that gives its place to the keep-warm when `retry_ms` is
    /// `None`; if the email cannot go now, says why, from when it could, and whether
    /// the budget held it.
    fn keep_warm_now(
        &mut self,
        t: &DueTouch,
        c: &Seen<'_>,
        retry_ms: Option<i64>,
    ) -> Result<Decision, (Reason, i64, bool)> {
        if let Some(end) = self.quiet_until_now(c.zone) {
            return Err((Reason::QuietHours, end, false));
        }
        let cost = self.policy.cost_of(Channel::Email, 0).as_array();
        if let Err(short) = self.budget.try_spend(&cost, None, self.now_ms) {
            return Err((
                self.budget_reason(short),
                self.next_allowed(Channel::Email, c.zone, short.until),
                true,
            ));
        }
        if self.policy.limited_channels.contains(Channel::Email) {
            self.admit(t.contact);
        }
        let Some(retry_ms) = retry_ms else {
            return Ok(Decision::Replace {
                with: Substitution::KeepWarm,
            });
        };
        let retry = retry_ms.max(self.now_ms + self.policy.min_gap.as_millis());
        Ok(Decision::Substitute {
            with: Substitution::KeepWarm,
            offer_retry_at: ts(retry),
        })
    }

    /// What a budget shortfall is called: spent, the business closed, or accruing.
    fn budget_reason(&self, short: Shortfall) -> Reason {
        if short.spent {
            Reason::Budget
        } else if self.business_opens.is_some() {
            Reason::BusinessHours
        } else {
            Reason::BudgetAccruing
        }
    }

    /// Defers a touch; if its contact is about to be neglected, holds the touch's cost so
    /// the allowance accruing meanwhile waits for it instead of going to less urgent
    /// contacts. A budget deferral (`by_budget`) already queues the touch within this
    /// batch, so its hold starts counting from the next batch.
    fn defer_holding(
        &mut self,
        rank: Option<HoldRank>,
        cost: &[f64; 4],
        reason: Reason,
        until: i64,
        by_budget: bool,
    ) -> Decision {
        let decision = self.defer(reason, until);
        if let Some(rank) = rank
            && let Decision::Defer { until, .. } = decision
        {
            let until = until.as_millisecond();
            let expires = until.saturating_add(RESERVATION_GRACE_MS);
            self.budget.reserve(rank, cost, until, expires, !by_budget);
        }
        decision
    }

    /// An offer held back by capacity: keep-warm if its contact is about to be
    /// neglected, else wait for capacity.
    fn hold_for_capacity(
        &mut self,
        t: &DueTouch,
        c: &Seen<'_>,
        rank: Option<HoldRank>,
    ) -> Decision {
        let recheck = self.policy.capacity_recheck.as_millis().max(1);
        if !(t.keep_warm && rank.is_some()) {
            let until = self.next_allowed(t.channel, c.zone, self.now_ms + recheck);
            return self.defer(Reason::Capacity, until);
        }
        match self.keep_warm_now(t, c, None) {
            Ok(decision) => decision,
            Err((reason, at, by_budget)) => {
                let email = self.policy.cost_of(Channel::Email, 0).as_array();
                self.defer_holding(rank, &email, reason, at, by_budget)
            }
        }
    }
}
