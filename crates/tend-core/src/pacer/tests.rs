//! Pacer tests: focused examples, then simulations over random policies, touches and
//! clocks that check the promises against independent computations.

use super::*;
use proptest::prelude::*;

mod round2;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn tz_name(name: &str) -> TimeZoneName {
    TimeZoneName::parse(name).unwrap()
}

/// A policy whose frequency limits count every channel, as these tests were written for.
fn policy(zone: &str, hours: &str) -> PacerPolicy {
    let mut p = PacerPolicy::new(&tz_name(zone), WeeklyHours::parse(hours).unwrap());
    p.limited_channels = ChannelSet::ALL;
    p
}

fn touch(id: i64, contact: i64, channel: Channel, intent: Intent, due: Timestamp) -> DueTouch {
    DueTouch {
        touch: TouchId(id),
        contact: ContactId(contact),
        process: ProcessId(1),
        step: 0,
        channel,
        intent,
        minutes: if channel == Channel::Task { 15 } else { 0 },
        due,
        enrolled_at: ts("2026-01-01T00:00:00Z"),
        max_gap: Duration::from_secs(10 * 86_400),
        keep_warm: false,
        exited: false,
        expected_value: 1.0,
        offer_probability: 0.2,
        first: false,
    }
}

fn email(id: i64, contact: i64, due: Timestamp) -> DueTouch {
    touch(id, contact, Channel::Email, Intent::Nurture, due)
}

struct World {
    zones: ZoneTable,
    contacts: HashMap<ContactId, ContactState>,
}

impl World {
    fn new() -> Self {
        World {
            zones: ZoneTable::new(),
            contacts: HashMap::new(),
        }
    }

    fn contact(&mut self, id: i64, zone: &str) -> &mut ContactState {
        let zone = self.zones.intern(&tz_name(zone));
        self.contacts.entry(ContactId(id)).or_insert(ContactState {
            zone,
            ..ContactState::default()
        })
    }

    fn decide(
        &self,
        policy: &PacerPolicy,
        touches: &[DueTouch],
        budget: &BudgetState,
        capacity: Option<CapacityState>,
        now: Timestamp,
    ) -> PacerOutput {
        let input = PacerInput {
            touches,
            contacts: &self.contacts,
            zones: &self.zones,
            budget,
            capacity,
        };
        decide(policy, &input, now)
    }
}

fn only(out: &PacerOutput) -> Decision {
    assert_eq!(out.decisions.len(), 1);
    out.decisions[0].decision
}

fn full_capacity() -> CapacityState {
    CapacityState {
        per_week: 4.0,
        target_utilization: 0.5,
        horizon: Duration::from_secs(604_800),
        open_work: 2.0,
        expected_in_flight: 0.0,
    }
}

#[test]
fn quiet_hours_defer_to_their_end_in_the_contacts_zone() {
    let mut p = policy("Europe/Rome", "Mon-Sun 00:00-24:00");
    p.quiet_hours = Some(DailyWindow::parse("21:00-08:00").unwrap());
    let mut w = World::new();
    w.contact(1, "America/New_York");
    w.contact(2, "Europe/Rome");
    let b = BudgetState::default();
    // 03:00 in New York (UTC-5) is 09:00 in Rome: the business is fine, the contact asleep.
    let now = ts("2026-11-23T08:00:00Z");
    let out = w.decide(&p, &[email(1, 1, now)], &b, None, now);
    assert_eq!(
        only(&out),
        Decision::Defer {
            until: ts("2026-11-23T13:00:00Z"),
            reason: Reason::QuietHours
        }
    );
    let out = w.decide(&p, &[email(2, 2, now)], &b, None, now);
    assert_eq!(only(&out), Decision::Send);
    // Sent exactly when quiet hours end.
    let later = ts("2026-11-23T13:00:00Z");
    let out = w.decide(&p, &[email(1, 1, now)], &b, None, later);
    assert_eq!(only(&out), Decision::Send);
}

