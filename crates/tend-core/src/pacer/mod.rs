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
//! the process's `max_gap`, brought forward to when the contact's quiet hours begin if
//! it falls inside them (it cannot be reached after). Deadlines within the neglect horizon
//! ([`PacerPolicy::neglect_horizon`]) make a touch critical: critical touches go first,
//! earliest deadline first; the rest follow by urgency (see [`DueTouch`]). A critical
//! touch that is deferred (quiet hours, business hours, frequency rules, budget) leaves a
//! [`Reservation`] in the budget state, so the allowance accruing while its contact is
//! out of reach waits for it instead of going to less urgent contacts who happen to be
//! reachable first; so does a touch deferred past the moment it turns critical.
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

mod batch;
mod budget;
mod capacity;
mod deficit;
mod outlook;
mod policy;
mod touch;
mod zones;

#[cfg(test)]
mod tests;

pub use budget::{
    BudgetState, BudgetStatus, Budgets, Limits, Period, Reservation, Resource, Spend, WindowUsage,
};
pub use capacity::{BetaPosterior, CapacityState, CapacityStatus, ResponseDelays};
pub use deficit::{DeficitReport, ProcessLoad, ResourceDeficit, deficit};
pub use outlook::admit_by_day;
pub use policy::{ChannelCosts, PacerError, PacerPolicy};
pub use touch::{
    Channel, ChannelSet, ContactState, ContactStates, Decision, DueTouch, Intent, ProcessId,
    Reason, Substitution, TouchDecision, TouchId,
};
pub use zones::{ZoneId, ZoneTable};

use crate::domain::ContactId;
#[cfg(test)]
use crate::domain::TimeZoneName;
#[cfg(test)]
use crate::duration::Duration;
#[cfg(test)]
use crate::hours::{DailyWindow, WeeklyHours};
#[cfg(test)]
use batch::WEEK_MS;
use batch::{Batch, PriorityKey, Seen, priority_key};
use batch::{IdHasher, ordered_bits, unordered_bits};
use jiff::Timestamp;
#[cfg(test)]
use jiff::tz::TimeZone;
#[cfg(test)]
use std::collections::HashMap;

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
    let mut batch = Batch::new(policy, input.zones, input.budget, input.capacity, now_ms);
    batch.critical_before = critical_horizon;
    let mut order: Vec<(PriorityKey, u32)> = Vec::with_capacity(touches.len());
    let mut deadlines: Vec<i64> = Vec::with_capacity(touches.len());
    for (i, (t, view)) in touches.iter().zip(&mut seen).enumerate() {
        if let Some(view) = view {
            view.scan_recent(now_ms, policy.limited_channels.is_all());
        }
        let deadline = batch.deadline(t, view.as_ref());
        deadlines.push(deadline);
        order.push((
            priority_key(t, view.as_ref(), deadline, now_ms, critical_horizon),
            i as u32,
        ));
    }
    order.sort_unstable();

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
        let decision = batch.decide_one(&touches[i], seen[i].as_ref(), deadlines[i]);
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
    let (budget, budgets) = batch.budget.finish();
    PacerOutput {
        decisions,
        budget,
        summary: PaceSummary {
            at: now,
            sent,
            substituted,
            deferred,
            skipped,
            budgets,
            capacity,
        },
    }
}
