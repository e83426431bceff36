//! Several `tend serve` nodes on one PostgreSQL database: the real binary twice over a
//! fresh database, each node sending to an SMTP server (aiosmtpd) of its own so the
//! test can tell who sent what, leads arriving at both. One node is killed with
//! SIGKILL while they send.
//!
//! Needs PostgreSQL on 127.0.0.1:5432 (or `TEND_TEST_DATABASE_URL`) and Python 3 with
//! aiosmtpd; the tests fail, never skip, without them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;
use tend_testkit::api::lead_email;
use tend_testkit::{Mail, Mailbox, ScratchDatabase, Serve, SmtpSink, Studio, wait_for};

/// Sends in flight at once on each node: the most a node's death may duplicate.
const WORKERS: usize = 4;

/// A business on `database_url` that may email any lead at any hour, `WORKERS`
/// senders a node, the shortest lease Tend allows, and `budget` as its `[budget]`.
fn config(database_url: &str, budget: &str) -> String {
    format!(
        r#"database_url = "{database_url}"
public_url = "https://tend.example.com"

[business]
name = "Studio Rossi"
timezone = "Europe/Rome"
hours = "Mon-Sun 00:00-24:00"

[budget]
{budget}

[limits]
quiet_hours = "none"

[stages]
order = ["prospect", "lead", "customer", "loyal", "lapsed"]

[stages.on_event]
"Inquiry Received" = "lead"

[channels.email]
from = "Studio Rossi <hello@example.com>"

[dispatch]
workers = {WORKERS}
lease = "1m"
retry_after = "1s"
retry_max = "2s"
"#
    )
}

/// One `tend serve` node with the SMTP server only it sends to.
struct Node {
    server: Serve,
    mailbox: Mailbox,
    _sink: SmtpSink,
}

impl Node {
    /// Starts a node of `business` whose mail goes to a sink storing into `folder`
    /// (`--delay-ms` holds each reply, so sends are in flight when a node dies).
    fn start(business: &Studio, folder: PathBuf, delay_ms: &str) -> Node {
        let sink = SmtpSink::start(&folder, &["--delay-ms", delay_ms]);
        let server = business.serve(sink.port);
        Node {
            server,
            mailbox: Mailbox::new(&folder),
            _sink: sink,
        }
    }

    fn sent(&mut self) -> Vec<Mail> {
        self.mailbox.messages()
    }
}

/// How many of the welcome touches are in `state`.
async fn touches_in(database: &ScratchDatabase, state: &str) -> i64 {
    database
        .query_i64(&format!(
            "SELECT COUNT(*) FROM touches WHERE channel = 'email' AND state = '{state}'"
        ))
        .await
}

