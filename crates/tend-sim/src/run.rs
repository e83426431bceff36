//! Runs the real engine, one instance per strategy over its own SQLite file, against
//! the model on a virtual clock that jumps from one due instant to the next.

use crate::delivery::{DeliveredKind, SimDelivery, email_of, person_of};
use crate::metrics::{self, Counters, Days, count_on};
use crate::outcome::{SeedRun, SimReport, Strategy, StrategyRun};
use crate::scenario::Scenario;
use crate::setup::{BLAST_EVENT, Setting};
use crate::world::{Response, Signal, TouchKind, World, earliest};
use jiff::{SignedDuration, Timestamp};
use serde_json::Map;
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tend_core::check::Project;
use tend_core::{Email, Intent, StageName};
use tend_engine::{Clock, Delivery, Engine, EngineError, EngineSettings, ManualClock};
use tend_store::{ContactTraits, Identity, IngestMessage, Store, StoreError, TaskEnd};
use tend_store_sqlite::SqliteStore;

/// What can stop a simulation.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The scenario and the project do not fit together.
    #[error("{0}")]
    Setup(String),
    /// The engine failed.
    #[error("engine: {0}")]
    Engine(#[from] EngineError),
    /// Storage failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A strategy's thread or runtime could not be started.
    #[error("starting a strategy: {0}")]
    Io(#[from] std::io::Error),
    /// A strategy's task panicked or was cancelled.
    #[error("a strategy stopped abnormally: {0}")]
    Join(String),
    /// The run was stopped through its [`StopSignal`] before it finished.
    #[error("the simulation was stopped before it finished")]
    Stopped,
}

/// Asks a running simulation to stop: every strategy looks at it before each jump of
/// its virtual clock, so a stop takes effect within one step of simulated time.
#[derive(Debug, Clone, Default)]
pub struct StopSignal(Arc<AtomicBool>);

impl StopSignal {
    /// Asks the simulation to stop.
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether it was asked to stop.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Called with the number of simulated days just completed, for a progress bar.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// Which seeds and strategies one simulation runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Each seed gives its own population; every strategy meets the same one.
    pub seeds: Vec<u64>,
    /// The strategies compared, in report order.
    pub strategies: Vec<Strategy>,
    /// At most this many strategies simulate at once, each on its own OS thread;
    /// `None` is one per core. A server bounds it so its own work keeps a core.
    pub threads: Option<NonZeroUsize>,
}

impl Plan {
    /// Every strategy on the scenario's own seed.
    pub fn of(scenario: &Scenario) -> Plan {
        Plan::seeds(scenario.simulation.seed..=scenario.simulation.seed)
    }

    /// Every strategy on each of `seeds`.
    pub fn seeds(seeds: impl IntoIterator<Item = u64>) -> Plan {
        Plan {
            seeds: seeds.into_iter().collect(),
            strategies: Strategy::ALL.to_vec(),
            threads: None,
        }
    }

    /// This plan on at most `threads` OS threads.
    pub fn on_threads(self, threads: NonZeroUsize) -> Plan {
        Plan {
            threads: Some(threads),
            ..self
        }
    }
}

/// Parses a range of seeds, `A..B` (both included; `A..=B` is read the same way), of
/// at most `max` seeds; the error says what is wrong in words.
pub fn parse_seeds(text: &str, max: u64) -> Result<RangeInclusive<u64>, String> {
    let (first, last) = text
        .split_once("..")
        .ok_or_else(|| format!("`{text}` is not a range of seeds; write it as 1..8"))?;
    let last = last.strip_prefix('=').unwrap_or(last);
    let number = |part: &str| {
        part.trim()
            .parse::<u64>()
            .map_err(|_| format!("`{part}` in `{text}` is not a seed (a whole number ≥ 0)"))
    };
    let (first, last) = (number(first)?, number(last)?);
    if last < first {
        return Err(format!(
            "`{text}` is empty: the last seed comes before the first"
        ));
    }
    if last - first >= max {
        return Err(format!("`{text}` has more than {max} seeds"));
    }
    Ok(first..=last)
}

/// Simulates each seed × strategy of `plan`, as many at a time as there are cores (or
/// as `plan.threads` allows), and
/// returns the results by seed, each seed's strategies in `plan` order.
pub async fn simulate(
    scenario: &Scenario,
    name: &str,
    project: &Project,
    plan: &Plan,
    progress: Progress,
) -> Result<SimReport, SimError> {
    simulate_until_stopped(
        scenario,
        name,
        project,
        plan,
        progress,
        StopSignal::default(),
    )
    .await
}

/// [`simulate`], ending early with [`SimError::Stopped`] once `stop` is signalled.
pub async fn simulate_until_stopped(
    scenario: &Scenario,
    name: &str,
    project: &Project,
    plan: &Plan,
    progress: Progress,
    stop: StopSignal,
) -> Result<SimReport, SimError> {
    if plan.seeds.is_empty() || plan.strategies.is_empty() {
        return Err(SimError::Setup(
            "nothing to simulate: no seed or no strategy".into(),
        ));
    }
    let mut settings = Vec::with_capacity(plan.seeds.len());
    for &seed in &plan.seeds {
        let mut seeded = scenario.clone();
        seeded.simulation.seed = seed;
        settings.push(Arc::new(Setting::new(&seeded, project)?));
    }
    // Longest first: the pacer's strategy makes the most decisions, so every seed's
    // background run starts before any other, and the last to finish are short ones.
    let mut jobs: Vec<(usize, Strategy)> = Vec::new();
    for &strategy in &plan.strategies {
        jobs.extend((0..settings.len()).map(|i| (i, strategy)));
    }
    jobs.sort_by_key(|(i, strategy)| (*strategy != Strategy::Background, *i));
    let jobs = Arc::new(jobs);
    let settings = Arc::new(settings);
    // One OS thread and one single-threaded runtime per running job: each is a chain
    // of synchronous database calls. No more threads than cores: more would only slow
    // the longest one down.
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let threads = plan.threads.map_or(cores, NonZeroUsize::get).min(cores);
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..threads.min(jobs.len()) {
        let (settings, jobs, progress, next, stop) = (
            Arc::clone(&settings),
            Arc::clone(&jobs),
            Arc::clone(&progress),
            Arc::clone(&next),
            stop.clone(),
        );
        workers.push(std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let mut done = Vec::new();
            while let Some(&(i, strategy)) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                let run = runtime.block_on(run_strategy(
                    &settings[i],
                    strategy,
                    Arc::clone(&progress),
                    &stop,
                ))?;
                done.push((i, run));
            }
            Ok::<_, SimError>(done)
        }));
    }
    let mut runs = Vec::new();
    for worker in workers {
        let joined = tokio::task::spawn_blocking(move || worker.join())
            .await
            .map_err(|e| SimError::Join(e.to_string()))?;
        runs.extend(joined.map_err(|_| SimError::Join("a strategy panicked".into()))??);
    }
    let order = |s: Strategy| plan.strategies.iter().position(|p| *p == s);
    runs.sort_by_key(|(i, run)| (*i, order(run.strategy)));
    let mut seeds: Vec<SeedRun> = plan
        .seeds
        .iter()
        .map(|&seed| SeedRun {
            seed,
            runs: Vec::new(),
        })
        .collect();
    for (i, run) in runs {
        seeds[i].runs.push(run);
    }
    let first = &settings[0];
    Ok(SimReport {
        scenario: name.to_owned(),
        start: scenario.simulation.start.to_string(),
        days: scenario.simulation.days,
        capacity_per_week: first.capacity_per_week,
        capacity_line: first.capacity_line,
        currency: scenario.business.currency.clone(),
        seeds,
    })
}

