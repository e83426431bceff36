//! Signed unsubscribe tokens: `/unsubscribe/{token}` must work without a login, yet
//! nobody may unsubscribe someone else by guessing or editing a link.
//!
//! A token names the address it was mailed to, not a contact record: records merge,
//! change address and get erased, and the person who clicks means that address. It is
//! base64url (no padding) of the address's suppression key (32 bytes, see
//! [`tend_store::suppression::AddressKeys`], which reveals neither the address nor a
//! contact id) followed by the first 16 bytes (128 bits) of HMAC-SHA256 over a domain
//! tag and that key. The tag keeps these MACs from ever matching a MAC the same secret
//! makes for another purpose.
//!
//! Links mailed by earlier releases carry a contact id instead (tag `-v1`); they still
//! verify, so no link already in someone's inbox stops working.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

/// Separates address tokens' MACs from any other use of the same key; bump the version
/// to invalidate every link ever sent.
const DOMAIN: &[u8] = b"tend-unsubscribe-v2";
/// Links of earlier releases, which named a contact id.
const LEGACY_DOMAIN: &[u8] = b"tend-unsubscribe-v1";
/// Bytes of the address key in a token.
const ADDRESS_LEN: usize = 32;
/// Bytes of the contact id in a legacy token.
const ID_LEN: usize = 8;
/// Bytes of MAC kept: 128 bits is far beyond what an online guesser can try.
const TAG_LEN: usize = 16;

/// What a genuine token names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsubscribeTarget {
    /// The suppression key of the address the email went to.
    Address([u8; ADDRESS_LEN]),
    /// A contact id, from a link an earlier release mailed.
    LegacyContact(i64),
}

/// Makes and checks unsubscribe tokens with one secret key.
#[derive(Clone)]
pub struct UnsubscribeSigner {
    /// Already keyed, so each token costs a clone instead of a key schedule.
    mac: Hmac<Sha256>,
}

impl UnsubscribeSigner {
    /// A signer for `key`, the install's secret (see
    /// [`tend_store::suppression::SECRET_KEY`]); HMAC accepts keys of any length.
    pub fn new(key: &[u8]) -> Self {
        UnsubscribeSigner {
            mac: <Hmac<Sha256> as Mac>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length")),
        }
    }

    /// Fresh random key material.
    pub fn generate_key() -> [u8; 32] {
        rand::random()
    }

