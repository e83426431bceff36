//! What the engine does for the people it writes to: unsubscribe links that name the
//! address they were mailed to, erasure of every copy, and the install's secrets, which
//! are never silently replaced.

use super::{Engine, EngineError};
use crate::unsubscribe::UnsubscribeTarget;
use tend_core::ContactId;
use tend_store::suppression::{self, Secret};
use tend_store::{Store, StoreError};

/// What an unsubscribe link did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsubscribed {
    /// The address (and the records that hold it) is suppressed from now on.
    Now,
    /// It already was; nothing changed.
    Already,
    /// A link from an earlier release whose contact no longer exists (merged away or
    /// erased): nothing could be changed through it.
    NoLongerOnFile,
}

impl Engine {
    /// Acts on an unsubscribe link: the address it names is suppressed, with every
    /// record it was mailed to that still holds it. `None` if the token is not genuine.
    pub async fn unsubscribe_token(
        &self,
        token: &str,
    ) -> Result<Option<Unsubscribed>, EngineError> {
        let now = self.clock.now();
        let changed = match self.signer.verify(token) {
            None => return Ok(None),
            Some(UnsubscribeTarget::Address(key)) => {
                self.store
                    .unsubscribe_address(&suppression::hex(&key), now)
                    .await?
            }
            Some(UnsubscribeTarget::LegacyContact(id)) => {
                let Some(contact) = self.store.contact(ContactId(id)).await? else {
                    return Ok(Some(Unsubscribed::NoLongerOnFile));
                };
                let by_address = match contact.email.as_deref() {
                    Some(email) => {
                        self.store
                            .unsubscribe_address(&self.keys.key(email), now)
                            .await?
                    }
                    None => false,
                };
                let by_record = contact.suppressed_at.is_none()
                    && self
                        .store
                        .suppress_contact(contact.id, "unsubscribed", now)
                        .await?;
                by_address || by_record
            }
        };
        Ok(Some(if changed {
            Unsubscribed::Now
        } else {
            Unsubscribed::Already
        }))
    }

    /// The public unsubscribe link for an address.
    pub fn unsubscribe_url(&self, email: &str) -> String {
        format!(
            "{}/unsubscribe/{}",
            self.project.config.public_url,
            self.signer.token(&self.keys.key_bytes(email))
        )
    }

    /// Deletes the copy a send just wrote if its contact was erased while it ran.
    pub(super) async fn forget_if_erased(&self, touch: &tend_store::ClaimedTouch) {
        let erased = self
            .erased_in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&touch.touch.0);
        if erased && let Err(error) = self.delivery.erase_copies(&[touch.touch.0]).await {
            tracing::error!(touch = touch.touch.0, %error, "erasing the copy of a send to an erased contact failed");
        }
    }

    /// Erases a contact everywhere Tend keeps a copy: the database (see
    /// [`Store::erase_contact`]) and the copies its channels wrote (outbox files).
    /// Returns `false` if there is no such contact.
    pub async fn erase_contact(&self, contact: ContactId) -> Result<bool, EngineError> {
        let Some(erasure) = self.store.erase_contact(contact, self.clock.now()).await? else {
            return Ok(false);
        };
        // Before the copies go, so a send still writing one deletes it when it ends.
        self.erased_in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(erasure.in_flight.iter().map(|t| t.0));
        let touches: Vec<i64> = erasure.email_touches.iter().map(|t| t.0).collect();
        self.delivery
            .erase_copies(&touches)
            .await
            .map_err(|e| StoreError::EraseIncomplete(format!("outbox copies: {e}")))?;
        Ok(true)
    }
}

/// Runs a future, turning a panic inside it into `Err` with the panic's message.
pub(super) async fn catch_panic<F: std::future::Future>(future: F) -> Result<F::Output, String> {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(move |cx| {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(std::task::Poll::Ready(output)) => std::task::Poll::Ready(Ok(output)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(payload) => std::task::Poll::Ready(Err(payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into()))),
        }
    })
    .await
}

/// This installation's random id, made with the schema: part of every Message-ID, so
/// two installations sending from one domain never share one.
pub async fn instance_id(store: &dyn Store) -> Result<String, EngineError> {
    Ok(suppression::hex(&store.secret(Secret::Instance).await?))
}

/// What `GET /healthz` says of the installation that answers: a short digest of its id,
/// so `tend doctor` can tell whether `public_url` reaches this installation or another,
/// without a public route handing out the id itself.
pub fn health_fingerprint(instance_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(b"tend healthz\0")
        .chain_update(instance_id.trim().to_ascii_lowercase().as_bytes())
        .finalize();
    suppression::hex(&digest[..8])
}
