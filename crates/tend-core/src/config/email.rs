//! `[channels]`: how email and webhooks leave, and where reports about sent email come
//! back.

use super::providers::{MailProviders, read_providers};
use super::{Duration, Email, Mailbox, Secret};
use crate::check::{Fields, Report};

/// The longest local part a `bounce_address` may have: each envelope sender adds `+`
/// and a touch token of up to 40 characters, and a local part may not pass 64.
pub const MAX_BOUNCE_LOCAL_PART: usize = 23;

/// `[channels]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Channels {
    /// `[channels.email]`.
    pub email: EmailChannel,
    /// `[channels.webhook]`.
    pub webhook: WebhookChannel,
}

/// `[channels.email]`.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailChannel {
    /// The From header.
    pub from: Option<Mailbox>,
    /// `smtp://` or `smtps://`; `None` writes `.eml` files to `outbox/` instead.
    pub smtp_url: Option<Secret>,
    /// The mailbox that receives bounce reports. Each email's envelope sender becomes
    /// this address with `+<touch token>` added to its local part (VERP), so a report
    /// arriving days later names the exact touch. `None`: the envelope sender is `from`.
    pub bounce_address: Option<Email>,
    /// The mailbox Tend reads bounce reports, complaints, mailto unsubscribes and
    /// replies from: `imaps://user:password@host[:port]/MAILBOX` (or `imap://` on a
    /// trusted network). `None`: nothing is read.
    pub inbound: Option<Secret>,
    /// How often the mailbox is read: the only reading on a server without IDLE, and
    /// the safety net beside IDLE on one with it.
    pub inbound_poll: Duration,
    /// Where handled reports and unsubscribe requests are moved; `None` flags them
    /// in place. Replies stay where they are for people to read, flagged.
    pub inbound_move_to: Option<String>,
    /// Delete handled reports and unsubscribe requests instead of keeping them.
    pub inbound_delete: bool,
    /// The PEM certificate(s) the inbound server's must chain to instead of the public
    /// roots (a self-signed or private CA's), for `imaps://`.
    pub inbound_ca_file: Option<ConfigFile>,
    /// Soft bounces (of different emails, within 30 days) that suppress an address.
    pub soft_bounce_limit: u32,
    /// DKIM signing of every outgoing email, when `dkim_selector` and `dkim_key_file`
    /// are set.
    pub dkim: Option<Dkim>,
    /// `[channels.email.providers]`: the providers whose event webhooks are accepted.
    pub providers: MailProviders,
}

/// A file named in `tend.toml`, with where it is named: this crate does no IO, so the
/// binary reads it and points a problem with it at the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    /// As written; a relative path is from the folder holding `tend.toml`.
    pub path: String,
    /// The 1-based line of the value in `tend.toml`.
    pub line: usize,
    /// The 1-based column of the value.
    pub col: usize,
}

/// `[channels.email] dkim_*`: how outgoing mail is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dkim {
    /// `dkim_selector`: the key is published at `<selector>._domainkey.<domain>`.
    pub selector: String,
    /// `dkim_domain`, or the `from` address's domain: the `d=` of each signature.
    pub domain: String,
    /// `dkim_key_file`: the private key, PEM (RSA of 2048 bits or more, or Ed25519).
    pub key_file: ConfigFile,
}

impl Default for EmailChannel {
    fn default() -> Self {
        EmailChannel {
            from: None,
            smtp_url: None,
            bounce_address: None,
            inbound: None,
            inbound_poll: Duration::from_secs(60),
            inbound_move_to: None,
            inbound_delete: false,
            inbound_ca_file: None,
            soft_bounce_limit: 3,
            dkim: None,
            providers: MailProviders::default(),
        }
    }
}

/// `[channels.webhook]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WebhookChannel {
    /// Standard Webhooks signing secret.
    pub secret: Option<Secret>,
}

/// Checks a `bounce_address`: an address whose local part can take a `+token`.
fn parse_bounce_address(text: &str) -> Result<Email, String> {
    let email = Email::parse(text).map_err(|e| e.to_string())?;
    let local = email
        .as_str()
        .rsplit_once('@')
        .map_or("", |(local, _)| local);
    if local.contains('+') {
        return Err(format!(
            "`{email}` already has a `+` in it; give the plain mailbox (e.g. `bounces@example.com`): \
             Tend adds `+<touch token>` to it"
        ));
    }
    if local.starts_with('"') {
        return Err(format!(
            "`{email}`: a quoted local part cannot take a token"
        ));
    }
    if local.len() > MAX_BOUNCE_LOCAL_PART {
        return Err(format!(
            "the part before `@` in `{email}` is longer than {MAX_BOUNCE_LOCAL_PART} characters, \
             leaving no room for the touch token"
        ));
    }
    Ok(email)
}

