//! Signed checkpoints of the audit log in the C2SP `tlog-checkpoint` format: a signed note
//! whose text is the origin, the tree size, the base64 RFC 9162 root hash and one extension
//! line `time <RFC 3339 UTC, milliseconds>`, signed with the Ed25519 audit key under the key
//! name = origin (C2SP `signed-note`, signature type 0x01):
//! ```text
//! siirto.example.fi/audit
//! 1000
//! <base64 root hash>
//! time 2026-11-23T15:41:00.123Z
//!
//! — siirto.example.fi/audit <base64(key ID ‖ Ed25519 signature of the four lines above)>
//! ```
//! Owns: writing, parsing and verifying these notes. Must not: decide when to checkpoint,
//! store them, or read the clock (the time is a parameter).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::key::{AuditPublicKey, AuditSigningKey};
use super::merkle::Hash;
use crate::clock::Timestamp;

/// Largest signed note accepted.
pub const MAX_NOTE_BYTES: usize = 64 * 1024;
/// Most signature lines accepted on one note (the signed-note spec asks for at least 16).
pub const MAX_SIGNATURES: usize = 32;
/// Longest origin accepted.
pub const MAX_ORIGIN_BYTES: usize = 256;

const SIGNATURE_PREFIX: &str = "\u{2014} ";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error(
        "origin {0:?} is not usable: it must be 1-{MAX_ORIGIN_BYTES} bytes without spaces, '+' or control characters"
    )]
    InvalidOrigin(String),
    #[error("signed note is larger than {MAX_NOTE_BYTES} bytes")]
    TooLarge,
    #[error("not a signed note: {0}")]
    Malformed(String),
    #[error("no signature by the audit key ({origin}) on the note")]
    NoKnownSignature { origin: String },
    #[error("the audit key's signature on the checkpoint does not verify")]
    BadSignature,
    #[error("checkpoint origin is {found:?}, expected {expected:?}")]
    WrongOrigin { found: String, expected: String },
    #[error("checkpoint body is invalid: {0}")]
    InvalidBody(String),
}

/// A tree head at a moment: what a checkpoint says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub tree_size: u64,
    pub root_hash: Hash,
    pub time: Timestamp,
}

impl Checkpoint {
    /// The note text that is signed (ends with a newline).
    pub fn note_text(&self) -> String {
        format!(
            "{}\n{}\n{}\ntime {}\n",
            self.origin,
            self.tree_size,
            STANDARD.encode(self.root_hash),
            self.time.rfc3339()
        )
    }
}

/// A checkpoint with its signed-note text (what is stored and served).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    checkpoint: Checkpoint,
    note: String,
}

impl SignedCheckpoint {
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The whole signed note.
    pub fn as_str(&self) -> &str {
        &self.note
    }

    pub fn into_string(self) -> String {
        self.note
    }
}

fn check_origin(origin: &str) -> Result<(), CheckpointError> {
    let ok = !origin.is_empty()
        && origin.len() <= MAX_ORIGIN_BYTES
        && !origin
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '+');
    if ok {
        Ok(())
    } else {
        Err(CheckpointError::InvalidOrigin(
            origin.chars().take(64).collect(),
        ))
    }
}

/// Signs checkpoints with the audit key under the log's origin (and, while the audit key is
/// being rotated, with the previous key too: see [`CheckpointSigner::with_cosigner`]).
#[derive(Debug, Clone)]
pub struct CheckpointSigner {
    key: AuditSigningKey,
    origin: String,
    key_id: [u8; 4],
    cosigner: Option<(AuditSigningKey, [u8; 4])>,
}

impl CheckpointSigner {
    /// `origin` names the log, e.g. `siirto.example.fi/audit`; it is also the key name.
    pub fn new(key: AuditSigningKey, origin: &str) -> Result<CheckpointSigner, CheckpointError> {
        check_origin(origin)?;
        let key_id = key.public_key().note_key_id(origin);
        Ok(CheckpointSigner {
            key,
            origin: origin.to_owned(),
            key_id,
            cosigner: None,
        })
    }

