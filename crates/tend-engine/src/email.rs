//! The email channel: one `multipart/alternative` message per touch, over pooled SMTP
//! ([`crate::smtp_pool`]) or into an outbox folder of `.eml` files when no SMTP server
//! is configured.
//!
//! Delivery is at-least-once (a crash between send and commit resends the touch), so
//! every message's `Message-ID` is derived from its touch: receivers and the outbox
//! both collapse the duplicates.

use crate::dkim::DkimSigner;
use crate::markdown;
use crate::outbox::{erase_outbox, write_outbox};
use crate::send::{SendError, error_chain};
use crate::smtp_pool::{Endpoint, PoolError, SmtpPool};
pub use crate::smtp_pool::{RelayProbe, TlsMode};
use lettre::address::Envelope;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox as LettreMailbox, MultiPart, SinglePart};
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Address, Message};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tend_core::config::Mailbox;

/// How long one SMTP send (connection, commands and data) may take before it counts
/// as a transient failure; every network step of a send falls within it.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// What the email channel needs to know, resolved from `[channels.email]`.
#[derive(Clone)]
pub struct EmailConfig {
    /// The `From` header.
    pub from: Mailbox,
    /// `smtp://[user:password@]host[:port][?tls=required]` or `smtps://…`; `None`
    /// writes `.eml` files to `outbox_dir` instead.
    pub smtp_url: Option<String>,
    /// Where `.eml` files go without SMTP.
    pub outbox_dir: PathBuf,
    /// The right-hand side of every `Message-ID`, e.g. the sender's domain.
    pub message_id_domain: String,
    /// Most SMTP connections open at once: as many as sends in flight, so none waits
    /// for a connection.
    pub pool_size: u32,
    /// Signs each message when set (`[channels.email] dkim_*`).
    pub dkim: Option<Arc<DkimSigner>>,
}

impl fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailConfig")
            .field("from", &self.from.to_string())
            .field("smtp_url", &self.smtp_url.as_deref().map(redact_url))
            .field("outbox_dir", &self.outbox_dir)
            .field("message_id_domain", &self.message_id_domain)
            .field("pool_size", &self.pool_size)
            .field("dkim", &self.dkim)
            .finish()
    }
}

/// The SMTP URL to use: the environment's (`TEND_SMTP_URL`) when set and not blank,
/// else the config file's, so deployments can inject credentials without editing it.
pub fn smtp_url_from(config_value: Option<&str>, env_value: Option<String>) -> Option<String> {
    env_value
        .filter(|value| !value.trim().is_empty())
        .or_else(|| config_value.map(str::to_owned))
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// One email to send, its body already rendered by MiniJinja.
#[derive(Debug, Clone, Copy)]
pub struct OutgoingEmail<'a> {
    /// The touch this email delivers; it names the `Message-ID` and outbox file.
    pub touch_id: i64,
    /// Recipient address.
    pub to_email: &'a str,
    /// Recipient display name.
    pub to_name: Option<&'a str>,
    /// Subject line.
    pub subject: &'a str,
    /// Markdown body, rendered as both the text and the HTML part.
    pub markdown_body: &'a str,
    /// The signed `https://…/unsubscribe/{token}` link.
    pub unsubscribe_url: &'a str,
    /// `mailto:…` for `List-Unsubscribe`; empty to leave it out.
    pub unsubscribe_mailto: &'a str,
    /// The SMTP envelope sender (`MAIL FROM`), where bounce reports go: a per-touch
    /// address (see [`crate::envelope`]); `None` uses the `From` address.
    pub envelope_from: Option<&'a str>,
}

/// Why an [`EmailSender`] could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EmailSetupError {
    /// `smtp_url` cannot be used; the URL itself is not repeated since it may hold a
    /// password.
    #[error("smtp_url is invalid: {0}")]
    InvalidSmtpUrl(String),
    /// The `From` address is not one SMTP accepts.
    #[error("the From address `{0}` is invalid")]
    InvalidFrom(String),
    /// The `Message-ID` domain is not a host name.
    #[error("message_id_domain `{0}` is not a domain name")]
    InvalidMessageIdDomain(String),
    /// Extra root certificates could not be read or used.
    #[error("invalid root certificate: {0}")]
    InvalidCertificate(String),
}

