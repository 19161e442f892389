-- Checks without transfer (CONTRACT.md "Checks without transfer"): one question about a
-- student answered from the source's record, which is dropped after the decision. A row holds
-- no part of the record: only the question, the answer and the SHA-256 of the document read.
-- `subject_pseudonym` is the student's keyed pseudonym (as in transfers), `guardian_pseudonym`
-- the guardian's (NULL without one). `outcome` is `answered`, or the code the check ended
-- with (`source_not_found`, `source_timeout`, …) and then `answer` is NULL. `answer` is 1
-- (true) or 0 (false). `attestation_sealed` is the signed attestation (it names the student),
-- sealed like a receipt for `attestation:<id>` with the vault key `attestation_key_id`;
-- `audit_leaf_index` the seq of the audit entry recording the answer. Times are milliseconds
-- since the Unix epoch, UTC.
CREATE TABLE checks (
    id                  TEXT PRIMARY KEY,
    submitter           TEXT NOT NULL,
    issuer              TEXT NOT NULL,
    jti                 TEXT NOT NULL,
    src                 TEXT NOT NULL,
    dst                 TEXT NOT NULL,
    question            TEXT NOT NULL,
    purpose             TEXT NOT NULL,
    subject_pseudonym   TEXT NOT NULL,
    basis               TEXT NOT NULL,
    guardian_pseudonym  TEXT,
    consent_sha256      TEXT,
    consent_version     TEXT,
    consent_lang        TEXT,
    consented_at        BIGINT NOT NULL,
    created_at          BIGINT NOT NULL,
    finished_at         BIGINT NOT NULL,
    outcome             TEXT NOT NULL,
    answer              BIGINT,
    document_sha256     TEXT,
    audit_leaf_index    BIGINT,
    attestation_sealed  BYTEA,
    attestation_key_id  TEXT
);
CREATE INDEX checks_subject ON checks (subject_pseudonym, created_at);