    /// Every checkpoint is also signed by `previous`, the audit key being replaced: the first
    /// checkpoints under the new key then carry a signature that verifiers of the old key
    /// accept, tying the new key to the chain the old one vouched for.
    pub fn with_cosigner(mut self, previous: AuditSigningKey) -> CheckpointSigner {
        let id = previous.public_key().note_key_id(&self.origin);
        self.cosigner = Some((previous, id));
        self
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn key(&self) -> &AuditSigningKey {
        &self.key
    }

    /// The verifier for what this signer signs.
    pub fn verifier(&self) -> CheckpointVerifier {
        CheckpointVerifier {
            public: self.key.public_key(),
            origin: self.origin.clone(),
            key_id: self.key_id,
            previous: self
                .cosigner
                .iter()
                .map(|(k, id)| (k.public_key(), *id))
                .collect(),
        }
    }

    pub fn sign(&self, tree_size: u64, root_hash: Hash, time: Timestamp) -> SignedCheckpoint {
        let checkpoint = Checkpoint {
            origin: self.origin.clone(),
            tree_size,
            root_hash,
            time,
        };
        let text = checkpoint.note_text();
        let mut sig = Vec::with_capacity(68);
        sig.extend_from_slice(&self.key_id);
        sig.extend_from_slice(&self.key.sign(text.as_bytes()));
        let mut note = format!(
            "{text}\n{SIGNATURE_PREFIX}{} {}\n",
            self.origin,
            STANDARD.encode(sig)
        );
        if let Some((previous, id)) = &self.cosigner {
            let mut sig = Vec::with_capacity(68);
            sig.extend_from_slice(id);
            sig.extend_from_slice(&previous.sign(text.as_bytes()));
            note.push_str(&format!(
                "{SIGNATURE_PREFIX}{} {}\n",
                self.origin,
                STANDARD.encode(sig)
            ));
        }
        SignedCheckpoint { checkpoint, note }
    }
}

/// Verifies checkpoints with the public audit key, or one of the earlier audit keys.
#[derive(Debug, Clone)]
pub struct CheckpointVerifier {
    public: AuditPublicKey,
    origin: String,
    key_id: [u8; 4],
    /// Earlier audit keys (rotation): their signatures count as the audit key's.
    previous: Vec<(AuditPublicKey, [u8; 4])>,
}

impl CheckpointVerifier {
    pub fn new(
        public: AuditPublicKey,
        origin: &str,
    ) -> Result<CheckpointVerifier, CheckpointError> {
        check_origin(origin)?;
        Ok(CheckpointVerifier {
            key_id: public.note_key_id(origin),
            public,
            origin: origin.to_owned(),
            previous: Vec::new(),
        })
    }

    /// Also accepts signatures by these earlier audit keys (after a rotation).
    pub fn with_previous_keys(
        mut self,
        keys: impl IntoIterator<Item = AuditPublicKey>,
    ) -> CheckpointVerifier {
        for key in keys {
            let id = key.note_key_id(&self.origin);
            if id != self.key_id && !self.previous.iter().any(|(_, known)| *known == id) {
                self.previous.push((key, id));
            }
        }
        self
    }

