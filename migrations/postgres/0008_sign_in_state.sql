-- Sign-in state with bounds (issue 14, finding 3): a session's newest
-- pending requests are kept (the cap per session), and housekeeping finds
-- expired rows without scanning live ones.
CREATE INDEX authorization_requests_session ON authorization_requests (session_id, created_at);
CREATE INDEX authorization_requests_expires ON authorization_requests (expires_at);
CREATE INDEX browser_sessions_expires ON browser_sessions (expires_at);
CREATE INDEX authorization_codes_expires ON authorization_codes (expires_at);
CREATE INDEX access_tokens_expires ON access_tokens (expires_at);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);
CREATE INDEX refresh_token_families_expires ON refresh_token_families (expires_at);
-- Deleting a client revokes its recorded access tokens.
CREATE INDEX access_tokens_client ON access_tokens (client_id);
