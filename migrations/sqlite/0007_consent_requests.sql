-- Consent given at the register (CONTRACT.md "Consent given at the register: KOSKI OmaData"):
-- one row per consent request an e-service made (`POST /v1/consent-requests`).
-- `state_sha256` is the SHA-256 (hex) of the single-use OAuth `state`: the state itself is not
-- kept. `verifier_sealed` is the PKCE code verifier, `pending_sealed` what the transfer is
-- made of once the person consents (the authorization's facts and the sealed student id),
-- `code_sealed` the authorization code until it is exchanged, `token_sealed` the access token
-- from the exchange until the one fetch: each AES-256-GCM with the payload key, bound to
-- `omadata-<part>:<request id>` (sealed values carry their key id). Each is set to NULL as soon
-- as it is no longer needed. `status` is pending, granted or declined; `transfer_id` is the
-- transfer made on the consent. Times are milliseconds since the Unix epoch (UTC).
CREATE TABLE consent_requests (
    id              TEXT PRIMARY KEY,
    eservice        TEXT NOT NULL,
    src             TEXT NOT NULL,
    redirect_uri    TEXT NOT NULL,
    state_sha256    TEXT NOT NULL,
    verifier_sealed BLOB,
    pending_sealed  BLOB,
    status          TEXT NOT NULL,
    transfer_id     TEXT UNIQUE,
    code_sealed     BLOB,
    token_sealed    BLOB,
    exchanged_at    INTEGER,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    answered_at     INTEGER
);
CREATE INDEX consent_requests_expiry ON consent_requests (expires_at) WHERE status = 'pending';
