-- Group tokens (issue 17, seed 004's `token`): a narrow credential for one group, acting as an
-- API key of the tenant on that group only. Only the token's SHA-256 is kept. Deleting the group
-- or the API key deletes its tokens.
CREATE TABLE group_tokens (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    group_id    TEXT NOT NULL,
    key_id      TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    FOREIGN KEY (tenant, group_id) REFERENCES device_groups (tenant, id) ON DELETE CASCADE
);
CREATE INDEX group_tokens_tenant ON group_tokens (tenant);
CREATE INDEX group_tokens_key ON group_tokens (key_id);
CREATE INDEX group_tokens_group ON group_tokens (tenant, group_id);
