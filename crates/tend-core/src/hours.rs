//! Opening hours (`"Mon-Fri 09:00-13:00, Sat 09:00-12:00"`) and daily windows
//! (`quiet_hours = "21:00-08:00"`), evaluated in a given time zone with DST handled by jiff.

use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use std::fmt;

const MINUTES_PER_DAY: u16 = 24 * 60;
const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// Why an hours or window string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoursError {
    #[error("no hours given; expected e.g. `Mon-Fri 09:00-18:00`")]
    Empty,
    #[error("`{0}`: expected `<days> <HH:MM>-<HH:MM>`, e.g. `Mon-Fri 09:00-18:00`")]
    BadRange(String),
    #[error("`{0}` is not a day; use Mon, Tue, Wed, Thu, Fri, Sat or Sun")]
    BadDay(String),
    #[error("`{0}` is not a time; expected HH:MM between 00:00 and 24:00")]
    BadTime(String),
    #[error("`{0}`: the end must come after the start")]
    EmptyRange(String),
    #[error("`{0}`: expected `HH:MM-HH:MM`, e.g. `21:00-08:00`")]
    BadWindow(String),
}

/// Weekly opening hours in the business's local time: for each weekday, sorted and
/// merged `[start, end)` minute-of-day ranges, and the dates closed all day (holidays).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeeklyHours {
    /// Index 0 is Monday.
    days: [Vec<(u16, u16)>; 7],
    /// Sorted, without repeats.
    closed: Vec<Date>,
}

impl WeeklyHours {
    /// Parses comma-separated `<days> <HH:MM>-<HH:MM>` ranges, days as `Mon` or `Mon-Fri`.
    pub fn parse(text: &str) -> Result<Self, HoursError> {
        let mut days: [Vec<(u16, u16)>; 7] = Default::default();
        let mut any = false;
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            any = true;
            let (day_spec, time_spec) = part
                .split_once(char::is_whitespace)
                .ok_or_else(|| HoursError::BadRange(part.to_owned()))?;
            let (first_day, last_day) = parse_day_span(day_spec.trim())?;
            let (start, end) = parse_time_range(time_spec.trim(), part)?;
            if end <= start {
                return Err(HoursError::EmptyRange(part.to_owned()));
            }
            let mut day = first_day;
            loop {
                days[day].push((start, end));
                if day == last_day {
                    break;
                }
                day = (day + 1) % 7;
            }
        }
        if !any {
            return Err(HoursError::Empty);
        }
        for ranges in &mut days {
            *ranges = merge(std::mem::take(ranges));
        }
        Ok(WeeklyHours {
            days,
            closed: Vec::new(),
        })
    }

    /// The same hours, closed all day on `dates` (public holidays, closures).
    pub fn with_holidays(mut self, dates: impl IntoIterator<Item = Date>) -> Self {
        self.closed.extend(dates);
        self.closed.sort_unstable();
        self.closed.dedup();
        self
    }

    /// The dates closed all day.
    pub fn holidays(&self) -> &[Date] {
        &self.closed
    }

    /// The open ranges of one local date: its weekday's, or none on a holiday.
    pub fn ranges_on(&self, date: Date) -> &[(u16, u16)] {
        if self.closed.binary_search(&date).is_ok() {
            &[]
        } else {
            self.ranges(date.weekday())
        }
    }

    /// Always open: used when a business configures no hours.
    pub fn always() -> Self {
        WeeklyHours {
            days: std::array::from_fn(|_| vec![(0, MINUTES_PER_DAY)]),
            closed: Vec::new(),
        }
    }

    /// The open ranges of one weekday, as `[start, end)` minutes since local midnight,
    /// holidays aside (see [`WeeklyHours::ranges_on`]).
    pub fn ranges(&self, weekday: Weekday) -> &[(u16, u16)] {
        &self.days[weekday.to_monday_zero_offset() as usize]
    }

    /// Open minutes in a whole week.
    pub fn minutes_per_week(&self) -> u32 {
        self.days
            .iter()
            .flatten()
            .map(|(s, e)| u32::from(e - s))
            .sum()
    }

    /// Whether the local date-time falls inside opening hours.
    pub fn is_open_at(&self, local: DateTime) -> bool {
        let minute = minute_of_day(local.time());
        self.ranges_on(local.date())
            .iter()
            .any(|(s, e)| (*s..*e).contains(&minute))
    }

    /// The first instant at or after `at` that falls inside opening hours in `tz`.
    pub fn next_open(&self, at: Timestamp, tz: &TimeZone) -> Timestamp {
        let local = at.to_zoned_datetime(tz.clone()).datetime();
        if self.is_open_at(local) {
            return at;
        }
        let minute = minute_of_day(local.time());
        // A week, plus one day per holiday that may fall in the way.
        let horizon = 8 + self.closed.len() as i64;
        for offset in 0..horizon {
            let Ok(date) = local.date().checked_add(jiff::Span::new().days(offset)) else {
                break;
            };
            for (start, _) in self.ranges_on(date) {
                if offset == 0 && *start <= minute {
                    continue;
                }
                let candidate = local_instant(date, *start, tz);
                if candidate > at {
                    return candidate;
                }
            }
        }
        at
    }

    /// Seconds of opening hours inside `[from, to)`, walking local days in `tz`.
    pub fn open_seconds_between(&self, from: Timestamp, to: Timestamp, tz: &TimeZone) -> i64 {
        if to <= from {
            return 0;
        }
        let mut total = 0i64;
        let mut date = from.to_zoned_datetime(tz.clone()).date();
        let last = to.to_zoned_datetime(tz.clone()).date();
        while date <= last {
            for (start, end) in self.ranges_on(date) {
                let s = local_instant(date, *start, tz).max(from);
                let e = local_instant(date, *end, tz).min(to);
                if e > s {
                    total += e.as_second() - s.as_second();
                }
            }
            match date.tomorrow() {
                Ok(next) => date = next,
                Err(_) => break,
            }
        }
        total
    }
}