/// The `inbound*` keys and `soft_bounce_limit`.
fn read_inbound(report: &mut Report<'_>, fields: &Fields<'_, '_>, email: &mut EmailChannel) {
    if let Some(url) = fields.str(report, "inbound") {
        let text = url.get_ref().trim();
        match check_inbound_url(text) {
            Ok(()) => email.inbound = Some(Secret::new(text)),
            // The URL holds a password: the message never repeats it.
            Err(reason) => report.error(url.span().start, format!("`inbound`: {reason}")),
        }
    }
    if let Some(poll) = fields.parsed(report, "inbound_poll", Duration::parse) {
        if *poll.get_ref() < Duration::from_secs(10) {
            report.error(poll.span().start, "`inbound_poll` must be at least 10s");
        }
        email.inbound_poll = poll.into_inner();
    }
    if let Some(folder) = fields.str(report, "inbound_move_to") {
        let name = folder.get_ref().trim();
        if name.is_empty()
            || name
                .chars()
                .any(|c| c.is_control() || c == '"' || c == '\\')
        {
            report.error(
                folder.span().start,
                "`inbound_move_to` must be a mailbox name without quotes, backslashes or control characters",
            );
        } else {
            email.inbound_move_to = Some(name.to_owned());
        }
    }
    if let Some(delete) = fields.bool(report, "inbound_delete") {
        email.inbound_delete = *delete.get_ref();
    }
    if let Some(file) = fields.str(report, "inbound_ca_file") {
        let path = file.get_ref().trim();
        let imaps = email
            .inbound
            .as_ref()
            .is_some_and(|url| url.expose().starts_with("imaps://"));
        if path.is_empty() {
            report.error(
                file.span().start,
                "`inbound_ca_file` must name a PEM file of certificates",
            );
        } else if !imaps {
            report.error(
                file.span().start,
                "`inbound_ca_file` is for an `imaps://` inbound mailbox; set one or remove this",
            );
        } else {
            let (line, col) = report.position(file.span().start);
            email.inbound_ca_file = Some(ConfigFile {
                path: path.to_owned(),
                line,
                col,
            });
        }
    }
    if let Some(limit) = fields.count(report, "soft_bounce_limit") {
        if *limit.get_ref() == 0 {
            report.error(limit.span().start, "`soft_bounce_limit` must be at least 1");
        }
        email.soft_bounce_limit = *limit.get_ref();
    }
    if email.inbound_delete && email.inbound_move_to.is_some() {
        report.error(
            fields.at(),
            "[channels.email] sets both `inbound_move_to` and `inbound_delete`; choose one",
        );
    }
}

/// Whether `text` is a DNS name as DKIM's selectors and domains are written: labels of
/// letters, digits and inner hyphens, joined by dots.
fn is_dns_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// The `dkim_*` keys: all or nothing, the domain defaulting to `from`'s.
fn read_dkim(report: &mut Report<'_>, fields: &Fields<'_, '_>, email: &mut EmailChannel) {
    let selector = fields.str(report, "dkim_selector");
    let key_file = fields.str(report, "dkim_key_file");
    let domain = fields.str(report, "dkim_domain");
    let (selector, key_file) = match (selector, key_file) {
        (Some(selector), Some(key_file)) => (selector, key_file),
        (None, None) => {
            if let Some(domain) = domain {
                report.error(
                    domain.span().start,
                    "`dkim_domain` needs `dkim_selector` and `dkim_key_file` to sign with",
                );
            }
            return;
        }
        (Some(given), None) | (None, Some(given)) => {
            report.error(
                given.span().start,
                "DKIM needs both `dkim_selector` and `dkim_key_file`; set the other or remove this one",
            );
            return;
        }
    };
    let mut clean = true;
    let selector_text = selector.get_ref().trim();
    if !is_dns_name(selector_text) {
        report.error(
            selector.span().start,
            format!(
                "`dkim_selector` must be a DNS label such as `tend2026` (letters, digits, inner hyphens and dots), not `{selector_text}`"
            ),
        );
        clean = false;
    }
    let path = key_file.get_ref().trim();
    if path.is_empty() {
        report.error(
            key_file.span().start,
            "`dkim_key_file` must name the PEM file holding the private key",
        );
        clean = false;
    }
    let domain = match domain {
        Some(domain) => {
            let text = domain
                .get_ref()
                .trim()
                .trim_end_matches('.')
                .to_ascii_lowercase();
            if !is_dns_name(&text) {
                report.error(
                    domain.span().start,
                    format!(
                        "`dkim_domain` must be a domain name such as `example.com`, not `{text}`"
                    ),
                );
                clean = false;
            }
            text
        }
        None => match &email.from {
            Some(from) => from
                .email
                .as_str()
                .rsplit_once('@')
                .map(|(_, domain)| domain.to_ascii_lowercase())
                .unwrap_or_default(),
            None => {
                report.error(
                    selector.span().start,
                    "DKIM signs for the `from` address's domain: set `from` (or `dkim_domain`)",
                );
                return;
            }
        },
    };
    if !clean {
        return;
    }
    let (line, col) = report.position(key_file.span().start);
    email.dkim = Some(Dkim {
        selector: selector_text.to_owned(),
        domain,
        key_file: ConfigFile {
            path: path.to_owned(),
            line,
            col,
        },
    });
}

