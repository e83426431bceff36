//! The engine: three units of work — read new signals into enrollments, decide the due
//! touches with the pacer, dispatch admitted ones — each callable on its own so tests
//! and the simulator drive it step by step, and a loop that runs them in `tend serve`.

use crate::book::{self, BoundProcess, ProcessBook};
use crate::clock::Clock;
use crate::delivery::{Delivery, EmailTouch};
use crate::envelope::BounceTokens;
use crate::expected::Expected;
use crate::metrics::Metrics;
use crate::send::SendError;
use crate::unsubscribe::UnsubscribeSigner;
use jiff::{SignedDuration, Timestamp};
use rand::Rng;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;
use tend_core::check::Project;
use tend_core::pacer::{
    self, BudgetState, CapacityState, ContactState, Decision, DueTouch, PacerInput, PacerOutput,
    PacerPolicy, ProcessId, Reason, ZoneId, ZoneTable,
};
use tend_core::process::StepChannel;
use tend_core::template::{BusinessVars, ContactVars, RenderContext, first_name_of, render_text};
use tend_core::{ContactId, StageName, TimeZoneName};
use tend_store::suppression::{AddressKeys, Secret};
use tend_store::{
    ClaimedTouch, Contact, DecisionRecord, DispatchResult, OutcomeEvent, PacingContact,
    ProcessSync, Store, StoreError, TaskEnd, TaskView, TouchKind,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

mod consent;
use consent::catch_panic;
pub use consent::{Unsubscribed, health_fingerprint, instance_id};

/// Engine value holding the install's secret (hex): signs unsubscribe links and keys
/// suppressed addresses.
/// Engine value holding a random id of this installation, part of every Message-ID.
/// Floor of the offer probability used to count how many held offers room could admit,
/// so a step nobody ever answers does not wake every held offer.
const MIN_OFFER_PROBABILITY: f64 = 0.01;

/// What can stop a unit of work.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configuration cannot be paced (a negative budget, say).
    #[error("pacing rules: {0}")]
    Policy(#[from] pacer::PacerError),
    /// A task that does not exist or is not open.
    #[error("task {0} is not open")]
    TaskNotOpen(i64),
    /// A task that does not exist.
    #[error("no task {0}")]
    NoSuchTask(i64),
    /// A task outcome that `[tasks.outcomes]` does not list; nothing was completed.
    #[error("unknown outcome `{given}`: the configured outcomes are {}", known.join(", "))]
    UnknownOutcome {
        /// What was given.
        given: String,
        /// What `[tasks.outcomes]` lists.
        known: Vec<String>,
    },
}

/// Tuning knobs; the defaults suit `tend serve`.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Due touches handed to the pacer at once.
    pub decide_batch: u32,
    /// Stage changes and events read at once.
    pub signal_batch: u32,
    /// Sends in flight at once.
    pub dispatch_workers: usize,
    /// How long a claimed send stays leased to its dispatcher.
    pub lease: StdDuration,
    /// First retry delay after a temporary failure; doubles per attempt.
    pub retry_base: StdDuration,
    /// Longest retry delay.
    pub retry_max: StdDuration,
    /// How long the loop sleeps when nothing wakes it.
    pub idle_tick: StdDuration,
}

impl EngineSettings {
    /// The defaults, with `[dispatch]` from `tend.toml`.
    pub fn from_config(config: &tend_core::config::Config) -> Self {
        let d = &config.dispatch;
        EngineSettings {
            dispatch_workers: d.workers as usize,
            lease: StdDuration::from_secs(d.lease.as_secs()),
            retry_base: StdDuration::from_secs(d.retry_after.as_secs()),
            retry_max: StdDuration::from_secs(d.retry_max.as_secs()),
            ..EngineSettings::default()
        }
    }
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            decide_batch: 1_000,
            signal_batch: 5_000,
            dispatch_workers: 8,
            lease: StdDuration::from_secs(120),
            retry_base: StdDuration::from_secs(30),
            retry_max: StdDuration::from_secs(3_600),
            idle_tick: StdDuration::from_secs(1),
        }
    }
}

/// What syncing the process files with the database found, for the log at start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Processes seen for the first time, with the contacts enrolled from their stage.
    pub added: Vec<(String, u64)>,
    /// `process: step key` for every step removed from a file since the last start.
    pub removed_steps: Vec<String>,
    /// Contacts moved to another step because of an edit.
    pub moved: u64,
    /// Contacts whose process ended because its remaining steps were removed.
    pub completed: u64,
    /// Processes in the database with no file any more; their contacts wait, untouched.
    pub missing: Vec<String>,
}

