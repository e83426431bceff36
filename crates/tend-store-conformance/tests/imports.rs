//! A list import's preview on any backend: it counts row by row what importing the
//! rows writes, and writes nothing.

use serde_json::json;
use tend_store::{ImportEnrollment, ImportOutcome, RowEffect, TimelineEntry};
use tend_store_conformance::fixtures::*;
use tend_store_conformance::test_store;

/// Each stage change as `from -> to`.
fn moves(outcome: &ImportOutcome) -> Vec<String> {
    outcome
        .stage_changes
        .iter()
        .map(|c| {
            let from = c.from.as_ref().map_or("-", |s| s.as_str());
            format!("{from} -> {}", c.to.as_str())
        })
        .collect()
}

#[tokio::test]
async fn a_preview_counts_what_the_import_writes_and_writes_nothing() {
    let db = test_store().await;
    let s = &db.store;
    let first = s
        .import_contacts(
            &[
                import_row("bo@example.com", "Bo", Some("lead"), json!({})),
                import_row("di@example.com", "Di", None, json!({"plan": "basic"})),
            ],
            &prospect(),
            at(0),
            ImportEnrollment::Now,
        )
        .await
        .unwrap();
    let di = first.stage_changes[1].contact_id;
    let before = s.list_contacts(&all(10)).await.unwrap();
    let timeline_before = s.timeline(di).await.unwrap();

    let rows = [
        import_row("bo@example.com", "Bo", Some("lead"), json!({})),
        import_row(
            "di@example.com",
            "Di Rossi",
            Some("customer"),
            json!({"plan": "gold"}),
        ),
        import_row("cy@example.com", "Cy", Some("lead"), json!({})),
    ];
    let preview = s.preview_import(&rows, &prospect(), at(60)).await.unwrap();
    assert_eq!(
        (preview.inserted, preview.updated, preview.unchanged),
        (1, 1, 1)
    );
    assert_eq!(
        preview.effects,
        [
            RowEffect::Unchanged,
            RowEffect::Updated,
            RowEffect::Inserted
        ]
    );
    assert_eq!(moves(&preview), ["prospect -> customer", "- -> lead"]);
    assert_eq!(
        s.list_contacts(&all(10)).await.unwrap(),
        before,
        "a preview changes no contact and adds none"
    );
    let timeline_after = s.timeline(di).await.unwrap();
    assert_eq!(timeline_after.len(), timeline_before.len());
    assert!(
        !timeline_after.iter().any(
            |e| matches!(e, TimelineEntry::StageChange { to, .. } if to.as_str() == "customer")
        ),
        "a preview records no stage change"
    );

    let imported = s
        .import_contacts(&rows, &prospect(), at(60), ImportEnrollment::Now)
        .await
        .unwrap();
    assert_eq!(
        (imported.inserted, imported.updated, imported.unchanged),
        (1, 1, 1)
    );
    assert_eq!(imported.effects, preview.effects);
    assert_eq!(moves(&imported), moves(&preview));

    let again = s.preview_import(&rows, &prospect(), at(120)).await.unwrap();
    assert_eq!(again.effects, [RowEffect::Unchanged; 3]);
    assert!(again.stage_changes.is_empty());
    let empty = s.preview_import(&[], &prospect(), at(120)).await.unwrap();
    assert_eq!(empty, ImportOutcome::default());
}
