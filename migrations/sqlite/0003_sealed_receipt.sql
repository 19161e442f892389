-- The signed receipt names the student in its payload (`sub`), so it is stored sealed like the
-- payload: AES-256-GCM with the payload key, bound to `receipt:<transfer id>`, its key id beside
-- it for rotation. `receipt` (the JWS in clear) is no longer written. SQL holds no key, so rows
-- written before this migration keep their clear receipt until the gateway starts: it then
-- seals each one into `receipt_sealed` and clears `receipt` (src/gateway.rs).
ALTER TABLE transfers ADD COLUMN receipt_sealed BLOB;
ALTER TABLE transfers ADD COLUMN receipt_key_id TEXT;
