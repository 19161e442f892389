//! The audit service of a running gateway: an in-memory RFC 9162 Merkle tree kept in step with
//! the stored audit log, signed checkpoints issued on a cadence, proofs answered from the tree,
//! whole-log verification over the store, and the JSON form of proofs that `siirto audit
//! verify-proof` checks offline.
//!
//! # How the tree follows the store
//! The store's writer chains entries (one writer per instance; on PostgreSQL instances take an
//! advisory lock, so they extend one chain). [`Trail::sync`] reads the log's tail from the
//! store — entries of every instance sharing the database — and checks each entry as
//! `siirto audit verify` would (its seq, its hash over its contents, its link to the previous
//! entry, and every checkpoint stored when the trail started) before adding its leaf to the
//! tree. The first entry that fails stops the tree there: the trail is then *broken*, signs
//! nothing more, and says why ([`TrailStatus::broken`]) — a checkpoint is never signed over a
//! log that does not verify.
//!
//! # Checkpoint cadence ([`checkpoint_due`])
//! With `audit.checkpoint_every` = N, a checkpoint is signed for the largest multiple of N the
//! tree has reached beyond the latest stored checkpoint: sizes are multiples of N, so instances
//! sharing a database choose the same size and the second one's insert is skipped (the store
//! keeps one checkpoint per tree size). Otherwise, when `audit.checkpoint_interval` has passed
//! since the latest stored checkpoint (or since the trail started, when there is none) and the
//! log has grown, a checkpoint for the current size is signed. A checkpoint another instance
//! stored is compared with this instance's tree before anything is signed on top of it.
//!
//! # Proof documents (what `GET /v1/audit/proof/...` answers and `verify-proof` reads)
//! Hashes are lower-case hex; a proof is the RFC 9162 §2.1.3/§2.1.4 list of node hashes.
//! ```text
//! {"type": "inclusion", "leaf_index": I, "tree_size": N, "leaf_hash": "<hex>",
//!  "root_hash": "<hex>", "proof": ["<hex>", ...],
//!  "entry": { the audit entry at I, as GET /v1/audit shows it }}
//! {"type": "consistency", "from": M, "to": N, "from_root": "<hex>", "to_root": "<hex>",
//!  "proof": ["<hex>", ...]}
//! ```
//! `leaf_hash` is SHA-256(0x00 ‖ canonical encoding of `entry`) (see [`siirto_core::audit::entry`]);
//! a verifier recomputes it from `entry`, so the entry's fields (transfer, action, document
//! hash) are what the proof proves. `root_hash` / `to_root` must equal the signed checkpoint's
//! root for that size; [`check_proof`] takes the root from the checkpoint, never from the
//! document.
//!
//! Must not: write audit entries or decide what is audited (the store and the handlers do),
//! or trust anything read from the store before checking it.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{Mutex, Semaphore};

use crate::server::Shutdown;
use crate::store::{CheckpointRow, Store, StoreError};
use siirto_core::audit::checkpoint::Checkpoint;
use siirto_core::audit::merkle::{verify_consistency, verify_inclusion};
use siirto_core::audit::{
    AuditEntry, AuditEvent, CheckpointSigner, CheckpointVerifier, Hash, MerkleTree, ProofError,
    PrunedBase, Pseudonym, Verifier, VerifyError, VerifySummary,
};
use siirto_core::clock::{Timestamp, hex, unhex};

/// Entries read from the store per round trip.
const PAGE: u32 = 10_000;
/// How often the trail looks at the store's tail (a quarter of `audit.checkpoint_interval`,
/// within these bounds). A look costs two small indexed queries; proofs for sizes the tree has
/// not reached yet make it look at once.
const MAX_TICK: Duration = Duration::from_secs(1);
const MIN_TICK: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum TrailError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("the audit log does not verify, so the trail stopped at entry {verified}: {fault}")]
    Broken { verified: u64, fault: VerifyError },
    #[error("{0}")]
    Proof(#[from] ProofError),
}

/// What the trail knows, for the operator page and `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailStatus {
    /// Entries checked and in the tree.
    pub size: u64,
    pub root: Hash,
    /// `hash` of the last entry in the tree.
    pub head: Hash,
    /// Why the trail stopped, if it did.
    pub broken: Option<VerifyError>,
    /// The last checkpoint this instance stored.
    pub last_signed: Option<Checkpoint>,
}

struct Tail {
    tree: MerkleTree,
    head: Hash,
    broken: Option<VerifyError>,
    last_signed: Option<Checkpoint>,
}

/// The audit service of one gateway instance.
pub struct Trail {
    signer: CheckpointSigner,
    /// Earlier audit keys (`[audit] previous_public_keys`): their checkpoints still verify.
    previous_keys: Vec<siirto_core::audit::AuditPublicKey>,
    every: u64,
    interval: Duration,
    started: Timestamp,
    tail: RwLock<Tail>,
    /// The incremental verifier, created with the checkpoints stored at the first sync. The
    /// lock also makes syncs one at a time.
    verifier: Mutex<Option<Verifier>>,
    /// Whole-log verifications run one at a time (they read the whole log).
    verify_gate: Semaphore,
}