/// The stable `Message-ID` of a touch's email: `<tend.touch.{id}@{domain}>`.
pub fn message_id(touch_id: i64, domain: &str) -> String {
    format!("<tend.touch.{touch_id}@{domain}>")
}

/// Builds the full message for one touch: text and HTML alternatives with an
/// unsubscribe footer, a touch-derived `Message-ID` and RFC 8058 unsubscribe headers.
pub fn build_message(
    from: &Mailbox,
    email: &OutgoingEmail<'_>,
    domain: &str,
) -> Result<Message, SendError> {
    let from_address: Address = from.email.as_str().parse().map_err(|e| {
        SendError::Fatal(format!(
            "invalid From address `{}`: {e}",
            from.email.as_str()
        ))
    })?;
    let from_name = from
        .name
        .as_deref()
        .map(|name| header_text(name, MAX_DISPLAY_NAME_CHARS))
        .filter(|n| !n.is_empty());
    let from = LettreMailbox::new(from_name, from_address);
    let to_address: Address = email.to_email.trim().parse().map_err(|e| {
        SendError::Fatal(format!(
            "invalid recipient address `{}`: {e}",
            email.to_email
        ))
    })?;
    let to_name = email
        .to_name
        .map(|name| header_text(name, MAX_DISPLAY_NAME_CHARS))
        .filter(|n| !n.is_empty());
    let to = LettreMailbox::new(to_name, to_address);

    let unsubscribe_url = email.unsubscribe_url.trim();
    if !is_header_safe_uri(unsubscribe_url)
        || !(unsubscribe_url.starts_with("https://") || unsubscribe_url.starts_with("http://"))
    {
        return Err(SendError::Fatal(format!(
            "unsubscribe URL {unsubscribe_url:?} is not an http(s) URL"
        )));
    }
    let mailto = email.unsubscribe_mailto.trim();
    if !mailto.is_empty() && (!is_header_safe_uri(mailto) || !mailto.starts_with("mailto:")) {
        return Err(SendError::Fatal(format!(
            "unsubscribe address {mailto:?} is not a mailto: URI"
        )));
    }
    let list_unsubscribe = if mailto.is_empty() {
        format!("<{unsubscribe_url}>")
    } else {
        format!("<{unsubscribe_url}>, <{mailto}>")
    };

    let subject = header_text(email.subject, MAX_SUBJECT_CHARS);
    // A template that links `{{ unsubscribe_url }}` itself (the starter ones do) shows
    // that link in both parts already; a second footer would only repeat it.
    let footer_url =
        (!markdown::links_to(email.markdown_body, unsubscribe_url)).then_some(unsubscribe_url);
    let mut text = markdown::to_text(email.markdown_body);
    match footer_url {
        Some(url) => {
            text.push_str(&format!(
                "\n\n-- \nTo stop receiving these emails, unsubscribe: {url}\n"
            ));
        }
        None => text.push('\n'),
    }
    let html = html_document(
        &subject,
        &markdown::to_html(email.markdown_body),
        footer_url,
    );

    let mut builder = Message::builder()
        .from(from)
        .to(to)
        .subject(subject)
        .message_id(Some(message_id(email.touch_id, domain)))
        .date_now()
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe"),
            list_unsubscribe,
        ));
    // RFC 8058 one-click only applies to an HTTPS link; a plain-http link (local
    // development) keeps List-Unsubscribe without promising one-click.
    if unsubscribe_url.starts_with("https://") {
        builder = builder.raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
            "List-Unsubscribe=One-Click".to_owned(),
        ));
    }
    builder
        .multipart(
            MultiPart::alternative()
                .singlepart(SinglePart::plain(text))
                .singlepart(SinglePart::html(html)),
        )
        .map_err(|e| SendError::Fatal(format!("cannot build the email: {e}")))
}

