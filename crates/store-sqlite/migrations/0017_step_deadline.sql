-- AWS IoT Jobs' step timer (`stepTimeoutInMinutes`): when a device says how long its next step
-- may take, the execution times out at this instant (microseconds since the epoch) unless the
-- device reports again first. Cleared when the execution is released again.
ALTER TABLE executions ADD COLUMN step_deadline BIGINT;