impl std::fmt::Debug for Trail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trail")
            .field("origin", &self.signer.origin())
            .field("size", &self.size())
            .finish_non_exhaustive()
    }
}

impl Trail {
    /// A trail that has read nothing yet; `every` = 0 turns the size cadence off.
    pub fn new(
        signer: CheckpointSigner,
        every: u64,
        interval: Duration,
        started: Timestamp,
    ) -> Trail {
        Trail {
            signer,
            previous_keys: Vec::new(),
            every,
            interval,
            started,
            tail: RwLock::new(Tail {
                tree: MerkleTree::new(),
                head: siirto_core::audit::entry::GENESIS_PREV_HASH,
                broken: None,
                last_signed: None,
            }),
            verifier: Mutex::new(None),
            verify_gate: Semaphore::new(1),
        }
    }

    /// Also accepts checkpoints signed by these earlier audit keys.
    pub fn with_previous_keys(mut self, keys: Vec<siirto_core::audit::AuditPublicKey>) -> Trail {
        self.previous_keys = keys;
        self
    }

    pub fn origin(&self) -> &str {
        self.signer.origin()
    }

    /// The verifier of this trail's checkpoints (the public audit key, the earlier ones and
    /// the origin).
    pub fn checkpoint_verifier(&self) -> CheckpointVerifier {
        self.signer
            .verifier()
            .with_previous_keys(self.previous_keys.iter().cloned())
    }

    fn read_tail(&self) -> std::sync::RwLockReadGuard<'_, Tail> {
        // A panic while holding the lock cannot leave the tail half-updated: every writer
        // pushes whole leaves; so a poisoned lock is still usable.
        self.tail.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_tail(&self) -> std::sync::RwLockWriteGuard<'_, Tail> {
        self.tail.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Entries checked and in the tree.
    pub fn size(&self) -> u64 {
        self.read_tail().tree.size()
    }

    pub fn status(&self) -> TrailStatus {
        let tail = self.read_tail();
        TrailStatus {
            size: tail.tree.size(),
            root: tail.tree.root(),
            head: tail.head,
            broken: tail.broken.clone(),
            last_signed: tail.last_signed.clone(),
        }
    }

    /// Reads the entries the tree does not have yet from the store, checks them and adds their
    /// leaves. Returns the tree size.
    pub async fn sync(&self, store: &Store) -> Result<u64, TrailError> {
        let mut guard = self.verifier.lock().await;
        if let Some(err) = self.broken_error() {
            return Err(err);
        }
        if guard.is_none() {
            let (verifier, base) = stored_verifier(store, &self.checkpoint_verifier()).await?;
            match verifier {
                Ok(v) => *guard = Some(v),
                Err(fault) => return Err(self.break_with(fault)),
            }
            if let Some(base) = base {
                // The pruned entries' frontier stands in for them (checked by the verifier).
                let tree = base.tree()?;
                let mut tail = self.write_tail();
                if tail.tree.size() == 0 {
                    tail.tree = tree;
                    tail.head = base.head;
                }
            }
        }
        let Some(verifier) = guard.as_mut() else {
            // Set just above.
            return Ok(self.size());
        };
        loop {
            let from = self.size();
            let page = store.audit_range(from, PAGE).await?;
            let (leaves, last_hash, fault) = check_page(verifier, from, &page);
            {
                let mut tail = self.write_tail();
                for leaf in &leaves {
                    tail.tree.push(*leaf);
                }
                if let Some(h) = last_hash {
                    tail.head = h;
                }
            }
            if let Some(fault) = fault {
                return Err(self.break_with(fault));
            }
            if page.len() < PAGE as usize {
                return Ok(self.size());
            }
        }
    }

    /// After audit retention pruned the entries before `base.size`: the tree continues from
    /// the base, so the memory of the pruned leaves is given back and proofs reaching into
    /// them answer [`ProofError::Pruned`], as after a restart.
    pub fn adopt_base(&self, base: &PrunedBase) -> Result<(), TrailError> {
        let mut tail = self.write_tail();
        if tail.tree.base() >= base.size || tail.tree.size() < base.size {
            return Ok(());
        }
        let mut tree = base.tree()?;
        for index in base.size..tail.tree.size() {
            let Some(leaf) = tail.tree.leaf(index) else {
                return Err(TrailError::Proof(ProofError::Pruned {
                    base: tail.tree.base(),
                }));
            };
            tree.push(leaf);
        }
        if tree.root() != tail.tree.root() {
            // Cannot happen for a base built from this log; keep the whole tree if it does.
            tracing::error!(
                size = base.size,
                "the pruned base does not continue the trail's tree"
            );
            return Ok(());
        }
        tail.tree = tree;
        Ok(())
    }

    fn broken_error(&self) -> Option<TrailError> {
        let tail = self.read_tail();
        tail.broken.clone().map(|fault| TrailError::Broken {
            verified: tail.tree.size(),
            fault,
        })
    }

    fn break_with(&self, fault: VerifyError) -> TrailError {
        let mut tail = self.write_tail();
        if tail.broken.is_none() {
            tracing::error!(
                error = %fault,
                verified = tail.tree.size(),
                "the audit log does not verify: no further checkpoints will be signed"
            );
            tail.broken = Some(fault.clone());
        }
        TrailError::Broken {
            verified: tail.tree.size(),
            fault,
        }
    }

