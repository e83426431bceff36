//! Smooth budgets: each resource's allowance accrues evenly over business hours inside
//! calendar windows, and a touch may only spend what has already accrued.
//!
//! Windows align to the business's time zone: a day runs from local midnight to the next
//! local midnight (23 or 25 hours across DST changes), a week is the ISO week starting
//! Monday 00:00, a month starts on the 1st at 00:00. Inside a window the allowance is
//! `limit × open_seconds(window_start, now) / open_seconds(window)`: it reaches the
//! limit exactly when the window's last business hour ends, and unspent allowance stays
//! available until the window closes (it never carries into the next window).

use super::{PacerPolicy, TouchId};
use crate::hours::WeeklyHours;
use jiff::Timestamp;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

mod stored_reservation;

/// A budgeted resource.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Resource {
    /// Emails sent, one per email touch.
    Emails,
    /// Webhooks delivered, one per webhook touch.
    Webhooks,
    /// Staff minutes planned, a task's estimated minutes.
    StaffMinutes,
    /// Money, from the per-channel costs.
    Money,
}

/// Writes the resource's config name (`staff_minutes`).
impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Resource::Emails => "emails",
            Resource::Webhooks => "webhooks",
            Resource::StaffMinutes => "staff_minutes",
            Resource::Money => "money",
        })
    }
}

impl Resource {
    /// Every resource, in index order.
    pub const ALL: [Resource; 4] = [
        Resource::Emails,
        Resource::Webhooks,
        Resource::StaffMinutes,
        Resource::Money,
    ];

    /// Whether amounts of this resource are whole units (money is not).
    pub fn is_countable(self) -> bool {
        !matches!(self, Resource::Money)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A budget window's length; see the module docs for how windows align.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Period {
    /// A calendar day in the business's time zone.
    Day,
    /// An ISO week (Monday to Sunday) in the business's time zone.
    Week,
    /// A calendar month in the business's time zone.
    Month,
}

/// Writes `day`, `week` or `month`, as in `per_day`.
impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        })
    }
}

impl Period {
    /// Every period, in index order.
    pub const ALL: [Period; 3] = [Period::Day, Period::Week, Period::Month];

    /// Average calendar days in one window, for converting limits into daily rates.
    pub fn average_days(self) -> f64 {
        match self {
            Period::Day => 1.0,
            Period::Week => 7.0,
            Period::Month => 365.2425 / 12.0,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Limits of one resource per window; `None` means that window is not limited.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Limits {
    /// Limit per calendar day.
    pub per_day: Option<f64>,
    /// Limit per ISO week.
    pub per_week: Option<f64>,
    /// Limit per calendar month.
    pub per_month: Option<f64>,
}

impl Limits {
    /// The limit for one period.
    pub fn get(&self, period: Period) -> Option<f64> {
        match period {
            Period::Day => self.per_day,
            Period::Week => self.per_week,
            Period::Month => self.per_month,
        }
    }

    /// Sets or clears the limit for one period.
    pub fn set(&mut self, period: Period, limit: Option<f64>) {
        match period {
            Period::Day => self.per_day = limit,
            Period::Week => self.per_week = limit,
            Period::Month => self.per_month = limit,
        }
    }

    /// Whether no period is limited.
    pub fn is_unlimited(&self) -> bool {
        Period::ALL.iter().all(|p| self.get(*p).is_none())
    }
}

/// The `[budget]` table: limits per resource.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Budgets {
    /// Email limits.
    pub emails: Limits,
    /// Webhook limits.
    pub webhooks: Limits,
    /// Staff-minute limits for tasks.
    pub staff_minutes: Limits,
    /// Money limits, in the currency of `[costs]`.
    pub money: Limits,
}

impl Budgets {
    /// The limits of one resource.
    pub fn get(&self, resource: Resource) -> &Limits {
        match resource {
            Resource::Emails => &self.emails,
            Resource::Webhooks => &self.webhooks,
            Resource::StaffMinutes => &self.staff_minutes,
            Resource::Money => &self.money,
        }
    }

    /// The limits of one resource, to change them.
    pub fn get_mut(&mut self, resource: Resource) -> &mut Limits {
        match resource {
            Resource::Emails => &mut self.emails,
            Resource::Webhooks => &mut self.webhooks,
            Resource::StaffMinutes => &mut self.staff_minutes,
            Resource::Money => &mut self.money,
        }
    }

    fn matrix(&self) -> [[Option<f64>; 3]; 4] {
        Resource::ALL.map(|r| Period::ALL.map(|p| self.get(r).get(p)))
    }
}

/// What one touch consumes of each resource.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Spend {
    /// Emails.
    pub emails: f64,
    /// Webhooks.
    pub webhooks: f64,
    /// Staff minutes.
    pub staff_minutes: f64,
    /// Money.
    pub money: f64,
}

impl Spend {
    /// The amount of one resource.
    pub fn get(&self, resource: Resource) -> f64 {
        self.as_array()[resource.index()]
    }

