//! Initial access tokens for dynamic client registration (RFC 7591 §3):
//! `RegistrationTokenRepository`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::Result;

/// A registration token as stored: its keyed digest, never the token.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RegistrationTokenRecord {
    pub id: String,
    pub digest: Vec<u8>,
    pub key_version: i32,
    /// Space-separated scopes a client registered with it may hold;
    /// `None`: any.
    pub scope: Option<String>,
    pub max_uses: Option<i32>,
    pub uses: i32,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait RegistrationTokenRepository {
    async fn insert_registration_token(&self, token: &RegistrationTokenRecord) -> Result<()>;
    async fn find_registration_token(
        &self,
        digest: &[u8],
    ) -> Result<Option<RegistrationTokenRecord>>;
    /// Counts one use of token `id` if it is unexpired at `now` and not
    /// used up: `false` otherwise (of concurrent last uses, one wins).
    async fn use_registration_token(&self, id: &str, now: DateTime<Utc>) -> Result<bool>;
    /// Oldest first.
    async fn list_registration_tokens(&self) -> Result<Vec<RegistrationTokenRecord>>;
    async fn delete_registration_token(&self, id: &str) -> Result<bool>;
}

macro_rules! impl_registration_token_repository {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::RegistrationTokenRepository for $store {
            #[tracing::instrument(level = "debug", name = "store.registration_token.insert", skip_all)]
            async fn insert_registration_token(
                &self,
                token: &$crate::store::RegistrationTokenRecord,
            ) -> $crate::store::Result<()> {
                sqlx::query(
                    "INSERT INTO registration_tokens (id, digest, key_version, scope, max_uses, uses, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&token.id)
                .bind(&token.digest)
                .bind(token.key_version)
                .bind(&token.scope)
                .bind(token.max_uses)
                .bind(token.uses)
                .bind(token.created_at)
                .bind(token.expires_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            #[tracing::instrument(level = "debug", name = "store.registration_token.find", skip_all)]
            async fn find_registration_token(
                &self,
                digest: &[u8],
            ) -> $crate::store::Result<Option<$crate::store::RegistrationTokenRecord>> {
                Ok(sqlx::query_as(
                    "SELECT id, digest, key_version, scope, max_uses, uses, created_at, expires_at \
                     FROM registration_tokens WHERE digest = $1",
                )
                .bind(digest)
                .fetch_optional(&self.pool)
                .await?)
            }

            #[tracing::instrument(level = "debug", name = "store.registration_token.use", skip_all)]
            async fn use_registration_token(
                &self,
                id: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<bool> {
                let used = sqlx::query(
                    "UPDATE registration_tokens SET uses = uses + 1 \
                     WHERE id = $1 AND (expires_at IS NULL OR expires_at > $2) \
                     AND (max_uses IS NULL OR uses < max_uses)",
                )
                .bind(id)
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(used == 1)
            }

            #[tracing::instrument(level = "debug", name = "store.registration_token.list", skip_all)]
            async fn list_registration_tokens(
                &self,
            ) -> $crate::store::Result<Vec<$crate::store::RegistrationTokenRecord>> {
                Ok(sqlx::query_as(
                    "SELECT id, digest, key_version, scope, max_uses, uses, created_at, expires_at \
                     FROM registration_tokens ORDER BY created_at, id",
                )
                .fetch_all(&self.pool)
                .await?)
            }

            #[tracing::instrument(level = "debug", name = "store.registration_token.delete", skip_all)]
            async fn delete_registration_token(&self, id: &str) -> $crate::store::Result<bool> {
                let deleted = sqlx::query("DELETE FROM registration_tokens WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(deleted == 1)
            }
        }
    };
}
pub(super) use impl_registration_token_repository;
