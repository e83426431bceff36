//! The records that cross the [`crate::Store`] interface.

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde_json::{Map, Value};
use tend_core::{ContactId, Email, StageName, TimeZoneName};

/// How a Segment message names its person.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    /// Segment `userId`: the business's own id for the person.
    pub user_id: Option<String>,
    /// Segment `anonymousId`: a device or session id seen before the person is known.
    pub anonymous_id: Option<String>,
}

/// Contact fields carried by an `identify` call's traits.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContactTraits {
    /// Sets the contact's address, unless another known person already has it.
    pub email: Option<Email>,
    /// Replaces the contact's name.
    pub name: Option<String>,
    /// Replaces the contact's time zone.
    pub timezone: Option<TimeZoneName>,
    /// Every other trait, merged into the contact's attributes.
    pub attributes: Map<String, Value>,
}

/// One validated Segment message.
#[derive(Debug, Clone, PartialEq)]
pub enum IngestMessage {
    /// Upserts a contact: by `userId`, else by `anonymousId`, and by the `email` trait.
    Identify {
        /// Segment `messageId`; a message already stored is skipped.
        message_id: String,
        /// Who the traits belong to.
        identity: Identity,
        /// What to set on the contact.
        traits: ContactTraits,
        /// When it happened, per the sender.
        at: Timestamp,
    },
    /// Records an event for the contact (created if unknown), and moves its stage when
    /// `[stages.on_event]` maps this event.
    Track {
        /// Segment `messageId`; a message already stored is skipped.
        message_id: String,
        /// Who did it.
        identity: Identity,
        /// The event name, e.g. `Order Completed`.
        event: String,
        /// The event's properties, stored as sent.
        properties: Map<String, Value>,
        /// When it happened, per the sender.
        at: Timestamp,
        /// The stage `[stages.on_event]` maps this event to, if any.
        stage_change: Option<StageName>,
    },
    /// Segment `alias`: `previous_id` (an anonymousId or an earlier userId) and `user_id`
    /// are one person. Their records merge, unless both hold different addresses; the
    /// merged record answers to `user_id`, and `previous_id` stays linked as an alias.
    Alias {
        /// Segment `messageId`; a message already stored is skipped.
        message_id: String,
        /// The identity the person was known by.
        previous_id: String,
        /// The identity the person is known by from now on.
        user_id: String,
        /// When it happened, per the sender.
        at: Timestamp,
    },
}

impl IngestMessage {
    /// The Segment `messageId` that makes the message idempotent.
    pub fn message_id(&self) -> &str {
        match self {
            IngestMessage::Identify { message_id, .. }
            | IngestMessage::Track { message_id, .. }
            | IngestMessage::Alias { message_id, .. } => message_id,
        }
    }
}

/// What an ingest did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    /// Messages written.
    pub accepted: usize,
    /// Messages skipped because their `message_id` was already stored, or repeated
    /// earlier in the same batch.
    pub duplicates: usize,
    /// Stage changes made, in order, including new contacts' first stage (`from: None`);
    /// the engine enrolls on these.
    pub stage_changes: Vec<StageChange>,
}

/// A contact moved from one stage to another, or entered its first stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageChange {
    /// Whose stage changed.
    pub contact_id: ContactId,
    /// The stage left; `None` when the contact was just created.
    pub from: Option<StageName>,
    /// The stage entered.
    pub to: StageName,
}

/// A person, as the API shows them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Contact {
    /// Stable id; never reused, even after an erasure.
    pub id: ContactId,
    /// Normalized address, unique among contacts.
    pub email: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// IANA zone name for quiet hours.
    pub timezone: Option<String>,
    /// Current relationship stage.
    pub stage: StageName,
    /// Segment `userId`, unique among contacts.
    pub user_id: Option<String>,
    /// Every other trait or CSV column.
    pub attributes: Map<String, Value>,
    /// When the contact was first seen.
    pub created_at: Timestamp,
    /// When ingest or import last changed something about the contact.
    pub updated_at: Timestamp,
    /// Set once the person unsubscribed, bounced or was erased before; never cleared by ingest.
    pub suppressed_at: Option<Timestamp>,
    /// When the engine last touched the person.
    pub last_touch_at: Option<Timestamp>,
}

/// Filters and keyset position for listing contacts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactQuery {
    /// Only contacts in this stage.
    pub stage: Option<StageName>,
    /// Words that each start a word of the contact's email or name, in any case
    /// ([`search_words`]): `smi` finds Ann Smith, `ann rossi` ann.rossi@example.com.
    pub q: Option<String>,
    /// At most this many contacts (the caller clamps it).
    pub limit: u32,
    /// Opaque cursor from a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// The words of a contact search, lowercased: its runs of letters and digits, so
