//! Contacts and events on any backend: identities resolving to one contact, merges,
//! deduplicated messages, stage changes and their timeline, listing pages.

use serde_json::json;
use tend_core::{StageName, TimeZoneName};
use tend_store::{ContactQuery, Identity, ImportRow, StageChange, StoreError, TimelineEntry};
use tend_store_conformance::fixtures::*;
use tend_store_conformance::{TestStore, test_store};

async fn db() -> TestStore {
    test_store().await
}

#[tokio::test]
async fn user_id_anonymous_id_and_email_resolve_to_one_contact() {
    let db = db().await;
    let s = &db.store;
    let first = s
        .ingest(
            &[track("m1", anon("device-1"), "Page Viewed", 1)],
            &prospect(),
        )
        .await
        .unwrap();
    assert_eq!(first.stage_changes.len(), 1, "creation is a stage change");
    let id = first.stage_changes[0].contact_id;

    let both = Identity {
        user_id: Some("u1".into()),
        anonymous_id: Some("device-1".into()),
    };
    let attrs = json!({"plan": "pro"});
    s.ingest(
        &[
            identify(
                "m2",
                both,
                traits(Some("Ann@Example.com"), Some("Ann"), attrs),
            ),
            track("m3", user("u1"), "Signed Up", 6),
            // The same person on a second device, known only by email.
            identify(
                "m4",
                anon("device-2"),
                traits(Some("ann@example.com"), None, json!({"seats": 3})),
            ),
            track("m5", anon("device-2"), "Inquiry Received", 7),
        ],
        &prospect(),
    )
    .await
    .unwrap();

    let page = s.list_contacts(&all(10)).await.unwrap();
    assert_eq!(page.contacts.len(), 1);
    let contact = &page.contacts[0];
    assert_eq!(contact.id, id);
    assert_eq!(contact.user_id.as_deref(), Some("u1"));
    assert_eq!(contact.email.as_deref(), Some("ann@example.com"));
    assert_eq!(contact.name.as_deref(), Some("Ann"));
    assert_eq!(contact.stage, prospect());
    assert_eq!(contact.attributes["plan"], json!("pro"));
    assert_eq!(contact.attributes["seats"], json!(3));
    assert_eq!(contact.updated_at, at(5));
    assert_eq!(contact.suppressed_at, None);
    assert_eq!(
        event_names(&s.timeline(id).await.unwrap()),
        ["Page Viewed", "Signed Up", "Inquiry Received"]
    );
}

