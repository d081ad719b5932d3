-- The jobs engine: a job's full specification (targeting, recurrence,
-- delivery, pace, schedule, retry, timeout; JSON of `updraft_core::rollout::JobSpec`),
-- whether an operator holds it paused, and when each execution was released
-- to its device (pace and timeouts count from it).
ALTER TABLE jobs ADD COLUMN spec TEXT NOT NULL DEFAULT '{}';
ALTER TABLE jobs ADD COLUMN held BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE executions ADD COLUMN released_at BIGINT;
CREATE INDEX executions_released ON executions (tenant, job, released_at);
