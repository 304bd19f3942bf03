-- A sealed pending request (an anonymous browser's, issue 14 finding 3) is
-- stored at login under the id it was sealed with. A finished request is
-- kept, marked taken, until it expires, so the same id cannot be stored
-- and finished again; a session remembers the anonymous id its browser had
-- before the login, so that browser's other tabs can still continue.
ALTER TABLE authorization_requests ADD COLUMN taken_at TEXT;
ALTER TABLE browser_sessions ADD COLUMN anonymous_id TEXT;
CREATE INDEX browser_sessions_anonymous ON browser_sessions (anonymous_id);
