//! Authorization codes and the access tokens recorded for revocation: `CodeRepository`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::Result;
use crate::domain::{ClientId, UserId};

/// A new authorization code: its digest and the sealed grant.
#[derive(Debug, Clone)]
pub struct CodeRecord {
    pub id: String,
    pub code_digest: Vec<u8>,
    pub key_version: u32,
    pub client_id: ClientId,
    /// The user it signs in (also inside the sealed grant): the access
    /// token recorded at redemption names it, so a withdrawn consent or a
    /// password reset can revoke it.
    pub user_id: UserId,
    pub grant_sealed: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What winning a code redemption yields.
#[derive(Debug, Clone)]
pub struct RedeemedCode {
    pub id: String,
    pub grant_sealed: Vec<u8>,
}

/// An access token issued for a user, as recorded for revocation.
#[derive(Debug, Clone)]
pub struct AccessTokenRecord {
    pub jti: String,
    pub client_id: String,
    pub expires_at: DateTime<Utc>,
    pub revoked: bool,
}

#[async_trait]
pub trait CodeRepository {
    async fn insert_code(&self, record: &CodeRecord) -> Result<()>;
    /// One atomic statement marks the code redeemed if it is unredeemed,
    /// unexpired and belongs to `client`; in the same transaction the access
    /// token `jti` about to be issued from it is recorded. Of concurrent
    /// callers exactly one gets `Some`.
    async fn redeem_code(
        &self,
        code_digest: &[u8],
        client: &ClientId,
        now: DateTime<Utc>,
        jti: &str,
        token_expires_at: DateTime<Utc>,
    ) -> Result<Option<RedeemedCode>>;
    /// RFC 6749 §4.1.2: a code presented again. Revokes every access token
    /// issued from it and every refresh-token family started from it;
    /// returns whether the code had been redeemed.
    async fn revoke_replayed_code(
        &self,
        code_digest: &[u8],
        client: &ClientId,
        now: DateTime<Utc>,
    ) -> Result<bool>;
    async fn find_access_token(&self, jti: &str) -> Result<Option<AccessTokenRecord>>;
}

/// Codes and access-token records, stamped onto each backend's store.
macro_rules! impl_code_repository {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::CodeRepository for $store {
            #[tracing::instrument(level = "debug", name = "store.code.insert", skip_all, fields(client_id = %record.client_id))]
            async fn insert_code(&self, record: &$crate::store::CodeRecord) -> $crate::store::Result<()> {
                sqlx::query(
                    "INSERT INTO authorization_codes (id, code_digest, key_version, client_id, user_id, grant_sealed, created_at, expires_at, redeemed_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL)",
                )
                .bind(&record.id)
                .bind(&record.code_digest)
                .bind(record.key_version as i32)
                .bind(record.client_id.as_str())
                .bind(record.user_id.to_string())
                .bind(&record.grant_sealed)
                .bind(record.created_at)
                .bind(record.expires_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            #[tracing::instrument(level = "debug", name = "store.code.redeem", skip_all, fields(client_id = %client))]
            async fn redeem_code(
                &self,
                code_digest: &[u8],
                client: &$crate::domain::ClientId,
                now: chrono::DateTime<chrono::Utc>,
                jti: &str,
                token_expires_at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<Option<$crate::store::RedeemedCode>> {
                let mut tx = self.pool.begin().await?;
                // The single statement that decides who wins (DESIGN: single use).
                let won: Option<(String, Vec<u8>, Option<String>)> = sqlx::query_as(
                    "UPDATE authorization_codes SET redeemed_at = $1 \
                     WHERE code_digest = $2 AND client_id = $3 AND redeemed_at IS NULL AND expires_at > $1 \
                     RETURNING id, grant_sealed, user_id",
                )
                .bind(now)
                .bind(code_digest)
                .bind(client.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                let Some((id, grant_sealed, user_id)) = won else {
                    return Ok(None);
                };
                sqlx::query(
                    "INSERT INTO access_tokens (jti, code_id, client_id, user_id, expires_at, revoked_at) \
                     VALUES ($1, $2, $3, $4, $5, NULL)",
                )
                .bind(jti)
                .bind(&id)
                .bind(client.as_str())
                .bind(user_id)
                .bind(token_expires_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Some($crate::store::RedeemedCode { id, grant_sealed }))
            }

            #[tracing::instrument(level = "debug", name = "store.code.revoke_replayed", skip_all, fields(client_id = %client))]
            async fn revoke_replayed_code(
                &self,
                code_digest: &[u8],
                client: &$crate::domain::ClientId,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<bool> {
                // The access tokens issued with the code, and the refresh
                // families started from it (RFC 6749 §4.1.2: "revoke … all
                // tokens previously issued based on that authorization code").
                // Two steps, so this never holds a token row while waiting
                // for a family's lock (revoke_family takes the family first).
                let issued: Vec<(Option<String>,)> = sqlx::query_as(
                    "UPDATE access_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE code_id IN \
                     (SELECT id FROM authorization_codes WHERE code_digest = $2 AND client_id = $3 AND redeemed_at IS NOT NULL) \
                     RETURNING family_id",
                )
                .bind(now)
                .bind(code_digest)
                .bind(client.as_str())
                .fetch_all(&self.pool)
                .await?;
                let families: std::collections::BTreeSet<String> =
                    issued.iter().filter_map(|(family,)| family.clone()).collect();
                for family in &families {
                    $crate::store::RefreshTokenRepository::revoke_family(self, family, now).await?;
                }
                if !issued.is_empty() {
                    return Ok(true);
                }
                let redeemed: Option<(String,)> = sqlx::query_as(
                    "SELECT id FROM authorization_codes WHERE code_digest = $1 AND client_id = $2 AND redeemed_at IS NOT NULL",
                )
                .bind(code_digest)
                .bind(client.as_str())
                .fetch_optional(&self.pool)
                .await?;
                Ok(redeemed.is_some())
            }

            #[tracing::instrument(level = "debug", name = "store.access_token.find", skip_all)]
            async fn find_access_token(
                &self,
                jti: &str,
            ) -> $crate::store::Result<Option<$crate::store::AccessTokenRecord>> {
                let row: Option<(String, String, chrono::DateTime<chrono::Utc>, Option<chrono::DateTime<chrono::Utc>>)> =
                    sqlx::query_as("SELECT jti, client_id, expires_at, revoked_at FROM access_tokens WHERE jti = $1")
                        .bind(jti)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(row.map(|(jti, client_id, expires_at, revoked_at)| $crate::store::AccessTokenRecord {
                    jti,
                    client_id,
                    expires_at,
                    revoked: revoked_at.is_some(),
                }))
            }
        }
    };
}
pub(super) use impl_code_repository;
