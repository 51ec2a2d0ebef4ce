//! Blind indexes: exact lookup of a customer by email or phone without decrypting every
//! row. Each field has its own key (derived from one index key that the master key wraps);
//! the index is the keyed HMAC-SHA256 of the normalized value, truncated to 32 bits as
//! CipherSweet advises, so that one index value stands for many possible inputs and the
//! column alone reveals little. Lookups fetch the few candidates and confirm each by
//! decrypting.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of HMAC kept (32 bits).
const INDEX_BYTES: usize = 4;

/// Computes the blind indexes of the fields that have one.
#[derive(Clone)]
pub struct BlindIndexer {
    email: [u8; 32],
    phone: [u8; 32],
}

impl std::fmt::Debug for BlindIndexer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlindIndexer([redacted])")
    }
}

fn mac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Emails compare case-insensitively, without surrounding space.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Phones compare by their digits only.
pub fn normalize_phone(phone: &str) -> String {
    phone.chars().filter(char::is_ascii_digit).collect()
}

impl BlindIndexer {
    /// Derives the per-field keys from the index key.
    pub fn new(index_key: &[u8]) -> BlindIndexer {
        BlindIndexer {
            email: mac(index_key, b"needtoknow blind index v1: customers.email"),
            phone: mac(index_key, b"needtoknow blind index v1: customers.phone"),
        }
    }

    fn index(key: &[u8; 32], normalized: &str) -> String {
        hex::encode(&mac(key, normalized.as_bytes())[..INDEX_BYTES])
    }

    /// The blind index of an email address.
    pub fn email(&self, email: &str) -> String {
        Self::index(&self.email, &normalize_email(email))
    }

    /// The blind index of a phone number.
    pub fn phone(&self, phone: &str) -> String {
        Self::index(&self.phone, &normalize_phone(phone))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_ignore_case_and_formatting_and_differ_per_field_and_key() {
        let a = BlindIndexer::new(&[1; 32]);
        assert_eq!(
            a.email(" Robin.Sample@Example.com "),
            a.email("robin.sample@example.com")
        );
        assert_eq!(a.phone("+1 555 0100 2233"), a.phone("15550100-2233"));
        assert_eq!(a.email("x@y.z").len(), 8);
        assert_ne!(
            a.email("15550100"),
            a.phone("15550100"),
            "fields have their own keys"
        );
        assert_ne!(a.email("x@y.z"), BlindIndexer::new(&[2; 32]).email("x@y.z"));
    }
}
