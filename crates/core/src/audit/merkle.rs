//! RFC 9162 §2.1 Merkle hash trees: tree heads, inclusion and consistency proofs, their
//! verifiers, an in-memory [`MerkleTree`] that answers them for any earlier size, and a
//! [`CompactRange`] that computes roots while streaming with O(log n) memory.
//!
//! # Pruned trees
//! When the leaves before some size `B` are deleted (audit retention), what remains of them is
//! their *frontier*: the hashes of the complete, aligned subtrees covering `[0, B)`, one per set
//! bit of `B`, largest first — the stack of a [`CompactRange`] at `B`. A tree resumed from a
//! frontier ([`MerkleTree::from_frontier`]) answers the root of every size ≥ `B`, the inclusion
//! proof of every leaf ≥ `B`, and the consistency proof between any two sizes ≥ `B`: each node
//! such a proof needs is either wholly at or after `B` or a union of frontier subtrees (an
//! aligned subtree that held a frontier subtree strictly would also hold `B` itself, so it
//! could not lie wholly before `B`). Anything else is [`ProofError::Pruned`].
//!
//! Owns: the hashing rules (leaf = SHA-256(0x00 ‖ data), node = SHA-256(0x01 ‖ left ‖ right),
//! empty tree = SHA-256 of nothing) and the proof algorithms. Knows nothing of audit entries:
//! it takes leaf hashes. Pure; no IO.

use ring::digest::{Context, SHA256, digest};

/// A SHA-256 value.
pub type Hash = [u8; 32];

/// Why a proof could not be produced or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("tree size {size} is larger than the {available} leaves held")]
    SizeTooLarge { size: u64, available: u64 },
    #[error("a consistency proof needs 0 < old size ({old}) <= new size ({new})")]
    InvalidSizes { old: u64, new: u64 },
    #[error("the proof has the wrong number of hashes")]
    WrongLength,
    #[error("the proof does not lead to the expected root hash")]
    RootMismatch,
    #[error("the leaves before {base} were pruned: only sizes and leaves from {base} on are held")]
    Pruned { base: u64 },
    #[error("a frontier of size {size} has one hash per set bit ({expected}), not {got}")]
    FrontierLength {
        size: u64,
        expected: u32,
        got: usize,
    },
}

fn to_hash(d: ring::digest::Digest) -> Hash {
    let mut h = [0u8; 32];
    h.copy_from_slice(d.as_ref());
    h
}

/// The hash of the empty tree: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    to_hash(digest(&SHA256, b""))
}

/// RFC 9162 leaf hash: SHA-256(0x00 ‖ data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut ctx = Context::new(&SHA256);
    ctx.update(&[0x00]);
    ctx.update(data);
    to_hash(ctx.finish())
}

/// RFC 9162 interior node hash: SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 65];
    buf[0] = 0x01;
    buf[1..33].copy_from_slice(left);
    buf[33..].copy_from_slice(right);
    to_hash(digest(&SHA256, &buf))
}

/// The largest power of two strictly below `n` (`n` ≥ 2).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Every leaf hash and every complete, aligned subtree hash: level `l` holds the hashes of the
/// subtrees `[j·2^l, (j+1)·2^l)` that are complete. About 64 bytes per leaf in all. Roots and
/// proofs for any size up to the current one take O(log² n) hash operations at most.
///
/// A tree resumed from a frontier (see the module doc) holds, at level `l`, the subtrees from
/// index `offset[l]` on: the frontier subtree of that level first when there is one.
#[derive(Debug, Clone, Default)]
pub struct MerkleTree {
    levels: Vec<Vec<Hash>>,
    /// Index of the first subtree held at each level (all zero for a whole tree).
    offset: Vec<u64>,
    /// Leaves before this were pruned.
    base: u64,
}

impl MerkleTree {
    pub fn new() -> MerkleTree {
        MerkleTree::default()
    }

    /// The tree of `size` leaves of which only the frontier is known (the hashes of the
    /// complete subtrees covering `[0, size)`, largest first, as [`MerkleTree::frontier`] gives
    /// them); leaves pushed next get indexes `size`, `size + 1`, ...
    pub fn from_frontier(size: u64, frontier: &[Hash]) -> Result<MerkleTree, ProofError> {
        check_frontier(size, frontier)?;
        let depth = (64 - size.leading_zeros()) as usize;
        let mut tree = MerkleTree {
            levels: vec![Vec::new(); depth],
            offset: vec![0; depth],
            base: size,
        };
        let mut next = frontier.iter();
        for level in (0..depth).rev() {
            let held_from = size >> level;
            if held_from & 1 == 1 {
                // A set bit: the frontier subtree of this level comes first.
                let Some(hash) = next.next() else {
                    unreachable!("check_frontier counted the set bits")
                };
                tree.levels[level].push(*hash);
                tree.offset[level] = held_from - 1;
            } else {
                tree.offset[level] = held_from;
            }
        }
        Ok(tree)
    }

