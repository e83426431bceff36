//! The model the engine runs against: people whose interest fades without touches and
//! grows with them, who answer offers days later, unsubscribe or go to a competitor
//! when pressed or forgotten, and come back as customers as far as their own
//! satisfaction allows; and a team (see [`crate::team`]) whose waits and rushed work set
//! that satisfaction, cancel jobs, and, through a public reputation, move new leads.

use crate::scenario::Scenario;
use crate::team::{Job, Team};
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
    /// Went to a competitor; Tend does not know and still counts them as a lead.
    Lost,
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
    /// As a customer, 0–1: moved by each of their jobs.
    satisfaction: f64,
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
    /// The customer of a waiting job gives up on it.
    Cancel { job: u64 },
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
    /// A waiting work item was cancelled by its customer: it leaves the backlog.
    WorkCancelled {
        job: u64,
        person: usize,
        at: Timestamp,
    },
}

impl Signal {
    /// When it happened.
    pub fn at(&self) -> Timestamp {
        match self {
            Signal::Arrived { at, .. }
            | Signal::Converted { at, .. }
            | Signal::WorkOpened { at, .. }
            | Signal::WorkClosed { at, .. }
            | Signal::WorkCancelled { at, .. }
            | Signal::Blast { at, .. } => *at,
        }
    }
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

/// The public reputation: the mean quality of the jobs finished or cancelled within a
/// window, as reviews and word of mouth carry it.
struct Reputation {
    window: SignedDuration,
    recent: VecDeque<(Timestamp, f64)>,
    sum: f64,
}

impl Reputation {
    fn record(&mut self, at: Timestamp, quality: f64) {
        self.recent.push_back((at, quality));
        self.sum += quality;
    }

    fn forget_before(&mut self, now: Timestamp) {
        let Ok(since) = now.checked_sub(self.window) else {
            return;
        };
        while let Some((at, q)) = self.recent.front().copied() {
            if at >= since {
                break;
            }
            self.recent.pop_front();
            self.sum -= q;
        }
        if self.recent.is_empty() {
            self.sum = 0.0;
        }
    }

