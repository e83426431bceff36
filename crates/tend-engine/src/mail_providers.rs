//! The keys that prove a mail provider's webhook request is its own, read from where
//! `[channels.email.providers]` says (an environment variable, a file, or for
//! SendGrid's public key the value itself), and the checks made with them.
//!
//! The secrets live only in these types, whose `Debug` never prints them.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::Path;
use tend_core::config::{Config, SecretRef, SecretSource};

/// The DER prefix of a P-256 public key (SubjectPublicKeyInfo: id-ecPublicKey,
/// prime256v1, a 66-byte bit string); the 65-byte uncompressed point follows it.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Secret files larger than this are not secrets; refusing them keeps a wrong path
/// (a log, a database) from being read whole.
const MAX_SECRET_FILE_BYTES: u64 = 4096;

/// The keys of every provider configured.
#[derive(Debug, Default)]
pub struct ProviderKeys {
    /// Postmark's basic-auth credentials.
    pub postmark: Option<PostmarkCredentials>,
    /// Mailgun's webhook signing key.
    pub mailgun: Option<MailgunSigningKey>,
    /// SendGrid's verification key.
    pub sendgrid: Option<SendgridPublicKey>,
}

/// A key that could not be read, with where `tend.toml` names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{key}`: {message}")]
pub struct ProviderKeyError {
    /// The key (`password_env`, `public_key`).
    pub key: String,
    /// The 1-based line of its value in `tend.toml`.
    pub line: usize,
    /// The 1-based column of its value.
    pub col: usize,
    /// What is wrong, never the secret.
    pub message: String,
}

impl ProviderKeys {
    /// Reads every configured provider's key: secrets from the environment (through
    /// `env`, so tests need not change the process's) or from files relative to
    /// `project_dir`. Every problem is returned, each at its key.
    pub fn read(
        config: &Config,
        project_dir: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ProviderKeys, Vec<ProviderKeyError>> {
        let providers = &config.channels.email.providers;
        let mut errors = Vec::new();
        let mut keys = ProviderKeys::default();
        if let Some(postmark) = &providers.postmark {
            match read_secret(&postmark.password, project_dir, &env) {
                Ok(password) => {
                    keys.postmark = Some(PostmarkCredentials {
                        digest: credentials_digest(&postmark.user, &password),
                    });
                }
                Err(error) => errors.push(error),
            }
        }
        if let Some(mailgun) = &providers.mailgun {
            match read_secret(&mailgun.signing_key, project_dir, &env) {
                Ok(key) => keys.mailgun = Some(MailgunSigningKey(key.into_bytes())),
                Err(error) => errors.push(error),
            }
        }
        if let Some(sendgrid) = &providers.sendgrid {
            match SendgridPublicKey::parse(&sendgrid.public_key) {
                Ok(key) => keys.sendgrid = Some(key),
                Err(message) => errors.push(ProviderKeyError {
                    key: "public_key".into(),
                    line: sendgrid.line,
                    col: sendgrid.col,
                    message,
                }),
            }
        }
        if errors.is_empty() {
            Ok(keys)
        } else {
            Err(errors)
        }
    }
}

fn read_secret(
    secret: &SecretRef,
    project_dir: &Path,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<String, ProviderKeyError> {
    let error = |message: String| ProviderKeyError {
        key: secret.key.clone(),
        line: secret.at.line,
        col: secret.at.col,
        message,
    };
    let value = match &secret.source {
        SecretSource::Env(name) => {
            env(name).ok_or_else(|| error(format!("the environment variable {name} is not set")))?
        }
        SecretSource::File(path) => {
            let full = project_dir.join(path);
            let size = std::fs::metadata(&full)
                .map_err(|e| error(format!("cannot read {}: {e}", full.display())))?
                .len();
            if size > MAX_SECRET_FILE_BYTES {
                return Err(error(format!(
                    "{} is {size} bytes, too large to be a secret",
                    full.display()
                )));
            }
            std::fs::read_to_string(&full)
                .map_err(|e| error(format!("cannot read {}: {e}", full.display())))?
        }
    };
    // Files end with a newline; a secret never does.
    let value = value.trim().to_owned();
    if value.is_empty() {
        return Err(error("the secret is empty".into()));
    }
    Ok(value)
}

/// What Postmark must send as HTTP basic auth, kept as a digest: checking a request
/// compares digests, so the time it takes says nothing about the password.
pub struct PostmarkCredentials {
    digest: [u8; 32],
}

fn credentials_digest(user: &str, password: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(user.as_bytes());
    hasher.update([0]);
    hasher.update(password.as_bytes());
    hasher.finalize().into()
}

impl PostmarkCredentials {
    /// Whether `user` and `password` are the configured ones.
    pub fn accepts(&self, user: &str, password: &str) -> bool {
        credentials_digest(user, password) == self.digest
    }
}

impl fmt::Debug for PostmarkCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PostmarkCredentials(…)")
    }
}

/// Mailgun's webhook signing key.
pub struct MailgunSigningKey(Vec<u8>);