    /// Leaves before this index were pruned (0 for a whole tree).
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        match (self.levels.first(), self.offset.first()) {
            (Some(l), Some(o)) => o + l.len() as u64,
            _ => self.base,
        }
    }

    /// The leaf hash at `index`.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        if index < self.base {
            return None;
        }
        self.node(0, index).ok()
    }

    /// Appends one leaf hash (already computed with [`leaf_hash`]).
    pub fn push(&mut self, leaf: Hash) {
        let leaf_index = self.size();
        let mut hash = leaf;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                // A level first reached now starts at the subtree being completed.
                self.levels.push(Vec::new());
                self.offset.push(leaf_index >> level);
            }
            let row = &mut self.levels[level];
            row.push(hash);
            let len = row.len();
            let index = self.offset[level] + len as u64 - 1;
            if index.is_multiple_of(2) {
                break;
            }
            hash = node_hash(&row[len - 2], &row[len - 1]);
            level += 1;
        }
    }

    /// The hashes of the complete subtrees covering `[0, size)`, largest first: what remains
    /// when the leaves before `size` are pruned.
    pub fn frontier(&self, size: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(size)?;
        let mut out = Vec::with_capacity(size.count_ones() as usize);
        let mut lo = 0;
        for level in (0..64).rev() {
            let width = 1u64 << level;
            if size & width != 0 {
                out.push(self.range_hash(lo, lo + width)?);
                lo += width;
            }
        }
        Ok(out)
    }

    /// The root of the whole tree.
    pub fn root(&self) -> Hash {
        // Every size from the base on has a root (see the module doc).
        self.range_hash(0, self.size())
            .unwrap_or_else(|_| unreachable!("the current size is never before the base"))
    }

    /// The root of the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash, ProofError> {
        self.check_size(size)?;
        self.range_hash(0, size)
    }

    /// RFC 9162 §2.1.3.1 inclusion proof of leaf `index` in the tree of the first `size` leaves.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(size)?;
        if index >= size {
            return Err(ProofError::IndexOutOfRange { index, size });
        }
        if index < self.base {
            return Err(ProofError::Pruned { base: self.base });
        }
        let mut out = Vec::with_capacity(64);
        self.path(index, 0, size, &mut out)?;
        Ok(out)
    }

    /// RFC 9162 §2.1.4.1 consistency proof between the trees of the first `old` and `new`
    /// leaves (empty when they are equal).
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(new)?;
        if old == 0 || old > new {
            return Err(ProofError::InvalidSizes { old, new });
        }
        let mut out = Vec::with_capacity(64);
        if old < new {
            self.subproof(old, 0, new, true, &mut out)?;
        }
        Ok(out)
    }

    fn check_size(&self, size: u64) -> Result<(), ProofError> {
        if size > self.size() {
            return Err(ProofError::SizeTooLarge {
                size,
                available: self.size(),
            });
        }
        if size < self.base {
            return Err(ProofError::Pruned { base: self.base });
        }
        Ok(())
    }

    /// The complete subtree `index` of `level`, when it is held.
    fn node(&self, level: usize, index: u64) -> Result<Hash, ProofError> {
        let pruned = ProofError::Pruned { base: self.base };
        let (Some(row), Some(offset)) = (self.levels.get(level), self.offset.get(level)) else {
            return Err(pruned);
        };
        let i = index.checked_sub(*offset).ok_or(pruned.clone())?;
        usize::try_from(i)
            .ok()
            .and_then(|i| row.get(i))
            .copied()
            .ok_or(pruned)
    }

    /// MTH(D[lo:hi]) with `hi` ≤ size.
    fn range_hash(&self, lo: u64, hi: u64) -> Result<Hash, ProofError> {
        let n = hi - lo;
        if n == 0 {
            return Ok(empty_root());
        }
        if n.is_power_of_two() && lo.is_multiple_of(n) {
            // A complete, aligned subtree below the current size is always held, unless it
            // lies inside a pruned frontier subtree.
            return self.node(n.trailing_zeros() as usize, lo / n);
        }
        let k = split_point(n);
        Ok(node_hash(
            &self.range_hash(lo, lo + k)?,
            &self.range_hash(lo + k, hi)?,
        ))
    }

    fn path(&self, m: u64, lo: u64, hi: u64, out: &mut Vec<Hash>) -> Result<(), ProofError> {
        let n = hi - lo;
        if n <= 1 {
            return Ok(());
        }
        let k = split_point(n);
        if m < k {
            self.path(m, lo, lo + k, out)?;
            out.push(self.range_hash(lo + k, hi)?);
        } else {
            self.path(m - k, lo + k, hi, out)?;
            out.push(self.range_hash(lo, lo + k)?);
        }
        Ok(())
    }

    fn subproof(
        &self,
        m: u64,
        lo: u64,
        hi: u64,
        complete: bool,
        out: &mut Vec<Hash>,
    ) -> Result<(), ProofError> {
        let n = hi - lo;
        if m == n {
            if !complete {
                out.push(self.range_hash(lo, hi)?);
            }
            return Ok(());
        }
        let k = split_point(n);
        if m <= k {
            self.subproof(m, lo, lo + k, complete, out)?;
            out.push(self.range_hash(lo + k, hi)?);
        } else {
            self.subproof(m - k, lo + k, hi, false, out)?;
            out.push(self.range_hash(lo, lo + k)?);
        }
        Ok(())
    }
}