    /// Compares a stored checkpoint (perhaps another instance's) with the tree.
    fn check_stored(&self, row: &CheckpointRow) -> Result<(), TrailError> {
        let verifier = self.checkpoint_verifier();
        let signed = match verifier.verify(&row.note) {
            Ok(s) => s,
            Err(source) => {
                return Err(self.break_with(VerifyError::Checkpoint { index: 0, source }));
            }
        };
        let cp = signed.checkpoint();
        let matches = {
            let tail = self.read_tail();
            if cp.tree_size > tail.tree.size() {
                return Ok(());
            }
            tail.tree.root_at(cp.tree_size)? == cp.root_hash
        };
        if matches {
            Ok(())
        } else {
            // The range since this instance's last checkpoint below it, when there is one.
            let first = self
                .read_tail()
                .last_signed
                .as_ref()
                .map(|c| c.tree_size)
                .filter(|s| *s < cp.tree_size)
                .unwrap_or(0);
            Err(self.break_with(VerifyError::CheckpointRootMismatch {
                first,
                tree_size: cp.tree_size,
                time: cp.time,
            }))
        }
    }

    /// Signs and stores a checkpoint when [`checkpoint_due`] says one is due, or — with
    /// `force` — whenever the log has grown since the latest stored checkpoint. `None` when
    /// nothing was due or another instance had already stored a checkpoint of that size.
    pub async fn checkpoint_if_due(
        &self,
        store: &Store,
        now: Timestamp,
        force: bool,
    ) -> Result<Option<Checkpoint>, TrailError> {
        if let Some(err) = self.broken_error() {
            return Err(err);
        }
        let latest = store.latest_checkpoint().await?;
        if let Some(row) = &latest {
            self.check_stored(row)?;
        }
        let latest = latest.map(|r| (r.tree_size, r.issued_at));
        let size = self.size();
        let due = if force {
            Some(size).filter(|s| latest.is_none_or(|(l, _)| *s > l))
        } else {
            checkpoint_due(size, latest, now, self.started, self.every, self.interval)
        };
        let Some(tree_size) = due else {
            return Ok(None);
        };
        let root = self.read_tail().tree.root_at(tree_size)?;
        let signed = self.signer.sign(tree_size, root, now);
        let inserted = store
            .insert_checkpoint(tree_size, root, now, signed.as_str().to_owned())
            .await?;
        if !inserted {
            tracing::debug!(
                tree_size,
                "checkpoint already stored by another instance; skipped"
            );
            return Ok(None);
        }
        tracing::info!(tree_size, root = %hex(&root), "audit checkpoint signed");
        let cp = signed.checkpoint().clone();
        self.write_tail().last_signed = Some(cp.clone());
        Ok(Some(cp))
    }

    /// An inclusion proof of leaf `index` in the tree of `size` leaves (syncing first when the
    /// tree is shorter).
    pub async fn inclusion(
        &self,
        store: &Store,
        index: u64,
        size: u64,
    ) -> Result<(Hash, Vec<Hash>, Hash), TrailError> {
        self.reach(store, size).await?;
        let tail = self.read_tail();
        let proof = tail.tree.inclusion_proof(index, size)?;
        let leaf = tail.tree.leaf(index).ok_or(ProofError::IndexOutOfRange {
            index,
            size: tail.tree.size(),
        })?;
        Ok((leaf, proof, tail.tree.root_at(size)?))
    }

    /// A consistency proof between the trees of `from` and `to` leaves, with both roots.
    pub async fn consistency(
        &self,
        store: &Store,
        from: u64,
        to: u64,
    ) -> Result<(Hash, Hash, Vec<Hash>), TrailError> {
        self.reach(store, to).await?;
        let tail = self.read_tail();
        let proof = tail.tree.consistency_proof(from, to)?;
        Ok((tail.tree.root_at(from)?, tail.tree.root_at(to)?, proof))
    }

