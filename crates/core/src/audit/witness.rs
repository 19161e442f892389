//! Witnessing of audit logs between gateways: C2SP `tlog-cosignature` (Ed25519,
//! `cosignature/v1`) and the `add-checkpoint` call of C2SP `tlog-witness`.
//!
//! - A witness signs the message `cosignature/v1\ntime <seconds>\n<checkpoint body>` with its
//!   Ed25519 key; the note signature line is `— <witness name> base64(key ID ‖ u64 BE
//!   timestamp ‖ signature)`, the key ID being SHA-256(name ‖ 0x0A ‖ 0x04 ‖ public key)[:4].
//! - [`decide`] is the witness's whole decision on one submission, given what it stored for
//!   the origin: cosign, or refuse with the status the spec names.
//! - [`after_conflict`] is the log's decision on a `409` answer.
//!
//! Owns: these formats and decisions. Must not: store the witness's state (the store does,
//! atomically, before the cosignature is answered), read the clock (timestamps are
//! parameters), or do IO.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::checkpoint::{CheckpointError, CheckpointVerifier, MAX_NOTE_BYTES, MAX_SIGNATURES};
use super::key::{AuditPublicKey, AuditSigningKey, KeyError, NOTE_COSIGNATURE_V1};
use super::merkle::{Hash, empty_root, verify_consistency};

/// Most consistency proof lines a submission may carry (tlog-witness).
pub const MAX_PROOF_LINES: usize = 63;
/// Largest `add-checkpoint` body accepted: a note, the proof lines and the old size line.
pub const MAX_SUBMISSION_BYTES: usize = MAX_NOTE_BYTES + MAX_PROOF_LINES * 45 + 32;
/// Media type of a `409` answer's body (the witness's latest cosigned size).
pub const SIZE_MEDIA_TYPE: &str = "text/x.tlog.size";

const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// The message an Ed25519 `cosignature/v1` signs: the header line, the timestamp line and the
/// checkpoint's note body (with its final newline, without signature lines).
pub fn cosigned_message(body: &str, timestamp: u64) -> String {
    format!("cosignature/v1\ntime {timestamp}\n{body}")
}

/// The note body of a signed note: its text up to and including the newline before the blank
/// line that starts the signatures. `None` when there is no such blank line.
pub fn note_body(note: &str) -> Option<&str> {
    note.rfind("\n\n").map(|split| &note[..=split])
}

/// A witness's signing key with its name (`<gateway id>/witness`).
#[derive(Debug, Clone)]
pub struct Cosigner {
    key: AuditSigningKey,
    name: String,
    key_id: [u8; 4],
}