/// A frontier has one hash per set bit of its size.
fn check_frontier(size: u64, frontier: &[Hash]) -> Result<(), ProofError> {
    if frontier.len() != size.count_ones() as usize {
        return Err(ProofError::FrontierLength {
            size,
            expected: size.count_ones(),
            got: frontier.len(),
        });
    }
    Ok(())
}

/// RFC 9162 §2.1.3.2: checks that `leaf` is at `index` in the tree of `size` leaves whose root
/// is `root`.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut f = index;
    let mut s = size - 1;
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(ProofError::WrongLength);
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength);
    }
    if r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2: checks that the tree of `old` leaves with root `old_root` is a prefix of
/// the tree of `new` leaves with root `new_root`.
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old == 0 || old > new {
        return Err(ProofError::InvalidSizes { old, new });
    }
    if old == new {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        if old_root != new_root {
            return Err(ProofError::RootMismatch);
        }
        return Ok(());
    }
    let Some((first, rest)) = proof.split_first() else {
        return Err(ProofError::WrongLength);
    };
    // Step 2: when `old` is a power of two its root starts the path.
    let (start, path): (Hash, &[Hash]) = if old.is_power_of_two() {
        (*old_root, proof)
    } else {
        (*first, rest)
    };
    let mut f = old - 1;
    let mut s = new - 1;
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let mut fr = start;
    let mut sr = start;
    for c in path {
        if s == 0 {
            return Err(ProofError::WrongLength);
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength);
    }
    if fr != *old_root || sr != *new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// The hashes of the complete subtrees covering `[0, size)`: enough to append leaves and
/// compute the root at every size while streaming, in O(log n) memory.
#[derive(Debug, Clone, Default)]
pub struct CompactRange {
    size: u64,
    /// One hash per set bit of `size`, largest subtree first.
    stack: Vec<Hash>,
}

impl CompactRange {
    pub fn new() -> CompactRange {
        CompactRange::default()
    }

