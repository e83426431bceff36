//! Durations as written in config files: an integer and a unit (`90m`, `12h`, `2d`, `1w`).

use std::fmt;
use std::str::FromStr;

/// A non-negative length of time written as `<integer><unit>`, unit one of `s m h d w`.
///
/// Days and weeks are fixed lengths (86 400 s and 604 800 s): waits between touches are
/// about elapsed time, not calendar arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration {
    secs: u64,
}

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration; expected an integer and a unit such as `2d`")]
    Empty,
    #[error("duration `{0}` has no number; expected an integer and a unit such as `2d`")]
    MissingNumber(String),
    #[error("duration `{0}` has an unknown unit; use s, m, h, d or w (e.g. `90m`, `2d`)")]
    BadUnit(String),
    #[error("duration `{0}` is too large")]
    Overflow(String),
}

const UNITS: [(char, u64); 5] = [
    ('w', 604_800),
    ('d', 86_400),
    ('h', 3_600),
    ('m', 60),
    ('s', 1),
];

impl Duration {
    /// A zero-length duration.
    pub const ZERO: Duration = Duration { secs: 0 };

    /// Builds a duration from whole seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Duration { secs }
    }

    /// Parses `<integer><unit>`; see the type's docs.
    pub fn parse(text: &str) -> Result<Self, DurationError> {
        let text_trimmed = text.trim();
        if text_trimmed.is_empty() {
            return Err(DurationError::Empty);
        }
        let digits_end = text_trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text_trimmed.len());
        if digits_end == 0 {
            return Err(DurationError::MissingNumber(text.to_owned()));
        }
        let (number, unit) = text_trimmed.split_at(digits_end);
        let mut unit_chars = unit.chars();
        let unit_secs = match (unit_chars.next(), unit_chars.next()) {
            (Some(c), None) => UNITS
                .iter()
                .find(|(u, _)| *u == c)
                .map(|(_, secs)| *secs)
                .ok_or_else(|| DurationError::BadUnit(text.to_owned()))?,
            _ => return Err(DurationError::BadUnit(text.to_owned())),
        };
        let count: u64 = number
            .parse()
            .map_err(|_| DurationError::Overflow(text.to_owned()))?;
        let secs = count
            .checked_mul(unit_secs)
            .filter(|s| *s <= i64::MAX as u64 / 1000)
            .ok_or_else(|| DurationError::Overflow(text.to_owned()))?;
        Ok(Duration { secs })
    }

    /// Whole seconds.
    pub const fn as_secs(self) -> u64 {
        self.secs
    }

    /// Milliseconds, the unit Tend stores instants in.
    pub const fn as_millis(self) -> i64 {
        (self.secs * 1000) as i64
    }

    /// The same length as a `jiff::SignedDuration`, for instant arithmetic.
    pub fn to_signed(self) -> jiff::SignedDuration {
        jiff::SignedDuration::from_secs(self.secs as i64)
    }
}

impl fmt::Display for Duration {
    /// Writes the largest unit that divides evenly, so `parse(display(d)) == d`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secs == 0 {
            return f.write_str("0s");
        }
        let (unit, secs) = UNITS
            .iter()
            .find(|(_, secs)| self.secs.is_multiple_of(*secs))
            .expect("the `s` unit divides everything");
        write!(f, "{}{}", self.secs / secs, unit)
    }
}

impl FromStr for Duration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Duration::parse(s)
    }
}

impl<'de> serde::Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Duration::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Duration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// In the OpenAPI document: a string of an integer and a unit, as in the config files.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Duration {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^[0-9]+[smhdw]$"))
            .description(Some("An integer and a unit: `90m`, `12h`, `2d`, `1w`."))
            .examples(["2d"])
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Duration {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(Duration::parse("90m").unwrap().as_secs(), 5_400);
        assert_eq!(Duration::parse("12h").unwrap().as_secs(), 43_200);
        assert_eq!(Duration::parse("2d").unwrap().as_secs(), 172_800);
        assert_eq!(Duration::parse("1w").unwrap().as_secs(), 604_800);
        assert_eq!(Duration::parse("0d").unwrap(), Duration::ZERO);
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        assert_eq!(
            Duration::parse("3x"),
            Err(DurationError::BadUnit("3x".into()))
        );
        assert_eq!(Duration::parse(""), Err(DurationError::Empty));
        assert!(matches!(
            Duration::parse("d"),
            Err(DurationError::MissingNumber(_))
        ));
        assert!(matches!(
            Duration::parse("-1d"),
            Err(DurationError::MissingNumber(_))
        ));
        assert!(matches!(
            Duration::parse("1.5d"),
            Err(DurationError::BadUnit(_))
        ));
        assert!(matches!(
            Duration::parse("2dd"),
            Err(DurationError::BadUnit(_))
        ));
        assert!(matches!(
            Duration::parse("99999999999999999999w"),
            Err(DurationError::Overflow(_))
        ));
    }

    proptest! {
        #[test]
        fn display_round_trips(secs in 0u64..10_000_000_000) {
            let d = Duration::from_secs(secs);
            prop_assert_eq!(Duration::parse(&d.to_string()).unwrap(), d);
        }

        #[test]
        fn number_and_unit_multiply(n in 0u64..1_000_000, unit in prop::sample::select(vec!['s','m','h','d','w'])) {
            let d = Duration::parse(&format!("{n}{unit}")).unwrap();
            let factor = UNITS.iter().find(|(u, _)| *u == unit).unwrap().1;
            prop_assert_eq!(d.as_secs(), n * factor);
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,12}") {
            let _ = Duration::parse(&text);
        }

        #[test]
        fn unknown_units_are_rejected(n in 0u64..1000, unit in "[a-zA-Z]{1,3}") {
            prop_assume!(!["s","m","h","d","w"].contains(&unit.as_str()));
            let is_bad_unit = matches!(Duration::parse(&format!("{n}{unit}")), Err(DurationError::BadUnit(_)));
            prop_assert!(is_bad_unit);
        }
    }
}