#[test]
fn quiet_hours_follow_dst_changes() {
    let mut p = policy("Europe/Rome", "Mon-Sun 00:00-24:00");
    p.quiet_hours = Some(DailyWindow::parse("21:00-08:00").unwrap());
    let mut w = World::new();
    w.contact(1, "America/New_York");
    w.contact(2, "Europe/Rome");
    let b = BudgetState::default();
    let cases = [
        // New York springs forward on 2026-03-08: 01:00 EST, quiet until 08:00 EDT.
        (1, "2026-03-08T06:00:00Z", "2026-03-08T12:00:00Z"),
        // ...and falls back on 2026-11-01: 01:30 EST (second time round) → 08:00 EST.
        (1, "2026-11-01T06:30:00Z", "2026-11-01T13:00:00Z"),
        // 01:30 EDT, the first 01:30 of that night, also waits for 08:00 EST.
        (1, "2026-11-01T05:30:00Z", "2026-11-01T13:00:00Z"),
        // Rome springs forward on 2026-03-29: 01:30 CET → 08:00 CEST.
        (2, "2026-03-29T00:30:00Z", "2026-03-29T06:00:00Z"),
        // 22:00 CET the evening before → 08:00 CEST next morning.
        (2, "2026-03-28T21:00:00Z", "2026-03-29T06:00:00Z"),
    ];
    for (contact, now, until) in cases {
        let now = ts(now);
        let out = w.decide(&p, &[email(1, contact, now)], &b, None, now);
        assert_eq!(
            only(&out),
            Decision::Defer {
                until: ts(until),
                reason: Reason::QuietHours
            },
            "contact {contact} at {now}"
        );
    }
}

#[test]
fn tasks_wait_for_business_hours_not_quiet_hours() {
    let mut p = policy("Europe/Rome", "Mon-Fri 09:00-18:00");
    p.quiet_hours = Some(DailyWindow::parse("21:00-08:00").unwrap());
    let mut w = World::new();
    w.contact(1, "America/New_York");
    let b = BudgetState::default();
    // Friday 19:00 in Rome → Monday 09:00 Rome.
    let now = ts("2026-11-27T18:00:00Z");
    let task = touch(1, 1, Channel::Task, Intent::Nurture, now);
    let out = w.decide(&p, &[task], &b, None, now);
    assert_eq!(
        only(&out),
        Decision::Defer {
            until: ts("2026-11-30T08:00:00Z"),
            reason: Reason::BusinessHours
        }
    );
    // Monday 10:00 Rome is 04:00 in New York: a call is planned anyway, it is the
    // business's time that counts.
    let monday = ts("2026-11-30T09:00:00Z");
    let out = w.decide(&p, &[task], &b, None, monday);
    assert_eq!(only(&out), Decision::Send);
}

#[test]
fn small_budget_defers_with_accrual_times() {
    let mut p = policy("Europe/Rome", "Mon-Fri 09:00-18:00");
    p.budgets.emails.per_day = Some(10.0);
    let mut w = World::new();
    for c in 1..=3 {
        w.contact(c, "Europe/Rome");
    }
    // Monday 2026-11-23, 09:54 in Rome: a tenth of the day's hours, so one email accrued.
    let now = ts("2026-11-23T08:54:00Z");
    let touches: Vec<_> = (1..=3).map(|c| email(c, c, now)).collect();
    let out = w.decide(&p, &touches, &BudgetState::default(), None, now);
    let d: Vec<_> = out.decisions.iter().map(|d| d.decision).collect();
    assert_eq!(d[0], Decision::Send);
    // The second email accrues at 10:48 and the third at 11:42 (plus a millisecond of
    // rounding slack): deferred touches queue behind each other instead of all waking
    // at once.
    assert_eq!(
        d[1],
        Decision::Defer {
            until: ts("2026-11-23T09:48:00.001Z"),
            reason: Reason::BudgetAccruing
        }
    );
    assert_eq!(
        d[2],
        Decision::Defer {
            until: ts("2026-11-23T10:42:00.001Z"),
            reason: Reason::BudgetAccruing
        }
    );
    assert_eq!(out.summary.sent, 1);
    assert_eq!(out.summary.deferred.budget_accruing, 2);
    let status = out
        .summary
        .budgets
        .iter()
        .find(|s| s.resource == Resource::Emails)
        .unwrap();
    assert_eq!(status.used, 1.0);
    assert!((status.accrued - 1.0).abs() < 1e-9);
    assert_eq!(status.window_start, ts("2026-11-22T23:00:00Z"));

    // Re-presented at its `until`, with the state the first batch returned, the second
    // email fits.
    let later = ts("2026-11-23T09:48:00.001Z");
    let out2 = w.decide(&p, &touches[1..2], &out.budget, None, later);
    assert_eq!(only(&out2), Decision::Send);
}

