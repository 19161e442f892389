//! Whole-log verification: entries in seq order (streamed, so millions fit in constant memory)
//! and the stored checkpoints → a [`VerifySummary`], or a [`VerifyError`] naming the first bad
//! entry and why.
//!
//! Owns the rules:
//! - entry `i` carries seq `i`; a gap is a deletion, a repeated seq an insertion, a seq that
//!   comes back after a gap a reordering;
//! - its stored `hash` is SHA-256(prev_hash ‖ canonical) of its own contents (else it was
//!   changed after it was written) and its `prev_hash` is the previous entry's `hash`;
//! - every checkpoint carries a valid signature by the audit key, and its root equals the
//!   RFC 9162 root recomputed over the first `tree_size` entries. Since all those roots are
//!   recomputed from one sequence of leaves, checkpoints that match are consistent with each
//!   other (each is a prefix of the next) without separate consistency proofs;
//! - the log is at least as long as the largest checkpoint (else its tail was truncated).
//!
//! A pruned log ([`super::prune`]) is verified from its base ([`Verifier::resume`]): the
//! checkpoint at the base's size must exist and its root equal the base's frontier root; every
//! older checkpoint must reach a later one through the base's consistency proofs; the first
//! kept entry must link to the base's head; checkpoints after the base are checked as above.
//!
//! The hash chain has no secret: someone able to rewrite the store can recompute it. What
//! they cannot forge is a checkpoint; entries after the newest checkpoint are protected only
//! by the chain, and [`VerifySummary::unanchored`] says how many there are.
//!
//! Must not: do IO. The store feeds entries to [`Verifier::push`] as it reads them.

use super::checkpoint::{Checkpoint, CheckpointError, CheckpointVerifier};
use super::entry::{AuditEntry, GENESIS_PREV_HASH, chain_hash};
use super::merkle::{CompactRange, Hash, empty_root, leaf_hash, verify_consistency};
use super::prune::PrunedBase;
use crate::clock::Timestamp;

/// How far around its position a changed entry is tried under other seqs, to tell a
/// renumbering from an edit.
const RENUMBER_WINDOW: u64 = 4;

/// What is wrong, naming the first bad entry (`seq`) where there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("checkpoint #{index}: {source}")]
    Checkpoint {
        index: usize,
        source: CheckpointError,
    },
    #[error(
        "entry {seq}: its stored hash does not match its contents (changed after it was written)"
    )]
    HashMismatch { seq: u64 },
    #[error(
        "entry {seq}: its contents were written as entry {written_as} (entries were renumbered)"
    )]
    Renumbered { seq: u64, written_as: u64 },
    #[error("entry {seq} is missing (deleted){}", next.map(|n| format!("; the next entry present is {n}")).unwrap_or_default())]
    Missing { seq: u64, next: Option<u64> },
    #[error("entry {seq} appears again after entry {after} (an entry was inserted)")]
    Duplicate { seq: u64, after: u64 },
    #[error("entry {seq} was inserted: entry {} links past it to entry {}", seq + 1, seq.wrapping_sub(1))]
    Inserted { seq: u64 },
    #[error("entry {seq} comes after entry {other} (entries were reordered)")]
    Reordered { seq: u64, other: u64 },
    #[error("entry {seq}: prev_hash is not the hash of entry {} (an entry before it was removed, inserted or replaced)", seq.wrapping_sub(1))]
    BrokenLink { seq: u64 },
    #[error("entries {first}..{} do not match the checkpoint of size {tree_size} signed at {time}: an entry in that range was changed, inserted or deleted and the chain rewritten", tree_size - 1)]
    CheckpointRootMismatch {
        first: u64,
        tree_size: u64,
        time: Timestamp,
    },
    #[error(
        "the log ends after {entries} entries, but a checkpoint signed at {time} covers {tree_size}: entries from {entries} on were removed (tail truncated)"
    )]
    Truncated {
        entries: u64,
        tree_size: u64,
        time: Timestamp,
    },
    #[error("the entries before {size} were pruned, but {reason}")]
    PrunedBase { size: u64, reason: String },
}

