//! The mailbox Tend reads (`[channels.email] inbound`): bounce reports and complaints
//! sent to the envelope sender, unsubscribe requests sent to the `List-Unsubscribe`
//! mailto address, and replies to touches.
//!
//! Each poll reads the messages that arrived since the last one (by UID, so each is
//! read once), acts on those it understands and marks them; other messages are left as
//! they were. Where the server offers IDLE the connection stays open between polls
//! and a new message is read as soon as the server announces it; otherwise each poll
//! is a short session every `inbound_poll`. A report suppresses only when it carries a token
//! Tend signed, so mail from anyone else changes nothing.

pub mod classify;
mod imap;

pub use classify::{Context, Inbound, classify};
pub use imap::{ImapUrl, InboundSetupError, read_certificates};

use crate::engine::{Engine, EngineError};
use crate::unsubscribe::UnsubscribeTarget;
use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::Duration;
use tend_core::pacer::TouchId;
use tend_store::feedback::{FeedbackAbout, FeedbackKind, FeedbackOutcome, MailFeedback};
use tokio_util::sync::CancellationToken;

/// The event a reply records on its contact; processes can exit on it, and it counts
/// as a response to the contact's latest offer.
pub const REPLIED_EVENT: &str = "Replied";

/// Messages larger than this are not read (a report or a reply is far smaller); they
/// are logged and left alone.
pub const MAX_MESSAGE_BYTES: u32 = 2 * 1024 * 1024;

/// Messages read in one poll at most; the rest wait for the next.
const BATCH: usize = 200;

/// The longest an IDLE is held before it is ended and issued again: RFC 2177 advises
/// clients to do so at least every 29 minutes, as servers may drop a client idle for 30.
const MAX_IDLE: Duration = Duration::from_secs(29 * 60);

/// Polls one after another at most, before idling again.
const MAX_POLLS_IN_A_ROW: usize = 10;

/// The first wait before connecting again after a failure; it doubles while the
/// failures go on, up to `poll_every`.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// An IDLE connection that lasted this long worked: after it drops, the next one is
/// tried after [`FIRST_RETRY`] again.
const STABLE_CONNECTION: Duration = Duration::from_secs(60);

/// How one connection to the mailbox ended.
enum Round {
    /// It polled at least once; `idled` when it then held IDLE until the connection
    /// dropped, else it logged out to poll again later.
    Polled {
        /// Whether the server offered IDLE.
        idled: bool,
    },
    /// Connecting or a poll failed.
    Failed(InboundError),
    /// Shutdown was asked for while idling.
    Shutdown,
}

/// The wait before connecting again: [`FIRST_RETRY`], doubled after each failure up to
/// a ceiling, back to the start after a success.
#[derive(Debug)]
struct Backoff {
    next: Duration,
    ceiling: Duration,
}

impl Backoff {
    fn new(ceiling: Duration) -> Self {
        let ceiling = ceiling.max(FIRST_RETRY);
        Backoff {
            next: FIRST_RETRY,
            ceiling,
        }
    }

    /// The wait now; the one after is twice as long.
    fn next(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.ceiling);
        wait
    }

    fn reset(&mut self) {
        self.next = FIRST_RETRY;
    }
}

/// What to do with a handled report or unsubscribe request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterHandling {
    /// Flag it `$TendHandled` and `\Seen`, in place.
    Flag,
    /// Move it to this mailbox (flagged as well).
    Move(String),
    /// Delete it.
    Delete,
}

/// Everything the reader needs, resolved from `[channels.email]`.
#[derive(Debug, Clone)]
pub struct InboundConfig {
    /// Where to read.
    pub url: ImapUrl,
    /// `bounce_address`, if set: reports name touches through it.
    pub bounce_address: Option<String>,
    /// The right-hand side of Tend's `Message-ID`s (see
    /// [`crate::delivery::message_id_domain`]).
    pub message_id_domain: String,
    /// Soft bounces that suppress an address.
    pub soft_bounce_limit: u32,
    /// What becomes of handled reports.
    pub after: AfterHandling,
    /// Between polls.
    pub poll_every: Duration,
    /// For `imaps://`: the certificates the server's must chain to instead of the
    /// public roots (`inbound_ca_file`).
    pub trusted: Option<Vec<CertificateDer<'static>>>,
}

