-- Production hardening: per-client rate tiers on /token and the browser
-- origins allowed to call /token, /userinfo and /revoke (CORS).
-- Every change lands in migrations/postgres and migrations/sqlite alike.
ALTER TABLE clients ADD COLUMN rate_tier TEXT NOT NULL DEFAULT 'standard';
-- JSON array of origins (scheme://host[:port]).
ALTER TABLE clients ADD COLUMN allowed_origins TEXT NOT NULL DEFAULT '[]';
