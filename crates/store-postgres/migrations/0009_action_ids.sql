-- Action ids as devices see them, below 2^31 forever (SWUpdate reads them as
-- 32-bit integers): each attempt of an execution takes the next number of its
-- tenant's counter (wrapping back to 1 after 2^31 - 1), and every attempt's
-- number stays mapped to it, so an earlier attempt's id answers 410.
ALTER TABLE tenants ADD COLUMN last_action BIGINT NOT NULL DEFAULT 0;
ALTER TABLE executions ADD COLUMN action BIGINT;
CREATE TABLE execution_actions (
    tenant     TEXT NOT NULL,
    action     BIGINT NOT NULL,
    action_id  BIGINT NOT NULL REFERENCES executions (action_id) ON DELETE CASCADE,
    attempt    BIGINT NOT NULL,
    PRIMARY KEY (tenant, action)
);
CREATE INDEX execution_actions_execution ON execution_actions (action_id);
-- Existing attempts keep the ids their devices know: execution × 16 + attempt − 1.
WITH RECURSIVE a (action_id, attempt) AS (
    SELECT action_id, 1 FROM executions
    UNION ALL
    SELECT a.action_id, a.attempt + 1 FROM a JOIN executions e ON e.action_id = a.action_id
    WHERE a.attempt < e.attempt AND a.attempt < 16
)
INSERT INTO execution_actions (tenant, action, action_id, attempt)
SELECT e.tenant, e.action_id * 16 + a.attempt - 1, e.action_id, a.attempt
FROM a JOIN executions e ON e.action_id = a.action_id;
UPDATE executions SET action = action_id * 16 + (CASE WHEN attempt > 16 THEN 16 ELSE attempt END) - 1;
UPDATE tenants SET last_action = COALESCE(
    (SELECT MAX(x.action) FROM execution_actions x WHERE x.tenant = tenants.id), 0);