#[test]
fn weekly_budget_spreads_over_the_week() {
    let mut p = policy("Europe/Rome", "Mon-Fri 09:00-18:00");
    p.budgets.emails.per_week = Some(45.0);
    let mut w = World::new();
    for c in 0..45 {
        w.contact(c, "Europe/Rome");
    }
    let now = ts("2026-11-23T09:00:00Z"); // Monday 10:00 in Rome: one hour of 45.
    let touches: Vec<_> = (0..45).map(|c| email(c, c, now)).collect();
    let out = w.decide(&p, &touches, &BudgetState::default(), None, now);
    assert_eq!(out.summary.sent, 1);
    assert_eq!(out.summary.deferred.budget_accruing, 44);
    // The last one is planned on Friday afternoon, not Monday.
    let last = out
        .decisions
        .iter()
        .filter_map(|d| match d.decision {
            Decision::Defer { until, .. } => Some(until),
            _ => None,
        })
        .max()
        .unwrap();
    assert!(last > ts("2026-11-27T15:00:00Z") && last <= ts("2026-11-27T17:00:00Z"));
}

#[test]
fn a_task_larger_than_the_day_does_not_block_smaller_ones() {
    let mut p = policy("Europe/Rome", "Mon-Sun 00:00-24:00");
    p.budgets.staff_minutes.per_day = Some(60.0);
    let mut w = World::new();
    w.contact(1, "Europe/Rome");
    w.contact(2, "Europe/Rome");
    let now = ts("2026-11-23T22:00:00Z"); // 23:00 local: almost the whole day accrued.
    let mut big = touch(1, 1, Channel::Task, Intent::Nurture, now);
    big.minutes = 90;
    big.expected_value = 100.0;
    let mut small = touch(2, 2, Channel::Task, Intent::Nurture, now);
    small.minutes = 20;
    let out = w.decide(&p, &[big, small], &BudgetState::default(), None, now);
    assert!(matches!(
        out.decisions[0].decision,
        Decision::Defer {
            reason: Reason::Budget,
            ..
        }
    ));
    assert_eq!(out.decisions[1].decision, Decision::Send);
    // Its contact is overdue, but a hold it could never use is not kept.
    assert!(out.budget.reservations.is_empty());
}

#[test]
fn capacity_holds_offers_but_not_nurture() {
    let p = policy("Europe/Rome", "Mon-Sun 00:00-24:00");
    let mut w = World::new();
    w.contact(1, "Europe/Rome");
    let now = ts("2026-11-23T10:00:00Z");
    // Limit 0.5 × 4 × 1 week = 2 items, all open already.
    let mut offer = touch(1, 1, Channel::Email, Intent::Offer, now);
    offer.process = ProcessId(1);
    let mut nurture = touch(2, 1, Channel::Email, Intent::Nurture, now);
    nurture.process = ProcessId(2);
    let out = w.decide(
        &p,
        &[offer, nurture],
        &BudgetState::default(),
        Some(full_capacity()),
        now,
    );
    assert_eq!(
        out.decisions[0].decision,
        Decision::Defer {
            until: ts("2026-11-23T11:00:00Z"),
            reason: Reason::Capacity
        }
    );
    assert_eq!(out.decisions[1].decision, Decision::Send);
    assert_eq!(out.summary.deferred.capacity, 1);

    // With room for one expected item, the offer goes and counts against the next.
    let mut cap = full_capacity();
    cap.open_work = 1.7;
    let offers: Vec<_> = (1..=3)
        .map(|i| {
            w.contact(10 + i, "Europe/Rome");
            touch(i, 10 + i, Channel::Email, Intent::Offer, now)
        })
        .collect();
    let out = w.decide(&p, &offers, &BudgetState::default(), Some(cap), now);
    let sent = out
        .decisions
        .iter()
        .filter(|d| d.decision == Decision::Send)
        .count();
    assert_eq!(sent, 1);
    assert!((out.summary.capacity.unwrap().admitted - 0.2).abs() < 1e-12);
}