impl Cosigner {
    pub fn new(key: AuditSigningKey, name: &str) -> Result<Cosigner, CheckpointError> {
        check_name(name)?;
        Ok(Cosigner {
            key_id: key.public_key().typed_key_id(name, NOTE_COSIGNATURE_V1),
            key,
            name: name.to_owned(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier key others configure for this witness (signature type 0x04).
    pub fn verifier_key(&self) -> String {
        self.key
            .public_key()
            .typed_verifier_key(&self.name, NOTE_COSIGNATURE_V1)
    }

    pub fn verifier(&self) -> CosignatureVerifier {
        CosignatureVerifier {
            name: self.name.clone(),
            public: self.key.public_key(),
            key_id: self.key_id,
        }
    }

    /// The cosignature line (with its final newline) on a checkpoint's note body at
    /// `timestamp` (POSIX seconds; never zero, as tlog-witness requires: zero becomes one).
    pub fn cosign(&self, body: &str, timestamp: u64) -> Cosignature {
        let timestamp = timestamp.clamp(1, i64::MAX as u64);
        let signature = self.key.sign(cosigned_message(body, timestamp).as_bytes());
        let mut bytes = Vec::with_capacity(76);
        bytes.extend_from_slice(&self.key_id);
        bytes.extend_from_slice(&timestamp.to_be_bytes());
        bytes.extend_from_slice(&signature);
        Cosignature {
            witness: self.name.clone(),
            timestamp,
            line: format!(
                "{SIGNATURE_PREFIX}{} {}\n",
                self.name,
                STANDARD.encode(bytes)
            ),
        }
    }
}

fn check_name(name: &str) -> Result<(), CheckpointError> {
    // The same rule as an origin: a key name has no spaces, '+' or control characters.
    CheckpointVerifier::new(AuditPublicKey::from_bytes([0; 32]), name).map(|_| ())
}

/// A verified cosignature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosignature {
    /// The witness's key name.
    pub witness: String,
    /// POSIX seconds.
    pub timestamp: u64,
    /// The note signature line, ending with a newline.
    pub line: String,
}

impl Cosignature {
    /// The base64 signature field of the line (key ID ‖ timestamp ‖ signature).
    pub fn signature(&self) -> &str {
        self.line.trim_end().rsplit(' ').next().unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CosignatureError {
    #[error("signature line is malformed: {0}")]
    Malformed(&'static str),
    #[error("the cosignature by {0} does not verify")]
    BadSignature(String),
}

/// Checks one witness's cosignatures, configured as a verifier key of type 0x04.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignatureVerifier {
    name: String,
    public: AuditPublicKey,
    key_id: [u8; 4],
}

impl CosignatureVerifier {
    /// From a verifier key string `<name>+<key ID>+<base64(0x04 ‖ key)>`.
    pub fn from_verifier_key(s: &str) -> Result<CosignatureVerifier, KeyError> {
        let (name, public) = AuditPublicKey::from_typed_verifier_key(s, NOTE_COSIGNATURE_V1)?;
        Ok(CosignatureVerifier {
            key_id: public.typed_key_id(&name, NOTE_COSIGNATURE_V1),
            name,
            public,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// This witness's cosignature among `lines` (note signature lines) on `body`. Lines by
    /// other keys are ignored; `Ok(None)` when this witness's key signed none of them.
    pub fn find(&self, body: &str, lines: &str) -> Result<Option<Cosignature>, CosignatureError> {
        for (i, line) in lines.lines().enumerate() {
            if i >= MAX_SIGNATURES {
                return Err(CosignatureError::Malformed("too many signature lines"));
            }
            let rest = line
                .strip_prefix(SIGNATURE_PREFIX)
                .ok_or(CosignatureError::Malformed("no em dash"))?;
            let (name, b64) = rest
                .split_once(' ')
                .ok_or(CosignatureError::Malformed("no signature"))?;
            if name != self.name {
                continue;
            }
            let bytes = STANDARD
                .decode(b64)
                .map_err(|_| CosignatureError::Malformed("signature is not base64"))?;
            if bytes.len() < 4 || bytes[..4] != self.key_id {
                continue;
            }
            if bytes.len() != 4 + 8 + 64 {
                return Err(CosignatureError::BadSignature(self.name.clone()));
            }
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&bytes[4..12]);
            let timestamp = u64::from_be_bytes(ts);
            let message = cosigned_message(body, timestamp);
            if timestamp > i64::MAX as u64 || !self.public.verify(message.as_bytes(), &bytes[12..])
            {
                return Err(CosignatureError::BadSignature(self.name.clone()));
            }
            return Ok(Some(Cosignature {
                witness: self.name.clone(),
                timestamp,
                line: format!("{line}\n"),
            }));
        }
        Ok(None)
    }
}

/// Counts the distinct witnesses among `witnesses` that cosigned the signed `note`.
pub fn count_cosigners(
    note: &str,
    witnesses: &[CosignatureVerifier],
) -> Result<usize, CosignatureError> {
    let body = note_body(note).ok_or(CosignatureError::Malformed("no blank line"))?;
    let lines = &note[body.len() + 1..];
    let mut count = 0;
    for w in witnesses {
        if w.find(body, lines)?.is_some() {
            count += 1;
        }
    }
    Ok(count)
}

/// A parsed `add-checkpoint` request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    pub old_size: u64,
    pub proof: Vec<Hash>,
    /// The signed checkpoint note.
    pub note: String,
}

impl Submission {
    /// The request body: `old <size>`, one base64 hash per line, a blank line, the note.
    pub fn to_body(&self) -> String {
        let mut body = format!("old {}\n", self.old_size);
        for hash in &self.proof {
            body.push_str(&STANDARD.encode(hash));
            body.push('\n');
        }
        body.push('\n');
        body.push_str(&self.note);
        body
    }

    /// Reads a request body (400 when it is not one).
    pub fn parse(body: &str) -> Result<Submission, Refusal> {
        let bad = |why: &str| Refusal::Malformed(why.to_owned());
        if body.len() > MAX_SUBMISSION_BYTES {
            return Err(bad("the request body is too large"));
        }
        let (first, mut rest) = body
            .split_once('\n')
            .ok_or_else(|| bad("no old size line"))?;
        let size = first
            .strip_prefix("old ")
            .ok_or_else(|| bad("the first line is not `old <size>`"))?;
        let old_size = parse_decimal(size)
            .ok_or_else(|| bad("the old size is not a decimal number without leading zeroes"))?;
        let mut proof = Vec::new();
        loop {
            let (line, next) = rest
                .split_once('\n')
                .ok_or_else(|| bad("no empty line before the checkpoint"))?;
            rest = next;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(bad("more than 63 consistency proof lines"));
            }
            let hash: Hash = STANDARD
                .decode(line)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(|| bad("a consistency proof line is not a base64 SHA-256 hash"))?;
            proof.push(hash);
        }
        Ok(Submission {
            old_size,
            proof,
            note: rest.to_owned(),
        })
    }

    /// The checkpoint's origin: the note's first line.
    pub fn origin(&self) -> &str {
        self.note.split('\n').next().unwrap_or_default()
    }
}

/// Decimal without leading zeroes (`0` alone), as tlog-witness and tlog-checkpoint write sizes.
pub fn parse_decimal(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if canonical { text.parse().ok() } else { None }
}

/// What a witness stored for one log: the latest checkpoint it cosigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latest {
    pub size: u64,
    pub root: Hash,
}

/// Why the checkpoint is evidence against the log (audited as `witness.conflict`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// Signed, and smaller than a checkpoint already cosigned: the log went back.
    Rollback,
    /// Signed, of the size already cosigned, with another root: a split view.
    SplitView,
}

impl Conflict {
    pub fn as_str(self) -> &'static str {
        match self {
            Conflict::Rollback => "rollback",
            Conflict::SplitView => "split_view",
        }
    }
}

/// A witness's refusal, each with the status tlog-witness gives it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("malformed submission: {0}")]
    Malformed(String),
    #[error("the checkpoint's origin is not a log this gateway witnesses")]
    UnknownOrigin,
    #[error("no valid signature by the log's key: {0}")]
    Untrusted(String),
    #[error("the old size {old} is larger than the checkpoint's size {size}")]
    OldSizeTooLarge { old: u64, size: u64 },
    #[error("the latest cosigned checkpoint has size {latest}")]
    NotLatest {
        latest: u64,
        conflict: Option<Conflict>,
    },
    #[error("the consistency proof does not verify: {0}")]
    BadProof(String),
}

impl Refusal {
    /// The HTTP status tlog-witness names.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Malformed(_) | Refusal::OldSizeTooLarge { .. } => 400,
            Refusal::Untrusted(_) => 403,
            Refusal::UnknownOrigin => 404,
            Refusal::NotLatest { .. } => 409,
            Refusal::BadProof(_) => 422,
        }
    }

    /// The stable error code (for the audit and metrics).
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Malformed(_) => "malformed",
            Refusal::OldSizeTooLarge { .. } => "old_size_too_large",
            Refusal::Untrusted(_) => "untrusted",
            Refusal::UnknownOrigin => "unknown_origin",
            Refusal::NotLatest { .. } => "conflict",
            Refusal::BadProof(_) => "bad_proof",
        }
    }
}