#[tokio::test]
async fn identify_merges_a_tracked_user_into_the_imported_record_of_their_email() {
    let db = db().await;
    let s = &db.store;
    let imported = s
        .import_contacts(
            &[import_row(
                "bo@example.com",
                "Bo",
                Some("lead"),
                json!({"source": "fair"}),
            )],
            &prospect(),
            at(0),
            tend_store::ImportEnrollment::Now,
        )
        .await
        .unwrap();
    let kept = imported.stage_changes[0].contact_id;
    // Events arrive for the app's user before anyone tells us who they are.
    let tracked = s
        .ingest(&[track("t1", user("u9"), "Opened App", 1)], &prospect())
        .await
        .unwrap();
    let gone = tracked.stage_changes[0].contact_id;
    assert_ne!(kept, gone);

    let merged = s
        .ingest(
            &[identify(
                "t2",
                user("u9"),
                traits(Some("bo@example.com"), None, json!({"plan": "free"})),
            )],
            &prospect(),
        )
        .await
        .unwrap();
    // Being created as a prospect is no stage decision: the imported `lead` stays.
    assert!(merged.stage_changes.is_empty());
    let page = s.list_contacts(&all(10)).await.unwrap();
    assert_eq!(page.contacts.len(), 1);
    let contact = &page.contacts[0];
    assert_eq!(contact.id, kept);
    assert_eq!(contact.user_id.as_deref(), Some("u9"));
    assert_eq!(contact.name.as_deref(), Some("Bo"));
    assert_eq!(contact.attributes["source"], json!("fair"));
    assert_eq!(contact.attributes["plan"], json!("free"));
    assert!(s.contact(gone).await.unwrap().is_none());
    let timeline = s.timeline(kept).await.unwrap();
    assert_eq!(event_names(&timeline), ["Opened App"]);
    // Later events by user id land on the kept record.
    s.ingest(&[track("t3", user("u9"), "Opened App", 9)], &prospect())
        .await
        .unwrap();
    assert_eq!(event_names(&s.timeline(kept).await.unwrap()).len(), 2);
    assert_eq!(
        s.contact(kept).await.unwrap().unwrap().stage.as_str(),
        "lead"
    );

    // A stage reached by an event on the app user's record does carry over.
    let cy = s
        .import_contacts(
            &[import_row("cy@example.com", "Cy", Some("lead"), json!({}))],
            &prospect(),
            at(0),
            tend_store::ImportEnrollment::Now,
        )
        .await
        .unwrap()
        .stage_changes[0]
        .contact_id;
    s.ingest(
        &[track_to("t4", user("u10"), "Order Completed", "customer")],
        &prospect(),
    )
    .await
    .unwrap();
    let merged = s
        .ingest(
            &[identify(
                "t5",
                user("u10"),
                traits(Some("cy@example.com"), None, json!({})),
            )],
            &prospect(),
        )
        .await
        .unwrap();
    assert_eq!(
        merged.stage_changes,
        [StageChange {
            contact_id: cy,
            from: Some(StageName::new("lead")),
            to: StageName::new("customer"),
        }]
    );
    let reasons: Vec<String> = s
        .timeline(cy)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|entry| match entry {
            TimelineEntry::StageChange { reason, .. } => Some(reason),
            TimelineEntry::Event { .. } => None,
        })
        .collect();
    assert_eq!(reasons, ["import", "created", "Order Completed", "merge"]);
}

#[tokio::test]
async fn an_email_owned_by_another_user_is_not_moved() {
    let db = db().await;
    let s = &db.store;
    s.ingest(
        &[
            identify(
                "a",
                user("u1"),
                traits(Some("x@example.com"), None, json!({})),
            ),
            identify(
                "b",
                user("u2"),
                traits(Some("y@example.com"), None, json!({})),
            ),
            identify(
                "c",
                user("u2"),
                traits(Some("x@example.com"), None, json!({})),
            ),
        ],
        &prospect(),
    )
    .await
    .unwrap();
    let page = s.list_contacts(&all(10)).await.unwrap();
    let emails: Vec<_> = page.contacts.iter().map(|c| c.email.as_deref()).collect();
    assert_eq!(emails, [Some("x@example.com"), Some("y@example.com")]);
}

#[tokio::test]
async fn duplicate_message_ids_are_skipped_across_and_within_batches() {
    let db = db().await;
    let s = &db.store;
    let first = s
        .ingest(
            &[
                track("d1", user("u1"), "A", 1),
                track("d2", user("u1"), "B", 2),
                track("d1", user("u1"), "A again", 3),
            ],
            &prospect(),
        )
        .await
        .unwrap();
    assert_eq!((first.accepted, first.duplicates), (2, 1));

    let second = s
        .ingest(
            &[
                track("d2", user("u1"), "B", 2),
                track("d3", user("u1"), "C", 4),
                track("d3", user("u1"), "C", 4),
            ],
            &prospect(),
        )
        .await
        .unwrap();
    assert_eq!((second.accepted, second.duplicates), (1, 2));
    assert!(second.stage_changes.is_empty());

    // A replayed identify does not re-apply its traits either.
    let id = first.stage_changes[0].contact_id;
    s.ingest(
        &[identify(
            "i1",
            user("u1"),
            traits(None, Some("First"), json!({})),
        )],
        &prospect(),
    )
    .await
    .unwrap();
    s.ingest(
        &[identify(
            "i2",
            user("u1"),
            traits(None, Some("Second"), json!({})),
        )],
        &prospect(),
    )
    .await
    .unwrap();
    let replay = s
        .ingest(
            &[identify(
                "i1",
                user("u1"),
                traits(None, Some("First"), json!({})),
            )],
            &prospect(),
        )
        .await
        .unwrap();
    assert_eq!((replay.accepted, replay.duplicates), (0, 1));
    let contact = s.contact(id).await.unwrap().unwrap();
    assert_eq!(contact.name.as_deref(), Some("Second"));
    assert_eq!(event_names(&s.timeline(id).await.unwrap()), ["A", "B", "C"]);
}

