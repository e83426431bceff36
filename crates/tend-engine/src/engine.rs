//! The engine: three units of work — read new signals into enrollments, decide the due
//! touches with the pacer, dispatch admitted ones — each callable on its own so tests
//! and the simulator drive it step by step, and a loop that runs them in `tend serve`.

use crate::book::ProcessBook;
use crate::clock::Clock;
use crate::delivery::Delivery;
use crate::envelope::BounceTokens;
use crate::metrics::Metrics;
use crate::unsubscribe::UnsubscribeSigner;
use jiff::SignedDuration;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;
use tend_core::ContactId;
use tend_core::check::Project;
use tend_core::pacer::{self, PacerPolicy, ZoneId, ZoneTable};
use tend_store::suppression::{AddressKeys, Secret};
use tend_store::{Coordination, OutcomeEvent, Store, StoreError, TaskEnd, TaskView, Wake};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

mod consent;
mod decide;
mod dispatch;
mod render;
mod sync;

pub use consent::{Unsubscribed, health_fingerprint, instance_id};
pub use sync::SyncReport;
use sync::sync_processes;

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
    /// Whether this node leads, and other nodes' wake-ups.
    coordination: Arc<dyn Coordination>,
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
        let coordination = store.coordination().await?;
        // Alone on the database, any lease still held belongs to a run that stopped.
        // Beside other nodes, a held lease may be a live node's: it expires instead.
        if coordination.sole_engine() {
            store.release_all_claims(now).await?;
        }
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
                coordination,
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

    /// The loop `tend serve` runs: reading signals and deciding every second or when
    /// woken, on the node that leads (see [`Coordination`]), and `dispatch_workers`
    /// senders on every node. Returns after `shutdown` once in-flight sends have
    /// finished and been recorded.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let sender = tokio::spawn(Arc::clone(&self).dispatch_loop(shutdown.clone()));
        loop {
            if self.coordination.leads() {
                match self.leader_pass().await {
                    Ok(()) => {}
                    // Leadership passed to another node mid-pass; nothing was written.
                    Err(EngineError::Store(StoreError::Conflict(reason)))
                        if !self.coordination.leads() =>
                    {
                        tracing::info!(%reason, "no longer the leader");
                    }
                    Err(error) => tracing::error!(%error, "engine pass failed; retrying"),
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake_decide.notified() => {},
                () = self.coordination.woken(Wake::Signals) => {},
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
}
