//! Pacer tests: focused examples, then simulations over random policies, touches and
//! clocks that check the promises against independent computations.

use super::*;
use proptest::prelude::*;

mod round2;
mod simulate;

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
        after_sequence: false,
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
        max_wait: None,
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
