//! The records the engine exchanges with the store: processes as loaded, enrollment
//! signals and actions, due touches and their decisions, dispatch claims, tasks.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tend_core::pacer::{BudgetState, Channel, Intent, Reason, TouchId};
use tend_core::{ContactId, StageName};

/// A process as the engine last loaded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredProcess {
    /// Database id, stable across edits of the file.
    pub id: i64,
    /// The file stem.
    pub key: String,
    /// The step keys of the version last loaded, in order.
    pub steps: Vec<String>,
}

/// What the store needs to know of one step to plan its touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepSpec {
    /// Index of the step in its process.
    pub step: u32,
    /// Email, webhook or task.
    pub channel: Channel,
    /// Offer or nurture.
    pub intent: Intent,
}

/// Where contacts at one step of the previously loaded version go in the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepMove {
    /// The step index in the previous version.
    pub from: u32,
    /// The step in the new version; `None` when no later step survived, which completes
    /// the enrollment.
    pub to: Option<StepSpec>,
}

/// Enrolls every contact already in a stage into a process seen for the first time.
#[derive(Debug, Clone, Copy)]
pub struct Backfill<'a> {
    /// Contacts in this stage (and not suppressed) enroll.
    pub stage: &'a StageName,
    /// The process's first step.
    pub first: StepSpec,
    /// When the first touch falls due.
    pub due_at: Timestamp,
}

/// One process file brought into the store; see [`crate::Store::sync_process`].
#[derive(Debug, Clone, Copy)]
pub struct ProcessSync<'a> {
    /// The file stem.
    pub key: &'a str,
    /// The step keys of the version being loaded.
    pub steps: &'a [String],
    /// The step keys the caller read before computing `moves` (`None`: a new process).
    /// If the store holds something else by now, nothing is written.
    pub previous: Option<&'a [String]>,
    /// Where contacts at each changed step go; steps not listed stay where they are.
    pub moves: &'a [StepMove],
    /// For a new process that enrolls on a stage: its current members.
    pub backfill: Option<Backfill<'a>>,
    /// Now.
    pub at: Timestamp,
}

/// The prefix of the `engine_state` keys that count touches cancelled, one key per cause
/// (`touches_cancelled:unsubscribed`). Counted in the database, in the transaction that
/// cancels, so every path that cancels (the engine, the API, the console, the CLI, the
/// mailbox reader) is counted, whichever process runs it, and the count survives
/// restarts.
pub const TOUCHES_CANCELLED_KEY_PREFIX: &str = "touches_cancelled:";

/// What syncing one process did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncOutcome {
    /// The process's id.
    pub process_id: i64,
    /// Active enrollments moved to another step.
    pub moved: u64,
    /// Active enrollments completed because their step and every later one was removed.
    pub completed: u64,
    /// Contacts enrolled by the backfill.
    pub enrolled: u64,
}

/// How far the engine has read the events and stage history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalCursor {
    /// The last `stage_history` id read.
    pub stage_history: i64,
    /// The last `events` id read.
    pub events: i64,
}

/// Something that happened to a contact that may enroll, exit or count as work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// The contact entered a stage.
    StageEntered {
        /// Who.
        contact: ContactId,
        /// The stage left; `None` for a new contact.
        from: Option<StageName>,
        /// The stage entered.
        to: StageName,
        /// When.
        at: Timestamp,
        /// Whether and from when the change enrolls (an import may spread or withhold it).
        enrollment: crate::StageEnrollment,
        /// The stage change's id, recorded as the trigger of what it enrolls.
        id: i64,
    },
    /// A tracked event, one of the names the engine asked for.
    Event {
        /// The event's id, recorded as the trigger of what it enrolls.
        id: i64,
        /// Who.
        contact: ContactId,
        /// The event name.
        name: String,
        /// When it happened.
        at: Timestamp,
    },
}

/// The signal an enrollment came from, by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrollTrigger {
    /// A tracked event.
    Event(i64),
    /// A stage change.
    StageChange(i64),
}

