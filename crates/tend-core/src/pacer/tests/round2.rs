//! The promises of round 2: limits count what reaches the person, first replies go at
//! any hour, and a budget deferral says whether the budget is spent, accruing, or
//! waiting for the business to open.

use super::*;

/// The starter's shape: open Mon–Fri 09:00–18:00 in Rome, emails limited per day and
/// per week, frequency limits on email only.
fn starter() -> PacerPolicy {
    let mut p = PacerPolicy::new(
        &tz_name("Europe/Rome"),
        WeeklyHours::parse("Mon-Fri 09:00-18:00").unwrap(),
    );
    p.quiet_hours = Some(DailyWindow::parse("21:00-08:00").unwrap());
    p.budgets.emails.per_day = Some(200.0);
    p.budgets.emails.per_week = Some(800.0);
    p.per_contact_per_week = Some(3);
    p.min_gap = Duration::from_secs(86_400);
    p.first_touch_reserve.emails = 10.0;
    p
}

#[test]
fn webhooks_and_tasks_neither_count_nor_wait_for_the_contact_limits() {
    let mut p = starter();
    p.business_hours = WeeklyHours::parse("Mon-Sun 00:00-24:00").unwrap();
    let now = ts("2026-11-23T10:00:00Z");
    let mut w = World::new();
    // Touched an hour ago by email: `min_gap` holds the next email for a day.
    let c = w.contact(1, "Europe/Rome");
    c.last_touch = Some(ts("2026-11-23T09:00:00Z"));
    c.recent = vec![ts("2026-11-23T09:00:00Z")];
    let hook = touch(1, 1, Channel::Webhook, Intent::Nurture, now);
    let call = touch(2, 1, Channel::Task, Intent::Nurture, now);
    let mail = email(3, 1, now);
    let out = w.decide(&p, &[hook, call, mail], &BudgetState::default(), None, now);
    assert_eq!(out.decisions[0].decision, Decision::Send);
    assert_eq!(out.decisions[1].decision, Decision::Send);
    assert_eq!(
        out.decisions[2].decision,
        Decision::Defer {
            until: ts("2026-11-24T09:00:00Z"),
            reason: Reason::FrequencyCap
        }
    );

    // A contact touched only by a webhook and a task an hour ago gets its email now:
    // neither reached the person (the engine passes only counted channels in `recent`).
    let c = w.contact(2, "Europe/Rome");
    c.last_touch = Some(ts("2026-11-23T09:00:00Z"));
    let out = w.decide(&p, &[email(4, 2, now)], &BudgetState::default(), None, now);
    assert_eq!(only(&out), Decision::Send);

    // Listing every channel restores the old rule: the task waits for `min_gap` too.
    p.limited_channels = ChannelSet::ALL;
    let call = touch(5, 1, Channel::Task, Intent::Nurture, now);
    let out = w.decide(&p, &[call], &BudgetState::default(), None, now);
    assert!(matches!(
        only(&out),
        Decision::Defer {
            reason: Reason::FrequencyCap,
            ..
        }
    ));
}