    async fn reach(&self, store: &Store, size: u64) -> Result<(), TrailError> {
        if size > self.size() {
            // Entries another instance wrote, or this one's not yet followed.
            match self.sync(store).await {
                Ok(_) | Err(TrailError::Broken { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Verifies the whole stored log against every stored checkpoint (one run at a time).
    pub async fn verify_store(&self, store: &Store) -> Result<VerifyOutcome, StoreError> {
        let _permit = self.verify_gate.acquire().await;
        verify_store(store, &self.checkpoint_verifier()).await
    }
}

/// Checks one page of entries starting at `from`: the leaves of the good ones, the hash of the
/// last good one, and the first fault.
fn check_page(
    verifier: &mut Verifier,
    from: u64,
    page: &[AuditEntry],
) -> (Vec<Hash>, Option<Hash>, Option<VerifyError>) {
    let mut leaves = Vec::with_capacity(page.len());
    let mut last = None;
    for entry in page {
        let expected = from + leaves.len() as u64;
        if entry.seq != expected {
            let fault = if entry.seq < expected {
                VerifyError::Duplicate {
                    seq: entry.seq,
                    after: expected.saturating_sub(1),
                }
            } else {
                VerifyError::Missing {
                    seq: expected,
                    next: Some(entry.seq),
                }
            };
            return (leaves, last, Some(fault));
        }
        match verifier.push(entry) {
            // The entry completed a checkpoint whose root differs: it stays out of the tree.
            Ok(_) if verifier.deferred_fault().is_some() => {
                return (leaves, last, verifier.deferred_fault().cloned());
            }
            Ok(leaf) => {
                leaves.push(leaf);
                last = Some(entry.hash);
            }
            Err(fault) => return (leaves, last, Some(fault)),
        }
    }
    (leaves, last, None)
}

/// Which tree size to checkpoint now, if any (see the module doc). `latest` is the stored
/// checkpoint with the largest tree size and its time.
pub fn checkpoint_due(
    size: u64,
    latest: Option<(u64, Timestamp)>,
    now: Timestamp,
    started: Timestamp,
    every: u64,
    interval: Duration,
) -> Option<u64> {
    let last_size = latest.map_or(0, |(s, _)| s);
    if size <= last_size {
        return None;
    }
    if let Some(multiple) = size.checked_div(every).map(|k| k * every)
        && multiple > last_size
    {
        return Some(multiple);
    }
    let since = latest.map_or(started, |(_, t)| t);
    (now.since(since) >= interval).then_some(size)
}

/// The result of verifying a whole stored log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyOutcome {
    /// Entries that passed before the first fault (all of them when the log verifies).
    pub checked: u64,
    /// Checkpoints stored.
    pub checkpoints: usize,
    pub result: Result<VerifySummary, VerifyError>,
}

/// The verifier of the stored log: from its start, or — when entries were pruned — from what
/// stands in for them ([`Verifier::resume`]), which is returned too.
async fn stored_verifier(
    store: &Store,
    key: &CheckpointVerifier,
) -> Result<(Result<Verifier, VerifyError>, Option<PrunedBase>), StoreError> {
    let notes: Vec<String> = store
        .checkpoints()
        .await?
        .into_iter()
        .map(|c| c.note)
        .collect();
    let base = store.audit_base().await?;
    let verifier = match &base {
        None => Verifier::new(&notes, key),
        Some(b) => Verifier::resume(b, &notes, key),
    };
    Ok((verifier, base))
}

/// Streams the whole stored log through the [`Verifier`] with every stored checkpoint.
pub async fn verify_store(
    store: &Store,
    key: &CheckpointVerifier,
) -> Result<VerifyOutcome, StoreError> {
    verify_store_with(store, key, |_, _| {}).await
}

/// [`verify_store`], handing each verified entry and its leaf hash to `on_leaf`.
async fn verify_store_with(
    store: &Store,
    key: &CheckpointVerifier,
    mut on_leaf: impl FnMut(&AuditEntry, Hash),
) -> Result<VerifyOutcome, StoreError> {
    let checkpoints = store.checkpoints().await?.len();
    let fail = |checked, e| VerifyOutcome {
        checked,
        checkpoints,
        result: Err(e),
    };
    let (verifier, base) = stored_verifier(store, key).await?;
    let mut verifier = match verifier {
        Ok(v) => v,
        Err(e) => return Ok(fail(0, e)),
    };
    let mut checked = 0u64;
    let mut from = base.map_or(0, |b| b.size);
    loop {
        let page = store.audit_range(from, PAGE).await?;
        let Some(last) = page.last().map(|e| e.seq) else {
            break;
        };
        for entry in &page {
            match verifier.push(entry) {
                Ok(leaf) => on_leaf(entry, leaf),
                Err(e) => return Ok(fail(checked, e)),
            }
            checked += 1;
        }
        from = last + 1;
    }
    Ok(match verifier.finish() {
        Ok(summary) => VerifyOutcome {
            checked: summary.entries,
            checkpoints,
            result: Ok(summary),
        },
        Err(e) => fail(checked, e),
    })
}

/// What `[retention] audit` did, or would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPruning {
    /// Entries before this are (to be) pruned: the size of a stored checkpoint.
    pub before: u64,
    /// How many entries that is (those pruned earlier not counted).
    pub entries: u64,
    /// The base written (`None` on a dry run).
    pub base: Option<PrunedBase>,
}

/// `[retention] audit`: prunes the audit entries before the largest checkpointed size whose
/// entries were all written before `cutoff` ([`siirto_core::audit::prune_point`]), keeping a
/// [`PrunedBase`] in their place, with `event` (actor and action set by the caller) in the
/// same transaction. The whole stored log is verified first: a log that does not verify is
/// never pruned (that would erase the evidence), which is [`TrailError::Broken`]. With
/// `dry_run` nothing is written. `Ok(None)`: nothing is old enough.
pub async fn prune_audit(
    store: &Store,
    key: &CheckpointVerifier,
    cutoff: Timestamp,
    event: AuditEvent,
    dry_run: bool,
) -> Result<Option<AuditPruning>, TrailError> {
    let sizes: Vec<u64> = store
        .checkpoints()
        .await?
        .iter()
        .map(|c| c.tree_size)
        .collect();
    let previous = store.audit_base().await?;
    let first_young = store.first_audit_at_or_after(cutoff).await?;
    let base_size = previous.as_ref().map_or(0, |b| b.size);
    let Some(before) = siirto_core::audit::prune_point(&sizes, first_young, u64::MAX, base_size)
    else {
        return Ok(None);
    };
    let mut tree = match &previous {
        Some(b) => b.tree()?,
        None => MerkleTree::new(),
    };
    let mut head = None;
    let outcome = verify_store_with(store, key, |entry, leaf| {
        if entry.seq < before {
            tree.push(leaf);
        }
        if entry.seq + 1 == before {
            head = Some(entry.hash);
        }
    })
    .await?;
    if let Err(fault) = outcome.result {
        return Err(TrailError::Broken {
            verified: outcome.checked,
            fault,
        });
    }
    let entries = before - base_size;
    if dry_run {
        return Ok(Some(AuditPruning {
            before,
            entries,
            base: None,
        }));
    }
    let Some(head) = head else {
        // The verified log holds a checkpoint of size `before`, so it has entry `before - 1`.
        return Err(TrailError::Proof(ProofError::SizeTooLarge {
            size: before,
            available: tree.size(),
        }));
    };
    let base = PrunedBase::at(&tree, before, head, &sizes, previous.as_ref()).map_err(|e| {
        TrailError::Store(StoreError::Corrupt {
            what: "audit base",
            detail: e.to_string(),
        })
    })?;
    store.prune_audit(base.clone(), event.at, event).await?;
    Ok(Some(AuditPruning {
        before,
        entries,
        base: Some(base),
    }))
}

/// The trail's background task: follows the store's tail and signs checkpoints until
/// shutdown. (`gateway::run` calls [`Trail::finish`] once the workers have stopped, for a
/// last checkpoint over everything written.)
pub async fn run(
    trail: Arc<Trail>,
    store: Store,
    clock: Arc<dyn siirto_core::clock::Clock>,
    mut shutdown: Shutdown,
) {
    let tick = (trail.interval / 4).clamp(MIN_TICK, MAX_TICK);
    let mut reported = false;
    loop {
        let step = async {
            trail.sync(&store).await?;
            trail.checkpoint_if_due(&store, clock.now(), false).await
        };
        match step.await {
            Ok(_) => reported = false,
            // Logged once, when the trail broke.
            Err(TrailError::Broken { .. }) => {}
            Err(e) => {
                if !reported {
                    tracing::warn!(error = %e, "audit trail could not follow the store");
                    reported = true;
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            () = shutdown.wait() => return,
        }
    }
}

impl Trail {
    /// At shutdown, after the workers stopped: follows the tail once more and signs a
    /// checkpoint over everything written since the latest one, so no entry of this run is
    /// left protected by the hash chain alone.
    pub async fn finish(&self, store: &Store, now: Timestamp) {
        let result = async {
            self.sync(store).await?;
            self.checkpoint_if_due(store, now, true).await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "no final audit checkpoint");
        }
    }
}

/// A proof as served and as checked offline (see the module doc for the JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProofDocument {
    Inclusion {
        leaf_index: u64,
        tree_size: u64,
        leaf_hash: Hash,
        root_hash: Hash,
        proof: Vec<Hash>,
        entry: Option<Box<AuditEntry>>,
    },
    Consistency {
        from: u64,
        to: u64,
        from_root: Hash,
        to_root: Hash,
        proof: Vec<Hash>,
    },
}

/// Why a proof document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a proof document: {0}")]
pub struct ProofFormatError(pub String);

/// Why a proof does not prove what it says against the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofCheckError {
    #[error("the proof is for tree size {proof}, the checkpoint is of size {checkpoint}")]
    SizeMismatch { proof: u64, checkpoint: u64 },
    #[error("the entry in the proof does not hash to its leaf_hash (the entry was changed)")]
    EntryMismatch,
    #[error("the entry in the proof has seq {seq}, the proof is for leaf {leaf_index}")]
    EntrySeqMismatch { seq: u64, leaf_index: u64 },
    #[error(
        "the older checkpoint is of size {checkpoint} with another root than the proof's `from` ({from})"
    )]
    OldCheckpointMismatch { checkpoint: u64, from: u64 },
    #[error("{0}")]
    Proof(#[from] ProofError),
}

/// What a proof established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProofCheck {
    /// Leaf `leaf_index` (with `entry`, when the document carried it) is in the checkpointed tree.
    Included {
        leaf_index: u64,
        tree_size: u64,
        entry: Option<Box<AuditEntry>>,
    },
    /// The tree of `from` leaves with root `from_root` is a prefix of the checkpointed tree;
    /// `anchored` when an older signed checkpoint vouched for `from_root`.
    Consistent {
        from: u64,
        from_root: Hash,
        to: u64,
        anchored: bool,
    },
}

