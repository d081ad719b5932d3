-- Whether firmware is in use is asked through its jobs, and only released
-- executions are indexed by release time (every query on it bounds
-- `released_at`): two index entries fewer for each execution a job's start
-- writes. (SQLite keeps the foreign keys PostgreSQL gave up: its writers
-- are serialized, and a check costs an index probe.)
DROP INDEX IF EXISTS executions_firmware;
DROP INDEX IF EXISTS executions_released;
CREATE INDEX executions_released ON executions (tenant, job, released_at) WHERE released_at IS NOT NULL;
-- The map of action numbers (0009) now keeps earlier attempts' numbers only:
-- the current attempt's is its execution's `action`, found through the device.
-- Devices deleted lately (a day is kept), written by the store both databases
-- share; PostgreSQL's job start reads it (SQLite's looks each target up).
CREATE TABLE device_deletions (
    tenant      TEXT NOT NULL,
    id          TEXT NOT NULL,
    deleted_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant, id)
);
