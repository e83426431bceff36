//! The touches the pacer decides on, what it knows of their contacts, and its verdicts.

use super::ZoneId;
use crate::domain::ContactId;
use crate::duration::Duration;
use jiff::Timestamp;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

/// A touch's database id.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TouchId(pub i64);

/// A process's database id.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct ProcessId(pub i64);

/// How a touch reaches the contact.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Channel {
    /// An email to the contact; subject to quiet hours.
    Email,
    /// A webhook about the contact; subject to quiet hours, as it usually reaches them.
    Webhook,
    /// Work for a human; planned only within business hours.
    Task,
}

impl Channel {
    /// Every channel, in the order config lists them.
    pub const ALL: [Channel; 3] = [Channel::Email, Channel::Webhook, Channel::Task];

    /// The channel's name in config, process files and storage: `email`, `webhook` or
    /// `task`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Webhook => "webhook",
            Channel::Task => "task",
        }
    }

    /// The channel of that name, as [`Channel::as_str`] writes it.
    pub fn parse(name: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

/// Writes the channel's config name (`email`).
impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of channels, such as those `[limits] channels` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ChannelSet(u8);

impl ChannelSet {
    /// Email only: what reaches the person in the default configuration.
    pub const EMAIL: ChannelSet = ChannelSet(1);
    /// Every channel.
    pub const ALL: ChannelSet = ChannelSet(0b111);

    fn bit(channel: Channel) -> u8 {
        match channel {
            Channel::Email => 1,
            Channel::Webhook => 2,
            Channel::Task => 4,
        }
    }

    /// The set of these channels.
    pub fn of(channels: &[Channel]) -> Self {
        ChannelSet(channels.iter().fold(0, |bits, c| bits | Self::bit(*c)))
    }

    /// Whether `channel` is in the set.
    pub fn contains(self, channel: Channel) -> bool {
        self.0 & Self::bit(channel) != 0
    }

    /// Whether every channel is in the set.
    pub fn is_all(self) -> bool {
        self == Self::ALL
    }
}

/// Whether a touch asks for something that creates work.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Intent {
    /// A call to action; admitted only within capacity.
    Offer,
    /// Keeps the relationship warm; never held back by capacity.
    Nurture,
}

impl Intent {
    /// `offer` or `nurture`, as process files and storage spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Intent::Offer => "offer",
            Intent::Nurture => "nurture",
        }
    }

    /// The intent of that name, as [`Intent::as_str`] writes it.
    pub fn parse(name: &str) -> Option<Intent> {
        [Intent::Offer, Intent::Nurture]
            .into_iter()
            .find(|i| i.as_str() == name)
    }
}

impl std::fmt::Display for Intent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a touch was held back, as the API shows it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A budget window's limit is spent; the touch waits for the next window.
    Budget,
    /// The budget is still accruing over business hours; the touch waits for its share.
    BudgetAccruing,
    /// The business cannot take on the work an offer may create.
    Capacity,
    /// The contact's local quiet hours.
    QuietHours,
    /// The business is closed: a task outside opening hours, or a touch whose budget
    /// accrues only once it opens.
    BusinessHours,
    /// The per-contact weekly cap or minimum gap.
    FrequencyCap,
    /// The contact unsubscribed or is suppressed.
    Suppressed,
    /// The contact left the process (or was erased).
    Exited,
}

/// Writes the name the API uses (`quiet_hours`).
impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reason::Budget => "budget",
            Reason::BudgetAccruing => "budget_accruing",
            Reason::Capacity => "capacity",
            Reason::QuietHours => "quiet_hours",
            Reason::BusinessHours => "business_hours",
            Reason::FrequencyCap => "frequency_cap",
            Reason::Suppressed => "suppressed",
            Reason::Exited => "exited",
        })
    }
}

impl Reason {
    /// Every reason.
    pub const ALL: [Reason; 8] = [
        Reason::Budget,
        Reason::BudgetAccruing,
        Reason::Capacity,
        Reason::QuietHours,
        Reason::BusinessHours,
        Reason::FrequencyCap,
        Reason::Suppressed,
        Reason::Exited,
    ];
}

/// What is sent instead of a held-back offer.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Substitution {
    /// The process's keep-warm template, sent as a nurture email.
    KeepWarm,
}

