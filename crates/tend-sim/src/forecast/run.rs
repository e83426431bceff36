//! One forecast run: the real engine on a copy of the live database, its clock moved
//! by hand from one due instant to the next, expected arrivals fed in, the team doing
//! its tasks, and nothing sent (admitted touches only counted).

use crate::run::SimError;
use async_trait::async_trait;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tend_core::check::Project;
use tend_core::pacer::Channel;
use tend_core::process::StepChannel;
use tend_core::{Email, Enroll, Intent};
use tend_engine::{Clock, Delivery, EmailTouch, Engine, EngineSettings, ManualClock, SendError};
use tend_store::{ContactTraits, Identity, IngestMessage, NeglectRow, Store, TaskEnd, TaskView};

/// Shortest jump of the virtual clock: what falls due within it is handled together.
const STEP: SignedDuration = SignedDuration::from_mins(15);
/// The address domain of the contacts a forecast expects to arrive (never sent to).
pub(crate) const ARRIVAL_DOMAIN: &str = "forecast.invalid";
/// The mean response delay assumed for an offer step nothing was learned about and no
/// `[capacity] response_delay` is configured for (as `/api/pace` shows it).
const DEFAULT_DELAY_DAYS: f64 = 3.0;

/// One expected arrival: when, and into which process (by index in the project).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arrival {
    pub at: Timestamp,
    pub process: usize,
}

/// What one run observed, day by day from the start's business date.
pub(crate) struct Trace {
    /// Every touch admitted during the run: when, and on which channel.
    pub admitted: Vec<(Timestamp, Channel)>,
    /// Every task planned during the run or open at its start.
    pub tasks: Vec<TaskView>,
    /// Expected work opened per day, from offers answered.
    pub new_work: Vec<f64>,
    /// Work open at the end of each day.
    pub open_work: Vec<f64>,
    /// Work open at the start.
    pub open_at_start: f64,
    /// Each enrollment past its `max_gap` at some point, with its process id.
    pub past_gap: Vec<(String, NeglectRow)>,
}

/// Runs the engine over `store` (a copy) from `start` for `days` business days, the
/// team serving `served_per_week` work items a week.
pub(crate) async fn run(
    store: Arc<dyn Store>,
    project: Arc<Project>,
    start: Timestamp,
    days: usize,
    served_per_week: f64,
    arrivals: Arc<[Arrival]>,
) -> Result<Trace, SimError> {
    let tz = project.config.business.timezone.time_zone();
    let clock = ManualClock::new(start);
    let delivery = Arc::new(CountingDelivery::new(&project));
    let settings = EngineSettings {
        decide_batch: 5_000,
        ..EngineSettings::default()
    };
    let (engine, _) = Engine::start(
        Arc::clone(&store),
        Arc::clone(&project),
        Arc::new(clock.clone()),
        Arc::clone(&delivery) as Arc<dyn Delivery>,
        settings,
    )
    .await?;
    let pace = engine.pace().await?;
    let capacity = &project.config.capacity;
    let prior_delay = capacity
        .response_delay
        .map_or(DEFAULT_DELAY_DAYS, |d| d.as_secs() as f64 / 86_400.0);
    let learned: HashMap<(String, u32), (f64, f64)> = pace
        .offers
        .iter()
        .map(|o| {
            let delay = if o.delays_observed > 0 || capacity.response_delay.is_some() {
                o.mean_response_days
            } else {
                prior_delay
            };
            ((o.process.clone(), o.step), (o.probability, delay))
        })
        .collect();
    let dates = Dates::new(&tz, start, days);
    let mut run = Run {
        engine,
        clock,
        delivery,
        dates,
        learned,
        prior: (capacity.offer_probability, prior_delay),
        served_per_day: served_per_week / 7.0,
        new_work: vec![0.0; days],
        open_work: vec![0.0; days],
        open: pace.capacity.open_work,
        past_gap: BTreeMap::new(),
        gaps: Vec::new(),
    };
    run.gaps = run
        .engine
        .book()
        .iter()
        .map(|b| (b.id, b.process.max_gap.as_millis()))
        .collect();
    // Offers already out will still be answered: their expected work, spread over
    // their steps' response delays from today.
    for offer in &pace.offers {
        let delay = run.delay_of(&offer.process, offer.step);
        run.spread_work(0, offer.expected_work, delay);
    }
    let open_at_start = run.open;
    run.play(&project, &arrivals).await?;
    let admitted = store.admitted_since(start).await?;
    let end = run.dates.end;
    let tasks = store.tasks(start, end).await?;
    Ok(Trace {
        admitted,
        tasks,
        new_work: run.new_work,
        open_work: run.open_work,
        open_at_start,
        past_gap: run.past_gap.into_values().collect(),
    })
}

