-- Signing keys that rotate themselves: next → active → retired → removed,
-- and revoked for emergencies.
-- Every change lands in migrations/postgres and migrations/sqlite alike.
-- SQLite cannot change a CHECK constraint in place: the table is rebuilt.

CREATE TABLE signing_keys_new (
    kid                TEXT PRIMARY KEY,
    alg                TEXT NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('next', 'active', 'retired', 'removed', 'revoked')),
    public_n           TEXT NOT NULL, -- base64url, as in the JWK
    public_e           TEXT NOT NULL,
    -- PKCS#8 DER sealed with XChaCha20-Poly1305, associated data = kid;
    -- empty once the key is removed or revoked.
    private_key_sealed BLOB NOT NULL,
    created_at         TEXT NOT NULL,
    activated_at       TEXT,
    retired_at         TEXT,
    -- When a next key is due to become active.
    activates_at       TEXT,
    -- When a retired key left the JWKS and lost its private half.
    removed_at         TEXT,
    revoked_at         TEXT
);
INSERT INTO signing_keys_new (kid, alg, state, public_n, public_e, private_key_sealed, created_at, activated_at, retired_at)
    SELECT kid, alg, state, public_n, public_e, private_key_sealed, created_at, activated_at, retired_at FROM signing_keys;
DROP TABLE signing_keys;
ALTER TABLE signing_keys_new RENAME TO signing_keys;
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (state) WHERE state = 'active';
-- At most one key waits to sign, whatever replicas race to create one.
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (state) WHERE state = 'next';
