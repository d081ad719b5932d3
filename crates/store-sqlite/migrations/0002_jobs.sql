-- Jobs, their per-device executions with history, gateway tokens, and the
-- device API's request for attributes.

ALTER TABLE devices ADD COLUMN attributes_requested INTEGER NOT NULL DEFAULT 1;

CREATE TABLE gateway_tokens (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        TEXT,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);
CREATE INDEX gateway_tokens_tenant ON gateway_tokens (tenant);

CREATE TABLE jobs (
    tenant            TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                TEXT NOT NULL,
    name              TEXT,
    description       TEXT,
    kind              TEXT NOT NULL,
    firmware          TEXT NOT NULL,
    product           TEXT NOT NULL,
    state             TEXT NOT NULL,
    consent_required  INTEGER NOT NULL,
    created_at        INTEGER NOT NULL,
    started_at        INTEGER,
    finished_at       INTEGER,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX jobs_state ON jobs (tenant, state);

CREATE TABLE executions (
    action_id         INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant            TEXT NOT NULL,
    job               TEXT NOT NULL,
    device            TEXT NOT NULL,
    firmware          TEXT NOT NULL,
    state             TEXT NOT NULL,
    attempt           INTEGER NOT NULL,
    cancel_requested  INTEGER NOT NULL,
    progress_cnt      INTEGER,
    progress_of       INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    finished_at       INTEGER,
    UNIQUE (tenant, job, device),
    FOREIGN KEY (tenant, job) REFERENCES jobs (tenant, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant, device) REFERENCES devices (tenant, id) ON DELETE CASCADE
);
CREATE INDEX executions_device ON executions (tenant, device, state, action_id);
CREATE INDEX executions_job ON executions (tenant, job, state);
CREATE INDEX executions_firmware ON executions (tenant, firmware, state);

CREATE TABLE execution_events (
    action_id     INTEGER NOT NULL REFERENCES executions (action_id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    at            INTEGER NOT NULL,
    state         TEXT NOT NULL,
    source        TEXT NOT NULL,
    report        TEXT NOT NULL,
    code          INTEGER,
    progress_cnt  INTEGER,
    progress_of   INTEGER,
    details       TEXT NOT NULL,
    PRIMARY KEY (action_id, seq)
);
