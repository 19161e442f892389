//! Audit events and entries: the canonical byte encoding, the hash chain, pseudonyms of
//! student identifiers, and [`AuditLog`], the head of the log that seals events into entries.
//!
//! Owns: the encoding every hash of the audit trail is computed over. It must stay stable:
//! a change needs a new format version byte, never an edit of version 1.
//!
//! # Canonical encoding, version 1
//! All integers are big-endian; a *string* is its UTF-8 byte length as a u64 followed by the
//! bytes; an *optional* is the byte 0x00 (absent) or 0x01 followed by the value.
//! ```text
//! 0x01                      format version
//! u64  seq                  0-based, equal to the Merkle leaf index
//! i64  at                   milliseconds since the Unix epoch
//! string actor
//! string action
//! string outcome
//! optional string transfer_id
//! optional string subject   the 64 lower-case hex digits of the pseudonym
//! optional [32] document_sha256
//! u64  number of detail members, then for each, in ascending byte order of the key:
//!      string key, string value
//! ```
//! Entry hash = SHA-256(prev_hash ‖ canonical), with 32 zero bytes as the genesis `prev_hash`.
//! Merkle leaf hash = SHA-256(0x00 ‖ canonical) (RFC 9162).
//!
//! Must not: hold or encode a student identifier in clear ([`Pseudonymizer`] turns it into a
//! keyed hash first), do IO, or read the clock.

use std::collections::BTreeMap;
use std::fmt;

use ring::digest::{Context, SHA256};
use ring::hmac;

use super::merkle::{Hash, MerkleTree, leaf_hash};
use crate::clock::{Timestamp, hex};
use crate::student_id::StudentId;

/// The first byte of every canonical encoding.
pub const FORMAT_VERSION: u8 = 1;
/// `prev_hash` of entry 0.
pub const GENESIS_PREV_HASH: Hash = [0u8; 32];
/// Shortest pseudonym key accepted, in bytes.
pub const MIN_PSEUDONYM_KEY_BYTES: usize = 32;
/// Domain separation for pseudonyms, so the key's HMAC outputs mean nothing elsewhere.
const PSEUDONYM_CONTEXT: &[u8] = b"siirto pseudonym v1\n";
/// Domain separation for guardians' pseudonyms: a guardian's pseudonym is not the pseudonym the
/// same person has as a student, so the two roles cannot be joined in the trail.
const GUARDIAN_PSEUDONYM_CONTEXT: &[u8] = b"siirto guardian pseudonym v1\n";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("pseudonym key is {0} bytes; at least {MIN_PSEUDONYM_KEY_BYTES} are required")]
    PseudonymKeyTooShort(usize),
    #[error("a pseudonym is 64 lower-case hexadecimal digits")]
    InvalidPseudonym,
    #[error(
        "batch was sealed on top of entry count {sealed_at}, but the log now holds {current} entries"
    )]
    StaleBatch { sealed_at: u64, current: u64 },
}

/// A keyed hash standing for a student in the audit trail: HMAC-SHA256 under the gateway's
/// pseudonym key, as 64 lower-case hex digits. Equal students get equal pseudonyms; without
/// the key a pseudonym cannot be linked back to a student.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Pseudonym(String);

impl Pseudonym {
    /// Reads a stored pseudonym.
    pub fn parse(s: &str) -> Result<Pseudonym, EntryError> {
        if s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Pseudonym(s.to_owned()))
        } else {
            Err(EntryError::InvalidPseudonym)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Turns student identifiers into [`Pseudonym`]s:
/// `hex(HMAC-SHA256(key, "siirto pseudonym v1\n" ‖ identifier))`.
pub struct Pseudonymizer {
    key: hmac::Key,
}

impl fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pseudonymizer(<key redacted>)")
    }
}

