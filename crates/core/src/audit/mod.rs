//! The tamper-evident audit trail: entries, their hash chain, the RFC 9162 Merkle tree over
//! them, signed checkpoints, and whole-log verification.
//!
//! Owns the cryptography only; it is pure (bytes, keys, values and a `Timestamp` in; values
//! out): storing entries and checkpoints is the store's job, choosing when to checkpoint the
//! gateway's. It never sees a student identifier in clear: events carry a [`Pseudonym`].
//!
//! - [`merkle`]: RFC 9162 tree heads, inclusion and consistency proofs and their verifiers.
//! - [`entry`]: [`AuditEvent`], [`AuditEntry`], the canonical byte encoding, pseudonyms, and
//!   [`AuditLog`], the in-memory head that seals batches of events into chained entries.
//! - [`key`]: the Ed25519 audit key (PKCS#8 PEM as `openssl genpkey` writes it) and its public
//!   forms (JWK with RFC 7638 thumbprint, signed-note verifier key).
//! - [`checkpoint`]: C2SP `tlog-checkpoint` signed notes with a `time` extension line.
//! - [`prune`]: what stands in for entries deleted by audit retention.
//! - [`witness`]: C2SP `tlog-cosignature` and the `tlog-witness` add-checkpoint decision.
//! - [`verify`]: streaming verification of a whole log against its checkpoints, naming the
//!   first bad entry.

pub mod checkpoint;
pub mod entry;
pub mod key;
pub mod merkle;
pub mod prune;
pub mod verify;
pub mod witness;

pub use checkpoint::{
    Checkpoint, CheckpointError, CheckpointSigner, CheckpointVerifier, SignedCheckpoint,
};
pub use entry::{
    AuditEntry, AuditEvent, AuditLog, EntryError, Pseudonym, Pseudonymizer, SealedBatch, entry_json,
};
pub use key::{AuditPublicKey, AuditSigningKey, KeyError};
pub use merkle::{Hash, MerkleTree, ProofError};
pub use prune::{PrunedBase, prune_point};
pub use verify::{Verifier, VerifyError, VerifySummary, verify_log};