#[test]
fn keep_warm_replaces_an_offer_about_to_neglect_its_contact() {
    let mut p = policy("Europe/Rome", "Mon-Sun 00:00-24:00");
    p.budgets.emails.per_day = Some(100.0);
    p.min_gap = Duration::from_secs(2 * 3_600);
    let now = ts("2026-11-23T10:00:00Z");
    let mut w = World::new();
    w.contact(1, "Europe/Rome").last_touch = Some(ts("2026-11-13T22:00:00Z")); // 9.5 days
    w.contact(2, "Europe/Rome").last_touch = Some(ts("2026-11-20T10:00:00Z")); // 3 days
    w.contact(3, "Europe/Rome").last_touch = Some(ts("2026-11-13T22:00:00Z"));
    let mut urgent = touch(1, 1, Channel::Task, Intent::Offer, now);
    urgent.keep_warm = true;
    let mut relaxed = touch(2, 2, Channel::Task, Intent::Offer, now);
    relaxed.keep_warm = true;
    let no_template = touch(3, 3, Channel::Task, Intent::Offer, now);
    let out = w.decide(
        &p,
        &[urgent, relaxed, no_template],
        &BudgetState::default(),
        Some(full_capacity()),
        now,
    );
    // The offer gives its place to the keep-warm: it is not retried, so held offers
    // never pile up into a pool that keep-warm must serve for ever.
    assert_eq!(
        out.decisions[0].decision,
        Decision::Replace {
            with: Substitution::KeepWarm,
        }
    );
    assert!(matches!(
        out.decisions[1].decision,
        Decision::Defer {
            reason: Reason::Capacity,
            ..
        }
    ));
    assert!(matches!(
        out.decisions[2].decision,
        Decision::Defer {
            reason: Reason::Capacity,
            ..
        }
    ));
    assert_eq!(out.summary.substituted, 1);
    // The keep-warm is an email: it spends email budget, not staff minutes.
    assert_eq!(out.budget.used(&p, Resource::Emails, Period::Day, now), 1.0);
    assert_eq!(
        out.budget
            .used(&p, Resource::StaffMinutes, Period::Day, now),
        0.0
    );
}

/// Found by the simulator: a call waiting for staff time must not hold its contact
/// past `max_gap` while an email could still go.
#[test]
fn a_call_waiting_for_staff_time_sends_keep_warm_before_the_deadline() {
    let mut p = policy("Europe/Rome", "Mon-Fri 09:00-18:00");
    p.budgets.staff_minutes.per_day = Some(15.0);
    p.budgets.emails.per_day = Some(10.0);
    // Thursday 16:00 in Rome; the contact's deadline is Monday 08:00, before the next
    // day's staff time could pay for the call (the day's 15 minutes are spent).
    let now = ts("2026-11-26T15:00:00Z");
    let mut w = World::new();
    w.contact(1, "Europe/Rome").last_touch = Some(ts("2026-11-20T07:00:00Z"));
    let mut call = touch(1, 1, Channel::Task, Intent::Offer, now);
    call.keep_warm = true;
    let mut spent = BudgetState::default();
    spent.record(
        &p,
        now,
        &Spend {
            staff_minutes: 15.0,
            ..Spend::default()
        },
    );
    // Not urgent yet: it waits, but is looked at again before the deadline comes
    // within the neglect horizon, not only when the staff time would be there.
    let out = w.decide(&p, &[call], &spent, None, now);
    let Decision::Defer { until, reason } = only(&out) else {
        panic!("expected a deferral, got {:?}", only(&out));
    };
    assert_eq!(reason, Reason::Budget);
    let deadline = ts("2026-11-30T07:00:00Z");
    let horizon = p.neglect_horizon().as_millis();
    assert_eq!(until.as_millisecond(), deadline.as_millisecond() - horizon);

    // Then it is urgent: the keep-warm email goes in its place.
    let later = until;
    let out = w.decide(&p, &[call], &spent, None, later);
    let Decision::Substitute { offer_retry_at, .. } = only(&out) else {
        panic!("expected keep-warm, got {:?}", only(&out));
    };
    assert!(offer_retry_at > later);
    assert_eq!(
        out.budget.used(&p, Resource::Emails, Period::Day, later),
        1.0
    );
    let now = later;

    // With the email budget spent too, it waits for the next email, not for the call's
    // staff time (Friday 09:00 rather than the day after).
    spent.record(
        &p,
        now,
        &Spend {
            emails: 10.0,
            ..Spend::default()
        },
    );
    let out = w.decide(&p, &[call], &spent, None, now);
    let Decision::Defer { until, reason } = only(&out) else {
        panic!("expected a deferral, got {:?}", only(&out));
    };
    assert_eq!(reason, Reason::Budget);
    assert!(until <= ts("2026-11-27T09:00:00Z"), "{until}");
}

