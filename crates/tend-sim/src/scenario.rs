//! `scenario.toml`: the population, the business and the comparison to simulate. Every
//! key has a default except the arrival rate, so a scenario can stay short.

use jiff::civil::Date;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use tend_core::Duration;

/// A scenario file that cannot be used, with where the problem is.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The scenario file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has a wrong key or value.
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        /// The scenario file.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
}

/// A whole scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Shown in reports; defaults to the file stem.
    #[serde(default)]
    pub name: Option<String>,
    /// The Tend project whose `tend.toml` and processes the engine runs, relative to
    /// the scenario file; defaults to the scenario's own folder.
    #[serde(default)]
    pub project: Option<PathBuf>,
    /// Time span, seed and step.
    #[serde(default)]
    pub simulation: Simulation,
    /// The people.
    #[serde(default)]
    pub population: Population,
    /// The business serving them.
    #[serde(default)]
    pub business: BusinessModel,
    /// What overload costs the business.
    #[serde(default)]
    pub congestion: Congestion,
    /// How the `campaign` strategy bursts.
    #[serde(default)]
    pub campaign: CampaignModel,
}

/// Time span, seed and step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Simulation {
    /// First simulated day, in the business's time zone.
    #[serde(deserialize_with = "date_or_text")]
    pub start: Date,
    /// Days simulated.
    pub days: u32,
    /// Random seed; the same seed gives the same result.
    pub seed: u64,
    /// Shortest jump of the virtual clock: work due within one step is handled together.
    pub step: Duration,
}

impl Default for Simulation {
    fn default() -> Self {
        Simulation {
            start: jiff::civil::date(2027, 1, 4),
            days: 365,
            seed: 1,
            step: Duration::from_secs(3_600),
        }
    }
}

/// Leads: how many come, how their interest moves, how they answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Population {
    /// Leads already in the pipeline on the first day.
    pub initial_leads: u32,
    /// New leads per week, on average.
    pub leads_per_week: f64,
    /// Twelve multipliers of the arrival rate, January to December.
    pub seasonality: Option<Vec<f64>>,
    /// The event a new lead sends (it should move them to the stage that enrolls them).
    pub arrival_event: String,
    /// Time zone of the leads; defaults to the business's.
    pub timezone: Option<String>,
    /// Mean interest of a new lead, 0–1.
    pub initial_interest: f64,
    /// Interest halves in this time without a touch.
    pub interest_half_life: Duration,
    /// Share of the missing interest a nurture touch adds.
    pub nurture_lift: f64,
    /// Share of the missing interest an offer adds.
    pub offer_lift: f64,
    /// Chance that a fully interested lead accepts an offer; it scales with interest².
    pub take_up: f64,
    /// How much more a call (a task) persuades than an email.
    pub call_weight: f64,
    /// Share of interest kept by a lead left untouched past `max_gap`.
    pub neglect_keeps: f64,
    /// Chance that one email makes someone unsubscribe, times their touches in the
    /// last 7 days (fatigue).
    pub unsubscribe_rate: f64,
    /// Repeat work a satisfied customer brings per year, on their own.
    pub repeat_per_year: f64,
    /// Chance that an offer to a satisfied customer brings repeat work.
    pub repeat_take_up: f64,
    /// New leads a completed job brings by word of mouth, at full satisfaction.
    pub referrals_per_job: f64,
    /// How much of a new lead's take-up rides on the public reputation: at reputation
    /// r, take-up is scaled by `1 - weight + weight × r`.
    pub reputation_weight: f64,
    /// The reputation is the mean quality of the jobs finished or cancelled this
    /// recently.
    pub reputation_window: Duration,
    /// Median time between an email offer and the answer to it.
    pub response_delay: Duration,
    /// Spread of those delays: the standard deviation of their logarithm.
    pub response_spread: f64,
    /// Chance that a lead left past `max_gap` has gone to a competitor.
    pub lost_when_neglected: f64,
    /// Touches in a week a lead accepts without feeling pressed.
    pub pressure_free_per_week: u32,
    /// Chance, per touch beyond those in the past week, that a lead goes elsewhere.
    pub lost_per_pressing_touch: f64,
}

