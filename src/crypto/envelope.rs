//! The stored form of an encrypted value: a versioned envelope.
//!
//! Layout: `[format version: 1 byte][key id: 4 bytes, big-endian][nonce: 12 bytes]`
//! `[ciphertext and tag]`. The associated data binds the ciphertext to where it is stored
//! (table, column, row id), so a value copied to another row or column fails to decrypt.

use aes_gcm_siv::aead::{Aead, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use rand::RngCore;

/// The only envelope format so far.
pub const FORMAT_V1: u8 = 1;
const HEADER: usize = 1 + 4 + 12;

/// Where a ciphertext lives: what its associated data binds it to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot<'a> {
    /// The table.
    pub table: &'a str,
    /// The column.
    pub column: &'a str,
    /// The row's id.
    pub row: i64,
}

impl Slot<'_> {
    /// `needtoknow/v1/<table>/<column>/<row>`, written without `format!` and on the stack
    /// (every decryption builds one: a supervisor's page opens about 2 000 values).
    fn aad(&self) -> smallvec::SmallVec<[u8; 96]> {
        let mut aad = smallvec::SmallVec::new();
        aad.extend_from_slice(b"needtoknow/v1/");
        aad.extend_from_slice(self.table.as_bytes());
        aad.push(b'/');
        aad.extend_from_slice(self.column.as_bytes());
        aad.push(b'/');
        aad.extend_from_slice(itoa::Buffer::new().format(self.row).as_bytes());
        aad
    }
}

/// Why a value could not be decrypted. Carries no value, only what failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// Too short or an unknown format version.
    #[error("malformed envelope")]
    Malformed,
    /// The envelope names a key this service does not have.
    #[error("unknown key id {0}")]
    UnknownKey(u32),
    /// Wrong key, tampered ciphertext, or a ciphertext moved to another slot.
    #[error("decryption failed (wrong key, tampered, or moved ciphertext)")]
    Failed,
}

/// Encrypts `plaintext` for `slot` with `cipher` (whose id is `key_id`).
pub fn seal(cipher: &Aes256GcmSiv, key_id: u32, slot: Slot<'_>, plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; 12];
    rand::rng().fill_bytes(&mut nonce);
    let aad = slot.aad();
    // Encryption with a valid key and nonce cannot fail for inputs this size; an empty
    // ciphertext would fail to open, never reveal anything.
    let ciphertext = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .unwrap_or_default();
    let mut out = Vec::with_capacity(HEADER + ciphertext.len());
    out.push(FORMAT_V1);
    out.extend_from_slice(&key_id.to_be_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    out
}

/// The key id an envelope was sealed with.
pub fn key_id(envelope: &[u8]) -> Result<u32, CryptoError> {
    if envelope.len() < HEADER + 16 || envelope[0] != FORMAT_V1 {
        return Err(CryptoError::Malformed);
    }
    let mut id = [0u8; 4];
    id.copy_from_slice(&envelope[1..5]);
    Ok(u32::from_be_bytes(id))
}

/// Decrypts an envelope sealed for `slot`.
pub fn open(
    cipher: &Aes256GcmSiv,
    slot: Slot<'_>,
    envelope: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    key_id(envelope)?;
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&envelope[5..HEADER]);
    let aad = slot.aad();
    cipher
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: &envelope[HEADER..],
                aad: &aad,
            },
        )
        .map_err(|_| CryptoError::Failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes_gcm_siv::KeyInit;

    /// The associated data every stored ciphertext was sealed with: its text never changes.
    #[test]
    fn the_associated_data_names_the_slot() {
        let slot = Slot {
            table: "messages",
            column: "body",
            row: -42,
        };
        assert_eq!(&slot.aad()[..], b"needtoknow/v1/messages/body/-42");
        let big = Slot {
            row: i64::MAX,
            ..slot
        };
        assert_eq!(
            &big.aad()[..],
            format!("needtoknow/v1/messages/body/{}", i64::MAX).as_bytes()
        );
    }

    fn cipher(byte: u8) -> Aes256GcmSiv {
        Aes256GcmSiv::new_from_slice(&[byte; 32]).unwrap()
    }

    const SLOT: Slot<'static> = Slot {
        table: "customers",
        column: "email",
        row: 7,
    };

    #[test]
    fn a_sealed_value_opens_in_its_own_slot_only() {
        let c = cipher(1);
        let sealed = seal(&c, 3, SLOT, b"robin@example.com");
        assert_eq!(key_id(&sealed), Ok(3));
        assert_eq!(open(&c, SLOT, &sealed).unwrap(), b"robin@example.com");
        for other in [
            Slot { row: 8, ..SLOT },
            Slot {
                column: "phone",
                ..SLOT
            },
            Slot {
                table: "messages",
                ..SLOT
            },
        ] {
            assert_eq!(
                open(&c, other, &sealed),
                Err(CryptoError::Failed),
                "{other:?}"
            );
        }
        assert_eq!(open(&cipher(2), SLOT, &sealed), Err(CryptoError::Failed));
    }

    #[test]
    fn the_same_value_seals_differently_each_time_and_never_in_clear() {
        let c = cipher(1);
        let a = seal(&c, 1, SLOT, b"secret value");
        let b = seal(&c, 1, SLOT, b"secret value");
        assert_ne!(a, b);
        assert!(!a.windows(6).any(|w| w == b"secret"));
    }

    #[test]
    fn tampered_or_truncated_envelopes_fail() {
        let c = cipher(1);
        let mut sealed = seal(&c, 1, SLOT, b"value");
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(open(&c, SLOT, &sealed), Err(CryptoError::Failed));
        assert_eq!(open(&c, SLOT, &sealed[..10]), Err(CryptoError::Malformed));
        sealed[0] = 9;
        assert_eq!(open(&c, SLOT, &sealed), Err(CryptoError::Malformed));
    }
}
