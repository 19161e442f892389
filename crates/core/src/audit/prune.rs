//! Audit retention: what remains of the entries before a pruning point, so that everything
//! after it — and every checkpoint, old ones included — still verifies.
//!
//! A log is pruned only at the size of a stored checkpoint (a *whole checkpointed range*):
//! entries `[0, size)` are deleted and a [`PrunedBase`] is kept in their place:
//! - `frontier`: the hashes of the complete Merkle subtrees covering `[0, size)` (one per set
//!   bit of `size`); their root equals the checkpoint's root at `size`, and with them the tree
//!   continues: every later root, every inclusion proof of a kept entry and every consistency
//!   proof between kept sizes is computed exactly as before (see [`super::merkle`]);
//! - `head`: the `hash` of entry `size - 1`, which entry `size` links to (`prev_hash`);
//! - `links`: an RFC 9162 consistency proof from every older checkpoint's size to a later
//!   checkpoint's size (the pruning point of the time), so old checkpoints still prove that the
//!   log they signed is a prefix of today's.
//!
//! What no longer verifies after pruning: the contents of the deleted entries (they are gone),
//! their inclusion proofs, and the hash chain before `size`. The pruning point is chosen by
//! [`prune_point`]: the largest stored checkpoint size whose entries are all older than the
//! cutoff and that the trail has verified.
//!
//! Must not: do IO or decide when to prune (the gateway's housekeeping does).

use serde::{Deserialize, Serialize};

use super::merkle::{CompactRange, Hash, MerkleTree, ProofError};
use crate::clock::{hex, unhex};

/// A consistency proof from the checkpoint of size `from` to the one of size `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub from: u64,
    pub to: u64,
    pub proof: Vec<Hash>,
}

