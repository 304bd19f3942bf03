-- Which master-key version's pepper keyed each password hash (argon2id's
-- secret input, crypto/password.rs). 0: a hash made before peppers, which
-- is re-keyed at the user's next successful sign-in.
ALTER TABLE users ADD COLUMN password_key_version INTEGER NOT NULL DEFAULT 0;