impl InboundConfig {
    /// The reader's settings from `[channels.email]`, or `None` when `inbound` is not
    /// set. `instance` is the installation id the `Message-ID`s carry; a relative
    /// `inbound_ca_file` is read from `project_dir`.
    pub fn from_config(
        config: &tend_core::config::Config,
        project_dir: &Path,
        instance: &str,
    ) -> Result<Option<InboundConfig>, InboundSetupError> {
        let email = &config.channels.email;
        let (Some(url), Some(from)) = (&email.inbound, &email.from) else {
            return Ok(None);
        };
        Ok(Some(InboundConfig {
            url: ImapUrl::parse(url.expose())?,
            bounce_address: email.bounce_address.as_ref().map(|a| a.as_str().to_owned()),
            message_id_domain: crate::delivery::message_id_domain(instance, from),
            soft_bounce_limit: email.soft_bounce_limit,
            after: match (&email.inbound_move_to, email.inbound_delete) {
                (Some(folder), _) => AfterHandling::Move(folder.clone()),
                (None, true) => AfterHandling::Delete,
                (None, false) => AfterHandling::Flag,
            },
            poll_every: Duration::from_secs(email.inbound_poll.as_secs()),
            trusted: email
                .inbound_ca_file
                .as_ref()
                .map(|file| read_certificates(&project_dir.join(&file.path)))
                .transpose()?,
        }))
    }
}

/// What one poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollReport {
    /// New messages looked at.
    pub read: usize,
    /// Bounce reports recorded (hard and soft).
    pub bounces: usize,
    /// Complaints recorded.
    pub complaints: usize,
    /// Unsubscribe requests that suppressed an address.
    pub unsubscribes: usize,
    /// Replies recorded as events.
    pub replies: usize,
    /// Messages left alone.
    pub ignored: usize,
}

/// Why a poll stopped.
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    /// Talking to the IMAP server failed; the next poll tries again.
    #[error("IMAP: {0}")]
    Imap(String),
    /// The store failed; the message is read again next time.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<tend_store::StoreError> for InboundError {
    fn from(error: tend_store::StoreError) -> Self {
        InboundError::Engine(EngineError::from(error))
    }
}

/// Reads the inbound mailbox for one engine.
#[derive(Debug)]
pub struct InboundReader {
    config: InboundConfig,
}

/// What became of one message, as its log line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    HardBounce,
    SoftBounce,
    Complaint,
    Unsubscribe,
    /// An unsubscribe request for an address already suppressed.
    AlreadyUnsubscribed,
    Reply,
    /// A reply Tend already recorded.
    RepeatedReply,
    /// A report recorded before (the same message read again).
    Duplicate,
    /// A report or reply naming a touch this database does not have.
    UnknownTouch,
    /// A reply from another address than the touch went to.
    ReplyFromAnotherAddress,
    /// Not a report, request or reply Tend understands (or a forged one).
    NotForTend,
    TooLarge,
    /// Expunged before it could be read.
    Gone,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::HardBounce => "hard_bounce",
            Outcome::SoftBounce => "soft_bounce",
            Outcome::Complaint => "complaint",
            Outcome::Unsubscribe => "unsubscribe",
            Outcome::AlreadyUnsubscribed => "already_unsubscribed",
            Outcome::Reply => "reply",
            Outcome::RepeatedReply => "repeated_reply",
            Outcome::Duplicate => "duplicate",
            Outcome::UnknownTouch => "unknown_touch",
            Outcome::ReplyFromAnotherAddress => "reply_from_another_address",
            Outcome::NotForTend => "left_alone",
            Outcome::TooLarge => "too_large",
            Outcome::Gone => "gone",
        }
    }

    /// A recorded report's outcome: `kind` unless the store knew it already.
    fn of_report(kind: Outcome, recorded: FeedbackOutcome) -> Outcome {
        match recorded {
            FeedbackOutcome::Recorded { .. } => kind,
            FeedbackOutcome::Duplicate => Outcome::Duplicate,
            FeedbackOutcome::UnknownTouch => Outcome::UnknownTouch,
        }
    }
}

