-- Access keys (issue 17): an id and a secret that sign requests (the Aliyun-style RPC door's
-- HMAC-SHA1, AWS Signature Version 4), bound to an API key whose tenant and role they act with.
-- The secret is sealed under the key-encryption key (the signature needs it back); deleting
-- the API key deletes its access keys.
CREATE TABLE access_keys (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key_id      TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    secret      TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX access_keys_tenant ON access_keys (tenant);
CREATE INDEX access_keys_key ON access_keys (key_id);
