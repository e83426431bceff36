//! Suppression belongs to the address: unsubscribes, bounces and erasures are recorded
//! under a key of the normalised address, so whichever record holds that address later
//! (after a merge, an address change, an import or a new identify) is never mailed.
//!
//! The key is HMAC-SHA256 of the address under the install's secret: the suppression
//! list stays useful after an erasure (the person is recognised if they come back), yet
//! someone holding only the database file cannot test whether a given address is on it.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::fmt;

/// The engine value holding the install's secret (hex): it keys suppression records and
/// signs unsubscribe links. Made with the schema; never replaced.
pub const SECRET_KEY: &str = "unsubscribe_key";

/// The install's secrets, made with the schema and never replaced: a new one in place
/// of a lost one would break every link already mailed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Secret {
    /// Keys suppression records and signs unsubscribe links.
    Signing,
    /// The installation's random id, part of every Message-ID.
    Instance,
}

impl Secret {
    /// The name it is stored under.
    pub fn key(self) -> &'static str {
        match self {
            Secret::Signing => SECRET_KEY,
            Secret::Instance => "instance_id",
        }
    }

    /// Decodes the stored hex of this secret; [`crate::StoreError::Secret`] naming it
    /// when it is missing or unreadable.
    pub fn decode(self, stored: Option<&str>) -> Result<Vec<u8>, crate::StoreError> {
        let key = self.key();
        let Some(text) = stored else {
            return Err(crate::StoreError::Secret(format!(
                "`{key}` is missing from the engine_state table; restore the database from \
                 a backup"
            )));
        };
        unhex(text.trim())
            .filter(|bytes| !bytes.is_empty())
            .ok_or_else(|| {
                crate::StoreError::Secret(format!(
                    "`{key}` in the engine_state table is not hex; restore it from a backup"
                ))
            })
    }
}

/// Separates address keys from every other MAC made with the same secret.
const DOMAIN: &[u8] = b"tend-address-v1";

/// The one form of an address that suppression compares: trimmed and lowercased.
pub fn normalise_address(address: &str) -> String {
    address.trim().to_lowercase()
}

/// Makes the keys under which an address is suppressed.
#[derive(Clone)]
pub struct AddressKeys {
    /// Already keyed, so each address costs a clone instead of a key schedule.
    mac: Hmac<Sha256>,
}

impl AddressKeys {
    /// Keys made under `secret`, the install's secret bytes.
    pub fn new(secret: &[u8]) -> Self {
        AddressKeys {
            mac: <Hmac<Sha256> as Mac>::new_from_slice(secret)
                .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length")),
        }
    }

    /// The raw key of an address (normalised first).
    pub fn key_bytes(&self, address: &str) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(DOMAIN);
        mac.update(normalise_address(address).as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The key of an address as stored: 64 hex characters.
    pub fn key(&self, address: &str) -> String {
        hex(&self.key_bytes(address))
    }
}

impl fmt::Debug for AddressKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddressKeys")
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The bare SHA-256 under which releases before keyed suppression recorded an erased
/// address; such records cannot be re-keyed without the address, so they are still
/// checked.
pub fn legacy_hash(address: &str) -> String {
    hex(&Sha256::digest(normalise_address(address).as_bytes()))
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    // By table, not `write!` per byte: the engine keys every address it checks, and the
    // formatter's machinery cost more than the hash itself.
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        text.push(char::from(DIGITS[usize::from(b >> 4)]));
        text.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    text
}

/// Bytes of a hex string, or `None` if it is not one.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The install's secret from its stored text: at least 16 bytes of hex.
pub fn parse_secret(text: &str) -> Option<Vec<u8>> {
    unhex(text.trim()).filter(|bytes| bytes.len() >= 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_spaces_do_not_change_the_key() {
        let keys = AddressKeys::new(b"0123456789abcdef0123456789abcdef");
        assert_eq!(keys.key(" Ann@Example.COM "), keys.key("ann@example.com"));
        assert_ne!(keys.key("ann@example.com"), keys.key("bob@example.com"));
        assert_eq!(keys.key("ann@example.com").len(), 64);
    }

    #[test]
    fn the_key_depends_on_the_secret_and_is_not_the_bare_hash() {
        let a = AddressKeys::new(b"0123456789abcdef0123456789abcdef");
        let b = AddressKeys::new(b"fedcba9876543210fedcba9876543210");
        assert_ne!(a.key("ann@example.com"), b.key("ann@example.com"));
        assert_ne!(a.key("ann@example.com"), legacy_hash("ann@example.com"));
    }

    #[test]
    fn stored_keys_stay_lowercase_hex_two_digits_a_byte() {
        // Keys already stored must still match: the same text as before, byte for byte.
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff, 0x5c]), "000fa0ff5c");
        assert_eq!(
            legacy_hash(" Ann@Example.com"),
            "71d4f55f72fa128dfb468a1a3901507c804b74316488744d769d7f4b16696476"
        );
    }

    #[test]
    fn secrets_parse_from_hex_only() {
        assert_eq!(parse_secret(&hex(&[7u8; 32])), Some(vec![7u8; 32]));
        for bad in ["", "zz", "abc", &hex(&[1u8; 8])] {
            assert_eq!(parse_secret(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn debug_does_not_print_the_secret() {
        let debug = format!("{:?}", AddressKeys::new(b"super-secret-key"));
        assert!(!debug.contains("super-secret"), "{debug}");
    }
}
