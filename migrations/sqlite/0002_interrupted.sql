-- Attempts that were interrupted: a worker claimed the transfer while an earlier claim's lease
-- was never released (the gateway stopped, or a step outlasted its lease), so that attempt
-- recorded no outcome. The claim counts them; the next worker to write audits them and resets
-- the count.
ALTER TABLE transfers ADD COLUMN interrupted INTEGER NOT NULL DEFAULT 0;
