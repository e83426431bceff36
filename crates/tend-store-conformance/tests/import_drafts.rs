//! Uploads waiting between the console's preview and their confirmation, on any
//! backend: only their uploader sees them, they expire, one confirmation imports them
//! (a second one, or one racing it, gets nothing), a failed one lets them be confirmed
//! again, an abandoned one is taken over after its timeout, and the bytes go once
//! imported while the counts stay.

use jiff::SignedDuration;
use tend_store::drafts::{DRAFT_IMPORT_TIMEOUT, DRAFT_LIFETIME, MAX_DRAFT_BYTES};
use tend_store::{DraftImported, EnrollChoice, ImportDraft, Role, Store};
use tend_store_conformance::fixtures::at;
use tend_store_conformance::test_store;

async fn person(store: &dyn Store, email: &str) -> i64 {
    store
        .upsert_user(email, Role::Owner, "hash", at(0))
        .await
        .unwrap()
        .0
        .id
}

fn draft(id: &str, user_id: i64, bytes: usize, uploaded_at: jiff::Timestamp) -> ImportDraft {
    ImportDraft {
        id: id.into(),
        user_id,
        file_name: "list.csv".into(),
        bytes: vec![b'a'; bytes],
        uploaded_at,
        imported: None,
    }
}

#[tokio::test]
async fn an_upload_is_its_uploaders_only_expires_and_is_imported_once() {
    let store = test_store().await;
    let s = &*store;
    let ann = person(s, "ann@example.com").await;
    let bo = person(s, "bo@example.com").await;
    let now = at(10);
    let upload = draft("d1", ann, 100, now);
    s.put_import_draft(&upload, now).await.unwrap();
    assert_eq!(s.import_draft("d1", ann, now).await.unwrap(), Some(upload));
    assert_eq!(
        s.import_draft("d1", bo, now).await.unwrap(),
        None,
        "another person's"
    );
    assert_eq!(s.begin_draft_import("d1", bo, now).await.unwrap(), None);

    // One confirmation takes it; a second one, on any node, gets nothing meanwhile.
    let taken = s.begin_draft_import("d1", ann, now).await.unwrap().unwrap();
    assert_eq!(taken.bytes.len(), 100);
    assert_eq!(s.begin_draft_import("d1", ann, now).await.unwrap(), None);
    // Nothing written: it may be confirmed again.
    s.finish_draft_import("d1", None).await.unwrap();
    assert!(
        s.begin_draft_import("d1", ann, now)
            .await
            .unwrap()
            .is_some()
    );
    let imported = DraftImported {
        inserted: 3,
        updated: 2,
        unchanged: 1,
        rejected: 4,
        enroll: EnrollChoice::Spread(tend_core::Duration::from_secs(14 * 86_400)),
        at: now,
    };
    s.finish_draft_import("d1", Some(&imported)).await.unwrap();
    let done = s.import_draft("d1", ann, now).await.unwrap().unwrap();
    assert_eq!(done.imported, Some(imported));
    assert!(
        done.bytes.is_empty(),
        "an imported upload keeps its counts, not its rows"
    );
    assert_eq!(
        s.begin_draft_import("d1", ann, now).await.unwrap(),
        None,
        "imported"
    );

    let later = now + DRAFT_LIFETIME;
    assert_eq!(
        s.import_draft("d1", ann, later).await.unwrap(),
        None,
        "expired"
    );
}

#[tokio::test]
async fn an_abandoned_confirmation_is_taken_over_after_its_timeout() {
    let store = test_store().await;
    let s = &*store;
    let ann = person(s, "ann@example.com").await;
    let now = at(10);
    s.put_import_draft(&draft("d1", ann, 10, now), now)
        .await
        .unwrap();
    assert!(
        s.begin_draft_import("d1", ann, now)
            .await
            .unwrap()
            .is_some()
    );
    // The node that took it died without finishing.
    let soon = now + SignedDuration::from_secs(60);
    assert_eq!(s.begin_draft_import("d1", ann, soon).await.unwrap(), None);
    let after = now + DRAFT_IMPORT_TIMEOUT;
    assert!(
        s.begin_draft_import("d1", ann, after)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn the_oldest_uploads_go_when_all_would_weigh_too_much() {
    let store = test_store().await;
    let s = &*store;
    let ann = person(s, "ann@example.com").await;
    let half = (MAX_DRAFT_BYTES / 2) as usize;
    let now = at(10);
    for (i, id) in ["first", "second", "third"].iter().enumerate() {
        let uploaded = now + SignedDuration::from_secs(i as i64);
        s.put_import_draft(&draft(id, ann, half, uploaded), uploaded)
            .await
            .unwrap();
    }
    let then = now + SignedDuration::from_secs(3);
    assert_eq!(s.import_draft("first", ann, then).await.unwrap(), None);
    assert!(s.import_draft("second", ann, then).await.unwrap().is_some());
    assert!(s.import_draft("third", ann, then).await.unwrap().is_some());
}