/// Business dates of the forecast: day `i` starts at `starts[i]` (the first at the
/// start itself), and the forecast ends at `end`.
pub(crate) struct Dates {
    pub tz: TimeZone,
    pub starts: Vec<Timestamp>,
    pub end: Timestamp,
}

impl Dates {
    pub(crate) fn new(tz: &TimeZone, start: Timestamp, days: usize) -> Dates {
        let first = start.to_zoned_datetime(tz.clone()).date();
        let mut starts = vec![start];
        let mut date = first;
        for _ in 0..days {
            date = date.tomorrow().unwrap_or(date);
            let at = date
                .to_zoned_datetime(tz.clone())
                .map_or(start, |z| z.timestamp())
                .max(start);
            starts.push(at);
        }
        let end = starts.pop().unwrap_or(start);
        Dates {
            tz: tz.clone(),
            starts,
            end,
        }
    }

    /// The forecast day `at` falls on, if any.
    pub(crate) fn day_of(&self, at: Timestamp) -> Option<usize> {
        if at < self.starts[0] || at >= self.end {
            return None;
        }
        Some(self.starts.partition_point(|s| *s <= at) - 1)
    }
}

struct Run {
    engine: Engine,
    clock: ManualClock,
    delivery: Arc<CountingDelivery>,
    dates: Dates,
    /// Per offer step: learned probability of work and mean response delay in days.
    learned: HashMap<(String, u32), (f64, f64)>,
    /// The same for steps nothing was learned about.
    prior: (f64, f64),
    served_per_day: f64,
    new_work: Vec<f64>,
    open_work: Vec<f64>,
    open: f64,
    past_gap: BTreeMap<(i64, i64), (String, NeglectRow)>,
    gaps: Vec<(i64, i64)>,
}

