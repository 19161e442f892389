-- The people a transfer is about (CONTRACT.md "Legal basis, guardians, and the consent text"):
-- on what basis it moves, who consented, and which consent text was shown.
-- `basis` is `consent` or `statutory` (transfers accepted before this migration: consent).
-- `guardian_pseudonym` is the keyed pseudonym of the guardian who consented for a minor (never
-- the identifier; its own HMAC domain, so it cannot be joined with student pseudonyms), NULL
-- when the student consented alone or the transfer is statutory. `consent_sha256`,
-- `consent_version` and `consent_lang` name the consent text the authorization proved was
-- shown (NULL when it named none). `consented_at` is the authorization's `iat` (milliseconds
-- since the Unix epoch, UTC); NULL for transfers accepted before this migration.
ALTER TABLE transfers ADD COLUMN basis TEXT NOT NULL DEFAULT 'consent';
ALTER TABLE transfers ADD COLUMN guardian_pseudonym TEXT;
ALTER TABLE transfers ADD COLUMN consent_sha256 TEXT;
ALTER TABLE transfers ADD COLUMN consent_version TEXT;
ALTER TABLE transfers ADD COLUMN consent_lang TEXT;
ALTER TABLE transfers ADD COLUMN consented_at INTEGER;