/// `imap://` or `imaps://`, a user, a password and a host; the path names the mailbox
/// (INBOX when absent).
fn check_inbound_url(text: &str) -> Result<(), String> {
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err("expected imaps://user:password@host/INBOX".into());
    };
    if !matches!(scheme, "imap" | "imaps") {
        return Err(format!(
            "the scheme must be imaps:// (or imap:// on a trusted network), not `{scheme}://`"
        ));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    let Some((credentials, host)) = authority.rsplit_once('@') else {
        return Err(
            "give the mailbox's user and password: imaps://user:password@host/INBOX".into(),
        );
    };
    if !credentials.contains(':') || credentials.starts_with(':') {
        return Err(
            "give the mailbox's user and password: imaps://user:password@host/INBOX".into(),
        );
    }
    if host.is_empty() || host.starts_with(':') {
        return Err("no host".into());
    }
    Ok(())
}

pub(super) fn read_channels(report: &mut Report<'_>, top: &Fields<'_, '_>) -> Channels {
    let mut channels = Channels::default();
    let Some(fields) = top
        .get("channels")
        .and_then(|item| Fields::nested(report, item, "[channels]", &["email", "webhook"]))
    else {
        return channels;
    };
    if let Some(email) = fields.get("email").and_then(|item| {
        Fields::nested(
            report,
            item,
            "[channels.email]",
            &[
                "from",
                "smtp_url",
                "bounce_address",
                "inbound",
                "inbound_poll",
                "inbound_move_to",
                "inbound_delete",
                "inbound_ca_file",
                "soft_bounce_limit",
                "dkim_selector",
                "dkim_key_file",
                "dkim_domain",
                "providers",
            ],
        )
    }) {
        channels.email.from = email
            .parsed(report, "from", Mailbox::parse)
            .map(|m| m.into_inner());
        if let Some(url) = email.str(report, "smtp_url") {
            let text = url.get_ref().trim();
            if text.starts_with("smtp://") || text.starts_with("smtps://") {
                channels.email.smtp_url = Some(Secret::new(text));
            } else {
                report.error(
                    url.span().start,
                    "`smtp_url` must start with smtp:// or smtps:// (e.g. `smtp://127.0.0.1:2525`)",
                );
            }
        }
        channels.email.bounce_address = email
            .parsed(report, "bounce_address", parse_bounce_address)
            .map(|m| m.into_inner());
        read_inbound(report, &email, &mut channels.email);
        read_dkim(report, &email, &mut channels.email);
        channels.email.providers = read_providers(report, &email);
    }
    if let Some(webhook) = fields
        .get("webhook")
        .and_then(|item| Fields::nested(report, item, "[channels.webhook]", &["secret"]))
        && let Some(secret) = webhook.str(report, "secret")
    {
        if secret.get_ref().trim().is_empty() {
            report.error(
                secret.span().start,
                "`secret` must not be empty; remove it to send webhooks unsigned",
            );
        } else {
            channels.webhook.secret = Some(Secret::new(secret.get_ref().trim()));
        }
    }
    channels
}

#[cfg(test)]
mod tests {
    use crate::check::{ProjectSources, SourceFile, check_project};

    fn errors(email_keys: &str) -> String {
        let config = format!(
            "[business]\nname = \"Studio\"\n[channels.email]\nfrom = \"hello@studio.example\"\n{email_keys}\n"
        );
        let sources = ProjectSources {
            config: SourceFile::new("tend.toml", config),
            processes: vec![],
            templates: vec![],
        };
        match check_project(&sources) {
            Ok(project) => {
                assert!(project.config.channels.email.inbound.is_some() || email_keys.is_empty());
                String::new()
            }
            Err(diagnostics) => format!("{diagnostics:?}"),
        }
    }

    #[test]
    fn the_inbound_mailbox_is_checked_without_repeating_its_password() {
        assert_eq!(
            errors("inbound = \"imaps://bounces:pw@mail.example/INBOX\"\ninbound_poll = \"2m\""),
            ""
        );
        for (keys, says) in [
            ("inbound = \"pop3://u:hunter2@mail.example\"", "imaps://"),
            (
                "inbound = \"imaps://mail.example/INBOX\"",
                "user and password",
            ),
            ("inbound = \"imaps://u:hunter2@\"", "no host"),
            (
                "inbound = \"imaps://u:hunter2@h\"\ninbound_poll = \"1s\"",
                "at least 10s",
            ),
            (
                "inbound = \"imaps://u:hunter2@h\"\ninbound_move_to = \"Done\"\ninbound_delete = true",
                "choose one",
            ),
            (
                "inbound = \"imaps://u:hunter2@h\"\nsoft_bounce_limit = 0",
                "at least 1",
            ),
            (
                "inbound = \"imap://u:hunter2@h\"\ninbound_ca_file = \"ca.pem\"",
                "is for an `imaps://` inbound",
            ),
        ] {
            let text = errors(keys);
            assert!(text.contains(says), "{keys}: {text}");
            assert!(!text.contains("hunter2"), "{keys}: {text}");
        }
    }
}
