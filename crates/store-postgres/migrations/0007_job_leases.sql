-- Scheduler leases: the replica that holds a job's lease until `lease_until`
-- (microseconds) is the only one that ticks it; another may take it after.
ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
ALTER TABLE jobs ADD COLUMN lease_until BIGINT;
