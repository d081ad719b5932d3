-- The audit log: who changed what, kept from the event stream by the `audit`
-- follower (management changes and security events; not devices' reports),
-- for its own retention. `seq` is the event's, so an event is recorded once.
CREATE TABLE audit (
    seq BIGINT PRIMARY KEY,
    tenant TEXT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    payload JSONB NOT NULL
);
CREATE INDEX audit_recent ON audit (tenant, at, seq);
CREATE INDEX audit_at ON audit (at);
