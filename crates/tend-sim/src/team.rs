//! The team that serves the work: one job at a time at the scenario's capacity, first
//! come first served. Past its capacity line it rushes — jobs take longer (rework) and
//! satisfy less, and overtime adds speed at a cost — and customers who wait past their
//! tolerance judge the job by the wait.

use crate::scenario::Scenario;
use jiff::{SignedDuration, Timestamp};
use std::collections::VecDeque;

/// One work item for one customer.
#[derive(Debug, Clone, Copy)]
pub struct Job {
    /// Its number, unique within a run.
    pub id: u64,
    /// The customer.
    pub person: usize,
    /// When it was asked for.
    pub opened: Timestamp,
}

/// A job the team finished, with how it went for the customer.
#[derive(Debug, Clone, Copy)]
pub struct Finished {
    /// The job.
    pub job: Job,
    /// When it was done.
    pub at: Timestamp,
    /// How well it went for the customer, 0–1: its wait, and whether it was rushed.
    pub quality: f64,
}

struct Current {
    job: Job,
    ends: Timestamp,
    quality: f64,
}

/// What the team did, for the summary and the charts.
#[derive(Debug, Default)]
pub struct Work {
    /// Wait of every started job, in days.
    pub waits_days: Vec<f64>,
    /// Jobs started while the backlog was over the capacity line.
    pub rushed: u64,
    /// Staff hours worked as overtime.
    pub overtime_hours: f64,
    /// Staff hours spent answering customers who chased their overdue jobs.
    pub chase_hours: f64,
    /// Each started job: start, end, and the pace worked relative to normal hours
    /// (above 1 with overtime), for the utilisation chart.
    pub busy: Vec<(Timestamp, Timestamp, f64)>,
}

/// The team, its queue and the job in hand.
pub struct Team {
    service: SignedDuration,
    waiting: VecDeque<Job>,
    current: Option<Current>,
    line: f64,
    rework: f64,
    overtime: f64,
    job_hours: f64,
    chase_hours: f64,
    wait_penalty: f64,
    tolerance_secs: f64,
    /// What it did so far.
    pub work: Work,
}

impl Team {
    /// A team completing `capacity_per_week` jobs a week at normal pace, rushing above
    /// `line` work items open.
    pub fn new(scenario: &Scenario, capacity_per_week: f64, line: f64) -> Team {
        let congestion = &scenario.congestion;
        Team {
            service: SignedDuration::from_secs_f64(7.0 * 86_400.0 / capacity_per_week),
            waiting: VecDeque::new(),
            current: None,
            line,
            rework: congestion.rework,
            overtime: congestion.overtime,
            job_hours: scenario.business.job_hours,
            chase_hours: congestion.chase_hours,
            wait_penalty: congestion.wait_penalty,
            tolerance_secs: scenario.business.wait_tolerance.as_secs() as f64,
            work: Work::default(),
        }
    }

    /// Work items open: waiting or in hand.
    pub fn backlog(&self) -> u32 {
        u32::try_from(self.waiting.len() + usize::from(self.current.is_some())).unwrap_or(u32::MAX)
    }

    /// When the job in hand will be done.
    pub fn next_finish(&self) -> Option<Timestamp> {
        self.current.as_ref().map(|c| c.ends)
    }

    /// A new job: started at once if the team is free, else queued.
    pub fn open(&mut self, job: Job, at: Timestamp) {
        if self.current.is_none() {
            self.start(job, at);
        } else {
            self.waiting.push_back(job);
        }
    }

    /// Takes job `id` out of the queue, if it is still waiting (a started job is not
    /// cancelled).
    pub fn cancel(&mut self, id: u64) -> Option<Job> {
        let at = self.waiting.iter().position(|j| j.id == id)?;
        self.waiting.remove(at)
    }

    /// Completes the job in hand and starts the next one waiting.
    pub fn finish(&mut self) -> Option<Finished> {
        let current = self.current.take()?;
        if let Some(next) = self.waiting.pop_front() {
            self.start(next, current.ends);
        }
        Some(Finished {
            job: current.job,
            at: current.ends,
            quality: current.quality,
        })
    }

    fn start(&mut self, job: Job, at: Timestamp) {
        let wait = at.duration_since(job.opened).as_secs_f64().max(0.0);
        self.work.waits_days.push(wait / 86_400.0);
        // Waits within tolerance satisfy; beyond it each further tolerance's worth of
        // waiting costs `wait_penalty` of the satisfaction.
        let tolerance = self.tolerance_secs.max(1.0);
        let past = (wait - tolerance).max(0.0) / tolerance;
        let mut quality = (1.0 - self.wait_penalty * past).max(0.0);
        // Customers kept waiting past their tolerance chase the team (calls, apologies,
        // rescheduling): hours out of its week that no job gets.
        let overdue = self
            .waiting
            .iter()
            .filter(|j| at.duration_since(j.opened).as_secs_f64() > tolerance)
            .count();
        let week_hours = self.job_hours * 7.0 * 86_400.0 / self.service.as_secs_f64().max(1.0);
        let chased = (overdue as f64 * self.chase_hours).min(0.75 * week_hours);
        let mut time = if week_hours > 0.0 {
            week_hours / (week_hours - chased)
        } else {
            1.0
        };
        // Over the line the team rushes: the job needs rework (more time) and the
        // customer notices; overtime buys back speed.
        let rushed = f64::from(self.backlog() + 1) > self.line;
        let mut pace = 1.0;
        if rushed {
            self.work.rushed += 1;
            time *= 1.0 + self.rework;
            quality *= 1.0 - self.rework;
            pace = 1.0 + self.overtime;
            self.work.overtime_hours += self.job_hours * time * self.overtime / pace;
        }
        let length = SignedDuration::from_secs_f64(self.service.as_secs_f64() * time / pace);
        self.work.chase_hours += chased * length.as_secs_f64() / (7.0 * 86_400.0);
        let ends = at.saturating_add(length).unwrap_or(at);
        self.work.busy.push((at, ends, pace));
        self.current = Some(Current { job, ends, quality });
    }
}
