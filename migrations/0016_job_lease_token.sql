-- Each claim of a job's lease (src/db/queries/maintenance.ts) writes a token of its own, and a run records its end
-- only while the row still carries that token: a run presumed dead, whose lease another runner took over, overwrote
-- that runner's record (its end, its rows, its resume cursor) when it finished after all. Rows claimed before this
-- column existed have none, and are taken over as before.
ALTER TABLE job_runs ADD COLUMN IF NOT EXISTS lease_token uuid;