#[test]
fn keep_warm_respects_the_contacts_quiet_hours() {
    let mut p = policy("Europe/Rome", "Mon-Sun 00:00-24:00");
    p.quiet_hours = Some(DailyWindow::parse("21:00-08:00").unwrap());
    let now = ts("2026-11-23T10:00:00Z"); // 05:00 in New York
    let mut w = World::new();
    w.contact(1, "America/New_York").last_touch = Some(ts("2026-11-13T22:00:00Z"));
    let mut offer = touch(1, 1, Channel::Task, Intent::Offer, now);
    offer.keep_warm = true;
    let out = w.decide(
        &p,
        &[offer],
        &BudgetState::default(),
        Some(full_capacity()),
        now,
    );
    assert_eq!(
        only(&out),
        Decision::Defer {
            until: ts("2026-11-23T13:00:00Z"),
            reason: Reason::QuietHours
        }
    );
}

#[test]
fn a_contact_about_to_be_neglected_keeps_its_allowance_while_asleep() {
    let mut p = policy("Europe/Rome", "Mon-Sun 00:00-24:00");
    p.quiet_hours = Some(DailyWindow::parse("21:00-08:00").unwrap());
    p.budgets.emails.per_day = Some(24.0); // one an hour
    let now = ts("2026-11-23T10:00:00Z"); // 11:00 in Rome, 05:00 in New York
    let mut budget = BudgetState::default();
    for _ in 0..10 {
        budget.record(
            &p,
            ts("2026-11-23T09:00:00Z"),
            &p.cost_of(Channel::Email, 0),
        );
    }
    let mut w = World::new();
    // Deadline in twelve hours, but asleep until 13:00Z.
    w.contact(1, "America/New_York").last_touch = Some(ts("2026-11-13T22:00:00Z"));
    w.contact(2, "Europe/Rome").last_touch = Some(ts("2026-11-21T10:00:00Z"));
    let out = w.decide(
        &p,
        &[email(1, 1, now), email(2, 2, now)],
        &budget,
        None,
        now,
    );
    assert_eq!(
        out.decisions[0].decision,
        Decision::Defer {
            until: ts("2026-11-23T13:00:00Z"),
            reason: Reason::QuietHours
        }
    );
    // The one email accrued is held for contact 1, so contact 2 waits.
    assert!(matches!(
        out.decisions[1].decision,
        Decision::Defer {
            reason: Reason::BudgetAccruing,
            ..
        }
    ));
    assert_eq!(out.budget.reservations.len(), 1);
    assert_eq!(out.budget.reservations[0].touch, TouchId(1));
    assert_eq!(out.summary.budgets[0].reserved, 1.0);

    // Half an hour later contact 2 alone would fit (11.5 accrued, 10 used) but for the
    // hold; without it, it goes.
    let later = ts("2026-11-23T10:30:00Z");
    let held = w.decide(&p, &[email(2, 2, now)], &out.budget, None, later);
    assert!(matches!(only(&held), Decision::Defer { .. }));
    let free = w.decide(&p, &[email(2, 2, now)], &budget, None, later);
    assert_eq!(only(&free), Decision::Send);

    // When contact 1 wakes up, the held email is there for it, and the hold is gone.
    let wake = ts("2026-11-23T13:00:00Z");
    let mut state = out.budget.clone();
    for _ in 0..3 {
        state.record(
            &p,
            ts("2026-11-23T12:00:00Z"),
            &p.cost_of(Channel::Email, 0),
        );
    }
    let sent = w.decide(&p, &[email(1, 1, now)], &state, None, wake);
    assert_eq!(only(&sent), Decision::Send);
    assert!(sent.budget.reservations.is_empty());
}