/// The always-on engine.
pub struct Engine {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    project: Arc<Project>,
    book: ProcessBook,
    policy: PacerPolicy,
    delivery: Arc<dyn Delivery>,
    signer: UnsubscribeSigner,
    bounce: BounceTokens,
    keys: AddressKeys,
    settings: EngineSettings,
    zones: Mutex<Zones>,
    /// Email touches of erased contacts that were being sent when the erasure ran: the
    /// copy their send writes is deleted when it ends.
    erased_in_flight: Mutex<std::collections::HashSet<i64>>,
    wake_decide: Notify,
    wake_dispatch: Notify,
    metrics: Arc<Metrics>,
}

#[derive(Default)]
struct Zones {
    table: ZoneTable,
    by_name: HashMap<String, ZoneId>,
}

impl Engine {
    /// Loads the processes into the store (moving contacts off edited steps, enrolling a
    /// new process's stage), makes abandoned leases claimable again, and returns the
    /// engine with what the sync found.
    pub async fn start(
        store: Arc<dyn Store>,
        project: Arc<Project>,
        clock: Arc<dyn Clock>,
        delivery: Arc<dyn Delivery>,
        settings: EngineSettings,
    ) -> Result<(Engine, SyncReport), EngineError> {
        let policy = project.config.pacer_policy()?;
        let now = clock.now();
        // Before the sync: a first start must not replay the stage changes that the
        // sync's backfill already turns into enrollments.
        store.start_signal_cursor().await?;
        let (book, report) = sync_processes(store.as_ref(), &project, now).await?;
        let secret = store.secret(Secret::Signing).await?;
        let signer = UnsubscribeSigner::new(&secret);
        let bounce = BounceTokens::new(&secret);
        let keys = AddressKeys::new(&secret);
        // One engine per database: any lease still held belongs to a run that stopped.
        store.release_all_claims(now).await?;
        Ok((
            Engine {
                store,
                clock,
                project,
                book,
                policy,
                delivery,
                signer,
                bounce,
                keys,
                settings,
                zones: Mutex::new(Zones::default()),
                erased_in_flight: Mutex::default(),
                wake_decide: Notify::new(),
                wake_dispatch: Notify::new(),
                metrics: Arc::default(),
            },
            report,
        ))
    }

    /// What the engine counted, shared with the HTTP layer.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The store the engine works on.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The engine's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The processes the engine runs.
    pub fn book(&self) -> &ProcessBook {
        &self.book
    }

    /// The project the engine was started with.
    pub fn project(&self) -> &Arc<Project> {
        &self.project
    }

    /// The pacing rules in force.
    pub fn policy(&self) -> &PacerPolicy {
        &self.policy
    }

    /// Signs and checks unsubscribe tokens.
    pub fn signer(&self) -> &UnsubscribeSigner {
        &self.signer
    }

    /// Makes and checks the touch tokens of envelope senders.
    pub fn bounce_tokens(&self) -> &BounceTokens {
        &self.bounce
    }

    /// Keys addresses for suppression, as the store does.
    pub fn address_keys(&self) -> &AddressKeys {
        &self.keys
    }

    /// Asks the loop to look for new signals and due touches now (after an ingest).
    pub fn wake(&self) {
        self.wake_decide.notify_one();
    }

    /// Reads one batch of new stage changes and events and applies what they mean to
    /// enrollments and open work. Returns how many signals it read.
    pub async fn try_enroll(&self) -> Result<usize, EngineError> {
        let config = &self.project.config;
        let from = self.store.signal_cursor().await?;
        let names = self.book.event_names(config);
        let batch = self
            .store
            .read_signals(from, &names, self.settings.signal_batch)
            .await?;
        if batch.next == from {
            return Ok(0);
        }
        let now = self.clock.now();
        let window = SignedDuration::from_millis(config.capacity.horizon.as_millis());
        let actions = self.book.actions(config, &batch.signals, now, window);
        let outcome = self
            .store
            .apply_signals(from, batch.next, &actions, now)
            .await?;
        if outcome.enrolled > 0 || outcome.exited > 0 {
            tracing::debug!(
                enrolled = outcome.enrolled,
                exited = outcome.exited,
                "applied signals"
            );
        }
        if outcome.work_closed > 0 {
            self.wake_held_offers_if_room(now).await?;
        }
        // A cursor that moved over filtered-out events still counts as progress.
        Ok(batch.signals.len().max(1))
    }