impl ProofDocument {
    pub fn to_json(&self) -> Value {
        let hexes = |p: &[Hash]| p.iter().map(|h| hex(h)).collect::<Vec<_>>();
        match self {
            ProofDocument::Inclusion {
                leaf_index,
                tree_size,
                leaf_hash,
                root_hash,
                proof,
                entry,
            } => json!({
                "type": "inclusion",
                "leaf_index": leaf_index,
                "tree_size": tree_size,
                "leaf_hash": hex(leaf_hash),
                "root_hash": hex(root_hash),
                "proof": hexes(proof),
                "entry": entry.as_deref().map(siirto_core::audit::entry_json),
            }),
            ProofDocument::Consistency {
                from,
                to,
                from_root,
                to_root,
                proof,
            } => json!({
                "type": "consistency",
                "from": from,
                "to": to,
                "from_root": hex(from_root),
                "to_root": hex(to_root),
                "proof": hexes(proof),
            }),
        }
    }

    pub fn from_json(v: &Value) -> Result<ProofDocument, ProofFormatError> {
        let bad = |why: &str| ProofFormatError(why.to_owned());
        let int = |name: &str| {
            v.get(name)
                .and_then(Value::as_u64)
                .ok_or_else(|| bad(&format!("`{name}` must be a non-negative integer")))
        };
        let hash = |name: &str| {
            v.get(name)
                .and_then(Value::as_str)
                .and_then(hash_from_hex)
                .ok_or_else(|| bad(&format!("`{name}` must be 64 hex digits")))
        };
        let proof = v
            .get("proof")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("`proof` must be an array of hashes"))?
            .iter()
            .map(|h| {
                h.as_str()
                    .and_then(hash_from_hex)
                    .ok_or_else(|| bad("every `proof` member must be 64 hex digits"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        match v.get("type").and_then(Value::as_str) {
            Some("inclusion") => Ok(ProofDocument::Inclusion {
                leaf_index: int("leaf_index")?,
                tree_size: int("tree_size")?,
                leaf_hash: hash("leaf_hash")?,
                root_hash: hash("root_hash")?,
                proof,
                entry: match v.get("entry") {
                    None | Some(Value::Null) => None,
                    Some(e) => Some(Box::new(entry_from_json(e)?)),
                },
            }),
            Some("consistency") => Ok(ProofDocument::Consistency {
                from: int("from")?,
                to: int("to")?,
                from_root: hash("from_root")?,
                to_root: hash("to_root")?,
                proof,
            }),
            _ => Err(bad("`type` must be \"inclusion\" or \"consistency\"")),
        }
    }
}

fn hash_from_hex(s: &str) -> Option<Hash> {
    unhex(s).and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
}

/// Reads an audit entry in the JSON form of `GET /v1/audit` (`siirto_core::audit::entry_json`).
pub fn entry_from_json(v: &Value) -> Result<AuditEntry, ProofFormatError> {
    let bad = |why: String| ProofFormatError(format!("entry: {why}"));
    let text = |name: &str| {
        v.get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| bad(format!("`{name}` must be a string")))
    };
    let optional = |name: &str| match v.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(format!("`{name}` must be a string or null"))),
    };
    let hash = |name: &str| {
        text(name).and_then(|s| {
            hash_from_hex(&s).ok_or_else(|| bad(format!("`{name}` is not 64 hex digits")))
        })
    };
    let seq = v
        .get("seq")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("`seq` must be a non-negative integer".into()))?;
    let at = Timestamp::parse_rfc3339(&text("at")?)
        .ok_or_else(|| bad("`at` is not an RFC 3339 time".into()))?;
    let subject = optional("subject")?
        .map(|s| Pseudonym::parse(&s).map_err(|e| bad(e.to_string())))
        .transpose()?;
    let document_sha256 = optional("document_sha256")?
        .map(|s| {
            hash_from_hex(&s).ok_or_else(|| bad("`document_sha256` is not 64 hex digits".into()))
        })
        .transpose()?;
    let mut detail = BTreeMap::new();
    match v.get("detail") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (k, val) in map {
                let s = val
                    .as_str()
                    .ok_or_else(|| bad(format!("detail `{k}` must be a string")))?;
                detail.insert(k.clone(), s.to_owned());
            }
        }
        Some(_) => return Err(bad("`detail` must be an object".into())),
    }
    Ok(AuditEntry {
        seq,
        event: AuditEvent {
            at,
            actor: text("actor")?,
            action: text("action")?,
            outcome: text("outcome")?,
            transfer_id: optional("transfer_id")?,
            subject,
            document_sha256,
            detail,
        },
        prev_hash: hash("prev_hash")?,
        hash: hash("hash")?,
    })
}