impl MailgunSigningKey {
    /// The key itself, as Mailgun's settings show it.
    pub fn new(key: &str) -> Self {
        MailgunSigningKey(key.as_bytes().to_vec())
    }

    /// Whether `signature` (hex) is the HMAC-SHA256 of `timestamp` followed by
    /// `token` under this key, compared in constant time.
    pub fn verifies(&self, timestamp: &str, token: &str, signature: &str) -> bool {
        let Some(signature) = decode_hex(signature) else {
            return false;
        };
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(timestamp.as_bytes());
        mac.update(token.as_bytes());
        mac.verify_slice(&signature).is_ok()
    }
}

impl fmt::Debug for MailgunSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MailgunSigningKey(…)")
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// SendGrid's event webhook verification key: ECDSA P-256.
#[derive(Debug, Clone)]
pub struct SendgridPublicKey {
    /// The uncompressed point, as ring takes it.
    point: Vec<u8>,
}

impl SendgridPublicKey {
    /// Reads the key as SendGrid shows it: base64 of the DER SubjectPublicKeyInfo,
    /// with or without PEM's `BEGIN`/`END` lines.
    pub fn parse(text: &str) -> Result<Self, String> {
        let body: String = text
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .flat_map(|line| line.chars())
            .filter(|c| !c.is_whitespace())
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| "not base64: paste the verification key SendGrid shows".to_owned())?;
        match der.strip_prefix(&P256_SPKI_PREFIX[..]) {
            Some(point) if point.len() == 65 && point[0] == 4 => Ok(SendgridPublicKey {
                point: point.to_vec(),
            }),
            _ => Err(
                "not an ECDSA P-256 public key (SendGrid's signed event webhook uses P-256)"
                    .to_owned(),
            ),
        }
    }

    /// Whether `signature` (base64 of a DER ECDSA signature) signs `timestamp`
    /// followed by `payload`.
    pub fn verifies(&self, timestamp: &str, payload: &[u8], signature: &str) -> bool {
        let Ok(signature) = base64::engine::general_purpose::STANDARD.decode(signature.trim())
        else {
            return false;
        };
        let mut signed = Vec::with_capacity(timestamp.len() + payload.len());
        signed.extend_from_slice(timestamp.as_bytes());
        signed.extend_from_slice(payload);
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_ASN1,
            &self.point,
        )
        .verify(&signed, &signature)
        .is_ok()
    }

    /// The DER SubjectPublicKeyInfo of an uncompressed P-256 point, base64, as
    /// SendGrid shows its key (for tests that make their own).
    pub fn spki_base64(point: &[u8]) -> String {
        let mut der = P256_SPKI_PREFIX.to_vec();
        der.extend_from_slice(point);
        base64::engine::general_purpose::STANDARD.encode(der)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

    #[test]
    fn a_mailgun_signature_is_checked_against_the_key() {
        // Mailgun's documented example: key, timestamp, token and the signature of them.
        let key = MailgunSigningKey::new("key-3ax6xnjp29jd6fds4gc373sgvjxteol0");
        let timestamp = "1529006854";
        let token = "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0";
        let mut mac = Hmac::<Sha256>::new_from_slice(b"key-3ax6xnjp29jd6fds4gc373sgvjxteol0")
            .expect("any key");
        mac.update(b"1529006854a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0");
        let signature: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(key.verifies(timestamp, token, &signature));
        assert!(!key.verifies("1529006855", token, &signature));
        assert!(!MailgunSigningKey::new("another").verifies(timestamp, token, &signature));
        assert!(!key.verifies(timestamp, token, "zz"));
    }

    #[test]
    fn a_sendgrid_signature_is_checked_against_the_public_key() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let shown = SendgridPublicKey::spki_base64(pair.public_key().as_ref());
        let key = SendgridPublicKey::parse(&shown).unwrap();
        let payload = br#"[{"event":"bounce"}]"#;
        let signed = [b"1600112502".as_slice(), payload].concat();
        let signature = base64::engine::general_purpose::STANDARD
            .encode(pair.sign(&rng, &signed).unwrap().as_ref());
        assert!(key.verifies("1600112502", payload, &signature));
        assert!(!key.verifies("1600112503", payload, &signature));
        assert!(!key.verifies("1600112502", br#"[{"event":"open"}]"#, &signature));
        assert!(!key.verifies("1600112502", payload, "not base64!"));
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{shown}\n-----END PUBLIC KEY-----\n");
        assert!(SendgridPublicKey::parse(&pem).is_ok());
        assert!(SendgridPublicKey::parse("MFkw").is_err());
    }

    #[test]
    fn postmark_credentials_must_match_both_parts() {
        let credentials = PostmarkCredentials {
            digest: credentials_digest("tend", "s3cret"),
        };
        assert!(credentials.accepts("tend", "s3cret"));
        assert!(!credentials.accepts("tend", "s3cre"));
        assert!(!credentials.accepts("ten", "ds3cret"));
        assert_eq!(format!("{credentials:?}"), "PostmarkCredentials(…)");
    }
}