    /// Work closed: offers held back by capacity are looked at again at once, as many as
    /// the room left could admit, the longest-waiting contacts first; the rest wait for
    /// their recheck. Waking them all would make the pacer hold nearly all of them again,
    /// several times a day on a busy team.
    async fn wake_held_offers_if_room(&self, now: Timestamp) -> Result<(), EngineError> {
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

    /// Claims up to `limit` admitted touches, sends them one after the other and
    /// records their results in one write. Returns how many it claimed.
    pub async fn try_dispatch(&self, limit: u32) -> Result<usize, EngineError> {
        let now = self.clock.now();
        let claimed = self
            .store
            .claim_dispatch(now, self.lease_ms(), limit)
            .await?;
        if claimed.is_empty() {
            return Ok(0);
        }
        let mut finished = Vec::with_capacity(claimed.len());
        for touch in &claimed {
            finished.push(self.send(touch).await);
        }
        // Claiming none: this only records. Until it does, the sends stay leased, so a
        // crash in between repeats at most this batch.
        self.store
            .finish_and_claim(&finished, self.clock.now(), self.lease_ms(), 0)
            .await?;
        Ok(claimed.len())
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.settings.lease.as_millis()).unwrap_or(i64::MAX)
    }

    /// Sends one claimed touch and says how it ended, ready to record.
    async fn send(&self, touch: &ClaimedTouch) -> (pacer::TouchId, Timestamp, DispatchResult) {
        // A panic in a channel must not lose the send: it is logged and retried with
        // backoff like any temporary failure.
        let started = std::time::Instant::now();
        let result = match catch_panic(self.dispatch_one(touch)).await {
            Ok(result) => result,
            Err(panic) => {
                let logged = crate::redact::without_addresses(&panic.to_string());
                tracing::error!(touch = touch.touch.0, panic = %logged, "the send panicked; trying again later");
                Err((
                    SendError::Retryable(format!("the send panicked: {panic}")),
                    None,
                ))
            }
        };
        let at = self.clock.now();
        let result = match result {
            Ok(next) => DispatchResult::Delivered { next },
            Err((SendError::Retryable(error), _)) => DispatchResult::Retry {
                retry_at: self.retry_at(at, touch.attempts),
                error,
            },
            Err((SendError::Fatal(error), next)) => DispatchResult::Failed { error, next },
            Err((SendError::Bounced(error), _)) => DispatchResult::Bounced { error },
        };
        self.metrics.delivered(
            &touch.channel.to_string(),
            crate::metrics::outcome(&result),
            started.elapsed(),
        );
        self.forget_if_erased(touch).await;
        if let DispatchResult::Retry { error, .. } | DispatchResult::Failed { error, .. } = &result
        {
            let error = crate::redact::without_addresses(error);
            tracing::warn!(touch = touch.touch.0, attempts = touch.attempts, %error, "send failed");
        }
        (touch.touch, at, result)
    }

    /// Runs every unit of work until none has anything left to do at the clock's
    /// current time; for tests and the simulator.
    pub async fn run_until_idle(&self) -> Result<(), EngineError> {
        while self.try_enroll().await? > 0 {}
        // Deciding and sending make no new signals, so only they repeat: a sent step
        // can make the next one due at once.
        loop {
            let mut worked = false;
            while self.try_decide().await? > 0 {
                worked = true;
            }
            while self.try_dispatch(256).await? > 0 {
                worked = true;
            }
            if !worked {
                return Ok(());
            }
        }
    }