#[tokio::test]
async fn a_mapped_event_moves_the_stage_and_the_timeline_tells_the_story() {
    let db = db().await;
    let s = &db.store;
    let outcome = s
        .ingest(
            &[
                track("s1", user("u1"), "Page Viewed", 1),
                track_to("s2", user("u1"), "Order Completed", "customer"),
                // Already a customer: no change, no history.
                track_to("s3", user("u1"), "Order Completed", "customer"),
            ],
            &prospect(),
        )
        .await
        .unwrap();
    let id = outcome.stage_changes[0].contact_id;
    assert_eq!(
        outcome.stage_changes,
        [
            StageChange {
                contact_id: id,
                from: None,
                to: prospect()
            },
            StageChange {
                contact_id: id,
                from: Some(prospect()),
                to: StageName::new("customer")
            },
        ]
    );
    let contact = s.contact(id).await.unwrap().unwrap();
    assert_eq!(contact.stage.as_str(), "customer");
    assert_eq!(contact.updated_at, at(10));

    let timeline = s.timeline(id).await.unwrap();
    let story: Vec<String> = timeline
        .iter()
        .map(|entry| match entry {
            TimelineEntry::Event { name, .. } => format!("event {name}"),
            TimelineEntry::StageChange {
                from, to, reason, ..
            } => format!(
                "{} -> {to} ({reason})",
                from.as_ref().map_or("none", |f| f.as_str())
            ),
        })
        .collect();
    assert_eq!(
        story,
        [
            "none -> prospect (created)",
            "event Page Viewed",
            "event Order Completed",
            "prospect -> customer (Order Completed)",
            "event Order Completed",
        ]
    );
    let json = serde_json::to_value(&timeline[3]).unwrap();
    assert_eq!(json["type"], "stage_change");
    assert_eq!(json["to"], "customer");
}

