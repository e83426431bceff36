//! Capacity: how much work the business can take on, and how likely an offer is to
//! create some.

use super::PacerError;
use crate::duration::Duration;

const WEEK_SECS: f64 = 604_800.0;

/// The business's capacity and the work already committed against it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CapacityState {
    /// Work items the business can take on each week.
    pub per_week: f64,
    /// Share of capacity outreach may fill, in `(0, 1]`.
    pub target_utilization: f64,
    /// How far ahead expected work counts against capacity.
    pub horizon: Duration,
    /// Work items open now.
    pub open_work: f64,
    /// Expected work from offers already sent and still inside their attribution
    /// window: the sum of their probabilities.
    pub expected_in_flight: f64,
    /// The longest new work should wait for the team: offers are held while the work
    /// open or expected would take the team longer than this to reach. `None`: only the
    /// share of capacity over the horizon bounds them.
    #[serde(default)]
    pub max_wait: Option<Duration>,
}

impl CapacityState {
    /// The most work that may be open or expected at once:
    /// `target_utilization × per_week × horizon in weeks`, and with `max_wait` set, no
    /// more than the team reaches within it (`per_week × max_wait in weeks`).
    pub fn limit(&self) -> f64 {
        let share =
            self.target_utilization * self.per_week * (self.horizon.as_secs() as f64 / WEEK_SECS);
        match self.max_wait {
            Some(wait) => share.min(self.per_week * (wait.as_secs() as f64 / WEEK_SECS)),
            None => share,
        }
    }

    /// How long new work would wait now before the team reaches it, in days: the work
    /// open or expected ahead of it, at `per_week`; `None` when the team serves none.
    pub fn predicted_wait_days(&self) -> Option<f64> {
        (self.per_week > 0.0).then(|| self.load() / self.per_week * 7.0)
    }

    /// Work already open or expected.
    pub fn load(&self) -> f64 {
        self.open_work + self.expected_in_flight
    }

    /// Rejects negative, non-finite or out-of-range values.
    pub fn validate(&self) -> Result<(), PacerError> {
        let ok = self.per_week.is_finite()
            && self.per_week >= 0.0
            && self.target_utilization.is_finite()
            && self.target_utilization > 0.0
            && self.target_utilization <= 1.0
            && self.open_work.is_finite()
            && self.open_work >= 0.0
            && self.expected_in_flight.is_finite()
            && self.expected_in_flight >= 0.0;
        if ok {
            Ok(())
        } else {
            Err(PacerError::InvalidCapacity(format!("{self:?}")))
        }
    }
}

/// Capacity as `GET /api/pace` shows it after a batch.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct CapacityStatus {
    /// The most work that may be open or expected at once.
    pub limit: f64,
    /// Work items open now.
    pub open_work: f64,
    /// Expected work from offers in flight before this batch.
    pub expected_in_flight: f64,
    /// Expected work from the offers this batch admitted.
    pub admitted: f64,
}

/// A Beta distribution over an offer step's response probability: a prior from config,
/// updated by what the step's sends produced.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BetaPosterior {
    /// Pseudo-count of responses.
    pub alpha: f64,
    /// Pseudo-count of non-responses.
    pub beta: f64,
}

impl BetaPosterior {
    /// A prior with mean `probability` worth `strength` observations.
    pub fn from_prior(probability: f64, strength: f64) -> Result<Self, PacerError> {
        if !(0.0..=1.0).contains(&probability) || !strength.is_finite() || strength <= 0.0 {
            return Err(PacerError::InvalidPrior {
                probability,
                strength,
            });
        }
        Ok(BetaPosterior {
            alpha: probability * strength,
            beta: (1.0 - probability) * strength,
        })
    }

    /// The posterior after `responses` sends that turned into work and `non_responses`
    /// whose attribution window closed without any.
    pub fn observe(self, responses: u64, non_responses: u64) -> Self {
        BetaPosterior {
            alpha: self.alpha + responses as f64,
            beta: self.beta + non_responses as f64,
        }
    }

    /// The expected probability, used as the offer's probability.
    pub fn mean(&self) -> f64 {
        self.alpha / (self.alpha + self.beta)
    }
}

/// How long responses to one offer step take, learned from the delays observed between
/// an offer and the work it brought, starting from a prior mean.
///
/// Delays are modelled as exponential with the learned mean: most responses come soon
/// after the offer, and an offer that has stayed unanswered several mean delays is
/// unlikely to bring work any more, so it stops holding room.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ResponseDelays {
    /// Mean delay from an offer to its response, in days.
    pub mean_days: f64,
    /// Responses whose delay was observed.
    pub observed: u64,
}

impl ResponseDelays {
    /// The mean from `prior_days` worth `prior_strength` observations, updated by
    /// `observed` delays summing to `sum_days`.
    pub fn learned(prior_days: f64, prior_strength: f64, observed: u64, sum_days: f64) -> Self {
        let weight = prior_strength.max(0.0);
        let n = observed as f64;
        let mean = if weight + n > 0.0 {
            (prior_days.max(0.0) * weight + sum_days.max(0.0)) / (weight + n)
        } else {
            prior_days
        };
        ResponseDelays {
            // A floor of a minute keeps a step whose answers all came at once from
            // dividing by zero.
            mean_days: mean.max(1.0 / 1440.0),
            observed,
        }
    }

    /// The share of responses still to come after `age_days`.
    pub fn still_to_come(&self, age_days: f64) -> f64 {
        (-age_days.max(0.0) / self.mean_days).exp()
    }

    /// The chance that an offer which would bring work with `probability` does so,
    /// given that it is `age_days` old and unanswered (Bayes: responders who have not
    /// answered yet, over everyone who has not).
    pub fn remaining(&self, probability: f64, age_days: f64) -> f64 {
        let p = probability.clamp(0.0, 1.0);
        let later = p * self.still_to_come(age_days);
        let quiet = 1.0 - p + later;
        if quiet <= 0.0 { p } else { later / quiet }
    }
}