    /// The loop `tend serve` runs: one leader reading signals and deciding every
    /// second or when woken, and `dispatch_workers` senders. Returns after `shutdown`
    /// once in-flight sends have finished and been recorded.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let sender = tokio::spawn(Arc::clone(&self).dispatch_loop(shutdown.clone()));
        loop {
            if let Err(error) = self.leader_pass().await {
                tracing::error!(%error, "engine pass failed; retrying");
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake_decide.notified() => {},
                () = tokio::time::sleep(self.settings.idle_tick) => {},
            }
        }
        if let Err(error) = sender.await {
            tracing::error!(%error, "the dispatcher stopped abnormally");
        }
        tracing::info!("engine stopped");
    }

    async fn leader_pass(&self) -> Result<(), EngineError> {
        let started = std::time::Instant::now();
        while self.try_enroll().await? > 0 {}
        while self.try_decide().await? > 0 {}
        self.metrics.ticked(started.elapsed());
        Ok(())
    }

    /// Keeps up to `dispatch_workers` sends in flight. Results are recorded in the same
    /// transaction that claims the next touches, so a busy dispatcher spends one write
    /// per round instead of two per send; a crash can still repeat only what was
    /// claimed, which is never more than the sends in flight.
    async fn dispatch_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let workers = self.settings.dispatch_workers.max(1);
        let mut in_flight = tokio::task::JoinSet::new();
        let mut finished = Vec::new();
        loop {
            let room = if shutdown.is_cancelled() {
                0
            } else {
                workers - in_flight.len()
            };
            if room > 0 || !finished.is_empty() {
                let now = self.clock.now();
                match self
                    .store
                    .finish_and_claim(&finished, now, self.lease_ms(), room as u32)
                    .await
                {
                    Ok(claimed) => {
                        finished.clear();
                        for touch in claimed {
                            let engine = Arc::clone(&self);
                            in_flight.spawn(async move { engine.send(&touch).await });
                        }
                    }
                    // Unrecorded results keep their leases: retried once the store
                    // answers again, or given back at the next start.
                    Err(error) if shutdown.is_cancelled() && in_flight.is_empty() => {
                        tracing::error!(%error, "recording the last sends failed at shutdown");
                        break;
                    }
                    Err(error) => tracing::error!(%error, "recording sends failed; retrying"),
                }
            }
            if in_flight.is_empty() {
                if shutdown.is_cancelled() && finished.is_empty() {
                    break;
                }
                tokio::select! {
                    () = shutdown.cancelled() => {},
                    () = self.wake_dispatch.notified() => {},
                    () = tokio::time::sleep(self.settings.idle_tick) => {},
                }
                continue;
            }
            if let Some(done) = in_flight.join_next().await {
                finished.extend(done.ok());
            }
            while let Some(done) = in_flight.try_join_next() {
                finished.extend(done.ok());
            }
        }
    }

    /// Completes or skips an open task, moves its enrollment on, and records the
    /// outcome's event (per `[tasks.outcomes]`) for the contact, in one transaction.
    /// Outcomes match the configured ones whatever their case; when some are configured,
    /// any other is refused and nothing is written.
    pub async fn finish_task(&self, id: i64, end: TaskEnd) -> Result<TaskView, EngineError> {
        let touch = pacer::TouchId(id);
        let Some(task) = self.store.task(touch).await? else {
            return Err(EngineError::NoSuchTask(id));
        };
        if task.state != "open" {
            return Err(EngineError::TaskNotOpen(id));
        }
        let outcomes = &self.project.config.tasks.outcomes;
        let (end, event_name) = match end {
            TaskEnd::Done { outcome, note } if !outcomes.is_empty() => {
                let Some((known, event)) = outcomes
                    .iter()
                    .find(|(known, _)| known.to_lowercase() == outcome.trim().to_lowercase())
                else {
                    return Err(EngineError::UnknownOutcome {
                        given: outcome,
                        known: outcomes.keys().cloned().collect(),
                    });
                };
                let end = TaskEnd::Done {
                    outcome: known.clone(),
                    note,
                };
                (end, Some(event.as_str()))
            }
            other => (other, None),
        };
        let now = self.clock.now();
        let next = self
            .book
            .iter()
            .find(|b| b.process.id == task.process)
            .and_then(|b| self.book.next_touch(b.id, task.step, now));
        let stage = event_name.and_then(|event| self.project.config.stage_for_event(event));
        let event = match (&end, event_name) {
            (TaskEnd::Done { outcome, .. }, Some(name)) => Some(OutcomeEvent {
                name,
                message_id: format!("tend-task-{id}"),
                properties: serde_json::json!({ "task": id, "outcome": outcome }),
                stage,
            }),
            _ => None,
        };
        if !self
            .store
            .finish_task(touch, now, &end, next, event.as_ref())
            .await?
        {
            return Err(EngineError::TaskNotOpen(id));
        }
        self.wake_decide.notify_one();
        self.store
            .task(touch)
            .await?
            .ok_or(EngineError::NoSuchTask(id))
    }

    /// Suppresses a contact for good (an unsubscribe): its enrollments end and nothing
    /// planned for it is sent. Returns `false` if there is no such contact.
    pub async fn unsubscribe(&self, contact: ContactId) -> Result<bool, EngineError> {
        Ok(self
            .store
            .suppress_contact(contact, "unsubscribed", self.clock.now())
            .await?)
    }

    fn retry_at(&self, at: Timestamp, attempts: u32) -> Timestamp {
        let base = self.settings.retry_base.as_millis() as f64;
        let max = self.settings.retry_max.as_millis() as f64;
        let exponent = attempts.saturating_sub(1).min(30) as i32;
        let delay = (base * 2f64.powi(exponent)).min(max);
        // Jitter spreads retries of a burst that failed together (an SMTP outage).
        let jitter = rand::rng().random_range(0.8..=1.2);
        let delay = SignedDuration::from_millis((delay * jitter) as i64);
        at.saturating_add(delay).unwrap_or(at)
    }

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

    fn render_context(&self, contact: &ContactFields<'_>) -> serde_json::Value {
        let config = &self.project.config;
        RenderContext {
            contact: ContactVars {
                id: contact.id.0,
                email: contact.email.unwrap_or_default().to_owned(),
                name: contact.name.map(str::to_owned),
                first_name: contact.name.and_then(first_name_of),
                timezone: contact.timezone.map(str::to_owned),
                stage: contact.stage.as_str().to_owned(),
                attributes: serde_json::Value::Object(contact.attributes.clone()),
            },
            business: BusinessVars {
                name: config.business.name.clone(),
                timezone: config.business.timezone.as_str().to_owned(),
            },
            unsubscribe_url: contact
                .email
                .map(|email| self.unsubscribe_url(email))
                .unwrap_or_default(),
        }
        .to_value()
    }

    /// A task step's title rendered for a contact and its minutes, as the agenda will
    /// show them once the task falls due; `None` if that step is not a task.
    pub fn task_title_for(
        &self,
        process_id: i64,
        step: u32,
        contact: &Contact,
    ) -> Option<(String, u32)> {
        let step = self
            .book
            .get(process_id)?
            .process
            .steps
            .get(step as usize)?;
        let StepChannel::Task { title, minutes } = &step.channel else {
            return None;
        };
        let context = self.render_context(&ContactFields::from_contact(contact));
        Some((
            render_text(title, &context).unwrap_or_else(|_| title.clone()),
            *minutes,
        ))
    }

    fn task_title(&self, touch: &DueTouch, contact: Option<&PacingContact>) -> (String, u32) {
        let step = self
            .book
            .get(touch.process.0)
            .and_then(|b| b.process.steps.get(touch.step as usize));
        let Some(StepChannel::Task { title, minutes }) = step.map(|s| &s.channel) else {
            return ("(task step no longer in its process)".into(), 0);
        };
        let rendered = contact.and_then(|c| {
            let fields = ContactFields::from_pacing(c);
            render_text(title, &self.render_context(&fields)).ok()
        });
        (rendered.unwrap_or_else(|| title.clone()), *minutes)
    }

    /// Sends one claimed touch; on failure, also says where the enrollment goes if the
    /// failure is final.
    async fn dispatch_one(
        &self,
        claimed: &ClaimedTouch,
    ) -> Result<Option<tend_store::NextTouch>, (SendError, Option<tend_store::NextTouch>)> {
        let now = self.clock.now();
        let Some(BoundProcess { process, .. }) = self.book.get(claimed.process_id) else {
            return Err((
                SendError::Fatal("its process file was removed".into()),
                None,
            ));
        };
        let index = claimed.enrollment_step;
        let next = self.book.next_touch(claimed.process_id, index, now);
        self.send_claimed(claimed, process, index, now)
            .await
            .map(|()| next)
            .map_err(|e| (e, next))
    }

    async fn send_claimed(
        &self,
        claimed: &ClaimedTouch,
        process: &tend_core::Process,
        index: u32,
        now: Timestamp,
    ) -> Result<(), SendError> {
        if claimed.contact.suppressed_at.is_some() {
            return Err(SendError::Fatal("the contact is suppressed".into()));
        }
        let contact = ContactFields::from_contact(&claimed.contact);
        let step = process.steps.get(index as usize);
        match (claimed.kind, step.map(|s| (&s.channel, s.intent))) {
            (TouchKind::KeepWarm, _) => {
                let Some(template) = process.keep_warm.as_deref() else {
                    return Err(SendError::Fatal(
                        "the process has no keep_warm template".into(),
                    ));
                };
                self.send_email(claimed, &contact, template).await
            }
            (TouchKind::Step, Some((StepChannel::Email { template }, _))) => {
                self.send_email(claimed, &contact, template).await
            }
            (TouchKind::Step, Some((StepChannel::Webhook { url }, intent))) => {
                let body = serde_json::json!({
                    "type": "tend.touch",
                    "touch_id": claimed.touch.0,
                    "attempt": claimed.attempts,
                    "process": { "id": process.id, "name": process.name },
                    "step": { "index": index, "intent": intent },
                    "contact": claimed.contact,
                });
                let id = format!("tend_touch_{}", claimed.touch.0);
                self.delivery.webhook(url, &id, &body, now).await
            }
            (TouchKind::Step, _) => Err(SendError::Fatal(
                "its step was removed from the process while it waited".into(),
            )),
        }
    }

    async fn send_email(
        &self,
        claimed: &ClaimedTouch,
        contact: &ContactFields<'_>,
        template_name: &str,
    ) -> Result<(), SendError> {
        let Some(to) = contact.email else {
            return Err(SendError::Fatal("the contact has no email address".into()));
        };
        let Some(template) = self.project.template(template_name) else {
            return Err(SendError::Fatal(format!(
                "template `{template_name}` is missing"
            )));
        };
        let rendered = template
            .render(&self.render_context(contact))
            .map_err(|e| SendError::Fatal(format!("rendering {}: {}", e.what, e.message)))?;
        let token = self.signer.token(&self.keys.key_bytes(to));
        let unsubscribe_url = format!("{}/unsubscribe/{token}", self.project.config.public_url);
        let email = EmailTouch {
            touch_id: claimed.touch.0,
            template: template_name,
            to_email: to,
            to_name: contact.name,
            subject: &rendered.subject,
            markdown_body: &rendered.body,
            unsubscribe_url: &unsubscribe_url,
            unsubscribe_token: &token,
            bounce_token: &self.bounce.token(claimed.touch.0),
        };
        self.delivery.email(&email).await
    }
}