    /// The range of `size` leaves whose complete subtrees are `frontier` (largest first).
    pub fn from_frontier(size: u64, frontier: &[Hash]) -> Result<CompactRange, ProofError> {
        check_frontier(size, frontier)?;
        Ok(CompactRange {
            size,
            stack: frontier.to_vec(),
        })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn push(&mut self, leaf: Hash) {
        let mut hash = leaf;
        let mut n = self.size;
        while n & 1 == 1 {
            // A set low bit means a complete subtree of that size is on the stack.
            match self.stack.pop() {
                Some(left) => hash = node_hash(&left, &hash),
                None => break,
            }
            n >>= 1;
        }
        self.stack.push(hash);
        self.size += 1;
    }

    /// The root of the leaves pushed so far.
    pub fn root(&self) -> Hash {
        let mut iter = self.stack.iter().rev();
        let Some(last) = iter.next() else {
            return empty_root();
        };
        iter.fold(*last, |acc, left| node_hash(left, &acc))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definition of RFC 9162 §2.1.1, written recursively over the leaf list.
    fn naive_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split_point(n as u64) as usize;
                node_hash(&naive_root(&leaves[..k]), &naive_root(&leaves[k..]))
            }
        }
    }

    fn naive_path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        let n = leaves.len();
        if n <= 1 {
            return vec![];
        }
        let k = split_point(n as u64) as usize;
        if m < k {
            let mut p = naive_path(m, &leaves[..k]);
            p.push(naive_root(&leaves[k..]));
            p
        } else {
            let mut p = naive_path(m - k, &leaves[k..]);
            p.push(naive_root(&leaves[..k]));
            p
        }
    }

    fn naive_subproof(m: usize, leaves: &[Hash], b: bool) -> Vec<Hash> {
        let n = leaves.len();
        if m == n {
            return if b { vec![] } else { vec![naive_root(leaves)] };
        }
        let k = split_point(n as u64) as usize;
        if m <= k {
            let mut p = naive_subproof(m, &leaves[..k], b);
            p.push(naive_root(&leaves[k..]));
            p
        } else {
            let mut p = naive_subproof(m - k, &leaves[k..], false);
            p.push(naive_root(&leaves[..k]));
            p
        }
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(&(i as u64).to_be_bytes()))
            .collect()
    }

    fn tree_of(leaves: &[Hash]) -> MerkleTree {
        let mut t = MerkleTree::new();
        for l in leaves {
            t.push(*l);
        }
        t
    }

    fn hex32(s: &str) -> Hash {
        let v = crate::clock::unhex(s).unwrap();
        v.try_into().unwrap()
    }

    #[test]
    fn known_answers() {
        // SHA-256("") and the RFC 6962 test vectors (leaves are the byte strings of the
        // certificate-transparency reference tests: "", 0x00, 0x10, ...).
        assert_eq!(
            empty_root(),
            hex32("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        let inputs: [&[u8]; 8] = [
            b"",
            &[0x00],
            &[0x10],
            &[0x20, 0x21],
            &[0x30, 0x31],
            &[0x40, 0x41, 0x42, 0x43],
            &[0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
            &[
                0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d,
                0x6e, 0x6f,
            ],
        ];
        let mut t = MerkleTree::new();
        for i in inputs {
            t.push(leaf_hash(i));
        }
        let expected = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        for (i, e) in expected.iter().enumerate() {
            assert_eq!(t.root_at(i as u64 + 1).unwrap(), hex32(e), "size {}", i + 1);
        }
    }

    #[test]
    fn errors_for_impossible_requests() {
        let t = tree_of(&leaves(5));
        assert_eq!(
            t.inclusion_proof(5, 5),
            Err(ProofError::IndexOutOfRange { index: 5, size: 5 })
        );
        assert_eq!(
            t.root_at(6),
            Err(ProofError::SizeTooLarge {
                size: 6,
                available: 5
            })
        );
        assert_eq!(
            t.consistency_proof(0, 3),
            Err(ProofError::InvalidSizes { old: 0, new: 3 })
        );
        assert_eq!(
            t.consistency_proof(4, 3),
            Err(ProofError::InvalidSizes { old: 4, new: 3 })
        );
        assert_eq!(t.consistency_proof(5, 5), Ok(vec![]));
        let r = t.root();
        assert_eq!(verify_consistency(5, 5, &r, &r, &[]), Ok(()));
        assert_eq!(
            verify_consistency(5, 5, &r, &r, &[r]),
            Err(ProofError::WrongLength)
        );
        assert_eq!(
            verify_consistency(4, 5, &r, &r, &[]),
            Err(ProofError::WrongLength)
        );
    }

    #[test]
    fn a_frontier_has_one_hash_per_set_bit() {
        let h = leaf_hash(b"x");
        assert_eq!(
            MerkleTree::from_frontier(6, &[h]).map(|_| ()),
            Err(ProofError::FrontierLength {
                size: 6,
                expected: 2,
                got: 1
            })
        );
        assert!(CompactRange::from_frontier(6, &[h, h, h]).is_err());
        let empty = MerkleTree::from_frontier(0, &[]).unwrap();
        assert_eq!(empty.size(), 0);
        assert_eq!(empty.root(), empty_root());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn roots_and_proofs_match_the_definition(n in 1usize..140, a in 0usize..1000, b in 0usize..1000) {
            let ls = leaves(n);
            let t = tree_of(&ls);
            let mut c = CompactRange::new();
            for (i, l) in ls.iter().enumerate() {
                c.push(*l);
                prop_assert_eq!(c.root(), naive_root(&ls[..=i]));
            }
            let size = 1 + a % n;
            let index = b % size;
            let root = naive_root(&ls[..size]);
            prop_assert_eq!(t.root_at(size as u64).unwrap(), root);
            let proof = t.inclusion_proof(index as u64, size as u64).unwrap();
            prop_assert_eq!(&proof, &naive_path(index, &ls[..size]));
            prop_assert_eq!(verify_inclusion(&ls[index], index as u64, size as u64, &proof, &root), Ok(()));
            // A wrong leaf, index or root fails.
            let other = leaf_hash(b"other");
            prop_assert!(verify_inclusion(&other, index as u64, size as u64, &proof, &root).is_err());
            if size > 1 {
                let wrong_index = (index + 1) % size;
                prop_assert!(verify_inclusion(&ls[index], wrong_index as u64, size as u64, &proof, &root).is_err());
                let mut bad = proof.clone();
                bad[0][0] ^= 1;
                prop_assert!(verify_inclusion(&ls[index], index as u64, size as u64, &bad, &root).is_err());
                prop_assert!(verify_inclusion(&ls[index], index as u64, size as u64, &proof[1..], &root).is_err());
            }

            let old = 1 + b % size;
            let old_root = naive_root(&ls[..old]);
            let cproof = t.consistency_proof(old as u64, size as u64).unwrap();
            if old < size {
                prop_assert_eq!(&cproof, &naive_subproof(old, &ls[..size], true));
            }
            prop_assert_eq!(verify_consistency(old as u64, size as u64, &old_root, &root, &cproof), Ok(()));
            if old < size {
                prop_assert!(verify_consistency(old as u64, size as u64, &other, &root, &cproof).is_err());
                prop_assert!(verify_consistency(old as u64, size as u64, &old_root, &other, &cproof).is_err());
                let mut bad = cproof.clone();
                let last = bad.len() - 1;
                bad[last][5] ^= 0x80;
                prop_assert!(verify_consistency(old as u64, size as u64, &old_root, &root, &bad).is_err());
                let mut longer = cproof.clone();
                longer.push(other);
                prop_assert!(verify_consistency(old as u64, size as u64, &old_root, &root, &longer).is_err());
            }
        }

        /// A tree resumed from the frontier at `base` answers every root and proof at or after
        /// `base` exactly as the whole tree does, and refuses the rest as pruned.
        #[test]
        fn a_tree_resumed_from_a_frontier_answers_like_the_whole_tree(n in 1usize..140, cut in 0usize..1000, a in 0usize..1000, b in 0usize..1000) {
            let ls = leaves(n);
            let whole = tree_of(&ls);
            let base = cut % (n + 1);
            let frontier = whole.frontier(base as u64).unwrap();
            prop_assert_eq!(frontier.len(), (base as u64).count_ones() as usize);
            let mut resumed = MerkleTree::from_frontier(base as u64, &frontier).unwrap();
            let mut range = CompactRange::from_frontier(base as u64, &frontier).unwrap();
            for l in &ls[base..] {
                resumed.push(*l);
                range.push(*l);
            }
            prop_assert_eq!(resumed.size(), n as u64);
            prop_assert_eq!(resumed.root(), whole.root());
            prop_assert_eq!(range.root(), whole.root());
            let size = (base + a % (n + 1 - base)).max(1) as u64;
            prop_assert_eq!(resumed.root_at(size), whole.root_at(size));
            let index = b as u64 % size;
            if index >= base as u64 {
                prop_assert_eq!(resumed.inclusion_proof(index, size), whole.inclusion_proof(index, size));
                prop_assert_eq!(resumed.leaf(index), whole.leaf(index));
            } else {
                prop_assert_eq!(resumed.inclusion_proof(index, size), Err(ProofError::Pruned { base: base as u64 }));
                prop_assert_eq!(resumed.leaf(index), None);
            }
            let old = (base as u64).max(1) + b as u64 % (size + 1 - (base as u64).max(1)).max(1);
            if old <= size {
                prop_assert_eq!(resumed.consistency_proof(old, size), whole.consistency_proof(old, size));
            }
            if base > 1 {
                prop_assert_eq!(resumed.root_at(base as u64 - 1), Err(ProofError::Pruned { base: base as u64 }));
            }
        }
    }
}