/// The pacer's verdict on one touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Dispatch now; its budget has been charged.
    Send,
    /// Present the touch again at `until` (always after `now`).
    Defer {
        /// When to present it again: when the blocking condition is expected to lift.
        until: Timestamp,
        /// The condition.
        reason: Reason,
    },
    /// Send the substitute now and keep the touch pending until `offer_retry_at`; see the
    /// module docs for the contract.
    Substitute {
        /// What to send instead.
        with: Substitution,
        /// When to present the held-back offer again.
        offer_retry_at: Timestamp,
    },
    /// Send the substitute now in the offer's place: the offer is not sent and the
    /// contact's sequence moves on past it, as if it had been. Given to an offer held
    /// back by capacity when its contact needs a touch, so held offers never pile up
    /// into a pool that keep-warm emails must serve for ever.
    Replace {
        /// What to send instead.
        with: Substitution,
    },
    /// Drop the touch; it must never be sent.
    Skip {
        /// Why.
        reason: Reason,
    },
}

/// A decision labelled with its touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct TouchDecision {
    /// The touch decided on.
    pub touch: TouchId,
    /// The decision.
    #[serde(flatten)]
    pub decision: Decision,
}

/// A touch that is due, with what the pacer needs to know about its step and process.
///
/// Priority: a contact's deadline is the time it last heard from Tend — its last touch
/// from any process, or its enrollment in this process if that is later — plus
/// `max_gap`. Touches whose deadline has passed or falls within the neglect horizon
/// ([`PacerPolicy::neglect_horizon`]) come first, earliest deadline first.
/// The others follow by urgency, the time waited in tenths of `max_gap`, so every waiting
/// contact rises over time; equal urgency goes to higher `expected_value`, then earlier
/// `due`, then lower touch id.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DueTouch {
    /// The touch's id.
    pub touch: TouchId,
    /// Who it is for.
    pub contact: ContactId,
    /// The process it belongs to.
    pub process: ProcessId,
    /// Index of the step in the process.
    pub step: u32,
    /// Email, webhook or task.
    pub channel: Channel,
    /// Offer or nurture.
    pub intent: Intent,
    /// Estimated staff minutes, for tasks.
    pub minutes: u32,
    /// When the step became due (after a deferral, the `until` it was given).
    pub due: Timestamp,
    /// When the contact enrolled in the process; the promise runs from here until the
    /// first touch. Not `due`, which moves with every deferral.
    pub enrolled_at: Timestamp,
    /// The process's promise: longest wait between touches to an enrolled contact.
    pub max_gap: Duration,
    /// Whether the process has a keep-warm template.
    pub keep_warm: bool,
    /// Whether the contact has left this process; an enrollment fact, unlike suppression.
    pub exited: bool,
    /// Value if the touch succeeds; only orders touches of equal urgency.
    pub expected_value: f64,
    /// Probability that an offer creates work (see [`BetaPosterior`]).
    pub offer_probability: f64,
    /// The first touch of its enrollment: an email or webhook goes at any hour the
    /// contact's quiet hours allow, spending ahead of the accrual from
    /// [`PacerPolicy::first_touch_reserve`], since a first reply is what a new lead waits for.
    pub first: bool,
    /// Its process follows a sequence (another process's `then` names it): a
    /// relationship kept going for leads who did not convert and past customers. Its
    /// offers, while no deadline presses, come before the others' and by expected
    /// value, so idle capacity goes to them rather than unused.
    #[serde(default)]
    pub after_sequence: bool,
}

/// What the pacer knows about a contact.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ContactState {
    /// Unsubscribed or otherwise suppressed: nothing may be sent.
    pub suppressed: bool,
    /// The contact's time zone; an id the [`ZoneTable`] did not issue means the
    /// business's zone.
    pub zone: ZoneId,
    /// The last touch to the contact from any process.
    pub last_touch: Option<Timestamp>,
    /// Every touch to the contact in the last 7 days on a channel the frequency limits
    /// count ([`PacerPolicy::limited_channels`]), any order (older ones are ignored).
    pub recent: Vec<Timestamp>,
}

/// Where the pacer looks up contacts' state; a contact without state is treated as
/// erased.
pub trait ContactStates {
    /// The state of `id`, if known.
    fn contact_state(&self, id: ContactId) -> Option<&ContactState>;
}

impl<S: BuildHasher> ContactStates for HashMap<ContactId, ContactState, S> {
    fn contact_state(&self, id: ContactId) -> Option<&ContactState> {
        self.get(&id)
    }
}

impl ContactStates for BTreeMap<ContactId, ContactState> {
    fn contact_state(&self, id: ContactId) -> Option<&ContactState> {
        self.get(&id)
    }
}
