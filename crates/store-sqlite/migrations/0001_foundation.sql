-- Tenants, keys, products, firmware, devices and groups.
-- Times are microseconds since the Unix epoch (UTC); JSON columns hold maps.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    role          TEXT NOT NULL,
    name          TEXT,
    server_admin  INTEGER NOT NULL DEFAULT 0,
    token_hash    TEXT NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL
);
CREATE INDEX api_keys_tenant ON api_keys (tenant);

CREATE TABLE products (
    tenant          TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key             TEXT NOT NULL,
    name            TEXT NOT NULL,
    description     TEXT,
    version_scheme  TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (tenant, key)
);

CREATE TABLE firmware (
    tenant              TEXT NOT NULL,
    id                  TEXT NOT NULL,
    product             TEXT NOT NULL,
    version             TEXT NOT NULL,
    name                TEXT,
    release_notes       TEXT,
    metadata            TEXT NOT NULL,
    needs_verification  INTEGER NOT NULL,
    verified            INTEGER NOT NULL,
    files               TEXT NOT NULL,
    total_size          INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    PRIMARY KEY (tenant, id),
    UNIQUE (tenant, product, version),
    FOREIGN KEY (tenant, product) REFERENCES products (tenant, key)
);

CREATE TABLE devices (
    tenant             TEXT NOT NULL,
    id                 TEXT NOT NULL,
    product            TEXT NOT NULL,
    firmware           TEXT NOT NULL,
    hardware_version   TEXT,
    module_model       TEXT,
    module_version     TEXT,
    template_id        TEXT,
    properties         TEXT NOT NULL,
    metadata           TEXT NOT NULL,
    activated_at       INTEGER,
    last_seen_at       INTEGER,
    connection_status  TEXT NOT NULL,
    token_hash         TEXT NOT NULL UNIQUE,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    PRIMARY KEY (tenant, id),
    FOREIGN KEY (tenant, product) REFERENCES products (tenant, key)
);
CREATE INDEX devices_product ON devices (tenant, product, id);

CREATE TABLE device_groups (
    tenant       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id           TEXT NOT NULL,
    name         TEXT NOT NULL,
    description  TEXT,
    product      TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant, id),
    FOREIGN KEY (tenant, product) REFERENCES products (tenant, key)
);

CREATE TABLE group_members (
    tenant     TEXT NOT NULL,
    group_id   TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    added_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant, group_id, device_id),
    FOREIGN KEY (tenant, group_id) REFERENCES device_groups (tenant, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant, device_id) REFERENCES devices (tenant, id) ON DELETE CASCADE
);
CREATE INDEX group_members_device ON group_members (tenant, device_id);