#[test]
fn longer_closures_widen_the_neglect_horizon() {
    let mut p = policy("Europe/Rome", "Mon-Fri 09:00-18:00");
    p.keep_warm_margin = Duration::from_secs(86_400);
    // Friday 18:00 to Monday 09:00 is 63 hours.
    assert_eq!(p.neglect_horizon().as_secs(), 86_400 + 63 * 3_600);
    p.business_hours = WeeklyHours::always();
    assert_eq!(p.neglect_horizon().as_secs(), 86_400);
}

#[test]
fn frequency_cap_and_min_gap_defer_until_they_allow() {
    let mut p = policy("Europe/Rome", "Mon-Sun 00:00-24:00");
    p.per_contact_per_week = Some(3);
    p.min_gap = Duration::from_secs(86_400);
    let now = ts("2026-11-23T10:00:00Z");
    let h = |hours: i64| ts_ms(now.as_millisecond() - hours * 3_600_000);
    let mut w = World::new();
    w.contact(1, "Europe/Rome").recent = vec![h(24), h(6 * 24), h(3 * 24), h(8 * 24)];
    w.contact(2, "Europe/Rome").last_touch = Some(h(2));
    w.contact(3, "Europe/Rome");
    let b = BudgetState::default();
    let out = w.decide(&p, &[email(1, 1, now)], &b, None, now);
    // Three touches in the week; the one six days ago leaves it in a day.
    assert_eq!(
        only(&out),
        Decision::Defer {
            until: ts("2026-11-24T10:00:00Z"),
            reason: Reason::FrequencyCap
        }
    );
    let out = w.decide(&p, &[email(1, 2, now)], &b, None, now);
    assert_eq!(
        only(&out),
        Decision::Defer {
            until: ts("2026-11-24T08:00:00Z"),
            reason: Reason::FrequencyCap
        }
    );
    // Two processes due for one contact in the same batch: the second waits a day.
    let mut second = email(2, 3, now);
    second.process = ProcessId(2);
    let out = w.decide(&p, &[email(1, 3, now), second], &b, None, now);
    assert_eq!(out.decisions[0].decision, Decision::Send);
    assert_eq!(
        out.decisions[1].decision,
        Decision::Defer {
            until: ts("2026-11-24T10:00:00Z"),
            reason: Reason::FrequencyCap
        }
    );
}

fn ts_ms(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap()
}

#[test]
fn suppressed_exited_and_unknown_contacts_are_skipped() {
    let p = policy("Europe/Rome", "Mon-Sun 00:00-24:00");
    let now = ts("2026-11-23T10:00:00Z");
    let mut w = World::new();
    w.contact(1, "Europe/Rome").suppressed = true;
    w.contact(2, "Europe/Rome");
    let mut exited = email(2, 2, now);
    exited.exited = true;
    let out = w.decide(
        &p,
        &[email(1, 1, now), exited, email(3, 99, now)],
        &BudgetState::default(),
        None,
        now,
    );
    let reasons: Vec<_> = out.decisions.iter().map(|d| d.decision).collect();
    assert_eq!(
        reasons,
        vec![
            Decision::Skip {
                reason: Reason::Suppressed
            },
            Decision::Skip {
                reason: Reason::Exited
            },
            Decision::Skip {
                reason: Reason::Exited
            },
        ]
    );
    assert_eq!(out.summary.skipped.total(), 3);
}

