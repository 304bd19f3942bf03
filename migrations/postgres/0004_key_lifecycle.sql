-- Signing keys that rotate themselves: next → active → retired → removed,
-- and revoked for emergencies.
-- Every change lands in migrations/postgres and migrations/sqlite alike.

ALTER TABLE signing_keys DROP CONSTRAINT signing_keys_state_check;
ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_state_check
    CHECK (state IN ('next', 'active', 'retired', 'removed', 'revoked'));
-- When a next key is due to become active.
ALTER TABLE signing_keys ADD COLUMN activates_at TIMESTAMPTZ;
-- When a retired key left the JWKS and lost its private half.
ALTER TABLE signing_keys ADD COLUMN removed_at TIMESTAMPTZ;
ALTER TABLE signing_keys ADD COLUMN revoked_at TIMESTAMPTZ;
-- At most one key waits to sign, whatever replicas race to create one.
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (state) WHERE state = 'next';
