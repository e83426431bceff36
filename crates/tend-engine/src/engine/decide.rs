//! Deciding: due touches handed to the pacer with what the store has learned, and its
//! decisions recorded.

use super::{Engine, EngineError, MIN_OFFER_PROBABILITY, Zones};
use crate::expected::Expected;
use jiff::{SignedDuration, Timestamp};
use std::collections::HashMap;
use tend_core::pacer::{
    self, BudgetState, CapacityState, ContactState, Decision, DueTouch, PacerInput, PacerOutput,
    ProcessId, Reason, ZoneId, ZoneTable,
};
use tend_core::process::StepChannel;
use tend_core::{ContactId, TimeZoneName};
use tend_store::{DecisionRecord, PacingContact, TouchKind};

impl Engine {
    /// Work closed: offers held back by capacity are looked at again at once, as many as
    /// the room left could admit, the longest-waiting contacts first; the rest wait for
    /// their recheck. Waking them all would make the pacer hold nearly all of them again,
    /// several times a day on a busy team.
    pub(super) async fn wake_held_offers_if_room(&self, now: Timestamp) -> Result<(), EngineError> {
        let snapshot = self
            .store
            .pacing_snapshot(self.in_flight_since(now), now, self.fades_by_step())
            .await?;
        let expected = self.learned(&snapshot)?;
        let capacity = self.capacity_state(&snapshot, &expected);
        let smallest = expected
            .probabilities
            .into_values()
            .fold(self.project.config.capacity.offer_probability, f64::min)
            .max(MIN_OFFER_PROBABILITY);
        let room = capacity.limit() - capacity.load();
        if room < smallest {
            return Ok(());
        }
        let fits = (room / smallest).ceil().min(f64::from(u32::MAX)) as u32;
        let woken = self.store.wake_capacity_held(now, fits).await?;
        tracing::debug!(woken, room, "work closed: held offers looked at again");
        Ok(())
    }

    /// Where offers admitted count as work in flight from: one capacity horizon back.
    fn in_flight_since(&self, now: Timestamp) -> Timestamp {
        let horizon = self.project.config.capacity.horizon;
        now.saturating_sub(SignedDuration::from_millis(horizon.as_millis()))
            .unwrap_or(now)
    }

    /// Whether offers in flight fade by their step's response delays, which needs them
    /// per step from the store.
    pub(crate) fn fades_by_step(&self) -> bool {
        self.project.config.capacity.response_delay.is_some()
    }

    /// What the store's statistics teach: each offer step's probability and response
    /// delays, and the work expected from offers in flight.
    pub(crate) fn learned(
        &self,
        snapshot: &tend_store::PacingSnapshot,
    ) -> Result<Expected, EngineError> {
        let capacity = &self.project.config.capacity;
        let days = |d: tend_core::Duration| d.as_secs() as f64 / 86_400.0;
        Ok(Expected::learn(
            snapshot,
            capacity.offer_probability,
            capacity.response_delay.map(days),
            days(capacity.horizon),
        )?)
    }

    /// Capacity as configured, with the open work the store counts and the work
    /// expected from offers in flight.
    pub(crate) fn capacity_state(
        &self,
        snapshot: &tend_store::PacingSnapshot,
        expected: &Expected,
    ) -> CapacityState {
        let capacity = &self.project.config.capacity;
        CapacityState {
            per_week: capacity.per_week,
            target_utilization: capacity.target_utilization,
            horizon: capacity.horizon,
            open_work: snapshot.open_work,
            expected_in_flight: expected.total,
            max_wait: capacity.max_wait,
        }
    }