/// A checkpoint the witness may cosign once it stored `new` in place of the `previous` latest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub origin: String,
    pub previous: Option<Latest>,
    pub new: Latest,
    /// The note body to cosign.
    pub body: String,
}

/// The witness's decision on `submission`, in the order tlog-witness gives the checks.
/// `log` is the verifier of the log's key (`None`: unknown origin); `stored` what the witness
/// last cosigned for that origin.
pub fn decide(
    submission: &Submission,
    log: Option<&CheckpointVerifier>,
    stored: Option<Latest>,
) -> Result<Accepted, Refusal> {
    let log = log.ok_or(Refusal::UnknownOrigin)?;
    let signed = log.verify(&submission.note).map_err(|e| match e {
        CheckpointError::NoKnownSignature { .. } | CheckpointError::BadSignature => {
            Refusal::Untrusted(e.to_string())
        }
        other => Refusal::Malformed(other.to_string()),
    })?;
    let checkpoint = signed.checkpoint();
    let (old, size, root) = (
        submission.old_size,
        checkpoint.tree_size,
        checkpoint.root_hash,
    );
    if old > size {
        return Err(Refusal::OldSizeTooLarge { old, size });
    }
    let latest = stored.map(|l| l.size).unwrap_or(0);
    let conflict = match stored {
        Some(s) if size < s.size => Some(Conflict::Rollback),
        Some(s) if size == s.size && root != s.root => Some(Conflict::SplitView),
        _ => None,
    };
    if old != latest || conflict.is_some() {
        return Err(Refusal::NotLatest { latest, conflict });
    }
    if size == 0 && root != empty_root() {
        return Err(Refusal::BadProof(
            "a checkpoint of size 0 must have the empty tree's root".into(),
        ));
    }
    if old == 0 {
        if !submission.proof.is_empty() {
            return Err(Refusal::BadProof(
                "the proof must be empty when the old size is 0".into(),
            ));
        }
    } else if old < size {
        let old_root = stored.map(|s| s.root).unwrap_or_else(empty_root);
        verify_consistency(old, size, &old_root, &root, &submission.proof)
            .map_err(|e| Refusal::BadProof(e.to_string()))?;
    } else if !submission.proof.is_empty() {
        return Err(Refusal::BadProof(
            "the proof must be empty when the old size is the checkpoint's".into(),
        ));
    }
    let body = note_body(&submission.note)
        .ok_or_else(|| Refusal::Malformed("no blank line before the signatures".into()))?;
    Ok(Accepted {
        origin: checkpoint.origin.clone(),
        previous: stored,
        new: Latest { size, root },
        body: body.to_owned(),
    })
}