#[test]
fn overdue_contacts_come_first_then_higher_value() {
    let mut p = policy("Europe/Rome", "Mon-Sun 00:00-24:00");
    p.budgets.emails.per_day = Some(2.0);
    let now = ts("2026-11-23T22:30:00Z"); // 23:30 in Rome: one of two emails has accrued
    let mut w = World::new();
    w.contact(1, "Europe/Rome").last_touch = Some(ts("2026-11-10T00:00:00Z")); // overdue
    w.contact(2, "Europe/Rome").last_touch = Some(ts("2026-11-22T00:00:00Z"));
    w.contact(3, "Europe/Rome").last_touch = Some(ts("2026-11-22T00:00:00Z"));
    let mut neglected = email(1, 1, now);
    neglected.expected_value = 1.0;
    let mut rich = email(2, 2, now);
    rich.expected_value = 1_000.0;
    let out = w.decide(&p, &[rich, neglected], &BudgetState::default(), None, now);
    assert_eq!(out.decisions[1].decision, Decision::Send);
    assert!(matches!(out.decisions[0].decision, Decision::Defer { .. }));
    // Same urgency: value decides.
    let mut poor = email(3, 3, now);
    poor.expected_value = 5.0;
    let out = w.decide(&p, &[poor, rich], &BudgetState::default(), None, now);
    assert_eq!(out.decisions[1].decision, Decision::Send);
}

#[test]
fn deficit_reports_shortfall_and_covering_budget() {
    let mut p = policy("Europe/Rome", "Mon-Sun 09:00-18:00");
    p.budgets.emails.per_day = Some(200.0);
    p.costs.email = 0.001;
    p.budgets.money.per_month = Some(300.0);
    let loads = [ProcessLoad::email(
        ProcessId(1),
        4_000,
        Duration::parse("10d").unwrap(),
    )];
    let report = deficit(&loads, &p);
    assert!(!report.covered);
    let emails = report
        .resources
        .iter()
        .find(|r| r.resource == Resource::Emails)
        .unwrap();
    assert_eq!(emails.required_per_day, 400.0);
    assert_eq!(emails.available_per_day, Some(200.0));
    assert_eq!(emails.shortfall_per_day, 200.0);
    assert_eq!(emails.suggested.per_day, Some(400.0));
    let money = report
        .resources
        .iter()
        .find(|r| r.resource == Resource::Money)
        .unwrap();
    assert_eq!(money.shortfall_per_day, 0.0);

    // Closed at weekends, a daily limit only pays out five days in seven.
    let mut weekdays = p.clone();
    weekdays.business_hours = WeeklyHours::parse("Mon-Fri 09:00-18:00").unwrap();
    let report = deficit(&loads, &weekdays);
    let emails = &report.resources[0];
    assert!((emails.available_per_day.unwrap() - 200.0 * 5.0 / 7.0).abs() < 1e-9);
    assert_eq!(emails.suggested.per_day, Some(560.0));

    p.budgets.emails.per_day = Some(400.0);
    assert!(deficit(&loads, &p).covered);
}

#[test]
fn beta_posterior_mean_moves_with_observations() {
    let prior = BetaPosterior::from_prior(0.2, 10.0).unwrap();
    assert_eq!(
        prior,
        BetaPosterior {
            alpha: 2.0,
            beta: 8.0
        }
    );
    assert!((prior.mean() - 0.2).abs() < 1e-12);
    let post = prior.observe(3, 7);
    assert!((post.mean() - 0.25).abs() < 1e-12);
    assert!(BetaPosterior::from_prior(1.5, 10.0).is_err());
    assert!(BetaPosterior::from_prior(0.5, 0.0).is_err());
}

