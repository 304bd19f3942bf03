-- Browser sign-in: profiles, sessions, pending authorization requests,
-- consents, authorization codes and the access tokens issued from them.
-- Every change lands in migrations/postgres and migrations/sqlite alike.

ALTER TABLE users ADD COLUMN name TEXT;
ALTER TABLE users ADD COLUMN email TEXT;
ALTER TABLE users ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT FALSE;

ALTER TABLE clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]'; -- JSON array
ALTER TABLE clients ADD COLUMN skip_consent BOOLEAN NOT NULL DEFAULT FALSE;

-- A browser session. The cookie value is never stored: only its keyed
-- digest (HMAC-SHA256), so a database dump cannot be replayed as a cookie.
CREATE TABLE browser_sessions (
    id            TEXT PRIMARY KEY,
    cookie_digest BYTEA NOT NULL UNIQUE,
    user_id       TEXT REFERENCES users (id) ON DELETE CASCADE,
    auth_time     TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL
);

-- An /authorize request waiting for login or consent, bound to the browser
-- session that made it. `request` is the validated request as JSON.
CREATE TABLE authorization_requests (
    id           TEXT PRIMARY KEY,
    session_id   TEXT NOT NULL REFERENCES browser_sessions (id) ON DELETE CASCADE,
    client_id    TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    request      TEXT NOT NULL,
    logged_in_at TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL
);

-- What a user allowed a client: the union of the scopes granted so far.
CREATE TABLE consents (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    granted_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

-- Authorization codes: only the keyed digest of the code, and the grant
-- sealed with XChaCha20-Poly1305 (associated data = id).
CREATE TABLE authorization_codes (
    id           TEXT PRIMARY KEY,
    code_digest  BYTEA NOT NULL UNIQUE,
    key_version  INTEGER NOT NULL,
    client_id    TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    grant_sealed BYTEA NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    redeemed_at  TIMESTAMPTZ
);

-- Access tokens issued for users (the client-credentials path writes
-- nothing): their jti, so they can be revoked before they expire.
CREATE TABLE access_tokens (
    jti        TEXT PRIMARY KEY,
    code_id    TEXT REFERENCES authorization_codes (id) ON DELETE SET NULL,
    client_id  TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX access_tokens_code ON access_tokens (code_id);
