-- The audit log: who changed what, kept from the event stream by the `audit`
-- follower (management changes and security events; not devices' reports),
-- for its own retention. `seq` is the event's, so an event is recorded once.
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    at INTEGER NOT NULL,
    actor TEXT,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX audit_recent ON audit (tenant, at, seq);
CREATE INDEX audit_at ON audit (at);
