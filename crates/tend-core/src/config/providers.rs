//! `[channels.email.providers.*]`: the mail providers whose event webhooks Tend
//! accepts (bounces, complaints, unsubscribes reported after the send), and how each
//! proves a request is its own.
//!
//! Secrets are never written in `tend.toml` itself, which is often committed: each is
//! named by an environment variable (`*_env`) or a file beside `tend.toml` (`*_file`).
//! This crate does no IO, so the binary reads them and points a problem at the key.

use super::ConfigFile;
use crate::check::{Fields, Report};

/// `[channels.email.providers]`: each provider set here gets its webhook route.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MailProviders {
    /// `[channels.email.providers.postmark]`.
    pub postmark: Option<PostmarkWebhook>,
    /// `[channels.email.providers.mailgun]`.
    pub mailgun: Option<MailgunWebhook>,
    /// `[channels.email.providers.sendgrid]`.
    pub sendgrid: Option<SendgridWebhook>,
}

/// Postmark authenticates its webhooks with HTTP basic auth: the user name and
/// password written into the webhook's URL in Postmark's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostmarkWebhook {
    /// `user`: not a secret.
    pub user: String,
    /// `password_env` or `password_file`.
    pub password: SecretRef,
}

/// Mailgun signs each webhook with an HMAC-SHA256 under the account's webhook signing
/// key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailgunWebhook {
    /// `signing_key_env` or `signing_key_file`.
    pub signing_key: SecretRef,
}

/// SendGrid signs its event webhook with ECDSA P-256; the verification key is public.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendgridWebhook {
    /// `public_key`: base64 of the DER public key, as SendGrid's settings show it.
    pub public_key: String,
    /// The 1-based line of the value in `tend.toml`.
    pub line: usize,
    /// The 1-based column of the value.
    pub col: usize,
}

/// Where a secret is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable of `tend serve`.
    Env(String),
    /// A file; a relative path is from the folder holding `tend.toml`.
    File(String),
}

/// A secret named in `tend.toml`, with the key that names it and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    /// Where to read it.
    pub source: SecretSource,
    /// The key as written (`password_env`), for messages.
    pub key: String,
    /// Where the key's value is in `tend.toml`.
    pub at: ConfigFile,
}

const PROVIDERS: &[&str] = &["postmark", "mailgun", "sendgrid"];

/// Reads `[channels.email.providers]` from the `[channels.email]` table's `providers`.
pub(super) fn read_providers(report: &mut Report<'_>, email: &Fields<'_, '_>) -> MailProviders {
    let mut providers = MailProviders::default();
    let Some(fields) = email
        .get("providers")
        .and_then(|item| Fields::nested(report, item, "[channels.email.providers]", PROVIDERS))
    else {
        return providers;
    };
    if let Some(postmark) = fields.get("postmark").and_then(|item| {
        Fields::nested(
            report,
            item,
            "[channels.email.providers.postmark]",
            &["user", "password_env", "password_file"],
        )
    }) {
        let user = postmark.required_str(report, "user", "the user name in the webhook's URL");
        let user = user.and_then(|user| {
            let text = user.get_ref().trim();
            if text.contains(':') || text.chars().any(char::is_control) {
                report.error(
                    user.span().start,
                    "`user` may not contain `:` or control characters (HTTP basic auth)",
                );
                None
            } else {
                Some(text.to_owned())
            }
        });
        let password = read_secret(report, &postmark, "password");
        if let (Some(user), Some(password)) = (user, password) {
            providers.postmark = Some(PostmarkWebhook { user, password });
        }
    }
    if let Some(mailgun) = fields.get("mailgun").and_then(|item| {
        Fields::nested(
            report,
            item,
            "[channels.email.providers.mailgun]",
            &["signing_key_env", "signing_key_file"],
        )
    }) && let Some(signing_key) = read_secret(report, &mailgun, "signing_key")
    {
        providers.mailgun = Some(MailgunWebhook { signing_key });
    }
    if let Some(sendgrid) = fields.get("sendgrid").and_then(|item| {
        Fields::nested(
            report,
            item,
            "[channels.email.providers.sendgrid]",
            &["public_key"],
        )
    }) && let Some(key) =
        sendgrid.required_str(report, "public_key", "the verification key SendGrid shows")
    {
        let (line, col) = report.position(key.span().start);
        providers.sendgrid = Some(SendgridWebhook {
            public_key: key.get_ref().trim().to_owned(),
            line,
            col,
        });
    }
    providers
}

