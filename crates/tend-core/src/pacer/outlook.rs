//! What the budgets can admit over the coming days. The console's "next 7 days" sets
//! what is planned against it, so a day planned past its budget shows what will go and
//! what will wait, rather than a count of touches the pacer will not let through.

use super::budget::{BudgetState, Spend, ts};
use super::policy::PacerPolicy;
use jiff::Timestamp;

/// Places each of `touches` (the index of the day it falls due, and what it costs),
/// given in the order the pacer takes them (by due time), on the first day from its own
/// whose budgets still cover it: each limited window allows what has accrued by that
/// day's end (`day_ends[day]`) less what was spent in it, by `state` and by the touches
/// placed before. `None` for a touch no day of `day_ends` can take.
///
/// Budgets only: the pacer may hold a touch later still for capacity, quiet hours or a
/// frequency cap, and a first touch may spend its small reserve ahead of the accrual.
pub fn admit_by_day(
    policy: &PacerPolicy,
    state: &BudgetState,
    day_ends: &[Timestamp],
    touches: &[(usize, Spend)],
) -> Vec<Option<usize>> {
    let mut state = BudgetState {
        windows: state.windows.clone(),
        // Reservations hold allowance for touches that are among these; counting
        // them as spent too would take the same allowance twice.
        reservations: Vec::new(),
    };
    let mut placed = vec![None; touches.len()];
    let mut waiting: Vec<usize> = Vec::new();
    let mut next = 0;
    for (day, end) in day_ends.iter().enumerate() {
        while next < touches.len() && touches[next].0 <= day {
            waiting.push(next);
            next += 1;
        }
        // The day's last instant: the windows containing it, accrued up to it.
        let at = ts(end.as_millisecond() - 1);
        let mut room = [f64::INFINITY; 4];
        for status in state.status(policy, at) {
            let left = (status.accrued - status.used).max(0.0);
            let slot = &mut room[status.resource as usize];
            *slot = slot.min(left);
        }
        let mut spent = Spend::default();
        waiting.retain(|&i| {
            let cost = touches[i].1.as_array();
            if cost.iter().zip(&room).any(|(c, r)| *c > *r + 1e-9) {
                return true;
            }
            for ((r, c), resource) in room.iter_mut().zip(cost).zip(super::Resource::ALL) {
                *r -= c;
                spent.set(resource, spent.get(resource) + c);
            }
            placed[i] = Some(day);
            false
        });
        state.record(policy, at, &spent);
    }
    placed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TimeZoneName;
    use crate::hours::WeeklyHours;
    use crate::pacer::{Channel, Limits, Period, Resource};

    fn policy(emails: Limits) -> PacerPolicy {
        let mut p = PacerPolicy::new(
            &TimeZoneName::parse("Europe/Rome").unwrap(),
            WeeklyHours::parse("Mon-Fri 09:00-18:00").unwrap(),
        );
        *p.budgets.get_mut(Resource::Emails) = emails;
        p
    }

    fn limits(day: Option<f64>, week: Option<f64>) -> Limits {
        let mut l = Limits::default();
        l.set(Period::Day, day);
        l.set(Period::Week, week);
        l
    }

    /// The ends of seven days from Monday 2026-03-02 in Rome.
    fn week() -> Vec<Timestamp> {
        // Midnight in Rome (UTC+1 in March) is 23:00 UTC the day before.
        (2..=8)
            .map(|d| format!("2026-03-{d:02}T23:00:00Z").parse().unwrap())
            .collect()
    }

    fn emails(p: &PacerPolicy, per_day: &[usize]) -> Vec<(usize, Spend)> {
        per_day
            .iter()
            .enumerate()
            .flat_map(|(day, n)| (0..*n).map(move |_| (day, p.cost_of(Channel::Email, 0))))
            .collect()
    }

    fn per_day(placed: &[Option<usize>], days: usize) -> (Vec<usize>, usize) {
        let mut go = vec![0; days];
        let mut left = 0;
        for p in placed {
            match p {
                Some(d) => go[*d] += 1,
                None => left += 1,
            }
        }
        (go, left)
    }

    #[test]
    fn a_day_planned_past_its_limit_carries_the_rest_and_weekends_admit_nothing() {
        let p = policy(limits(Some(10.0), None));
        // 25 on Monday, 3 on Thursday, 4 on Saturday.
        let touches = emails(&p, &[25, 0, 0, 3, 0, 4, 0]);
        let placed = admit_by_day(&p, &BudgetState::default(), &week(), &touches);
        let (go, left) = per_day(&placed, 7);
        // Budgets accrue in business hours only: nothing accrues on the weekend.
        assert_eq!(go, vec![10, 10, 5, 3, 0, 0, 0]);
        assert_eq!(left, 4, "Saturday's wait for Monday, past the seven days");
    }

    #[test]
    fn what_was_spent_today_and_the_weekly_limit_count_too() {
        let p = policy(limits(Some(10.0), Some(30.0)));
        let mut state = BudgetState::default();
        let monday_noon: Timestamp = "2026-03-02T11:00:00Z".parse().unwrap();
        state.record(
            &p,
            monday_noon,
            &Spend {
                emails: 6.0,
                ..Spend::default()
            },
        );
        let touches = emails(&p, &[50]);
        let placed = admit_by_day(&p, &state, &week(), &touches);
        let (go, left) = per_day(&placed, 7);
        // The week's 30 accrue over its five open days, 6 a day: by Monday's end the
        // 6 already sent took them (the day's own 10 would allow 4 more); then 6 a day.
        assert_eq!(go, vec![0, 6, 6, 6, 6, 0, 0]);
        assert_eq!(left, 26);
    }

    #[test]
    fn without_limits_everything_goes_on_its_day() {
        let p = policy(Limits::default());
        let touches = emails(&p, &[3, 0, 2]);
        let placed = admit_by_day(&p, &BudgetState::default(), &week(), &touches);
        assert_eq!(per_day(&placed, 7), (vec![3, 0, 2, 0, 0, 0, 0], 0));
    }
}