#[test]
fn a_first_reply_goes_out_on_a_friday_evening_and_a_sunday_morning() {
    let p = starter();
    let mut w = World::new();
    w.contact(1, "Europe/Rome");
    w.contact(2, "Europe/Rome");
    // Friday 19:30 in Rome, the day's whole limit spent: a reserve never goes past a
    // window's limit, so even a first reply waits, and says the budget is spent.
    let now = ts("2026-11-27T18:30:00Z");
    let mut spent = BudgetState::default();
    spent.record(
        &p,
        ts("2026-11-27T16:00:00Z"),
        &Spend {
            emails: 200.0,
            ..Spend::default()
        },
    );
    let mut welcome = email(1, 1, now);
    welcome.first = true;
    let second = email(2, 2, now);
    let out = w.decide(&p, &[welcome, second], &spent, None, now);
    assert!(matches!(
        out.decisions[0].decision,
        Decision::Defer {
            reason: Reason::Budget,
            ..
        }
    ));

    // Sunday 10:00: no allowance accrues all weekend. The first touch spends from the
    // reserve; the other waits for Monday 09:00 with reason `business_hours`.
    let sunday = ts("2026-11-29T09:00:00Z");
    let mut welcome = email(3, 1, sunday);
    welcome.first = true;
    let out = w.decide(
        &p,
        &[welcome, email(4, 2, sunday)],
        &BudgetState::default(),
        None,
        sunday,
    );
    assert_eq!(out.decisions[0].decision, Decision::Send);
    let Decision::Defer { until, reason } = out.decisions[1].decision else {
        panic!("expected a deferral, got {:?}", out.decisions[1].decision);
    };
    assert_eq!(reason, Reason::BusinessHours);
    assert!(until >= ts("2026-11-30T08:00:00Z") && until < ts("2026-11-30T09:00:00Z"));
    assert_eq!(out.summary.deferred.business_hours, 1);

    // The reserve is small: the eleventh first touch of the weekend waits too.
    let firsts: Vec<_> = (0..11)
        .map(|i| {
            w.contact(10 + i, "Europe/Rome");
            let mut t = email(10 + i, 10 + i, sunday);
            t.first = true;
            t
        })
        .collect();
    let out = w.decide(&p, &firsts, &BudgetState::default(), None, sunday);
    assert_eq!(out.summary.sent, 10);
    assert_eq!(out.summary.deferred.business_hours, 1);

    // Quiet hours in the contact's own zone still apply to a first touch.
    let night = ts("2026-11-28T23:30:00Z");
    let mut welcome = email(30, 1, night);
    welcome.first = true;
    let out = w.decide(&p, &[welcome], &BudgetState::default(), None, night);
    assert_eq!(
        only(&out),
        Decision::Defer {
            until: ts("2026-11-29T07:00:00Z"),
            reason: Reason::QuietHours
        }
    );
}

#[test]
fn a_budget_deferral_says_spent_accruing_or_closed() {
    let p = starter();
    let mut w = World::new();
    w.contact(1, "Europe/Rome");
    // Monday 09:30: one fortieth of the week and an eighteenth of the day accrued.
    let now = ts("2026-11-30T08:30:00Z");
    let mut state = BudgetState::default();
    state.record(
        &p,
        now,
        &Spend {
            emails: 11.0,
            ..Spend::default()
        },
    );
    let out = w.decide(&p, &[email(1, 1, now)], &state, None, now);
    assert!(matches!(
        only(&out),
        Decision::Defer {
            reason: Reason::BudgetAccruing,
            ..
        }
    ));
    // Friday 17:00 with the week's 800 spent: spent, whatever the hour.
    let friday = ts("2026-12-04T16:00:00Z");
    let mut state = BudgetState::default();
    state.record(
        &p,
        friday,
        &Spend {
            emails: 800.0,
            ..Spend::default()
        },
    );
    let out = w.decide(&p, &[email(2, 1, friday)], &state, None, friday);
    let Decision::Defer { until, reason } = only(&out) else {
        panic!("expected a deferral");
    };
    assert_eq!(reason, Reason::Budget);
    assert!(until >= ts("2026-12-07T08:00:00Z"));
    assert_eq!(
        serde_json::to_value(out.summary.deferred).unwrap()["budget"],
        1
    );
    assert_eq!(Reason::BudgetAccruing.to_string(), "budget_accruing");
}

#[test]
fn an_unanswered_offer_stops_holding_room_as_its_response_grows_unlikely() {
    // Responses came after 1, 2 and 3 days; a prior of 3 days worth 3 observations.
    let delays = ResponseDelays::learned(3.0, 3.0, 3, 6.0);
    assert!((delays.mean_days - 2.5).abs() < 1e-12);
    // Fresh, an offer holds its full probability; a week on, little of it.
    assert!((delays.remaining(0.2, 0.0) - 0.2).abs() < 1e-12);
    let week = delays.remaining(0.2, 7.0);
    assert!(week < 0.02, "{week}");
    // Always between nothing and the fresh probability, and falling with age.
    let mut last = 0.2;
    for day in 1..30 {
        let r = delays.remaining(0.2, f64::from(day));
        assert!(r > 0.0 && r < last);
        last = r;
    }
    // No observation yet: the prior alone.
    assert_eq!(ResponseDelays::learned(3.0, 3.0, 0, 0.0).mean_days, 3.0);
}

