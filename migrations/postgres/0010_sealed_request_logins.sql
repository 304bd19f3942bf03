-- Sealed sign-in requests (issue 14, finding 3): an anonymous browser's
-- pending request is not stored until its login. Then its id is recorded
-- here, with the anonymous id it was sealed to, until it expires: the same
-- sealed request can be stored once (a second post of the login form, or
-- another tab of that browser, finds the same request; once finished it is
-- gone for good). No foreign key: the record outlives the session.
CREATE TABLE sealed_requests (
    id           TEXT PRIMARY KEY,
    anonymous_id TEXT NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX sealed_requests_anonymous ON sealed_requests (anonymous_id);
CREATE INDEX sealed_requests_expires ON sealed_requests (expires_at);
-- The anonymous id a session's browser had before its first login.
ALTER TABLE browser_sessions ADD COLUMN anonymous_id TEXT;