/// What started an enrollment, as its webhooks carry it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EnrollmentTrigger {
    /// A tracked event.
    Event(TriggerEvent),
    /// The contact entered a stage.
    StageChange {
        /// The stage left; `None` for a new contact.
        from: Option<String>,
        /// The stage entered.
        to: String,
        /// When.
        timestamp: Timestamp,
        /// The event that moved the contact, when one did (`[stages.on_event]`).
        event: Option<TriggerEvent>,
    },
}

/// An event, as a trigger shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TriggerEvent {
    /// Its name (`Inquiry Received`).
    pub event: String,
    /// Its properties, as sent.
    pub properties: serde_json::Value,
    /// When it happened.
    pub timestamp: Timestamp,
}

/// Signals in the order they happened, and the cursor after them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignalBatch {
    /// Oldest first.
    pub signals: Vec<Signal>,
    /// Where the next read starts.
    pub next: SignalCursor,
}

/// A change the engine derived from signals; applied with the cursor, all or nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineAction {
    /// Enroll the contact, unless it is suppressed, already active in the process, or
    /// was enrolled before and the process does not allow re-entry.
    Enroll {
        /// Who.
        contact: ContactId,
        /// Into which process.
        process_id: i64,
        /// The first step.
        first: StepSpec,
        /// When the first touch falls due.
        due_at: Timestamp,
        /// When the enrollment starts: now, or an imported contact's spread instant, so
        /// its `max_gap` counts from there.
        enrolled_at: Timestamp,
        /// Whether a contact who was enrolled before may enter again.
        reenroll: bool,
        /// The signal that enrolls the contact, kept for the payloads of its webhooks.
        trigger: Option<EnrollTrigger>,
    },
    /// End the contact's active enrollment in a process (every process when `None`),
    /// cancelling its planned touches.
    Exit {
        /// Who.
        contact: ContactId,
        /// Which process; `None` for all.
        process_id: Option<i64>,
        /// Why, as shown in the contact's enrollments (`event:Order Completed`).
        reason: String,
    },
    /// Work items opened (positive) or closed (negative); open work never goes below 0.
    OpenWork(f64),
    /// The contact responded: its latest offer admitted at or after `since` and not yet
    /// answered is marked answered, for the offer statistics.
    Responded {
        /// Who.
        contact: ContactId,
        /// Start of the attribution window.
        since: Timestamp,
    },
}

/// What applying a batch of actions did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// Enrollments created.
    pub enrolled: u64,
    /// Enrollments ended.
    pub exited: u64,
    /// Offers marked answered.
    pub responses: u64,
    /// Work items closed: capacity may have room for offers held back.
    pub work_closed: u64,
}

/// A touch that is due, with what its enrollment says.
#[derive(Debug, Clone, PartialEq)]
pub struct DueRow {
    /// The touch.
    pub touch: TouchId,
    /// Its contact.
    pub contact: ContactId,
    /// Its process.
    pub process_id: i64,
    /// Its step.
    pub step: u32,
    /// A process step or a keep-warm substitute.
    pub kind: TouchKind,
    /// Email, webhook or task.
    pub channel: Channel,
    /// Offer or nurture.
    pub intent: Intent,
    /// When it fell due.
    pub due_at: Timestamp,
    /// When the contact enrolled.
    pub enrolled_at: Timestamp,
    /// Whether the enrollment is still active.
    pub active: bool,
}

/// What pacing and rendering need to know of a contact.
#[derive(Debug, Clone, PartialEq)]
pub struct PacingContact {
    /// Who.
    pub id: ContactId,
    /// Unsubscribed, bounced or otherwise suppressed.
    pub suppressed: bool,
    /// IANA zone name, if known.
    pub timezone: Option<String>,
    /// The last touch admitted for the contact.
    pub last_touch_at: Option<Timestamp>,
    /// Touches admitted in the 7 days before the batch's `now`, with their channel (a
    /// keep-warm is an email).
    pub recent: Vec<(Timestamp, Channel)>,
    /// Address, for rendering.
    pub email: Option<String>,
    /// Display name, for rendering.
    pub name: Option<String>,
    /// Stage, for rendering.
    pub stage: StageName,
    /// Attributes, for rendering.
    pub attributes: Map<String, Value>,
}