    /// The token for the address with this suppression key: 64 URL-safe characters.
    pub fn token(&self, address_key: &[u8; ADDRESS_LEN]) -> String {
        let tag = self.keyed(DOMAIN, address_key).finalize().into_bytes();
        let mut raw = [0u8; ADDRESS_LEN + TAG_LEN];
        raw[..ADDRESS_LEN].copy_from_slice(address_key);
        raw[ADDRESS_LEN..].copy_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// A token in the format earlier releases mailed, naming a contact id; for tests
    /// of links already in inboxes.
    pub fn legacy_token(&self, contact_id: i64) -> String {
        let id = contact_id.to_be_bytes();
        let tag = self.keyed(LEGACY_DOMAIN, &id).finalize().into_bytes();
        let mut raw = [0u8; ID_LEN + TAG_LEN];
        raw[..ID_LEN].copy_from_slice(&id);
        raw[ID_LEN..].copy_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// What a genuine token names, or `None` for anything else.
    pub fn verify(&self, token: &str) -> Option<UnsubscribeTarget> {
        // Reject other lengths before decoding so a huge path costs nothing.
        let (domain, payload) = if token.len() == encoded_len(ADDRESS_LEN + TAG_LEN) {
            (DOMAIN, ADDRESS_LEN)
        } else if token.len() == encoded_len(ID_LEN + TAG_LEN) {
            (LEGACY_DOMAIN, ID_LEN)
        } else {
            return None;
        };
        let raw = URL_SAFE_NO_PAD.decode(token).ok()?;
        if raw.len() != payload + TAG_LEN {
            return None;
        }
        let (named, tag) = raw.split_at(payload);
        // Constant-time comparison of the truncated MAC.
        self.keyed(domain, named).verify_truncated_left(tag).ok()?;
        Some(if payload == ADDRESS_LEN {
            UnsubscribeTarget::Address(named.try_into().ok()?)
        } else {
            UnsubscribeTarget::LegacyContact(i64::from_be_bytes(named.try_into().ok()?))
        })
    }

    fn keyed(&self, domain: &[u8], named: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(domain);
        mac.update(named);
        mac
    }
}

/// Length of `bytes` in unpadded base64.
const fn encoded_len(bytes: usize) -> usize {
    (bytes * 4).div_ceil(3)
}

impl fmt::Debug for UnsubscribeSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnsubscribeSigner")
            .field("key", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn signer() -> UnsubscribeSigner {
        UnsubscribeSigner::new(b"0123456789abcdef0123456789abcdef")
    }

    fn address(n: u8) -> [u8; 32] {
        [n; 32]
    }

    #[test]
    fn token_round_trips() {
        let signer = signer();
        for n in [0, 1, 42, 255] {
            assert_eq!(
                signer.verify(&signer.token(&address(n))),
                Some(UnsubscribeTarget::Address(address(n)))
            );
        }
    }

    #[test]
    fn links_already_mailed_still_verify() {
        let signer = signer();
        for id in [0, 1, 42, -1, i64::MAX] {
            assert_eq!(
                signer.verify(&signer.legacy_token(id)),
                Some(UnsubscribeTarget::LegacyContact(id))
            );
        }
    }

    #[test]
    fn token_is_url_safe_fixed_length_and_shows_no_contact_id() {
        let token = signer().token(&address(9));
        assert_eq!(token.len(), 64);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{token}"
        );
    }

    #[test]
    fn another_key_rejects_the_token() {
        let token = signer().token(&address(7));
        assert_eq!(
            UnsubscribeSigner::new(b"another key entirely, 32 bytes!!").verify(&token),
            None
        );
    }

    #[test]
    fn a_token_cannot_be_moved_to_another_address() {
        let signer = signer();
        let mut raw = URL_SAFE_NO_PAD.decode(signer.token(&address(7))).unwrap();
        raw[..32].copy_from_slice(&address(8));
        assert_eq!(signer.verify(&URL_SAFE_NO_PAD.encode(raw)), None);
    }

    #[test]
    fn a_legacy_tag_does_not_sign_an_address() {
        // The same bytes under the other domain tag must not verify.
        let signer = signer();
        let legacy = URL_SAFE_NO_PAD.decode(signer.legacy_token(7)).unwrap();
        let mut raw = vec![0u8; 48];
        raw[32..].copy_from_slice(&legacy[8..]);
        assert_eq!(signer.verify(&URL_SAFE_NO_PAD.encode(raw)), None);
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        let signer = signer();
        let token = signer.token(&address(7));
        for bad in [
            "",
            "abc",
            &"!".repeat(64),
            &token[..63],
            &format!("{token}A"),
            &format!("{token}=="),
            &URL_SAFE_NO_PAD.encode(address(7)),
        ] {
            assert_eq!(signer.verify(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(
            UnsubscribeSigner::generate_key(),
            UnsubscribeSigner::generate_key()
        );
    }

    #[test]
    fn debug_does_not_print_the_key() {
        let debug = format!("{:?}", UnsubscribeSigner::new(b"super-secret-key"));
        assert!(!debug.contains("super-secret-key"), "{debug}");
        assert!(debug.contains("redacted"), "{debug}");
    }

    proptest! {
        #[test]
        fn any_address_round_trips(key in any::<[u8; 32]>()) {
            let signer = signer();
            prop_assert_eq!(signer.verify(&signer.token(&key)), Some(UnsubscribeTarget::Address(key)));
        }

        #[test]
        fn any_byte_tampering_is_rejected(
            key in any::<[u8; 32]>(),
            index in 0usize..48,
            flip in 1u8..=255,
        ) {
            let signer = signer();
            let mut raw = URL_SAFE_NO_PAD.decode(signer.token(&key)).unwrap();
            raw[index] ^= flip;
            prop_assert_eq!(signer.verify(&URL_SAFE_NO_PAD.encode(raw)), None);
        }

        #[test]
        fn random_strings_are_rejected(s in "[A-Za-z0-9_-]{64}") {
            prop_assert_eq!(signer().verify(&s), None);
        }

        #[test]
        fn random_legacy_length_strings_are_rejected(s in "[A-Za-z0-9_-]{32}") {
            prop_assert_eq!(signer().verify(&s), None);
        }
    }
}
