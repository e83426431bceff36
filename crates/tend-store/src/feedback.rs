//! Reports about sent mail that arrive after the send: bounces, complaints and
//! unsubscribe requests, from the bounce mailbox or a provider's webhook.

use tend_core::ContactId;

/// What a report says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedbackKind {
    /// A permanent delivery failure: the address is suppressed.
    HardBounce,
    /// A transient one: counted; enough of them suppress the address.
    SoftBounce,
    /// The person marked the email as spam: the address is suppressed.
    Complaint,
    /// The person asked to hear no more (the mailto link): the address is suppressed.
    Unsubscribe,
}

impl FeedbackKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackKind::HardBounce => "hard_bounce",
            FeedbackKind::SoftBounce => "soft_bounce",
            FeedbackKind::Complaint => "complaint",
            FeedbackKind::Unsubscribe => "unsubscribe",
        }
    }

    /// The suppression reason it records.
    pub fn suppression_reason(self) -> &'static str {
        match self {
            FeedbackKind::HardBounce | FeedbackKind::SoftBounce => "bounced",
            FeedbackKind::Complaint => "complained",
            FeedbackKind::Unsubscribe => "unsubscribed",
        }
    }
}

/// Whom a report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedbackAbout<'a> {
    /// A touch (from a signed envelope token): its contact and the address it went to.
    Touch(i64),
    /// An address, by its suppression key (a provider names the recipient).
    AddressKey(&'a str),
}

/// One report to record.
#[derive(Debug, Clone, Copy)]
pub struct MailFeedback<'a> {
    /// Where it came from and its id there; a source already recorded changes nothing.
    pub source: &'a str,
    /// What it says.
    pub kind: FeedbackKind,
    /// Whom it is about.
    pub about: FeedbackAbout<'a>,
    /// For the record (a status code, a feedback type).
    pub detail: &'a str,
    /// Soft bounces (of distinct touches) that suppress an address.
    pub soft_bounce_limit: u32,
}

/// What recording a report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedbackOutcome {
    /// Recorded; `suppressed` says whether the address is now suppressed by it.
    Recorded {
        /// The address was suppressed now (it was not before).
        suppressed: bool,
    },
    /// This source was recorded before; nothing changed.
    Duplicate,
    /// The touch it names does not exist or went to no address; nothing changed.
    UnknownTouch,
}

/// Where one email touch went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TouchRecipient {
    /// The contact it was for.
    pub contact: ContactId,
    /// The key of the address it was mailed to, if it was mailed.
    pub address_key: Option<String>,
}

/// Reports recorded so far, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeedbackCounts {
    /// Hard bounces.
    pub hard_bounces: u64,
    /// Soft bounces.
    pub soft_bounces: u64,
    /// Complaints.
    pub complaints: u64,
    /// Unsubscribe requests by mail or webhook.
    pub unsubscribes: u64,
}
