-- Witnessed audit (C2SP tlog-witness, tlog-cosignature).
-- As a witness: per log origin, the latest checkpoint this gateway cosigned. Written by a
-- compare-and-set on (size, root) and committed before the cosignature is answered, so a
-- restart never lets it cosign a checkpoint that conflicts with one it cosigned.
CREATE TABLE witness_logs (
    origin TEXT PRIMARY KEY,
    size BIGINT NOT NULL,
    root BLOB NOT NULL,
    updated_at BIGINT NOT NULL
);
-- As a log: the cosignatures received per checkpoint (tree size), one per witness.
CREATE TABLE witness_cosignatures (
    tree_size BIGINT NOT NULL,
    witness TEXT NOT NULL,
    cosigned_at BIGINT NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (tree_size, witness)
);
-- As a log: per witness, the size it last cosigned (or told in a 409) and the last conflict.
CREATE TABLE witness_peers (
    witness TEXT PRIMARY KEY,
    cosigned_size BIGINT NOT NULL,
    conflict_at BIGINT,
    conflict_size BIGINT
);