/// `<name>_env` or `<name>_file`: exactly one.
fn read_secret(report: &mut Report<'_>, fields: &Fields<'_, '_>, name: &str) -> Option<SecretRef> {
    let env_key = format!("{name}_env");
    let file_key = format!("{name}_file");
    let env = fields.str(report, &env_key);
    let file = fields.str(report, &file_key);
    let (key, value) = match (env, file) {
        (Some(env), None) => (env_key, env),
        (None, Some(file)) => (file_key, file),
        (Some(_), Some(file)) => {
            report.error(
                file.span().start,
                format!("set one of `{env_key}` and `{file_key}`, not both"),
            );
            return None;
        }
        (None, None) => {
            fields.missing(
                report,
                &env_key,
                &format!(
                    "(or `{file_key}`): the environment variable holding the {}",
                    name.replace('_', " ")
                ),
            );
            return None;
        }
    };
    let text = value.get_ref().trim();
    let source = if key.ends_with("_env") {
        let valid = text
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            report.error(
                value.span().start,
                format!(
                    "`{key}` must name an environment variable (letters, digits, `_`), such as `TEND_{}`; the secret itself goes in that variable",
                    name.to_ascii_uppercase()
                ),
            );
            return None;
        }
        SecretSource::Env(text.to_owned())
    } else {
        if text.is_empty() {
            report.error(
                value.span().start,
                format!("`{key}` must name the file holding the secret"),
            );
            return None;
        }
        SecretSource::File(text.to_owned())
    };
    let (line, col) = report.position(value.span().start);
    Some(SecretRef {
        source,
        at: ConfigFile {
            path: text.to_owned(),
            line,
            col,
        },
        key,
    })
}

#[cfg(test)]
mod tests {
    use crate::check::{ProjectSources, SourceFile, check_project};
    use crate::config::{MailProviders, SecretSource};

    fn check(providers: &str) -> Result<MailProviders, String> {
        let config = format!(
            "[business]\nname = \"Studio\"\n[channels.email]\nfrom = \"hello@studio.example\"\n{providers}\n"
        );
        let sources = ProjectSources {
            config: SourceFile::new("tend.toml", config),
            processes: vec![],
            templates: vec![],
        };
        check_project(&sources)
            .map(|project| project.config.channels.email.providers.clone())
            .map_err(|diagnostics| {
                diagnostics
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            })
    }

    #[test]
    fn each_provider_reads_its_secret_from_the_environment_or_a_file() {
        let providers = check(
            "[channels.email.providers.postmark]\nuser = \"tend\"\npassword_env = \"TEND_POSTMARK\"\n\
             [channels.email.providers.mailgun]\nsigning_key_file = \"mailgun.key\"\n\
             [channels.email.providers.sendgrid]\npublic_key = \"MFkw\"",
        )
        .unwrap();
        let postmark = providers.postmark.unwrap();
        assert_eq!(postmark.user, "tend");
        assert_eq!(
            postmark.password.source,
            SecretSource::Env("TEND_POSTMARK".into())
        );
        assert_eq!(
            (postmark.password.at.line, postmark.password.at.col),
            (7, 16)
        );
        let mailgun = providers.mailgun.unwrap();
        assert_eq!(
            mailgun.signing_key.source,
            SecretSource::File("mailgun.key".into())
        );
        assert_eq!(providers.sendgrid.unwrap().public_key, "MFkw");
    }

    #[test]
    fn a_bad_provider_table_is_an_error_at_its_key() {
        for (keys, says) in [
            (
                "[channels.email.providers.postmark]\nuser = \"tend\"",
                "tend.toml:5:1: [channels.email.providers.postmark] is missing `password_env`",
            ),
            (
                "[channels.email.providers.postmark]\nuser = \"a:b\"\npassword_env = \"X\"",
                "tend.toml:6:8: `user` may not contain `:`",
            ),
            (
                "[channels.email.providers.mailgun]\nsigning_key_env = \"key-3ax6\"",
                "tend.toml:6:19: `signing_key_env` must name an environment variable",
            ),
            (
                "[channels.email.providers.mailgun]\nsigning_key_env = \"K\"\nsigning_key_file = \"k\"",
                "tend.toml:7:20: set one of `signing_key_env` and `signing_key_file`, not both",
            ),
            (
                "[channels.email.providers.sendgrid]\nkey = \"x\"",
                "tend.toml:6:1: unknown key `key`",
            ),
            (
                "[channels.email.providers.sparkpost]\nkey = \"x\"",
                "unknown key `sparkpost`",
            ),
        ] {
            let errors = check(keys).unwrap_err();
            assert!(errors.contains(says), "{keys}:\n{errors}");
        }
    }
}