impl Run {
    async fn play(&mut self, project: &Project, arrivals: &[Arrival]) -> Result<(), SimError> {
        let mut arrivals = arrivals.to_vec();
        arrivals.sort_by_key(|a| a.at);
        let mut next_arrival = 0;
        let mut day = 0;
        self.check_gaps().await?;
        loop {
            let now = self.clock.now();
            if now >= self.dates.end {
                break;
            }
            while day + 1 < self.dates.starts.len() && now >= self.dates.starts[day + 1] {
                self.end_day(day, self.dates.starts[day + 1]).await?;
                day += 1;
            }
            let due = arrivals[next_arrival..]
                .iter()
                .take_while(|a| a.at <= now)
                .count();
            if due > 0 {
                let batch = &arrivals[next_arrival..next_arrival + due];
                self.arrive(project, next_arrival, batch).await?;
                next_arrival += due;
            }
            self.engine.run_until_idle().await?;
            self.do_tasks(now, day).await?;
            for (process, step) in self.delivery.take() {
                self.offer_sent(&process, step, day);
            }
            let store = self.engine.store();
            let mut next = [
                store.next_due_at().await?,
                store.next_dispatch_at().await?,
                arrivals.get(next_arrival).map(|a| a.at),
                self.dates.starts.get(day + 1).copied(),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(self.dates.end);
            next = next.max(now.saturating_add(STEP).unwrap_or(now));
            self.clock.set(next.min(self.dates.end));
        }
        while day < self.dates.starts.len() {
            self.end_day(day, self.dates.end).await?;
            day += 1;
        }
        Ok(())
    }

    /// Closes day `day` at `at`: the team serves a day's share of its weekly capacity,
    /// answered offers open work, and the engine is told the open work.
    async fn end_day(&mut self, day: usize, at: Timestamp) -> Result<(), SimError> {
        self.open = (self.open + self.new_work[day] - self.served_per_day).max(0.0);
        self.open_work[day] = self.open;
        self.engine.store().set_open_work(self.open, at).await?;
        self.check_gaps().await
    }

    /// Records every enrollment past its `max_gap` now, once, with its deadline.
    async fn check_gaps(&mut self) -> Result<(), SimError> {
        let now = self.clock.now();
        let rows = self
            .engine
            .store()
            .neglect(&self.gaps, Some(now), u32::MAX)
            .await?;
        for row in rows {
            let key = (row.contact_id.0, row.process_id);
            if !self.past_gap.contains_key(&key) {
                let process = self
                    .engine
                    .book()
                    .get(row.process_id)
                    .map_or_else(|| row.process_id.to_string(), |b| b.process.id.clone());
                self.past_gap.insert(key, (process, row));
            }
        }
        Ok(())
    }

    /// New contacts enter their processes as their history suggests.
    async fn arrive(
        &self,
        project: &Project,
        first: usize,
        batch: &[Arrival],
    ) -> Result<(), SimError> {
        let config = &project.config;
        let mut messages = Vec::with_capacity(batch.len() * 2);
        for (i, arrival) in batch.iter().enumerate() {
            let n = first + i;
            let identity = Identity {
                user_id: Some(format!("forecast-{n}")),
                anonymous_id: None,
            };
            messages.push(IngestMessage::Identify {
                message_id: format!("forecast-arrive-{n}"),
                identity: identity.clone(),
                traits: ContactTraits {
                    email: Email::parse(&format!("arrival-{n}@{ARRIVAL_DOMAIN}")).ok(),
                    name: Some(format!("Expected arrival {n}")),
                    timezone: None,
                    attributes: Map::new(),
                },
                at: arrival.at,
            });
            let (event, stage) = match &project.processes[arrival.process].enroll {
                Enroll::Stage(stage) => ("Forecast Arrival".to_owned(), Some(stage.clone())),
                Enroll::Event(event) => (event.clone(), config.stage_for_event(event).cloned()),
            };
            messages.push(IngestMessage::Track {
                message_id: format!("forecast-enroll-{n}"),
                identity,
                event,
                properties: Map::new(),
                at: arrival.at,
                stage_change: stage,
            });
        }
        self.engine
            .store()
            .ingest(&messages, config.first_stage())
            .await?;
        Ok(())
    }

    /// The team does every task that is due (skipped with a note: the forecast does not
    /// guess outcomes; the process moves on as it would).
    async fn do_tasks(&mut self, now: Timestamp, day: usize) -> Result<(), SimError> {
        let until = now
            .saturating_add(SignedDuration::from_millis(1))
            .unwrap_or(now);
        let open: Vec<TaskView> = self
            .engine
            .store()
            .tasks(now, until)
            .await?
            .into_iter()
            .filter(|t| t.state == "open")
            .collect();
        for task in open {
            let offer = self
                .engine
                .book()
                .iter()
                .find(|b| b.process.id == task.process)
                .and_then(|b| b.process.steps.get(task.step as usize))
                .is_some_and(|s| s.intent == Intent::Offer);
            if offer {
                self.offer_sent(&task.process, task.step, day);
            }
            let end = TaskEnd::Skipped {
                note: Some("forecast".into()),
            };
            self.engine.finish_task(task.id.0, end).await?;
        }
        Ok(())
    }

    fn delay_of(&self, process: &str, step: u32) -> f64 {
        self.learned
            .get(&(process.to_owned(), step))
            .map_or(self.prior.1, |l| l.1)
    }

    /// An offer went out on `day`: its expected work arrives over its response delays.
    fn offer_sent(&mut self, process: &str, step: u32, day: usize) {
        let (probability, delay) = self
            .learned
            .get(&(process.to_owned(), step))
            .copied()
            .unwrap_or(self.prior);
        self.spread_work(day, probability, delay);
    }

    /// Adds `work` answered from `day` on, exponentially over `mean_days`.
    fn spread_work(&mut self, day: usize, work: f64, mean_days: f64) {
        if work <= 0.0 || day >= self.new_work.len() {
            return;
        }
        if mean_days <= 0.0 {
            self.new_work[day] += work;
            return;
        }
        for (k, slot) in self.new_work[day..].iter_mut().enumerate() {
            let k = k as f64;
            *slot += work * ((-k / mean_days).exp() - (-(k + 1.0) / mean_days).exp());
        }
    }
}

/// The forecast's channels: nothing is sent; offers are noted (by process and step)
/// so the work they bring can be expected.
struct CountingDelivery {
    /// Offer email templates → their process and step.
    offer_templates: HashMap<String, (String, u32)>,
    offers: Mutex<Vec<(String, u32)>>,
}

impl CountingDelivery {
    fn new(project: &Project) -> Self {
        let mut offer_templates = HashMap::new();
        for process in &project.processes {
            for (i, step) in process.steps.iter().enumerate() {
                if let (StepChannel::Email { template }, Intent::Offer) =
                    (&step.channel, step.intent)
                {
                    offer_templates
                        .entry(template.clone())
                        .or_insert((process.id.clone(), i as u32));
                }
            }
        }
        CountingDelivery {
            offer_templates,
            offers: Mutex::default(),
        }
    }

    fn note(&self, offer: (String, u32)) {
        self.offers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(offer);
    }

    fn take(&self) -> Vec<(String, u32)> {
        std::mem::take(&mut *self.offers.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[async_trait]
impl Delivery for CountingDelivery {
    async fn email(&self, email: &EmailTouch<'_>) -> Result<(), SendError> {
        if let Some(offer) = self.offer_templates.get(email.template) {
            self.note(offer.clone());
        }
        Ok(())
    }

    async fn webhook(
        &self,
        _url: &str,
        _id: &str,
        body: &Value,
        _at: Timestamp,
    ) -> Result<(), SendError> {
        if body["step"]["intent"] == "offer"
            && let (Some(process), Some(step)) = (
                body["process"]["id"].as_str(),
                body["step"]["index"].as_u64(),
            )
        {
            self.note((process.to_owned(), step as u32));
        }
        Ok(())
    }
}
