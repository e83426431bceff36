//! Where admitted touches go: the real channels (SMTP or the outbox folder, signed
//! webhooks) in `tend serve`, a model of the population in the simulator.

use crate::dkim::{DkimKeyError, DkimSigner};
use crate::email::{EmailConfig, EmailSender, EmailSetupError, OutgoingEmail, smtp_url_from};
use crate::send::SendError;
use crate::webhook::{WebhookSender, WebhookSetupError};
use async_trait::async_trait;
use jiff::Timestamp;
use std::path::Path;
use std::sync::Arc;
use tend_core::config::Config;

/// One email touch, rendered, ready for its channel.
#[derive(Debug, Clone, Copy)]
pub struct EmailTouch<'a> {
    /// The touch id; the Message-ID derives from it.
    pub touch_id: i64,
    /// The id of the process it belongs to (its file stem).
    pub process: &'a str,
    /// The template it was rendered from.
    pub template: &'a str,
    /// Recipient address.
    pub to_email: &'a str,
    /// Recipient display name.
    pub to_name: Option<&'a str>,
    /// Rendered subject.
    pub subject: &'a str,
    /// Rendered Markdown body.
    pub markdown_body: &'a str,
    /// The one-click unsubscribe link.
    pub unsubscribe_url: &'a str,
    /// The signed token inside that link, for the mailto alternative.
    pub unsubscribe_token: &'a str,
    /// The signed touch token for the envelope sender (see [`crate::envelope`]).
    pub bounce_token: &'a str,
}

/// The channels the engine dispatches through.
#[async_trait]
pub trait Delivery: Send + Sync + 'static {
    /// Sends one email.
    async fn email(&self, email: &EmailTouch<'_>) -> Result<(), SendError>;

    /// Posts one webhook; `id` is the same on every attempt of one touch.
    async fn webhook(
        &self,
        url: &str,
        id: &str,
        body: &serde_json::Value,
        at: Timestamp,
    ) -> Result<(), SendError>;

    /// Deletes every copy the channel kept of these email touches (the outbox's
    /// `.eml` files), for an erasure. Channels that keep nothing have nothing to do.
    async fn erase_copies(&self, _touch_ids: &[i64]) -> Result<(), SendError> {
        Ok(())
    }
}

/// The right-hand side of this installation's `Message-ID`s: the installation id and
/// the `From` domain, so replies can be told from those to another Tend's mail.
pub fn message_id_domain(instance: &str, from: &tend_core::config::Mailbox) -> String {
    let domain = from
        .email
        .as_str()
        .rsplit_once('@')
        .map_or("tend.invalid", |(_, d)| d);
    format!("{instance}.{domain}")
}