/// A minimal HTML document around the rendered body, with an unsubscribe footer
/// linking `footer_url` when there is one.
fn html_document(subject: &str, body_html: &str, footer_url: Option<&str>) -> String {
    let title = markdown::escape_html(subject);
    let footer = footer_url.map_or_else(String::new, |url| {
        format!(
            "<hr>\n<p style=\"font-size:small;color:#666\">To stop receiving these emails, \
             <a href=\"{}\">unsubscribe</a>.</p>\n",
            markdown::escape_html(url)
        )
    });
    format!(
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n</head>\n<body>\n{body_html}{footer}</body>\n</html>\n"
    )
}

/// The longest display name put in `From`/`To`: no one's name is longer, and a
/// contact-supplied one should not grow the header without bound.
const MAX_DISPLAY_NAME_CHARS: usize = 256;

/// The longest subject line, in characters, before it is cut.
const MAX_SUBJECT_CHARS: usize = 998;

/// Makes text (often contact data) fit for one header value: line breaks, control
/// characters and other whitespace become single spaces, bidirectional overrides
/// (which can make a name read as someone else's) are dropped, and the result is
/// trimmed and cut at `max_chars`. lettre then quotes or RFC 2047-encodes what is
/// left, so nothing in it can end the header or add an address.
fn header_text(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars * 4));
    let mut chars = 0;
    let mut space = false;
    for c in text.chars() {
        if c.is_whitespace() || c.is_control() {
            space = !out.is_empty();
            continue;
        }
        if is_bidi_control(c) {
            continue;
        }
        if chars + usize::from(space) + 1 > max_chars {
            break;
        }
        if space {
            out.push(' ');
            chars += 1;
            space = false;
        }
        out.push(c);
        chars += 1;
    }
    out
}

/// Marks and overrides that reorder how text is displayed.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Whether `uri` can sit between `<` and `>` in a header without ending it early.
fn is_header_safe_uri(uri: &str) -> bool {
    !uri.is_empty()
        && uri
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b',' | b'"'))
}

/// Where an [`EmailSender`] delivers.
enum Transport {
    Smtp(Smtp),
    Outbox(PathBuf),
}

/// Pooled SMTP connections to the configured server.
struct Smtp {
    /// Holds the credentials; never printed.
    pool: Arc<SmtpPool>,
    /// How many idle connections the pool keeps, to rebuild it with other roots.
    pool_size: usize,
    /// The URL without credentials, for logs.
    description: String,
}

/// Sends touch emails over pooled SMTP connections, or writes them to the outbox.
pub struct EmailSender {
    from: Mailbox,
    message_id_domain: String,
    transport: Transport,
    dkim: Option<Arc<DkimSigner>>,
}

impl fmt::Debug for EmailSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailSender")
            .field("from", &self.from.to_string())
            .field("transport", &self.describe())
            .field("dkim", &self.dkim)
            .finish()
    }
}

impl EmailSender {
    /// Checks the configuration and prepares the transport; nothing connects (and no
    /// Tokio runtime is needed) until the first send.
    pub fn new(config: EmailConfig) -> Result<EmailSender, EmailSetupError> {
        config
            .from
            .email
            .as_str()
            .parse::<Address>()
            .map_err(|_| EmailSetupError::InvalidFrom(config.from.email.as_str().to_owned()))?;
        let domain = config.message_id_domain.trim();
        let valid_domain = !domain.is_empty()
            && domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'));
        if !valid_domain {
            return Err(EmailSetupError::InvalidMessageIdDomain(
                config.message_id_domain.clone(),
            ));
        }
        let transport = match config.smtp_url.as_deref() {
            Some(url) => smtp_transport(url, config.pool_size)?,
            None => Transport::Outbox(config.outbox_dir),
        };
        Ok(EmailSender {
            from: config.from,
            message_id_domain: domain.to_owned(),
            transport,
            dkim: config.dkim,
        })
    }