    /// Sets the amount of one resource.
    pub fn set(&mut self, resource: Resource, amount: f64) {
        match resource {
            Resource::Emails => self.emails = amount,
            Resource::Webhooks => self.webhooks = amount,
            Resource::StaffMinutes => self.staff_minutes = amount,
            Resource::Money => self.money = amount,
        }
    }

    pub(crate) fn as_array(&self) -> [f64; 4] {
        [self.emails, self.webhooks, self.staff_minutes, self.money]
    }
}

/// Budget usage to persist between ticks and across restarts: the used amount of every
/// resource in the window that was current when it was spent.
///
/// Entries whose window is no longer current are ignored on load and dropped from the
/// state the pacer returns, so the state stays at most twelve entries. The engine stores
/// the returned state in the same transaction as the decisions that spent it; after a
/// lost state it can rebuild one by folding the sent touches of the current month
/// through [`BudgetState::record`] (reservations are then lost, which only weakens the
/// keep-warm guarantee until they are made again).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BudgetState {
    /// Used amounts per resource and window.
    pub windows: Vec<WindowUsage>,
    /// Allowance held for touches about to neglect their contact.
    #[serde(default)]
    pub reservations: Vec<Reservation>,
}

/// Allowance held for a deferred touch whose contact is about to pass `max_gap`: while
/// the contact waits, less urgent touches may not spend what it will need.
///
/// It holds against touches whose deadline is later (earliest deadline first, then
/// higher expected value, then lower touch id, as the batch order), in every window that
/// contains `until` or has already reached it. It is released when its touch is next
/// decided, and lapses at `expires` in case the touch never comes back. Stored compactly
/// (see `stored_reservation`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reservation {
    /// The touch it is held for.
    pub touch: TouchId,
    /// The contact's `max_gap` deadline, which ranks the hold.
    pub deadline: Timestamp,
    /// The touch's expected value, ranking holds with equal deadlines.
    pub expected_value: f64,
    /// What it holds.
    pub spend: Spend,
    /// When the touch will be presented again.
    pub until: Timestamp,
    /// When the hold lapses.
    pub expires: Timestamp,
}

/// The amount of one resource used in one window.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WindowUsage {
    /// The resource.
    pub resource: Resource,
    /// The window's length.
    pub period: Period,
    /// When the window began; identifies the window.
    pub window_start: Timestamp,
    /// Amount spent in the window.
    pub used: f64,
}

/// One budget window as `GET /api/pace` shows it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BudgetStatus {
    /// The resource.
    pub resource: Resource,
    /// The window's length.
    pub period: Period,
    /// When the current window began.
    pub window_start: Timestamp,
    /// When it ends.
    pub window_end: Timestamp,
    /// The configured limit for the whole window.
    pub limit: f64,
    /// How much of the limit has accrued so far.
    pub accrued: f64,
    /// How much has been spent.
    pub used: f64,
    /// How much is held for contacts about to be neglected.
    pub reserved: f64,
}

