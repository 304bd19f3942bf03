-- Dynamic client registration (RFC 7591 / 7592).
-- How a client came to be: NULL for an operator's (CLI, admin API);
-- 'token' (with an initial access token) or 'open' for a dynamic one.
ALTER TABLE clients ADD COLUMN registered_via TEXT CHECK (registered_via IN ('token', 'open'));
-- The display metadata a dynamic client registered: JSON
-- {"logo_uri":…, "client_uri":…, "contacts":[…]}.
ALTER TABLE clients ADD COLUMN registration_metadata TEXT;
-- RFC 7592's registration access token, as a keyed digest (replaced at
-- each PUT).
ALTER TABLE clients ADD COLUMN registration_token_digest BLOB;
ALTER TABLE clients ADD COLUMN registration_token_key_version INTEGER;
-- When an openly registered client first redeemed a code: those never
-- used within AUTHD_REGISTRATION_UNUSED_TTL are removed.
ALTER TABLE clients ADD COLUMN used_at TEXT;
CREATE INDEX clients_unused_open ON clients (created_at) WHERE registered_via = 'open' AND used_at IS NULL;

-- Initial access tokens (RFC 7591 §3) for AUTHD_REGISTRATION=token: a
-- keyed digest, what a client registered with it may ask for, and how
-- often and how long it may be used.
CREATE TABLE registration_tokens (
    id             TEXT PRIMARY KEY,
    digest         BLOB NOT NULL UNIQUE,
    key_version    INTEGER NOT NULL,
    -- Space-separated scopes a client registered with it may hold; NULL:
    -- any scope a client may be registered with.
    scope          TEXT,
    max_uses       INTEGER,
    uses           INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL,
    expires_at     TEXT
);
CREATE INDEX registration_tokens_expires ON registration_tokens (expires_at);