    /// Where mail goes, safe to log: `smtp://host:2525` without credentials, or
    /// `outbox /path/outbox`.
    pub fn describe(&self) -> String {
        match &self.transport {
            Transport::Smtp(smtp) => smtp.description.clone(),
            Transport::Outbox(dir) => format!("outbox {}", dir.display()),
        }
    }

    /// The DKIM signer, when mail is signed.
    pub fn dkim(&self) -> Option<&DkimSigner> {
        self.dkim.as_deref()
    }

    /// Sends one touch's email, classifying failures for the dispatcher.
    pub async fn send(&self, email: &OutgoingEmail<'_>) -> Result<(), SendError> {
        let message = build_message(&self.from, email, &self.message_id_domain)?;
        let envelope = envelope(&message, email)?;
        let formatted = message.formatted();
        let message = match &self.dkim {
            Some(signer) => signer.sign(&formatted),
            None => formatted,
        };
        match &self.transport {
            Transport::Smtp(smtp) => {
                let deadline = tokio::time::Instant::now() + SEND_TIMEOUT;
                let bytes = message;
                match smtp.pool.send(&envelope, &bytes, deadline).await {
                    Ok(_response) => Ok(()),
                    Err(PoolError::Smtp(error)) => Err(classify(&error)),
                    Err(PoolError::TimedOut { step }) => Err(SendError::Retryable(format!(
                        "SMTP: {step} timed out (the limit for one send is {}s)",
                        SEND_TIMEOUT.as_secs()
                    ))),
                    // No connection, no TLS, or shutting down: nothing about this
                    // message, so it waits.
                    Err(other) => Err(SendError::Retryable(format!("SMTP: {other}"))),
                }
            }
            Transport::Outbox(dir) => {
                let dir = dir.clone();
                let touch_id = email.touch_id;
                // The header a delivering server adds: the outbox copy shows where its
                // bounces would go.
                let mut bytes = match envelope.from() {
                    Some(sender) if email.envelope_from.is_some() => {
                        format!("Return-Path: <{sender}>\r\n").into_bytes()
                    }
                    _ => Vec::new(),
                };
                bytes.extend_from_slice(&message);
                tokio::task::spawn_blocking(move || write_outbox(&dir, touch_id, &bytes))
                    .await
                    .map_err(|e| SendError::Retryable(format!("outbox writer stopped: {e}")))?
                    .map_err(|e| SendError::Retryable(format!("cannot write to the outbox: {e}")))
            }
        }
    }

    /// Deletes the outbox copies of these touches' emails; a missing file is fine.
    pub async fn erase_copies(&self, touch_ids: &[i64]) -> Result<(), SendError> {
        let Transport::Outbox(dir) = &self.transport else {
            return Ok(());
        };
        let dir = dir.clone();
        let ids = touch_ids.to_vec();
        tokio::task::spawn_blocking(move || erase_outbox(&dir, &ids))
            .await
            .map_err(|e| SendError::Retryable(format!("outbox eraser stopped: {e}")))?
            .map_err(|e| SendError::Retryable(format!("cannot erase from the outbox: {e}")))
    }

    /// Opens one trial session with the SMTP relay, as a send would, and closes it:
    /// `None` when mail goes to the outbox; the error names what failed (connecting,
    /// the greeting or EHLO, STARTTLS, the certificate, AUTH) without credentials.
    pub async fn check_relay(&self) -> Option<Result<RelayProbe, String>> {
        let Transport::Smtp(smtp) = &self.transport else {
            return None;
        };
        let deadline = tokio::time::Instant::now() + SEND_TIMEOUT;
        Some(
            smtp.pool
                .endpoint()
                .probe(deadline)
                .await
                .map_err(|error| match error {
                    PoolError::Smtp(error) => error_chain(&error),
                    other => other.to_string(),
                }),
        )
    }

    /// Closes pooled SMTP connections politely (QUIT); sends after this fail.
    pub async fn shutdown(&self) {
        if let Transport::Smtp(smtp) = &self.transport {
            smtp.pool.shutdown().await;
        }
    }