impl BudgetState {
    /// The status of every limited resource and window at `now`.
    pub fn status(&self, policy: &PacerPolicy, now: Timestamp) -> Vec<BudgetStatus> {
        Budgeter::new(policy, self, now.as_millisecond()).status()
    }

    /// The amount of `resource` used in the `period` window containing `now`.
    pub fn used(
        &self,
        policy: &PacerPolicy,
        resource: Resource,
        period: Period,
        now: Timestamp,
    ) -> f64 {
        let (start, _) = window_bounds(period, now.as_millisecond(), &policy.business_tz);
        self.windows
            .iter()
            .filter(|w| {
                w.resource == resource
                    && w.period == period
                    && w.window_start.as_millisecond() == start
            })
            .map(|w| w.used)
            .sum()
    }

    /// Adds a spend made at `at` to the windows containing `at`; spends in windows older
    /// than the stored ones are ignored. Folding a ledger of sends in any order through
    /// this rebuilds the state.
    pub fn record(&mut self, policy: &PacerPolicy, at: Timestamp, spend: &Spend) {
        let at_ms = at.as_millisecond();
        for period in Period::ALL {
            let (start_ms, _) = window_bounds(period, at_ms, &policy.business_tz);
            for resource in Resource::ALL {
                let amount = spend.get(resource);
                if amount <= 0.0 {
                    continue;
                }
                let entry = self
                    .windows
                    .iter_mut()
                    .find(|w| w.resource == resource && w.period == period);
                match entry {
                    Some(w) if w.window_start.as_millisecond() == start_ms => w.used += amount,
                    Some(w) if w.window_start.as_millisecond() < start_ms => {
                        w.window_start = ts(start_ms);
                        w.used = amount;
                    }
                    Some(_) => {}
                    None => self.windows.push(WindowUsage {
                        resource,
                        period,
                        window_start: ts(start_ms),
                        used: amount,
                    }),
                }
            }
        }
    }
}

/// Millisecond instant to `Timestamp`, saturating at jiff's range.
pub(crate) fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// The instant of `minute` past local midnight on `date` (`1440` is the next midnight);
/// times skipped by a DST gap resolve past the gap, like `hours.rs` does.
pub(crate) fn local_ms(date: Date, minute: u16, tz: &TimeZone) -> i64 {
    let (date, minute) = if minute >= 1440 {
        (date.tomorrow().unwrap_or(date), minute - 1440)
    } else {
        (date, minute)
    };
    let time = Time::new((minute / 60) as i8, (minute % 60) as i8, 0, 0).unwrap_or(Time::MIN);
    tz.to_ambiguous_timestamp(date.to_datetime(time))
        .compatible()
        .map(|t| t.as_millisecond())
        .unwrap_or(i64::MAX)
}

fn window_dates(period: Period, at_ms: i64, tz: &TimeZone) -> (Date, Date) {
    let date = tz.to_datetime(ts(at_ms)).date();
    let start = match period {
        Period::Day => date,
        Period::Week => date.saturating_sub(
            jiff::Span::new().days(i64::from(date.weekday().to_monday_zero_offset())),
        ),
        Period::Month => date.first_of_month(),
    };
    let end = match period {
        Period::Day => start.tomorrow().unwrap_or(Date::MAX),
        Period::Week => start.saturating_add(jiff::Span::new().days(7)),
        Period::Month => start.last_of_month().tomorrow().unwrap_or(Date::MAX),
    };
    (start, end)
}

/// The `[start, end)` millisecond bounds of the `period` window containing `at_ms`.
pub(crate) fn window_bounds(period: Period, at_ms: i64, tz: &TimeZone) -> (i64, i64) {
    let (start, end) = window_dates(period, at_ms, tz);
    (local_ms(start, 0, tz), local_ms(end, 0, tz))
}

/// A business-hours span inside a window, with the open time before it.
#[derive(Debug, Clone, Copy)]
struct OpenSpan {
    start: i64,
    end: i64,
    before: i64,
}