impl Default for Population {
    fn default() -> Self {
        Population {
            initial_leads: 0,
            leads_per_week: 10.0,
            seasonality: None,
            arrival_event: "Inquiry Received".into(),
            timezone: None,
            initial_interest: 0.2,
            interest_half_life: Duration::from_secs(30 * 86_400),
            nurture_lift: 0.12,
            offer_lift: 0.06,
            take_up: 0.5,
            call_weight: 1.5,
            neglect_keeps: 0.5,
            unsubscribe_rate: 0.002,
            repeat_per_year: 0.3,
            repeat_take_up: 0.05,
            referrals_per_job: 0.1,
            reputation_weight: 1.0,
            reputation_window: Duration::from_secs(30 * 86_400),
            response_delay: Duration::from_secs(2 * 86_400),
            response_spread: 1.0,
            lost_when_neglected: 0.2,
            pressure_free_per_week: 2,
            lost_per_pressing_touch: 0.01,
        }
    }
}

/// The business: how much work it serves and what things cost.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BusinessModel {
    /// Work items the team completes per week; defaults to `[capacity] per_week`.
    pub capacity_per_week: Option<f64>,
    /// Revenue of one work item.
    pub job_value: f64,
    /// Cost of one hour of staff time spent on tasks.
    pub staff_cost_per_hour: f64,
    /// Staff hours one job takes, for the cost of overtime.
    pub job_hours: f64,
    /// Waits up to this long keep customers satisfied; longer ones lower satisfaction.
    pub wait_tolerance: Duration,
    /// The event a lead who accepts an offer sends (it should make them a customer).
    pub conversion_event: String,
    /// The task outcome recorded when a call books work.
    pub booked_outcome: String,
    /// A day is over capacity when the work open exceeds this much of the team's
    /// capacity (`capacity_per_week` × weeks): one line for every strategy.
    pub capacity_line: Duration,
    /// Written beside money in the reports (`EUR`, `$`).
    pub currency: String,
}

impl Default for BusinessModel {
    fn default() -> Self {
        BusinessModel {
            capacity_per_week: None,
            job_value: 1_000.0,
            staff_cost_per_hour: 30.0,
            job_hours: 16.0,
            wait_tolerance: Duration::from_secs(14 * 86_400),
            conversion_event: "Order Completed".into(),
            booked_outcome: "booked".into(),
            capacity_line: Duration::from_secs(14 * 86_400),
            currency: String::new(),
        }
    }
}

/// What overload costs: cancelled jobs, rushed work and overtime. Each mechanism is
/// off at 0.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Congestion {
    /// How fast a waiting customer's chance of cancelling rises past their
    /// `wait_tolerance`: by this rate per week, every week (zero within tolerance).
    pub cancel_rate: f64,
    /// Share of extra time a job started while the backlog is over the capacity line
    /// takes (rework), and the share of its customer's satisfaction it loses.
    pub rework: f64,
    /// Extra pace the team finds by overtime while over the capacity line.
    pub overtime: f64,
    /// An overtime hour costs this many times `staff_cost_per_hour`.
    pub overtime_premium: f64,
    /// Staff hours a week each customer waiting past `wait_tolerance` takes from the
    /// team by chasing (calls, apologies, rescheduling).
    pub chase_hours: f64,
    /// Share of a customer's satisfaction with a job lost for each `wait_tolerance`
    /// they waited past it.
    pub wait_penalty: f64,
}

impl Default for Congestion {
    fn default() -> Self {
        Congestion {
            cancel_rate: 0.25,
            rework: 0.1,
            overtime: 0.2,
            overtime_premium: 1.5,
            chase_hours: 0.5,
            wait_penalty: 0.5,
        }
    }
}

impl Congestion {
    /// No consequence of overload at all: the model before congestion had a cost.
    pub fn off() -> Congestion {
        Congestion {
            cancel_rate: 0.0,
            rework: 0.0,
            overtime: 0.0,
            overtime_premium: 1.5,
            chase_hours: 0.0,
            wait_penalty: 0.0,
        }
    }
}