    /// The same sender also trusting the PEM certificate(s) in `pem` as roots for the
    /// SMTP server's TLS certificate, for a relay behind a private certificate
    /// authority. Call before the first send: it starts a fresh pool.
    pub fn with_root_certificates(mut self, pem: &[u8]) -> Result<EmailSender, EmailSetupError> {
        let roots = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| EmailSetupError::InvalidCertificate(e.to_string()))?;
        if roots.is_empty() {
            return Err(EmailSetupError::InvalidCertificate(
                "no PEM certificate found".into(),
            ));
        }
        if let Transport::Smtp(smtp) = &mut self.transport {
            let endpoint = smtp
                .pool
                .endpoint()
                .clone()
                .with_extra_roots(&roots)
                .map_err(EmailSetupError::InvalidCertificate)?;
            smtp.pool = SmtpPool::new(endpoint, smtp.pool_size);
        }
        Ok(self)
    }
}

/// The message's envelope, with the touch's own sender when it has one.
fn envelope(message: &Message, email: &OutgoingEmail<'_>) -> Result<Envelope, SendError> {
    let Some(sender) = email.envelope_from else {
        return Ok(message.envelope().clone());
    };
    let sender: Address = sender
        .parse()
        .map_err(|e| SendError::Fatal(format!("invalid envelope sender `{sender}`: {e}")))?;
    Envelope::new(Some(sender), message.envelope().to().to_vec())
        .map_err(|e| SendError::Fatal(format!("cannot build the envelope: {e}")))
}