/// One budget window with its business hours laid out as instants, so accrual and its
/// inverse are binary searches instead of time-zone arithmetic per touch.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    pub(crate) start: i64,
    pub(crate) end: i64,
    spans: Vec<OpenSpan>,
    total: i64,
}

impl Window {
    pub(crate) fn containing(
        period: Period,
        at_ms: i64,
        tz: &TimeZone,
        hours: &WeeklyHours,
    ) -> Self {
        let (first, last) = window_dates(period, at_ms, tz);
        let start = local_ms(first, 0, tz);
        let end = local_ms(last, 0, tz);
        let mut spans: Vec<OpenSpan> = Vec::new();
        let mut total = 0i64;
        let mut date = first;
        while date < last {
            for (s, e) in hours.ranges_on(date) {
                let a = local_ms(date, *s, tz).max(start);
                let b = local_ms(date, *e, tz).min(end);
                match spans.last_mut() {
                    // DST folds can make consecutive spans touch or overlap; merge them so
                    // open time is never counted twice.
                    Some(prev) if a <= prev.end => {
                        let grown = b.max(prev.end);
                        total += grown - prev.end;
                        prev.end = grown;
                    }
                    _ if b > a => {
                        spans.push(OpenSpan {
                            start: a,
                            end: b,
                            before: total,
                        });
                        total += b - a;
                    }
                    _ => {}
                }
            }
            match date.tomorrow() {
                Ok(next) => date = next,
                Err(_) => break,
            }
        }
        Window {
            start,
            end,
            spans,
            total,
        }
    }

    fn open_before(&self, t: i64) -> i64 {
        let idx = self.spans.partition_point(|s| s.start <= t);
        match idx.checked_sub(1).map(|i| &self.spans[i]) {
            Some(s) => s.before + (t.min(s.end) - s.start),
            None => 0,
        }
    }

    /// The share of the window's allowance accrued by `t`, in `[0, 1]`.
    pub(crate) fn fraction(&self, t: i64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let before = self.open_before(t);
        if before >= self.total {
            1.0
        } else {
            before as f64 / self.total as f64
        }
    }

    /// The first instant at which at least `share` of the allowance has accrued.
    fn time_at_fraction(&self, share: f64) -> Option<i64> {
        if self.total == 0 || share.is_nan() || share > 1.0 {
            return None;
        }
        // One extra millisecond absorbs float rounding in `fraction`, so the touch
        // re-presented at this instant fits.
        let target = ((share.max(0.0) * self.total as f64).ceil() as i64 + 1).min(self.total);
        let idx = self
            .spans
            .partition_point(|s| s.before + (s.end - s.start) < target);
        self.spans.get(idx).map(|s| s.start + (target - s.before))
    }
}

/// How many later windows a budget deferral looks through for one that can pay.
const LOOKAHEAD_WINDOWS: usize = 8;

/// The budgets of one batch: limits, accrual at `now`, used and reserved amounts.
pub(crate) struct Budgeter<'p> {
    policy: &'p PacerPolicy,
    limits: [[Option<f64>; 3]; 4],
    /// Per period: the current window first, later ones built only for deferral hints.
    windows: [Vec<Window>; 3],
    fraction: [f64; 3],
    used: [[f64; 3]; 4],
    /// Allowance promised to touches deferred earlier in this batch, so lower-priority
    /// touches cannot take what a higher-priority one is waiting to accrue.
    reserved: [[f64; 3]; 4],
    /// Holds of reservations that rank ahead of the touch being decided.
    held: [[f64; 3]; 4],
    /// Persisted reservations sorted by rank; `None` once released in this batch.
    reservations: Vec<Option<Reservation>>,
    reservation_of: HashMap<TouchId, usize, BuildHasherDefault<super::IdHasher>>,
    /// Reservations before this index have been added to `held`.
    cursor: usize,
    /// Reservations made in this batch.
    made: Vec<Reservation>,
    any_limit: bool,
}

