//! Simulation: random policies, contacts, touches and clocks, checked tick by tick
//! against independent computations of the rules.

use super::*;

/// SplitMix64: the tests draw one seed from proptest and derive everything from it,
/// so a failing case is reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const ZONES: [&str; 7] = [
    "Europe/Rome",
    "America/New_York",
    "Asia/Tokyo",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "UTC",
    "America/Sao_Paulo",
];

const HOURS: [&str; 4] = [
    "Mon-Fri 09:00-18:00",
    "Mon-Fri 09:00-13:00, Mon-Fri 14:00-18:00, Sat 09:00-12:00",
    "Mon-Sun 00:00-24:00",
    "Mon-Sun 08:00-20:00",
];

/// Starts near DST changes in several zones, and an ordinary week.
const STARTS: [&str; 6] = [
    "2026-03-06T07:00:00Z",
    "2026-03-26T07:00:00Z",
    "2026-10-23T07:00:00Z",
    "2026-10-29T07:00:00Z",
    "2026-04-02T07:00:00Z",
    "2026-01-28T07:00:00Z",
];

/// Simulation cases per property; `PACER_CASES` raises it for a longer soak.
fn cases(default: u32) -> u32 {
    std::env::var("PACER_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

struct Sim {
    policy: PacerPolicy,
    zones: ZoneTable,
    contacts: HashMap<ContactId, ContactState>,
    pending: Vec<DueTouch>,
    budget: BudgetState,
    capacity: Option<CapacityState>,
    /// Offers sent: (sent at, probability); they count for a week.
    in_flight: Vec<(i64, f64)>,
    /// Every spend, for the independent budget check.
    ledger: Vec<(i64, Spend)>,
    /// Every touch time per contact, history included.
    sends: HashMap<ContactId, Vec<i64>>,
    now: i64,
    next_touch_id: i64,
    /// Also check determinism and order independence on every tick (three decides).
    thorough: bool,
}

/// What a tick sent, for the caller to plan follow-ups.
struct Sent {
    touch: DueTouch,
    substituted: bool,
}

impl Sim {
    fn business_zone(&self) -> &TimeZone {
        &self.policy.business_tz
    }

    fn contact_zone(&self, c: &ContactState) -> TimeZone {
        self.zones
            .get(c.zone)
            .cloned()
            .unwrap_or_else(|| self.business_zone().clone())
    }

    fn decide_now(&self, touches: &[DueTouch]) -> PacerOutput {
        let input = PacerInput {
            touches,
            contacts: &self.contacts,
            zones: &self.zones,
            budget: &self.budget,
            capacity: self.capacity,
        };
        decide(&self.policy, &input, ts_ms(self.now))
    }

    fn tick(&mut self, rng: &mut Rng) -> Result<Vec<Sent>, TestCaseError> {
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) = self
            .pending
            .drain(..)
            .partition(|t| t.due.as_millisecond() <= now);
        self.pending = later;
        for c in self.contacts.values_mut() {
            c.recent.retain(|t| t.as_millisecond() > now - WEEK_MS);
        }
        self.in_flight.retain(|(at, _)| *at > now - WEEK_MS);
        if let Some(cap) = &mut self.capacity {
            cap.expected_in_flight = self.in_flight.iter().map(|(_, p)| p).sum();
        }
        // The budget survives a restart only through its serialized form.
        let json = serde_json::to_string(&self.budget).unwrap();
        self.budget = serde_json::from_str(&json).unwrap();

        let out = self.decide_now(&due);
        prop_assert_eq!(out.decisions.len(), due.len());

        // Deterministic, and independent of input order.
        if self.thorough {
            self.check_deterministic(&due, &out, rng)?;
        }

        let mut sent = Vec::new();
        let mut admitted_probability = 0.0;
        for (t, d) in due.iter().zip(&out.decisions) {
            prop_assert_eq!(t.touch, d.touch);
            match d.decision {
                Decision::Send | Decision::Substitute { .. } | Decision::Replace { .. } => {
                    let substituted = matches!(d.decision, Decision::Substitute { .. });
                    let replaced = matches!(d.decision, Decision::Replace { .. });
                    let channel = if substituted || replaced {
                        Channel::Email
                    } else {
                        t.channel
                    };
                    self.check_may_reach(t, channel)?;
                    let spend = self.policy.cost_of(channel, t.minutes);
                    self.ledger.push((now, spend));
                    self.sends.entry(t.contact).or_default().push(now);
                    let c = self.contacts.get_mut(&t.contact).unwrap();
                    c.last_touch = Some(ts_ms(now));
                    c.recent.push(ts_ms(now));
                    if substituted {
                        prop_assert!(t.intent == Intent::Offer && t.keep_warm);
                        let Decision::Substitute { offer_retry_at, .. } = d.decision else {
                            unreachable!()
                        };
                        prop_assert!(offer_retry_at.as_millisecond() > now);
                        let mut again = *t;
                        again.due = offer_retry_at;
                        self.pending.push(again);
                    } else if replaced {
                        // The offer is given up: the sequence moves on, nothing in flight.
                        prop_assert!(t.intent == Intent::Offer && t.keep_warm);
                    } else if t.intent == Intent::Offer {
                        admitted_probability += t.offer_probability;
                        self.in_flight.push((now, t.offer_probability));
                    }
                    sent.push(Sent {
                        touch: *t,
                        substituted,
                    });
                }
                Decision::Defer { until, reason } => {
                    prop_assert!(until.as_millisecond() > now, "{:?} at {}", d, now);
                    if reason == Reason::Capacity {
                        prop_assert_eq!(t.intent, Intent::Offer);
                    }
                    let mut again = *t;
                    again.due = until;
                    self.pending.push(again);
                }
                Decision::Skip { reason } => {
                    let c = &self.contacts[&t.contact];
                    prop_assert!(c.suppressed || t.exited, "{:?}", reason);
                }
            }
        }
        // Held reservations are stored in rank order (earliest deadline, then higher
        // expected value, then touch id), one per touch: the next batch merges its own
        // into that order rather than sorting them all again.
        prop_assert!(
            out.budget.reservations.windows(2).all(
                |w| crate::pacer::budget::rank_of(&w[0]) < crate::pacer::budget::rank_of(&w[1])
            ),
            "{:?}",
            out.budget.reservations
        );
        self.budget = out.budget.clone();
        self.check_frequency(&sent)?;
        self.check_budgets()?;
        if let Some(cap) = self.capacity
            && admitted_probability > 0.0
        {
            prop_assert!(cap.load() + admitted_probability <= cap.limit() + 1e-6);
        }
        Ok(sent)
    }

    fn check_deterministic(
        &self,
        due: &[DueTouch],
        out: &PacerOutput,
        rng: &mut Rng,
    ) -> Result<(), TestCaseError> {
        let again = self.decide_now(due);
        prop_assert_eq!(&again, out);
        let mut shuffled = due.to_vec();
        for i in (1..shuffled.len()).rev() {
            shuffled.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let out_shuffled = self.decide_now(&shuffled);
        let by_id: HashMap<TouchId, Decision> = out
            .decisions
            .iter()
            .map(|d| (d.touch, d.decision))
            .collect();
        for d in &out_shuffled.decisions {
            prop_assert_eq!(by_id[&d.touch], d.decision);
        }
        prop_assert_eq!(
            &out_shuffled.budget.status(&self.policy, ts_ms(self.now)),
            &out.summary.budgets
        );

        Ok(())
    }

    fn check_may_reach(&self, t: &DueTouch, channel: Channel) -> Result<(), TestCaseError> {
        let c = &self.contacts[&t.contact];
        prop_assert!(!c.suppressed, "sent to a suppressed contact");
        prop_assert!(!t.exited, "sent to an exited enrollment");
        let now = ts_ms(self.now);
        match channel {
            Channel::Task => {
                let local = self.business_zone().to_datetime(now);
                prop_assert!(
                    self.policy.business_hours.is_open_at(local),
                    "task planned at {} business time",
                    local
                );
            }
            Channel::Email | Channel::Webhook => {
                if let Some(quiet) = self.policy.quiet_hours {
                    let local = self.contact_zone(c).to_datetime(now);
                    prop_assert!(
                        !quiet.contains(local.time()),
                        "sent at {} local, quiet {}",
                        local,
                        quiet
                    );
                }
            }
        }
        Ok(())
    }

    fn check_frequency(&self, sent: &[Sent]) -> Result<(), TestCaseError> {
        for s in sent {
            let mut times = self.sends[&s.touch.contact].clone();
            times.sort_unstable();
            if let Some(cap) = self.policy.per_contact_per_week {
                let in_week = times.iter().filter(|t| **t > self.now - WEEK_MS).count();
                prop_assert!(in_week <= cap as usize, "{} touches in a week", in_week);
            }
            let gap = self.policy.min_gap.as_millis();
            if let [.., before, last] = times[..] {
                prop_assert!(last - before >= gap, "touches {}ms apart", last - before);
            }
        }
        Ok(())
    }

    /// Recomputes every limited window from the ledger with jiff's own calendar
    /// arithmetic and `WeeklyHours::open_seconds_between`.
    fn check_budgets(&self) -> Result<(), TestCaseError> {
        let tz = self.business_zone().clone();
        let now = ts_ms(self.now);
        let zdt = now.to_zoned_datetime(tz.clone());
        let date = zdt.date();
        for period in Period::ALL {
            let (first, last) = match period {
                Period::Day => (date, date.tomorrow().unwrap()),
                Period::Week => {
                    let monday = date
                        .checked_sub(
                            jiff::Span::new()
                                .days(i64::from(date.weekday().to_monday_zero_offset())),
                        )
                        .unwrap();
                    (
                        monday,
                        monday.checked_add(jiff::Span::new().days(7)).unwrap(),
                    )
                }
                Period::Month => (
                    date.first_of_month(),
                    date.last_of_month().tomorrow().unwrap(),
                ),
            };
            let start = first.to_zoned_datetime(tz.clone()).unwrap().timestamp();
            let end = last.to_zoned_datetime(tz.clone()).unwrap().timestamp();
            let hours = &self.policy.business_hours;
            let total = hours.open_seconds_between(start, end, &tz) as f64;
            let so_far = hours.open_seconds_between(start, now, &tz) as f64;
            for resource in Resource::ALL {
                let Some(limit) = self.policy.budgets.get(resource).get(period) else {
                    continue;
                };
                let used: f64 = self
                    .ledger
                    .iter()
                    .filter(|(at, _)| *at >= start.as_millisecond() && *at < end.as_millisecond())
                    .map(|(_, s)| s.get(resource))
                    .sum();
                let accrued = if total > 0.0 {
                    limit * so_far / total
                } else {
                    0.0
                };
                prop_assert!(
                    used <= limit + 1e-6,
                    "{:?} per {:?}: used {} of {}",
                    resource,
                    period,
                    used,
                    limit
                );
                prop_assert!(
                    used <= accrued + 1e-6,
                    "{:?} per {:?}: used {} ahead of accrual {} at {}",
                    resource,
                    period,
                    used,
                    accrued,
                    now
                );
            }
        }
        Ok(())
    }

    fn new_touch(&mut self, rng: &mut Rng, contact: ContactId, due: i64) -> DueTouch {
        self.next_touch_id += 1;
        let channel = rng.pick(&[
            Channel::Email,
            Channel::Email,
            Channel::Webhook,
            Channel::Task,
        ]);
        DueTouch {
            touch: TouchId(self.next_touch_id),
            contact,
            process: ProcessId(rng.range(1, 3)),
            step: rng.below(10) as u32,
            channel,
            intent: if rng.chance(35) {
                Intent::Offer
            } else {
                Intent::Nurture
            },
            minutes: rng.range(5, 60) as u32,
            due: ts_ms(due),
            enrolled_at: ts_ms(due - rng.range(0, 20) * DAY_MS),
            max_gap: Duration::from_secs(rng.range(1, 14) as u64 * 86_400),
            keep_warm: rng.chance(60),
            exited: rng.chance(5),
            expected_value: rng.unit() * 100.0,
            offer_probability: rng.unit() * 0.5,
            first: false,
            after_sequence: false,
        }
    }
}

fn random_limit(rng: &mut Rng, lo: f64, hi: f64) -> Option<f64> {
    rng.chance(50)
        .then(|| (lo + rng.unit() * (hi - lo)).round())
}

fn random_sim(rng: &mut Rng) -> Sim {
    let zone = rng.pick(&[
        "Europe/Rome",
        "America/New_York",
        "Australia/Sydney",
        "Asia/Kolkata",
    ]);
    let mut policy = policy(zone, rng.pick(&HOURS));
    policy.quiet_hours = [
        None,
        Some("21:00-08:00"),
        Some("22:00-07:30"),
        Some("12:00-14:00"),
    ][rng.below(4) as usize]
        .map(|q| DailyWindow::parse(q).unwrap());
    let budgets = &mut policy.budgets;
    budgets.emails = Limits {
        per_day: random_limit(rng, 0.0, 30.0),
        per_week: random_limit(rng, 5.0, 120.0),
        per_month: random_limit(rng, 20.0, 400.0),
    };
    budgets.webhooks = Limits {
        per_day: random_limit(rng, 0.0, 20.0),
        per_week: random_limit(rng, 5.0, 80.0),
        per_month: None,
    };
    budgets.staff_minutes = Limits {
        per_day: random_limit(rng, 30.0, 240.0),
        per_week: random_limit(rng, 60.0, 600.0),
        per_month: None,
    };
    budgets.money = Limits {
        per_day: None,
        per_week: rng.chance(50).then(|| 0.05 + rng.unit()),
        per_month: rng.chance(50).then(|| 0.2 + rng.unit() * 3.0),
    };
    policy.costs = ChannelCosts {
        email: rng.unit() * 0.02,
        webhook: rng.unit() * 0.01,
        task: if rng.chance(30) {
            rng.unit() * 0.1
        } else {
            0.0
        },
    };
    policy.per_contact_per_week = rng.chance(60).then(|| rng.range(1, 5) as u32);
    policy.min_gap = Duration::from_secs(rng.pick(&[0u64, 3_600, 43_200, 86_400]));
    policy.keep_warm_margin = Duration::from_secs(rng.pick(&[3_600u64, 43_200, 86_400]));
    policy.capacity_recheck = Duration::from_secs(rng.pick(&[600u64, 3_600, 7_200]));
    policy.validate().unwrap();

    let start = ts(rng.pick(&STARTS)).as_millisecond() + rng.range(0, 24 * 60) * 60_000;
    let mut zones = ZoneTable::new();
    let mut contacts = HashMap::new();
    let mut sends: HashMap<ContactId, Vec<i64>> = HashMap::new();
    let n_contacts = rng.range(10, 80);
    for id in 0..n_contacts {
        let zone = zones.intern(&tz_name(rng.pick(&ZONES)));
        // Some history, respecting the policy as the engine would have.
        let mut history = Vec::new();
        let mut at = start - rng.range(1, 10) * DAY_MS;
        let gap = policy.min_gap.as_millis().max(HOUR_MS);
        while at < start && rng.chance(60) {
            history.push(at);
            at += gap + rng.range(0, 3) * DAY_MS;
        }
        if let Some(cap) = policy.per_contact_per_week {
            history.truncate(cap as usize);
        }
        sends.insert(ContactId(id), history.clone());
        contacts.insert(
            ContactId(id),
            ContactState {
                suppressed: rng.chance(10),
                zone: if rng.chance(5) {
                    ZoneId::BUSINESS
                } else {
                    zone
                },
                last_touch: history.last().map(|t| ts_ms(*t)),
                recent: history
                    .iter()
                    .filter(|t| **t > start - WEEK_MS)
                    .map(|t| ts_ms(*t))
                    .collect(),
            },
        );
    }
    let capacity = rng.chance(70).then(|| CapacityState {
        per_week: rng.range(1, 10) as f64,
        target_utilization: 0.5 + rng.unit() * 0.5,
        horizon: Duration::from_secs(rng.range(1, 3) as u64 * 604_800),
        open_work: rng.unit() * 3.0,
        expected_in_flight: 0.0,
        max_wait: None,
    });
    let mut sim = Sim {
        policy,
        zones,
        contacts,
        pending: Vec::new(),
        budget: BudgetState::default(),
        capacity,
        in_flight: Vec::new(),
        ledger: Vec::new(),
        sends,
        now: start,
        next_touch_id: 0,
        thorough: true,
    };
    for _ in 0..rng.range(20, 200) {
        let contact = ContactId(rng.range(0, n_contacts - 1));
        let due = start + rng.range(-2 * 24 * 60, 5 * 24 * 60) * 60_000;
        let t = sim.new_touch(rng, contact, due);
        sim.pending.push(t);
    }
    sim
}

/// Random policy, contacts and touches, ticked at random intervals; every tick checks
/// the rules (see `Sim::tick`).
fn simulate_random(seed: u64) -> Result<(), TestCaseError> {
    let mut rng = Rng(seed);
    let mut sim = random_sim(&mut rng);
    let ticks = rng.range(60, 200);
    for _ in 0..ticks {
        let sent = sim.tick(&mut rng)?;
        for s in sent {
            if !s.substituted && rng.chance(70) {
                let due = sim.now + rng.range(0, 4 * 24) * HOUR_MS;
                let t = sim.new_touch(&mut rng, s.touch.contact, due);
                sim.pending.push(t);
            }
        }
        sim.now += rng.range(5, 240) * 60_000;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(48), failure_persistence: None, ..ProptestConfig::default() })]

    /// Over random policies and clocks: budgets never exceeded nor spent ahead of
    /// accrual, nothing to suppressed or exited contacts, nothing in quiet hours or
    /// outside business hours for tasks, caps and gaps respected, capacity respected,
    /// decisions deterministic and independent of input order.
    #[test]
    fn simulated_ticks_keep_every_rule(seed in any::<u64>()) {
        simulate_random(seed)?;
    }

    /// A batch in any order gets the same decisions, touch by touch.
    #[test]
    fn decisions_do_not_depend_on_input_order(seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let mut sim = random_sim(&mut rng);
        sim.now += 5 * DAY_MS;
        let mut touches = sim.pending.clone();
        let a = sim.decide_now(&touches);
        touches.reverse();
        let b = sim.decide_now(&touches);
        let by_id: HashMap<_, _> = a.decisions.iter().map(|d| (d.touch, d.decision)).collect();
        for d in &b.decisions {
            prop_assert_eq!(by_id[&d.touch], d.decision);
        }
        prop_assert_eq!(a.budget, b.budget);
        prop_assert_eq!(a.summary, b.summary);
    }
}

