-- Every change lands in migrations/postgres and migrations/sqlite alike.

-- The fingerprint of each master key version: a wrong AUTHD_MASTER_KEY is
-- refused at start instead of failing on the first sealed value.
CREATE TABLE master_key_fingerprints (
    version     INTEGER PRIMARY KEY,
    fingerprint BLOB NOT NULL,
    created_at  TEXT NOT NULL
);

-- Bumped in the same transaction as every change to a cached table; each
-- replica polls this one small table to know when to reload its caches.
CREATE TABLE cache_epochs (
    name  TEXT PRIMARY KEY,
    epoch INTEGER NOT NULL
);
INSERT INTO cache_epochs (name, epoch) VALUES ('clients', 0), ('signing_keys', 0);

CREATE TABLE clients (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    kind               TEXT NOT NULL CHECK (kind IN ('confidential', 'public')),
    -- HMAC-SHA256 of the secret under a key derived from the master key.
    secret_digest      BLOB,
    secret_key_version INTEGER,
    redirect_uris      TEXT NOT NULL, -- JSON array of strings
    grant_types        TEXT NOT NULL, -- space-separated
    scope              TEXT NOT NULL, -- space-separated (RFC 6749 §3.3)
    audiences          TEXT NOT NULL, -- JSON array of strings
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    CHECK ((kind = 'confidential') = (secret_digest IS NOT NULL AND secret_key_version IS NOT NULL))
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL, -- argon2id PHC string
    disabled      BOOLEAN NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL
);

CREATE TABLE signing_keys (
    kid                TEXT PRIMARY KEY,
    alg                TEXT NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('active', 'retired')),
    public_n           TEXT NOT NULL, -- base64url, as in the JWK
    public_e           TEXT NOT NULL,
    -- PKCS#8 DER sealed with XChaCha20-Poly1305, associated data = kid.
    private_key_sealed BLOB NOT NULL,
    created_at         TEXT NOT NULL,
    activated_at       TEXT,
    retired_at         TEXT
);
-- At most one key signs, whatever replicas race to create one.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (state) WHERE state = 'active';