/// Due touches and their contacts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DueBatch {
    /// Oldest due first.
    pub touches: Vec<DueRow>,
    /// One per distinct contact of `touches` that still exists.
    pub contacts: Vec<PacingContact>,
}

/// Offers made and answered at one process step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OfferStat {
    /// The process.
    pub process_id: i64,
    /// The step.
    pub step: u32,
    /// Offers admitted.
    pub sent: u64,
    /// Of which answered within the attribution window.
    pub responded: u64,
    /// Answers whose delay since the offer was measured.
    pub delays: u64,
    /// Those delays added up, in days.
    pub delay_days_sum: f64,
}

/// Offers in flight at one process step that are the same whole number of days old.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InFlightOffers {
    /// The process.
    pub process_id: i64,
    /// The step.
    pub step: u32,
    /// Hours since they were admitted, rounded down to a multiple of six.
    pub age_hours: u32,
    /// How many.
    pub offers: u64,
    /// Their probabilities added up.
    pub probability: f64,
}

/// The pacer's state as stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PacingSnapshot {
    /// Budget usage as the pacer left it last (empty before the first decision).
    pub budget: BudgetState,
    /// Work items open now.
    pub open_work: f64,
    /// Sum of the probabilities of offers admitted since the caller's horizon start and
    /// not answered yet, each faded evenly over the window.
    pub expected_in_flight: f64,
    /// Those offers per step and six hours of age, when asked for.
    pub in_flight: Vec<InFlightOffers>,
    /// Per process step.
    pub offer_stats: Vec<OfferStat>,
}

/// A decision on a due touch, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub enum DecisionRecord {
    /// An email or webhook admitted: queue it for dispatch.
    Queue {
        /// The touch.
        touch: TouchId,
        /// For offers, the probability that it creates work.
        probability: Option<f64>,
    },
    /// A task admitted: it goes on the agenda.
    OpenTask {
        /// The touch.
        touch: TouchId,
        /// Rendered title.
        title: String,
        /// Estimated minutes.
        minutes: u32,
        /// When it is due.
        due_at: Timestamp,
        /// For offers, the probability that it creates work.
        probability: Option<f64>,
    },
    /// Present the touch again later.
    Defer {
        /// The touch.
        touch: TouchId,
        /// When.
        until: Timestamp,
        /// Why.
        reason: Reason,
    },
    /// An offer held back by capacity whose contact is about to be neglected: queue the
    /// process's keep-warm email now and present the offer again at `retry_at`.
    Substitute {
        /// The held-back offer.
        touch: TouchId,
        /// When to present it again.
        retry_at: Timestamp,
    },
    /// An offer held back by capacity whose contact is about to be neglected, given up:
    /// queue the process's keep-warm email now in its place, mark the offer skipped for
    /// capacity, and move the enrollment on to `next` (complete it when `None`).
    Replace {
        /// The offer given up.
        touch: TouchId,
        /// The step after the offer.
        next: Option<NextTouch>,
    },
    /// Never send it; with `end_enrollment`, the contact's enrollment ends too.
    Skip {
        /// The touch.
        touch: TouchId,
        /// Why.
        reason: Reason,
        /// End the enrollment (the contact exited or is suppressed).
        end_enrollment: bool,
    },
}

/// A process step's touch or a keep-warm email sent in place of a held-back offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TouchKind {
    /// The touch of a process step.
    Step,
    /// The process's keep-warm email.
    KeepWarm,
}

impl TouchKind {
    /// The name stored.
    pub fn as_str(self) -> &'static str {
        match self {
            TouchKind::Step => "step",
            TouchKind::KeepWarm => "keep_warm",
        }
    }
}

