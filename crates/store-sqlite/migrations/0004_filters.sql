-- Device filters: the sort keys of versions (`version_sort_key`), so that SQL
-- compares versions by semver precedence, and saved filters.
-- `firmware_keys` maps each component whose version is semver to its key; it is
-- NULL only on rows written before this migration, which the store fills in at
-- start.
ALTER TABLE devices ADD COLUMN hardware_version_key TEXT;
ALTER TABLE devices ADD COLUMN module_version_key TEXT;
ALTER TABLE devices ADD COLUMN firmware_keys TEXT;
CREATE INDEX devices_filter_status ON devices (tenant, connection_status);
CREATE INDEX devices_filter_hardware ON devices (tenant, hardware_version_key);
CREATE INDEX devices_filter_module ON devices (tenant, module_version_key);

CREATE TABLE saved_filters (
    tenant       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id           TEXT NOT NULL,
    name         TEXT NOT NULL,
    description  TEXT,
    filter       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    updated_by   TEXT,
    PRIMARY KEY (tenant, id)
);
