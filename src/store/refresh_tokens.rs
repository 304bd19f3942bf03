//! Refresh-token families, rotation and revocation: `RefreshTokenRepository`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::Result;
use crate::domain::{ClientId, UserId};

/// A refresh token family: everything issued from one authorization.
#[derive(Debug, Clone)]
pub struct FamilyRecord {
    pub id: String,
    pub client_id: ClientId,
    pub user_id: UserId,
    pub created_at: DateTime<Utc>,
    /// The family's absolute end.
    pub expires_at: DateTime<Utc>,
}

/// A new refresh token: its digest and sealed grant.
#[derive(Debug, Clone)]
pub struct RefreshTokenRecord {
    pub id: String,
    pub token_digest: Vec<u8>,
    pub key_version: u32,
    pub family_id: String,
    pub parent_id: Option<String>,
    pub client_id: ClientId,
    pub grant_sealed: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A successor token and the access token issued with it.
#[derive(Debug, Clone)]
pub struct Successor {
    pub token: RefreshTokenRecord,
    pub jti: String,
    pub access_expires_at: DateTime<Utc>,
}

/// The family's user as they stand now, read by the rotation before it
/// consumes anything: every refresh checks them again (RFC 6749 §10.4: a
/// refresh token outlives nothing it was granted from). Disabling the
/// user or withdrawing the consent revokes the family under its lock, so
/// a rotation that read them before such a change consumes nothing.
#[derive(Debug, Clone)]
pub struct FamilyUser {
    /// The account (disabled or not).
    pub account: crate::domain::User,
    /// The scope they consented to for the family's client, if any.
    pub consent: Option<String>,
    /// Their access rights (the rights query of `store/roles.rs`).
    pub rights: crate::domain::UserAccessRights,
}

/// The token a rotation consumed (or the parent a grace retry re-uses),
/// and the family's user now, so that the successor's grant is decided
/// from them before anything is committed.
#[derive(Debug, Clone)]
pub struct ConsumedRefresh {
    pub id: String,
    pub family_id: String,
    pub grant_sealed: Vec<u8>,
    pub user: FamilyUser,
}

/// Builds the successor of the token being rotated, before anything is
/// written (opening and sealing grants is above the store); its error
/// consumes nothing.
pub type BuildSuccessor<'a> = &'a (dyn Fn(&ConsumedRefresh) -> Result<Successor> + Send + Sync);

/// A refresh token found by digest, whatever its state.
#[derive(Debug, Clone)]
pub struct StoredRefreshToken {
    pub id: String,
    pub family_id: String,
    pub client_id: String,
    pub user_id: String,
    pub grant_sealed: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub consumed_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub family_expires_at: DateTime<Utc>,
    pub family_revoked: bool,
}

#[async_trait]
pub trait RefreshTokenRepository {
    /// Creates a family with its first token, and tags the access token
    /// issued with it (`jti`, already recorded by the code redemption).
    /// `false` (nothing created) when that access token is already revoked:
    /// the code was replayed meanwhile.
    async fn create_family(
        &self,
        family: &FamilyRecord,
        token: &RefreshTokenRecord,
        jti: &str,
    ) -> Result<bool>;
    /// Consumes the token with this digest if it is `client`'s,
    /// unconsumed, unrevoked, unexpired and its family alive (one
    /// conditional `UPDATE` under the family's lock: of concurrent callers
    /// exactly one wins), inserts the successor `build` makes from it and
    /// the family's user as they are now, and records its access token, all
    /// or nothing. `None` when nothing was consumed; `build`'s error
    /// consumes nothing. (PostgreSQL: a read, then one statement; SQLite:
    /// one transaction.)
    async fn rotate_refresh_token(
        &self,
        token_digest: &[u8],
        client: &ClientId,
        now: DateTime<Utc>,
        build: BuildSuccessor<'_>,
    ) -> Result<Option<Successor>>;
    /// The grace path, once per parent: if `parent_id` was consumed after
    /// `consumed_since` and its only successor is still unused, revokes that
    /// successor (and its access token) and inserts a new one from `build`,
    /// in one transaction.
    async fn replace_unused_successor(
        &self,
        parent_id: &str,
        consumed_since: DateTime<Utc>,
        now: DateTime<Utc>,
        build: BuildSuccessor<'_>,
    ) -> Result<Option<Successor>>;
    async fn find_refresh_token(&self, token_digest: &[u8]) -> Result<Option<StoredRefreshToken>>;
    /// Revokes the family, every refresh token in it and every access token
    /// issued from it. Returns whether the family was alive.
    async fn revoke_family(&self, family_id: &str, now: DateTime<Utc>) -> Result<bool>;
    /// RFC 7009: denies an access token until it expires, recording its
    /// `jti` when it was not recorded.
    async fn revoke_access_token(
        &self,
        jti: &str,
        client: &ClientId,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()>;
}

/// Refresh token families and their rotation.
macro_rules! impl_refresh_token_repository {
    ($store:ty) => {
        impl $store {
            /// The family's user now, read in `tx`: the account and their
            /// consent for `client` (one query), then their access rights
            /// (the rights query of `store/roles.rs`). The caller holds the
            /// family's lock, and a family's user outlives it (`ON DELETE
            /// CASCADE`), so the user is there.
            pub(super) async fn family_user_in(
                tx: &mut sqlx::Transaction<'_, <Self as $crate::store::HasDb>::Db>,
                user_id: &str,
                client_id: &str,
            ) -> $crate::store::Result<$crate::store::FamilyUser> {
                let row: $crate::store::rows::UserConsentRow = sqlx::query_as(
                    "SELECT u.id, u.username, u.password_hash, u.password_key_version, u.name, u.email, \
                     u.email_verified, u.disabled, u.created_at, c.scope AS consent \
                     FROM users u LEFT JOIN consents c ON c.user_id = u.id AND c.client_id = $2 WHERE u.id = $1",
                )
                .bind(user_id)
                .bind(client_id)
                .fetch_one(&mut **tx)
                .await?;
                Ok($crate::store::FamilyUser {
                    account: row.user.try_into()?,
                    consent: row.consent,
                    rights: Self::rights_in(tx, user_id).await?,
                })
            }

            /// The user's access rights, read in `tx` (the rights query of
            /// `store/roles.rs`).
            async fn rights_in(
                tx: &mut sqlx::Transaction<'_, <Self as $crate::store::HasDb>::Db>,
                user_id: &str,
            ) -> $crate::store::Result<$crate::domain::UserAccessRights> {
                let rows: Vec<(Option<String>, Option<String>, Option<String>)> =
                    sqlx::query_as($crate::store::roles::USER_ACCESS_RIGHTS)
                        .bind(user_id)
                        .fetch_all(&mut **tx)
                        .await?;
                $crate::store::roles::rights_from_rows(rows)
            }

            /// Revokes the user's refresh-token families (only those at
            /// `client`, when given), then every token in them: the family
            /// rows first, the lock order of every family change.
            async fn revoke_families_of_user(
                tx: &mut sqlx::Transaction<'_, <Self as $crate::store::HasDb>::Db>,
                user: $crate::domain::UserId,
                client: Option<&$crate::domain::ClientId>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<()> {
                let (families, tokens) = match client {
                    None => (
                        "UPDATE refresh_token_families SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
                        "UPDATE refresh_tokens SET revoked_at = $1 WHERE revoked_at IS NULL AND family_id IN (SELECT id FROM refresh_token_families WHERE user_id = $2)",
                    ),
                    Some(_) => (
                        "UPDATE refresh_token_families SET revoked_at = $1 \
                         WHERE user_id = $2 AND client_id = $3 AND revoked_at IS NULL",
                        "UPDATE refresh_tokens SET revoked_at = $1 WHERE revoked_at IS NULL AND family_id IN \
                         (SELECT id FROM refresh_token_families WHERE user_id = $2 AND client_id = $3)",
                    ),
                };
                for sql in [families, tokens] {
                    let query = sqlx::query(sql).bind(now).bind(user.to_string());
                    let query = match client {
                        Some(client) => query.bind(client.as_str()),
                        None => query,
                    };
                    query.execute(&mut **tx).await?;
                }
                Ok(())
            }

            /// Ends everything the user was granted (only at `client`, when
            /// given), in the caller's transaction: the refresh-token
            /// families and their tokens; codes not yet redeemed, before the
            /// access tokens are revoked (a redemption in flight is waited
            /// for, and the token it recorded is then revoked with the
            /// others); then the families again, since one started from a
            /// code redeemed just before (its transaction tagged the token,
            /// which the access-token update waited for) is visible now.
            async fn end_grants_of_user(
                tx: &mut sqlx::Transaction<'_, <Self as $crate::store::HasDb>::Db>,
                user: $crate::domain::UserId,
                client: Option<&$crate::domain::ClientId>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<()> {
                Self::revoke_families_of_user(tx, user, client, now).await?;
                let (codes, access_tokens) = match client {
                    None => (
                        "DELETE FROM authorization_codes WHERE user_id = $1 AND redeemed_at IS NULL",
                        "UPDATE access_tokens SET revoked_at = $1 WHERE revoked_at IS NULL AND \
                         (user_id = $2 OR family_id IN (SELECT id FROM refresh_token_families WHERE user_id = $2))",
                    ),
                    Some(_) => (
                        "DELETE FROM authorization_codes WHERE user_id = $1 AND client_id = $2 AND redeemed_at IS NULL",
                        "UPDATE access_tokens SET revoked_at = $1 WHERE revoked_at IS NULL AND \
                         ((user_id = $2 AND client_id = $3) OR family_id IN \
                          (SELECT id FROM refresh_token_families WHERE user_id = $2 AND client_id = $3))",
                    ),
                };
                let query = sqlx::query(codes).bind(user.to_string());
                let query = match client {
                    Some(client) => query.bind(client.as_str()),
                    None => query,
                };
                query.execute(&mut **tx).await?;
                let query = sqlx::query(access_tokens).bind(now).bind(user.to_string());
                let query = match client {
                    Some(client) => query.bind(client.as_str()),
                    None => query,
                };
                query.execute(&mut **tx).await?;
                Self::revoke_families_of_user(tx, user, client, now).await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::RefreshTokenRepository for $store {
            #[tracing::instrument(level = "debug", name = "store.refresh.create_family", skip_all, fields(client_id = %family.client_id))]
            async fn create_family(
                &self,
                family: &$crate::store::FamilyRecord,
                token: &$crate::store::RefreshTokenRecord,
                jti: &str,
            ) -> $crate::store::Result<bool> {
                let mut tx = self.pool.begin().await?;
                // First tag the access token issued with the code: this locks
                // its row, so a replay of the code either revoked it already
                // (then no family is created) or waits and then finds the
                // family through it (revoke_replayed_code).
                let tagged: Option<(Option<chrono::DateTime<chrono::Utc>>,)> = sqlx::query_as(
                    "UPDATE access_tokens SET family_id = $1 WHERE jti = $2 RETURNING revoked_at",
                )
                .bind(&family.id)
                .bind(jti)
                .fetch_optional(&mut *tx)
                .await?;
                if matches!(tagged, Some((Some(_),))) {
                    return Ok(false);
                }
                sqlx::query(
                    "INSERT INTO refresh_token_families (id, client_id, user_id, created_at, expires_at, revoked_at) \
                     VALUES ($1, $2, $3, $4, $5, NULL)",
                )
                .bind(&family.id)
                .bind(family.client_id.as_str())
                .bind(family.user_id.to_string())
                .bind(family.created_at)
                .bind(family.expires_at)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO refresh_tokens (id, token_digest, key_version, family_id, parent_id, client_id, grant_sealed, created_at, expires_at, consumed_at, revoked_at) \
                     VALUES ($1, $2, $3, $4, NULL, $5, $6, $7, $8, NULL, NULL)",
                )
                .bind(&token.id)
                .bind(&token.token_digest)
                .bind(token.key_version as i32)
                .bind(&token.family_id)
                .bind(token.client_id.as_str())
                .bind(&token.grant_sealed)
                .bind(token.created_at)
                .bind(token.expires_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(true)
            }

            #[tracing::instrument(level = "debug", name = "store.refresh.rotate", skip_all, fields(client_id = %client))]
            async fn rotate_refresh_token(
                &self,
                token_digest: &[u8],
                client: &$crate::domain::ClientId,
                now: chrono::DateTime<chrono::Utc>,
                build: $crate::store::BuildSuccessor<'_>,
            ) -> $crate::store::Result<Option<$crate::store::Successor>> {
                // Each backend's own statements (below the macro).
                self.rotate(token_digest, client, now, build).await
            }

            #[tracing::instrument(level = "debug", name = "store.refresh.replace_successor", skip_all)]
            async fn replace_unused_successor(
                &self,
                parent_id: &str,
                consumed_since: chrono::DateTime<chrono::Utc>,
                now: chrono::DateTime<chrono::Utc>,
                build: $crate::store::BuildSuccessor<'_>,
            ) -> $crate::store::Result<Option<$crate::store::Successor>> {
                let mut tx = self.pool.begin().await?;
                // The family's lock first, as in every other transaction on it.
                let family_user: Option<(String, String)> = sqlx::query_as(
                    "UPDATE refresh_token_families SET revoked_at = revoked_at \
                     WHERE id = (SELECT family_id FROM refresh_tokens WHERE id = $1) \
                     AND revoked_at IS NULL AND expires_at > $2 RETURNING user_id, client_id",
                )
                .bind(parent_id)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((user_id, client_id)) = family_user else {
                    return Ok(None);
                };
                let replaced: Option<(String,)> = sqlx::query_as(
                    "UPDATE refresh_tokens SET revoked_at = $1 \
                     WHERE parent_id = $2 AND consumed_at IS NULL AND revoked_at IS NULL \
                     AND EXISTS (SELECT 1 FROM refresh_tokens p WHERE p.id = $2 AND p.consumed_at > $3) \
                     AND (SELECT COUNT(*) FROM refresh_tokens c WHERE c.parent_id = $2) = 1 \
                     RETURNING id",
                )
                .bind(now)
                .bind(parent_id)
                .bind(consumed_since)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((successor_id,)) = replaced else {
                    return Ok(None);
                };
                sqlx::query("UPDATE access_tokens SET revoked_at = $1 WHERE refresh_token_id = $2 AND revoked_at IS NULL")
                    .bind(now)
                    .bind(&successor_id)
                    .execute(&mut *tx)
                    .await?;
                let parent: (String, String, Vec<u8>) = sqlx::query_as(
                    "SELECT id, family_id, grant_sealed FROM refresh_tokens WHERE id = $1",
                )
                .bind(parent_id)
                .fetch_one(&mut *tx)
                .await?;
                let user = Self::family_user_in(&mut tx, &user_id, &client_id).await?;
                let successor = build(&$crate::store::ConsumedRefresh {
                    id: parent.0,
                    family_id: parent.1,
                    grant_sealed: parent.2,
                    user,
                })?;
                Self::insert_successor(&mut tx, &successor).await?;
                tx.commit().await?;
                Ok(Some(successor))
            }

            #[tracing::instrument(level = "debug", name = "store.refresh.find", skip_all)]
            async fn find_refresh_token(
                &self,
                token_digest: &[u8],
            ) -> $crate::store::Result<Option<$crate::store::StoredRefreshToken>> {
                type Row = (
                    String,
                    String,
                    String,
                    String,
                    Vec<u8>,
                    chrono::DateTime<chrono::Utc>,
                    chrono::DateTime<chrono::Utc>,
                    Option<chrono::DateTime<chrono::Utc>>,
                    Option<chrono::DateTime<chrono::Utc>>,
                    chrono::DateTime<chrono::Utc>,
                    Option<chrono::DateTime<chrono::Utc>>,
                );
                let row: Option<Row> = sqlx::query_as(
                    "SELECT t.id, t.family_id, t.client_id, f.user_id, t.grant_sealed, t.created_at, t.expires_at, \
                     t.consumed_at, t.revoked_at, f.expires_at, f.revoked_at \
                     FROM refresh_tokens t JOIN refresh_token_families f ON f.id = t.family_id \
                     WHERE t.token_digest = $1",
                )
                .bind(token_digest)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|r| $crate::store::StoredRefreshToken {
                    id: r.0,
                    family_id: r.1,
                    client_id: r.2,
                    user_id: r.3,
                    grant_sealed: r.4,
                    created_at: r.5,
                    expires_at: r.6,
                    consumed_at: r.7,
                    revoked_at: r.8,
                    family_expires_at: r.9,
                    family_revoked: r.10.is_some(),
                }))
            }

            #[tracing::instrument(level = "debug", name = "store.refresh.revoke_family", skip_all)]
            async fn revoke_family(
                &self,
                family_id: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<bool> {
                let mut tx = self.pool.begin().await?;
                let revoked = sqlx::query(
                    "UPDATE refresh_token_families SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(family_id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL")
                    .bind(now)
                    .bind(family_id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE access_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL")
                    .bind(now)
                    .bind(family_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(revoked)
            }

            #[tracing::instrument(level = "debug", name = "store.access_token.revoke", skip_all)]
            async fn revoke_access_token(
                &self,
                jti: &str,
                client: &$crate::domain::ClientId,
                expires_at: chrono::DateTime<chrono::Utc>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<()> {
                sqlx::query(
                    "INSERT INTO access_tokens (jti, code_id, client_id, expires_at, revoked_at, family_id, refresh_token_id) \
                     VALUES ($1, NULL, $2, $3, $4, NULL, NULL) \
                     ON CONFLICT (jti) DO UPDATE SET revoked_at = COALESCE(access_tokens.revoked_at, excluded.revoked_at)",
                )
                .bind(jti)
                .bind(client.as_str())
                .bind(expires_at)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(())
            }
        }
    };
}
pub(super) use impl_refresh_token_repository;

/// PostgreSQL's first round trip of a rotation: the token, if it can be
/// rotated now, and what its successor is decided from, read without a
/// lock (the second round trip decides). Bound: `$1` now, `$2` the
/// token's digest, `$3` the client.
const PG_READ_REFRESH_TOKEN: &str = concat!(
    // The token, unconsumed, unrevoked, unexpired, of this client, in a
    // family alive (RFC 9700 §4.14.2: a revoked family stays revoked).
    // What the successor is decided from (RFC 6749 §10.4: a refresh token
    // outlives nothing it was granted from): the family's user (the
    // family's foreign key keeps them), their consent for this client, and
    // their access rights now, the rights query's columns as arrays (one
    // row however many roles; the aggregate makes a row even for none).
    "SELECT t.id AS token_id, t.family_id, t.grant_sealed, \
       u.id, u.username, u.password_hash, u.password_key_version, u.name, u.email, \
       u.email_verified, u.disabled, u.created_at, k.scope AS consent, \
       ar.scopes AS right_scopes, ar.roles AS right_roles, ar.groups AS right_groups \
     FROM refresh_tokens t \
     JOIN refresh_token_families f ON f.id = t.family_id \
     JOIN users u ON u.id = f.user_id \
     LEFT JOIN consents k ON k.user_id = f.user_id AND k.client_id = $3 \
     CROSS JOIN LATERAL ( \
       SELECT array_agg(rights.scope) AS scopes, array_agg(rights.role) AS roles, \
              array_agg(rights.grp) AS groups \
       FROM (",
    super::roles::user_access_rights_sql!("f.user_id"),
    ") AS rights (scope, role, grp) \
     ) ar \
     WHERE t.token_digest = $2 AND t.client_id = $3 \
       AND t.consumed_at IS NULL AND t.revoked_at IS NULL AND t.expires_at > $1 \
       AND f.revoked_at IS NULL AND f.expires_at > $1"
);

/// PostgreSQL's second and last round trip of a rotation, one
/// autocommitted statement: locks the family, consumes the token read by
/// the first, inserts the successor built from it and records the access
/// token issued with it; every part after the lock runs only if the one
/// before it did. Returns how many access tokens it recorded: 1 when it
/// consumed the token (and inserted the successor), else 0. Bound:
/// `$1` now, `$2` the token read; the successor's columns `$3`–`$11`, the
/// access token's `jti` `$12` and its record's expiry `$13`.
const PG_ROTATE_REFRESH_TOKEN: &str = concat!(
    // Lock order, everywhere: the family row first, then its tokens
    // (revoke_family and every revocation of a user's families do the
    // same), so a rotation and a revocation of one family never deadlock.
    // The lock makes a revocation that committed since the read visible
    // (the row is re-read once the lock is granted: revoked, it drops
    // out and nothing below happens) and one that starts later wait for
    // the successor, then revoke it too. Disabling the user, withdrawing
    // the consent and deleting the user all revoke (or delete) the family
    // under this lock, so a successor is never made for a user who lost
    // the grant before it committed. Also the alive check again.
    "WITH family AS ( \
       SELECT f.id, f.user_id FROM refresh_token_families f \
       WHERE f.id = $6 AND f.revoked_at IS NULL AND f.expires_at > $1 \
       FOR NO KEY UPDATE \
     ), ",
    // The one conditional UPDATE that decides which use wins (RFC 6749
    // §10.4, RFC 9700 §4.14.2: a refresh token is used once). Joined to
    // the locked family, so it runs only once the lock is held; a racing
    // rotation that consumed the token meanwhile has committed by then,
    // and PostgreSQL re-checks `consumed_at IS NULL` on the latest row
    // version: of concurrent callers exactly one gets a row.
    "consumed AS ( \
       UPDATE refresh_tokens t SET consumed_at = $1 FROM family \
       WHERE t.id = $2 AND t.family_id = family.id \
         AND t.consumed_at IS NULL AND t.revoked_at IS NULL AND t.expires_at > $1 \
       RETURNING t.id, t.family_id, t.client_id, family.user_id \
     ), ",
    // The successor, only for a token consumed here.
    "successor AS ( \
       INSERT INTO refresh_tokens (id, token_digest, key_version, family_id, parent_id, client_id, \
                                   grant_sealed, created_at, expires_at, consumed_at, revoked_at) \
       SELECT $3, $4, $5, c.family_id, $7, c.client_id, $9, $10, $11, NULL, NULL \
       FROM consumed c WHERE c.id = $7 AND c.family_id = $6 AND c.client_id = $8 \
       RETURNING id, family_id, client_id \
     ), ",
    // The access token tagged with the family and the refresh token that
    // issued it, so that a reuse revokes it with the family (RFC 9700
    // §4.14.2), and with its user (withdrawing a consent revokes it).
    "issued AS ( \
       INSERT INTO access_tokens (jti, code_id, client_id, user_id, expires_at, revoked_at, family_id, refresh_token_id) \
       SELECT $12, NULL, s.client_id, c.user_id, $13, NULL, s.family_id, s.id \
       FROM successor s JOIN consumed c ON c.family_id = s.family_id \
       RETURNING jti \
     ) \
     SELECT COUNT(*) FROM issued"
);

/// The grace path's successor and the record of the access token issued
/// with it, in one statement, in the caller's transaction. Bound:
/// the refresh token's columns `$1`–`$9`, the access token's `jti` `$10`
/// and its record's expiry `$11`.
const PG_INSERT_SUCCESSOR: &str = concat!(
    // The successor, its row handed on to the access token's record.
    "WITH successor AS ( \
       INSERT INTO refresh_tokens (id, token_digest, key_version, family_id, parent_id, client_id, \
                                   grant_sealed, created_at, expires_at, consumed_at, revoked_at) \
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, NULL) \
       RETURNING id, family_id, client_id \
     ) ",
    // The access token tagged with the family and the refresh token that
    // issued it, so that a reuse revokes it with the family (RFC 9700
    // §4.14.2), and with its user (withdrawing a consent revokes it).
    "INSERT INTO access_tokens (jti, code_id, client_id, user_id, expires_at, revoked_at, family_id, refresh_token_id) \
     SELECT $10, NULL, s.client_id, \
       (SELECT user_id FROM refresh_token_families WHERE id = s.family_id), \
       $11, NULL, s.family_id, s.id \
     FROM successor s"
);

/// The row of `PG_READ_REFRESH_TOKEN`.
#[derive(sqlx::FromRow)]
struct PgRefreshRow {
    token_id: String,
    family_id: String,
    grant_sealed: Vec<u8>,
    #[sqlx(flatten)]
    user: super::rows::UserConsentRow,
    right_scopes: Option<Vec<Option<String>>>,
    right_roles: Option<Vec<Option<String>>>,
    right_groups: Option<Vec<Option<String>>>,
}

impl super::postgres::PgStore {
    /// A rotation in two round trips and no transaction held open across
    /// them: the token and its user read (`PG_READ_REFRESH_TOKEN`), the
    /// successor built from them, then one statement that locks, consumes,
    /// inserts and records (`PG_ROTATE_REFRESH_TOKEN`). `None` when
    /// nothing was consumed (an unknown or spent token, or a race lost to
    /// another use or a revocation); `build`'s refusal consumes nothing.
    pub(super) async fn rotate(
        &self,
        token_digest: &[u8],
        client: &ClientId,
        now: DateTime<Utc>,
        build: BuildSuccessor<'_>,
    ) -> Result<Option<Successor>> {
        let row: Option<PgRefreshRow> = sqlx::query_as(PG_READ_REFRESH_TOKEN)
            .bind(now)
            .bind(token_digest)
            .bind(client.as_str())
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let rights = super::roles::rights_from_columns(
            row.right_scopes.unwrap_or_default(),
            row.right_roles.unwrap_or_default(),
            row.right_groups.unwrap_or_default(),
        )?;
        let read = ConsumedRefresh {
            id: row.token_id,
            family_id: row.family_id,
            grant_sealed: row.grant_sealed,
            user: FamilyUser {
                account: row.user.user.try_into()?,
                consent: row.user.consent,
                rights,
            },
        };
        let successor = build(&read)?;
        let token = &successor.token;
        // The successor must continue the token read (the statement checks
        // it again: a mismatch inserts nothing).
        if token.parent_id.as_deref() != Some(read.id.as_str()) || token.family_id != read.family_id
        {
            return Err(super::Error::Corrupt {
                entity: "refresh token",
                id: read.id,
                problem: "its grant names another family".into(),
            });
        }
        let (rotated,): (i64,) = sqlx::query_as(PG_ROTATE_REFRESH_TOKEN)
            .bind(now)
            .bind(&read.id)
            .bind(&token.id)
            .bind(&token.token_digest)
            .bind(token.key_version as i32)
            .bind(&token.family_id)
            .bind(&token.parent_id)
            .bind(token.client_id.as_str())
            .bind(&token.grant_sealed)
            .bind(token.created_at)
            .bind(token.expires_at)
            .bind(&successor.jti)
            .bind(successor.access_expires_at)
            .fetch_one(&self.pool)
            .await?;
        Ok((rotated == 1).then_some(successor))
    }

    /// Inserts a successor and its access-token record in one round trip
    /// (the grace path's: `replace_unused_successor`). The caller holds
    /// the family's lock, so a concurrent revocation waits for this
    /// transaction and then revokes these rows too.
    pub(super) async fn insert_successor(
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        successor: &Successor,
    ) -> Result<()> {
        let token = &successor.token;
        sqlx::query(PG_INSERT_SUCCESSOR)
            .bind(&token.id)
            .bind(&token.token_digest)
            .bind(token.key_version as i32)
            .bind(&token.family_id)
            .bind(&token.parent_id)
            .bind(token.client_id.as_str())
            .bind(&token.grant_sealed)
            .bind(token.created_at)
            .bind(token.expires_at)
            .bind(&successor.jti)
            .bind(successor.access_expires_at)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

impl super::sqlite::SqliteStore {
    /// A rotation in one transaction, statement by statement: consume,
    /// build, insert (SQLite has no data-modifying CTE, and runs in
    /// process, so round trips cost little).
    pub(super) async fn rotate(
        &self,
        token_digest: &[u8],
        client: &ClientId,
        now: DateTime<Utc>,
        build: BuildSuccessor<'_>,
    ) -> Result<Option<Successor>> {
        let mut tx = self.pool.begin().await?;
        let Some(consumed) =
            Self::consume_refresh_token(&mut tx, token_digest, client, now).await?
        else {
            return Ok(None);
        };
        let successor = build(&consumed)?;
        Self::insert_successor(&mut tx, &successor).await?;
        tx.commit().await?;
        Ok(Some(successor))
    }

    /// Consumes the token and reads the family's user, statement by
    /// statement: SQLite has no data-modifying CTE, and runs in process.
    /// `None` when nothing was consumed.
    pub(super) async fn consume_refresh_token(
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        token_digest: &[u8],
        client: &ClientId,
        now: DateTime<Utc>,
    ) -> Result<Option<ConsumedRefresh>> {
        // Lock order, everywhere: the family row first, then its tokens
        // (revoke_family does the same). In SQLite this no-op update takes
        // the database's write lock at once (rotations and revocations run
        // one at a time, and a transaction that read first could not
        // upgrade) and checks the family is alive.
        let family_user: Option<(String,)> = sqlx::query_as(
            "UPDATE refresh_token_families SET revoked_at = revoked_at \
             WHERE id = (SELECT family_id FROM refresh_tokens WHERE token_digest = $1 AND client_id = $2) \
             AND revoked_at IS NULL AND expires_at > $3 RETURNING user_id",
        )
        .bind(token_digest)
        .bind(client.as_str())
        .bind(now)
        .fetch_optional(&mut **tx)
        .await?;
        let Some((user_id,)) = family_user else {
            return Ok(None);
        };
        // The single statement that decides which use wins.
        let consumed: Option<(String, String, Vec<u8>)> = sqlx::query_as(
            "UPDATE refresh_tokens SET consumed_at = $1 \
             WHERE token_digest = $2 AND client_id = $3 AND consumed_at IS NULL \
             AND revoked_at IS NULL AND expires_at > $1 \
             AND EXISTS (SELECT 1 FROM refresh_token_families f WHERE f.id = refresh_tokens.family_id \
                         AND f.revoked_at IS NULL AND f.expires_at > $1) \
             RETURNING id, family_id, grant_sealed",
        )
        .bind(now)
        .bind(token_digest)
        .bind(client.as_str())
        .fetch_optional(&mut **tx)
        .await?;
        let Some((id, family_id, grant_sealed)) = consumed else {
            return Ok(None);
        };
        let user = Self::family_user_in(tx, &user_id, client.as_str()).await?;
        Ok(Some(ConsumedRefresh {
            id,
            family_id,
            grant_sealed,
            user,
        }))
    }

    /// Inserts a successor and its access-token record: the rows of
    /// `PG_INSERT_SUCCESSOR`, a statement each. The caller holds the write
    /// lock.
    pub(super) async fn insert_successor(
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        successor: &Successor,
    ) -> Result<()> {
        let token = &successor.token;
        sqlx::query(
            "INSERT INTO refresh_tokens (id, token_digest, key_version, family_id, parent_id, client_id, grant_sealed, created_at, expires_at, consumed_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, NULL)",
        )
        .bind(&token.id)
        .bind(&token.token_digest)
        .bind(token.key_version as i32)
        .bind(&token.family_id)
        .bind(&token.parent_id)
        .bind(token.client_id.as_str())
        .bind(&token.grant_sealed)
        .bind(token.created_at)
        .bind(token.expires_at)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO access_tokens (jti, code_id, client_id, user_id, expires_at, revoked_at, family_id, refresh_token_id) \
             VALUES ($1, NULL, $2, (SELECT user_id FROM refresh_token_families WHERE id = $4), $3, NULL, $4, $5)",
        )
        .bind(&successor.jti)
        .bind(token.client_id.as_str())
        .bind(successor.access_expires_at)
        .bind(&token.family_id)
        .bind(&token.id)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}
