//! The budget usage last stored or read, kept decoded. A business far behind its budget
//! holds a reservation per waiting contact, and every batch of decisions writes the
//! whole state and reads it back: decoding thousands of reservations each time was a
//! quarter of a 10,000-contact forecast, encoding and writing them a third more.
//!
//! A database file keeps the state as text, read every time; the kept state is used
//! only when the text is exactly the one kept, so a state written by anyone else is
//! decoded as before. A scratch database in memory, which no one else can open, holds
//! the state here only, once the first batch has recorded it.

use std::sync::{Arc, Mutex};
use tend_core::pacer::BudgetState;
use tend_store::StoreError;

/// What is kept.
enum Kept {
    /// A stored text and the state it decodes to.
    Decoded { text: String, state: BudgetState },
    /// The state itself, stored nowhere else (a scratch database).
    Held(BudgetState),
}

/// The budget state last stored, read or held by one store.
pub(crate) struct BudgetCache {
    kept: Mutex<Option<Arc<Kept>>>,
    /// Whether states recorded are held here instead of stored.
    holds: bool,
}

impl BudgetCache {
    /// A cache for a database file: states are stored, and kept beside their text.
    pub(crate) fn stored() -> Self {
        BudgetCache {
            kept: Mutex::default(),
            holds: false,
        }
    }

    /// A cache for a scratch database: states recorded are held here only.
    pub(crate) fn held() -> Self {
        BudgetCache {
            kept: Mutex::default(),
            holds: true,
        }
    }

    /// A scratch copy's cache: what this one keeps, held by the copy from then on.
    pub(crate) fn for_scratch_copy(&self) -> Self {
        BudgetCache {
            kept: Mutex::new(self.kept()),
            holds: true,
        }
    }

    /// Whether recorded states are held here instead of stored.
    pub(crate) fn holds(&self) -> bool {
        self.holds
    }

    /// The state held, if any; else the state the text `read` returns stores (none
    /// stored: the empty state).
    pub(crate) fn current(
        &self,
        read: impl FnOnce() -> Result<Option<String>, StoreError>,
    ) -> Result<BudgetState, StoreError> {
        let kept = self.kept();
        if let Some(Kept::Held(state)) = kept.as_deref() {
            return Ok(state.clone());
        }
        let Some(text) = read()? else {
            return Ok(BudgetState::default());
        };
        if let Some(Kept::Decoded { text: kept, state }) = kept.as_deref()
            && *kept == text
        {
            return Ok(state.clone());
        }
        let state: BudgetState = serde_json::from_str(&text).map_err(|e| {
            StoreError::Corrupt(format!("stored budget usage is not readable: {e}"))
        })?;
        self.keep(Kept::Decoded {
            text,
            state: state.clone(),
        });
        Ok(state)
    }

    /// Keeps `state`, just recorded; `text` is what encoding it gave, if it was stored.
    pub(crate) fn recorded(&self, text: Option<String>, state: BudgetState) {
        self.keep(match text {
            Some(text) => Kept::Decoded { text, state },
            None => Kept::Held(state),
        });
    }

    fn keep(&self, kept: Kept) {
        *self.kept.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(kept));
    }

    fn kept(&self) -> Option<Arc<Kept>> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tend_core::pacer::{Period, Resource, WindowUsage};

    fn spent(used: f64) -> BudgetState {
        BudgetState {
            windows: vec![WindowUsage {
                resource: Resource::Emails,
                period: Period::Day,
                window_start: "2027-01-04T00:00:00Z".parse().unwrap(),
                used,
            }],
            reservations: Vec::new(),
        }
    }

    fn text(state: &BudgetState) -> Option<String> {
        Some(serde_json::to_string(state).unwrap())
    }

    #[test]
    fn a_stored_text_other_than_the_kept_one_is_decoded() {
        let cache = BudgetCache::stored();
        let kept = spent(3.0);
        cache.recorded(text(&kept), kept.clone());
        assert_eq!(cache.current(|| Ok(text(&kept))).unwrap(), kept);
        let other = spent(5.0);
        assert_eq!(cache.current(|| Ok(text(&other))).unwrap(), other);
        assert_eq!(cache.current(|| Ok(None)).unwrap(), BudgetState::default());
        assert!(cache.current(|| Ok(Some("{".into()))).is_err());
    }

    #[test]
    fn a_scratch_database_holds_what_it_recorded_and_its_copies_too() {
        let cache = BudgetCache::held();
        let stored = spent(1.0);
        assert_eq!(cache.current(|| Ok(text(&stored))).unwrap(), stored);
        let recorded = spent(2.0);
        cache.recorded(None, recorded.clone());
        let unread = || Err(StoreError::Corrupt("not read".into()));
        assert_eq!(cache.current(unread).unwrap(), recorded);
        assert_eq!(cache.for_scratch_copy().current(unread).unwrap(), recorded);
    }
}