/// Why a spend must wait, and until when.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shortfall {
    /// From when the spend should fit.
    pub(crate) until: i64,
    /// Whether some window's limit is spent, as opposed to not accrued yet.
    pub(crate) spent: bool,
}

/// Rank of a hold: deadline, then higher expected value, then touch id.
pub(crate) type HoldRank = (i64, std::cmp::Reverse<u64>, i64);

/// A held reservation's rank, the order the stored state keeps.
pub(crate) fn rank_of(r: &Reservation) -> HoldRank {
    (
        r.deadline.as_millisecond(),
        std::cmp::Reverse(super::ordered_bits(r.expected_value)),
        r.touch.0,
    )
}

impl<'p> Budgeter<'p> {
    pub(crate) fn new(policy: &'p PacerPolicy, state: &BudgetState, now_ms: i64) -> Self {
        let tz = &policy.business_tz;
        let hours = &policy.business_hours;
        let windows = Period::ALL.map(|p| vec![Window::containing(p, now_ms, tz, hours)]);
        let fraction = std::array::from_fn(|p| windows[p][0].fraction(now_ms));
        let mut used = [[0.0; 3]; 4];
        for w in &state.windows {
            let (r, p) = (w.resource.index(), w.period.index());
            if w.window_start.as_millisecond() == windows[p][0].start && w.used.is_finite() {
                used[r][p] += w.used;
            }
        }
        let limits = policy.budgets.matrix();
        let mut alive: Vec<Reservation> = state
            .reservations
            .iter()
            .filter(|r| r.expires.as_millisecond() > now_ms)
            .copied()
            .collect();
        // One hold per touch, should a merged state carry two.
        let mut holders: std::collections::HashSet<TouchId, BuildHasherDefault<super::IdHasher>> =
            std::collections::HashSet::with_capacity_and_hasher(alive.len(), Default::default());
        alive.retain(|r| holders.insert(r.touch));
        alive.sort_by_key(rank_of);
        let reservation_of = alive
            .iter()
            .enumerate()
            .map(|(i, r)| (r.touch, i))
            .collect();
        Budgeter {
            policy,
            limits,
            windows,
            fraction,
            used,
            reserved: [[0.0; 3]; 4],
            held: [[0.0; 3]; 4],
            reservations: alive.into_iter().map(Some).collect(),
            reservation_of,
            cursor: 0,
            made: Vec::new(),
            any_limit: limits.iter().flatten().any(Option::is_some),
        }
    }

    /// Adds (`sign = 1`) or removes (`-1`) a reservation's hold on the windows it
    /// applies to.
    fn hold(&mut self, r: &Reservation, sign: f64) {
        let until = r.until.as_millisecond();
        let spend = r.spend.as_array();
        for p in 0..3 {
            // A hold for a later window starts counting when that window is current.
            if until < self.windows[p][0].end {
                for (held, amount) in self.held.iter_mut().zip(spend) {
                    if amount.is_finite() && amount > 0.0 {
                        held[p] += sign * amount;
                    }
                }
            }
        }
    }

    /// Releases `touch`'s own reservation, now that it is being decided again.
    pub(crate) fn release(&mut self, touch: TouchId) {
        if self.reservation_of.is_empty() {
            return;
        }
        if let Some(i) = self.reservation_of.remove(&touch)
            && let Some(r) = self.reservations[i].take()
            && i < self.cursor
        {
            self.hold(&r, -1.0);
        }
    }

    /// Counts the holds of every reservation ranked before `rank` (all of them for a
    /// touch without rank, one whose contact is not about to be neglected). Touches must
    /// come in rank order.
    pub(crate) fn advance(&mut self, rank: Option<HoldRank>) {
        while let Some(slot) = self.reservations.get(self.cursor) {
            if let (Some(r), Some(rank)) = (slot, rank)
                && rank_of(r) >= rank
            {
                break;
            }
            if let Some(r) = *slot {
                self.hold(&r, 1.0);
            }
            self.cursor += 1;
        }
    }