    /// The current key and the earlier ones it accepts.
    pub fn keys(&self) -> impl Iterator<Item = &AuditPublicKey> {
        std::iter::once(&self.public).chain(self.previous.iter().map(|(k, _)| k))
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn public_key(&self) -> &AuditPublicKey {
        &self.public
    }

    /// Checks the note's signature by the audit key, then reads the checkpoint. Signatures by
    /// other keys are ignored, as the signed-note spec requires.
    pub fn verify(&self, note: &str) -> Result<SignedCheckpoint, CheckpointError> {
        if note.len() > MAX_NOTE_BYTES {
            return Err(CheckpointError::TooLarge);
        }
        let malformed = |why: &str| CheckpointError::Malformed(why.into());
        if note.chars().any(|c| c.is_control() && c != '\n') {
            return Err(malformed("control character other than newline"));
        }
        if !note.ends_with('\n') {
            return Err(malformed("does not end with a newline"));
        }
        let split = note
            .rfind("\n\n")
            .ok_or_else(|| malformed("no blank line before the signatures"))?;
        let text = &note[..=split];
        let signatures = &note[split + 2..];
        let mut known = 0usize;
        for (i, line) in signatures.lines().enumerate() {
            if i >= MAX_SIGNATURES {
                return Err(malformed("too many signature lines"));
            }
            let rest = line
                .strip_prefix(SIGNATURE_PREFIX)
                .ok_or_else(|| malformed("signature line does not start with an em dash"))?;
            let (name, b64) = rest
                .split_once(' ')
                .ok_or_else(|| malformed("signature line has no signature"))?;
            let sig = STANDARD
                .decode(b64)
                .map_err(|_| malformed("signature is not base64"))?;
            if sig.len() < 4 {
                return Err(malformed("signature is shorter than a key ID"));
            }
            if name != self.origin {
                continue;
            }
            let key = if sig[..4] == self.key_id {
                &self.public
            } else if let Some((key, _)) = self.previous.iter().find(|(_, id)| sig[..4] == *id) {
                key
            } else {
                continue;
            };
            known += 1;
            if !key.verify(text.as_bytes(), &sig[4..]) {
                return Err(CheckpointError::BadSignature);
            }
        }
        if known == 0 {
            return Err(CheckpointError::NoKnownSignature {
                origin: self.origin.clone(),
            });
        }
        let checkpoint = self.parse_text(text)?;
        Ok(SignedCheckpoint {
            checkpoint,
            note: note.to_owned(),
        })
    }

    fn parse_text(&self, text: &str) -> Result<Checkpoint, CheckpointError> {
        let invalid = |why: &str| CheckpointError::InvalidBody(why.into());
        let mut lines = text.strip_suffix('\n').unwrap_or(text).split('\n');
        let origin = lines.next().unwrap_or("");
        if origin != self.origin {
            return Err(CheckpointError::WrongOrigin {
                found: origin.chars().take(64).collect(),
                expected: self.origin.clone(),
            });
        }
        let size_text = lines.next().ok_or_else(|| invalid("no tree size line"))?;
        let canonical_number = !size_text.is_empty()
            && size_text.bytes().all(|b| b.is_ascii_digit())
            && (size_text == "0" || !size_text.starts_with('0'));
        let tree_size: u64 = if canonical_number {
            size_text
                .parse()
                .map_err(|_| invalid("tree size is out of range"))?
        } else {
            return Err(invalid(
                "tree size is not a decimal number without leading zeros",
            ));
        };
        let root_text = lines.next().ok_or_else(|| invalid("no root hash line"))?;
        let root: Hash = STANDARD
            .decode(root_text)
            .ok()
            .and_then(|v| v.try_into().ok())
            .filter(|r: &Hash| STANDARD.encode(r) == root_text)
            .ok_or_else(|| invalid("root hash is not 32 bytes of canonical base64"))?;
        let time_text = lines
            .next()
            .and_then(|l| l.strip_prefix("time "))
            .ok_or_else(|| invalid("no `time` extension line"))?;
        let time = Timestamp::parse_rfc3339(time_text)
            .filter(|t| t.rfc3339() == time_text)
            .ok_or_else(|| invalid("time is not RFC 3339 UTC with milliseconds"))?;
        if lines.next().is_some() {
            return Err(invalid("unexpected extension line"));
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            tree_size,
            root_hash: root,
            time,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::audit::key::tests::TEST_KEY_PEM;
    use crate::audit::merkle::leaf_hash;

    const ORIGIN: &str = "siirto.example.fi/audit";

    fn signer() -> CheckpointSigner {
        CheckpointSigner::new(
            AuditSigningKey::from_pkcs8_pem(TEST_KEY_PEM).unwrap(),
            ORIGIN,
        )
        .unwrap()
    }

    #[test]
    fn signs_the_documented_format_and_verifies() {
        let s = signer();
        let root = leaf_hash(b"x");
        let t = Timestamp::from_millis(1_795_448_460_123);
        let cp = s.sign(1000, root, t);
        let note = cp.as_str();
        let expected_text = format!(
            "{ORIGIN}\n1000\n{}\ntime 2026-11-23T15:41:00.123Z\n",
            STANDARD.encode(root)
        );
        assert!(
            note.starts_with(&format!("{expected_text}\n\u{2014} {ORIGIN} ")),
            "{note}"
        );
        let sig = STANDARD
            .decode(note.trim_end().rsplit(' ').next().unwrap())
            .unwrap();
        assert_eq!(sig.len(), 68);
        assert_eq!(sig[..4], s.key().public_key().note_key_id(ORIGIN));

        let verified = s.verifier().verify(note).unwrap();
        assert_eq!(verified.checkpoint(), cp.checkpoint());
        assert_eq!(verified.checkpoint().tree_size, 1000);
        assert_eq!(verified.checkpoint().time, t);
    }

    #[test]
    fn ignores_unknown_signatures_and_refuses_tampering() {
        let s = signer();
        let v = s.verifier();
        let note = s
            .sign(5, leaf_hash(b"r"), Timestamp::from_millis(0))
            .into_string();
        // An extra signature by some other key is ignored.
        let other = format!("{note}\u{2014} witness.example AAAAAAAAAAAAAAAA\n");
        assert!(v.verify(&other).is_ok());

        let tampered_size = note.replacen("\n5\n", "\n6\n", 1);
        assert_eq!(v.verify(&tampered_size), Err(CheckpointError::BadSignature));
        let body_end = note.find("\n\n").unwrap();
        let mut flipped_sig = note.clone().into_bytes();
        let last = flipped_sig.len() - 3;
        flipped_sig[last] = if flipped_sig[last] == b'A' {
            b'B'
        } else {
            b'A'
        };
        let flipped_sig = String::from_utf8(flipped_sig).unwrap();
        assert_eq!(v.verify(&flipped_sig), Err(CheckpointError::BadSignature));
        assert_eq!(
            v.verify(&note[..=body_end + 1]),
            Err(CheckpointError::NoKnownSignature {
                origin: ORIGIN.into()
            })
        );
        let other_origin =
            CheckpointVerifier::new(s.key().public_key(), "other.example/log").unwrap();
        assert!(matches!(
            other_origin.verify(&note),
            Err(CheckpointError::NoKnownSignature { .. })
        ));
        let other_key = AuditSigningKey::from_pkcs8_der(
            ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
                .unwrap()
                .as_ref(),
        )
        .unwrap();
        let wrong_key = CheckpointVerifier::new(other_key.public_key(), ORIGIN).unwrap();
        assert!(matches!(
            wrong_key.verify(&note),
            Err(CheckpointError::NoKnownSignature { .. })
        ));
        assert!(matches!(v.verify("x"), Err(CheckpointError::Malformed(_))));
        assert!(matches!(
            v.verify(&note.replace('\n', "\r\n")),
            Err(CheckpointError::Malformed(_))
        ));
        assert_eq!(
            v.verify(&"a".repeat(MAX_NOTE_BYTES + 1)),
            Err(CheckpointError::TooLarge)
        );
    }

    fn fresh_key() -> AuditSigningKey {
        AuditSigningKey::from_pkcs8_der(
            ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
                .unwrap()
                .as_ref(),
        )
        .unwrap()
    }

    #[test]
    fn a_rotated_key_verifies_old_and_new_checkpoints_and_an_unknown_key_none() {
        let (a, b) = (fresh_key(), fresh_key());
        let t = Timestamp::from_millis(0);
        let under_a = CheckpointSigner::new(a.clone(), ORIGIN).unwrap();
        let old = under_a.sign(10, leaf_hash(b"a"), t).into_string();
        // Rotating: B signs, A cosigns.
        let rotating = CheckpointSigner::new(b.clone(), ORIGIN)
            .unwrap()
            .with_cosigner(a.clone());
        let first_under_b = rotating.sign(20, leaf_hash(b"b"), t).into_string();
        assert_eq!(
            first_under_b.matches('\u{2014}').count(),
            2,
            "{first_under_b}"
        );
        // A verifier of the old key alone still accepts the cosigned checkpoint.
        assert!(under_a.verifier().verify(&first_under_b).is_ok());
        // After the rotation: B is the key, A an earlier one.
        let after = CheckpointVerifier::new(b.public_key(), ORIGIN)
            .unwrap()
            .with_previous_keys([a.public_key()]);
        assert_eq!(after.keys().count(), 2);
        for note in [&old, &first_under_b] {
            assert!(after.verify(note).is_ok(), "{note}");
        }
        let later = CheckpointSigner::new(b.clone(), ORIGIN)
            .unwrap()
            .sign(30, leaf_hash(b"c"), t)
            .into_string();
        assert!(after.verify(&later).is_ok());
        // Without the history, the old checkpoint names no known key; a stranger's none at all.
        let b_only = CheckpointVerifier::new(b.public_key(), ORIGIN).unwrap();
        assert!(matches!(
            b_only.verify(&old),
            Err(CheckpointError::NoKnownSignature { .. })
        ));
        let stranger = CheckpointSigner::new(fresh_key(), ORIGIN)
            .unwrap()
            .sign(40, leaf_hash(b"d"), t)
            .into_string();
        assert!(matches!(
            after.verify(&stranger),
            Err(CheckpointError::NoKnownSignature { .. })
        ));
        // A bad signature by an earlier key is refused, not skipped.
        let forged = first_under_b.replacen("\n20\n", "\n21\n", 1);
        assert_eq!(after.verify(&forged), Err(CheckpointError::BadSignature));
    }

    #[test]
    fn body_rules() {
        // Bodies signed by the right key but not in the checkpoint form are refused.
        let s = signer();
        let v = s.verifier();
        let sign_text = |text: &str| {
            let mut sig = s.key().public_key().note_key_id(ORIGIN).to_vec();
            sig.extend_from_slice(&s.key().sign(text.as_bytes()));
            format!("{text}\n\u{2014} {ORIGIN} {}\n", STANDARD.encode(sig))
        };
        let root = STANDARD.encode([0u8; 32]);
        let good = format!("{ORIGIN}\n0\n{root}\ntime 1970-01-01T00:00:00.000Z\n");
        assert!(v.verify(&sign_text(&good)).is_ok());
        for bad in [
            format!("{ORIGIN}\n01\n{root}\ntime 1970-01-01T00:00:00.000Z\n"),
            format!("{ORIGIN}\n-1\n{root}\ntime 1970-01-01T00:00:00.000Z\n"),
            format!("{ORIGIN}\n1\nAAAA\ntime 1970-01-01T00:00:00.000Z\n"),
            format!("{ORIGIN}\n1\n{root}\n"),
            format!("{ORIGIN}\n1\n{root}\ntime 1970-01-01T00:00:00Z\n"),
            format!("{ORIGIN}\n1\n{root}\ntime 1970-01-01T00:00:00.000Z\nextra\n"),
        ] {
            let e = v.verify(&sign_text(&bad)).unwrap_err();
            assert!(matches!(e, CheckpointError::InvalidBody(_)), "{bad}: {e}");
        }
        let e = v
            .verify(&sign_text(&good.replace(ORIGIN, "siirto.example.fi/other")))
            .unwrap_err();
        assert!(matches!(e, CheckpointError::WrongOrigin { .. }), "{e}");
    }

    #[test]
    fn origin_rules() {
        let key = AuditSigningKey::from_pkcs8_pem(TEST_KEY_PEM).unwrap();
        for bad in ["", "a b", "a+b", "a\nb"] {
            assert!(CheckpointSigner::new(key.clone(), bad).is_err(), "{bad:?}");
        }
    }
}
