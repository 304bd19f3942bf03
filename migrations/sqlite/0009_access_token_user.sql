-- Whose access token each record is (issue 14, a sibling of finding 4):
-- withdrawing a consent or resetting a password revokes that user's access
-- tokens too, not only their refresh families. Codes carry the user id in
-- the clear (the grant stays sealed) so that redeeming one can record it.
ALTER TABLE authorization_codes ADD COLUMN user_id TEXT;
ALTER TABLE access_tokens ADD COLUMN user_id TEXT;
CREATE INDEX access_tokens_user_client ON access_tokens (user_id, client_id);