/// Builds the pooled SMTP transport for `url`, never echoing it in errors.
fn smtp_transport(url: &str, pool_size: u32) -> Result<Transport, EmailSetupError> {
    let parsed = reqwest::Url::parse(url.trim())
        .map_err(|e| EmailSetupError::InvalidSmtpUrl(format!("not a URL ({e})")))?;
    let scheme = parsed.scheme();
    if !matches!(scheme, "smtp" | "smtps") {
        return Err(EmailSetupError::InvalidSmtpUrl(format!(
            "scheme must be smtp or smtps, not `{scheme}`"
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(EmailSetupError::InvalidSmtpUrl("no host".into()));
    }
    if parsed.username().is_empty() && parsed.password().is_some() {
        return Err(EmailSetupError::InvalidSmtpUrl(
            "a password needs a user name".into(),
        ));
    }
    for (key, value) in parsed.query_pairs() {
        let known = key == "tls" && matches!(&*value, "required" | "opportunistic");
        if !known {
            return Err(EmailSetupError::InvalidSmtpUrl(format!(
                "unknown parameter `{key}={value}`; supported: tls=required, tls=opportunistic"
            )));
        }
    }
    // The same reading of the URL as lettre's `from_url`: default ports by mode, the
    // path as the EHLO name, credentials only with a password.
    let tls = parsed
        .query_pairs()
        .find(|(key, _)| key == "tls")
        .map(|(_, value)| value.into_owned());
    let (mode, default_port) = match (scheme, tls.as_deref()) {
        ("smtps", _) => (TlsMode::Implicit, 465),
        (_, Some("required")) => (TlsMode::Required, 587),
        (_, Some("opportunistic")) => (TlsMode::Opportunistic, 587),
        _ => (TlsMode::None, 25),
    };
    let hello = Some(parsed.path().trim_matches('/'))
        .filter(|name| !name.is_empty())
        .map(str::to_owned);
    let credentials = match parsed.password() {
        Some(password) => {
            let decode = |text: &str| {
                percent_encoding::percent_decode_str(text)
                    .decode_utf8()
                    .map(|decoded| decoded.into_owned())
                    .map_err(|_| {
                        EmailSetupError::InvalidSmtpUrl(
                            "the user name or password is not UTF-8 once decoded".into(),
                        )
                    })
            };
            Some(Credentials::new(
                decode(parsed.username())?,
                decode(password)?,
            ))
        }
        None => None,
    };
    let host = parsed.host_str().unwrap_or_default();
    let endpoint = Endpoint::new(
        host,
        parsed.port().unwrap_or(default_port),
        mode,
        hello,
        credentials,
        &[],
    )
    .map_err(EmailSetupError::InvalidSmtpUrl)?;
    let pool_size = usize::try_from(pool_size).unwrap_or(usize::MAX).max(1);
    Ok(Transport::Smtp(Smtp {
        pool: SmtpPool::new(endpoint, pool_size),
        pool_size,
        description: redact_url(url),
    }))
}

/// `scheme://host:port` plus the TLS mode, without credentials; for logs.
fn redact_url(url: &str) -> String {
    let Ok(parsed) = reqwest::Url::parse(url.trim()) else {
        return "<invalid smtp_url>".to_owned();
    };
    let mut shown = format!("{}://{}", parsed.scheme(), parsed.host_str().unwrap_or(""));
    if let Some(port) = parsed.port() {
        shown.push_str(&format!(":{port}"));
    }
    if let Some((_, tls)) = parsed.query_pairs().find(|(key, _)| key == "tls") {
        shown.push_str(&format!("?tls={tls}"));
    }
    shown
}

/// Maps an SMTP client error to what the dispatcher should do.
fn classify(error: &SmtpError) -> SendError {
    if let Some(code) = error.status() {
        // The error's source is the server's reply text.
        let reply = std::error::Error::source(error)
            .map(ToString::to_string)
            .unwrap_or_default();
        return classify_reply(u16::from(code), &reply);
    }
    let text = error_chain(error);
    if error.is_client() && !text.to_ascii_lowercase().contains("auth") {
        // The client refused this message itself (e.g. non-ASCII the server cannot
        // carry); sending it again changes nothing.
        return SendError::Fatal(format!("SMTP: {text}"));
    }
    // Connection refused, timeouts, TLS and I/O errors, garbled replies, and missing
    // authentication support: all about the server or its configuration, never about
    // this message, so the mail waits until they are fixed.
    SendError::Retryable(format!("SMTP: {text}"))
}

/// Classifies a negative SMTP reply by its code and text.
///
/// lettre does not say which command a reply answered, so a rejected recipient is
/// recognised by what it says: an RFC 3463 enhanced status `5.1.x` (bad destination
/// address) or `5.2.1` (mailbox disabled), or, without one, the RFC 5321 codes for an
/// unavailable, non-local or disallowed mailbox. Replies about the sender, relaying or
/// policy mention so and are not bounces: marking every contact bounced because the
/// relay refused us would be far worse than failing one touch.
fn classify_reply(code: u16, reply: &str) -> SendError {
    let message = format!("SMTP server answered {code} {}", reply.trim());
    if code < 500 {
        return SendError::Retryable(message);
    }
    // Authentication and TLS-required answers mean our credentials or settings are
    // wrong; every email would fail the same way, so they wait for the fix.
    if matches!(code, 530 | 534 | 535 | 538) {
        return SendError::Retryable(message);
    }
    let lower = reply.to_ascii_lowercase();
    let about_us = [
        "sender",
        "relay",
        "spam",
        "policy",
        "blocked",
        "blacklist",
        "blocklist",
        "reputation",
        "authenticat",
    ]
    .iter()
    .any(|word| lower.contains(word));
    let bounced = match enhanced_status(reply) {
        // 5.1.7 and 5.1.8 are about the sender's address, not the recipient's.
        Some((5, 1, detail)) => !matches!(detail, 7 | 8) && !about_us,
        Some((5, 2, 1)) => !about_us,
        Some(_) => false,
        None => matches!(code, 550 | 551 | 553 | 556) && !about_us,
    };
    if bounced {
        SendError::Bounced(message)
    } else {
        SendError::Fatal(message)
    }
}

/// The RFC 3463 enhanced status code (`class.subject.detail`) a reply starts with.
fn enhanced_status(reply: &str) -> Option<(u16, u16, u16)> {
    let word = reply.split_whitespace().next()?;
    let mut parts = word.splitn(3, '.');
    let class = parts.next()?.parse().ok()?;
    let subject = parts.next()?.parse().ok()?;
    let detail = parts.next()?.parse().ok()?;
    Some((class, subject, detail))
}

#[cfg(test)]
mod tests;