impl Pseudonymizer {
    /// `key` is the secret of `gateway.pseudonym_key`: at least 32 bytes, since the identifier
    /// space is small enough to enumerate and the key is all that protects it.
    pub fn new(key: &[u8]) -> Result<Pseudonymizer, EntryError> {
        if key.len() < MIN_PSEUDONYM_KEY_BYTES {
            return Err(EntryError::PseudonymKeyTooShort(key.len()));
        }
        Ok(Pseudonymizer {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        })
    }

    pub fn pseudonym(&self, student: &StudentId) -> Pseudonym {
        self.keyed(PSEUDONYM_CONTEXT, student)
    }

    /// The pseudonym of a guardian who consented for a student:
    /// `hex(HMAC-SHA256(key, "siirto guardian pseudonym v1\n" ‖ identifier))`.
    pub fn guardian_pseudonym(&self, guardian: &StudentId) -> Pseudonym {
        self.keyed(GUARDIAN_PSEUDONYM_CONTEXT, guardian)
    }

    fn keyed(&self, context: &[u8], id: &StudentId) -> Pseudonym {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(context);
        ctx.update(id.as_str().as_bytes());
        Pseudonym(hex(ctx.sign().as_ref()))
    }
}

/// Something that happened, as the gateway records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub at: Timestamp,
    /// Who acted: a participant id, `gateway`, or an operator.
    pub actor: String,
    /// What happened, e.g. `transfer.accepted`, `transfer.delivered`, `tls.unknown_client`.
    pub action: String,
    /// How it ended, e.g. `ok`, or an error code.
    pub outcome: String,
    pub transfer_id: Option<String>,
    pub subject: Option<Pseudonym>,
    pub document_sha256: Option<Hash>,
    /// Further facts, by name. Never a student identifier or key material.
    pub detail: BTreeMap<String, String>,
}

impl AuditEvent {
    /// An event with no transfer, subject, document or detail.
    pub fn new(
        at: Timestamp,
        actor: impl Into<String>,
        action: impl Into<String>,
        outcome: impl Into<String>,
    ) -> AuditEvent {
        AuditEvent {
            at,
            actor: actor.into(),
            action: action.into(),
            outcome: outcome.into(),
            transfer_id: None,
            subject: None,
            document_sha256: None,
            detail: BTreeMap::new(),
        }
    }

    /// Appends the canonical encoding of this event as entry `seq` to `out`.
    pub fn encode_into(&self, seq: u64, out: &mut Vec<u8>) {
        fn string(out: &mut Vec<u8>, s: &str) {
            out.extend_from_slice(&(s.len() as u64).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&self.at.millis().to_be_bytes());
        string(out, &self.actor);
        string(out, &self.action);
        string(out, &self.outcome);
        match &self.transfer_id {
            None => out.push(0),
            Some(t) => {
                out.push(1);
                string(out, t);
            }
        }
        match &self.subject {
            None => out.push(0),
            Some(p) => {
                out.push(1);
                string(out, p.as_str());
            }
        }
        match &self.document_sha256 {
            None => out.push(0),
            Some(h) => {
                out.push(1);
                out.extend_from_slice(h);
            }
        }
        out.extend_from_slice(&(self.detail.len() as u64).to_be_bytes());
        // BTreeMap<String, _> iterates in ascending byte order of the keys.
        for (k, v) in &self.detail {
            string(out, k);
            string(out, v);
        }
    }

    /// The canonical encoding of this event as entry `seq`.
    pub fn canonical_bytes(&self, seq: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.encode_into(seq, &mut out);
        out
    }
}

/// SHA-256(prev_hash ‖ canonical).
pub fn chain_hash(prev_hash: &Hash, canonical: &[u8]) -> Hash {
    let mut ctx = Context::new(&SHA256);
    ctx.update(prev_hash);
    ctx.update(canonical);
    let mut h = [0u8; 32];
    h.copy_from_slice(ctx.finish().as_ref());
    h
}

/// One stored entry of the log. Values read back from storage are untrusted until
/// [`super::verify`] has checked them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// 0-based position in the log, equal to the Merkle leaf index.
    pub seq: u64,
    pub event: AuditEvent,
    /// `hash` of entry `seq - 1`; 32 zero bytes for entry 0.
    pub prev_hash: Hash,
    /// SHA-256(prev_hash ‖ canonical).
    pub hash: Hash,
}

