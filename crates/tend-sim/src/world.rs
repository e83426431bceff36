//! The model the engine runs against: people whose interest fades without touches and
//! grows with them, who take up offers, unsubscribe when pressed, and come back as
//! customers; and a team that serves work at its capacity, whose waits drive
//! satisfaction and, through it, referrals and conversions.

use crate::scenario::Scenario;
use jiff::{SignedDuration, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// A lead known before the run starts, the same for every strategy.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// When they first ask.
    pub at: Timestamp,
    /// Their interest then, 0–1.
    pub interest: f64,
    /// Seed of their own random stream, so one strategy's choices do not reshuffle
    /// another person's luck.
    pub seed: u64,
}

/// The population every strategy meets: initial leads, then arrivals with the weekly
/// rate and seasonality of the scenario.
pub fn arrivals(scenario: &Scenario, start: Timestamp, end: Timestamp) -> Vec<Arrival> {
    let p = &scenario.population;
    let mut rng = StdRng::seed_from_u64(scenario.simulation.seed);
    let mut out = Vec::new();
    for i in 0..p.initial_leads {
        // Spread over the first hour so they do not share one instant.
        let at = start
            .saturating_add(SignedDuration::from_secs(i64::from(i % 3_600)))
            .unwrap_or(start);
        out.push(new_arrival(&mut rng, at, p.initial_interest));
    }
    let season = |at: Timestamp| -> f64 {
        match &p.seasonality {
            Some(months) => {
                let month = at.to_zoned_datetime(jiff::tz::TimeZone::UTC).month();
                months[usize::try_from(month - 1).unwrap_or(0)]
            }
            None => 1.0,
        }
    };
    let peak = p
        .seasonality
        .as_ref()
        .map_or(1.0, |m| m.iter().copied().fold(0.0, f64::max));
    let rate_per_sec = p.leads_per_week * peak / (7.0 * 86_400.0);
    if rate_per_sec <= 0.0 {
        return out;
    }
    // A Poisson process at the peak rate, thinned by each month's multiplier.
    let mut at = start;
    loop {
        let gap = exponential(&mut rng, 1.0 / rate_per_sec);
        at = match at.checked_add(SignedDuration::from_secs_f64(gap)) {
            Ok(t) if t < end => t,
            _ => break,
        };
        if rng.random::<f64>() * peak <= season(at) {
            out.push(new_arrival(&mut rng, at, p.initial_interest));
        }
    }
    out
}

fn new_arrival(rng: &mut StdRng, at: Timestamp, mean_interest: f64) -> Arrival {
    Arrival {
        at,
        // Uniform around the mean: some arrive keen, some barely curious.
        interest: (mean_interest * (0.5 + rng.random::<f64>())).clamp(0.0, 1.0),
        seed: rng.random(),
    }
}

/// The earlier of two optional instants.
pub fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A draw from an exponential distribution with this mean.
fn exponential(rng: &mut StdRng, mean: f64) -> f64 {
    -mean * (1.0 - rng.random::<f64>()).ln()
}

/// Where one person stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// Not arrived yet.
    Unknown,
    /// Enrolled, deciding.
    Lead,
    /// Accepted an offer; the conversion is on its way.
    Booked,
    /// Bought.
    Customer,
    /// Unsubscribed.
    Gone,
}

struct Person {
    standing: Standing,
    interest: f64,
    interest_at: Timestamp,
    /// The last touch, or the arrival while untouched.
    last_contact: Timestamp,
    /// Touches received as a lead.
    touches: u32,
    recent: VecDeque<Timestamp>,
    neglected: bool,
    rng: StdRng,
}

/// What a touch is, as far as the person is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TouchKind {
    /// Keeps them warm.
    Nurture,
    /// Asks for work.
    Offer,
}

/// Something the model does at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Happening {
    /// Person `n` asks for the first time.
    Arrive(usize),
    /// Person `n` buys; `event_sent` when a task outcome already recorded it.
    Convert { person: usize, event_sent: bool },
    /// Customer `person` comes back with more work: on their own (and then again
    /// later), or answering an offer.
    Repeat { person: usize, spontaneous: bool },
}

/// A message for Tend, in the model's words; the runner turns it into Segment calls.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// A new lead identifies and sends the arrival event.
    Arrived { person: usize, at: Timestamp },
    /// A lead became a customer (send the conversion event unless already sent).
    Converted {
        person: usize,
        send_event: bool,
        at: Timestamp,
    },
    /// A work item opened for this person.
    WorkOpened {
        job: u64,
        person: usize,
        at: Timestamp,
    },
    /// A campaign promotion reached this open lead (round `round`).
    Blast {
        person: usize,
        round: u32,
        at: Timestamp,
    },
    /// A work item was completed.
    WorkClosed {
        job: u64,
        person: usize,
        at: Timestamp,
    },
}

