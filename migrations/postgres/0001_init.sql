-- Siirto store, PostgreSQL flavour. Times are milliseconds since the Unix epoch (UTC).

-- One row per transfer. `due_at` is when a worker should next look at it: the retry time while
-- waiting, the lease expiry while a worker holds it, NULL once it reached an end.
CREATE TABLE transfers (
    id                TEXT PRIMARY KEY,
    status            TEXT NOT NULL,
    reason            TEXT,
    submitter         TEXT NOT NULL,
    issuer            TEXT NOT NULL,
    jti               TEXT NOT NULL,
    src               TEXT NOT NULL,
    dst               TEXT NOT NULL,
    purpose           TEXT NOT NULL,
    scope             TEXT NOT NULL,
    subject_pseudonym TEXT NOT NULL,
    subject_sealed    BYTEA,
    attempts          BIGINT NOT NULL DEFAULT 0,
    due_at            BIGINT,
    lease_owner       TEXT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    retry_from        BIGINT NOT NULL,
    source_sha256     TEXT,
    document_sha256   TEXT,
    report            TEXT,
    receipt           TEXT,
    receipt_leaf      BIGINT
);
CREATE INDEX transfers_due ON transfers (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX transfers_subject ON transfers (subject_pseudonym, created_at);

-- What happened to a transfer, in order, for GET /v1/transfers/{id}.
CREATE TABLE steps (
    transfer_id TEXT NOT NULL REFERENCES transfers (id),
    seq         BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    step        TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    detail      TEXT,
    PRIMARY KEY (transfer_id, seq)
);

-- Authorization ids already used, kept until the authorization could no longer be valid.
CREATE TABLE replay (
    issuer     TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, jti)
);
CREATE INDEX replay_expiry ON replay (expires_at);

-- Records waiting for delivery, encrypted; deleted when the transfer reaches an end.
CREATE TABLE payloads (
    transfer_id TEXT PRIMARY KEY REFERENCES transfers (id),
    key_id      TEXT NOT NULL,
    sealed      BYTEA NOT NULL,
    sha256      TEXT NOT NULL,
    stored_at   BIGINT NOT NULL
);

-- The append-only audit trail: a hash chain (prev_hash, hash) whose entries are also the leaves
-- of a Merkle tree (seq = leaf index).
CREATE TABLE audit (
    seq             BIGINT PRIMARY KEY,
    at              BIGINT NOT NULL,
    actor           TEXT NOT NULL,
    action          TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    transfer_id     TEXT,
    subject         TEXT,
    document_sha256 TEXT,
    detail          TEXT NOT NULL,
    prev_hash       BYTEA NOT NULL,
    hash            BYTEA NOT NULL
);
CREATE INDEX audit_transfer ON audit (transfer_id, seq);
CREATE INDEX audit_at ON audit (at);

-- Signed checkpoints of the Merkle tree.
CREATE TABLE checkpoints (
    tree_size BIGINT PRIMARY KEY,
    root_hash BYTEA NOT NULL,
    issued_at BIGINT NOT NULL,
    note      TEXT NOT NULL
);