impl AuditEntry {
    /// Entry `seq` holding `event`, chained to `prev_hash` (the previous entry's hash).
    pub fn chained(seq: u64, prev_hash: Hash, event: AuditEvent) -> AuditEntry {
        let hash = chain_hash(&prev_hash, &event.canonical_bytes(seq));
        AuditEntry {
            seq,
            event,
            prev_hash,
            hash,
        }
    }

    pub fn canonical_bytes(&self) -> Vec<u8> {
        self.event.canonical_bytes(self.seq)
    }

    /// The hash this entry should have, computed from its contents and `prev_hash`.
    pub fn computed_hash(&self) -> Hash {
        chain_hash(&self.prev_hash, &self.canonical_bytes())
    }

    /// Its RFC 9162 leaf hash.
    pub fn leaf_hash(&self) -> Hash {
        leaf_hash(&self.canonical_bytes())
    }
}

/// Entries sealed by [`AuditLog::seal`]: store them, then [`AuditLog::commit`] the batch.
#[derive(Debug, Clone)]
pub struct SealedBatch {
    base_size: u64,
    entries: Vec<AuditEntry>,
    leaves: Vec<Hash>,
}

impl SealedBatch {
    pub fn entries(&self) -> &[AuditEntry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The head of the log in memory: the next `seq`, the last entry's hash and the Merkle tree
/// of every leaf (about 64 bytes per entry), so checkpoints and proofs for any size are cheap.
#[derive(Debug, Clone)]
pub struct AuditLog {
    head: Hash,
    tree: MerkleTree,
}

impl Default for AuditLog {
    fn default() -> Self {
        AuditLog::new()
    }
}

impl AuditLog {
    /// An empty log.
    pub fn new() -> AuditLog {
        AuditLog {
            head: GENESIS_PREV_HASH,
            tree: MerkleTree::new(),
        }
    }

    /// Rebuilds the head from stored entries (in seq order), checking the chain on the way.
    /// Checkpoints are not consulted; run [`super::verify_log`] for that.
    pub fn resume<I>(entries: I) -> Result<AuditLog, super::VerifyError>
    where
        I: IntoIterator<Item = AuditEntry>,
    {
        let mut verifier = super::Verifier::without_checkpoints();
        let mut tree = MerkleTree::new();
        for entry in entries {
            let leaf = verifier.push(&entry)?;
            tree.push(leaf);
        }
        let summary = verifier.finish()?;
        Ok(AuditLog {
            head: summary.head_hash,
            tree,
        })
    }

    /// Number of entries.
    pub fn size(&self) -> u64 {
        self.tree.size()
    }

    /// `hash` of the last entry (the genesis value when empty).
    pub fn head_hash(&self) -> Hash {
        self.head
    }

    /// The Merkle root of the whole log.
    pub fn root(&self) -> Hash {
        self.tree.root()
    }

    /// The tree, for roots and proofs at earlier sizes.
    pub fn tree(&self) -> &MerkleTree {
        &self.tree
    }

    /// Turns events into the entries that follow the current head, without changing the log.
    pub fn seal(&self, events: impl IntoIterator<Item = AuditEvent>) -> SealedBatch {
        let base_size = self.size();
        let mut prev = self.head;
        let mut buf = Vec::with_capacity(512);
        let mut entries = Vec::new();
        let mut leaves = Vec::new();
        for (i, event) in events.into_iter().enumerate() {
            let seq = base_size + i as u64;
            buf.clear();
            event.encode_into(seq, &mut buf);
            let hash = chain_hash(&prev, &buf);
            leaves.push(leaf_hash(&buf));
            entries.push(AuditEntry {
                seq,
                event,
                prev_hash: prev,
                hash,
            });
            prev = hash;
        }
        SealedBatch {
            base_size,
            entries,
            leaves,
        }
    }

    /// Adds a sealed batch once it has been stored. Refused when another batch was committed
    /// since it was sealed.
    pub fn commit(&mut self, batch: SealedBatch) -> Result<Vec<AuditEntry>, EntryError> {
        if batch.base_size != self.size() {
            return Err(EntryError::StaleBatch {
                sealed_at: batch.base_size,
                current: self.size(),
            });
        }
        for leaf in &batch.leaves {
            self.tree.push(*leaf);
        }
        if let Some(last) = batch.entries.last() {
            self.head = last.hash;
        }
        Ok(batch.entries)
    }

    /// Seals and commits one event at once (when nothing is stored in between).
    pub fn append(&mut self, event: AuditEvent) -> AuditEntry {
        let seq = self.size();
        let canonical = event.canonical_bytes(seq);
        let hash = chain_hash(&self.head, &canonical);
        self.tree.push(leaf_hash(&canonical));
        let entry = AuditEntry {
            seq,
            event,
            prev_hash: self.head,
            hash,
        };
        self.head = hash;
        entry
    }
}

/// The JSON form of an audit entry: the API's (`GET /v1/audit`), the proof documents', and
/// `siirto audit export`'s line format.
pub fn entry_json(e: &AuditEntry) -> serde_json::Value {
    let ev = &e.event;
    serde_json::json!({
        "seq": e.seq,
        "at": ev.at.rfc3339(),
        "actor": ev.actor,
        "action": ev.action,
        "outcome": ev.outcome,
        "transfer_id": ev.transfer_id,
        "subject": ev.subject.as_ref().map(|p| p.as_str()),
        "document_sha256": ev.document_sha256.as_ref().map(|h| hex(h)),
        "detail": ev.detail,
        "prev_hash": hex(&e.prev_hash),
        "hash": hex(&e.hash),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn event(i: u64) -> AuditEvent {
        let mut e = AuditEvent::new(
            Timestamp::from_millis(1_795_448_460_000 + i as i64),
            "turku",
            "transfer.accepted",
            "ok",
        );
        e.transfer_id = Some(format!("t-{i}"));
        e
    }

    #[test]
    fn encoding_is_exact_and_documented() {
        let mut e = AuditEvent::new(Timestamp::from_millis(258), "ab", "c", "");
        e.detail.insert("z".into(), "1".into());
        e.detail.insert("a".into(), "".into());
        let mut expected = vec![1u8];
        expected.extend_from_slice(&7u64.to_be_bytes());
        expected.extend_from_slice(&258i64.to_be_bytes());
        for s in ["ab", "c", ""] {
            expected.extend_from_slice(&(s.len() as u64).to_be_bytes());
            expected.extend_from_slice(s.as_bytes());
        }
        expected.extend_from_slice(&[0, 0, 0]);
        expected.extend_from_slice(&2u64.to_be_bytes());
        for s in ["a", "", "z", "1"] {
            expected.extend_from_slice(&(s.len() as u64).to_be_bytes());
            expected.extend_from_slice(s.as_bytes());
        }
        assert_eq!(e.canonical_bytes(7), expected);
    }

    #[test]
    fn encoding_is_unambiguous() {
        // Moving bytes between adjacent fields, or between absent and empty, changes the bytes.
        let base = AuditEvent::new(Timestamp::from_millis(0), "ab", "c", "x");
        let mut shifted = base.clone();
        shifted.actor = "a".into();
        shifted.action = "bc".into();
        assert_ne!(base.canonical_bytes(0), shifted.canonical_bytes(0));
        let mut empty_transfer = base.clone();
        empty_transfer.transfer_id = Some(String::new());
        assert_ne!(base.canonical_bytes(0), empty_transfer.canonical_bytes(0));
        let mut detail = base.clone();
        detail.detail.insert("k".into(), "v".into());
        let mut detail2 = base.clone();
        detail2.detail.insert("kv".into(), String::new());
        assert_ne!(detail.canonical_bytes(0), detail2.canonical_bytes(0));
        assert_ne!(base.canonical_bytes(0), base.canonical_bytes(1));
    }

    #[test]
    fn pseudonyms_are_keyed_and_stable() {
        let id = StudentId::parse("131052-308T").unwrap();
        let p1 = Pseudonymizer::new(&[7u8; 32]).unwrap();
        let p2 = Pseudonymizer::new(&[8u8; 32]).unwrap();
        let a = p1.pseudonym(&id);
        assert_eq!(a, p1.pseudonym(&id));
        assert_ne!(a, p2.pseudonym(&id));
        assert_eq!(a.as_str().len(), 64);
        assert!(!a.as_str().contains("131052"));
        assert_eq!(Pseudonym::parse(a.as_str()), Ok(a.clone()));
        assert_eq!(Pseudonym::parse("ABC"), Err(EntryError::InvalidPseudonym));
        assert_eq!(
            Pseudonymizer::new(b"short").unwrap_err(),
            EntryError::PseudonymKeyTooShort(5)
        );
        assert!(!format!("{p1:?}").contains('7'));
        // Known answer: HMAC-SHA256(key, context ‖ id), computed independently.
        let expected = {
            let k = hmac::Key::new(hmac::HMAC_SHA256, &[7u8; 32]);
            hex(hmac::sign(&k, b"siirto pseudonym v1\n131052-308T").as_ref())
        };
        assert_eq!(a.as_str(), expected);
        // A guardian's pseudonym has its own domain: the same person as a guardian and as a
        // student gets two unrelated pseudonyms.
        let g = p1.guardian_pseudonym(&id);
        assert_ne!(g, a);
        assert_eq!(g, p1.guardian_pseudonym(&id));
        let expected = {
            let k = hmac::Key::new(hmac::HMAC_SHA256, &[7u8; 32]);
            hex(hmac::sign(&k, b"siirto guardian pseudonym v1\n131052-308T").as_ref())
        };
        assert_eq!(g.as_str(), expected);
    }

    #[test]
    fn log_chains_entries_and_grows_the_tree() {
        let mut log = AuditLog::new();
        let first = log.append(event(0));
        assert_eq!(first.seq, 0);
        assert_eq!(first.prev_hash, GENESIS_PREV_HASH);
        assert_eq!(first.hash, first.computed_hash());
        let batch = log.seal((1..5).map(event));
        assert_eq!(log.size(), 1, "sealing changes nothing");
        let entries = log.commit(batch).unwrap();
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[0].prev_hash, first.hash);
        for w in entries.windows(2) {
            assert_eq!(w[1].prev_hash, w[0].hash);
            assert_eq!(w[1].seq, w[0].seq + 1);
        }
        assert_eq!(log.size(), 5);
        assert_eq!(log.head_hash(), entries[3].hash);
        assert_eq!(log.tree().leaf(2), Some(entries[1].leaf_hash()));

        // A batch sealed before another commit is refused.
        let stale = log.seal([event(5)]);
        log.append(event(5));
        assert_eq!(
            log.commit(stale).unwrap_err(),
            EntryError::StaleBatch {
                sealed_at: 5,
                current: 6
            }
        );

        // Resuming from the stored entries gives the same head and root.
        let mut all = vec![first];
        all.extend(entries);
        let mut replay = AuditLog::new();
        let mut stored = Vec::new();
        for e in all.iter().map(|e| e.event.clone()).chain([event(5)]) {
            stored.push(replay.append(e));
        }
        let resumed = AuditLog::resume(stored).unwrap();
        assert_eq!(resumed.head_hash(), log.head_hash());
        assert_eq!(resumed.root(), log.root());
    }
}