impl fmt::Display for WeeklyHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (day, ranges) in self.days.iter().enumerate() {
            for (s, e) in ranges {
                if !first {
                    f.write_str(", ")?;
                }
                first = false;
                write!(
                    f,
                    "{} {}-{}",
                    DAY_NAMES[day],
                    fmt_minute(*s),
                    fmt_minute(*e)
                )?;
            }
        }
        Ok(())
    }
}

/// A daily window in local time, such as quiet hours; it may wrap past midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyWindow {
    start: u16,
    end: u16,
}

impl DailyWindow {
    /// Parses `HH:MM-HH:MM`; `21:00-08:00` wraps past midnight.
    pub fn parse(text: &str) -> Result<Self, HoursError> {
        let (start, end) = parse_time_range(text.trim(), text)
            .map_err(|_| HoursError::BadWindow(text.to_owned()))?;
        if start == end {
            return Err(HoursError::EmptyRange(text.to_owned()));
        }
        Ok(DailyWindow { start, end })
    }

    /// Whether the local time of day falls inside the window.
    pub fn contains(&self, time: Time) -> bool {
        let m = minute_of_day(time);
        if self.start < self.end {
            (self.start..self.end).contains(&m)
        } else {
            m >= self.start || m < self.end
        }
    }

    /// If `at` (seen in `tz`) falls inside the window, the instant the window ends;
    /// otherwise `None`.
    pub fn end_after(&self, at: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let local = at.to_zoned_datetime(tz.clone());
        if !self.contains(local.time()) {
            return None;
        }
        let date = if self.start > self.end && minute_of_day(local.time()) >= self.start {
            local.date().tomorrow().ok()?
        } else {
            local.date()
        };
        Some(local_instant(date, self.end, tz))
    }

    /// If `at` falls inside the window (in `tz`), the instant this stretch of it began.
    pub fn start_before(&self, at: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let local = at.to_zoned_datetime(tz.clone());
        if !self.contains(local.time()) {
            return None;
        }
        let date = if self.start > self.end && minute_of_day(local.time()) < self.start {
            local.date().yesterday().ok()?
        } else {
            local.date()
        };
        Some(local_instant(date, self.start, tz))
    }
}