/// `Ann.Smith@` is `ann`, `smith`. Each must start a word of the contact's email (cut
/// at its punctuation) or name; a search with no word finds everyone. At most eight
/// words of at most 64 bytes are kept.
pub fn search_words(q: &str) -> Vec<String> {
    q.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut word = w.to_lowercase();
            if word.len() > 64 {
                let mut end = 64;
                while !word.is_char_boundary(end) {
                    end -= 1;
                }
                word.truncate(end);
            }
            word
        })
        .take(8)
        .collect()
}

/// One page of contacts and where the next one starts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContactPage {
    /// In ascending id order.
    pub contacts: Vec<Contact>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// One line of a contact's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TimelineEntry {
    /// A tracked event.
    Event {
        /// The event name.
        name: String,
        /// The event's properties as sent.
        properties: Map<String, Value>,
        /// Segment `messageId`.
        message_id: String,
        /// When it happened, per the sender.
        at: Timestamp,
    },
    /// A stage change; shown right after the event that caused it.
    StageChange {
        /// The stage left; `None` for the contact's first stage.
        from: Option<StageName>,
        /// The stage entered.
        to: StageName,
        /// What caused it: the event name, `created` (first seen by ingest), `import`,
        /// `merge` (two records of one person joined), or `api`.
        reason: String,
        /// When it took effect.
        at: Timestamp,
    },
}

/// One validated CSV row.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportRow {
    /// The key rows are upserted by.
    pub email: Email,
    /// Replaces the name when given.
    pub name: Option<String>,
    /// Moves the contact to this stage when given.
    pub stage: Option<StageName>,
    /// Replaces the time zone when given.
    pub timezone: Option<TimeZoneName>,
    /// Other columns, merged into the contact's attributes.
    pub attributes: Map<String, Value>,
}

/// What an owner chooses for the contacts a list import puts into a stage: written
/// `now`, `none` or `spread:DURATION` (`spread:14d`) on the command line and the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EnrollChoice {
    /// They enroll at once (the pacer still decides when each touch goes).
    #[default]
    Now,
    /// Their enrollments start at instants spread evenly over this long, in file order.
    Spread(tend_core::Duration),
    /// The import enrolls nobody.
    None,
}

/// The longest an import may spread its enrollments over.
pub const MAX_SPREAD: tend_core::Duration = tend_core::Duration::from_secs(366 * 86_400);

/// Why an enroll choice was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnrollChoiceError {
    /// Neither `now`, `none` nor `spread:…`.
    #[error(
        "`{0}` is not an enroll choice: use `now`, `none` or `spread:DURATION` (e.g. `spread:14d`)"
    )]
    Unknown(String),
    /// `spread:` with a duration that does not parse.
    #[error("spread: {0}")]
    Duration(#[from] tend_core::DurationError),
    /// `spread:0d` or longer than [`MAX_SPREAD`].
    #[error("spread over `{0}`: the period must be longer than zero and at most {MAX_SPREAD}")]
    OutOfRange(tend_core::Duration),
}

impl std::str::FromStr for EnrollChoice {
    type Err = EnrollChoiceError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "now" => Ok(EnrollChoice::Now),
            "none" => Ok(EnrollChoice::None),
            other => {
                let period = other
                    .strip_prefix("spread:")
                    .ok_or_else(|| EnrollChoiceError::Unknown(other.to_owned()))?;
                let period = tend_core::Duration::parse(period)?;
                if period == tend_core::Duration::ZERO || period > MAX_SPREAD {
                    return Err(EnrollChoiceError::OutOfRange(period));
                }
                Ok(EnrollChoice::Spread(period))
            }
        }
    }
}

impl std::fmt::Display for EnrollChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnrollChoice::Now => f.write_str("now"),
            EnrollChoice::Spread(period) => write!(f, "spread:{period}"),
            EnrollChoice::None => f.write_str("none"),
        }
    }
}

