//! One batch's decisions, touch by touch, in priority order.

use super::budget::{Budgeter, HoldRank, Shortfall, ts};
use super::*;
use jiff::tz::TimeZone;
use std::cmp::Reverse;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

pub(super) const WEEK_MS: i64 = 604_800_000;
const DAY_MS: i64 = 86_400_000;
/// Urgency is bucketed so that expected value can break ties: one level per tenth of
/// `max_gap` elapsed since the contact's last touch.
const URGENCY_LEVELS_PER_GAP: i128 = 10;
/// How long a reservation outlives the `until` of its deferral, in case the touch is
/// never presented again (exited, deleted, or the engine was down).
const RESERVATION_GRACE_MS: i64 = 2 * 3_600_000;
/// Float slack so offers that exactly fill capacity are admitted.
const CAPACITY_EPSILON: f64 = 1e-9;

/// A critical touch's rank, the same order the batch uses for it.
pub(super) fn hold_rank(t: &DueTouch, deadline: i64) -> HoldRank {
    (deadline, Reverse(ordered_bits(t.expected_value)), t.touch.0)
}

/// Sort key, smallest first: critical touches (deadline inside the keep-warm horizon or
/// past) by earliest deadline, then the rest by urgency level descending; then expected
/// value descending, due ascending, touch id ascending.
pub(super) type PriorityKey = (bool, i64, Reverse<u64>, i64, i64);

pub(super) fn priority_key(
    t: &DueTouch,
    seen: Option<&Seen<'_>>,
    deadline: i64,
    now_ms: i64,
    critical_horizon: i64,
) -> PriorityKey {
    let reference = waiting_since(t, seen);
    let primary = if deadline <= critical_horizon {
        // Earliest deadline first is what keeps the most deadlines when the budget
        // cannot serve every critical contact at once.
        deadline
    } else if t.after_sequence && t.intent == Intent::Offer {
        // Ahead of every urgency level: what capacity has left goes to these offers,
        // by expected value, before in-sequence touches that can still wait.
        i64::MIN
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
pub(super) fn ordered_bits(x: f64) -> u64 {
    let bits = if x.is_nan() { 0.0f64 } else { x }.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// The inverse of [`ordered_bits`], as `f64` bits.
pub(super) fn unordered_bits(key: u64) -> u64 {
    if key >> 63 == 1 {
        key & !(1 << 63)
    } else {
        !key
    }
}

/// Since when the contact has waited for a touch, as far as this enrollment's promise is
/// concerned.
pub(super) fn waiting_since(t: &DueTouch, seen: Option<&Seen<'_>>) -> i64 {
    let enrolled = t.enrolled_at.as_millisecond();
    seen.and_then(|s| s.last)
        .map_or(enrolled, |last| last.max(enrolled))
}

/// What a batch needs of a contact's state, read once: with a million contacts the
/// state is cold in cache, and reading it again per decision doubled the cost.
#[derive(Debug, Clone, Copy)]
pub(super) struct Seen<'s> {
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
    pub(super) fn head(c: &'s ContactState) -> Self {
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
    pub(super) fn scan_recent(&mut self, now_ms: i64, all_limited: bool) {
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
pub(super) struct IdHasher(u64);

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
pub(super) struct Batch<'a> {
    policy: &'a PacerPolicy,
    zones: &'a ZoneTable,
    now_ms: i64,
    pub(super) budget: Budgeter<'a>,
    capacity: Option<CapacityState>,
    pub(super) capacity_admitted: f64,
    /// Once one offer is held for capacity, later (less urgent) offers are too, so a
    /// stream of small offers cannot starve a larger, more urgent one.
    capacity_closed: bool,
    /// Deadlines up to this instant are about to pass (see `neglect_horizon`).
    pub(super) critical_before: i64,
    /// For the touch being decided, if not critical yet: its rank and when its
    /// deadline turns critical.
    critical_from: Option<(HoldRank, i64)>,
    /// `None` while the business is open; otherwise when it opens next.
    business_opens: Option<i64>,
    /// Per zone (plus one slot for the business zone): quiet-hours status at `now`.
    quiet_now: Vec<QuietNow>,
    /// Touches admitted to each contact in this batch, all at `now`.
    admitted: HashMap<ContactId, u32, BuildHasherDefault<IdHasher>>,
}

impl<'a> Batch<'a> {
    pub(super) fn new(
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
            critical_from: None,
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

    /// When the contact of `t` must be reached by: its `max_gap` deadline, or, when the
    /// deadline falls inside the contact's quiet hours, the moment those began, since
    /// it cannot be reached after. Ranking by it serves first the contacts whose
    /// reachable hours end soonest, such as those awake only while no budget accrues.
    pub(super) fn deadline(&self, t: &DueTouch, seen: Option<&Seen<'_>>) -> i64 {
        let nominal = waiting_since(t, seen).saturating_add(t.max_gap.as_millis());
        let (Some(c), Some(quiet)) = (seen, self.policy.quiet_hours) else {
            return nominal;
        };
        // Only deadlines that may be critical: quiet hours last less than a day.
        if t.channel == Channel::Task || nominal > self.critical_before.saturating_add(DAY_MS) {
            return nominal;
        }
        quiet
            .start_before(ts(nominal), self.zone(c.zone).0)
            .map_or(nominal, |start| {
                start.as_millisecond().saturating_sub(1).min(nominal)
            })
    }

    pub(super) fn decide_one(
        &mut self,
        t: &DueTouch,
        seen: Option<&Seen<'_>>,
        deadline: i64,
    ) -> Decision {
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
        let critical = deadline <= self.critical_before;
        let rank = critical.then(|| hold_rank(t, deadline));
        self.budget.advance(rank);
        // A touch deferred past the moment its deadline turns critical holds its cost
        // already: it is not presented again before its `until`, and a contact
        // reachable only while no budget accrues (far east of the business, say) would
        // otherwise find the allowance spent on the days in between.
        let horizon = self.critical_before.saturating_sub(self.now_ms);
        self.critical_from =
            (!critical).then(|| (hold_rank(t, deadline), deadline.saturating_sub(horizon)));
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
        let rank = rank.or_else(|| {
            self.critical_from
                .filter(|(_, at)| until >= *at)
                .map(|(rank, _)| rank)
        });
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
