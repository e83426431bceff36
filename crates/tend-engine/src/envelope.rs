//! Per-message envelope senders (VERP): each email leaves with
//! `bounces+<touch token>@domain` as its SMTP `MAIL FROM`, so a bounce report that
//! arrives days later at the bounce mailbox names the exact touch (and so its contact
//! and address) it is about.
//!
//! The token is `<touch id>-<MAC>`: the MAC is the first 10 bytes (80 bits, hex) of
//! HMAC-SHA256 under the install's secret over a domain tag and the touch id, so nobody
//! can make Tend suppress an address by mailing a report with a made-up token. Lowercase
//! hex survives mail systems that fold the case of local parts.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

/// Separates envelope tokens' MACs from every other MAC made with the same secret.
const DOMAIN: &[u8] = b"tend-envelope-v1";
/// Bytes of MAC kept: 80 bits is beyond any online guessing, and keeps the local part
/// of the address within its 64 characters.
const TAG_LEN: usize = 10;

/// Makes and checks the touch tokens in envelope senders.
#[derive(Clone)]
pub struct BounceTokens {
    /// Already keyed, so each token costs a clone instead of a key schedule.
    mac: Hmac<Sha256>,
}

impl BounceTokens {
    /// Tokens under `secret`, the install's secret bytes.
    pub fn new(secret: &[u8]) -> Self {
        BounceTokens {
            mac: <Hmac<Sha256> as Mac>::new_from_slice(secret)
                .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length")),
        }
    }

    /// The token of a touch: `<id>-<20 hex digits>`.
    pub fn token(&self, touch_id: i64) -> String {
        let tag = self.keyed(touch_id).finalize().into_bytes();
        let mut token = format!("{touch_id}-");
        for byte in &tag[..TAG_LEN] {
            token.push_str(&format!("{byte:02x}"));
        }
        token
    }

    /// The touch a genuine token names, or `None` for anything else (upper case is
    /// accepted, since some systems fold local parts).
    pub fn verify(&self, token: &str) -> Option<i64> {
        let (id, tag) = token.split_once('-')?;
        if id.is_empty() || id.len() > 19 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if tag.len() != TAG_LEN * 2 {
            return None;
        }
        let touch_id: i64 = id.parse().ok()?;
        let mut raw = [0u8; TAG_LEN];
        for (i, slot) in raw.iter_mut().enumerate() {
            *slot = u8::from_str_radix(tag.get(i * 2..i * 2 + 2)?, 16).ok()?;
        }
        // Constant-time comparison of the truncated MAC.
        self.keyed(touch_id).verify_truncated_left(&raw).ok()?;
        Some(touch_id)
    }

    /// The envelope sender of a touch's email: `bounce_address` with `+<token>` added
    /// to its local part.
    pub fn envelope_sender(&self, bounce_address: &str, touch_id: i64) -> String {
        match bounce_address.rsplit_once('@') {
            Some((local, domain)) => format!("{local}+{}@{domain}", self.token(touch_id)),
            None => bounce_address.to_owned(),
        }
    }

    /// The touch named by a genuine token in any address of `text` of the form
    /// `<local>+<token>@<domain>` for the bounce address's local part and domain
    /// (compared without case), e.g. a report's `To` or `Delivered-To` header.
    pub fn find_in(&self, bounce_address: &str, text: &str) -> Option<i64> {
        let (local, domain) = bounce_address.rsplit_once('@')?;
        let lower = text.to_ascii_lowercase();
        let prefix = format!("{}+", local.to_ascii_lowercase());
        let suffix = format!("@{}", domain.to_ascii_lowercase());
        let mut from = 0;
        while let Some(found) = lower[from..].find(&prefix) {
            let start = from + found;
            from = start + prefix.len();
            // The local part must start here, not inside a longer one.
            let boundary = start == 0
                || !lower.as_bytes()[start - 1].is_ascii_alphanumeric()
                    && !matches!(lower.as_bytes()[start - 1], b'.' | b'-' | b'_' | b'+');
            if !boundary {
                continue;
            }
            let rest = &lower[from..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .unwrap_or(rest.len());
            if !rest[end..].starts_with(&suffix) {
                continue;
            }
            if let Some(touch) = self.verify(&rest[..end]) {
                return Some(touch);
            }
        }
        None
    }

    fn keyed(&self, touch_id: i64) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(DOMAIN);
        mac.update(&touch_id.to_be_bytes());
        mac
    }
}

