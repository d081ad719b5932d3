-- Phased rollouts: where a job's phases stand (JSON of `updraft_core::phase::PhaseState`;
-- NULL before anything happened) and the phase each execution belongs to.
ALTER TABLE jobs ADD COLUMN phase_state TEXT;
ALTER TABLE executions ADD COLUMN phase BIGINT NOT NULL DEFAULT 0;
-- Who did what an event records (`key:<id>`, `device:<id>`, `gateway`, `system:<worker>`).
ALTER TABLE events ADD COLUMN actor TEXT;
