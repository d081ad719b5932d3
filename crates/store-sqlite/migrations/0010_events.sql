-- The event stream (outbox): every state change appends its events in the
-- same transaction. SQLite serialises writers, so `seq` is commit order and
-- `tx` stays 0.
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tx INTEGER NOT NULL DEFAULT 0,
    tenant TEXT NOT NULL,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX events_at ON events (at);

-- Where each durable follower is, and which replica holds it.
CREATE TABLE event_followers (
    name TEXT PRIMARY KEY,
    tx INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    owner TEXT,
    lease_until INTEGER
);