    /// Decides one batch of due touches with the pacer and records the decisions.
    /// Returns the number of touches decided.
    pub async fn try_decide(&self) -> Result<usize, EngineError> {
        let now = self.clock.now();
        let batch = self
            .store
            .due_touches(now, self.settings.decide_batch)
            .await?;
        if batch.touches.is_empty() {
            return Ok(0);
        }
        let config = &self.project.config;
        let snapshot = self
            .store
            .pacing_snapshot(self.in_flight_since(now), now, self.fades_by_step())
            .await?;
        let budget: BudgetState = snapshot.budget.clone();
        let expected = self.learned(&snapshot)?;
        let probabilities = &expected.probabilities;

        let contacts: HashMap<ContactId, &PacingContact> =
            batch.contacts.iter().map(|c| (c.id, c)).collect();
        let (states, zones) = self.contact_states(&batch.contacts);

        let mut due = Vec::with_capacity(batch.touches.len());
        let mut records = Vec::with_capacity(batch.touches.len());
        for row in &batch.touches {
            let Some(bound) = self.book.get(row.process_id) else {
                // The process file is gone: its contacts wait until it comes back.
                records.push(DecisionRecord::Defer {
                    touch: row.touch,
                    until: now
                        .saturating_add(SignedDuration::from_hours(24))
                        .unwrap_or(now),
                    reason: Reason::Exited,
                });
                continue;
            };
            let process = &bound.process;
            let step = process.steps.get(row.step as usize);
            let minutes = match step.map(|s| &s.channel) {
                Some(StepChannel::Task { minutes, .. }) => *minutes,
                _ => 0,
            };
            let probability = probabilities
                .get(&(row.process_id, row.step))
                .copied()
                .unwrap_or(config.capacity.offer_probability);
            let after_sequence = self.book.follows_a_sequence(row.process_id);
            due.push(DueTouch {
                touch: row.touch,
                contact: row.contact,
                process: ProcessId(row.process_id),
                step: row.step,
                channel: row.channel,
                intent: row.intent,
                minutes,
                due: row.due_at,
                enrolled_at: row.enrolled_at,
                max_gap: process.max_gap,
                keep_warm: process.keep_warm.is_some(),
                exited: !row.active,
                expected_value: match row.intent {
                    pacer::Intent::Offer => probability,
                    pacer::Intent::Nurture => 0.0,
                },
                offer_probability: probability,
                // A first reply is for a new enrollment by the contact's own doing, not
                // for a hand-over at the end of a sequence.
                first: row.step == 0 && row.kind == TouchKind::Step && !after_sequence,
                after_sequence,
            });
        }
        let capacity = self.capacity_state(&snapshot, &expected);
        let input = PacerInput {
            touches: &due,
            contacts: &states,
            zones: &zones,
            budget: &budget,
            capacity: Some(capacity),
        };
        let PacerOutput {
            decisions,
            budget,
            summary,
        } = pacer::decide(&self.policy, &input, now);

        let mut queued = false;
        for (touch, decided) in due.iter().zip(&decisions) {
            tracing::trace!(
                touch = touch.touch.0,
                contact = touch.contact.0,
                step = touch.step,
                decision = ?decided.decision,
                "decided"
            );
            let probability =
                (touch.intent == pacer::Intent::Offer).then_some(touch.offer_probability);
            records.push(match decided.decision {
                Decision::Send if touch.channel == pacer::Channel::Task => {
                    let contact = contacts.get(&touch.contact).copied();
                    let (title, minutes) = self.task_title(touch, contact);
                    DecisionRecord::OpenTask {
                        touch: touch.touch,
                        title,
                        minutes,
                        due_at: now,
                        probability,
                    }
                }
                Decision::Send => {
                    queued = true;
                    DecisionRecord::Queue {
                        touch: touch.touch,
                        probability,
                    }
                }
                Decision::Defer { until, reason } => DecisionRecord::Defer {
                    touch: touch.touch,
                    until,
                    reason,
                },
                Decision::Substitute { offer_retry_at, .. } => {
                    queued = true;
                    DecisionRecord::Substitute {
                        touch: touch.touch,
                        retry_at: offer_retry_at,
                    }
                }
                Decision::Replace { .. } => {
                    queued = true;
                    DecisionRecord::Replace {
                        touch: touch.touch,
                        next: self.book.next_touch(touch.process.0, touch.step, now),
                    }
                }
                Decision::Skip { reason } => DecisionRecord::Skip {
                    touch: touch.touch,
                    reason,
                    end_enrollment: true,
                },
            });
        }
        self.store.record_decisions(now, &records, &budget).await?;
        self.metrics.decided(&records);
        tracing::debug!(
            sent = summary.sent,
            substituted = summary.substituted,
            deferred = summary.deferred.total(),
            skipped = summary.skipped.total(),
            "decided"
        );
        if queued {
            self.wake_dispatch.notify_waiters();
        }
        Ok(records.len())
    }

    /// The batch's contacts as the pacer sees them: zone interned, and only the recent
    /// touches on channels the limits count.
    fn contact_states(
        &self,
        contacts: &[PacingContact],
    ) -> (HashMap<ContactId, ContactState>, ZoneTable) {
        let limited = self.policy.limited_channels;
        let mut zones = self.zones.lock().unwrap_or_else(|e| e.into_inner());
        let Zones { table, by_name } = &mut *zones;
        let states = contacts
            .iter()
            .map(|c| {
                let zone = match &c.timezone {
                    Some(name) => *by_name.entry(name.clone()).or_insert_with(|| {
                        TimeZoneName::parse(name)
                            .map(|tz| table.intern(&tz))
                            .unwrap_or(ZoneId::BUSINESS)
                    }),
                    None => ZoneId::BUSINESS,
                };
                (
                    c.id,
                    ContactState {
                        suppressed: c.suppressed,
                        zone,
                        last_touch: c.last_touch_at,
                        recent: c
                            .recent
                            .iter()
                            .filter(|(_, channel)| limited.contains(*channel))
                            .map(|(at, _)| *at)
                            .collect(),
                    },
                )
            })
            .collect();
        (states, table.clone())
    }
}