/// What a log does after a witness answered `409` with its latest cosigned size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterConflict {
    /// Submit again with a proof from this size.
    Resubmit { old: u64 },
    /// The witness cosigned more of this log than the log has, or the same size again: the
    /// log's history differs from what the witness saw (audited as `witness.conflict`).
    Conflict,
}

/// The log's decision on a `409` naming `latest`, having sent `sent_old` for a checkpoint of
/// `own_size`.
pub fn after_conflict(latest: u64, sent_old: u64, own_size: u64) -> AfterConflict {
    if latest > own_size || latest == sent_old {
        AfterConflict::Conflict
    } else {
        AfterConflict::Resubmit { old: latest }
    }
}

/// Reads a `text/x.tlog.size` body.
pub fn parse_size_body(body: &str) -> Option<u64> {
    parse_decimal(body.strip_suffix('\n')?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::audit::checkpoint::CheckpointSigner;
    use crate::audit::key::tests::TEST_KEY_PEM;
    use crate::audit::merkle::{MerkleTree, leaf_hash};
    use crate::clock::Timestamp;

    const ORIGIN: &str = "turku.example.fi/audit";
    /// A second throwaway Ed25519 key (RFC 8032 test 1 secret key in PKCS#8).
    const OTHER_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n-----END PRIVATE KEY-----\n";

    fn key(pem: &str) -> AuditSigningKey {
        AuditSigningKey::from_pkcs8_pem(pem).unwrap()
    }

    fn tree(n: u64, tag: &str) -> MerkleTree {
        let mut t = MerkleTree::new();
        for i in 0..n {
            t.push(leaf_hash(format!("{tag}{i}").as_bytes()));
        }
        t
    }

    fn note(signer: &CheckpointSigner, t: &MerkleTree, size: u64) -> String {
        signer
            .sign(
                size,
                t.root_at(size).unwrap(),
                Timestamp::from_millis(1_000),
            )
            .into_string()
    }

    fn log() -> (CheckpointSigner, CheckpointVerifier) {
        let s = CheckpointSigner::new(key(TEST_KEY_PEM), ORIGIN).unwrap();
        let v = s.verifier();
        (s, v)
    }

    fn sub(old: u64, proof: Vec<Hash>, note: String) -> Submission {
        Submission {
            old_size: old,
            proof,
            note,
        }
    }

    #[test]
    fn cosignature_known_format_and_verification() {
        let c = Cosigner::new(key(OTHER_KEY_PEM), "helsinki.example.fi/witness").unwrap();
        let body = "o\n1\nAAAA\n";
        let cs = c.cosign(body, 1_679_315_147);
        let bytes = STANDARD.decode(cs.signature()).unwrap();
        assert_eq!(bytes.len(), 76);
        assert_eq!(
            bytes[..4],
            key(OTHER_KEY_PEM)
                .public_key()
                .typed_key_id("helsinki.example.fi/witness", 0x04)
        );
        assert_eq!(bytes[4..12], 1_679_315_147u64.to_be_bytes());
        assert!(key(OTHER_KEY_PEM).public_key().verify(
            b"cosignature/v1\ntime 1679315147\no\n1\nAAAA\n",
            &bytes[12..]
        ));
        let v = CosignatureVerifier::from_verifier_key(&c.verifier_key()).unwrap();
        assert_eq!(v, c.verifier());
        assert_eq!(v.find(body, &cs.line).unwrap(), Some(cs.clone()));
        // Another body: the same line does not verify.
        assert!(matches!(
            v.find("o\n2\nAAAA\n", &cs.line),
            Err(CosignatureError::BadSignature(_))
        ));
        // Lines of other keys are ignored.
        let other = Cosigner::new(key(TEST_KEY_PEM), "other/witness").unwrap();
        assert_eq!(v.find(body, &other.cosign(body, 5).line).unwrap(), None);
        // A zero timestamp is never produced.
        assert_eq!(c.cosign(body, 0).timestamp, 1);
        // The log's own verifier key (type 0x01) is not a witness key.
        assert!(
            CosignatureVerifier::from_verifier_key(
                &key(OTHER_KEY_PEM).public_key().note_verifier_key("x")
            )
            .is_err()
        );
    }

    #[test]
    fn submission_round_trips_and_rejects_malformed_bodies() {
        let s = sub(
            3,
            vec![[1; 32], [2; 32]],
            "o\n5\nroot\n\n\u{2014} o sig\n".into(),
        );
        let body = s.to_body();
        assert!(body.starts_with("old 3\nAQEB"));
        assert_eq!(Submission::parse(&body).unwrap(), s);
        assert_eq!(s.origin(), "o");
        for bad in [
            "",
            "old 03\n\nx",
            "old -1\n\nx",
            "new 3\n\nx",
            "old 3\nnotbase64\n\nx",
            "old 3\nAQID\n\nx",
            "old 3\n",
        ] {
            assert_eq!(Submission::parse(bad).unwrap_err().status(), 400, "{bad:?}");
        }
        let many = format!(
            "old 1\n{}\nx",
            format!("{}\n", STANDARD.encode([0u8; 32])).repeat(64)
        );
        assert_eq!(Submission::parse(&many).unwrap_err().status(), 400);
    }

    #[test]
    fn decision_table() {
        let (signer, verifier) = log();
        let t = tree(10, "a");
        let at = |n: u64| Latest {
            size: n,
            root: t.root_at(n).unwrap(),
        };
        // First submission: old 0, empty proof.
        let ok = decide(&sub(0, vec![], note(&signer, &t, 4)), Some(&verifier), None).unwrap();
        assert_eq!(ok.new, at(4));
        assert!(ok.body.ends_with("\n") && !ok.body.contains('\u{2014}'));
        // Consistent growth from the stored size.
        let proof = t.consistency_proof(4, 10).unwrap();
        let ok = decide(
            &sub(4, proof.clone(), note(&signer, &t, 10)),
            Some(&verifier),
            Some(at(4)),
        )
        .unwrap();
        assert_eq!((ok.previous, ok.new), (Some(at(4)), at(10)));
        // The same checkpoint again is cosigned again.
        assert!(
            decide(
                &sub(10, vec![], note(&signer, &t, 10)),
                Some(&verifier),
                Some(at(10))
            )
            .is_ok()
        );

        let status = |s: Submission, stored: Option<Latest>, v: Option<&CheckpointVerifier>| {
            decide(&s, v, stored).unwrap_err()
        };
        // Unknown origin: 404.
        assert_eq!(
            status(sub(0, vec![], note(&signer, &t, 4)), None, None).status(),
            404
        );
        // Right origin, wrong key: 403.
        let forger = CheckpointSigner::new(key(OTHER_KEY_PEM), ORIGIN).unwrap();
        assert_eq!(
            status(sub(0, vec![], note(&forger, &t, 4)), None, Some(&verifier)).status(),
            403
        );
        // A trusted key's signature that fails: 403.
        let tampered = note(&signer, &t, 4).replacen("\n4\n", "\n5\n", 1);
        assert_eq!(
            status(sub(0, vec![], tampered), None, Some(&verifier)).status(),
            403
        );
        // Old size above the checkpoint's: 400.
        assert_eq!(
            status(sub(5, vec![], note(&signer, &t, 4)), None, Some(&verifier)).status(),
            400
        );
        // Old size is not the stored one: 409 naming it, no conflict.
        let r = status(
            sub(0, vec![], note(&signer, &t, 10)),
            Some(at(4)),
            Some(&verifier),
        );
        assert_eq!(
            r,
            Refusal::NotLatest {
                latest: 4,
                conflict: None
            }
        );
        assert_eq!(r.status(), 409);
        // Smaller than cosigned: rollback conflict.
        let r = status(
            sub(0, vec![], note(&signer, &t, 3)),
            Some(at(4)),
            Some(&verifier),
        );
        assert_eq!(
            r,
            Refusal::NotLatest {
                latest: 4,
                conflict: Some(Conflict::Rollback)
            }
        );
        // Same size, another root: split view, 409 even with the right old size.
        let fork = tree(10, "b");
        let r = status(
            sub(4, vec![], note(&signer, &fork, 4)),
            Some(at(4)),
            Some(&verifier),
        );
        assert_eq!(
            r,
            Refusal::NotLatest {
                latest: 4,
                conflict: Some(Conflict::SplitView)
            }
        );
        // A proof that does not lead from the stored root: 422.
        let bad = fork.consistency_proof(4, 10).unwrap();
        assert_eq!(
            status(
                sub(4, bad, note(&signer, &fork, 10)),
                Some(at(4)),
                Some(&verifier)
            )
            .status(),
            422
        );
        // Right tree, damaged proof: 422.
        let mut damaged = proof.clone();
        damaged[0][0] ^= 1;
        assert_eq!(
            status(
                sub(4, damaged, note(&signer, &t, 10)),
                Some(at(4)),
                Some(&verifier)
            )
            .status(),
            422
        );
        // A proof with old size 0: 422.
        assert_eq!(
            status(sub(0, proof, note(&signer, &t, 10)), None, Some(&verifier)).status(),
            422
        );
        // Size 0 must have the empty root.
        let zero = signer
            .sign(0, leaf_hash(b"x"), Timestamp::from_millis(1))
            .into_string();
        assert_eq!(
            status(sub(0, vec![], zero), None, Some(&verifier)).status(),
            422
        );
        let zero = signer
            .sign(0, empty_root(), Timestamp::from_millis(1))
            .into_string();
        assert!(decide(&sub(0, vec![], zero), Some(&verifier), None).is_ok());
    }

    #[test]
    fn log_side_conflict_decisions_and_quorum() {
        assert_eq!(after_conflict(4, 0, 10), AfterConflict::Resubmit { old: 4 });
        assert_eq!(after_conflict(12, 0, 10), AfterConflict::Conflict);
        assert_eq!(after_conflict(4, 4, 10), AfterConflict::Conflict);
        assert_eq!(parse_size_body("12\n"), Some(12));
        assert_eq!(parse_size_body("012\n"), None);
        assert_eq!(parse_size_body("12"), None);

        let (signer, _) = log();
        let n = note(&signer, &tree(3, "a"), 3);
        let body = note_body(&n).unwrap();
        let w1 = Cosigner::new(key(OTHER_KEY_PEM), "a/witness").unwrap();
        let w2 = Cosigner::new(key(TEST_KEY_PEM), "b/witness").unwrap();
        let with = format!("{n}{}{}", w1.cosign(body, 7).line, w2.cosign(body, 8).line);
        let both = [w1.verifier(), w2.verifier()];
        assert_eq!(count_cosigners(&with, &both).unwrap(), 2);
        assert_eq!(count_cosigners(&n, &both).unwrap(), 0);
        let forged = with.replacen(&w2.cosign(body, 8).line, &w2.cosign("x\n", 8).line, 1);
        assert!(count_cosigners(&forged, &both).is_err());
    }
}