impl fmt::Debug for BounceTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BounceTokens")
            .field("key", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tokens() -> BounceTokens {
        BounceTokens::new(b"0123456789abcdef0123456789abcdef")
    }

    #[test]
    fn a_token_names_its_touch() {
        let tokens = tokens();
        for id in [0, 1, 42, i64::MAX] {
            assert_eq!(tokens.verify(&tokens.token(id)), Some(id));
        }
    }

    #[test]
    fn the_envelope_sender_fits_an_address() {
        let sender = tokens().envelope_sender("bounces@studio.example", 12);
        assert!(sender.starts_with("bounces+12-"), "{sender}");
        assert!(sender.ends_with("@studio.example"), "{sender}");
        // The longest local part config allows, and the longest touch id.
        let longest = "b".repeat(tend_core::config::MAX_BOUNCE_LOCAL_PART);
        let sender = tokens().envelope_sender(&format!("{longest}@studio.example"), i64::MAX);
        let (local, _) = sender.rsplit_once('@').unwrap();
        assert!(local.len() <= 64, "{sender}");
        assert!(
            local
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'+' || b == b'-'),
            "{sender}"
        );
    }

    #[test]
    fn tokens_are_found_in_report_headers() {
        let tokens = tokens();
        let sender = tokens.envelope_sender("bounces@studio.example", 77);
        let upper = sender.to_ascii_uppercase();
        for header in [
            sender.clone(),
            format!("<{sender}>"),
            format!("Mail Delivery <{upper}>"),
            format!("x@y.example, \"B\" <{sender}>"),
        ] {
            assert_eq!(
                tokens.find_in("bounces@studio.example", &header),
                Some(77),
                "{header}"
            );
        }
        for header in [
            // Another domain, another mailbox, a mailbox that merely ends alike.
            sender.replace("studio.example", "other.example"),
            sender.replace("bounces+", "replies+"),
            sender.replace("bounces+", "xbounces+"),
            "bounces@studio.example".to_owned(),
        ] {
            assert_eq!(
                tokens.find_in("bounces@studio.example", &header),
                None,
                "{header}"
            );
        }
    }

    #[test]
    fn forged_tokens_are_refused() {
        let tokens = tokens();
        let token = tokens.token(5);
        let other_touch = token.replacen('5', "6", 1);
        let other_key = BounceTokens::new(b"another key entirely, 32 bytes!!").token(5);
        for bad in [
            "",
            "5",
            "5-",
            "-abc",
            &other_touch,
            &other_key,
            &token[..token.len() - 1],
            &format!("{token}0"),
            &format!("+{token}"),
            "99999999999999999999-00000000000000000000",
        ] {
            assert_eq!(tokens.verify(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn debug_does_not_print_the_key() {
        let debug = format!("{:?}", BounceTokens::new(b"super-secret-key"));
        assert!(!debug.contains("super-secret-key"), "{debug}");
    }

    proptest! {
        #[test]
        fn any_change_to_the_mac_is_refused(id in 0i64..i64::MAX, index in 0usize..20, digit in 0u8..16) {
            let tokens = tokens();
            let token = tokens.token(id);
            let mac_start = token.find('-').unwrap() + 1;
            let mut bytes = token.into_bytes();
            let new = b"0123456789abcdef"[usize::from(digit)];
            prop_assume!(bytes[mac_start + index] != new);
            bytes[mac_start + index] = new;
            prop_assert_eq!(tokens.verify(&String::from_utf8(bytes).unwrap()), None);
        }
    }
}
