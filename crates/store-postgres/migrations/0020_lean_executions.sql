-- Starting a job over 100,000 devices wrote each execution's row with six
-- index entries and four foreign-key checks (each locking a row: the device,
-- the job, and the new execution from its first event and action number).
-- Executions are tied to their job and device by the store instead: a job is
-- never deleted, and a device's deletion deletes its executions, their
-- histories and action numbers, under a lock that keeps a job's start from
-- adding one meanwhile (`lock_fleet`). Whether firmware is in use is asked
-- through its jobs, and only released executions are indexed by release time
-- (every query on it bounds `released_at`).
ALTER TABLE executions DROP CONSTRAINT IF EXISTS executions_tenant_job_fkey;
ALTER TABLE executions DROP CONSTRAINT IF EXISTS executions_tenant_device_fkey;
ALTER TABLE execution_actions DROP CONSTRAINT IF EXISTS execution_actions_action_id_fkey;
ALTER TABLE execution_events DROP CONSTRAINT IF EXISTS execution_events_action_id_fkey;
DROP INDEX IF EXISTS executions_firmware;
DROP INDEX IF EXISTS executions_released;
CREATE INDEX executions_released ON executions (tenant, job, released_at) WHERE released_at IS NOT NULL;
-- A job's queued executions in the order the scheduler releases them (SQLite's
-- index entries end with the row id already), so that a release reads the few
-- it takes rather than sorting the whole job.
DROP INDEX IF EXISTS executions_job;
CREATE INDEX executions_job ON executions (tenant, job, state, action_id);
-- The map of action numbers (0009) now keeps earlier attempts' numbers only:
-- the current attempt's is its execution's `action`, found through the device.
-- Devices deleted lately (a day is kept), so that a job's start skips a device
-- deleted after its scope was read without looking up each of its targets.
CREATE TABLE device_deletions (
    tenant      TEXT NOT NULL,
    id          TEXT NOT NULL,
    deleted_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant, id)
);