/// What a touch led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    /// Nothing visible.
    None,
    /// They accepted an offer.
    Booked,
    /// They unsubscribed.
    Unsubscribed,
}

struct Job {
    id: u64,
    person: usize,
    opened: Timestamp,
}

/// The population and the business, for one strategy.
pub struct World {
    people: Vec<Person>,
    queue: BinaryHeap<Reverse<(Timestamp, u64, Happening)>>,
    sequence: u64,
    rng: StdRng,
    // The team.
    service: SignedDuration,
    waiting: VecDeque<Job>,
    current: Option<(Job, Timestamp)>,
    next_job: u64,
    /// Satisfaction 0–1, moved by every wait.
    pub satisfaction: f64,
    params: crate::scenario::Population,
    half_life_secs: f64,
    lead_max_gap: Option<SignedDuration>,
    tolerance_secs: f64,
    job_value: f64,
    /// Everything the run reports, gathered as it goes.
    pub tally: Tally,
}

/// Running totals, turned into the summary at the end.
#[derive(Debug, Default)]
pub struct Tally {
    /// Touches each converted lead received before saying yes.
    pub touches_to_conversion: Vec<u32>,
    /// Wait of every started work item, in days.
    pub waits_days: Vec<f64>,
    /// Leads left untouched past `max_gap`.
    pub neglected: u64,
    /// Unsubscribes.
    pub unsubscribes: u64,
    /// Leads who came by referral.
    pub referrals: u64,
    /// Leads who arrived.
    pub leads: u64,
    /// Work items opened.
    pub work_opened: u64,
    /// Work items completed.
    pub work_done: u64,
    /// Revenue of completed work.
    pub revenue: f64,
    /// Most work open at once.
    pub peak_backlog: u32,
}

impl World {
    /// The world at `start`, with the known arrivals queued. `lead_max_gap` is the
    /// `max_gap` of the process new leads enter, if any.
    pub fn new(
        scenario: &Scenario,
        arrivals: &[Arrival],
        capacity_per_week: f64,
        lead_max_gap: Option<SignedDuration>,
    ) -> World {
        let mut world = World {
            people: Vec::with_capacity(arrivals.len()),
            queue: BinaryHeap::new(),
            sequence: 0,
            rng: StdRng::seed_from_u64(scenario.simulation.seed ^ 0x005e_ed0f_7e4d),
            service: SignedDuration::from_secs_f64(7.0 * 86_400.0 / capacity_per_week),
            waiting: VecDeque::new(),
            current: None,
            next_job: 1,
            satisfaction: 1.0,
            params: scenario.population.clone(),
            half_life_secs: scenario.population.interest_half_life.as_secs() as f64,
            lead_max_gap,
            tolerance_secs: scenario.business.wait_tolerance.as_secs() as f64,
            job_value: scenario.business.job_value,
            tally: Tally::default(),
        };
        for arrival in arrivals {
            world.add_person(*arrival);
        }
        world
    }

    fn add_person(&mut self, arrival: Arrival) -> usize {
        let n = self.people.len();
        self.people.push(Person {
            standing: Standing::Unknown,
            interest: arrival.interest,
            interest_at: arrival.at,
            last_contact: arrival.at,
            touches: 0,
            recent: VecDeque::new(),
            neglected: false,
            rng: StdRng::seed_from_u64(arrival.seed),
        });
        self.schedule(arrival.at, Happening::Arrive(n));
        n
    }

    fn schedule(&mut self, at: Timestamp, what: Happening) {
        self.sequence += 1;
        self.queue.push(Reverse((at, self.sequence, what)));
    }

    /// When the model next does something on its own.
    pub fn next_at(&self) -> Option<Timestamp> {
        let happening = self.queue.peek().map(|Reverse((at, _, _))| *at);
        let finish = self.current.as_ref().map(|(_, ends)| *ends);
        earliest(happening, finish)
    }

    /// Work items open now: waiting or in progress.
    pub fn backlog(&self) -> u32 {
        u32::try_from(self.waiting.len() + usize::from(self.current.is_some())).unwrap_or(u32::MAX)
    }