/// Offers of a process that follows a sequence (the evergreen one) get the room capacity
/// has left before in-sequence offers that can still wait, highest expected value first;
/// a contact about to pass `max_gap` still comes before them all.
#[test]
fn idle_capacity_goes_to_offers_after_the_sequence_by_expected_value() {
    let p = policy("Europe/Rome", "Mon-Sun 00:00-24:00");
    let now = ts("2026-11-23T10:00:00Z");
    let days_ago = |d: i64| ts_ms(now.as_millisecond() - d * 86_400_000);
    let mut w = World::new();
    for (id, last) in [(1, 8), (2, 1), (3, 1), (4, 10)] {
        w.contact(id, "Europe/Rome").last_touch = Some(days_ago(last));
    }
    let offer = |id, contact, value: f64, after_sequence| DueTouch {
        expected_value: value,
        offer_probability: 0.2,
        after_sequence,
        ..touch(id, contact, Channel::Email, Intent::Offer, now)
    };
    // Room for one offer of 0.2 only: 2.0 − 1.7.
    let capacity = CapacityState {
        open_work: 1.7,
        ..full_capacity()
    };
    let touches = [
        offer(1, 1, 0.2, false),
        offer(2, 2, 0.25, true),
        offer(3, 3, 0.3, true),
    ];
    let out = w.decide(&p, &touches, &BudgetState::default(), Some(capacity), now);
    let sent: Vec<i64> = out
        .decisions
        .iter()
        .filter(|d| d.decision == Decision::Send)
        .map(|d| d.touch.0)
        .collect();
    assert_eq!(sent, [3], "{:?}", out.decisions);

    // A sequence offer whose contact is at its max_gap still goes first.
    let touches = [offer(4, 4, 0.1, false), offer(3, 3, 0.3, true)];
    let out = w.decide(&p, &touches, &BudgetState::default(), Some(capacity), now);
    assert_eq!(
        out.decisions[0].decision,
        Decision::Send,
        "{:?}",
        out.decisions
    );
    assert!(matches!(
        out.decisions[1].decision,
        Decision::Defer {
            reason: Reason::Capacity,
            ..
        }
    ));
}

/// `[capacity] max_wait` bounds the wait new work would face, not only the share of
/// capacity: with room left under `target_utilization` but nine jobs ahead of a team of
/// six a week (ten and a half days), an offer waits when new work should wait at most
/// ten days, and goes once the work ahead fits in them.
#[test]
fn an_offer_waits_while_new_work_would_wait_longer_than_max_wait() {
    let p = policy("Europe/Rome", "Mon-Sun 00:00-24:00");
    let mut w = World::new();
    w.contact(1, "Europe/Rome");
    let now = ts("2026-11-23T10:00:00Z");
    let offer = [touch(1, 1, Channel::Email, Intent::Offer, now)];
    let busy = CapacityState {
        per_week: 6.0,
        target_utilization: 0.85,
        horizon: Duration::from_secs(2 * 604_800),
        open_work: 9.0,
        expected_in_flight: 0.0,
        max_wait: None,
    };
    // 0.85 × 6 × 2 weeks = 10.2 items: room for the offer's 0.2.
    let out = w.decide(&p, &offer, &BudgetState::default(), Some(busy), now);
    assert_eq!(only(&out), Decision::Send);

    let bounded = CapacityState {
        max_wait: Some(Duration::from_secs(10 * 86_400)),
        ..busy
    };
    assert!((bounded.predicted_wait_days().unwrap() - 10.5).abs() < 1e-9);
    assert!((bounded.limit() - 6.0 * 10.0 / 7.0).abs() < 1e-9);
    let out = w.decide(&p, &offer, &BudgetState::default(), Some(bounded), now);
    assert!(
        matches!(
            only(&out),
            Decision::Defer {
                reason: Reason::Capacity,
                ..
            }
        ),
        "{:?}",
        out.decisions
    );
    assert_eq!(out.summary.capacity.unwrap().limit, bounded.limit());

    // Eight jobs ahead: 9⅓ days, and the offer's expected 0.2 still fits in ten.
    let fits = CapacityState {
        open_work: 8.0,
        ..bounded
    };
    let out = w.decide(&p, &offer, &BudgetState::default(), Some(fits), now);
    assert_eq!(only(&out), Decision::Send);

    // A bound looser than the share changes nothing.
    let loose = CapacityState {
        max_wait: Some(Duration::from_secs(4 * 604_800)),
        ..busy
    };
    assert_eq!(loose.limit(), busy.limit());
}
