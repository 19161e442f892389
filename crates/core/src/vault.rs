//! Encryption at rest of what the gateway must keep for a while: a fetched record waiting for
//! delivery, and the student id a transfer needs to fetch its record.
//!
//! Owns: [`Vault`] (AES-256-GCM with a current key and older keys for rotation), the sealed byte
//! format, and key ids. Pure: randomness for nonces is an argument. The associated data binds a
//! sealed value to its purpose and transfer, so a payload cannot be swapped between transfers.
//!
//! Sealed format: `len(key_id) ‖ key_id ‖ nonce (12) ‖ ciphertext ‖ tag (16)`.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::digest;

use crate::clock::{Random, hex};

const KEY_LEN: usize = 32;

struct Key {
    id: String,
    key: LessSafeKey,
}

/// The payload keys: one to seal with, all to open with.
pub struct Vault {
    current: Key,
    previous: Vec<Key>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("current", &self.current.id)
            .field(
                "previous",
                &self
                    .previous
                    .iter()
                    .map(|k| k.id.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    #[error("sealed value is truncated or malformed")]
    Malformed,
    #[error("sealed with key `{0}`, which is not configured")]
    UnknownKey(String),
    #[error("sealed value does not authenticate (tampered, or sealed for another transfer)")]
    Authentication,
    #[error("a payload key must be 32 bytes (64 hex digits)")]
    KeyLength,
}

/// A sealed value and the facts kept beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub bytes: Vec<u8>,
}

impl Vault {
    pub fn new(current: &[u8], previous: &[Vec<u8>]) -> Result<Vault, VaultError> {
        Ok(Vault {
            current: make_key(current)?,
            previous: previous
                .iter()
                .map(|k| make_key(k))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Derives a payload key from another secret (HKDF-SHA256, info `siirto payload v1`), for
    /// configurations that name no payload key of their own.
    pub fn derive_key(secret: &[u8]) -> [u8; KEY_LEN] {
        let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"siirto");
        let prk = salt.extract(secret);
        let mut out = [0u8; KEY_LEN];
        let info: &[&[u8]] = &[b"siirto payload v1"];
        // Expanding 32 bytes from SHA-256 is always within HKDF's limit (255 × 32).
        if let Ok(okm) = prk.expand(info, ring::hkdf::HKDF_SHA256) {
            let _ = okm.fill(&mut out);
        }
        out
    }

    pub fn current_key_id(&self) -> &str {
        &self.current.id
    }

    /// Seals `plaintext` for `purpose` (e.g. `payload:<transfer id>`).
    pub fn seal(&self, purpose: &str, plaintext: &[u8], random: &dyn Random) -> Sealed {
        let mut nonce = [0u8; NONCE_LEN];
        random.fill(&mut nonce);
        let id = self.current.id.as_bytes();
        let mut out = Vec::with_capacity(1 + id.len() + NONCE_LEN + plaintext.len() + 16);
        // Key ids are 16 hex digits, well under 256 bytes.
        out.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(id);
        out.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        // Sealing fails only when the input exceeds AES-GCM's 64 GiB limit, far beyond the
        // response limits that bound every payload.
        if self
            .current
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(purpose.as_bytes()),
                &mut body,
            )
            .is_err()
        {
            body.clear();
        }
        out.extend_from_slice(&body);
        Sealed {
            key_id: self.current.id.clone(),
            bytes: out,
        }
    }

    /// Opens a value sealed for `purpose` with any configured key.
    pub fn open(&self, purpose: &str, sealed: &[u8]) -> Result<Vec<u8>, VaultError> {
        let (&len, rest) = sealed.split_first().ok_or(VaultError::Malformed)?;
        let len = usize::from(len);
        if rest.len() < len + NONCE_LEN + 16 {
            return Err(VaultError::Malformed);
        }
        let id = std::str::from_utf8(&rest[..len]).map_err(|_| VaultError::Malformed)?;
        let key = std::iter::once(&self.current)
            .chain(self.previous.iter())
            .find(|k| k.id == id)
            .ok_or_else(|| VaultError::UnknownKey(id.to_owned()))?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&rest[len..len + NONCE_LEN]);
        let mut body = rest[len + NONCE_LEN..].to_vec();
        let plain = key
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(purpose.as_bytes()),
                &mut body,
            )
            .map_err(|_| VaultError::Authentication)?;
        Ok(plain.to_vec())
    }
}

fn make_key(bytes: &[u8]) -> Result<Key, VaultError> {
    if bytes.len() != KEY_LEN {
        return Err(VaultError::KeyLength);
    }
    let unbound = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| VaultError::KeyLength)?;
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"siirto payload key id\0");
    ctx.update(bytes);
    let id = hex(&ctx.finish().as_ref()[..8]);
    Ok(Key {
        id,
        key: LessSafeKey::new(unbound),
    })
}

/// SHA-256.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, bytes).as_ref());
    out
}

/// SHA-256 as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&sha256(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SeededRandom;

    #[test]
    fn seals_and_opens_with_rotation() {
        let r = SeededRandom::new(3);
        let old = Vault::new(&[1u8; 32], &[]).unwrap();
        let sealed = old.seal("payload:t1", b"<record/>", &r);
        assert_eq!(old.open("payload:t1", &sealed.bytes).unwrap(), b"<record/>");
        // After rotation the old key still opens what it sealed; new seals use the new key.
        let rotated = Vault::new(&[2u8; 32], &[vec![1u8; 32]]).unwrap();
        assert_eq!(
            rotated.open("payload:t1", &sealed.bytes).unwrap(),
            b"<record/>"
        );
        let fresh = rotated.seal("payload:t1", b"x", &r);
        assert_ne!(fresh.key_id, sealed.key_id);
        // Without the old key: a clear error naming the key id.
        let only_new = Vault::new(&[2u8; 32], &[]).unwrap();
        assert_eq!(
            only_new.open("payload:t1", &sealed.bytes),
            Err(VaultError::UnknownKey(sealed.key_id.clone()))
        );
    }

    #[test]
    fn binds_purpose_and_detects_tampering() {
        let r = SeededRandom::new(4);
        let v = Vault::new(&[7u8; 32], &[]).unwrap();
        let mut sealed = v.seal("payload:t1", b"secret", &r).bytes;
        assert_eq!(
            v.open("payload:t2", &sealed),
            Err(VaultError::Authentication)
        );
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(
            v.open("payload:t1", &sealed),
            Err(VaultError::Authentication)
        );
        assert_eq!(
            v.open("payload:t1", &sealed[..10]),
            Err(VaultError::Malformed)
        );
        assert!(
            !String::from_utf8_lossy(&v.seal("p", b"plaintext-marker", &r).bytes)
                .contains("plaintext-marker")
        );
    }

    #[test]
    fn key_rules() {
        assert_eq!(
            Vault::new(&[0u8; 16], &[]).err(),
            Some(VaultError::KeyLength)
        );
        assert_ne!(Vault::derive_key(b"a"), Vault::derive_key(b"b"));
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
