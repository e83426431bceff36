//! What every strategy of one seed shares: the population, the project as each
//! strategy runs it, and the facts about the project the model needs.

use crate::outcome::Strategy;
use crate::run::SimError;
use crate::scenario::Scenario;
use crate::world::{self, Arrival};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use std::collections::HashSet;
use tend_core::check::Project;
use tend_core::config::Config;
use tend_core::process::StepChannel;
use tend_core::{Enroll, Intent, StageName, TimeZoneName};

/// Everything the strategies share.
pub(crate) struct Setting {
    pub scenario: Scenario,
    pub project: Project,
    pub arrivals: Vec<Arrival>,
    pub tz: TimeZone,
    pub start: Timestamp,
    pub end: Timestamp,
    pub capacity_per_week: f64,
    /// Work items open above which a day counts as over capacity: the team's own
    /// capacity over `business.capacity_line`, the same line for every strategy.
    pub capacity_line: f64,
    pub lead_timezone: Option<TimeZoneName>,
    pub arrival_stage: Option<StageName>,
    pub conversion_stage: Option<StageName>,
    /// Whether completing a task with `booked_outcome` records the conversion event.
    pub call_books: bool,
    pub offer_templates: HashSet<String>,
    /// The process the `campaign` strategy's blasts enroll every open lead in.
    pub blast: Option<tend_core::Process>,
}

/// The event a campaign blast records for every open lead.
pub(crate) const BLAST_EVENT: &str = "Campaign Sent";

impl Setting {
    /// The setting of `scenario` (whose seed it keeps) on `project`.
    pub fn new(scenario: &Scenario, project: &Project) -> Result<Setting, SimError> {
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
        let line_weeks = business.capacity_line.as_secs() as f64 / (7.0 * 86_400.0);
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
        Ok(Setting {
            arrivals: world::arrivals(scenario, start, end),
            scenario: scenario.clone(),
            project: project.clone(),
            tz,
            start,
            end,
            capacity_per_week,
            capacity_line: capacity_per_week * line_weeks,
            lead_timezone,
            arrival_stage,
            conversion_stage,
            call_books,
            offer_templates,
            blast,
        })
    }

    /// The project as this strategy runs it: the scenario's own for `background`;
    /// with no budget, capacity, frequency or quiet-hour limit for the others.
    pub fn project_for(&self, strategy: Strategy) -> Project {
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
    pub fn day_of(&self, at: Timestamp) -> usize {
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
        then: None,
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
