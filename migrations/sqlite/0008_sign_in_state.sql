-- Sign-in state with bounds (issue 14, finding 3). A browser gets a session
-- row only once it signs in; before that its pending requests are bound to
-- an id derived from its cookie, so `authorization_requests.session_id` no
-- longer references `browser_sessions` (SQLite drops a foreign key by
-- rebuilding the table).
CREATE TABLE authorization_requests_bounded (
    id           TEXT PRIMARY KEY,
    session_id   TEXT NOT NULL,
    client_id    TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    request      TEXT NOT NULL,
    logged_in_at TEXT,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL
);
INSERT INTO authorization_requests_bounded
    (id, session_id, client_id, request, logged_in_at, created_at, expires_at)
    SELECT id, session_id, client_id, request, logged_in_at, created_at, expires_at
    FROM authorization_requests;
DROP TABLE authorization_requests;
ALTER TABLE authorization_requests_bounded RENAME TO authorization_requests;

-- A browser's pending requests, newest first (the cap per browser).
CREATE INDEX authorization_requests_session ON authorization_requests (session_id, created_at);
-- Housekeeping finds expired rows without scanning live ones.
CREATE INDEX authorization_requests_expires ON authorization_requests (expires_at);
CREATE INDEX browser_sessions_expires ON browser_sessions (expires_at);
CREATE INDEX authorization_codes_expires ON authorization_codes (expires_at);
CREATE INDEX access_tokens_expires ON access_tokens (expires_at);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);
CREATE INDEX refresh_token_families_expires ON refresh_token_families (expires_at);
-- Deleting a client revokes its recorded access tokens.
CREATE INDEX access_tokens_client ON access_tokens (client_id);
