-- Audit retention ([retention] audit): what stands in for the audit entries pruned before a
-- checkpointed size. One row: siirto_core::audit::prune::PrunedBase as JSON (the Merkle
-- frontier, the hash chain's head at that size, and consistency proofs from the older
-- checkpoints), so verification and proofs continue from it.
CREATE TABLE audit_base (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    size BIGINT NOT NULL,
    base TEXT NOT NULL,
    pruned_at BIGINT NOT NULL
);
