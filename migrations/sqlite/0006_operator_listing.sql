-- The operator's listings: transfers newest first (paged by acceptance time and id), and the
-- audit entries about one student (by the keyed pseudonym) for a subject lookup.
CREATE INDEX transfers_created ON transfers (created_at, id);
CREATE INDEX audit_subject ON audit (subject, seq) WHERE subject IS NOT NULL;
