-- Master-key rotation (docs/operations.md "Rotating the master key").
-- Every change lands in migrations/postgres and migrations/sqlite alike.

-- When every value sealed under an earlier version had been re-sealed under
-- this one. NULL while a rotation to this version is under way: until then
-- the previous version's key must stay configured.
ALTER TABLE master_key_fingerprints ADD COLUMN resealed_at TEXT;
UPDATE master_key_fingerprints SET resealed_at = created_at;

-- The keys of keyed digests and MACs (client secrets, session cookies, CSRF
-- tokens, codes, refresh tokens), sealed under the current master key. A
-- digest cannot be recomputed without its secret, so a master-key rotation
-- re-seals these keys instead of changing them. Associated data = purpose.
CREATE TABLE digest_keys (
    purpose    TEXT PRIMARY KEY,
    key_sealed BLOB NOT NULL,
    created_at TEXT NOT NULL
);

-- Bumped when a master key version is registered or finishes re-sealing.
INSERT INTO cache_epochs (name, epoch) VALUES ('master_keys', 0);

-- Which master keys each running replica holds (by key id: the first 8
-- bytes of the fingerprint), refreshed every 30 s. `authd master-key
-- rotate` refuses while a replica seen lately lacks the new key: it could
-- neither open what is re-sealed nor follow the rotation.
CREATE TABLE master_key_holders (
    replica TEXT PRIMARY KEY,
    key_ids TEXT NOT NULL, -- space-separated
    seen_at TEXT NOT NULL
);
