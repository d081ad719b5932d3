-- Operators' accounts for the dashboard (a role in a tenant, as an API key;
-- names unique across tenants, since one signs in by name) and their sessions,
-- known by the SHA-256 of the session cookie's token.
CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    tenant         TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name           TEXT NOT NULL UNIQUE,
    role           TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE INDEX users_tenant ON users (tenant, name);
CREATE TABLE sessions (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);
