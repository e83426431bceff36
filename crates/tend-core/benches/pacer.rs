//! Pacer throughput: decisions per second for batches of 10,000 due touches whose
//! contacts are looked up among 1,000,000 contacts' state.
//!
//! Run with `cargo bench -p tend-core --bench pacer`; divan reports items/s, one item
//! being one decision. `baseline_10k_dense` is the same-run yardstick: the cheapest
//! admission anyone could write over the same touches and state (look the contact up,
//! admit unless suppressed or at the weekly limit), so the pacer's rate can be read as
//! a multiple of what the machine does at that moment, whatever its load.

use divan::Bencher;
use divan::counter::ItemsCount;
use jiff::Timestamp;
use std::collections::HashMap;
use std::sync::LazyLock;
use tend_core::pacer::{
    BudgetState, CapacityState, Channel, ChannelCosts, ContactState, ContactStates, DueTouch,
    Intent, PacerInput, PacerOutput, PacerPolicy, ProcessId, TouchId, ZoneTable, decide,
};
use tend_core::{ContactId, DailyWindow, Duration, TimeZoneName, WeeklyHours};

const CONTACTS: usize = 1_000_000;
const BATCH: usize = 10_000;
const DAY_MS: i64 = 86_400_000;

const ZONES: [&str; 20] = [
    "Europe/Rome",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Madrid",
    "Europe/Paris",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Asia/Shanghai",
    "Asia/Dubai",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Africa/Lagos",
    "Pacific/Auckland",
    "America/Mexico_City",
    "UTC",
];

fn main() {
    divan::main();
}

/// Contact state stored densely by id, as an engine with a contiguous id space might.
struct Dense(Vec<ContactState>);

impl ContactStates for Dense {
    fn contact_state(&self, id: ContactId) -> Option<&ContactState> {
        usize::try_from(id.0).ok().and_then(|i| self.0.get(i))
    }
}

/// SplitMix64, so the data is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct World {
    zones: ZoneTable,
    dense: Dense,
    map: HashMap<ContactId, ContactState>,
    touches: Vec<DueTouch>,
    now: Timestamp,
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap()
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    let mut rng = Rng(7);
    let mut zones = ZoneTable::new();
    let ids: Vec<_> = ZONES
        .iter()
        .map(|z| zones.intern(&TimeZoneName::parse(z).unwrap()))
        .collect();
    // Tuesday 10:00 in Rome.
    let now: Timestamp = "2026-11-24T09:00:00Z".parse().unwrap();
    let now_ms = now.as_millisecond();
    let contacts: Vec<ContactState> = (0..CONTACTS)
        .map(|_| {
            let touches = rng.below(4) as usize;
            let recent: Vec<Timestamp> = (0..touches)
                .map(|_| ts(now_ms - 1 - rng.below(7 * DAY_MS as u64) as i64))
                .collect();
            let older = ts(now_ms - rng.below(14 * DAY_MS as u64) as i64);
            ContactState {
                suppressed: rng.below(50) == 0,
                zone: ids[rng.below(ids.len() as u64) as usize],
                last_touch: recent.iter().copied().max().or(Some(older)),
                recent,
            }
        })
        .collect();
    let touches = (0..BATCH)
        .map(|i| {
            let channel = match rng.below(20) {
                0..=13 => Channel::Email,
                14..=16 => Channel::Webhook,
                _ => Channel::Task,
            };
            DueTouch {
                touch: TouchId(i as i64),
                contact: ContactId(rng.below(CONTACTS as u64) as i64),
                process: ProcessId(rng.below(5) as i64),
                step: rng.below(12) as u32,
                channel,
                intent: if rng.below(10) < 3 {
                    Intent::Offer
                } else {
                    Intent::Nurture
                },
                minutes: 5 + rng.below(40) as u32,
                due: ts(now_ms - rng.below(DAY_MS as u64) as i64),
                enrolled_at: ts(now_ms - 30 * DAY_MS),
                max_gap: Duration::from_secs(10 * 86_400),
                keep_warm: rng.below(2) == 0,
                exited: rng.below(100) == 0,
                expected_value: rng.below(10_000) as f64 / 100.0,
                offer_probability: rng.below(40) as f64 / 100.0,
                first: false,
                after_sequence: false,
            }
        })
        .collect();
    let map = contacts
        .iter()
        .enumerate()
        .map(|(i, c)| (ContactId(i as i64), c.clone()))
        .collect();
    World {
        zones,
        dense: Dense(contacts),
        map,
        touches,
        now,
    }
});

