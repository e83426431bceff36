//! Expected work from offers in flight: each unanswered offer counts its step's learned
//! probability of bringing work, faded evenly over the capacity horizon, or, when
//! `[capacity] response_delay` is set, by how long that step's answers take, so stale
//! offers stop holding room that fresh ones could use.

use serde::Serialize;
use std::collections::HashMap;
use tend_core::pacer::{BetaPosterior, PacerError, ResponseDelays};
use tend_store::{OfferStat, PacingSnapshot};

/// How strongly the configured offer probability is believed, in pseudo-observations.
pub(crate) const PRIOR_STRENGTH: f64 = 10.0;
/// How strongly the configured response delay is believed, in pseudo-observations.
const DELAY_PRIOR_STRENGTH: f64 = 5.0;
/// The prior mean response delay shown in `/api/pace` when none is configured.
const SHOWN_DELAY_PRIOR_DAYS: f64 = 3.0;

/// The chance that an offer step's next offer brings work, as the pacer counts it:
/// the configured `prior` (`[capacity] offer_probability`) updated by `responded`
/// answers out of `sent` offers. A prior outside 0–1 (which `tend check` refuses) is
/// returned as it is.
pub fn learned_probability(prior: f64, sent: u64, responded: u64) -> f64 {
    BetaPosterior::from_prior(prior, PRIOR_STRENGTH).map_or(prior, |posterior| {
        posterior
            .observe(responded, sent.saturating_sub(responded))
            .mean()
    })
}

/// What Tend has learned about one offer step, as `GET /api/pace` shows it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OfferStepView {
    /// The process's id (its file stem).
    pub process: String,
    /// Index of the step in the process.
    pub step: u32,
    /// Offers admitted so far.
    pub sent: u64,
    /// Of which answered with work.
    pub responded: u64,
    /// The probability used for its next offer.
    pub probability: f64,
    /// Mean days from offer to answer: the prior, updated by the delays observed.
    pub mean_response_days: f64,
    /// Answers whose delay was observed.
    pub delays_observed: u64,
    /// Its offers unanswered within the horizon.
    pub in_flight: u64,
    /// The work they are still expected to bring.
    pub expected_work: f64,
}

/// The learned figures of every step with offers, and the work expected from them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Expected {
    /// Probability per `(process id, step)`.
    pub(crate) probabilities: HashMap<(i64, u32), f64>,
    /// Response delays per `(process id, step)`.
    pub(crate) delays: HashMap<(i64, u32), ResponseDelays>,
    /// Unanswered offers and their expected work per `(process id, step)`.
    pub(crate) in_flight: HashMap<(i64, u32), (u64, f64)>,
    /// All of that work.
    pub(crate) total: f64,
}

impl Expected {
    /// Learns from the snapshot's statistics with the configured priors; without a
    /// prior response delay, offers fade evenly over `horizon_days` instead.
    pub(crate) fn learn(
        snapshot: &PacingSnapshot,
        prior_probability: f64,
        prior_delay_days: Option<f64>,
        horizon_days: f64,
    ) -> Result<Self, PacerError> {
        let fade_by_delays = prior_delay_days.is_some();
        let prior_delay_days = prior_delay_days.unwrap_or(SHOWN_DELAY_PRIOR_DAYS);
        // A prior the pacer cannot use is an error here, not a silent fallback.
        BetaPosterior::from_prior(prior_probability, PRIOR_STRENGTH)?;
        let mut expected = Expected::default();
        for s in &snapshot.offer_stats {
            let key = (s.process_id, s.step);
            let OfferStat {
                sent,
                responded,
                delays,
                delay_days_sum,
                ..
            } = *s;
            let probability = learned_probability(prior_probability, sent, responded);
            expected.probabilities.insert(key, probability);
            expected.delays.insert(
                key,
                ResponseDelays::learned(
                    prior_delay_days,
                    DELAY_PRIOR_STRENGTH,
                    delays,
                    delay_days_sum,
                ),
            );
        }
        let prior_delays = ResponseDelays::learned(prior_delay_days, 1.0, 0, 0.0);
        for bucket in &snapshot.in_flight {
            let key = (bucket.process_id, bucket.step);
            if bucket.offers == 0 {
                continue;
            }
            // Offers are grouped in six-hour steps of age: count each at the step's
            // start, erring toward holding room rather than overfilling it.
            let age_days = f64::from(bucket.age_hours) / 24.0;
            let work = if fade_by_delays {
                let delays = expected.delays.get(&key).copied().unwrap_or(prior_delays);
                let mean_probability = bucket.probability / bucket.offers as f64;
                bucket.offers as f64 * delays.remaining(mean_probability, age_days)
            } else {
                bucket.probability * (1.0 - age_days / horizon_days.max(1e-9)).clamp(0.0, 1.0)
            };
            let entry = expected.in_flight.entry(key).or_insert((0, 0.0));
            entry.0 += bucket.offers;
            entry.1 += work;
            expected.total += work;
        }
        if !fade_by_delays {
            // The store's exact even fade, read without grouping by step.
            expected.total = snapshot.expected_in_flight;
        }
        Ok(expected)
    }
}
