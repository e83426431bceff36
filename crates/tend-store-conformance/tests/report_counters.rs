//! The Reports' counters kept on write (contacts per stage, stage moves per hour, each
//! contact's first entry into a stage with the touches before it) agree with a recount
//! of the contacts, their timelines and their touches after every kind of write: ingest
//! (new contacts, stage changes by events, merges), import, a stage set by hand, touches
//! admitted and an erasure.

use jiff::Timestamp;
use serde_json::json;
use std::collections::BTreeMap;
use tend_core::pacer::{Channel, Intent};
use tend_core::{ContactId, StageName};
use tend_store::{ImportEnrollment, Store, TimelineEntry};
use tend_store_conformance::fixtures::*;
use tend_store_conformance::test_store;

type Moves = BTreeMap<(Option<String>, String), u64>;

/// Every contact's id and stage, from the contact list.
async fn every_contact(s: &dyn Store) -> Vec<(ContactId, String)> {
    let mut out = Vec::new();
    let mut query = all(100);
    loop {
        let page = s.list_contacts(&query).await.unwrap();
        out.extend(
            page.contacts
                .iter()
                .map(|c| (c.id, c.stage.as_str().to_owned())),
        );
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return out,
        }
    }
}

/// The stage changes in `[from, to)`, counted from every contact's timeline.
async fn recounted_moves(s: &dyn Store, from: Timestamp, to: Timestamp) -> Moves {
    let mut moves = Moves::new();
    for (id, _) in every_contact(s).await {
        for entry in s.timeline(id).await.unwrap() {
            if let TimelineEntry::StageChange {
                from: left,
                to: entered,
                at,
                ..
            } = entry
                && at >= from
                && at < to
            {
                *moves
                    .entry((
                        left.map(|s| s.as_str().to_owned()),
                        entered.as_str().to_owned(),
                    ))
                    .or_default() += 1;
            }
        }
    }
    moves
}

/// Checks the funnel over several periods (whole hours and part hours, and none whole)
/// and the touches-to-conversion counts of every stage against recounts.
async fn assert_counters_match_recount(s: &dyn Store, when: &str) {
    let mut stages: BTreeMap<String, u64> = BTreeMap::new();
    for (_, stage) in every_contact(s).await {
        *stages.entry(stage).or_default() += 1;
    }
    let periods = [
        (at(-100_000), at(100_000)),
        (at(0), at(10)),
        (at(5), at(4_000)),
        (at(7), at(601)),
        (at(601), at(50_000)),
    ];
    for (from, to) in periods {
        let funnel = s.funnel(from, to).await.unwrap();
        let counted: BTreeMap<String, u64> = funnel.stages.into_iter().collect();
        assert_eq!(counted, stages, "{when}: contacts per stage");
        let moves: Moves = funnel
            .moves
            .into_iter()
            .map(|(from, to, n)| ((from, to), n))
            .collect();
        assert_eq!(
            moves,
            recounted_moves(s, from, to).await,
            "{when}: moves in [{from}, {to})"
        );
    }
    for stage in ["prospect", "lead", "customer"] {
        let stage = StageName::new(stage);
        let mut expected: BTreeMap<u64, u64> = BTreeMap::new();
        for conversion in s.conversions(&stage).await.unwrap() {
            *expected.entry(conversion.touches).or_default() += 1;
        }
        let histogram: BTreeMap<u64, u64> = s
            .conversion_histogram(&stage)
            .await
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(histogram, expected, "{when}: touches before {stage}");
    }
}

#[tokio::test]
async fn report_counters_match_a_recount_after_every_kind_of_write() {
    let store = test_store().await;
    let s = &*store;
    assert_counters_match_recount(s, "empty").await;

    // Leads enrolled by ingest, two touches each admitted at 10 s and 700 s.
    let (_, leads) = enrolled(
        s,
        "warm",
        &["email:hello", "email:again"],
        step(0, Channel::Email, Intent::Nurture),
        "lead",
        3,
        at(10),
    )
    .await;
    queue_due(s, at(10)).await;
    assert_counters_match_recount(s, "enrolled and touched").await;

    // Import: new people in two stages, and a lead moved on by the file.
    s.import_contacts(
        &[
            import_row("ann@example.com", "Ann", Some("customer"), json!({})),
            import_row("bo@example.com", "Bo", None, json!({})),
            import_row(
                "warm-2@example.com",
                "Warm Two",
                Some("customer"),
                json!({}),
            ),
        ],
        &prospect(),
        at(20),
        ImportEnrollment::Now,
    )
    .await
    .unwrap();
    assert_counters_match_recount(s, "import").await;

    // Ingest: a new contact, then one moved by an event.
    s.ingest(&[track("p1", user("u1"), "Page Viewed", 30)], &prospect())
        .await
        .unwrap();
    s.ingest(
        &[track_to("o1", user("u2"), "Order Completed", "customer")],
        &prospect(),
    )
    .await
    .unwrap();
    assert_counters_match_recount(s, "ingest").await;

    // By hand, after a touch: the conversion counts it.
    assert!(
        s.set_contact_stage(
            leads[0],
            &StageName::new("customer"),
            "owner@example.com",
            at(600)
        )
        .await
        .unwrap()
    );
    assert!(
        s.set_contact_stage(leads[1], &prospect(), "owner@example.com", at(5_000))
            .await
            .unwrap()
    );
    assert_counters_match_recount(s, "stage set by hand").await;
    let customers = s
        .conversion_histogram(&StageName::new("customer"))
        .await
        .unwrap();
    assert!(
        customers.iter().any(|(touches, _)| *touches == 1),
        "the lead touched at 10 s converted with one touch: {customers:?}"
    );

    // A merge: the user who ordered turns out to be Bo; Bo's record takes the history.
    s.ingest(
        &[identify(
            "m1",
            user("u2"),
            traits(Some("bo@example.com"), None, json!({})),
        )],
        &prospect(),
    )
    .await
    .unwrap();
    assert_counters_match_recount(s, "merge").await;

    // Erasure takes the contact, its history and its touches out of every count.
    s.erase_contact(leads[0], at(6_000)).await.unwrap().unwrap();
    assert_counters_match_recount(s, "erasure").await;
    let customers = s
        .conversion_histogram(&StageName::new("customer"))
        .await
        .unwrap();
    assert!(
        customers.iter().map(|(_, n)| n).sum::<u64>() >= 2,
        "{customers:?}"
    );
}