    /// Plays everything due up to `now`, in time order, and returns what Tend must hear.
    pub fn advance(&mut self, now: Timestamp, out: &mut Vec<Signal>) {
        loop {
            let happening = self
                .queue
                .peek()
                .map(|Reverse((at, _, _))| *at)
                .filter(|at| *at <= now);
            let finish = self
                .current
                .as_ref()
                .map(|(_, ends)| *ends)
                .filter(|at| *at <= now);
            match (happening, finish) {
                (Some(h), Some(f)) if f <= h => self.finish_job(out),
                (None, Some(_)) => self.finish_job(out),
                (Some(_), _) => {
                    let Some(Reverse((at, _, what))) = self.queue.pop() else {
                        break;
                    };
                    self.happen(at, what, out);
                }
                (None, None) => break,
            }
        }
    }

    fn happen(&mut self, at: Timestamp, what: Happening, out: &mut Vec<Signal>) {
        match what {
            Happening::Arrive(person) => {
                self.people[person].standing = Standing::Lead;
                self.tally.leads += 1;
                out.push(Signal::Arrived { person, at });
            }
            Happening::Convert { person, event_sent } => {
                if self.people[person].standing != Standing::Booked {
                    return;
                }
                self.people[person].standing = Standing::Customer;
                out.push(Signal::Converted {
                    person,
                    send_event: !event_sent,
                    at,
                });
                self.open_job(person, at, out);
                self.schedule_repeat(person, at);
            }
            Happening::Repeat {
                person,
                spontaneous,
            } => {
                if self.people[person].standing == Standing::Customer {
                    self.open_job(person, at, out);
                    if spontaneous {
                        self.schedule_repeat(person, at);
                    }
                }
            }
        }
    }

    fn open_job(&mut self, person: usize, at: Timestamp, out: &mut Vec<Signal>) {
        let job = Job {
            id: self.next_job,
            person,
            opened: at,
        };
        self.next_job += 1;
        self.tally.work_opened += 1;
        out.push(Signal::WorkOpened {
            job: job.id,
            person,
            at,
        });
        if self.current.is_none() {
            self.start_job(job, at);
        } else {
            self.waiting.push_back(job);
        }
        self.tally.peak_backlog = self.tally.peak_backlog.max(self.backlog());
    }

    fn start_job(&mut self, job: Job, at: Timestamp) {
        let wait = at.duration_since(job.opened).as_secs_f64().max(0.0);
        self.tally.waits_days.push(wait / 86_400.0);
        // Waits within tolerance satisfy; beyond it satisfaction falls, reaching zero
        // at three times the tolerance.
        let quality = if wait <= self.tolerance_secs {
            1.0
        } else {
            (1.0 - (wait - self.tolerance_secs) / (2.0 * self.tolerance_secs)).max(0.0)
        };
        self.satisfaction = 0.9 * self.satisfaction + 0.1 * quality;
        let ends = at.saturating_add(self.service).unwrap_or(at);
        self.current = Some((job, ends));
    }

    fn finish_job(&mut self, out: &mut Vec<Signal>) {
        let Some((job, ends)) = self.current.take() else {
            return;
        };
        self.tally.work_done += 1;
        self.tally.revenue += self.job_value;
        out.push(Signal::WorkClosed {
            job: job.id,
            person: job.person,
            at: ends,
        });
        if let Some(next) = self.waiting.pop_front() {
            self.start_job(next, ends);
        }
        self.refer(ends);
    }

    /// Word of mouth: a finished job brings a new lead now and then, more often when
    /// customers are satisfied.
    fn refer(&mut self, at: Timestamp) {
        let chance = self.params.referrals_per_job * self.satisfaction;
        if self.rng.random::<f64>() < chance {
            let delay = exponential(&mut self.rng, 7.0 * 86_400.0);
            let arrival = Arrival {
                at: at
                    .saturating_add(SignedDuration::from_secs_f64(delay))
                    .unwrap_or(at),
                interest: (self.params.initial_interest * (0.5 + self.rng.random::<f64>()))
                    .min(1.0),
                seed: self.rng.random(),
            };
            self.tally.referrals += 1;
            self.add_person(arrival);
        }
    }

    fn schedule_repeat(&mut self, person: usize, from: Timestamp) {
        if self.params.repeat_per_year <= 0.0 {
            return;
        }
        let rate = self.params.repeat_per_year * self.satisfaction.max(0.05);
        let gap = exponential(&mut self.people[person].rng, 365.0 * 86_400.0 / rate);
        if let Ok(at) = from.checked_add(SignedDuration::from_secs_f64(gap.min(1e10))) {
            self.schedule(
                at,
                Happening::Repeat {
                    person,
                    spontaneous: true,
                },
            );
        }
    }