/// When the `campaign` strategy sends.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CampaignModel {
    /// How often it looks at the backlog.
    pub every: Duration,
    /// It bursts (a promotion to every open lead, and everything due, at once) when
    /// the backlog is below this share of a week's capacity.
    pub low_backlog: f64,
}

impl Default for CampaignModel {
    fn default() -> Self {
        CampaignModel {
            every: Duration::from_secs(7 * 86_400),
            low_backlog: 0.5,
        }
    }
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Scenario::parse(&path.display().to_string(), &text)
    }

    /// Parses and validates scenario text; `path` names it in errors.
    pub fn parse(path: &str, text: &str) -> Result<Scenario, ScenarioError> {
        let invalid = |offset: usize, message: String| {
            let (line, column) = tend_core::check::line_col(text, offset);
            ScenarioError::Invalid {
                path: path.to_owned(),
                line,
                column,
                message,
            }
        };
        let scenario: Scenario = toml::from_str(text).map_err(|e: toml::de::Error| {
            invalid(e.span().map_or(0, |s| s.start), e.message().to_owned())
        })?;
        if let Some((key, message)) = scenario.problem() {
            return Err(invalid(locate(text, key), format!("`{key}` {message}")));
        }
        Ok(scenario)
    }

    /// The first value that makes no sense, as (dotted key, what is wrong).
    fn problem(&self) -> Option<(&'static str, String)> {
        let p = &self.population;
        let share = |v: f64| (0.0..=1.0).contains(&v);
        let checks: [(&'static str, bool, &str); 20] = [
            (
                "simulation.days",
                self.simulation.days >= 1,
                "must be at least 1",
            ),
            (
                "simulation.step",
                self.simulation.step.as_secs() >= 60,
                "must be at least 1m",
            ),
            (
                "population.leads_per_week",
                p.leads_per_week.is_finite() && p.leads_per_week >= 0.0,
                "must be ≥ 0",
            ),
            (
                "population.seasonality",
                p.seasonality
                    .as_ref()
                    .is_none_or(|s| s.len() == 12 && s.iter().all(|m| m.is_finite() && *m >= 0.0)),
                "must list 12 multipliers ≥ 0, January to December",
            ),
            (
                "population.initial_interest",
                share(p.initial_interest),
                "must be between 0 and 1",
            ),
            (
                "population.interest_half_life",
                p.interest_half_life.as_secs() > 0,
                "must be longer than 0",
            ),
            (
                "population.nurture_lift",
                share(p.nurture_lift) && share(p.offer_lift),
                "and `offer_lift` must be between 0 and 1",
            ),
            (
                "population.take_up",
                share(p.take_up),
                "must be between 0 and 1",
            ),
            (
                "population.call_weight",
                p.call_weight.is_finite() && p.call_weight >= 0.0,
                "must be ≥ 0",
            ),
            (
                "population.neglect_keeps",
                share(p.neglect_keeps) && share(p.unsubscribe_rate) && share(p.repeat_take_up),
                "and the other rates must be between 0 and 1",
            ),
            (
                "population.repeat_per_year",
                p.repeat_per_year >= 0.0 && p.referrals_per_job >= 0.0,
                "and `referrals_per_job` must be ≥ 0",
            ),
            (
                "business.capacity_per_week",
                self.business
                    .capacity_per_week
                    .is_none_or(|c| c.is_finite() && c > 0.0),
                "must be more than 0",
            ),
            (
                "population.reputation_weight",
                share(p.reputation_weight)
                    && share(p.lost_when_neglected)
                    && share(p.lost_per_pressing_touch),
                "and `lost_when_neglected`, `lost_per_pressing_touch` must be between 0 and 1",
            ),
            (
                "population.reputation_window",
                p.reputation_window.as_secs() > 0 && p.response_delay.as_secs() > 0,
                "and `response_delay` must be longer than 0",
            ),
            (
                "population.response_spread",
                p.response_spread.is_finite() && (0.0..=3.0).contains(&p.response_spread),
                "must be between 0 and 3",
            ),
            (
                "business.job_hours",
                self.business.job_hours.is_finite() && self.business.job_hours >= 0.0,
                "must be ≥ 0",
            ),
            (
                "congestion.cancel_rate",
                self.congestion.cancel_rate.is_finite() && self.congestion.cancel_rate >= 0.0,
                "must be ≥ 0",
            ),
            (
                "congestion.rework",
                share(self.congestion.rework)
                    && self.congestion.overtime.is_finite()
                    && self.congestion.overtime >= 0.0
                    && self.congestion.overtime_premium.is_finite()
                    && self.congestion.overtime_premium >= 0.0
                    && self.congestion.chase_hours.is_finite()
                    && self.congestion.chase_hours >= 0.0
                    && self.congestion.wait_penalty.is_finite()
                    && self.congestion.wait_penalty >= 0.0,
                "must be between 0 and 1, and `overtime`, `overtime_premium`, `chase_hours`, \
                 `wait_penalty` ≥ 0",
            ),
            (
                "business.capacity_line",
                self.business.capacity_line.as_secs() > 0,
                "must be longer than 0",
            ),
            (
                "campaign.low_backlog",
                self.campaign.low_backlog >= 0.0 && self.campaign.every.as_secs() >= 3_600,
                "must be ≥ 0 and `campaign.every` at least 1h",
            ),
        ];
        checks
            .into_iter()
            .find(|(_, ok, _)| !ok)
            .map(|(key, _, message)| (key, message.to_owned()))
    }
}