/// Waits until `count` welcome emails are recorded as sent.
async fn wait_all_sent(database: &ScratchDatabase, count: i64, deadline: Duration) {
    wait_for(
        &format!("{count} welcome emails recorded as sent"),
        deadline,
        async || {
            let sent = touches_in(database, "sent").await;
            if sent == count {
                Ok(())
            } else {
                let queued = touches_in(database, "queued").await;
                let pending = touches_in(database, "pending").await;
                Err(format!("{sent} sent, {queued} queued, {pending} pending"))
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_send_every_welcome_once_though_the_leader_is_killed_mid_way() {
    const LEADS: usize = 1_000;
    const LATE: usize = 10;
    let database = ScratchDatabase::fresh().await;
    let business = Studio::new(env!("CARGO_BIN_EXE_tend"), &config(database.url(), ""));
    let scratch = business.business.scratch().to_owned();
    let mut a = Node::start(&business, scratch.join("mail-a"), "20");
    let mut b = Node::start(&business, scratch.join("mail-b"), "20");
    // A started first on an empty database, so it took the leader's lock first.
    wait_for("node A to lead", Duration::from_secs(10), async || {
        if a.server.log().contains("this node leads") {
            Ok(())
        } else {
            Err(a.server.log())
        }
    })
    .await;
    assert!(!b.server.log().contains("this node leads"));

    // Every node takes ingest: the leads arrive at both, in turns.
    let (api_a, api_b) = (business.api(&a.server), business.api(&b.server));
    for (turn, start) in (0..LEADS).step_by(50).enumerate() {
        let api = if turn % 2 == 0 { &api_a } else { &api_b };
        api.new_leads_numbered(start..start + 50).await;
    }

    // Both nodes send; once each has sent some, the leader dies mid-way.
    wait_for(
        "both nodes to have sent part of the welcomes",
        Duration::from_secs(60),
        async || {
            let (by_a, by_b) = (a.sent().len(), b.sent().len());
            if by_a >= 50 && by_b >= 50 {
                Ok(())
            } else {
                Err(format!("A sent {by_a}, B sent {by_b}"))
            }
        },
    )
    .await;
    a.server.kill_hard();
    let recorded_at_kill = touches_in(&database, "sent").await;
    let (a_before, b_before) = (a.sent().len(), b.sent().len());
    assert!(
        (recorded_at_kill as usize) < LEADS,
        "the kill came after all {LEADS} were sent: the test proves nothing"
    );
    eprintln!(
        "killed A after it sent {a_before} and B sent {b_before}; {recorded_at_kill} recorded"
    );

    // B takes over the leader's work within seconds: leads that arrive now still get
    // their welcome, decided by B.
    wait_for("node B to lead", Duration::from_secs(10), async || {
        if b.server.log().contains("this node leads") {
            Ok(())
        } else {
            Err("B does not lead yet".to_owned())
        }
    })
    .await;
    api_b.new_leads_numbered(LEADS..LEADS + LATE).await;

    // A's unfinished claims wait for their lease to run out (a minute), then B sends them.
    wait_all_sent(&database, (LEADS + LATE) as i64, Duration::from_secs(150)).await;

    let mut all: Vec<Mail> = a.sent();
    all.extend(b.sent());
    let mut by_message: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for mail in &all {
        assert!(mail.touch_id().is_some(), "{}", mail.message_id);
        by_message
            .entry(mail.message_id.clone())
            .or_default()
            .extend(mail.rcpt_tos.iter().cloned());
    }
    let recipients: BTreeSet<&str> = all
        .iter()
        .flat_map(|m| m.rcpt_tos.iter().map(String::as_str))
        .collect();
    let expected: BTreeSet<String> = (0..LEADS + LATE).map(lead_email).collect();
    let expected: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
    assert_eq!(
        recipients, expected,
        "every lead got its welcome, nobody else got mail"
    );
    assert_eq!(by_message.len(), LEADS + LATE, "one welcome touch per lead");
    let duplicates = all.len() - by_message.len();
    assert!(
        duplicates <= WORKERS,
        "{duplicates} duplicates; at most the {WORKERS} sends in flight on the killed node"
    );
    for (id, to) in &by_message {
        assert!(to.iter().all(|r| r == &to[0]), "{id} went to {to:?}");
    }
    assert!(a_before > 0 && b.sent().len() > b_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_email_budget_holds_across_two_nodes() {
    const LEADS: usize = 60;
    const PER_DAY: i64 = 12;
    let database = ScratchDatabase::fresh().await;
    // The whole day's allowance may go to first replies at once: a node that spent
    // from its own copy of the budget would send up to twice as many.
    let budget = format!("emails = {{ per_day = {PER_DAY}, reserve = {PER_DAY} }}");
    let business = Studio::new(env!("CARGO_BIN_EXE_tend"), &config(database.url(), &budget));
    let scratch = business.business.scratch().to_owned();
    let mut a = Node::start(&business, scratch.join("mail-a"), "0");
    let mut b = Node::start(&business, scratch.join("mail-b"), "0");
    let (api_a, api_b) = (business.api(&a.server), business.api(&b.server));
    for (turn, start) in (0..LEADS).step_by(5).enumerate() {
        let api = if turn % 2 == 0 { &api_a } else { &api_b };
        api.new_leads_numbered(start..start + 5).await;
    }

    // Every lead's welcome is decided: sent, or held for the budget.
    wait_for(
        "every welcome decided and the admitted ones sent",
        Duration::from_secs(30),
        async || {
            let decided = database
                .query_i64(
                    "SELECT COUNT(*) FROM touches WHERE channel = 'email' \
                     AND decided_at IS NOT NULL",
                )
                .await;
            let queued = touches_in(&database, "queued").await;
            if decided == LEADS as i64 && queued == 0 {
                Ok(())
            } else {
                Err(format!("{decided} of {LEADS} decided, {queued} queued"))
            }
        },
    )
    .await;
    let held = database
        .query_i64(
            "SELECT COUNT(*) FROM touches WHERE channel = 'email' AND state = 'pending' \
             AND reason IN ('budget', 'budget_accruing', 'business_hours')",
        )
        .await;
    let sent = touches_in(&database, "sent").await;
    let mailed = (a.sent().len() + b.sent().len()) as i64;
    assert_eq!(sent, mailed, "what is recorded as sent is what arrived");
    assert!(
        sent <= PER_DAY,
        "{sent} emails sent today across two nodes; the day's budget is {PER_DAY}"
    );
    assert!(sent > 0, "the reserve lets first replies go");
    assert_eq!(sent + held, LEADS as i64, "the rest wait for the budget");
}
