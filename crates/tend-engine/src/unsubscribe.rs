//! Signed unsubscribe tokens: `/unsubscribe/{token}` must work without a login, yet
//! nobody may unsubscribe someone else by guessing or editing a link.
//!
//! A token is base64url (no padding) of the contact id's 8 big-endian bytes followed by
//! the first 16 bytes (128 bits) of HMAC-SHA256 over a domain tag and those same bytes.
//! The tag keeps these MACs from ever matching a MAC the same key makes for another
//! purpose.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

/// Separates unsubscribe MACs from any other use of the same key; bump the version to
/// invalidate every link ever sent.
const DOMAIN: &[u8] = b"tend-unsubscribe-v1";
/// Bytes of the contact id in a token.
const ID_LEN: usize = 8;
/// Bytes of MAC kept: 128 bits is far beyond what an online guesser can try.
const TAG_LEN: usize = 16;

/// Makes and checks unsubscribe tokens with one secret key.
#[derive(Clone)]
pub struct UnsubscribeSigner {
    /// Already keyed, so each token costs a clone instead of a key schedule.
    mac: Hmac<Sha256>,
}

impl UnsubscribeSigner {
    /// A signer for `key`, which should be at least 32 random bytes (see
    /// [`UnsubscribeSigner::generate_key`]); HMAC accepts keys of any length.
    pub fn new(key: &[u8]) -> Self {
        UnsubscribeSigner {
            mac: <Hmac<Sha256> as Mac>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length")),
        }
    }

    /// Fresh random key material for a new installation.
    pub fn generate_key() -> [u8; 32] {
        rand::random()
    }

    /// The token for `contact_id`: 32 URL-safe characters.
    pub fn token(&self, contact_id: i64) -> String {
        let id = contact_id.to_be_bytes();
        let tag = self.keyed(&id).finalize().into_bytes();
        let mut raw = [0u8; ID_LEN + TAG_LEN];
        raw[..ID_LEN].copy_from_slice(&id);
        raw[ID_LEN..].copy_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The contact id a genuine token was made for, or `None` for anything else.
    pub fn verify(&self, token: &str) -> Option<i64> {
        // Reject oversized input before decoding so a huge path costs nothing.
        if token.len() != (ID_LEN + TAG_LEN).div_ceil(3) * 4 {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(token).ok()?;
        if raw.len() != ID_LEN + TAG_LEN {
            return None;
        }
        let (id, tag) = raw.split_at(ID_LEN);
        // Constant-time comparison of the truncated MAC.
        self.keyed(id).verify_truncated_left(tag).ok()?;
        let id: [u8; ID_LEN] = id.try_into().ok()?;
        Some(i64::from_be_bytes(id))
    }

    fn keyed(&self, id: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(DOMAIN);
        mac.update(id);
        mac
    }
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

    #[test]
    fn token_round_trips() {
        let signer = signer();
        for id in [0, 1, 42, -1, i64::MIN, i64::MAX] {
            assert_eq!(signer.verify(&signer.token(id)), Some(id), "{id}");
        }
    }

    #[test]
    fn token_is_url_safe_and_fixed_length() {
        let token = signer().token(123_456);
        assert_eq!(token.len(), 32);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{token}"
        );
    }

    #[test]
    fn token_is_deterministic() {
        assert_eq!(signer().token(7), signer().token(7));
    }

    #[test]
    fn another_key_rejects_the_token() {
        let token = signer().token(7);
        assert_eq!(
            UnsubscribeSigner::new(b"another key entirely, 32 bytes!!").verify(&token),
            None
        );
    }

    #[test]
    fn a_token_cannot_be_moved_to_another_contact() {
        let signer = signer();
        let mut raw = URL_SAFE_NO_PAD.decode(signer.token(7)).unwrap();
        raw[..8].copy_from_slice(&8i64.to_be_bytes());
        assert_eq!(signer.verify(&URL_SAFE_NO_PAD.encode(raw)), None);
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        let signer = signer();
        let token = signer.token(7);
        for bad in [
            "",
            "abc",
            "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
            &token[..31],
            &format!("{token}A"),
            &format!("{token}=="),
            &URL_SAFE_NO_PAD.encode(7i64.to_be_bytes()),
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
        fn any_id_round_trips(id in any::<i64>()) {
            let signer = signer();
            prop_assert_eq!(signer.verify(&signer.token(id)), Some(id));
        }

        #[test]
        fn any_byte_tampering_is_rejected(
            id in any::<i64>(),
            index in 0usize..24,
            flip in 1u8..=255,
        ) {
            let signer = signer();
            let mut raw = URL_SAFE_NO_PAD.decode(signer.token(id)).unwrap();
            raw[index] ^= flip;
            prop_assert_eq!(signer.verify(&URL_SAFE_NO_PAD.encode(raw)), None);
        }

        #[test]
        fn any_character_tampering_is_rejected(
            id in any::<i64>(),
            index in 0usize..32,
            replacement in prop::sample::select(
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=.~".to_vec()
            ),
        ) {
            let signer = signer();
            let token = signer.token(id);
            let mut bytes = token.clone().into_bytes();
            prop_assume!(bytes[index] != replacement);
            bytes[index] = replacement;
            let tampered = String::from_utf8(bytes).unwrap();
            prop_assert_eq!(signer.verify(&tampered), None);
        }

        #[test]
        fn tokens_for_other_ids_do_not_verify_as_this_id(a in any::<i64>(), b in any::<i64>()) {
            prop_assume!(a != b);
            let signer = signer();
            // Splice b's id into a's token: the MAC no longer matches.
            let mut raw = URL_SAFE_NO_PAD.decode(signer.token(a)).unwrap();
            raw[..8].copy_from_slice(&b.to_be_bytes());
            prop_assert_eq!(signer.verify(&URL_SAFE_NO_PAD.encode(raw)), None);
        }

        #[test]
        fn random_strings_are_rejected(s in "[A-Za-z0-9_-]{32}") {
            prop_assert_eq!(signer().verify(&s), None);
        }
    }
}
