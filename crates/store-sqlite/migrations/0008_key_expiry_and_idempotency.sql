-- API keys may expire (microseconds; NULL: never) and are listed by the first
-- characters of their token (NULL for keys issued before this migration).
ALTER TABLE api_keys ADD COLUMN expires_at INTEGER;
ALTER TABLE api_keys ADD COLUMN token_prefix TEXT;

-- Requests made with an Idempotency-Key, kept until expires_at to answer
-- retries; scoped per tenant and API key. The answer holds no secret.
CREATE TABLE idempotent_requests (
    tenant       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    api_key      TEXT NOT NULL,
    key          TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    answer       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant, api_key, key)
);
CREATE INDEX idempotent_requests_expiry ON idempotent_requests (tenant, expires_at);