    /// A lead left untouched past its process's `max_gap` loses part of its interest,
    /// once.
    pub fn neglect(&mut self, person: usize) {
        let p = &mut self.people[person];
        if p.standing == Standing::Lead && !p.neglected {
            p.neglected = true;
            p.interest *= self.params.neglect_keeps;
            self.tally.neglected += 1;
        }
    }

    /// A person received a touch at `now`; `weight` is how persuasive the channel is,
    /// `email` whether it can make them unsubscribe. Returns what they did.
    pub fn touch(
        &mut self,
        person: usize,
        kind: TouchKind,
        weight: f64,
        email: bool,
        now: Timestamp,
    ) -> Response {
        let Some(p) = self.people.get(person) else {
            return Response::None;
        };
        if !matches!(p.standing, Standing::Lead | Standing::Customer) {
            return Response::None;
        }
        if p.standing == Standing::Lead
            && let Some(gap) = self.lead_max_gap
            && now.duration_since(p.last_contact) > gap
        {
            self.neglect(person);
        }
        let satisfaction = self.satisfaction;
        let (take_up, repeat_take_up, unsubscribe_rate) = (
            self.params.take_up,
            self.params.repeat_take_up,
            self.params.unsubscribe_rate,
        );
        let half_life = self.half_life_secs;
        let p = &mut self.people[person];
        let elapsed = now.duration_since(p.interest_at).as_secs_f64().max(0.0);
        p.interest *= 0.5f64.powf(elapsed / half_life);
        p.interest_at = now;
        p.last_contact = now;
        let week_ago = now
            .checked_sub(SignedDuration::from_hours(168))
            .unwrap_or(now);
        while p.recent.front().is_some_and(|t| *t <= week_ago) {
            p.recent.pop_front();
        }
        p.recent.push_back(now);
        if p.standing == Standing::Lead {
            p.touches += 1;
        }
        if email && p.rng.random::<f64>() < unsubscribe_rate * p.recent.len() as f64 {
            p.standing = Standing::Gone;
            self.tally.unsubscribes += 1;
            return Response::Unsubscribed;
        }
        let mut response = Response::None;
        if kind == TouchKind::Offer {
            // Reputation scales every decision to buy.
            let reputation = 0.5 + 0.5 * satisfaction;
            match p.standing {
                Standing::Lead => {
                    let chance = take_up * weight * p.interest * p.interest * reputation;
                    if p.rng.random::<f64>() < chance {
                        p.standing = Standing::Booked;
                        self.tally.touches_to_conversion.push(p.touches);
                        response = Response::Booked;
                    }
                }
                Standing::Customer
                    if p.rng.random::<f64>() < repeat_take_up * weight * satisfaction =>
                {
                    response = Response::Booked;
                }
                _ => {}
            }
        }
        let lift = match kind {
            TouchKind::Nurture => self.params.nurture_lift,
            TouchKind::Offer => self.params.offer_lift,
        };
        let p = &mut self.people[person];
        p.interest += lift * (1.0 - p.interest);
        response
    }

    /// After a `Booked` response: the lead buys after a short while (at once when
    /// booked on a call, whose outcome already told Tend); a customer's repeat work
    /// opens.
    pub fn follow_up(&mut self, person: usize, now: Timestamp, on_call: bool) {
        match self.people[person].standing {
            Standing::Booked => {
                let at = if on_call {
                    now
                } else {
                    let hours = self.people[person].rng.random_range(1.0..48.0);
                    now.saturating_add(SignedDuration::from_secs_f64(hours * 3_600.0))
                        .unwrap_or(now)
                };
                self.schedule(
                    at,
                    Happening::Convert {
                        person,
                        event_sent: on_call,
                    },
                );
            }
            Standing::Customer => self.schedule(
                now,
                Happening::Repeat {
                    person,
                    spontaneous: false,
                },
            ),
            _ => {}
        }
    }

    /// Whether this person is a lead who has not decided yet.
    pub fn is_open_lead(&self, person: usize) -> bool {
        self.people
            .get(person)
            .is_some_and(|p| p.standing == Standing::Lead)
    }

    /// Leads who arrived and have not decided, in arrival order.
    pub fn open_leads(&self) -> Vec<usize> {
        (0..self.people.len())
            .filter(|n| self.people[*n].standing == Standing::Lead)
            .collect()
    }
}