/// A day written as a TOML date (`2027-01-04`) or as text (`"2027-01-04"`).
fn date_or_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Date, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Toml(toml::value::Datetime),
        Text(String),
    }
    let text = match Written::deserialize(d)? {
        Written::Toml(datetime) => datetime.to_string(),
        Written::Text(text) => text,
    };
    text.parse::<Date>().map_err(|_| {
        serde::de::Error::custom(format!("`{text}` is not a day; write it as 2027-01-04"))
    })
}

/// Byte offset of `section.key` in the text, for error positions; 0 when not written.
fn locate(text: &str, dotted: &str) -> usize {
    let (section, key) = dotted.split_once('.').unwrap_or(("", dotted));
    let header = format!("[{section}]");
    let start = text.find(&header).unwrap_or(0);
    let mut offset = start;
    for line in text[start..].split_inclusive('\n') {
        let trimmed = line.trim_start();
        if trimmed
            .strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with('='))
        {
            return offset + (line.len() - trimmed.len());
        }
        offset += line.len();
    }
    start
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_a_short_scenario() {
        let s = Scenario::parse("s.toml", "[population]\nleads_per_week = 5\n").unwrap();
        assert_eq!(s.population.leads_per_week, 5.0);
        assert_eq!(s.simulation.days, 365);
        assert_eq!(s.simulation.step.as_secs(), 3_600);
    }

    #[test]
    fn unknown_key_is_reported_with_its_position() {
        let err = Scenario::parse("s.toml", "[population]\nleads_per_wek = 5\n").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("s.toml:2:1: "), "{text}");
        assert!(text.contains("leads_per_wek"), "{text}");
    }

    #[test]
    fn bad_duration_is_reported_with_its_position() {
        let err = Scenario::parse("s.toml", "[simulation]\nstep = \"3x\"\n").unwrap_err();
        assert!(err.to_string().starts_with("s.toml:2:8: "), "{err}");
    }

    #[test]
    fn out_of_range_value_names_the_key_and_line() {
        let text = "[simulation]\ndays = 10\n[population]\n  take_up = 1.5\n";
        let err = Scenario::parse("s.toml", text).unwrap_err().to_string();
        assert!(err.starts_with("s.toml:4:3: `population.take_up`"), "{err}");
    }

    #[test]
    fn seasonality_needs_twelve_months() {
        let err = Scenario::parse("s.toml", "[population]\nseasonality = [1.0, 2.0]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("12 multipliers"), "{err}");
    }
}