#[tokio::test]
async fn listing_filters_and_walks_every_page_exactly_once() {
    let db = db().await;
    let s = &db.store;
    let rows: Vec<ImportRow> = (0..53)
        .map(|i| {
            let name = match i % 3 {
                0 => format!("Maria {i}"),
                1 => format!("Luca {i}"),
                _ => format!("100%_sure {i}"),
            };
            let stage = (i % 4 == 0).then_some("lead");
            import_row(&format!("person{i}@example.com"), &name, stage, json!({}))
        })
        .collect();
    s.import_contacts(&rows, &prospect(), at(0), tend_store::ImportEnrollment::Now)
        .await
        .unwrap();

    let walk = |query: ContactQuery| async move {
        let mut ids = Vec::new();
        let mut query = query;
        let mut pages = 0;
        loop {
            let page = s.list_contacts(&query).await.unwrap();
            assert!(page.contacts.len() <= query.limit as usize);
            ids.extend(page.contacts.iter().map(|c| c.id));
            pages += 1;
            match page.next_cursor {
                Some(cursor) => query.cursor = Some(cursor),
                None => break,
            }
        }
        (ids, pages)
    };

    let (ids, pages) = walk(all(10)).await;
    assert_eq!(ids.len(), 53);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ascending, no repeats");
    assert_eq!(pages, 6);
    // A last page that is exactly full says there is no more.
    let (ids_exact, pages_exact) = walk(all(53)).await;
    assert_eq!((ids_exact.len(), pages_exact), (53, 1));

    let leads = ContactQuery {
        stage: Some(StageName::new("lead")),
        ..all(4)
    };
    let (lead_ids, _) = walk(leads).await;
    assert_eq!(lead_ids.len(), 14);
    for id in &lead_ids {
        assert_eq!(
            s.contact(*id).await.unwrap().unwrap().stage.as_str(),
            "lead"
        );
    }

    let by_name = ContactQuery {
        q: Some("MARIA".into()),
        ..all(100)
    };
    assert_eq!(walk(by_name).await.0.len(), 18);
    let by_email = ContactQuery {
        q: Some("person1".into()),
        ..all(100)
    };
    assert_eq!(walk(by_email).await.0.len(), 11, "person1, person10..19");
    // Punctuation only separates words: `%`, `_`, quotes and stars are no syntax.
    let literal = ContactQuery {
        q: Some("\"100%_SU*".into()),
        ..all(100)
    };
    assert_eq!(walk(literal).await.0.len(), 17);
    let nothing = ContactQuery {
        q: Some("a_i".into()),
        ..all(100)
    };
    assert_eq!(walk(nothing).await.0.len(), 0);
    let both = ContactQuery {
        stage: Some(StageName::new("lead")),
        q: Some("luca".into()),
        ..all(100)
    };
    assert_eq!(walk(both).await.0.len(), 5);

    let bad = ContactQuery {
        cursor: Some("not-a-cursor".into()),
        ..all(10)
    };
    assert!(matches!(
        s.list_contacts(&bad).await,
        Err(StoreError::InvalidCursor(_))
    ));
}