/// A process for the starvation check: steps every `wait`, some offers with keep-warm.
///
/// `scarce`: the budget covers the steps' demand (ample) or only the promise, one touch
/// per contact per `max_gap` with some slack, so most steps must wait and only aging
/// keeps low-value contacts from being crowded out.
fn served_within_max_gap(seed: u64, scarce: bool) -> Result<(), TestCaseError> {
    let mut rng = Rng(seed);
    let weekdays_only = rng.chance(50);
    let hours = if weekdays_only {
        "Mon-Fri 09:00-18:00"
    } else {
        "Mon-Sun 08:00-20:00"
    };
    let mut policy = policy("Europe/Rome", hours);
    policy.quiet_hours = Some(DailyWindow::parse("21:00-08:00").unwrap());
    let max_gap_days = rng.range(7, 12);
    let n = rng.range(20, 120);
    // Values are skewed so that value alone would always pick the same contacts.
    let (wait_ms, per_day_need, factor) = if scarce {
        let wait_ms = rng.range(12, 36) * HOUR_MS;
        (
            wait_ms,
            n as f64 / max_gap_days as f64,
            1.6 + rng.unit() * 0.4,
        )
    } else {
        let wait_ms = rng.range(2 * 24, (max_gap_days - 4) * 24) * HOUR_MS;
        let need = n as f64 * DAY_MS as f64 / wait_ms as f64;
        (wait_ms, need, 1.5 + rng.unit())
    };
    if weekdays_only {
        // A daily limit would pay nothing at weekends; a weekly one carries over.
        policy.budgets.emails.per_week = Some((per_day_need * 7.0 * factor).ceil());
    } else {
        policy.budgets.emails.per_day = Some((per_day_need * factor).ceil());
    }
    policy.costs.email = 0.001;
    policy.min_gap = Duration::from_secs(12 * 3_600);
    policy.per_contact_per_week = Some(7);
    // Contacts far east of the business are awake only a few of its budget hours, so
    // the keep-warm must start trying well ahead (the weekend is added by the pacer).
    policy.keep_warm_margin = Duration::from_secs(2 * 86_400);
    let mut sim = Sim {
        policy,
        zones: ZoneTable::new(),
        contacts: HashMap::new(),
        pending: Vec::new(),
        budget: BudgetState::default(),
        capacity: Some(CapacityState {
            per_week: rng.range(1, 4) as f64,
            target_utilization: 0.8,
            horizon: Duration::from_secs(2 * 604_800),
            open_work: 0.0,
            expected_in_flight: 0.0,
            max_wait: None,
        }),
        in_flight: Vec::new(),
        ledger: Vec::new(),
        sends: HashMap::new(),
        now: ts(rng.pick(&STARTS)).as_millisecond(),
        next_touch_id: 0,
        thorough: false,
    };
    let start = sim.now;
    let mut enrolled_at = HashMap::new();
    for id in 0..n {
        let contact = ContactId(id);
        let zone = sim.zones.intern(&tz_name(rng.pick(&ZONES)));
        sim.contacts.insert(
            contact,
            ContactState {
                zone,
                ..ContactState::default()
            },
        );
        sim.sends.insert(contact, Vec::new());
        let at = start + rng.range(0, 24 * 60) * 60_000;
        enrolled_at.insert(contact, at);
        let mut t = sim.new_touch(&mut rng, contact, at);
        t.enrolled_at = ts_ms(at);
        t.channel = Channel::Email;
        t.exited = false;
        t.keep_warm = true;
        t.max_gap = Duration::from_secs(max_gap_days as u64 * 86_400);
        t.expected_value = if id % 10 == 0 {
            1_000.0
        } else {
            rng.unit() * 100.0
        };
        sim.pending.push(t);
    }
    let end = start + 5 * max_gap_days * DAY_MS;
    while sim.now < end {
        let sent = sim.tick(&mut rng)?;
        for s in sent {
            if !s.substituted {
                let mut next = s.touch;
                sim.next_touch_id += 1;
                next.touch = TouchId(sim.next_touch_id);
                next.due = ts_ms(sim.now + wait_ms);
                next.intent = if rng.chance(40) {
                    Intent::Offer
                } else {
                    Intent::Nurture
                };
                sim.pending.push(next);
            }
        }
        sim.now += rng.range(15, 60) * 60_000;
    }
    let max_gap = max_gap_days * DAY_MS;
    for (contact, times) in &sim.sends {
        let mut previous = enrolled_at[contact];
        for t in times.iter().copied().chain([sim.now]) {
            prop_assert!(
                t - previous <= max_gap,
                "contact {} waited {}h (max_gap {}d)",
                contact,
                (t - previous) / HOUR_MS,
                max_gap_days
            );
            previous = t;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(12), failure_persistence: None, ..ProptestConfig::default() })]

    /// With a sufficient budget, every enrolled contact is touched within `max_gap`,
    /// whatever its value, its zone, or the state of capacity.
    #[test]
    fn no_contact_starves_with_sufficient_budget(seed in any::<u64>()) {
        served_within_max_gap(seed, false)?;
    }

    /// The same when the budget covers the promise but not every step: aging, not value,
    /// decides who waits.
    #[test]
    fn no_contact_starves_when_only_the_promise_is_funded(seed in any::<u64>()) {
        served_within_max_gap(seed, true)?;
    }
}

