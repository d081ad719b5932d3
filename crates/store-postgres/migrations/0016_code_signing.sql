-- Code signing: the CA certificates (PEM) each tenant's code-signing chains
-- must end in. A certificate is a tenant's anchor once (its SHA-256 fingerprint).
CREATE TABLE trust_anchors (
    tenant      TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          TEXT NOT NULL,
    name        TEXT,
    certificate TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant, id),
    UNIQUE (tenant, fingerprint)
);
