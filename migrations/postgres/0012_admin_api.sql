-- The admin API lists clients page by page in (created_at, id) order.
CREATE INDEX clients_created_at_id ON clients (created_at, id);
-- Idempotency-Key of the admin API's creates (draft-ietf-httpapi-idempotency-key-header):
-- the first request's answer, kept a day, so that a retried create answers
-- the same and makes nothing twice. The answer may hold a client secret:
-- sealed under the master key (row id as associated data), re-sealed by a
-- master-key rotation. `status` 0: the first request is still running.
CREATE TABLE admin_idempotency (
    id              TEXT PRIMARY KEY,
    request_digest  BYTEA NOT NULL,
    status          INTEGER NOT NULL,
    response_sealed BYTEA,
    -- Who holds the key now (a random value per claim): only the holder
    -- records the answer or gives the key up.
    claim           TEXT NOT NULL,
    -- The id the first request's resource gets, chosen before it runs: a
    -- retry after a lost answer collides with it instead of making a second.
    resource_id     TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX admin_idempotency_expires ON admin_idempotency (expires_at);
