-- The event stream (outbox): every state change appends its events in the
-- same transaction. Sequence numbers are taken before commit, and
-- transactions commit out of order: readers order by the writing
-- transaction's id, then `seq`, and read only transactions older than the
-- oldest one of this database still running, so no event ever appears behind
-- a reader's cursor.
CREATE TABLE events (
    seq BIGSERIAL PRIMARY KEY,
    tx BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    tenant TEXT NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    payload JSONB NOT NULL
);
CREATE INDEX events_stream ON events (tx, seq);
CREATE INDEX events_at ON events (at);

-- Where each durable follower is, and which replica holds it.
CREATE TABLE event_followers (
    name TEXT PRIMARY KEY,
    tx BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    owner TEXT,
    lease_until BIGINT
);