    /// 0–1; a business nobody has reviewed yet starts with a clean name.
    fn value(&self) -> f64 {
        if self.recent.is_empty() {
            1.0
        } else {
            (self.sum / self.recent.len() as f64).clamp(0.0, 1.0)
        }
    }
}

/// How much a customer's latest job weighs in their satisfaction: as much as all the
/// earlier ones together.
const LATEST_JOB_WEIGHT: f64 = 0.5;

/// The population and the business, for one strategy.
pub struct World {
    people: Vec<Person>,
    queue: BinaryHeap<Reverse<(Timestamp, u64, Happening)>>,
    sequence: u64,
    rng: StdRng,
    /// The team serving the work.
    pub team: Team,
    next_job: u64,
    reputation: Reputation,
    satisfaction_sum: f64,
    customers: u64,
    params: crate::scenario::Population,
    congestion: crate::scenario::Congestion,
    half_life_secs: f64,
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
    /// Leads left untouched past `max_gap`.
    pub neglected: u64,
    /// Unsubscribes.
    pub unsubscribes: u64,
    /// Leads who went to a competitor: forgotten past `max_gap`, or pressed too hard.
    pub lost_to_competitors: u64,
    /// Leads who came by referral.
    pub referrals: u64,
    /// Leads who arrived.
    pub leads: u64,
    /// Work items opened.
    pub work_opened: u64,
    /// Work items completed.
    pub work_done: u64,
    /// Work items their customers cancelled while waiting.
    pub cancelled: u64,
    /// Revenue of completed work.
    pub revenue: f64,
    /// Most work open at once.
    pub peak_backlog: u32,
}

impl World {
    /// The world at `start`, with the known arrivals queued; `line` is the capacity
    /// line in work items open.
    pub fn new(
        scenario: &Scenario,
        arrivals: &[Arrival],
        capacity_per_week: f64,
        line: f64,
    ) -> World {
        let mut world = World {
            people: Vec::with_capacity(arrivals.len()),
            queue: BinaryHeap::new(),
            sequence: 0,
            rng: StdRng::seed_from_u64(scenario.simulation.seed ^ 0x005e_ed0f_7e4d),
            team: Team::new(scenario, capacity_per_week, line),
            next_job: 1,
            reputation: Reputation {
                window: scenario.population.reputation_window.to_signed(),
                recent: VecDeque::new(),
                sum: 0.0,
            },
            satisfaction_sum: 0.0,
            customers: 0,
            params: scenario.population.clone(),
            congestion: scenario.congestion.clone(),
            half_life_secs: scenario.population.interest_half_life.as_secs() as f64,
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
            satisfaction: 1.0,
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
        earliest(happening, self.team.next_finish())
    }

    /// Work items open now: waiting or in progress.
    pub fn backlog(&self) -> u32 {
        self.team.backlog()
    }

    /// Mean satisfaction of the customers so far, 0–1 (1 before the first).
    pub fn satisfaction(&self) -> f64 {
        if self.customers == 0 {
            1.0
        } else {
            (self.satisfaction_sum / self.customers as f64).clamp(0.0, 1.0)
        }
    }

    /// The public reputation as of the last [`World::advance`], 0–1.
    pub fn reputation(&self) -> f64 {
        self.reputation.value()
    }

    /// Plays everything due up to `now`, in time order, and returns what Tend must hear.
    pub fn advance(&mut self, now: Timestamp, out: &mut Vec<Signal>) {
        loop {
            let happening = self
                .queue
                .peek()
                .map(|Reverse((at, _, _))| *at)
                .filter(|at| *at <= now);
            let finish = self.team.next_finish().filter(|at| *at <= now);
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
        self.reputation.forget_before(now);
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
                self.customers += 1;
                self.satisfaction_sum += self.people[person].satisfaction;
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
            Happening::Cancel { job } => {
                if let Some(job) = self.team.cancel(job) {
                    self.tally.cancelled += 1;
                    out.push(Signal::WorkCancelled {
                        job: job.id,
                        person: job.person,
                        at,
                    });
                    // Giving up on a job is the worst experience a customer can have.
                    self.judge(job.person, at, 0.0);
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
        if let Some(patience) = self.patience(person) {
            let deadline = at.saturating_add(patience).unwrap_or(at);
            self.schedule(deadline, Happening::Cancel { job: job.id });
        }
        self.team.open(job, at);
        self.tally.peak_backlog = self.tally.peak_backlog.max(self.backlog());
    }

    /// How long this customer would wait for a job before cancelling it. The hazard
    /// is zero within their tolerance and then rises by `cancel_rate` per week for
    /// every week past it: how fast people act once unhappy depends on how hard it is
    /// to find someone else, not on how patient they were. `None` when nobody cancels.
    fn patience(&mut self, person: usize) -> Option<SignedDuration> {
        const WEEK: f64 = 7.0 * 86_400.0;
        let slope = self.congestion.cancel_rate / (WEEK * WEEK);
        if slope <= 0.0 {
            return None;
        }
        // Cumulative hazard slope·(w − T)²/2 against an exponential draw.
        let draw = exponential(&mut self.people[person].rng, 1.0);
        let past = (2.0 * draw / slope).sqrt();
        Some(SignedDuration::from_secs_f64(
            (self.tolerance_secs + past).min(1e10),
        ))
    }

    fn finish_job(&mut self, out: &mut Vec<Signal>) {
        let Some(done) = self.team.finish() else {
            return;
        };
        self.tally.work_done += 1;
        self.tally.revenue += self.job_value;
        out.push(Signal::WorkClosed {
            job: done.job.id,
            person: done.job.person,
            at: done.at,
        });
        self.judge(done.job.person, done.at, done.quality);
        self.refer(done.job.person, done.at);
    }

    /// A job ended for `person` with `quality`: their own satisfaction and the public
    /// reputation move.
    fn judge(&mut self, person: usize, at: Timestamp, quality: f64) {
        let p = &mut self.people[person];
        let before = p.satisfaction;
        p.satisfaction = (1.0 - LATEST_JOB_WEIGHT) * before + LATEST_JOB_WEIGHT * quality;
        if p.standing == Standing::Customer {
            self.satisfaction_sum += p.satisfaction - before;
        }
        self.reputation.record(at, quality);
    }

    /// Word of mouth: a finished job brings a new lead now and then, more often the
    /// more satisfied its customer is.
    fn refer(&mut self, person: usize, at: Timestamp) {
        let chance = self.params.referrals_per_job * self.people[person].satisfaction;
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
        let p = &mut self.people[person];
        let rate = self.params.repeat_per_year * p.satisfaction.max(0.05);
        let gap = exponential(&mut p.rng, 365.0 * 86_400.0 / rate);
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
    /// once, and may go to a competitor meanwhile.
    pub fn neglect(&mut self, person: usize) {
        let lost = self.params.lost_when_neglected;
        let p = &mut self.people[person];
        if p.standing == Standing::Lead && !p.neglected {
            p.neglected = true;
            p.interest *= self.params.neglect_keeps;
            self.tally.neglected += 1;
            if p.rng.random::<f64>() < lost {
                p.standing = Standing::Lost;
                self.tally.lost_to_competitors += 1;
            }
        }
    }

    /// A person received a touch at `now`; `weight` is how persuasive the channel is,
    /// `email` whether it can make them unsubscribe, `max_gap` the promise of the
    /// process that sent it: a lead reached later than that since their last touch was
    /// neglected. Returns what they did.
    pub fn touch(
        &mut self,
        person: usize,
        kind: TouchKind,
        weight: f64,
        email: bool,
        max_gap: Option<SignedDuration>,
        now: Timestamp,
    ) -> Response {
        let Some(p) = self.people.get(person) else {
            return Response::None;
        };
        if !matches!(p.standing, Standing::Lead | Standing::Customer) {
            return Response::None;
        }
        if p.standing == Standing::Lead
            && let Some(gap) = max_gap
            && now.duration_since(p.last_contact) > gap
        {
            self.neglect(person);
        }
        let reputation = self.reputation.value();
        let params = &self.params;
        let half_life = self.half_life_secs;
        let p = &mut self.people[person];
        if p.standing == Standing::Lost {
            return Response::None;
        }
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
        if email && p.rng.random::<f64>() < params.unsubscribe_rate * p.recent.len() as f64 {
            p.standing = Standing::Gone;
            self.tally.unsubscribes += 1;
            return Response::Unsubscribed;
        }
        if p.standing == Standing::Lead {
            // Pressed harder than people accept, some leads go elsewhere.
            let beyond = p
                .recent
                .len()
                .saturating_sub(params.pressure_free_per_week as usize);
            if p.rng.random::<f64>() < params.lost_per_pressing_touch * beyond as f64 {
                p.standing = Standing::Lost;
                self.tally.lost_to_competitors += 1;
                return Response::None;
            }
        }
        let mut response = Response::None;
        if kind == TouchKind::Offer {
            match p.standing {
                Standing::Lead => {
                    // The public reputation scales every new lead's decision to buy.
                    let weight_of_name = params.reputation_weight;
                    let name = 1.0 - weight_of_name + weight_of_name * reputation;
                    let chance = params.take_up * weight * p.interest * p.interest * name;
                    if p.rng.random::<f64>() < chance {
                        p.standing = Standing::Booked;
                        self.tally.touches_to_conversion.push(p.touches);
                        response = Response::Booked;
                    }
                }
                Standing::Customer
                    if p.rng.random::<f64>() < params.repeat_take_up * weight * p.satisfaction =>
                {
                    response = Response::Booked;
                }
                _ => {}
            }
        }
        let lift = match kind {
            TouchKind::Nurture => params.nurture_lift,
            TouchKind::Offer => params.offer_lift,
        };
        p.interest += lift * (1.0 - p.interest);
        response
    }

    /// After a `Booked` response: a lead buys and a customer's repeat work opens — at
    /// once when they said yes on a call (`event_sent` when its outcome already told
    /// Tend), otherwise after a response delay of days.
    pub fn follow_up(&mut self, person: usize, now: Timestamp, on_call: bool, event_sent: bool) {
        let at = if on_call {
            now
        } else {
            let delay = self.response_delay(person);
            now.saturating_add(delay).unwrap_or(now)
        };
        match self.people[person].standing {
            Standing::Booked => self.schedule(at, Happening::Convert { person, event_sent }),
            Standing::Customer => self.schedule(
                at,
                Happening::Repeat {
                    person,
                    spontaneous: false,
                },
            ),
            _ => {}
        }
    }

    /// A log-normal delay with the scenario's median and spread.
    fn response_delay(&mut self, person: usize) -> SignedDuration {
        let median = self.params.response_delay.as_secs() as f64;
        let rng = &mut self.people[person].rng;
        // Box–Muller: one standard normal draw from two uniform ones.
        let (u, v) = (1.0 - rng.random::<f64>(), rng.random::<f64>());
        let normal = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
        let secs = median * (self.params.response_spread * normal).exp();
        SignedDuration::from_secs_f64(secs.clamp(60.0, 1e9))
    }

    /// Whether this person is a lead who has not decided yet.
    pub fn is_open_lead(&self, person: usize) -> bool {
        self.people
            .get(person)
            .is_some_and(|p| p.standing == Standing::Lead)
    }

    /// Leads Tend still counts as open (undecided, or gone to a competitor without a
    /// word), in arrival order.
    pub fn open_leads(&self) -> Vec<usize> {
        (0..self.people.len())
            .filter(|n| matches!(self.people[*n].standing, Standing::Lead | Standing::Lost))
            .collect()
    }
}
