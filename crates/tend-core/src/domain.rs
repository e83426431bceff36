//! Domain newtypes, built only through `parse`, so a value in hand is a valid value.

use std::fmt;

/// A contact's database id.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContactId(pub i64);

impl fmt::Display for ContactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An email address, trimmed and lower-cased so one person has one address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Email(String);

/// Why an email address was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// Not of the shape the sender accepts; `reason` says which part is wrong.
    #[error("`{address}` is not an email address: {reason}")]
    Invalid {
        /// The address as given, trimmed.
        address: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Longer than SMTP allows.
    #[error("email address is longer than {MAX_EMAIL_BYTES} characters")]
    TooLong,
}

/// The longest address SMTP carries (RFC 5321's 256-byte path less its brackets).
const MAX_EMAIL_BYTES: usize = 254;
/// The longest local part (before the `@`), RFC 5321 section 4.5.3.1.1.
const MAX_LOCAL_BYTES: usize = 64;
/// The longest domain label, RFC 1035.
const MAX_LABEL_BYTES: usize = 63;

impl Email {
    /// Accepts `local@domain.tld` by the rules the sender (lettre, via the
    /// `email_address` crate) applies, narrowed to what people actually use, so an
    /// address accepted here is never one the sender rejects later: the local part is
    /// dot-separated atoms (RFC 5322 `atext`, or letters of any script) with no empty
    /// piece — so `.x`, `x.` and `x..y` are refused — and at most 64 bytes; the domain
    /// has at least two labels of letters, digits and inner hyphens, each at most 63
    /// bytes. Quoted local parts and IP literals, which the sender would take, are
    /// refused as almost always typing mistakes. Checked after trimming and
    /// lower-casing, on the very text that is stored and sent.
    pub fn parse(text: &str) -> Result<Self, EmailError> {
        let normalized = text.trim().to_lowercase();
        if normalized.len() > MAX_EMAIL_BYTES {
            return Err(EmailError::TooLong);
        }
        let invalid = |reason| EmailError::Invalid {
            address: text.trim().to_owned(),
            reason,
        };
        let (local, domain) = normalized
            .rsplit_once('@')
            .ok_or_else(|| invalid("it has no `@`"))?;
        check_local_part(local).map_err(invalid)?;
        check_domain(domain).map_err(invalid)?;
        Ok(Email(normalized))
    }

    /// The normalized address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_local_part(local: &str) -> Result<(), &'static str> {
    if local.is_empty() {
        return Err("nothing before the `@`");
    }
    if local.len() > MAX_LOCAL_BYTES {
        return Err("the part before the `@` is longer than 64 characters");
    }
    if local.split('.').any(str::is_empty) {
        return Err("the part before the `@` starts or ends with a dot, or has two in a row");
    }
    if !local.chars().all(|c| c == '.' || is_atext(c)) {
        return Err(
            "the part before the `@` has a character addresses cannot hold (a space, `@`, quote, bracket, comma, …)",
        );
    }
    Ok(())
}

fn check_domain(domain: &str) -> Result<(), &'static str> {
    if domain.is_empty() {
        return Err("nothing after the `@`");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err("the domain has no dot (e.g. `example.com`)");
    }
    for label in labels {
        if label.is_empty() {
            return Err("the domain starts or ends with a dot, or has two in a row");
        }
        if label.len() > MAX_LABEL_BYTES {
            return Err("a part of the domain is longer than 63 characters");
        }
        let edges_fine =
            label.starts_with(char::is_alphanumeric) && label.ends_with(char::is_alphanumeric);
        if !edges_fine || !label.chars().all(|c| c == '-' || c.is_alphanumeric()) {
            return Err(
                "the domain may hold only letters, digits, dots and hyphens, and each part must start and end with a letter or digit",
            );
        }
    }
    Ok(())
}

/// RFC 5322 `atext`, and any non-ASCII character except spacing, control and
/// invisible formatting ones (the sender takes all non-ASCII; these never belong in
/// an address and can disguise one).
fn is_atext(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
    } else {
        !c.is_whitespace()
            && !c.is_control()
            && !matches!(
                c,
                '\u{AD}'
                    | '\u{61C}'
                    | '\u{180E}'
                    | '\u{200B}'..='\u{200F}'
                    | '\u{202A}'..='\u{202E}'
                    | '\u{2060}'..='\u{206F}'
                    | '\u{FEFF}'
                    | '\u{FFF9}'..='\u{FFFB}'
            )
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Email {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Email::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The name of a relationship stage (`prospect`, `lead`, …). Whether it is one of the
/// configured stages is checked against `[stages] order`, not here.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StageName(String);

impl StageName {
    /// Wraps a stage name; the caller checks it against the configured order.
    pub fn new(name: impl Into<String>) -> Self {
        StageName(name.into())
    }

    /// The name as written in config.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A valid IANA time-zone name such as `Europe/Rome`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct TimeZoneName(String);

impl TimeZoneName {
    /// Accepts only names jiff's time-zone database knows.
    pub fn parse(name: &str) -> Result<Self, String> {
        let name = name.trim();
        jiff::tz::TimeZone::get(name)
            .map(|_| TimeZoneName(name.to_owned()))
            .map_err(|_| format!("`{name}` is not a known IANA time zone (e.g. `Europe/Rome`)"))
    }

    /// The zone name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The zone itself, for local-time arithmetic.
    pub fn time_zone(&self) -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::get(&self.0).expect("validated at parse")
    }
}

impl fmt::Display for TimeZoneName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for TimeZoneName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        TimeZoneName::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(
            Email::parse("  Ann@Example.COM ").unwrap().as_str(),
            "ann@example.com"
        );
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "a b@example.com",
            "ann@.com",
            "ann@example..com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn addresses_the_sender_would_refuse_are_refused_with_a_reason() {
        let reason = |text: &str| Email::parse(text).unwrap_err().to_string();
        assert_eq!(
            reason(".dot..x@example.com"),
            "`.dot..x@example.com` is not an email address: the part before the `@` starts or ends with a dot, or has two in a row"
        );
        for bad in [
            "x.@example.com",
            "a..b@example.com",
            "a(b)@example.com",
            "a\\b@example.com",
            "\"a b\"@example.com",
            "a@-example.com",
            "a@example-.com",
            "a@exa_mple.com",
            "a@ex!ample.com",
            "a\u{200B}b@example.com",
            "a@[127.0.0.1]",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} should be rejected");
        }
        assert!(reason(&format!("{}@example.com", "a".repeat(65))).contains("longer than 64"));
        assert!(reason(&format!("a@{}.com", "b".repeat(64))).contains("longer than 63"));
        for good in [
            "o'brien+tag@example.com",
            "a.b-c_d@sub.example.co.uk",
            "josé@exämple.com",
            "x{y}|z~@example.com",
            "1@2.3",
        ] {
            assert!(Email::parse(good).is_ok(), "{good} should be accepted");
        }
    }

    #[test]
    fn time_zones_must_exist() {
        assert!(TimeZoneName::parse("Europe/Rome").is_ok());
        assert!(TimeZoneName::parse("Mars/Olympus").is_err());
    }
}
