//! Runs the real engine, one instance per strategy over its own SQLite file, against
//! the model on a virtual clock that jumps from one due instant to the next.

use crate::outcome::{DayRow, SimReport, Strategy, StrategyRun, Summary};
use crate::scenario::Scenario;
use crate::world::{self, Arrival, Response, Signal, TouchKind, World, earliest};
use async_trait::async_trait;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tend_core::check::Project;
use tend_core::config::Config;
use tend_core::process::Channel as StepChannel;
use tend_core::{Email, Enroll, Intent, StageName, TimeZoneName};
use tend_engine::{
    Clock, Delivery, EmailTouch, Engine, EngineError, EngineSettings, ManualClock, SendError,
};
use tend_store::{ContactTraits, Identity, IngestMessage, SqliteStore, Store, StoreError, TaskEnd};

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
}

/// Called with the number of simulated days just completed, for a progress bar.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// Simulates every strategy on the same population and seed, as many at a time as
/// there are cores, and returns their results in [`Strategy::ALL`] order.
pub async fn simulate(
    scenario: &Scenario,
    name: &str,
    project: &Project,
    progress: Progress,
) -> Result<SimReport, SimError> {
    let setting = Arc::new(Setting::new(scenario, project)?);
    // One OS thread and one single-threaded runtime per running strategy: each is a
    // chain of synchronous database calls. No more threads than cores: a third
    // strategy sharing two cores would only slow the longest one down, and the
    // strategies start longest first (the pacer's makes the most decisions).
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..cores.min(Strategy::ALL.len()) {
        let (setting, progress, next) = (
            Arc::clone(&setting),
            Arc::clone(&progress),
            Arc::clone(&next),
        );
        workers.push(std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let mut done = Vec::new();
            while let Some(&strategy) = Strategy::ALL.get(next.fetch_add(1, Ordering::Relaxed)) {
                let run =
                    runtime.block_on(run_strategy(&setting, strategy, Arc::clone(&progress)))?;
                done.push(run);
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
    runs.sort_by_key(|run| Strategy::ALL.iter().position(|s| *s == run.strategy));
    Ok(SimReport {
        scenario: name.to_owned(),
        seed: scenario.simulation.seed,
        start: scenario.simulation.start.to_string(),
        days: scenario.simulation.days,
        capacity_per_week: setting.capacity_per_week,
        backlog_limit: setting.backlog_limit,
        runs,
    })
}

/// Everything the strategies share.
struct Setting {
    scenario: Scenario,
    project: Project,
    arrivals: Vec<Arrival>,
    tz: TimeZone,
    start: Timestamp,
    end: Timestamp,
    capacity_per_week: f64,
    backlog_limit: f64,
    lead_max_gap: Option<SignedDuration>,
    lead_timezone: Option<TimeZoneName>,
    arrival_stage: Option<StageName>,
    conversion_stage: Option<StageName>,
    /// Whether completing a task with `booked_outcome` records the conversion event.
    call_books: bool,
    offer_templates: HashSet<String>,
    /// Ids of the processes new leads enter.
    lead_processes: Vec<String>,
    /// The process the `campaign` strategy's blasts enroll every open lead in.
    blast: Option<tend_core::Process>,
}

/// The event a campaign blast records for every open lead.
const BLAST_EVENT: &str = "Campaign Sent";

impl Setting {
    fn new(scenario: &Scenario, project: &Project) -> Result<Setting, SimError> {
        let config = &project.config;
        let tz = config.business.timezone.time_zone();
        let start = scenario
            .simulation
            .start
            .to_zoned_datetime(tz.clone())
            .map_err(|e| SimError::Setup(format!("simulation.start: {e}")))?
            .timestamp();
        let end = start
            .checked_add(SignedDuration::from_hours(
                24 * i64::from(scenario.simulation.days),
            ))
            .map_err(|e| SimError::Setup(format!("simulation.days: {e}")))?;
        let population = &scenario.population;
        let arrival_stage = config.stage_for_event(&population.arrival_event).cloned();
        let enrolls = |p: &&tend_core::Process| match &p.enroll {
            Enroll::Stage(stage) => Some(stage) == arrival_stage.as_ref(),
            Enroll::Event(event) => *event == population.arrival_event,
        };
        let lead_processes: Vec<_> = project.processes.iter().filter(enrolls).collect();
        if lead_processes.is_empty() {
            return Err(SimError::Setup(format!(
                "no process enrolls the leads: `population.arrival_event` is `{}`, which no \
                 process's `enroll` matches (directly or through [stages.on_event])",
                population.arrival_event
            )));
        }
        let lead_max_gap = lead_processes.iter().map(|p| p.max_gap.to_signed()).min();
        let business = &scenario.business;
        let conversion_stage = config.stage_for_event(&business.conversion_event).cloned();
        let call_books =
            config.tasks.outcomes.get(&business.booked_outcome) == Some(&business.conversion_event);
        let lead_timezone = match &population.timezone {
            Some(name) => Some(
                TimeZoneName::parse(name)
                    .map_err(|e| SimError::Setup(format!("population.timezone: {e}")))?,
            ),
            None => None,
        };
        let capacity_per_week = business
            .capacity_per_week
            .unwrap_or(config.capacity.per_week);
        if capacity_per_week <= 0.0 {
            return Err(SimError::Setup(
                "the team serves no work: set `business.capacity_per_week` or [capacity] \
                 per_week in tend.toml"
                    .into(),
            ));
        }
        let horizon_weeks = config.capacity.horizon.as_secs() as f64 / (7.0 * 86_400.0);
        let offer_templates = project
            .processes
            .iter()
            .flat_map(|p| &p.steps)
            .filter(|s| s.intent == Intent::Offer)
            .filter_map(|s| match &s.channel {
                StepChannel::Email { template } => Some(template.clone()),
                _ => None,
            })
            .collect();
        let blast = lead_processes.first().and_then(|lead| blast_process(lead));
        let lead_processes = lead_processes.iter().map(|p| p.id.clone()).collect();
        Ok(Setting {
            arrivals: world::arrivals(scenario, start, end),
            scenario: scenario.clone(),
            project: project.clone(),
            tz,
            start,
            end,
            capacity_per_week,
            backlog_limit: capacity_per_week * horizon_weeks.max(1.0 / 7.0),
            lead_max_gap,
            lead_timezone,
            arrival_stage,
            conversion_stage,
            call_books,
            offer_templates,
            lead_processes,
            blast,
        })
    }

    /// The project as this strategy runs it: the scenario's own for `background`;
    /// with no budget, capacity, frequency or quiet-hour limit for the others.
    fn project_for(&self, strategy: Strategy) -> Project {
        let mut project = self.project.clone();
        if strategy != Strategy::Background {
            unpace(&mut project.config);
        }
        if strategy == Strategy::Campaign
            && let Some(blast) = &self.blast
        {
            project.processes.push(blast.clone());
        }
        project
    }

    /// The simulated day `at` falls on, in the business's time zone.
    fn day_of(&self, at: Timestamp) -> usize {
        let date = at.to_zoned_datetime(self.tz.clone()).date();
        let days = date
            .duration_since(self.scenario.simulation.start)
            .as_secs()
            / 86_400;
        usize::try_from(days.max(0)).unwrap_or(0)
    }
}

/// A one-step process sending the lead process's first offer email to whoever records
/// [`BLAST_EVENT`], again at every blast: the `campaign` strategy's promotion.
fn blast_process(lead: &tend_core::Process) -> Option<tend_core::Process> {
    let template = lead.steps.iter().find_map(|s| match &s.channel {
        StepChannel::Email { template } if s.intent == Intent::Offer => Some(template.clone()),
        _ => None,
    })?;
    Some(tend_core::Process {
        id: "campaign-blast".into(),
        name: "Campaign blast".into(),
        enroll: Enroll::Event(BLAST_EVENT.into()),
        exit: lead.exit.clone(),
        max_gap: lead.max_gap,
        keep_warm: None,
        reenroll: true,
        steps: vec![tend_core::Step {
            wait: tend_core::Duration::from_secs(0),
            channel: StepChannel::Email { template },
            intent: Intent::Offer,
        }],
    })
}

/// Lifts every pacing limit; business hours still bound tasks, since people do them.
fn unpace(config: &mut Config) {
    config.budget.clear();
    config.limits.quiet_hours = None;
    config.limits.per_contact_per_week = 1_000;
    config.limits.min_gap = tend_core::Duration::from_secs(0);
    config.capacity.per_week = 1e12;
}

/// Delivered touches, collected for the model to answer.
#[derive(Default)]
struct SimDelivery {
    delivered: Mutex<Vec<Delivered>>,
}

struct Delivered {
    person: Option<usize>,
    kind: DeliveredKind,
    /// The unsubscribe token, which names the contact id.
    token: Option<String>,
}

enum DeliveredKind {
    Email { template: String },
    Webhook { offer: bool },
}

#[async_trait]
impl Delivery for SimDelivery {
    async fn email(&self, email: &EmailTouch<'_>) -> Result<(), SendError> {
        let delivered = Delivered {
            person: person_of(email.to_email),
            kind: DeliveredKind::Email {
                template: email.template.to_owned(),
            },
            token: Some(email.unsubscribe_token.to_owned()),
        };
        self.delivered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(delivered);
        Ok(())
    }

    async fn webhook(
        &self,
        _url: &str,
        _id: &str,
        body: &Value,
        _at: Timestamp,
    ) -> Result<(), SendError> {
        let email = body["contact"]["email"].as_str().unwrap_or_default();
        let delivered = Delivered {
            person: person_of(email),
            kind: DeliveredKind::Webhook {
                offer: body["step"]["intent"] == "offer",
            },
            token: None,
        };
        self.delivered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(delivered);
        Ok(())
    }
}

impl SimDelivery {
    fn take(&self) -> Vec<Delivered> {
        std::mem::take(&mut *self.delivered.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

fn email_of(person: usize) -> String {
    format!("p{person}@sim.example")
}

fn person_of(email: &str) -> Option<usize> {
    email
        .strip_prefix('p')?
        .strip_suffix("@sim.example")?
        .parse()
        .ok()
}

/// Per-day counters for the charts.
struct Days {
    touches: Vec<u32>,
    work_opened: Vec<u32>,
    backlog_peak: Vec<Option<u32>>,
    neglected: Vec<u64>,
    conversions: Vec<u64>,
    satisfaction: Vec<Option<f64>>,
}

impl Days {
    fn new(days: usize) -> Days {
        Days {
            touches: vec![0; days],
            work_opened: vec![0; days],
            backlog_peak: vec![None; days],
            neglected: vec![0; days],
            conversions: vec![0; days],
            satisfaction: vec![None; days],
        }
    }

    fn observe(&mut self, day: usize, world: &World) {
        if let Some(peak) = self.backlog_peak.get_mut(day) {
            *peak = Some(peak.unwrap_or(0).max(world.backlog()));
            self.satisfaction[day] = Some(world.satisfaction);
        }
    }

    fn rows(self, setting: &Setting) -> Vec<DayRow> {
        let mut rows = Vec::with_capacity(self.touches.len());
        let (mut backlog, mut satisfaction) = (0, 1.0);
        let (mut neglected, mut conversions) = (0, 0);
        for day in 0..self.touches.len() {
            backlog = self.backlog_peak[day].unwrap_or(backlog);
            satisfaction = self.satisfaction[day].unwrap_or(satisfaction);
            neglected += self.neglected[day];
            conversions += self.conversions[day];
            let date = setting
                .scenario
                .simulation
                .start
                .checked_add(jiff::Span::new().days(i64::try_from(day).unwrap_or(0)))
                .map_or_else(|_| String::new(), |d| d.to_string());
            rows.push(DayRow {
                date,
                backlog_peak: backlog,
                touches: self.touches[day],
                work_opened: self.work_opened[day],
                neglected_total: neglected,
                conversions_total: conversions,
                satisfaction,
            });
        }
        rows
    }
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
    touches: u64,
    emails: u64,
    webhooks: u64,
    tasks: u64,
    task_minutes: u64,
    first_stage: StageName,
    lead_gaps: Vec<(i64, i64)>,
    blasts: u32,
    /// Neglected leads already counted in the daily rows.
    neglect_booked: u64,
}

async fn run_strategy(
    setting: &Setting,
    strategy: Strategy,
    progress: Progress,
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
    let lead_gaps = engine
        .book()
        .iter()
        .filter(|b| setting.lead_processes.contains(&b.process.id))
        .map(|b| (b.id, b.process.max_gap.as_millis()))
        .collect();
    let days = usize::try_from(setting.scenario.simulation.days).unwrap_or(0);
    let mut run = Run {
        setting,
        strategy,
        world: World::new(
            &setting.scenario,
            &setting.arrivals,
            setting.capacity_per_week,
            setting.lead_max_gap,
        ),
        engine,
        clock,
        delivery,
        days: Days::new(days),
        signals: Vec::new(),
        touches: 0,
        emails: 0,
        webhooks: 0,
        tasks: 0,
        task_minutes: 0,
        first_stage,
        lead_gaps,
        blasts: 0,
        neglect_booked: 0,
    };
    run.play(&progress).await?;
    let result = run.finish();
    drop(store);
    Ok(result)
}

impl Run<'_> {
    async fn play(&mut self, progress: &Progress) -> Result<(), SimError> {
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
            let day = self.setting.day_of(signal_at(&signal));
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
            self.touches += 1;
            count_on(&mut self.days.touches, day, 1);
            let (kind, email) = match &touch.kind {
                DeliveredKind::Email { template } => {
                    self.emails += 1;
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
                    self.webhooks += 1;
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
            match self.world.touch(person, kind, 1.0, email, now) {
                Response::None => {}
                Response::Booked => self.world.follow_up(person, now, false),
                Response::Unsubscribed => {
                    let contact = touch
                        .token
                        .as_deref()
                        .and_then(|t| self.engine.signer().verify(t));
                    if let Some(id) = contact {
                        self.engine.unsubscribe(tend_core::ContactId(id)).await?;
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
            self.touches += 1;
            self.tasks += 1;
            self.task_minutes += u64::from(task.minutes);
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
                Some(n) => self.world.touch(n, kind, weight, false, now),
                None => Response::None,
            };
            let booked_lead = response == Response::Booked && was_lead && self.setting.call_books;
            let outcome = if booked_lead {
                self.setting.scenario.business.booked_outcome.clone()
            } else {
                "no-answer".to_owned()
            };
            if let (Some(n), Response::Booked) = (person, response) {
                self.world.follow_up(n, now, booked_lead);
            }
            self.engine
                .finish_task(
                    task.id.0,
                    TaskEnd::Done {
                        outcome,
                        note: None,
                    },
                )
                .await?;
        }
        Ok(true)
    }

    /// Asks the store which leads are past their process's `max_gap` right now.
    async fn check_neglect(&mut self, now: Timestamp, day: usize) -> Result<(), SimError> {
        let rows = self
            .engine
            .store()
            .neglect(&self.lead_gaps, Some(now), u32::MAX)
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

    fn finish(self) -> StrategyRun {
        let config = &self.setting.project.config;
        let tally = &self.world.tally;
        let mut conversions = tally.touches_to_conversion.clone();
        conversions.sort_unstable();
        let mut waits = tally.waits_days.clone();
        waits.sort_by(f64::total_cmp);
        let limit = self.setting.backlog_limit;
        let days_over_capacity = self
            .days
            .backlog_peak
            .iter()
            .filter(|peak| peak.is_some_and(|p| f64::from(p) > limit))
            .count();
        let cost = self.emails as f64 * config.cost("email")
            + self.webhooks as f64 * config.cost("webhook")
            + self.tasks as f64 * config.cost("task")
            + self.task_minutes as f64 / 60.0 * self.setting.scenario.business.staff_cost_per_hour;
        let mut histogram = vec![0u64; conversions.last().map_or(0, |m| *m as usize + 1)];
        for n in &conversions {
            histogram[*n as usize] += 1;
        }
        let summary = Summary {
            conversions: conversions.len() as u64,
            revenue: round2(tally.revenue),
            peak_backlog: tally.peak_backlog,
            mean_wait_days: round2(mean(&waits)),
            p90_wait_days: round2(percentile(&waits, 0.9)),
            days_over_capacity: u32::try_from(days_over_capacity).unwrap_or(u32::MAX),
            neglected_leads: tally.neglected,
            touches_per_conversion_median: percentile_u32(&conversions, 0.5),
            touches_per_conversion_p90: percentile_u32(&conversions, 0.9),
            cost: round2(cost),
            leads: tally.leads,
            touches: self.touches,
            work_opened: tally.work_opened,
            work_done: tally.work_done,
            unsubscribes: tally.unsubscribes,
            referrals: tally.referrals,
            final_satisfaction: round2(self.world.satisfaction),
        };
        StrategyRun {
            strategy: self.strategy,
            summary,
            days: self.days.rows(self.setting),
            touches_to_conversion: histogram,
        }
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

fn signal_at(signal: &Signal) -> Timestamp {
    match signal {
        Signal::Arrived { at, .. }
        | Signal::Converted { at, .. }
        | Signal::WorkOpened { at, .. }
        | Signal::WorkClosed { at, .. }
        | Signal::Blast { at, .. } => *at,
    }
}

/// Adds `n` to a day's counter; days past the end of the run are not counted.
fn count_on<T: std::ops::AddAssign>(counts: &mut [T], day: usize, n: T) {
    if let Some(count) = counts.get_mut(day) {
        *count += n;
    }
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

/// Nearest-rank percentile of sorted values; 0 for none.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn percentile_u32(sorted: &[u32], q: f64) -> f64 {
    let values: Vec<f64> = sorted.iter().map(|v| f64::from(*v)).collect();
    percentile(&values, q)
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}