/// What can stop the real channels from starting.
#[derive(Debug, thiserror::Error)]
pub enum DeliverySetupError {
    /// The email channel.
    #[error("email: {0}")]
    Email(#[from] EmailSetupError),
    /// The webhook channel.
    #[error("webhooks: {0}")]
    Webhook(#[from] WebhookSetupError),
    /// The DKIM key.
    #[error("email: {0}")]
    Dkim(#[from] DkimKeyError),
}

/// The DKIM signer `[channels.email] dkim_*` asks for, its key read from the file
/// (relative to `project_dir`); `None` when DKIM is not configured.
pub fn dkim_signer(
    config: &Config,
    project_dir: &Path,
) -> Result<Option<DkimSigner>, DkimKeyError> {
    let Some(dkim) = &config.channels.email.dkim else {
        return Ok(None);
    };
    let path = project_dir.join(&dkim.key_file.path);
    DkimSigner::from_file(&path, &dkim.domain, &dkim.selector).map(Some)
}

/// SMTP (or `.eml` files in `outbox/`) and signed webhooks, as `tend.toml` says.
pub struct ChannelDelivery {
    email: Option<EmailSender>,
    webhook: WebhookSender,
    mailto: Option<String>,
    /// `[channels.email] bounce_address`, split at its `@`.
    bounce_address: Option<(String, String)>,
}

impl ChannelDelivery {
    /// Builds the channels. `TEND_SMTP_URL` in `smtp_url_env` overrides the config's
    /// `smtp_url`; without either, emails are written to `outbox/` beside `tend.toml`.
    /// `instance` makes Message-IDs unique to this installation.
    pub fn new(
        config: &Config,
        project_dir: &Path,
        smtp_url_env: Option<String>,
        instance: &str,
    ) -> Result<ChannelDelivery, DeliverySetupError> {
        let email = match &config.channels.email.from {
            Some(from) => {
                let smtp_url = smtp_url_from(
                    config.channels.email.smtp_url.as_ref().map(|s| s.expose()),
                    smtp_url_env,
                );
                Some(EmailSender::new(EmailConfig {
                    from: from.clone(),
                    smtp_url,
                    outbox_dir: project_dir.join("outbox"),
                    message_id_domain: message_id_domain(instance, from),
                    pool_size: config.dispatch.workers,
                    dkim: dkim_signer(config, project_dir)?.map(Arc::new),
                })?)
            }
            None => None,
        };
        let mailto = config
            .channels
            .email
            .from
            .as_ref()
            .map(|from| from.email.as_str().to_owned());
        let webhook =
            WebhookSender::new(config.channels.webhook.secret.as_ref().map(|s| s.expose()))?;
        let bounce_address = config.channels.email.bounce_address.as_ref().and_then(|a| {
            a.as_str()
                .rsplit_once('@')
                .map(|(local, domain)| (local.to_owned(), domain.to_owned()))
        });
        Ok(ChannelDelivery {
            email,
            webhook,
            mailto,
            bounce_address,
        })
    }

    /// The email channel's sender, when `[channels.email] from` is set.
    pub fn email_sender(&self) -> Option<&EmailSender> {
        self.email.as_ref()
    }

    /// Where email goes, for the log at start (no credentials).
    pub fn describe_email(&self) -> String {
        match &self.email {
            Some(sender) => match sender.dkim() {
                Some(dkim) => {
                    let (name, _) = dkim.dns_record();
                    format!(
                        "{}, DKIM-signed ({}, key at {name})",
                        sender.describe(),
                        dkim.algorithm()
                    )
                }
                None => sender.describe(),
            },
            None => "nowhere: [channels.email] from is not set".into(),
        }
    }

    /// Closes pooled SMTP connections.
    pub async fn shutdown(&self) {
        if let Some(sender) = &self.email {
            sender.shutdown().await;
        }
    }
}

#[async_trait]
impl Delivery for ChannelDelivery {
    async fn email(&self, email: &EmailTouch<'_>) -> Result<(), SendError> {
        let (Some(sender), Some(mailbox)) = (&self.email, &self.mailto) else {
            return Err(SendError::Fatal(
                "[channels.email] from is not set in tend.toml".into(),
            ));
        };
        let mailto = format!(
            "mailto:{mailbox}?subject=unsubscribe%20{}",
            email.unsubscribe_token
        );
        let envelope_from = self
            .bounce_address
            .as_ref()
            .map(|(local, domain)| format!("{local}+{}@{domain}", email.bounce_token));
        sender
            .send(&OutgoingEmail {
                touch_id: email.touch_id,
                to_email: email.to_email,
                to_name: email.to_name,
                subject: email.subject,
                markdown_body: email.markdown_body,
                unsubscribe_url: email.unsubscribe_url,
                unsubscribe_mailto: &mailto,
                envelope_from: envelope_from.as_deref(),
            })
            .await
    }

    async fn webhook(
        &self,
        url: &str,
        id: &str,
        body: &serde_json::Value,
        at: Timestamp,
    ) -> Result<(), SendError> {
        self.webhook.send(url, id, body, at).await
    }

    async fn erase_copies(&self, touch_ids: &[i64]) -> Result<(), SendError> {
        match &self.email {
            Some(sender) => sender.erase_copies(touch_ids).await,
            None => Ok(()),
        }
    }
}