/// A queued touch a dispatcher has leased.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedTouch {
    /// The touch.
    pub touch: TouchId,
    /// Its enrollment.
    pub enrollment_id: i64,
    /// Its contact, as now.
    pub contact: crate::Contact,
    /// Its process.
    pub process_id: i64,
    /// The step the touch was planned for.
    pub step: u32,
    /// The step its enrollment is at now (differs from `step` only if the process file
    /// was edited while the touch was queued).
    pub enrollment_step: u32,
    /// Whether its enrollment is still active.
    pub enrollment_active: bool,
    /// Step or keep-warm.
    pub kind: TouchKind,
    /// Email or webhook.
    pub channel: Channel,
    /// Offer or nurture.
    pub intent: Intent,
    /// Attempts so far, this one included.
    pub attempts: u32,
    /// The random token of this claim, which finishing the send must present.
    pub lease_token: i64,
}

impl ClaimedTouch {
    /// The hold to present when recording how the send ended.
    pub fn lease(&self) -> Lease {
        Lease {
            touch: self.touch,
            token: self.lease_token,
        }
    }
}

/// A dispatcher's hold on a claimed touch. Each claim draws a new random token, so a
/// dispatcher whose lease ran out (a stalled or partitioned node) and whose touch was
/// claimed again cannot record its stale result over the new holder's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The touch.
    pub touch: TouchId,
    /// The claim's token.
    pub token: i64,
}

impl Lease {
    /// A fresh random token for one claim.
    pub fn new_token() -> i64 {
        rand::random()
    }
}

/// The next touch of an enrollment, once the current one is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextTouch {
    /// The step.
    pub step: StepSpec,
    /// When it falls due.
    pub due_at: Timestamp,
    /// `Some(process id)` when the sequence has ended and `step` is the first of the
    /// process its `then` names: the enrollment completes and the contact enrolls
    /// there (again, if it was before), in the same transaction.
    pub then: Option<i64>,
}

/// How a dispatch attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum DispatchResult {
    /// Delivered; the enrollment moves to `next` (completes when `None`). Keep-warm
    /// touches leave the enrollment where it is.
    Delivered {
        /// The step after this one.
        next: Option<NextTouch>,
    },
    /// A temporary failure: try again at `retry_at`.
    Retry {
        /// What went wrong.
        error: String,
        /// When to try again.
        retry_at: Timestamp,
    },
    /// A permanent failure: the touch is given up and the enrollment moves on.
    Failed {
        /// What went wrong.
        error: String,
        /// The step after this one.
        next: Option<NextTouch>,
    },
    /// The address was refused for good: the contact is marked bounced and suppressed.
    Bounced {
        /// What the server said.
        error: String,
    },
}

/// A task as the agenda shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskView {
    /// The task's touch id.
    pub id: TouchId,
    /// For whom.
    pub contact_id: ContactId,
    /// The contact's name, if known.
    pub contact_name: Option<String>,
    /// The contact's address, if known.
    pub contact_email: Option<String>,
    /// The process it belongs to.
    pub process: String,
    /// Its step.
    pub step: u32,
    /// What to do.
    pub title: String,
    /// Estimated minutes.
    pub minutes: u32,
    /// When it is due.
    pub due_at: Timestamp,
    /// `open`, `done` or `skipped`.
    pub state: String,
    /// When it was completed or skipped.
    pub completed_at: Option<Timestamp>,
    /// The outcome given on completion.
    pub outcome: Option<String>,
    /// The note given on completion.
    pub note: Option<String>,
}

/// How a person finished a task.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskEnd {
    /// Done, with an outcome.
    Done {
        /// E.g. `replied`.
        outcome: String,
        /// Free text.
        note: Option<String>,
    },
    /// Not done, on purpose.
    Skipped {
        /// Free text.
        note: Option<String>,
    },
}

