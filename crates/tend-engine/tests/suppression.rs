//! Whatever happens to a contact and in whatever order — inquiries, orders, unsubscribes,
//! time passing, restarts — nothing reaches it after it is suppressed.

mod harness;

use harness::*;
use proptest::prelude::*;
use std::collections::HashMap;
use tend_core::ContactId;

#[derive(Debug, Clone)]
enum Step {
    Inquiry(usize),
    Order(usize),
    Unsubscribe(usize),
    Wait(i64),
    Restart,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..4usize).prop_map(Step::Inquiry),
        1 => (0..4usize).prop_map(Step::Order),
        2 => (0..4usize).prop_map(Step::Unsubscribe),
        4 => (1..72i64).prop_map(Step::Wait),
        1 => Just(Step::Restart),
    ]
}

async fn run(steps: Vec<Step>) {
    let mut b = Business::start().await;
    let mut suppressed: HashMap<ContactId, jiff::Timestamp> = HashMap::new();
    for s in &steps {
        match s {
            Step::Inquiry(n) => {
                b.identify(
                    &format!("u-{n}"),
                    &format!("Person {n}"),
                    &format!("p{n}@example.com"),
                )
                .await;
                b.track(&format!("u-{n}"), "Inquiry Received").await;
            }
            Step::Order(n) => {
                b.identify(
                    &format!("u-{n}"),
                    &format!("Person {n}"),
                    &format!("p{n}@example.com"),
                )
                .await;
                b.track(&format!("u-{n}"), "Order Completed").await;
            }
            Step::Unsubscribe(n) => {
                b.identify(
                    &format!("u-{n}"),
                    &format!("Person {n}"),
                    &format!("p{n}@example.com"),
                )
                .await;
                let who = b.contact_of(&format!("u-{n}")).await;
                b.engine.unsubscribe(who).await.unwrap();
                suppressed
                    .entry(who)
                    .or_insert_with(|| b.engine.clock().now());
            }
            Step::Wait(h) => b.advance(hours(*h)),
            Step::Restart => {
                let processes: Vec<(String, String)> = b.processes.clone();
                let refs: Vec<(&str, &str)> = processes
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                b.restart(&refs).await;
            }
        }
        // The engine runs between every step, as the always-on loop would.
        b.idle().await;
    }
    for (who, since) in &suppressed {
        for touch in b.store.touches_of(*who, 1000).await.unwrap() {
            if let Some(admitted) = touch.admitted_at {
                // Equal instants: the touch was admitted in the engine pass before.
                assert!(
                    admitted <= *since,
                    "touch {touch:?} was admitted after the contact was suppressed at {since}"
                );
            }
            assert!(
                !matches!(touch.state.as_str(), "pending" | "queued" | "open"),
                "a suppressed contact still has a planned touch: {touch:?}"
            );
        }
        let enrollments = b.store.enrollments_of(*who).await.unwrap();
        assert!(
            enrollments.iter().all(|e| e.state != "active"),
            "{enrollments:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        .. ProptestConfig::default()
    })]

    #[test]
    fn nothing_is_sent_to_a_suppressed_contact(steps in proptest::collection::vec(step(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(run(steps));
    }
}