#[tokio::test]
async fn identify_sets_the_time_zone_and_empty_batches_are_no_ops() {
    let db = db().await;
    let s = &db.store;
    assert_eq!(
        s.ingest(&[], &prospect()).await.unwrap(),
        Default::default()
    );
    let mut t = traits(None, None, json!({}));
    t.timezone = Some(TimeZoneName::parse("Europe/Rome").unwrap());
    let o = s
        .ingest(&[identify("z1", user("u1"), t)], &prospect())
        .await
        .unwrap();
    let contact = s
        .contact(o.stage_changes[0].contact_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(contact.timezone.as_deref(), Some("Europe/Rome"));
    assert_eq!(contact.created_at, at(5));
}

#[tokio::test]
async fn a_merge_within_one_batch_reports_no_change_for_the_record_it_removes() {
    let db = db().await;
    let s = &db.store;
    s.import_contacts(
        &[import_row(
            "dee@example.com",
            "Dee",
            Some("lead"),
            json!({}),
        )],
        &prospect(),
        at(0),
        tend_store::ImportEnrollment::Now,
    )
    .await
    .unwrap();
    let outcome = s
        .ingest(
            &[
                track("w1", user("u5"), "Opened App", 1),
                identify(
                    "w2",
                    user("u5"),
                    traits(Some("dee@example.com"), None, json!({})),
                ),
                track("w3", user("u5"), "Opened App", 6),
            ],
            &prospect(),
        )
        .await
        .unwrap();
    assert_eq!((outcome.accepted, outcome.duplicates), (3, 0));
    assert!(
        outcome.stage_changes.is_empty(),
        "{:?}",
        outcome.stage_changes
    );
    let page = s.list_contacts(&all(10)).await.unwrap();
    assert_eq!(page.contacts.len(), 1);
    let dee = &page.contacts[0];
    assert_eq!(
        (dee.stage.as_str(), dee.user_id.as_deref()),
        ("lead", Some("u5"))
    );
    assert_eq!(event_names(&s.timeline(dee.id).await.unwrap()).len(), 2);
}

#[tokio::test]
async fn a_search_finds_the_start_of_any_word_of_the_address_or_name() {
    let db = db().await;
    let s = &db.store;
    let rows = [
        import_row("ann.rossi@example.com", "Ann Smith", None, json!({})),
        import_row("bo@shop.example", "Bo Ferrari-Bianchi", None, json!({})),
        import_row("cy@example.com", "Cy Annunzio", None, json!({})),
    ];
    let imported = s
        .import_contacts(&rows, &prospect(), at(0), tend_store::ImportEnrollment::Now)
        .await
        .unwrap();
    let found = |q: &'static str| async move {
        let page = s
            .list_contacts(&ContactQuery {
                q: Some(q.into()),
                ..all(100)
            })
            .await
            .unwrap();
        let mut emails: Vec<String> = page.contacts.into_iter().filter_map(|c| c.email).collect();
        emails.sort();
        emails
    };
    assert_eq!(
        found("smi").await,
        ["ann.rossi@example.com"],
        "a surname's start"
    );
    assert_eq!(
        found("ROSSI").await,
        ["ann.rossi@example.com"],
        "a word of the address"
    );
    assert_eq!(
        found("ann").await,
        ["ann.rossi@example.com", "cy@example.com"]
    );
    assert_eq!(
        found("ann smith").await,
        ["ann.rossi@example.com"],
        "every word"
    );
    assert_eq!(
        found("bianchi").await,
        ["bo@shop.example"],
        "after a hyphen"
    );
    assert_eq!(found("shop.example").await, ["bo@shop.example"]);
    assert!(found("mith").await.is_empty(), "not the middle of a word");
    assert_eq!(found("--").await.len(), 3, "no word: everyone");

    // A new name is found and the old one is not; an erased contact is not found.
    let renamed = [import_row(
        "ann.rossi@example.com",
        "Ann Verdi",
        None,
        json!({}),
    )];
    s.import_contacts(
        &renamed,
        &prospect(),
        at(60),
        tend_store::ImportEnrollment::Now,
    )
    .await
    .unwrap();
    assert!(found("smith").await.is_empty());
    assert_eq!(found("verdi").await, ["ann.rossi@example.com"]);
    s.erase_contact(imported.stage_changes[1].contact_id, at(120))
        .await
        .unwrap();
    assert!(found("bianchi").await.is_empty());
    assert!(found("bo").await.is_empty());
}

#[tokio::test]
async fn a_search_ignores_accents_and_case() {
    let db = db().await;
    let s = &db.store;
    let rows = [
        import_row("jose.nunez@example.com", "José Núñez", None, json!({})),
        import_row("zoe@example.com", "ZOË MÜLLER", None, json!({})),
        import_row("jakub@example.com", "Jakub Dvořák", None, json!({})),
        import_row("ole@example.com", "Ole Sørensen", None, json!({})),
    ];
    s.import_contacts(&rows, &prospect(), at(0), tend_store::ImportEnrollment::Now)
        .await
        .unwrap();
    let found = |q: &'static str| async move {
        let page = s
            .list_contacts(&ContactQuery {
                q: Some(q.into()),
                ..all(100)
            })
            .await
            .unwrap();
        page.contacts
            .into_iter()
            .filter_map(|c| c.email)
            .collect::<Vec<_>>()
    };
    for (q, email) in [
        ("nunez", "jose.nunez@example.com"),
        ("Núñez", "jose.nunez@example.com"),
        ("josé", "jose.nunez@example.com"),
        ("muller", "zoe@example.com"),
        ("Müll", "zoe@example.com"),
        ("zoe müller", "zoe@example.com"),
        ("dvorak", "jakub@example.com"),
        ("DVOŘ", "jakub@example.com"),
    ] {
        assert_eq!(found(q).await, [email], "searching {q:?}");
    }
    // A letter that is not an accented form of another stays itself.
    assert!(found("sorensen").await.is_empty());
    assert_eq!(found("sørensen").await, ["ole@example.com"]);
}
