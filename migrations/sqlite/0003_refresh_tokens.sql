-- Refresh tokens (rotated on every use, grouped in families), revocation
-- of access tokens, and the permission to introspect.
-- Every change lands in migrations/postgres and migrations/sqlite alike.

-- A client allowed to ask about any token at /introspect (resource servers).
ALTER TABLE clients ADD COLUMN can_introspect BOOLEAN NOT NULL DEFAULT 0;

-- Everything issued from one authorization: revoking the family revokes
-- every refresh token in it and every access token issued from it.
CREATE TABLE refresh_token_families (
    id         TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    -- The family's absolute end, however often it is rotated.
    expires_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX refresh_token_families_user_client ON refresh_token_families (user_id, client_id);

-- Only the keyed digest of each token, and its grant sealed with
-- XChaCha20-Poly1305 (associated data = id).
CREATE TABLE refresh_tokens (
    id           TEXT PRIMARY KEY,
    token_digest BLOB NOT NULL UNIQUE,
    key_version  INTEGER NOT NULL,
    family_id    TEXT NOT NULL REFERENCES refresh_token_families (id) ON DELETE CASCADE,
    parent_id    TEXT,
    client_id    TEXT NOT NULL,
    grant_sealed BLOB NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    consumed_at  TEXT,
    revoked_at   TEXT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_parent ON refresh_tokens (parent_id);

-- Access tokens issued from a refresh token family, and by which refresh.
ALTER TABLE access_tokens ADD COLUMN family_id TEXT;
ALTER TABLE access_tokens ADD COLUMN refresh_token_id TEXT;
CREATE INDEX access_tokens_family ON access_tokens (family_id);