/// Once failed: a daily budget of four emails accrues one at 10:00, 13:00, 16:00 and
/// 19:00 UTC (business hours 08:00–20:00 in Rome). Contacts on Lord Howe Island, where
/// quiet hours (21:00–08:00 local) leave them reachable only from 21:00 to 10:00 UTC,
/// can only get units still unspent at 21:00. Six of them, enrolled the same day, had
/// deadlines the same day; deferred a day at a time, they were presented again only
/// once critical, after the units of the days before had gone to contacts awake by
/// day, and the last was touched late. Now a deferral that outlasts the moment its
/// deadline turns critical holds its cost from the start, and a deadline inside the
/// contact's quiet hours counts from when they begin.
#[test]
fn a_contact_awake_only_when_no_budget_accrues_is_served_late() {
    served_within_max_gap(9115758077290744209, true).unwrap();
}

/// Found 2026-12-05 at `PACER_CASES=300`, not fixed yet: with a budget of 1.6–2.0 × the
/// bare `max_gap` promise, a contact in Tokyo or on Lord Howe Island is served 4–24 h
/// late. Its offer is held for capacity until critical; only one of the day's four
/// accrual instants (10:00, 13:00, 16:00, 19:00 UTC) falls in its waking hours, and
/// earliest-deadline-first gives that unit to contacts who could have used a later one.
/// Ranking by the last accrual instant at which each contact is reachable would serve
/// them; run with `--run-ignored only` to see it fail.
#[test]
#[ignore = "known gap: far-zone contacts under scarce budgets, see the comment"]
fn far_zone_contacts_under_a_scarce_budget_are_served_within_max_gap() {
    for seed in [
        2_950_201_293_420_925_623,
        10_031_045_152_021_939_541,
        13_394_716_008_368_994_252,
    ] {
        served_within_max_gap(seed, true).unwrap();
    }
}

/// Seeds that once broke a property, kept as plain tests (proptest's own regression
/// file is off so the tests write nothing into the tree).
#[test]
fn seeds_that_once_failed() {
    for seed in [1527341356640279377, 927410184110490909] {
        served_within_max_gap(seed, false).unwrap();
    }
    for seed in [
        923701686076258557,
        874880177762888383,
        1854819485507891522,
        559885389625399661,
    ] {
        served_within_max_gap(seed, true).unwrap();
    }
    for seed in [910935211298070986, 225741866373681080] {
        simulate_random(seed).unwrap();
    }
}