    /// Holds `cost` for `touch` until it is presented again at `until_ms`; the hold also
    /// counts against the rest of this batch if `now` is set.
    pub(crate) fn reserve(
        &mut self,
        rank: HoldRank,
        cost: &[f64; 4],
        until_ms: i64,
        expires_ms: i64,
        now: bool,
    ) {
        if !self.any_limit {
            return;
        }
        // A cost larger than a whole window can never be paid; holding it would only
        // block everyone else.
        for (r, c) in cost.iter().enumerate() {
            if self.limits[r].iter().flatten().any(|limit| c > limit) {
                return;
            }
        }
        let (deadline, ev, touch) = rank;
        let r = Reservation {
            touch: TouchId(touch),
            deadline: ts(deadline),
            expected_value: f64::from_bits(super::unordered_bits(ev.0)),
            spend: Spend {
                emails: cost[0],
                webhooks: cost[1],
                staff_minutes: cost[2],
                money: cost[3],
            },
            until: ts(until_ms),
            expires: ts(expires_ms),
        };
        if now {
            self.hold(&r, 1.0);
        }
        self.made.push(r);
    }

    /// Reservations still held, in rank order (the order a fresh load sums them in).
    /// Those loaded are in that order already, so only this batch's few are sorted and
    /// merged in: re-sorting thousands of held reservations on every batch was a tenth
    /// of a forecast's time. Ties keep loaded ones first, as a stable sort would.
    fn live_reservations(&self) -> Vec<Reservation> {
        let mut made = self.made.clone();
        made.sort_by_key(rank_of);
        let mut live = Vec::with_capacity(self.reservations.len() + made.len());
        let mut loaded = self.reservations.iter().flatten().copied().peekable();
        let mut made = made.into_iter().peekable();
        loop {
            let next = match (loaded.peek(), made.peek()) {
                (Some(a), Some(b)) if rank_of(a) <= rank_of(b) => loaded.next(),
                (Some(_), Some(_)) | (None, Some(_)) => made.next(),
                (Some(_), None) => loaded.next(),
                (None, None) => break,
            };
            live.extend(next);
        }
        live
    }

    /// Spends `cost` if every limited window has accrued enough, or, with `ahead`, will
    /// have accrued enough within that much more; never past a window's limit.
    /// Otherwise reserves what it can and says from when the spend should fit.
    pub(crate) fn try_spend(
        &mut self,
        cost: &[f64; 4],
        ahead: Option<&[f64; 4]>,
        now_ms: i64,
    ) -> Result<(), Shortfall> {
        let ahead = ahead.copied().unwrap_or([0.0; 4]);
        if self.any_limit && !self.fits(cost, &ahead) {
            return Err(self.defer(cost, &ahead, now_ms));
        }
        for (r, c) in cost.iter().enumerate() {
            if *c > 0.0 {
                for used in &mut self.used[r] {
                    *used += c;
                }
            }
        }
        Ok(())
    }

    fn fits(&self, cost: &[f64; 4], ahead: &[f64; 4]) -> bool {
        for (r, c) in cost.iter().enumerate() {
            if *c <= 0.0 {
                continue;
            }
            for p in 0..3 {
                if let Some(limit) = self.limits[r][p]
                    && self.used[r][p] + self.reserved[r][p] + self.held[r][p] + c
                        > (limit * self.fraction[p] + ahead[r].max(0.0)).min(limit)
                {
                    return false;
                }
            }
        }
        true
    }