/// One strategy's engine, model and counters.
struct Run<'a> {
    setting: &'a Setting,
    strategy: Strategy,
    engine: Engine,
    clock: ManualClock,
    delivery: Arc<SimDelivery>,
    world: World,
    days: Days,
    signals: Vec<Signal>,
    counters: Counters,
    first_stage: StageName,
    /// Every process's `max_gap` in milliseconds by its store id, for the daily check.
    gaps: Vec<(i64, i64)>,
    /// Every process's `max_gap` by its id, for touches that come late.
    max_gaps: HashMap<String, SignedDuration>,
    blasts: u32,
    /// Neglected leads already counted in the daily rows.
    neglect_booked: u64,
}

async fn run_strategy(
    setting: &Setting,
    strategy: Strategy,
    progress: Progress,
    stop: &StopSignal,
) -> Result<StrategyRun, SimError> {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_scratch()?);
    let clock = ManualClock::new(setting.start);
    let delivery = Arc::new(SimDelivery::default());
    let project = setting.project_for(strategy);
    let first_stage = project.config.first_stage().clone();
    let settings = EngineSettings {
        decide_batch: 5_000,
        ..EngineSettings::default()
    };
    let (engine, _) = Engine::start(
        Arc::clone(&store),
        Arc::new(project),
        Arc::new(clock.clone()),
        Arc::clone(&delivery) as Arc<dyn Delivery>,
        settings,
    )
    .await?;
    // Each process's own promise: a lead handed to a slower process after its sequence
    // (`then`) is neglected only past that process's `max_gap`.
    let gaps = engine
        .book()
        .iter()
        .map(|b| (b.id, b.process.max_gap.as_millis()))
        .collect();
    let max_gaps = engine
        .book()
        .iter()
        .map(|b| (b.process.id.clone(), b.process.max_gap.to_signed()))
        .collect();
    let days = usize::try_from(setting.scenario.simulation.days).unwrap_or(0);
    let mut run = Run {
        setting,
        strategy,
        world: World::new(
            &setting.scenario,
            &setting.arrivals,
            setting.capacity_per_week,
            setting.capacity_line,
        ),
        engine,
        clock,
        delivery,
        days: Days::new(days),
        signals: Vec::new(),
        counters: Counters::default(),
        first_stage,
        gaps,
        max_gaps,
        blasts: 0,
        neglect_booked: 0,
    };
    run.play(&progress, stop).await?;
    let result = metrics::finish(setting, strategy, &run.counters, run.days, &run.world);
    drop(store);
    Ok(result)
}

