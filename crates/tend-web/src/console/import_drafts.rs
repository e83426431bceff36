//! Uploaded contact lists between their preview and their import.
//!
//! The file stays in this server's memory under a random id, for the person who
//! uploaded it and for [`DRAFT_MINUTES`], so confirming imports the very bytes the
//! preview read, without the browser sending them twice and without the upload ever
//! touching the disk or the database. Memory is bounded: past [`MAX_DRAFT_BYTES`] in
//! all the oldest upload is forgotten (its page then says to upload again). A server
//! restart, or a confirmation reaching another node of a PostgreSQL cluster, finds no
//! draft and says the same.

use super::session::random_hex;
use axum::body::Bytes;
use jiff::{SignedDuration, Timestamp};
use std::collections::HashMap;
use std::sync::Mutex;
use tend_store::EnrollChoice;

/// How long an upload waits for its confirmation, and a result stays to be seen.
pub const DRAFT_MINUTES: i64 = 30;
/// The most all kept uploads may weigh together.
pub const MAX_DRAFT_BYTES: usize = 64 * 1024 * 1024;

/// One uploaded file and what became of it.
#[derive(Debug, Clone)]
pub struct Draft {
    /// Who uploaded it; nobody else may see or import it.
    pub user_id: i64,
    /// The name the browser gave, for the page.
    pub file_name: String,
    /// The file as uploaded; emptied once imported.
    pub bytes: Bytes,
    /// When it was uploaded.
    pub uploaded_at: Timestamp,
    /// A confirmation is writing it now.
    pub importing: bool,
    /// Set once the import is done.
    pub imported: Option<Imported>,
}

/// What confirming an upload wrote.
#[derive(Debug, Clone)]
pub struct Imported {
    /// Contacts created.
    pub inserted: usize,
    /// Contacts changed.
    pub updated: usize,
    /// Rows that changed nothing.
    pub unchanged: usize,
    /// Rows not imported, as the preview listed them.
    pub rejected: usize,
    /// How the imported contacts enroll.
    pub enroll: EnrollChoice,
    /// When it was written.
    pub at: Timestamp,
}

/// The uploads kept for their confirmation (see the module doc).
#[derive(Debug, Default)]
pub struct ImportDrafts {
    drafts: Mutex<HashMap<String, Draft>>,
}

impl ImportDrafts {
    /// Keeps `draft`; returns its id.
    pub fn insert(&self, draft: Draft) -> String {
        let id = random_hex();
        let mut drafts = self.lock();
        forget_expired(&mut drafts, draft.uploaded_at);
        let mut weight: usize = drafts.values().map(|d| d.bytes.len()).sum();
        while weight + draft.bytes.len() > MAX_DRAFT_BYTES {
            let Some(oldest) = drafts
                .iter()
                .filter(|(_, d)| !d.bytes.is_empty())
                .min_by_key(|(_, d)| d.uploaded_at)
                .map(|(id, _)| id.clone())
            else {
                break;
            };
            if let Some(gone) = drafts.remove(&oldest) {
                weight -= gone.bytes.len();
            }
        }
        drafts.insert(id.clone(), draft);
        id
    }

    /// The draft `id` of `user_id`, if it is still kept.
    pub fn get(&self, id: &str, user_id: i64, now: Timestamp) -> Option<Draft> {
        let mut drafts = self.lock();
        forget_expired(&mut drafts, now);
        drafts.get(id).filter(|d| d.user_id == user_id).cloned()
    }

    /// Takes draft `id` of `user_id` for importing: `None` if it is gone, imported or
    /// being imported by another request, so one upload is written at most once.
    pub fn begin_import(&self, id: &str, user_id: i64, now: Timestamp) -> Option<Draft> {
        let mut drafts = self.lock();
        forget_expired(&mut drafts, now);
        let draft = drafts.get_mut(id).filter(|d| d.user_id == user_id)?;
        if draft.importing || draft.imported.is_some() {
            return None;
        }
        draft.importing = true;
        Some(draft.clone())
    }

    /// Ends what [`ImportDrafts::begin_import`] began: with what was written (the bytes
    /// go), or with `None` when nothing was and the upload may be confirmed again.
    pub fn finish_import(&self, id: &str, imported: Option<Imported>) {
        if let Some(draft) = self.lock().get_mut(id) {
            draft.importing = false;
            if imported.is_some() {
                draft.bytes = Bytes::new();
                draft.imported = imported;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Draft>> {
        self.drafts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn forget_expired(drafts: &mut HashMap<String, Draft>, now: Timestamp) {
    let since = now
        .checked_sub(SignedDuration::from_mins(DRAFT_MINUTES))
        .unwrap_or(now);
    drafts.retain(|_, d| d.uploaded_at > since);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(user_id: i64, bytes: usize, uploaded_at: Timestamp) -> Draft {
        Draft {
            user_id,
            file_name: "list.csv".into(),
            bytes: Bytes::from(vec![b'a'; bytes]),
            uploaded_at,
            importing: false,
            imported: None,
        }
    }

    #[test]
    fn a_draft_is_its_uploaders_only_and_expires() {
        let drafts = ImportDrafts::default();
        let at = Timestamp::from_second(1_800_000_000).unwrap();
        let id = drafts.insert(draft(1, 10, at));
        assert!(drafts.get(&id, 1, at).is_some());
        assert!(drafts.get(&id, 2, at).is_none(), "another person's upload");
        let later = at + SignedDuration::from_mins(DRAFT_MINUTES);
        assert!(drafts.get(&id, 1, later).is_none(), "expired");
    }

    #[test]
    fn memory_stays_bounded_by_forgetting_the_oldest() {
        let drafts = ImportDrafts::default();
        let at = Timestamp::from_second(1_800_000_000).unwrap();
        let half = MAX_DRAFT_BYTES / 2;
        let first = drafts.insert(draft(1, half, at));
        let second = drafts.insert(draft(1, half, at + SignedDuration::from_secs(1)));
        let third = drafts.insert(draft(1, half, at + SignedDuration::from_secs(2)));
        let now = at + SignedDuration::from_secs(3);
        assert!(drafts.get(&first, 1, now).is_none());
        assert!(drafts.get(&second, 1, now).is_some());
        assert!(drafts.get(&third, 1, now).is_some());
    }

    #[test]
    fn an_upload_is_imported_once() {
        let drafts = ImportDrafts::default();
        let at = Timestamp::from_second(1_800_000_000).unwrap();
        let id = drafts.insert(draft(1, 10, at));
        let imported = Imported {
            inserted: 1,
            updated: 0,
            unchanged: 0,
            rejected: 0,
            enroll: EnrollChoice::Now,
            at,
        };
        assert!(
            drafts.begin_import(&id, 2, at).is_none(),
            "another person's upload"
        );
        assert!(drafts.begin_import(&id, 1, at).is_some());
        assert!(drafts.begin_import(&id, 1, at).is_none(), "being imported");
        drafts.finish_import(&id, None);
        assert!(
            drafts.begin_import(&id, 1, at).is_some(),
            "nothing was written"
        );
        drafts.finish_import(&id, Some(imported));
        assert!(drafts.begin_import(&id, 1, at).is_none(), "imported");
        assert!(drafts.get(&id, 1, at).unwrap().bytes.is_empty());
    }
}
