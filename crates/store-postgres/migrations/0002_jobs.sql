-- Jobs, their per-device executions with history, gateway tokens, and the
-- device API's request for attributes.

ALTER TABLE devices ADD COLUMN attributes_requested BOOLEAN NOT NULL DEFAULT TRUE;

CREATE TABLE gateway_tokens (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        TEXT,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
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
    consent_required  BOOLEAN NOT NULL,
    created_at        BIGINT NOT NULL,
    started_at        BIGINT,
    finished_at       BIGINT,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX jobs_state ON jobs (tenant, state);

CREATE TABLE executions (
    action_id         BIGSERIAL PRIMARY KEY,
    tenant            TEXT NOT NULL,
    job               TEXT NOT NULL,
    device            TEXT NOT NULL,
    firmware          TEXT NOT NULL,
    state             TEXT NOT NULL,
    attempt           BIGINT NOT NULL,
    cancel_requested  BOOLEAN NOT NULL,
    progress_cnt      BIGINT,
    progress_of       BIGINT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    finished_at       BIGINT,
    UNIQUE (tenant, job, device),
    FOREIGN KEY (tenant, job) REFERENCES jobs (tenant, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant, device) REFERENCES devices (tenant, id) ON DELETE CASCADE
);
CREATE INDEX executions_device ON executions (tenant, device, state, action_id);
CREATE INDEX executions_job ON executions (tenant, job, state);
CREATE INDEX executions_firmware ON executions (tenant, firmware, state);

CREATE TABLE execution_events (
    action_id     BIGINT NOT NULL REFERENCES executions (action_id) ON DELETE CASCADE,
    seq           BIGINT NOT NULL,
    at            BIGINT NOT NULL,
    state         TEXT NOT NULL,
    source        TEXT NOT NULL,
    report        TEXT NOT NULL,
    code          BIGINT,
    progress_cnt  BIGINT,
    progress_of   BIGINT,
    details       JSONB NOT NULL,
    PRIMARY KEY (action_id, seq)
);