/// What stands in for the pruned entries `[0, size)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrunedBase {
    pub size: u64,
    pub head: Hash,
    pub frontier: Vec<Hash>,
    pub links: Vec<Link>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PruneError {
    #[error("the pruning point {size} is not after the previous one ({previous})")]
    NotAfter { size: u64, previous: u64 },
    #[error("{0}")]
    Proof(#[from] ProofError),
    #[error("the stored pruned base is not readable: {0}")]
    Encoding(String),
}

impl PrunedBase {
    /// The base at `size`, from a tree holding that size: `head` is the hash of entry
    /// `size - 1`, `checkpoints` the sizes of the stored checkpoints. Checkpoints below the
    /// previous base keep their links; those from the previous base up to `size` get one to
    /// `size`.
    pub fn at(
        tree: &MerkleTree,
        size: u64,
        head: Hash,
        checkpoints: &[u64],
        previous: Option<&PrunedBase>,
    ) -> Result<PrunedBase, PruneError> {
        let previous_size = previous.map_or(0, |p| p.size);
        if size <= previous_size {
            return Err(PruneError::NotAfter {
                size,
                previous: previous_size,
            });
        }
        let mut links = previous.map(|p| p.links.clone()).unwrap_or_default();
        for &from in checkpoints
            .iter()
            .filter(|s| **s >= previous_size.max(1) && **s < size)
        {
            links.push(Link {
                from,
                to: size,
                proof: tree.consistency_proof(from, size)?,
            });
        }
        links.sort_by_key(|l| l.from);
        links.dedup_by_key(|l| l.from);
        Ok(PrunedBase {
            size,
            head,
            frontier: tree.frontier(size)?,
            links,
        })
    }

    /// The RFC 9162 root of the pruned entries (the checkpoint's root at `size`).
    pub fn root(&self) -> Result<Hash, ProofError> {
        Ok(CompactRange::from_frontier(self.size, &self.frontier)?.root())
    }

    /// The tree continuing after the pruned entries.
    pub fn tree(&self) -> Result<MerkleTree, ProofError> {
        MerkleTree::from_frontier(self.size, &self.frontier)
    }

    /// The JSON kept in the store.
    pub fn encode(&self) -> String {
        let hexes = |v: &[Hash]| v.iter().map(|h| hex(h)).collect::<Vec<_>>();
        serde_json::to_string(&Stored {
            size: self.size,
            head: hex(&self.head),
            frontier: hexes(&self.frontier),
            links: self
                .links
                .iter()
                .map(|l| StoredLink {
                    from: l.from,
                    to: l.to,
                    proof: hexes(&l.proof),
                })
                .collect(),
        })
        .unwrap_or_else(|_| unreachable!("plain data serializes"))
    }

    pub fn decode(json: &str) -> Result<PrunedBase, PruneError> {
        let bad = |what: &str| PruneError::Encoding(what.to_owned());
        let stored: Stored = serde_json::from_str(json).map_err(|e| bad(&e.to_string()))?;
        let hash = |s: &str| -> Result<Hash, PruneError> {
            unhex(s)
                .and_then(|v| <Hash>::try_from(v.as_slice()).ok())
                .ok_or_else(|| bad("a hash is not 64 hex digits"))
        };
        let hashes = |v: &[String]| v.iter().map(|s| hash(s)).collect::<Result<Vec<_>, _>>();
        let base = PrunedBase {
            size: stored.size,
            head: hash(&stored.head)?,
            frontier: hashes(&stored.frontier)?,
            links: stored
                .links
                .iter()
                .map(|l| {
                    Ok(Link {
                        from: l.from,
                        to: l.to,
                        proof: hashes(&l.proof)?,
                    })
                })
                .collect::<Result<_, PruneError>>()?,
        };
        base.root()?;
        Ok(base)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    size: u64,
    head: String,
    frontier: Vec<String>,
    links: Vec<StoredLink>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredLink {
    from: u64,
    to: u64,
    proof: Vec<String>,
}

/// Where to prune: the largest checkpoint size `s` with `current_base < s ≤ first_young` (every
/// entry before `s` is older than the cutoff; `first_young` is the seq of the first entry at
/// or after it, or the log's length when there is none) and `s ≤ verified` (the trail checked
/// those entries). `None`: nothing to prune.
pub fn prune_point(
    checkpoints: &[u64],
    first_young: u64,
    verified: u64,
    current_base: u64,
) -> Option<u64> {
    checkpoints
        .iter()
        .copied()
        .filter(|s| *s > current_base && *s <= first_young && *s <= verified)
        .max()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::audit::merkle::{leaf_hash, verify_consistency};

    fn tree(n: u64) -> MerkleTree {
        let mut t = MerkleTree::new();
        for i in 0..n {
            t.push(leaf_hash(&i.to_be_bytes()));
        }
        t
    }

    #[test]
    fn the_pruning_point_is_the_largest_old_verified_checkpoint_after_the_base() {
        let cps = [4, 8, 16, 20];
        assert_eq!(prune_point(&cps, 17, 100, 0), Some(16));
        assert_eq!(prune_point(&cps, 16, 100, 0), Some(16));
        assert_eq!(prune_point(&cps, 15, 100, 0), Some(8));
        assert_eq!(prune_point(&cps, 17, 10, 0), Some(8));
        assert_eq!(prune_point(&cps, 17, 100, 16), None);
        assert_eq!(prune_point(&cps, 3, 100, 0), None);
        assert_eq!(prune_point(&[], 100, 100, 0), None);
    }

    #[test]
    fn a_base_keeps_the_root_and_links_every_older_checkpoint_forward() {
        let t = tree(40);
        let first = PrunedBase::at(&t, 16, [1; 32], &[4, 8, 16, 30], None).unwrap();
        assert_eq!(first.root().unwrap(), t.root_at(16).unwrap());
        assert_eq!(
            first
                .links
                .iter()
                .map(|l| (l.from, l.to))
                .collect::<Vec<_>>(),
            [(4, 16), (8, 16)]
        );
        for l in &first.links {
            let from = t.root_at(l.from).unwrap();
            let to = t.root_at(l.to).unwrap();
            assert_eq!(
                verify_consistency(l.from, l.to, &from, &to, &l.proof),
                Ok(())
            );
        }
        // Pruning again later keeps the old links and adds one from 16 to 30, computed on a
        // tree resumed from the first base.
        let mut resumed = first.tree().unwrap();
        for i in 16..40u64 {
            resumed.push(leaf_hash(&i.to_be_bytes()));
        }
        let second = PrunedBase::at(&resumed, 30, [2; 32], &[4, 8, 16, 30], Some(&first)).unwrap();
        assert_eq!(
            second
                .links
                .iter()
                .map(|l| (l.from, l.to))
                .collect::<Vec<_>>(),
            [(4, 16), (8, 16), (16, 30)]
        );
        assert_eq!(second.root().unwrap(), t.root_at(30).unwrap());
        assert_eq!(PrunedBase::decode(&second.encode()).unwrap(), second);
        assert_eq!(
            PrunedBase::at(&resumed, 16, [2; 32], &[], Some(&first)),
            Err(PruneError::NotAfter {
                size: 16,
                previous: 16
            })
        );
    }

    #[test]
    fn a_damaged_stored_base_is_refused() {
        let base = PrunedBase::at(&tree(8), 6, [1; 32], &[6], None).unwrap();
        let json = base.encode();
        assert!(PrunedBase::decode(&json.replace("\"size\":6", "\"size\":7")).is_err());
        assert!(PrunedBase::decode(&json.replace("\"links\"", "\"extra\":1,\"links\"")).is_err());
        assert!(PrunedBase::decode("{}").is_err());
    }
}