impl VerifyError {
    /// The first entry known to be bad, when the error is about an entry.
    pub fn first_bad_seq(&self) -> Option<u64> {
        match self {
            VerifyError::Checkpoint { .. } => None,
            VerifyError::HashMismatch { seq }
            | VerifyError::Renumbered { seq, .. }
            | VerifyError::Missing { seq, .. }
            | VerifyError::Duplicate { seq, .. }
            | VerifyError::Inserted { seq }
            | VerifyError::Reordered { seq, .. }
            | VerifyError::BrokenLink { seq } => Some(*seq),
            VerifyError::CheckpointRootMismatch { first, .. } => Some(*first),
            VerifyError::Truncated { entries, .. } => Some(*entries),
            VerifyError::PrunedBase { .. } => None,
        }
    }
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifySummary {
    /// Entries checked.
    pub entries: u64,
    /// `hash` of the last entry (the genesis value for an empty log).
    pub head_hash: Hash,
    /// RFC 9162 root over every entry.
    pub root: Hash,
    /// Checkpoints whose signature and root verified.
    pub checkpoints: usize,
    /// The checkpoint with the largest tree size, if any.
    pub latest_checkpoint: Option<Checkpoint>,
    /// Entries after the latest checkpoint: protected by the hash chain only.
    pub unanchored: u64,
    /// Entries before this were pruned (0: none); `entries` counts from here.
    pub pruned_before: u64,
}

/// Incremental verifier: [`Verifier::push`] each entry in seq order, then [`Verifier::finish`].
#[derive(Debug)]
pub struct Verifier {
    next_seq: u64,
    head: Hash,
    /// `hash` of the entry before the last one, to recognise an inserted entry.
    previous_head: Hash,
    range: CompactRange,
    /// Verified checkpoints, ascending by tree size.
    checkpoints: Vec<Checkpoint>,
    next_checkpoint: usize,
    /// Size of the last checkpoint whose root matched.
    anchored: u64,
    /// Entries before this were pruned.
    pruned_before: u64,
    /// An entry seen ahead of its place; decided by the next one.
    held: Option<u64>,
    /// A checkpoint whose root did not match, reported with the next entry or at the end: an
    /// entry slipped in just before a checkpoint is recognisable only by the entry after it,
    /// which then names it ([`VerifyError::Inserted`]) instead of the whole range.
    deferred: Option<VerifyError>,
    buf: Vec<u8>,
}

impl Verifier {
    /// Checks every checkpoint's signature first (the `index` of an error is its position in
    /// `checkpoints`).
    pub fn new<I, S>(checkpoints: I, key: &CheckpointVerifier) -> Result<Verifier, VerifyError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut verified = Vec::new();
        for (index, note) in checkpoints.into_iter().enumerate() {
            let cp = key
                .verify(note.as_ref())
                .map_err(|source| VerifyError::Checkpoint { index, source })?;
            verified.push(cp.checkpoint().clone());
        }
        verified.sort_by_key(|c| c.tree_size);
        let mut v = Verifier::without_checkpoints();
        v.checkpoints = verified;
        v.check_checkpoints()?;
        Ok(v)
    }