/// `ample`: budgets far above the batch, so most touches pass to the filters;
/// `tight`: a few hundred emails a day, so most touches are deferred for budget and get
/// an accrual time (the slow path).
fn policy(scenario: &str) -> PacerPolicy {
    let mut p = PacerPolicy::new(
        &TimeZoneName::parse("Europe/Rome").unwrap(),
        WeeklyHours::parse("Mon-Fri 09:00-13:00, Mon-Fri 14:00-18:00").unwrap(),
    );
    p.quiet_hours = Some(DailyWindow::parse("21:00-08:00").unwrap());
    p.per_contact_per_week = Some(3);
    p.min_gap = Duration::from_secs(86_400);
    p.costs = ChannelCosts {
        email: 0.001,
        webhook: 0.0005,
        task: 0.0,
    };
    let scale = if scenario == "tight" { 1.0 } else { 1_000.0 };
    p.budgets.emails.per_day = Some(400.0 * scale);
    p.budgets.emails.per_week = Some(1_600.0 * scale);
    p.budgets.webhooks.per_day = Some(200.0 * scale);
    p.budgets.staff_minutes.per_day = Some(240.0 * scale);
    p.budgets.money.per_month = Some(30.0 * scale);
    p
}

fn capacity() -> CapacityState {
    CapacityState {
        per_week: 40.0,
        target_utilization: 0.85,
        horizon: Duration::from_secs(2 * 604_800),
        open_work: 30.0,
        expected_in_flight: 20.0,
        max_wait: None,
    }
}

fn run<C: ContactStates>(policy: &PacerPolicy, contacts: &C, budget: &BudgetState) -> PacerOutput {
    let w = &*WORLD;
    let input = PacerInput {
        touches: &w.touches,
        contacts,
        zones: &w.zones,
        budget,
        capacity: Some(capacity()),
    };
    decide(policy, &input, w.now)
}

/// The trivial admission loop: per touch one state lookup, a suppression check and a
/// count of the recent touches against the weekly limit; no budgets, hours or capacity.
fn admit_trivially<C: ContactStates>(contacts: &C, limit: usize) -> Vec<bool> {
    WORLD
        .touches
        .iter()
        .map(|t| {
            contacts
                .contact_state(t.contact)
                .is_some_and(|c| !c.suppressed && c.recent.len() < limit)
        })
        .collect()
}

#[divan::bench(sample_count = 40)]
fn baseline_10k_dense(bencher: Bencher) {
    let w = &*WORLD;
    bencher
        .counter(ItemsCount::new(BATCH))
        .bench(|| admit_trivially(&w.dense, 3));
}

#[divan::bench(args = ["ample", "tight"], sample_count = 40)]
fn decide_10k_dense(bencher: Bencher, scenario: &str) {
    let w = &*WORLD;
    let policy = policy(scenario);
    let budget = BudgetState::default();
    let summary = run(&policy, &w.dense, &budget).summary;
    eprintln!(
        "{scenario}: sent {} substituted {} deferred {:?} skipped {}",
        summary.sent,
        summary.substituted,
        summary.deferred,
        summary.skipped.total()
    );
    bencher
        .counter(ItemsCount::new(BATCH))
        .bench(|| run(&policy, &w.dense, &budget));
}

#[divan::bench(args = ["ample", "tight"], sample_count = 40)]
fn decide_10k_hashmap(bencher: Bencher, scenario: &str) {
    let w = &*WORLD;
    let policy = policy(scenario);
    let budget = BudgetState::default();
    bencher
        .counter(ItemsCount::new(BATCH))
        .bench(|| run(&policy, &w.map, &budget));
}