impl EnrollChoice {
    /// The enrollment of a chunk that starts at row `first_row` (counting from 0) of an
    /// import of `total_rows` good rows begun at `start`: row `i` of the import starts
    /// at `start + i × period / total_rows`, so the last one starts just before the
    /// period ends.
    pub fn for_chunk(
        &self,
        start: Timestamp,
        total_rows: usize,
        first_row: usize,
    ) -> ImportEnrollment {
        match *self {
            EnrollChoice::Now => ImportEnrollment::Now,
            EnrollChoice::None => ImportEnrollment::DoNotEnroll,
            EnrollChoice::Spread(period) => {
                let rows = total_rows.max(1) as i128;
                let step_nanos = i128::from(period.as_millis()) * 1_000_000 / rows;
                let step = SignedDuration::from_nanos(step_nanos as i64);
                let offset = SignedDuration::from_nanos(
                    (step_nanos * first_row as i128).min(i128::from(i64::MAX)) as i64,
                );
                ImportEnrollment::Spread {
                    first: start.saturating_add(offset).unwrap_or(start),
                    step,
                }
            }
        }
    }
}

/// How the contacts an import puts into a stage (new ones, and existing ones whose
/// stage the file changes) enroll in the processes that enroll on that stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImportEnrollment {
    /// As soon as the engine reads the stage change, like any other stage change.
    #[default]
    Now,
    /// Row `i` of the chunk enrolls as though it entered the stage at
    /// `first + i × step`, so a long list does not all start on one day.
    Spread {
        /// The instant of the chunk's first row.
        first: Timestamp,
        /// The interval between two rows.
        step: SignedDuration,
    },
    /// The import enrolls nobody; a later stage change, an enrolling event or a new
    /// process's backfill does.
    DoNotEnroll,
}

impl ImportEnrollment {
    /// What entering a stage through row `index` of the chunk does.
    pub fn for_row(&self, index: usize) -> StageEnrollment {
        match *self {
            ImportEnrollment::Now => StageEnrollment::Now,
            ImportEnrollment::Spread { first, step } => {
                let nanos = step.as_nanos().saturating_mul(index as i128);
                let offset = SignedDuration::from_nanos(nanos.min(i128::from(i64::MAX)) as i64);
                StageEnrollment::NotBefore(first.saturating_add(offset).unwrap_or(first))
            }
            ImportEnrollment::DoNotEnroll => StageEnrollment::No,
        }
    }
}

/// Whether entering a stage enrolls the contact in the processes that enroll on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StageEnrollment {
    /// When the engine reads the change.
    #[default]
    Now,
    /// As though the contact entered the stage at this instant (if it is later than
    /// when the engine reads the change): the first step's wait counts from it.
    NotBefore(Timestamp),
    /// Not by this change.
    No,
}

/// What an import of one chunk did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOutcome {
    /// Rows that created a contact.
    pub inserted: usize,
    /// Rows that changed an existing contact (or one created earlier in the chunk).
    pub updated: usize,
    /// Rows that changed nothing; they left the contact untouched.
    pub unchanged: usize,
    /// New contacts' first stages and stage moves, in row order.
    pub stage_changes: Vec<StageChange>,
    /// What each row did, in row order: how a preview lists them.
    pub effects: Vec<RowEffect>,
}

impl ImportOutcome {
    /// Counts a row that met a contact already there: updated when it changed it.
    pub fn count(&mut self, changed: bool) {
        if changed {
            self.updated += 1;
            self.effects.push(RowEffect::Updated);
        } else {
            self.unchanged += 1;
            self.effects.push(RowEffect::Unchanged);
        }
    }
}

/// What one import row did to its contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowEffect {
    /// It created the contact.
    Inserted,
    /// It changed the contact (or one an earlier row of the chunk created).
    Updated,
    /// It changed nothing.
    Unchanged,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenScope {
    /// Segment ingest only.
    Write,
    /// Everything, including the REST API.
    Admin,
    /// Reading the agenda feed (`/agenda.ics?token=`) and nothing else, so the token a
    /// calendar app keeps in its URL cannot read or change contacts.
    Calendar,
    /// Reading `/metrics` and nothing else, for a Prometheus scraper.
    Metrics,
}

impl TokenScope {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Write => "write",
            TokenScope::Admin => "admin",
            TokenScope::Calendar => "calendar",
            TokenScope::Metrics => "metrics",
        }
    }

    /// Parses `write`, `admin`, `calendar` or `metrics`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "write" => Some(TokenScope::Write),
            "admin" => Some(TokenScope::Admin),
            "calendar" => Some(TokenScope::Calendar),
            "metrics" => Some(TokenScope::Metrics),
            _ => None,
        }
    }
}

/// A stored token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    /// Row id.
    pub id: i64,
    /// What the token is for, as its creator named it.
    pub name: String,
    /// What it may do.
    pub scope: TokenScope,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was last presented, to the minute; `None` if never.
    pub last_used_at: Option<Timestamp>,
}
