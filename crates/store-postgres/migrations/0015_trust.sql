-- TUF repositories, one per tenant and product (see docs/trust.md).
--
-- The online roles' keys (targets, snapshot, timestamp), sealed under the
-- key-encryption key of the configuration: a database dump alone signs nothing.
-- The root role's keys are never here: the operator keeps them offline.
CREATE TABLE trust_keys (
    tenant      TEXT NOT NULL,
    product     TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    role        TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    sealed      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant, product, key_id),
    FOREIGN KEY (tenant, product) REFERENCES products (tenant, key) ON DELETE CASCADE
);

-- Every version of the signed metadata a client may still ask for, as served
-- (roots all kept: a client on an old root walks through each).
CREATE TABLE trust_metadata (
    tenant      TEXT NOT NULL,
    product     TEXT NOT NULL,
    role        TEXT NOT NULL,
    version     BIGINT NOT NULL,
    body        TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant, product, role, version),
    FOREIGN KEY (tenant, product) REFERENCES products (tenant, key) ON DELETE CASCADE
);
CREATE INDEX trust_metadata_expiry ON trust_metadata (role, expires_at);

-- Anti-rollback: the security version of each image (targets metadata carries it).
ALTER TABLE firmware ADD COLUMN security_version BIGINT NOT NULL DEFAULT 0;