    /// A verifier of a pruned log, starting at `base.size`: checks every checkpoint's
    /// signature, that the checkpoint at the base's size has the base's root, and that every
    /// older checkpoint is consistent, through the base's links, with a later one.
    pub fn resume<I, S>(
        base: &PrunedBase,
        checkpoints: I,
        key: &CheckpointVerifier,
    ) -> Result<Verifier, VerifyError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut v = Verifier::new(Vec::<String>::new(), key)?;
        for (index, note) in checkpoints.into_iter().enumerate() {
            let cp = key
                .verify(note.as_ref())
                .map_err(|source| VerifyError::Checkpoint { index, source })?;
            v.checkpoints.push(cp.checkpoint().clone());
        }
        v.checkpoints.sort_by_key(|c| c.tree_size);
        let fault = |reason: String| VerifyError::PrunedBase {
            size: base.size,
            reason,
        };
        let root_of = |size: u64| {
            v.checkpoints
                .iter()
                .find(|c| c.tree_size == size)
                .map(|c| c.root_hash)
        };
        let base_root = base.root().map_err(|e| fault(e.to_string()))?;
        match root_of(base.size) {
            None => return Err(fault("no checkpoint of that size is stored".into())),
            Some(root) if root != base_root => {
                return Err(fault(
                    "the checkpoint of that size does not match what was kept of them".into(),
                ));
            }
            Some(_) => {}
        }
        for cp in v.checkpoints.iter().filter(|c| c.tree_size < base.size) {
            if cp.tree_size == 0 {
                // The empty tree is a prefix of every tree; only its root can be wrong.
                if cp.root_hash != empty_root() {
                    return Err(fault(
                        "the checkpoint of size 0 is not the empty tree".into(),
                    ));
                }
                continue;
            }
            let Some(link) = base.links.iter().find(|l| l.from == cp.tree_size) else {
                return Err(fault(format!(
                    "the checkpoint of size {} has no consistency proof to a later one",
                    cp.tree_size
                )));
            };
            let Some(to_root) = root_of(link.to) else {
                return Err(fault(format!(
                    "no checkpoint of size {} is stored",
                    link.to
                )));
            };
            verify_consistency(link.from, link.to, &cp.root_hash, &to_root, &link.proof).map_err(
                |e| {
                    fault(format!(
                        "the checkpoint of size {} is not consistent with the one of size {}: {e}",
                        link.from, link.to
                    ))
                },
            )?;
        }
        v.range = CompactRange::from_frontier(base.size, &base.frontier)
            .map_err(|e| fault(e.to_string()))?;
        v.next_seq = base.size;
        v.head = base.head;
        v.previous_head = base.head;
        v.anchored = base.size;
        v.pruned_before = base.size;
        v.next_checkpoint = v
            .checkpoints
            .iter()
            .position(|c| c.tree_size > base.size)
            .unwrap_or(v.checkpoints.len());
        Ok(v)
    }

    /// A verifier of the chain and tree alone.
    pub fn without_checkpoints() -> Verifier {
        Verifier {
            next_seq: 0,
            head: GENESIS_PREV_HASH,
            previous_head: GENESIS_PREV_HASH,
            range: CompactRange::new(),
            checkpoints: Vec::new(),
            next_checkpoint: 0,
            anchored: 0,
            pruned_before: 0,
            held: None,
            deferred: None,
            buf: Vec::with_capacity(512),
        }
    }

    /// Checks the next entry; returns its Merkle leaf hash. After a checkpoint's root failed
    /// to match (see [`Verifier::deferred_fault`]) every call is an error.
    pub fn push(&mut self, entry: &AuditEntry) -> Result<Hash, VerifyError> {
        if let Some(deferred) = self.deferred.clone() {
            // Only an insertion of the entry before this one names the fault more precisely.
            return Err(match self.check_linked(entry) {
                Err(e @ VerifyError::Inserted { seq }) if seq + 1 == self.next_seq => e,
                _ => deferred,
            });
        }
        let expected = self.next_seq;
        if let Some(ahead) = self.held {
            return Err(if entry.seq == expected {
                VerifyError::Reordered {
                    seq: expected,
                    other: ahead,
                }
            } else {
                VerifyError::Missing {
                    seq: expected,
                    next: Some(ahead),
                }
            });
        }
        if entry.seq > expected {
            self.held = Some(entry.seq);
            return Ok(leaf_hash(&entry.canonical_bytes()));
        }
        if entry.seq < expected {
            return Err(VerifyError::Duplicate {
                seq: entry.seq,
                after: expected.saturating_sub(1),
            });
        }

        self.check_linked(entry)?;
        let leaf = leaf_hash(&self.buf);
        self.range.push(leaf);
        self.previous_head = self.head;
        self.head = entry.hash;
        self.next_seq += 1;
        if let Err(e) = self.check_checkpoints() {
            self.deferred = Some(e);
        }
        Ok(leaf)
    }

    /// A checkpoint mismatch not yet reported: the entry just pushed completed a checkpoint
    /// whose root differs. The next [`Verifier::push`] or [`Verifier::finish`] reports it.
    pub fn deferred_fault(&self) -> Option<&VerifyError> {
        self.deferred.as_ref()
    }

    /// Checks that `entry`, carrying the expected seq, hashes to its `hash` and links to the
    /// previous entry; leaves its canonical encoding in `self.buf`.
    fn check_linked(&mut self, entry: &AuditEntry) -> Result<(), VerifyError> {
        let expected = self.next_seq;
        if entry.seq != expected {
            return Err(VerifyError::Missing {
                seq: expected,
                next: Some(entry.seq),
            });
        }
        self.buf.clear();
        entry.event.encode_into(expected, &mut self.buf);
        if chain_hash(&entry.prev_hash, &self.buf) != entry.hash {
            return Err(self.diagnose_changed(entry));
        }
        if entry.prev_hash != self.head {
            return Err(if expected >= 2 && entry.prev_hash == self.previous_head {
                VerifyError::Inserted { seq: expected - 1 }
            } else {
                VerifyError::BrokenLink { seq: expected }
            });
        }
        Ok(())
    }

    /// Ends the stream.
    pub fn finish(self) -> Result<VerifySummary, VerifyError> {
        if let Some(deferred) = self.deferred {
            return Err(deferred);
        }
        if self.held.is_some() {
            return Err(VerifyError::Missing {
                seq: self.next_seq,
                next: self.held,
            });
        }
        if let Some(cp) = self.checkpoints.get(self.next_checkpoint) {
            return Err(VerifyError::Truncated {
                entries: self.next_seq,
                tree_size: cp.tree_size,
                time: cp.time,
            });
        }
        Ok(VerifySummary {
            entries: self.next_seq - self.pruned_before,
            pruned_before: self.pruned_before,
            head_hash: self.head,
            root: self.range.root(),
            checkpoints: self.checkpoints.len(),
            unanchored: self.next_seq - self.anchored,
            latest_checkpoint: self.checkpoints.last().cloned(),
        })
    }

    fn check_checkpoints(&mut self) -> Result<(), VerifyError> {
        let size = self.range.size();
        while let Some(cp) = self.checkpoints.get(self.next_checkpoint) {
            if cp.tree_size != size {
                break;
            }
            let root = if size == 0 {
                empty_root()
            } else {
                self.range.root()
            };
            if root != cp.root_hash {
                return Err(VerifyError::CheckpointRootMismatch {
                    first: self.anchored,
                    tree_size: cp.tree_size,
                    time: cp.time,
                });
            }
            self.anchored = size;
            self.next_checkpoint += 1;
        }
        Ok(())
    }

    /// The entry's hash does not match: an edit, or the contents of another seq.
    fn diagnose_changed(&self, entry: &AuditEntry) -> VerifyError {
        let seq = entry.seq;
        let low = seq.saturating_sub(RENUMBER_WINDOW);
        let high = seq.saturating_add(RENUMBER_WINDOW);
        let mut buf = Vec::with_capacity(self.buf.len());
        for other in (low..=high).filter(|s| *s != seq) {
            buf.clear();
            entry.event.encode_into(other, &mut buf);
            if chain_hash(&entry.prev_hash, &buf) == entry.hash {
                // Written as the previous seq and linked to the entry before the previous one:
                // the previous entry was slipped in and the rest renumbered.
                if other + 1 == seq && seq >= 2 && entry.prev_hash == self.previous_head {
                    return VerifyError::Inserted { seq: seq - 1 };
                }
                return VerifyError::Renumbered {
                    seq,
                    written_as: other,
                };
            }
        }
        VerifyError::HashMismatch { seq }
    }
}