/// What became of one message, for marking it.
enum Handled {
    /// A report or request: flagged, moved or deleted as configured.
    Report,
    /// A reply: flagged only, for people to read.
    Reply,
    /// Left alone.
    No,
}

impl InboundReader {
    /// A reader with this configuration.
    pub fn new(config: InboundConfig) -> Self {
        InboundReader { config }
    }

    /// Reads the mailbox until `shutdown`. Where the server offers IDLE, the reader
    /// stays connected after each poll and waits in IDLE, reading new messages as soon
    /// as the server announces them, and polls anyway every `poll_every` (at least
    /// every 29 minutes, RFC 2177's advice). Otherwise, or while the connection keeps
    /// failing, it polls every `poll_every`. A dropped connection is opened again
    /// after 1 s, then 2 s, 4 s… up to `poll_every` while it keeps failing. Failures
    /// are logged; shutdown ends an IDLE at once.
    pub async fn run(self, engine: std::sync::Arc<Engine>, shutdown: CancellationToken) {
        tracing::info!(mailbox = %self.config.url.describe(), "reading the inbound mailbox");
        let mut retry = Backoff::new(self.config.poll_every);
        let mut announced = None;
        loop {
            let connected_at = tokio::time::Instant::now();
            let wait = match self
                .connected_round(&engine, &shutdown, &mut announced)
                .await
            {
                Round::Shutdown => return,
                Round::Polled { idled } => {
                    if idled {
                        // The IDLE connection dropped: reconnect soon, but back off
                        // from a server that keeps dropping it at once.
                        if connected_at.elapsed() >= STABLE_CONNECTION {
                            retry.reset();
                        }
                        retry.next()
                    } else {
                        retry.reset();
                        self.config.poll_every
                    }
                }
                Round::Failed(error) => {
                    let wait = retry.next();
                    tracing::warn!(%error, retry_in = ?wait, "reading the inbound mailbox failed");
                    wait
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One connection: a poll, then, if the server offers IDLE, IDLE and a poll after
    /// each until the connection fails or `shutdown`. Whether the server offers IDLE
    /// is logged the first time and when it changes (`announced`).
    async fn connected_round(
        &self,
        engine: &Engine,
        shutdown: &CancellationToken,
        announced: &mut Option<bool>,
    ) -> Round {
        let mut session =
            match imap::Session::open(&self.config.url, self.config.trusted.as_deref()).await {
                Ok(session) => session,
                Err(error) => return Round::Failed(error),
            };
        // Asked before the poll, so that nothing but the poll runs between its last
        // look for arrivals and the IDLE.
        let offers_idle = match session.offers_idle().await {
            Ok(offers) => offers,
            Err(error) => return Round::Failed(error),
        };
        if let Err(error) = self.read_all(engine, &mut session).await {
            return Round::Failed(error);
        }
        if *announced != Some(offers_idle) {
            *announced = Some(offers_idle);
            if offers_idle {
                tracing::info!(
                    "the mailbox server offers IDLE: new messages are read as they arrive"
                );
            } else {
                tracing::info!(every = ?self.config.poll_every, "the mailbox server does not offer IDLE: polling");
            }
        }
        if !offers_idle {
            session.logout().await;
            return Round::Polled { idled: false };
        }
        let period = self.config.poll_every.min(MAX_IDLE);
        loop {
            session = match session.idle(period, shutdown).await {
                Ok(
                    imap::AfterIdle::NewMessages(session) | imap::AfterIdle::PeriodOver(session),
                ) => session,
                Ok(imap::AfterIdle::Shutdown) => return Round::Shutdown,
                Err(error) => {
                    tracing::warn!(%error, "the inbound mailbox's IDLE connection ended; reconnecting");
                    return Round::Polled { idled: true };
                }
            };
            if let Err(error) = self.read_all(engine, &mut session).await {
                return Round::Failed(error);
            }
        }
    }

    /// Polls on `session` until nothing new is waiting: a poll reads at most
    /// [`BATCH`] messages, and the server may announce more while it runs.
    async fn read_all(
        &self,
        engine: &Engine,
        session: &mut imap::Session,
    ) -> Result<(), InboundError> {
        // Bounded, so a server that announces arrivals after every command cannot keep
        // the reader from idling; whatever is left is read after the next IDLE.
        for _ in 0..MAX_POLLS_IN_A_ROW {
            session.take_arrivals();
            let report = self.poll_session(engine, session).await?;
            if report.read > 0 {
                tracing::info!(?report, "inbound mailbox read");
            }
            if report.read < BATCH && !session.take_arrivals() {
                break;
            }
        }
        Ok(())
    }

    /// Reads the messages that arrived since the last poll, acts on them and marks
    /// the handled ones: one short session.
    pub async fn poll_once(&self, engine: &Engine) -> Result<PollReport, InboundError> {
        let mut session =
            imap::Session::open(&self.config.url, self.config.trusted.as_deref()).await?;
        let report = self.poll_session(engine, &mut session).await?;
        session.logout().await;
        Ok(report)
    }

    /// [`InboundReader::poll_once`] on an open session.
    async fn poll_session(
        &self,
        engine: &Engine,
        session: &mut imap::Session,
    ) -> Result<PollReport, InboundError> {
        let validity = session.uid_validity();
        let store = engine.store();
        // UIDs of another UIDVALIDITY mean nothing: read the mailbox from the start.
        let last = match store.inbound_cursor().await? {
            Some((v, uid)) if v == validity => uid,
            _ => 0,
        };
        let mut report = PollReport::default();
        let uids = session.uids_after(last).await?;
        let mut reports = Vec::new();
        let mut replies = Vec::new();
        let mut cursor = last;
        for uid in uids.into_iter().take(BATCH) {
            report.read += 1;
            let (handled, outcome) = match session.fetch(uid).await? {
                imap::Fetched::TooLarge(size) => {
                    tracing::warn!(uid, size, "inbound message too large to read; left alone");
                    (Handled::No, Outcome::TooLarge)
                }
                imap::Fetched::Gone => (Handled::No, Outcome::Gone),
                imap::Fetched::Message(raw) => self.handle(engine, &raw, &mut report).await?,
            };
            // One line per message, naming what became of it and never whom it is about.
            tracing::info!(uid, outcome = outcome.as_str(), "inbound message");
            match handled {
                Handled::Report => reports.push(uid),
                Handled::Reply => replies.push(uid),
                Handled::No => report.ignored += 1,
            }
            cursor = uid;
        }
        session.mark_replies(&replies).await?;
        session.finish_reports(&reports, &self.config.after).await?;
        if cursor != last {
            store.set_inbound_cursor(validity, cursor).await?;
        }
        if report.replies > 0 {
            engine.wake();
        }
        Ok(report)
    }

    /// Acts on one message.
    async fn handle(
        &self,
        engine: &Engine,
        raw: &[u8],
        report: &mut PollReport,
    ) -> Result<(Handled, Outcome), InboundError> {
        let context = Context {
            bounce_tokens: engine.bounce_tokens(),
            bounce_address: self.config.bounce_address.as_deref(),
            unsubscribe: engine.signer(),
            message_id_domain: &self.config.message_id_domain,
        };
        let inbound = classify(raw, &context);
        let source = format!("imap:{}", message_key(raw));
        let store = engine.store();
        let now = engine.clock().now();
        let soft_bounce_limit = self.config.soft_bounce_limit;
        fn feedback<'a>(
            source: &'a str,
            kind: FeedbackKind,
            touch: i64,
            detail: &'a str,
            soft_bounce_limit: u32,
        ) -> MailFeedback<'a> {
            MailFeedback {
                source,
                kind,
                about: FeedbackAbout::Touch(touch),
                detail,
                soft_bounce_limit,
            }
        }
        match inbound {
            Inbound::Bounce {
                touch,
                hard,
                status,
            } => {
                let kind = if hard {
                    FeedbackKind::HardBounce
                } else {
                    FeedbackKind::SoftBounce
                };
                let outcome = store
                    .record_mail_feedback(
                        &feedback(&source, kind, touch, &status, soft_bounce_limit),
                        now,
                    )
                    .await?;
                tracing::debug!(touch, %status, hard, ?outcome, "bounce report");
                report.bounces += usize::from(outcome != FeedbackOutcome::UnknownTouch);
                let kind = if hard {
                    Outcome::HardBounce
                } else {
                    Outcome::SoftBounce
                };
                Ok((handled_if_known(outcome), Outcome::of_report(kind, outcome)))
            }
            Inbound::Complaint {
                touch,
                feedback_type,
            } => {
                let outcome = store
                    .record_mail_feedback(
                        &feedback(
                            &source,
                            FeedbackKind::Complaint,
                            touch,
                            &feedback_type,
                            soft_bounce_limit,
                        ),
                        now,
                    )
                    .await?;
                tracing::debug!(touch, %feedback_type, ?outcome, "complaint");
                report.complaints += usize::from(outcome != FeedbackOutcome::UnknownTouch);
                Ok((
                    handled_if_known(outcome),
                    Outcome::of_report(Outcome::Complaint, outcome),
                ))
            }
            Inbound::Unsubscribe(target) => {
                let changed = match target {
                    UnsubscribeTarget::Address(key) => {
                        let key = tend_store::suppression::hex(&key);
                        let outcome = store
                            .record_mail_feedback(
                                &MailFeedback {
                                    about: FeedbackAbout::AddressKey(&key),
                                    ..feedback(
                                        &source,
                                        FeedbackKind::Unsubscribe,
                                        0,
                                        "mailto",
                                        soft_bounce_limit,
                                    )
                                },
                                now,
                            )
                            .await?;
                        matches!(outcome, FeedbackOutcome::Recorded { suppressed: true })
                    }
                    UnsubscribeTarget::LegacyContact(id) => {
                        store
                            .suppress_contact(tend_core::ContactId(id), "unsubscribed", now)
                            .await?
                    }
                };
                report.unsubscribes += usize::from(changed);
                let outcome = if changed {
                    Outcome::Unsubscribe
                } else {
                    Outcome::AlreadyUnsubscribed
                };
                Ok((Handled::Report, outcome))
            }
            Inbound::Reply {
                touch,
                from,
                subject,
            } => {
                let Some(recipient) = store.touch_recipient(TouchId(touch)).await? else {
                    tracing::warn!(touch, "a reply to an unknown touch; left alone");
                    return Ok((Handled::No, Outcome::UnknownTouch));
                };
                let from_key = engine.address_keys().key(&from);
                if recipient.address_key.as_deref() != Some(from_key.as_str()) {
                    // Anyone can write In-Reply-To; only the person mailed counts.
                    tracing::warn!(
                        touch,
                        "a reply from another address than the touch went to; left alone"
                    );
                    return Ok((Handled::No, Outcome::ReplyFromAnotherAddress));
                }
                let new = store
                    .track_for_contact(
                        recipient.contact,
                        REPLIED_EVENT,
                        &source,
                        serde_json::json!({ "touch_id": touch, "subject": subject }),
                        None,
                        now,
                    )
                    .await?;
                tracing::debug!(touch, contact = recipient.contact.0, new, "reply");
                report.replies += usize::from(new);
                let outcome = if new {
                    Outcome::Reply
                } else {
                    Outcome::RepeatedReply
                };
                Ok((Handled::Reply, outcome))
            }
            Inbound::Other(why) => {
                // Says what the message is not, never who sent it.
                tracing::info!(%why, "inbound message left alone");
                Ok((Handled::No, Outcome::NotForTend))
            }
        }
    }
}

fn handled_if_known(outcome: FeedbackOutcome) -> Handled {
    match outcome {
        FeedbackOutcome::UnknownTouch => {
            tracing::warn!("a report naming a touch this database does not have; left alone");
            Handled::No
        }
        _ => Handled::Report,
    }
}

/// A message's identity for recording it once: its `Message-ID` where it has one,
/// else a digest of its bytes.
fn message_key(raw: &[u8]) -> String {
    let parsed = mail_parser::MessageParser::default().parse_headers(raw);
    match parsed.as_ref().and_then(|m| m.message_id()) {
        Some(id) if !id.trim().is_empty() && id.len() <= 250 => format!("<{}>", id.trim()),
        _ => tend_store::suppression::hex(&Sha256::digest(raw)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_known_by_its_message_id_or_its_digest() {
        let with = b"Message-ID: <abc@example.com>\r\nSubject: x\r\n\r\nbody";
        assert_eq!(message_key(with), "<abc@example.com>");
        let without = b"Subject: x\r\n\r\nbody";
        assert_eq!(message_key(without).len(), 64);
    }
}
