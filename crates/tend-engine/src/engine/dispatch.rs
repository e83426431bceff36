//! Dispatching: admitted touches claimed under a lease, sent through the channels, and
//! their results recorded with the next claims.

use super::consent::catch_panic;
use super::render::ContactFields;
use super::{Engine, EngineError};
use crate::book::BoundProcess;
use crate::delivery::EmailTouch;
use crate::send::SendError;
use jiff::{SignedDuration, Timestamp};
use rand::Rng;
use std::sync::Arc;
use tend_core::process::StepChannel;
use tend_store::{ClaimedTouch, DispatchResult, Lease, TouchKind, Wake};
use tokio_util::sync::CancellationToken;

impl Engine {
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

    /// How long a claim is leased, in the store's milliseconds.
    fn lease_ms(&self) -> i64 {
        i64::try_from(self.settings.lease.as_millis()).unwrap_or(i64::MAX)
    }

    /// Sends one claimed touch and says how it ended, ready to record.
    async fn send(&self, touch: &ClaimedTouch) -> (Lease, Timestamp, DispatchResult) {
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
        (touch.lease(), at, result)
    }

    /// Keeps up to `dispatch_workers` sends in flight. Results are recorded in the same
    /// transaction that claims the next touches, so a busy dispatcher spends one write
    /// per round instead of two per send; a crash can still repeat only what was
    /// claimed, which is never more than the sends in flight.
    pub(super) async fn dispatch_loop(self: Arc<Self>, shutdown: CancellationToken) {
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
                    () = self.coordination.woken(Wake::Dispatch) => {},
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

    /// When a send that failed `attempts` times is tried again: exponential backoff,
    /// capped, with jitter.
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

    /// Sends a claimed touch through its channel: the step's email or webhook, or the
    /// keep-warm email.
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
                self.send_email(claimed, process, &contact, template).await
            }
            (TouchKind::Step, Some((StepChannel::Email { template }, _))) => {
                self.send_email(claimed, process, &contact, template).await
            }
            (TouchKind::Step, Some((StepChannel::Webhook { url }, intent))) => {
                // What started the enrollment, so the receiver need not look it up.
                let trigger = self
                    .store
                    .enrollment_trigger(claimed.enrollment_id)
                    .await
                    .map_err(|e| SendError::Retryable(format!("reading the trigger: {e}")))?;
                let body = serde_json::json!({
                    "type": "tend.touch",
                    "touch_id": claimed.touch.0,
                    "attempt": claimed.attempts,
                    "process": { "id": process.id, "name": process.name },
                    "step": { "index": index, "intent": intent },
                    "contact": claimed.contact,
                    "trigger": trigger,
                });
                let id = format!("tend_touch_{}", claimed.touch.0);
                self.delivery.webhook(url, &id, &body, now).await
            }
            (TouchKind::Step, _) => Err(SendError::Fatal(
                "its step was removed from the process while it waited".into(),
            )),
        }
    }

    /// Renders a template for the contact and hands the email to the delivery.
    async fn send_email(
        &self,
        claimed: &ClaimedTouch,
        process: &tend_core::Process,
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
            process: &process.id,
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
