//! Interned time zones, so a batch resolves each zone once rather than once per touch.

use crate::domain::TimeZoneName;
use jiff::tz::TimeZone;
use std::collections::HashMap;

/// A small index into a [`ZoneTable`]; contacts carry this instead of a zone name.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct ZoneId(pub u32);

impl ZoneId {
    /// The business's own zone; never issued by a table.
    pub const BUSINESS: ZoneId = ZoneId(u32::MAX);
}

impl Default for ZoneId {
    /// The business's zone, for contacts whose zone is unknown.
    fn default() -> Self {
        ZoneId::BUSINESS
    }
}

/// The time zones contacts live in, each resolved from the tz database once.
///
/// The engine keeps one table for its lifetime and interns a contact's zone when it
/// loads the contact; ids are stable for the table's lifetime, not across restarts.
#[derive(Debug, Clone, Default)]
pub struct ZoneTable {
    zones: Vec<TimeZone>,
    by_name: HashMap<String, ZoneId>,
}

impl ZoneTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of `name`, resolving and storing the zone the first time it is seen.
    pub fn intern(&mut self, name: &TimeZoneName) -> ZoneId {
        if let Some(id) = self.by_name.get(name.as_str()) {
            return *id;
        }
        let id = u32::try_from(self.zones.len())
            .ok()
            .filter(|n| *n != ZoneId::BUSINESS.0)
            .map(ZoneId)
            .expect("fewer than 4 billion zones");
        self.zones.push(name.time_zone());
        self.by_name.insert(name.as_str().to_owned(), id);
        id
    }

    /// The zone behind `id`, if this table issued it.
    pub fn get(&self, id: ZoneId) -> Option<&TimeZone> {
        self.zones.get(id.0 as usize)
    }

    /// How many zones are interned.
    pub fn len(&self) -> usize {
        self.zones.len()
    }

    /// Whether no zone has been interned yet.
    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }
}