#[test]
fn budget_state_persists_and_rebuilds() {
    let mut p = policy("Europe/Rome", "Mon-Fri 09:00-18:00");
    p.budgets.emails.per_day = Some(100.0);
    p.budgets.emails.per_month = Some(1_000.0);
    p.costs.email = 0.5;
    let now = ts("2026-11-23T16:00:00Z");
    let mut w = World::new();
    let touches: Vec<_> = (0..5)
        .map(|c| {
            w.contact(c, "Europe/Rome");
            email(c, c, now)
        })
        .collect();
    let out = w.decide(&p, &touches, &BudgetState::default(), None, now);
    assert_eq!(out.summary.sent, 5);
    let json = serde_json::to_string(&out.budget).unwrap();
    let restored: BudgetState = serde_json::from_str(&json).unwrap();
    assert_eq!(restored, out.budget);
    assert_eq!(restored.used(&p, Resource::Emails, Period::Day, now), 5.0);
    assert_eq!(restored.used(&p, Resource::Money, Period::Month, now), 2.5);

    // The same spends folded from a ledger, with an old one from last month mixed in.
    let mut rebuilt = BudgetState::default();
    rebuilt.record(&p, now, &p.cost_of(Channel::Email, 0));
    rebuilt.record(
        &p,
        ts("2026-10-30T10:00:00Z"),
        &p.cost_of(Channel::Email, 0),
    );
    for _ in 0..4 {
        rebuilt.record(&p, now, &p.cost_of(Channel::Email, 0));
    }
    assert_eq!(rebuilt.status(&p, now), restored.status(&p, now));

    // Next day the daily window is fresh, the month carries on.
    let tomorrow = ts("2026-11-24T16:00:00Z");
    assert_eq!(
        restored.used(&p, Resource::Emails, Period::Day, tomorrow),
        0.0
    );
    let status = restored.status(&p, tomorrow);
    let month = status
        .iter()
        .find(|s| s.resource == Resource::Emails && s.period == Period::Month)
        .unwrap();
    assert_eq!(month.used, 5.0);
    assert_eq!(month.window_start, ts("2026-10-31T23:00:00Z"));
}

#[test]
fn decisions_and_summary_serialize_as_the_api_shows_them() {
    let d = TouchDecision {
        touch: TouchId(7),
        decision: Decision::Defer {
            until: ts("2026-11-23T13:00:00Z"),
            reason: Reason::QuietHours,
        },
    };
    assert_eq!(
        serde_json::to_string(&d).unwrap(),
        r#"{"touch":7,"decision":"defer","until":"2026-11-23T13:00:00Z","reason":"quiet_hours"}"#
    );
    let s = Decision::Substitute {
        with: Substitution::KeepWarm,
        offer_retry_at: ts("2026-11-23T13:00:00Z"),
    };
    assert_eq!(
        serde_json::to_string(&s).unwrap(),
        r#"{"decision":"substitute","with":"keep_warm","offer_retry_at":"2026-11-23T13:00:00Z"}"#
    );
    let counts = ReasonCounts {
        business_hours: 2,
        ..ReasonCounts::default()
    };
    let json = serde_json::to_value(counts).unwrap();
    assert_eq!(json["business_hours"], 2);
}

#[test]
fn policy_validation_names_the_bad_value() {
    let mut p = policy("Europe/Rome", "Mon-Fri 09:00-18:00");
    assert!(p.validate().is_ok());
    p.budgets.money.per_week = Some(-1.0);
    assert_eq!(
        p.validate(),
        Err(PacerError::InvalidLimit {
            resource: Resource::Money,
            period: Period::Week,
            value: -1.0
        })
    );
    assert_eq!(
        p.validate().unwrap_err().to_string(),
        "budget `money.per_week` is -1; it must be a finite number ≥ 0"
    );
    p.budgets.money.per_week = None;
    p.per_contact_per_week = Some(0);
    assert_eq!(p.validate(), Err(PacerError::ZeroFrequencyCap));
}

// ---------------------------------------------------------------------------------
// Simulation: random policies, contacts, touches and clocks.

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

/// Known to fail, kept so it is not forgotten (`cargo nextest run --run-ignored only`).
///
/// A daily budget of four emails accrues one at 10:00, 13:00, 16:00 and 19:00 UTC
/// (business hours 08:00–20:00 in Rome). Contacts on Lord Howe Island, where quiet hours
/// (21:00–08:00 local) leave them reachable only from 21:00 to 10:00 UTC, can only get
/// units that are still unspent at 21:00. Five of them, enrolled the same day, reach
/// their `max_gap` deadline the same evening; reservations rightly hold that day's four
/// units for the four earliest deadlines, and contact 0, the fifth, is touched the next
/// evening, 46 minutes late. The pacer would have to start holding earlier for contacts
/// whose reachable hours rarely meet the budget's accrual, or spread them over the
/// evenings before.
#[test]
#[ignore = "known pacer gap: contacts reachable only outside budget accrual hours"]
fn a_contact_awake_only_when_no_budget_accrues_is_served_late() {
    served_within_max_gap(9115758077290744209, true).unwrap();
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
