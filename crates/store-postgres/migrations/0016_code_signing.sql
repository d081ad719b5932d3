-- Code signing: the CA certificates (PEM) each tenant's code-signing chains
-- must end in (a certificate is a tenant's anchor once: its SHA-256
-- fingerprint), and the signing profiles updraft signs uploads with, their
-- private keys sealed under the key-encryption key.
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

CREATE TABLE signing_profiles (
    tenant              TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                TEXT NOT NULL,
    platform            TEXT,
    signature_algorithm TEXT NOT NULL,
    certificate_chain   TEXT NOT NULL,
    trust_anchor        TEXT NOT NULL,
    sealed_key          TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    PRIMARY KEY (tenant, name)
);