/// Checks a proof document against a verified checkpoint (and, for a consistency proof, an
/// optional older verified checkpoint that vouches for its `from` root). The roots come from
/// the checkpoints; the document's own root fields are not trusted.
pub fn check_proof(
    doc: &ProofDocument,
    checkpoint: &Checkpoint,
    older: Option<&Checkpoint>,
) -> Result<ProofCheck, ProofCheckError> {
    match doc {
        ProofDocument::Inclusion {
            leaf_index,
            tree_size,
            leaf_hash,
            proof,
            entry,
            ..
        } => {
            if *tree_size != checkpoint.tree_size {
                return Err(ProofCheckError::SizeMismatch {
                    proof: *tree_size,
                    checkpoint: checkpoint.tree_size,
                });
            }
            if let Some(e) = entry {
                if e.seq != *leaf_index {
                    return Err(ProofCheckError::EntrySeqMismatch {
                        seq: e.seq,
                        leaf_index: *leaf_index,
                    });
                }
                if e.leaf_hash() != *leaf_hash {
                    return Err(ProofCheckError::EntryMismatch);
                }
            }
            verify_inclusion(
                leaf_hash,
                *leaf_index,
                *tree_size,
                proof,
                &checkpoint.root_hash,
            )?;
            Ok(ProofCheck::Included {
                leaf_index: *leaf_index,
                tree_size: *tree_size,
                entry: entry.clone(),
            })
        }
        ProofDocument::Consistency {
            from,
            to,
            from_root,
            proof,
            ..
        } => {
            if *to != checkpoint.tree_size {
                return Err(ProofCheckError::SizeMismatch {
                    proof: *to,
                    checkpoint: checkpoint.tree_size,
                });
            }
            if let Some(old) = older
                && (old.tree_size != *from || old.root_hash != *from_root)
            {
                return Err(ProofCheckError::OldCheckpointMismatch {
                    checkpoint: old.tree_size,
                    from: *from,
                });
            }
            verify_consistency(*from, *to, from_root, &checkpoint.root_hash, proof)?;
            Ok(ProofCheck::Consistent {
                from: *from,
                from_root: *from_root,
                to: *to,
                anchored: older.is_some(),
            })
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use siirto_core::audit::{AuditLog, AuditSigningKey};

    const T0: Timestamp = Timestamp::from_millis(1_795_448_460_000);

    fn signer() -> CheckpointSigner {
        let pkcs8 =
            ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
                .unwrap();
        CheckpointSigner::new(
            AuditSigningKey::from_pkcs8_der(pkcs8.as_ref()).unwrap(),
            "gw.example/audit",
        )
        .unwrap()
    }

    fn log(n: u64) -> (AuditLog, Vec<AuditEntry>) {
        let mut log = AuditLog::new();
        let entries = (0..n)
            .map(|i| {
                let mut e = AuditEvent::new(
                    T0.saturating_add(Duration::from_millis(i)),
                    "turku",
                    "transfer.delivered",
                    "ok",
                );
                e.transfer_id = Some(format!("t-{i}"));
                e.document_sha256 = Some([i as u8; 32]);
                e.detail.insert("attempt".into(), "1".into());
                log.append(e)
            })
            .collect();
        (log, entries)
    }

    #[test]
    fn cadence_by_size_picks_shared_multiples() {
        let s = Duration::from_secs(60);
        // Nothing new: nothing due.
        assert_eq!(checkpoint_due(0, None, T0, T0, 10, s), None);
        assert_eq!(checkpoint_due(20, Some((20, T0)), T0, T0, 10, s), None);
        // Reached multiples: the largest one, whatever the exact size.
        assert_eq!(checkpoint_due(10, None, T0, T0, 10, s), Some(10));
        assert_eq!(checkpoint_due(37, None, T0, T0, 10, s), Some(30));
        assert_eq!(checkpoint_due(37, Some((20, T0)), T0, T0, 10, s), Some(30));
        // The multiple is already signed, and the interval has not passed.
        assert_eq!(checkpoint_due(37, Some((30, T0)), T0, T0, 10, s), None);
        // every = 0: the interval alone.
        assert_eq!(checkpoint_due(37, Some((30, T0)), T0, T0, 0, s), None);
    }

    #[test]
    fn cadence_by_time_signs_the_current_size() {
        let s = Duration::from_secs(60);
        let later = T0.saturating_add(s);
        assert_eq!(
            checkpoint_due(37, Some((30, T0)), later, T0, 10, s),
            Some(37)
        );
        // Without any checkpoint, the interval counts from the start of the trail.
        assert_eq!(checkpoint_due(3, None, later, T0, 10, s), Some(3));
        assert_eq!(
            checkpoint_due(
                3,
                None,
                T0.saturating_add(Duration::from_secs(59)),
                T0,
                10,
                s
            ),
            None
        );
    }

    #[test]
    fn pages_stop_at_the_first_bad_entry() {
        let (_, entries) = log(6);
        let mut v = Verifier::without_checkpoints();
        let (leaves, last, fault) = check_page(&mut v, 0, &entries[..3]);
        assert_eq!(leaves.len(), 3);
        assert_eq!(last, Some(entries[2].hash));
        assert_eq!(fault, None);
        // A gap (entry 3 deleted).
        let (leaves, _, fault) = check_page(&mut v, 3, &entries[4..]);
        assert!(leaves.is_empty());
        assert_eq!(
            fault,
            Some(VerifyError::Missing {
                seq: 3,
                next: Some(4)
            })
        );
        // A changed entry.
        let mut v = Verifier::without_checkpoints();
        let mut changed = entries.clone();
        changed[2].event.outcome = "x".into();
        let (leaves, last, fault) = check_page(&mut v, 0, &changed);
        assert_eq!(leaves.len(), 2);
        assert_eq!(last, Some(entries[1].hash));
        assert_eq!(fault, Some(VerifyError::HashMismatch { seq: 2 }));
    }

    #[test]
    fn an_entry_completing_a_mismatched_checkpoint_stays_out_of_the_tree() {
        let s = signer();
        let (_, entries) = log(5);
        let wrong = s.sign(3, [9; 32], T0).into_string();
        let mut v = Verifier::new([wrong], &s.verifier()).unwrap();
        let (leaves, last, fault) = check_page(&mut v, 0, &entries);
        assert_eq!(leaves.len(), 2, "entries 0 and 1 only");
        assert_eq!(last, Some(entries[1].hash));
        assert!(
            matches!(
                fault,
                Some(VerifyError::CheckpointRootMismatch { tree_size: 3, .. })
            ),
            "{fault:?}"
        );
    }

    #[test]
    fn proof_documents_round_trip_and_check() {
        let s = signer();
        let (log, entries) = log(13);
        let cp = s.sign(13, log.root(), T0);
        let verified = s.verifier().verify(cp.as_str()).unwrap();
        let doc = ProofDocument::Inclusion {
            leaf_index: 5,
            tree_size: 13,
            leaf_hash: entries[5].leaf_hash(),
            root_hash: log.root(),
            proof: log.tree().inclusion_proof(5, 13).unwrap(),
            entry: Some(Box::new(entries[5].clone())),
        };
        let back = ProofDocument::from_json(&doc.to_json()).unwrap();
        assert_eq!(back, doc);
        assert!(matches!(
            check_proof(&back, verified.checkpoint(), None),
            Ok(ProofCheck::Included { leaf_index: 5, .. })
        ));
        // A changed entry no longer matches its leaf.
        let mut json = doc.to_json();
        json["entry"]["outcome"] = json!("failed");
        let changed = ProofDocument::from_json(&json).unwrap();
        assert_eq!(
            check_proof(&changed, verified.checkpoint(), None),
            Err(ProofCheckError::EntryMismatch)
        );
        // The entry of another leaf.
        let mut json = doc.to_json();
        json["leaf_index"] = json!(6);
        assert_eq!(
            check_proof(
                &ProofDocument::from_json(&json).unwrap(),
                verified.checkpoint(),
                None
            ),
            Err(ProofCheckError::EntrySeqMismatch {
                seq: 5,
                leaf_index: 6
            })
        );
        // Without the entry, a wrong leaf fails the proof itself.
        let mut json = doc.to_json();
        json["entry"] = Value::Null;
        json["leaf_hash"] = json!(hex(&entries[6].leaf_hash()));
        assert_eq!(
            check_proof(
                &ProofDocument::from_json(&json).unwrap(),
                verified.checkpoint(),
                None
            ),
            Err(ProofCheckError::Proof(ProofError::RootMismatch))
        );
        // A proof for another size than the checkpoint's.
        let other = s.sign(12, log.tree().root_at(12).unwrap(), T0);
        let other = s.verifier().verify(other.as_str()).unwrap();
        assert_eq!(
            check_proof(&doc, other.checkpoint(), None),
            Err(ProofCheckError::SizeMismatch {
                proof: 13,
                checkpoint: 12
            })
        );
    }

    #[test]
    fn consistency_documents_check_against_both_checkpoints() {
        let s = signer();
        let (log, _) = log(21);
        let new = s
            .verifier()
            .verify(s.sign(21, log.root(), T0).as_str())
            .unwrap();
        let old_root = log.tree().root_at(8).unwrap();
        let old = s
            .verifier()
            .verify(s.sign(8, old_root, T0).as_str())
            .unwrap();
        let doc = ProofDocument::Consistency {
            from: 8,
            to: 21,
            from_root: old_root,
            to_root: log.root(),
            proof: log.tree().consistency_proof(8, 21).unwrap(),
        };
        let back = ProofDocument::from_json(&doc.to_json()).unwrap();
        assert_eq!(back, doc);
        assert!(matches!(
            check_proof(&back, new.checkpoint(), Some(old.checkpoint())),
            Ok(ProofCheck::Consistent { anchored: true, .. })
        ));
        assert!(matches!(
            check_proof(&back, new.checkpoint(), None),
            Ok(ProofCheck::Consistent {
                anchored: false,
                ..
            })
        ));
        // A forged old root.
        let ProofDocument::Consistency { proof, .. } = &doc else {
            unreachable!()
        };
        let forged = ProofDocument::Consistency {
            from: 8,
            to: 21,
            from_root: [7; 32],
            to_root: log.root(),
            proof: proof.clone(),
        };
        assert_eq!(
            check_proof(&forged, new.checkpoint(), None),
            Err(ProofCheckError::Proof(ProofError::RootMismatch))
        );
        assert_eq!(
            check_proof(&forged, new.checkpoint(), Some(old.checkpoint())),
            Err(ProofCheckError::OldCheckpointMismatch {
                checkpoint: 8,
                from: 8
            })
        );
    }

    #[test]
    fn malformed_documents_are_refused() {
        for bad in [
            json!({}),
            json!({"type": "inclusion", "proof": []}),
            json!({"type": "inclusion", "leaf_index": 1, "tree_size": 2, "leaf_hash": "zz", "root_hash": "00", "proof": []}),
            json!({"type": "other", "proof": []}),
            json!({"type": "consistency", "from": 1, "to": 2, "from_root": hex(&[0; 32]), "to_root": hex(&[0; 32]), "proof": ["abc"]}),
        ] {
            assert!(ProofDocument::from_json(&bad).is_err(), "{bad}");
        }
    }
}
