-- Health of sources and destinations (siirto_core::peer_health), shared by every instance on
-- this database. A peer without a row is up with no failures. Times are milliseconds since the
-- Unix epoch (UTC).
CREATE TABLE peers (
    participant    TEXT PRIMARY KEY,
    -- When the peer was marked down; NULL while it is up.
    down_since     BIGINT,
    -- Transient failures in a row, and failed probes since it went down.
    failures       BIGINT NOT NULL DEFAULT 0,
    probes         BIGINT NOT NULL DEFAULT 0,
    -- When the next probe may be made (while down).
    next_probe_at  BIGINT,
    -- The probe under way: the claim's lease token, the transfer it probes with, and until when
    -- the claim holds it (an expired probe may be taken over).
    probe_owner    TEXT,
    probe_transfer TEXT,
    probe_until    BIGINT,
    updated_at     BIGINT NOT NULL
);