/// The event a finished task records for its contact, as `[tasks.outcomes]` maps it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeEvent<'a> {
    /// The event name.
    pub name: &'a str,
    /// Its id; a repeat changes nothing.
    pub message_id: String,
    /// Its properties.
    pub properties: Value,
    /// The stage the event moves the contact to, if the config maps one.
    pub stage: Option<&'a StageName>,
}

/// What an erasure leaves to clean outside the database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Erasure {
    /// The erased contact's email touches: a copy of each may sit in the outbox.
    pub email_touches: Vec<TouchId>,
    /// Those of them a dispatcher held at the time: their send may still be writing a
    /// copy, which the dispatcher deletes once the send ends.
    pub in_flight: Vec<TouchId>,
}

/// An enrollment as a contact's page shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollmentView {
    /// Its id.
    pub id: i64,
    /// The process key.
    pub process: String,
    /// `active`, `completed` or `exited`.
    pub state: String,
    /// The current step.
    pub step: u32,
    /// When the contact enrolled.
    pub enrolled_at: Timestamp,
    /// Touches admitted in this enrollment.
    pub touches: u32,
    /// The last of them.
    pub last_touch_at: Option<Timestamp>,
    /// When it completed or exited.
    pub ended_at: Option<Timestamp>,
    /// Why it exited.
    pub end_reason: Option<String>,
}

/// A touch as a contact's page shows it, with the pacer's last decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TouchView {
    /// Its id.
    pub id: TouchId,
    /// The process key.
    pub process: String,
    /// The step.
    pub step: u32,
    /// `step` or `keep_warm`.
    pub kind: String,
    /// `email`, `webhook` or `task`.
    pub channel: String,
    /// `offer` or `nurture`.
    pub intent: String,
    /// `pending`, `queued`, `sent`, `open`, `done`, `skipped`, `failed` or `cancelled`.
    pub state: String,
    /// When it is or was due.
    pub due_at: Timestamp,
    /// When it was planned.
    pub created_at: Timestamp,
    /// The pacer's last decision: `send`, `defer`, `substitute` or `skip`.
    pub decision: Option<String>,
    /// Why it was held back or skipped.
    pub reason: Option<String>,
    /// Until when it was deferred.
    pub until: Option<Timestamp>,
    /// When the last decision was taken.
    pub decided_at: Option<Timestamp>,
    /// How many times it was deferred.
    pub deferrals: u32,
    /// When the pacer let it go.
    pub admitted_at: Option<Timestamp>,
    /// For an admitted offer: the probability, when admitted, that it creates work.
    pub probability: Option<f64>,
    /// When the contact responded to this offer (work opened or a stage advanced).
    pub responded_at: Option<Timestamp>,
    /// When it was delivered (or the task opened).
    pub sent_at: Option<Timestamp>,
    /// Dispatch attempts.
    pub attempts: u32,
    /// The last dispatch error.
    pub last_error: Option<String>,
    /// A task's title.
    pub title: Option<String>,
    /// When a task was completed.
    pub completed_at: Option<Timestamp>,
    /// A task's outcome.
    pub outcome: Option<String>,
}

/// Counts behind `GET /api/pace`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PaceCounts {
    /// Pending touches by the reason of their last deferral (`capacity` includes
    /// offers replaced by keep-warm).
    pub held: Vec<(String, u64)>,
    /// Active enrollments per process id.
    pub enrolled: Vec<(i64, u64)>,
    /// Of those, the ones paused by hand, per process id: they wait on purpose, so
    /// neither the neglect list nor the deficit counts them.
    pub paused: Vec<(i64, u64)>,
}

/// Contacts per stage, and stage moves in a period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunnelCounts {
    /// Stage → contacts in it now.
    pub stages: Vec<(String, u64)>,
    /// `(from, to, count)` of stage changes in the period; `from` is `None` for new contacts.
    pub moves: Vec<(Option<String>, String, u64)>,
}

/// Milliseconds in an hour: the width of the stage-move counters' buckets.
pub const HOUR_MS: i64 = 3_600_000;