    fn defer(&mut self, cost: &[f64; 4], ahead: &[f64; 4], now_ms: i64) -> Shortfall {
        let mut until = now_ms + 1;
        let mut spent = false;
        for (r, c) in cost.iter().enumerate() {
            if *c <= 0.0 {
                continue;
            }
            for p in 0..3 {
                let Some(limit) = self.limits[r][p] else {
                    continue;
                };
                let needed = self.used[r][p] + self.reserved[r][p] + self.held[r][p] + c;
                let allowed = (limit * self.fraction[p] + ahead[r].max(0.0)).min(limit);
                if needed <= allowed {
                    continue;
                }
                spent |= needed > limit;
                let in_this_window = if needed <= limit {
                    let share = (needed - ahead[r].max(0.0)).max(0.0) / limit;
                    self.windows[p][0].time_at_fraction(share)
                } else {
                    None
                };
                let at = match in_this_window {
                    Some(at) => {
                        self.reserved[r][p] += c;
                        at
                    }
                    // A spend that cannot fit before the window closes reserves nothing
                    // here, so smaller touches may still use the rest of this window.
                    None => self.in_later_window(p, limit, *c, needed - limit),
                };
                until = until.max(at);
            }
        }
        Shortfall { until, spent }
    }

    fn in_later_window(&mut self, p: usize, limit: f64, cost: f64, spill: f64) -> i64 {
        if cost > limit || limit <= 0.0 {
            return self.window(p, 1).start;
        }
        let share = spill.max(cost).min(limit) / limit;
        for k in 1..=LOOKAHEAD_WINDOWS {
            if let Some(at) = self.window(p, k).time_at_fraction(share) {
                return at;
            }
        }
        self.window(p, LOOKAHEAD_WINDOWS).end
    }

    fn window(&mut self, p: usize, k: usize) -> &Window {
        while self.windows[p].len() <= k {
            let last_end = self.windows[p].last().expect("current window").end;
            let next = Window::containing(
                Period::ALL[p],
                last_end,
                &self.policy.business_tz,
                &self.policy.business_hours,
            );
            self.windows[p].push(next);
        }
        &self.windows[p][k]
    }

    /// Limited windows with their accrual and use.
    pub(crate) fn status(&self) -> Vec<BudgetStatus> {
        self.status_of(&self.live_reservations())
    }

    /// The usage to persist and the status of every limited window, reading the held
    /// reservations once for both.
    pub(crate) fn finish(&self) -> (BudgetState, Vec<BudgetStatus>) {
        let live = self.live_reservations();
        let status = self.status_of(&live);
        (self.state_with(live), status)
    }

    /// Limited windows with their accrual and use, `live` being the reservations held.
    fn status_of(&self, live: &[Reservation]) -> Vec<BudgetStatus> {
        // Summed afresh rather than read from the running `held`, so the figure does
        // not carry rounding from reservations released during the batch.
        let mut held = [[0.0; 3]; 4];
        for r in live {
            let until = r.until.as_millisecond();
            for (p, window) in self.windows.iter().enumerate() {
                if until < window[0].end {
                    for (h, amount) in held.iter_mut().zip(r.spend.as_array()) {
                        if amount.is_finite() && amount > 0.0 {
                            h[p] += amount;
                        }
                    }
                }
            }
        }
        let mut out = Vec::new();
        for resource in Resource::ALL {
            for period in Period::ALL {
                let (r, p) = (resource.index(), period.index());
                if let Some(limit) = self.limits[r][p] {
                    let w = &self.windows[p][0];
                    out.push(BudgetStatus {
                        resource,
                        period,
                        window_start: ts(w.start),
                        window_end: ts(w.end),
                        limit,
                        accrued: limit * self.fraction[p],
                        used: self.used[r][p],
                        reserved: held[r][p],
                    });
                }
            }
        }
        out
    }

    /// The usage to persist, `reservations` being those still held.
    fn state_with(&self, reservations: Vec<Reservation>) -> BudgetState {
        let mut windows = Vec::new();
        for resource in Resource::ALL {
            for period in Period::ALL {
                let used = self.used[resource.index()][period.index()];
                if used > 0.0 {
                    windows.push(WindowUsage {
                        resource,
                        period,
                        window_start: ts(self.windows[period.index()][0].start),
                        used,
                    });
                }
            }
        }
        BudgetState {
            windows,
            reservations,
        }
    }
}