impl fmt::Display for DailyWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", fmt_minute(self.start), fmt_minute(self.end))
    }
}

fn parse_day_span(spec: &str) -> Result<(usize, usize), HoursError> {
    match spec.split_once('-') {
        Some((a, b)) => Ok((parse_day(a)?, parse_day(b)?)),
        None => {
            let d = parse_day(spec)?;
            Ok((d, d))
        }
    }
}

fn parse_day(name: &str) -> Result<usize, HoursError> {
    DAY_NAMES
        .iter()
        .position(|d| d.eq_ignore_ascii_case(name.trim()))
        .ok_or_else(|| HoursError::BadDay(name.trim().to_owned()))
}

fn parse_time_range(spec: &str, whole: &str) -> Result<(u16, u16), HoursError> {
    let (a, b) = spec
        .split_once('-')
        .ok_or_else(|| HoursError::BadRange(whole.to_owned()))?;
    Ok((parse_time(a.trim())?, parse_time(b.trim())?))
}

fn parse_time(text: &str) -> Result<u16, HoursError> {
    let bad = || HoursError::BadTime(text.to_owned());
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

fn merge(mut ranges: Vec<(u16, u16)>) -> Vec<(u16, u16)> {
    ranges.sort_unstable();
    let mut merged: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}

fn minute_of_day(t: Time) -> u16 {
    t.hour() as u16 * 60 + t.minute() as u16
}

fn fmt_minute(m: u16) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

/// The instant of `minute` past local midnight on `date`; `1440` means the next midnight.
/// Times skipped by a DST gap resolve to the instant after the gap (jiff's "compatible").
fn local_instant(date: Date, minute: u16, tz: &TimeZone) -> Timestamp {
    let (date, minute) = if minute >= MINUTES_PER_DAY {
        (date.tomorrow().unwrap_or(date), minute - MINUTES_PER_DAY)
    } else {
        (date, minute)
    };
    let time = Time::new((minute / 60) as i8, (minute % 60) as i8, 0, 0).expect("valid minute");
    tz.to_ambiguous_timestamp(date.to_datetime(time))
        .compatible()
        .unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rome() -> TimeZone {
        TimeZone::get("Europe/Rome").unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_displays_design_example() {
        let h = WeeklyHours::parse("Mon-Fri 09:00-13:00, Mon-Fri 14:00-18:00, Sat 09:00-12:00")
            .unwrap();
        assert_eq!(h.minutes_per_week(), 5 * 8 * 60 + 3 * 60);
        assert_eq!(h.ranges(Weekday::Saturday), &[(540, 720)]);
        assert!(h.ranges(Weekday::Sunday).is_empty());
        assert_eq!(WeeklyHours::parse(&h.to_string()).unwrap(), h);
    }

    #[test]
    fn rejects_bad_hours_with_the_offending_part() {
        assert_eq!(
            WeeklyHours::parse("Mon-Fry 09:00-18:00"),
            Err(HoursError::BadDay("Fry".into()))
        );
        assert_eq!(
            WeeklyHours::parse("Mon 9-18"),
            Err(HoursError::BadTime("9".into()))
        );
        assert_eq!(
            WeeklyHours::parse("Mon 18:00-09:00"),
            Err(HoursError::EmptyRange("Mon 18:00-09:00".into()))
        );
        assert_eq!(WeeklyHours::parse(""), Err(HoursError::Empty));
        assert_eq!(
            WeeklyHours::parse("Mon"),
            Err(HoursError::BadRange("Mon".into()))
        );
    }

    #[test]
    fn next_open_skips_lunch_nights_and_weekends() {
        let h = WeeklyHours::parse("Mon-Fri 09:00-13:00, Mon-Fri 14:00-18:00").unwrap();
        // 2026-11-23 is a Monday; Rome is UTC+1 in November.
        assert_eq!(
            h.next_open(ts("2026-11-23T12:30:00Z"), &rome()),
            ts("2026-11-23T13:00:00Z")
        );
        assert_eq!(
            h.next_open(ts("2026-11-23T09:00:00Z"), &rome()),
            ts("2026-11-23T09:00:00Z")
        );
        // Friday 19:00 local → Monday 09:00 local.
        assert_eq!(
            h.next_open(ts("2026-11-27T18:00:00Z"), &rome()),
            ts("2026-11-30T08:00:00Z")
        );
    }

    #[test]
    fn open_seconds_count_only_business_hours() {
        let h = WeeklyHours::parse("Mon-Fri 09:00-18:00").unwrap();
        let week = h.open_seconds_between(
            ts("2026-11-23T00:00:00Z"),
            ts("2026-11-30T00:00:00Z"),
            &rome(),
        );
        assert_eq!(week, 5 * 9 * 3600);
        let part = h.open_seconds_between(
            ts("2026-11-23T10:00:00Z"),
            ts("2026-11-23T11:30:00Z"),
            &rome(),
        );
        assert_eq!(part, 5400);
    }

    #[test]
    fn quiet_hours_wrap_midnight_and_follow_dst() {
        let q = DailyWindow::parse("21:00-08:00").unwrap();
        assert!(q.contains(Time::constant(3, 0, 0, 0)));
        assert!(q.contains(Time::constant(21, 0, 0, 0)));
        assert!(!q.contains(Time::constant(8, 0, 0, 0)));
        let ny = TimeZone::get("America/New_York").unwrap();
        // 03:00 in New York on 2026-11-23 (UTC-5) → quiet until 08:00 local = 13:00Z.
        assert_eq!(
            q.end_after(ts("2026-11-23T08:00:00Z"), &ny),
            Some(ts("2026-11-23T13:00:00Z"))
        );
        // 22:00 local on the night DST ends (2026-11-01, back to UTC-5) → 08:00 EST.
        assert_eq!(
            q.end_after(ts("2026-11-01T02:00:00Z"), &ny),
            Some(ts("2026-11-01T13:00:00Z"))
        );
        assert_eq!(q.end_after(ts("2026-11-23T15:00:00Z"), &ny), None);
        // 03:00 local began at 21:00 the evening before (UTC-5: 02:00Z); 22:00 local at
        // 21:00 the same evening.
        assert_eq!(
            q.start_before(ts("2026-11-23T08:00:00Z"), &ny),
            Some(ts("2026-11-23T02:00:00Z"))
        );
        assert_eq!(
            q.start_before(ts("2026-11-24T03:00:00Z"), &ny),
            Some(ts("2026-11-24T02:00:00Z"))
        );
        assert_eq!(q.start_before(ts("2026-11-23T15:00:00Z"), &ny), None);
    }
}

#[cfg(test)]
mod holiday_tests {
    use super::*;

    #[test]
    fn a_holiday_is_closed_all_day_and_opening_moves_past_it() {
        let tz = TimeZone::get("Europe/Rome").unwrap();
        let christmas = Date::new(2026, 12, 25).unwrap();
        let hours = WeeklyHours::parse("Mon-Fri 09:00-18:00")
            .unwrap()
            .with_holidays([christmas, Date::new(2026, 12, 28).unwrap()]);
        let noon = christmas.at(12, 0, 0, 0);
        assert!(!hours.is_open_at(noon));
        assert!(hours.ranges_on(christmas).is_empty());
        // Thursday evening: Friday is Christmas, then a weekend, then Monday is closed too.
        let thursday_evening = Date::new(2026, 12, 24)
            .unwrap()
            .at(19, 0, 0, 0)
            .to_zoned_datetime(tz.clone())
            .unwrap()
            .timestamp();
        let opens = hours.next_open(thursday_evening, &tz);
        assert_eq!(
            opens.to_zoned_datetime(tz.clone()).datetime(),
            Date::new(2026, 12, 29).unwrap().at(9, 0, 0, 0)
        );
        // That week has four open days, not five.
        let monday = Date::new(2026, 12, 21)
            .unwrap()
            .to_zoned_datetime(tz.clone())
            .unwrap();
        let next_monday = Date::new(2026, 12, 28)
            .unwrap()
            .to_zoned_datetime(tz.clone())
            .unwrap();
        assert_eq!(
            hours.open_seconds_between(monday.timestamp(), next_monday.timestamp(), &tz),
            4 * 9 * 3600
        );
    }
}