/// The whole hours of a period `[from, to)` in milliseconds, as bucket numbers
/// `[first, end)` of the hourly stage-move counters (`at / 3,600,000`); the part hours
/// at either end, `[from, start_ms())` and `[end_ms(), to)`, are counted from the history.
/// Only hours from the Unix epoch on are whole: before it, integer division does not
/// round down, so that part of a period is read from the history too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WholeHours {
    /// The first whole hour's bucket.
    pub first: i64,
    /// The bucket after the last whole hour; `first` when there is none.
    pub end: i64,
    /// The end of the period, for when there is no whole hour.
    to: i64,
}

impl WholeHours {
    /// The whole hours within `[from, to)`.
    pub fn within(from: i64, to: i64) -> WholeHours {
        let first =
            from.max(0).div_euclid(HOUR_MS) + i64::from(from.max(0).rem_euclid(HOUR_MS) != 0);
        let end = to.max(0).div_euclid(HOUR_MS);
        if end > first {
            WholeHours { first, end, to }
        } else {
            WholeHours {
                first: 0,
                end: 0,
                to,
            }
        }
    }

    /// Where the whole hours start: the end of the first part hour.
    pub fn start_ms(&self) -> i64 {
        if self.end > self.first {
            self.first * HOUR_MS
        } else {
            self.to
        }
    }

    /// Where the whole hours end: the start of the last part hour.
    pub fn end_ms(&self) -> i64 {
        if self.end > self.first {
            self.end * HOUR_MS
        } else {
            self.to
        }
    }
}

/// A contact's first arrival in a stage and the touches admitted to it until then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conversion {
    /// Who.
    pub contact: ContactId,
    /// When the contact first entered the stage.
    pub at: Timestamp,
    /// Touches admitted to the contact up to then.
    pub touches: u64,
}

/// An active enrollment with the deadline of its `max_gap` promise.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NeglectRow {
    /// Who.
    pub contact_id: ContactId,
    /// The contact's name, if known.
    pub name: Option<String>,
    /// The contact's address, if known.
    pub email: Option<String>,
    /// The process id.
    #[serde(skip)]
    pub process_id: i64,
    /// When the contact was last touched by any process, if ever.
    pub last_touch_at: Option<Timestamp>,
    /// When it enrolled.
    pub enrolled_at: Timestamp,
    /// Last touch (or enrollment, if later) plus the process's `max_gap`.
    pub deadline: Timestamp,
}

#[cfg(test)]
mod whole_hours_tests {
    use super::{HOUR_MS, WholeHours};

    #[test]
    fn a_period_splits_into_part_hours_and_whole_hours() {
        let hours = WholeHours::within(HOUR_MS + 5, 4 * HOUR_MS + 7);
        assert_eq!((hours.first, hours.end), (2, 4));
        assert_eq!(
            (hours.start_ms(), hours.end_ms()),
            (2 * HOUR_MS, 4 * HOUR_MS)
        );
        let aligned = WholeHours::within(HOUR_MS, 3 * HOUR_MS);
        assert_eq!((aligned.first, aligned.end), (1, 3));
        assert_eq!(
            (aligned.start_ms(), aligned.end_ms()),
            (HOUR_MS, 3 * HOUR_MS)
        );
    }

    #[test]
    fn a_period_without_a_whole_hour_is_all_part_hour() {
        let hours = WholeHours::within(HOUR_MS + 5, 2 * HOUR_MS + 5);
        assert_eq!(hours.first, hours.end);
        assert_eq!(
            (hours.start_ms(), hours.end_ms()),
            (2 * HOUR_MS + 5, 2 * HOUR_MS + 5)
        );
        // Before the epoch nothing is counted by the hour.
        let early = WholeHours::within(-5 * HOUR_MS, -HOUR_MS);
        assert_eq!(early.first, early.end);
        assert_eq!(early.start_ms(), -HOUR_MS);
    }
}