impl Run<'_> {
    async fn play(&mut self, progress: &Progress, stop: &StopSignal) -> Result<(), SimError> {
        let step = self.setting.scenario.simulation.step.to_signed();
        let every = self.setting.scenario.campaign.every.to_signed();
        // Campaigns go out mid-morning, when the team can also make the calls.
        let mut next_campaign = self
            .setting
            .start
            .saturating_add(SignedDuration::from_hours(10))
            .unwrap_or(self.setting.start);
        let mut day_done = 0usize;
        loop {
            if stop.is_stopped() {
                return Err(SimError::Stopped);
            }
            let now = self.clock.now();
            if now >= self.setting.end {
                break;
            }
            let today = self.setting.day_of(now);
            if today > day_done {
                self.check_neglect(now, today).await?;
                progress((today - day_done) as u64);
                day_done = today;
            }
            let active = match self.strategy {
                Strategy::Campaign if now >= next_campaign => {
                    while next_campaign <= now {
                        next_campaign = next_campaign.saturating_add(every).unwrap_or(now);
                    }
                    let low =
                        self.setting.scenario.campaign.low_backlog * self.setting.capacity_per_week;
                    let burst = f64::from(self.world.backlog()) < low;
                    if burst {
                        self.blast(now);
                    }
                    burst
                }
                Strategy::Campaign => false,
                _ => true,
            };
            self.settle(now, active).await?;
            let mut next = self.world.next_at();
            if self.strategy == Strategy::Campaign {
                next = earliest(next, Some(next_campaign));
            } else {
                let store = self.engine.store();
                next = earliest(next, store.next_due_at().await?);
                next = earliest(next, store.next_dispatch_at().await?);
            }
            let floor = now.saturating_add(step).unwrap_or(now);
            let next = next.map_or(self.setting.end, |n| n.max(floor));
            self.clock.set(next.min(self.setting.end));
        }
        let total = self.days.touches.len();
        if total > day_done {
            progress((total - day_done) as u64);
        }
        Ok(())
    }

    /// A campaign: every open lead is sent the promotion now.
    fn blast(&mut self, now: Timestamp) {
        if self.setting.blast.is_none() {
            return;
        }
        self.blasts += 1;
        for person in self.world.open_leads() {
            self.signals.push(Signal::Blast {
                person,
                round: self.blasts,
                at: now,
            });
        }
    }

    /// Plays the model and, when `active`, the engine at `now` until neither has
    /// anything left to do at this instant.
    async fn settle(&mut self, now: Timestamp, active: bool) -> Result<(), SimError> {
        let day = self.setting.day_of(now);
        for _ in 0..100 {
            self.world.advance(now, &mut self.signals);
            let signalled = !self.signals.is_empty();
            self.send_signals().await?;
            self.days.observe(day, &self.world);
            if !active {
                return Ok(());
            }
            self.engine.run_until_idle().await?;
            let delivered = self.answer_deliveries(now, day).await?;
            let called = self.do_tasks(now, day).await?;
            self.note_neglect(day);
            if !signalled && !delivered && !called {
                return Ok(());
            }
        }
        Ok(())
    }

    async fn send_signals(&mut self) -> Result<(), SimError> {
        if self.signals.is_empty() {
            return Ok(());
        }
        let config = &self.engine.project().config;
        let mut batch = Vec::with_capacity(self.signals.len() * 2);
        for signal in self.signals.drain(..) {
            let day = self.setting.day_of(signal.at());
            match signal {
                Signal::Arrived { person, at } => {
                    let identity = identity(person);
                    batch.push(IngestMessage::Identify {
                        message_id: format!("arrive-{person}"),
                        identity: identity.clone(),
                        traits: ContactTraits {
                            email: Email::parse(&email_of(person)).ok(),
                            name: Some(format!("Lead {person}")),
                            timezone: self.setting.lead_timezone.clone(),
                            attributes: Map::new(),
                        },
                        at,
                    });
                    batch.push(track(
                        person,
                        &format!("inquiry-{person}"),
                        &self.setting.scenario.population.arrival_event,
                        self.setting.arrival_stage.clone(),
                        at,
                    ));
                }
                Signal::Converted {
                    person,
                    send_event,
                    at,
                } => {
                    count_on(&mut self.days.conversions, day, 1);
                    if send_event {
                        batch.push(track(
                            person,
                            &format!("convert-{person}"),
                            &self.setting.scenario.business.conversion_event,
                            self.setting.conversion_stage.clone(),
                            at,
                        ));
                    }
                }
                Signal::WorkOpened { job, person, at } => {
                    count_on(&mut self.days.work_opened, day, 1);
                    batch.push(track(
                        person,
                        &format!("open-{job}"),
                        &config.work.opened,
                        config.stage_for_event(&config.work.opened).cloned(),
                        at,
                    ));
                }
                Signal::Blast { person, round, at } => {
                    batch.push(track(
                        person,
                        &format!("blast-{round}-{person}"),
                        BLAST_EVENT,
                        None,
                        at,
                    ));
                }
                Signal::WorkClosed { job, person, at } => {
                    batch.push(track(
                        person,
                        &format!("close-{job}"),
                        &config.work.closed,
                        config.stage_for_event(&config.work.closed).cloned(),
                        at,
                    ));
                }
                // A cancelled job leaves the team's backlog as a closed one does; the
                // customer's stage does not move.
                Signal::WorkCancelled { job, person, at } => {
                    batch.push(track(
                        person,
                        &format!("cancel-{job}"),
                        &config.work.closed,
                        None,
                        at,
                    ));
                }
            }
        }
        self.engine
            .store()
            .ingest(&batch, &self.first_stage)
            .await?;
        Ok(())
    }

    /// Lets each person who received something answer it. Returns whether anything
    /// was delivered.
    async fn answer_deliveries(&mut self, now: Timestamp, day: usize) -> Result<bool, SimError> {
        let delivered = self.delivery.take();
        if delivered.is_empty() {
            return Ok(false);
        }
        for touch in delivered {
            self.counters.touches += 1;
            count_on(&mut self.days.touches, day, 1);
            let (kind, email) = match &touch.kind {
                DeliveredKind::Email { template } => {
                    self.counters.emails += 1;
                    let offer = self.setting.offer_templates.contains(template);
                    (
                        if offer {
                            TouchKind::Offer
                        } else {
                            TouchKind::Nurture
                        },
                        true,
                    )
                }
                DeliveredKind::Webhook { offer } => {
                    self.counters.webhooks += 1;
                    (
                        if *offer {
                            TouchKind::Offer
                        } else {
                            TouchKind::Nurture
                        },
                        false,
                    )
                }
            };
            let Some(person) = touch.person else { continue };
            let max_gap = self.max_gaps.get(&touch.process).copied();
            match self.world.touch(person, kind, 1.0, email, max_gap, now) {
                Response::None => {}
                Response::Booked => self.world.follow_up(person, now, false, false),
                Response::Unsubscribed => {
                    if let Some(token) = touch.token.as_deref() {
                        self.engine.unsubscribe_token(token).await?;
                    }
                }
            }
        }
        Ok(true)
    }

    /// The team makes every call that is due: the contact answers as the model says,
    /// and the task is completed with the matching outcome. Returns whether any was.
    async fn do_tasks(&mut self, now: Timestamp, day: usize) -> Result<bool, SimError> {
        let until = now
            .saturating_add(SignedDuration::from_millis(1))
            .unwrap_or(now);
        let open: Vec<_> = self
            .engine
            .store()
            .tasks(now, until)
            .await?
            .into_iter()
            .filter(|t| t.state == "open")
            .collect();
        if open.is_empty() {
            return Ok(false);
        }
        let weight = self.setting.scenario.population.call_weight;
        for task in open {
            self.counters.touches += 1;
            self.counters.tasks += 1;
            self.counters.task_minutes += u64::from(task.minutes);
            count_on(&mut self.days.touches, day, 1);
            let intent = self
                .engine
                .book()
                .iter()
                .find(|b| b.process.id == task.process)
                .and_then(|b| b.process.steps.get(task.step as usize))
                .map_or(Intent::Nurture, |s| s.intent);
            let kind = match intent {
                Intent::Offer => TouchKind::Offer,
                Intent::Nurture => TouchKind::Nurture,
            };
            let person = task.contact_email.as_deref().and_then(person_of);
            let was_lead = person.is_some_and(|n| self.world.is_open_lead(n));
            let response = match person {
                Some(n) => {
                    let max_gap = self.max_gaps.get(&task.process).copied();
                    self.world.touch(n, kind, weight, false, max_gap, now)
                }
                None => Response::None,
            };
            let booked_lead = response == Response::Booked && was_lead && self.setting.call_books;
            // Only a configured outcome completes a task; a call nobody answered is
            // skipped, and the process moves on all the same.
            let end = if booked_lead {
                TaskEnd::Done {
                    outcome: self.setting.scenario.business.booked_outcome.clone(),
                    note: None,
                }
            } else {
                TaskEnd::Skipped {
                    note: Some("no answer".into()),
                }
            };
            if let (Some(n), Response::Booked) = (person, response) {
                self.world.follow_up(n, now, true, booked_lead);
            }
            self.engine.finish_task(task.id.0, end).await?;
        }
        Ok(true)
    }

    /// Asks the store which enrollments are past their process's `max_gap` right now;
    /// the model counts those of leads.
    async fn check_neglect(&mut self, now: Timestamp, day: usize) -> Result<(), SimError> {
        let rows = self
            .engine
            .store()
            .neglect(&self.gaps, Some(now), u32::MAX)
            .await?;
        for row in rows {
            if let Some(n) = row.email.as_deref().and_then(person_of) {
                self.world.neglect(n);
            }
        }
        self.note_neglect(day);
        Ok(())
    }

    /// Books the leads found neglected since the last call (on the daily check, or when
    /// a touch came too late) on `day`, for the chart.
    fn note_neglect(&mut self, day: usize) {
        let total = self.world.tally.neglected;
        count_on(&mut self.days.neglected, day, total - self.neglect_booked);
        self.neglect_booked = total;
    }
}

fn identity(person: usize) -> Identity {
    Identity {
        user_id: Some(format!("sim-{person}")),
        anonymous_id: None,
    }
}

fn track(
    person: usize,
    message_id: &str,
    event: &str,
    stage_change: Option<StageName>,
    at: Timestamp,
) -> IngestMessage {
    IngestMessage::Track {
        message_id: message_id.to_owned(),
        identity: identity(person),
        event: event.to_owned(),
        properties: Map::new(),
        at,
        stage_change,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_seeds;

    #[test]
    fn seed_ranges_include_both_ends() {
        assert_eq!(parse_seeds("1..8", 8), Ok(1..=8));
        assert_eq!(parse_seeds("3..=3", 8), Ok(3..=3));
        assert!(parse_seeds("8..1", 8).unwrap_err().contains("empty"));
        assert!(
            parse_seeds("1-8", 8)
                .unwrap_err()
                .contains("write it as 1..8")
        );
        assert!(parse_seeds("a..3", 8).unwrap_err().contains("`a`"));
        assert!(parse_seeds("1..9", 8).unwrap_err().contains("more than 8"));
    }
}