/// The contact fields rendering needs, borrowed from either record shape.
struct ContactFields<'a> {
    id: ContactId,
    email: Option<&'a str>,
    name: Option<&'a str>,
    timezone: Option<&'a str>,
    stage: &'a StageName,
    attributes: &'a serde_json::Map<String, serde_json::Value>,
}

impl<'a> ContactFields<'a> {
    fn from_contact(c: &'a Contact) -> Self {
        ContactFields {
            id: c.id,
            email: c.email.as_deref(),
            name: c.name.as_deref(),
            timezone: c.timezone.as_deref(),
            stage: &c.stage,
            attributes: &c.attributes,
        }
    }

    fn from_pacing(c: &'a PacingContact) -> Self {
        ContactFields {
            id: c.id,
            email: c.email.as_deref(),
            name: c.name.as_deref(),
            timezone: c.timezone.as_deref(),
            stage: &c.stage,
            attributes: &c.attributes,
        }
    }
}

/// Brings the store's processes in line with the files: new processes are added (and
/// their stage's members enrolled), edited ones have their contacts moved.
async fn sync_processes(
    store: &dyn Store,
    project: &Project,
    now: Timestamp,
) -> Result<(ProcessBook, SyncReport), EngineError> {
    let stored = store.stored_processes().await?;
    let mut report = SyncReport::default();
    let mut bound = Vec::new();
    for process in &project.processes {
        let keys = book::step_keys(process);
        let previous = stored.iter().find(|s| s.key == process.id);
        let (moves, removed) = match previous {
            Some(p) => book::step_moves(&p.steps, &keys, process),
            None => (Vec::new(), Vec::new()),
        };
        let backfill = match (&process.enroll, previous) {
            (tend_core::Enroll::Stage(stage), None) => Some(tend_store::Backfill {
                stage,
                first: book::step_spec(0, &process.steps[0]),
                due_at: book::after(now, &process.steps[0]),
            }),
            _ => None,
        };
        let outcome = store
            .sync_process(&ProcessSync {
                key: &process.id,
                steps: &keys,
                previous: previous.map(|p| p.steps.as_slice()),
                moves: &moves,
                backfill,
                at: now,
            })
            .await?;
        if previous.is_none() {
            report.added.push((process.id.clone(), outcome.enrolled));
        }
        report.moved += outcome.moved;
        report.completed += outcome.completed;
        report
            .removed_steps
            .extend(removed.into_iter().map(|k| format!("{}: {k}", process.id)));
        bound.push(BoundProcess {
            id: outcome.process_id,
            process: process.clone(),
        });
    }
    report.missing = stored
        .iter()
        .filter(|s| project.process(&s.key).is_none())
        .map(|s| s.key.clone())
        .collect();
    Ok((ProcessBook::new(bound), report))
}
