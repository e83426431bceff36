//! How a [`Reservation`] is stored: one array of nine numbers, `[touch, deadline,
//! expected_value, until, expires, emails, webhooks, staff_minutes, money]`, instants in
//! milliseconds (the pacer makes them to the millisecond). A business far behind its
//! budget holds one per waiting contact, and the engine stores them all with every
//! batch of decisions: as objects with RFC 3339 instants, writing and reading them
//! back was most of a 10,000-contact forecast's time. The object form written before
//! is still read.

use super::{Reservation, Spend};
use crate::pacer::TouchId;
use jiff::Timestamp;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Numbers in the stored array.
const FIELDS: usize = 9;

impl Serialize for Reservation {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut array = serializer.serialize_tuple(FIELDS)?;
        array.serialize_element(&self.touch.0)?;
        array.serialize_element(&self.deadline.as_millisecond())?;
        array.serialize_element(&self.expected_value)?;
        array.serialize_element(&self.until.as_millisecond())?;
        array.serialize_element(&self.expires.as_millisecond())?;
        array.serialize_element(&self.spend.emails)?;
        array.serialize_element(&self.spend.webhooks)?;
        array.serialize_element(&self.spend.staff_minutes)?;
        array.serialize_element(&self.spend.money)?;
        array.end()
    }
}

impl<'de> Deserialize<'de> for Reservation {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ReservationVisitor)
    }
}

/// The object form written before the array.
#[derive(Deserialize)]
struct Named {
    touch: TouchId,
    deadline: Timestamp,
    expected_value: f64,
    spend: Spend,
    until: Timestamp,
    expires: Timestamp,
}

struct ReservationVisitor;

/// The next number of the array, which has `FIELDS` of them.
fn element<'de, T: Deserialize<'de>, A: SeqAccess<'de>>(
    array: &mut A,
    index: usize,
) -> Result<T, A::Error> {
    array
        .next_element()?
        .ok_or_else(|| de::Error::invalid_length(index, &"an array of 9 numbers"))
}

fn instant<E: de::Error>(ms: i64) -> Result<Timestamp, E> {
    Timestamp::from_millisecond(ms).map_err(E::custom)
}

impl<'de> Visitor<'de> for ReservationVisitor {
    type Value = Reservation;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a budget reservation: an array of 9 numbers")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut array: A) -> Result<Reservation, A::Error> {
        let touch = TouchId(element(&mut array, 0)?);
        let deadline = instant(element(&mut array, 1)?)?;
        let expected_value = element(&mut array, 2)?;
        let until = instant(element(&mut array, 3)?)?;
        let expires = instant(element(&mut array, 4)?)?;
        let spend = Spend {
            emails: element(&mut array, 5)?,
            webhooks: element(&mut array, 6)?,
            staff_minutes: element(&mut array, 7)?,
            money: element(&mut array, 8)?,
        };
        if array.next_element::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::invalid_length(FIELDS + 1, &self));
        }
        Ok(Reservation {
            touch,
            deadline,
            expected_value,
            spend,
            until,
            expires,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, object: A) -> Result<Reservation, A::Error> {
        let named = Named::deserialize(de::value::MapAccessDeserializer::new(object))?;
        Ok(Reservation {
            touch: named.touch,
            deadline: named.deadline,
            expected_value: named.expected_value,
            spend: named.spend,
            until: named.until,
            expires: named.expires,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pacer::BudgetState;

    fn reservation() -> Reservation {
        Reservation {
            touch: TouchId(42),
            deadline: Timestamp::from_millisecond(1_797_000_000_123).unwrap(),
            expected_value: 0.2,
            spend: Spend {
                emails: 1.0,
                webhooks: 0.0,
                staff_minutes: 15.0,
                money: 0.001,
            },
            until: Timestamp::from_millisecond(1_796_990_000_001).unwrap(),
            expires: Timestamp::from_millisecond(1_796_997_200_001).unwrap(),
        }
    }

    #[test]
    fn a_stored_reservation_reads_back_the_same() {
        let state = BudgetState {
            windows: Vec::new(),
            reservations: vec![reservation()],
        };
        let text = serde_json::to_string(&state).unwrap();
        assert!(
            text.contains("[42,1797000000123,0.2,1796990000001,1796997200001,1.0,0.0,15.0,0.001]"),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<BudgetState>(&text).unwrap(), state);
    }

    #[test]
    fn reservations_stored_as_objects_by_earlier_releases_are_read() {
        let text = r#"{"windows":[],"reservations":[{"touch":42,
            "deadline":"2026-12-11T14:40:00.123Z","expected_value":0.2,
            "spend":{"emails":1.0,"webhooks":0.0,"staff_minutes":15.0,"money":0.001},
            "until":"2026-12-11T11:53:20.001Z","expires":"2026-12-11T13:53:20.001Z"}]}"#;
        let state: BudgetState = serde_json::from_str(text).unwrap();
        assert_eq!(state.reservations, vec![reservation()]);
    }

    #[test]
    fn a_short_or_long_array_is_refused() {
        for text in [
            "[42,1,0.2,1,1,1.0,0.0,0.0]",
            "[42,1,0.2,1,1,1.0,0.0,0.0,0.0,9]",
        ] {
            assert!(serde_json::from_str::<Reservation>(text).is_err(), "{text}");
        }
    }
}