/// Verifies a whole log: `entries` in seq order, `checkpoints` as stored (signed notes).
pub fn verify_log<E, C, S>(
    entries: E,
    checkpoints: C,
    key: &CheckpointVerifier,
) -> Result<VerifySummary, VerifyError>
where
    E: IntoIterator<Item = AuditEntry>,
    C: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut v = Verifier::new(checkpoints, key)?;
    for entry in entries {
        v.push(&entry)?;
    }
    v.finish()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::audit::checkpoint::CheckpointSigner;
    use crate::audit::entry::{AuditEvent, AuditLog};
    use crate::audit::key::AuditSigningKey;
    use crate::audit::key::tests::TEST_KEY_PEM;

    fn signer() -> CheckpointSigner {
        CheckpointSigner::new(
            AuditSigningKey::from_pkcs8_pem(TEST_KEY_PEM).unwrap(),
            "siirto.example.fi/audit",
        )
        .unwrap()
    }

    fn event(i: u64) -> AuditEvent {
        let mut e = AuditEvent::new(Timestamp::from_millis(i as i64), "gw", "step", "ok");
        e.detail.insert("i".into(), i.to_string());
        e
    }

    /// 20 entries, checkpoints at 0, 8 and 16.
    fn log() -> (Vec<AuditEntry>, Vec<String>) {
        let s = signer();
        let mut log = AuditLog::new();
        let mut entries = Vec::new();
        let mut cps = vec![
            s.sign(0, log.root(), Timestamp::from_millis(0))
                .into_string(),
        ];
        for i in 0..20 {
            entries.push(log.append(event(i)));
            if log.size().is_multiple_of(8) {
                cps.push(
                    s.sign(log.size(), log.root(), Timestamp::from_millis(i as i64))
                        .into_string(),
                );
            }
        }
        (entries, cps)
    }

    fn check(entries: Vec<AuditEntry>, cps: &[String]) -> Result<VerifySummary, VerifyError> {
        verify_log(entries, cps, &signer().verifier())
    }

    /// The log of [`log`] pruned at the checkpoint of size 16 (a base built from its tree).
    fn pruned(entries: &[AuditEntry], cps: &[u64]) -> PrunedBase {
        let mut tree = crate::audit::MerkleTree::new();
        for e in entries {
            tree.push(leaf_hash(&e.canonical_bytes()));
        }
        PrunedBase::at(&tree, 16, entries[15].hash, cps, None).unwrap()
    }

    #[test]
    fn a_pruned_log_verifies_from_its_base_and_old_checkpoints_still_link_to_it() {
        let (entries, cps) = log();
        let base = pruned(&entries, &[0, 8, 16]);
        let key = signer().verifier();
        let resume =
            |base: &PrunedBase, kept: &[AuditEntry]| -> Result<VerifySummary, VerifyError> {
                let mut v = Verifier::resume(base, &cps, &key)?;
                for e in kept {
                    v.push(e)?;
                }
                v.finish()
            };
        let summary = resume(&base, &entries[16..]).unwrap();
        assert_eq!(
            (
                summary.entries,
                summary.pruned_before,
                summary.checkpoints,
                summary.unanchored
            ),
            (4, 16, 3, 4)
        );
        assert_eq!(summary.root, check(entries.clone(), &cps).unwrap().root);

        // A kept entry that does not link to the base's head.
        let mut wrong_head = base.clone();
        wrong_head.head = [9; 32];
        assert_eq!(
            resume(&wrong_head, &entries[16..]),
            Err(VerifyError::BrokenLink { seq: 16 })
        );
        // A frontier that is not the checkpoint's root.
        let mut wrong_frontier = base.clone();
        wrong_frontier.frontier[0][0] ^= 1;
        assert!(matches!(
            resume(&wrong_frontier, &entries[16..]),
            Err(VerifyError::PrunedBase { size: 16, .. })
        ));
        // An old checkpoint without its link, or with a link that does not prove consistency.
        let mut unlinked = base.clone();
        unlinked.links.retain(|l| l.from != 8);
        let err = resume(&unlinked, &entries[16..]).unwrap_err();
        assert!(
            err.to_string().contains("size 8 has no consistency proof"),
            "{err}"
        );
        let mut bad_link = base.clone();
        bad_link.links[0].proof[0][0] ^= 1;
        assert!(matches!(
            resume(&bad_link, &entries[16..]),
            Err(VerifyError::PrunedBase { .. })
        ));
        // Pruned at a size no checkpoint has.
        let mut tree = crate::audit::MerkleTree::new();
        for e in &entries {
            tree.push(leaf_hash(&e.canonical_bytes()));
        }
        let off = PrunedBase::at(&tree, 12, entries[11].hash, &[8], None).unwrap();
        let err = resume(&off, &entries[12..]).unwrap_err();
        assert!(
            err.to_string().contains("no checkpoint of that size"),
            "{err}"
        );
        // A deleted kept entry is still named.
        let mut gap = entries[16..].to_vec();
        gap.remove(1);
        assert_eq!(
            resume(&base, &gap),
            Err(VerifyError::Missing {
                seq: 17,
                next: Some(18)
            })
        );
    }

    #[test]
    fn untouched_log_verifies() {
        let (entries, cps) = log();
        let summary = check(entries.clone(), &cps).unwrap();
        assert_eq!(summary.entries, 20);
        assert_eq!(summary.checkpoints, 3);
        assert_eq!(summary.unanchored, 4);
        assert_eq!(summary.head_hash, entries[19].hash);
        assert_eq!(summary.latest_checkpoint.unwrap().tree_size, 16);
        // Checkpoints in any stored order.
        let reversed: Vec<String> = cps.iter().rev().cloned().collect();
        assert!(check(entries, &reversed).is_ok());
        assert_eq!(check(vec![], &[]).unwrap().entries, 0);
    }

    #[test]
    fn an_entry_inserted_just_before_a_checkpoint_is_named() {
        let (entries, cps) = log();
        // A correctly hashed entry slipped in as entry 7, completing the checkpoint of size 8
        // with the wrong root; the entries from 7 on renumbered.
        let forged = AuditEntry::chained(7, entries[6].hash, event(99));
        let mut tampered: Vec<AuditEntry> = entries[..7].to_vec();
        tampered.push(forged);
        tampered.extend(entries[7..].iter().map(|e| AuditEntry {
            seq: e.seq + 1,
            ..e.clone()
        }));
        assert_eq!(
            check(tampered.clone(), &cps),
            Err(VerifyError::Inserted { seq: 7 })
        );
        // Cut right after it, the checkpoint's range is what can be named.
        tampered.truncate(8);
        assert!(matches!(
            check(tampered, &cps),
            Err(VerifyError::CheckpointRootMismatch {
                first: 0,
                tree_size: 8,
                ..
            })
        ));
    }

    #[test]
    fn reorder_with_seqs_kept_is_named() {
        let (mut entries, cps) = log();
        entries.swap(5, 6);
        assert_eq!(
            check(entries, &cps),
            Err(VerifyError::Reordered { seq: 5, other: 6 })
        );
    }

    #[test]
    fn renumbering_is_named() {
        let (mut entries, cps) = log();
        // Swap the seq values of two rows, as an UPDATE would.
        entries[5].seq = 6;
        entries[6].seq = 5;
        entries.swap(5, 6);
        assert_eq!(
            check(entries, &cps),
            Err(VerifyError::Renumbered {
                seq: 5,
                written_as: 6
            })
        );
    }

    #[test]
    fn a_checkpoint_signed_by_another_key_is_refused() {
        let (entries, mut cps) = log();
        let other = CheckpointSigner::new(
            AuditSigningKey::from_pkcs8_der(
                ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
                    .unwrap()
                    .as_ref(),
            )
            .unwrap(),
            "siirto.example.fi/audit",
        )
        .unwrap();
        cps.push(
            other
                .sign(20, [0; 32], Timestamp::from_millis(0))
                .into_string(),
        );
        let e = check(entries, &cps).unwrap_err();
        assert!(
            matches!(
                e,
                VerifyError::Checkpoint {
                    index: 3,
                    source: CheckpointError::NoKnownSignature { .. }
                }
            ),
            "{e}"
        );
        assert_eq!(e.first_bad_seq(), None);
    }
}
