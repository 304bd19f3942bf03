//! Scopes users granted clients: `ConsentRepository` and `ConsentRecord`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::Result;
use crate::domain::{ClientId, UserId};

/// Scopes a user granted a client.
#[derive(Debug, Clone)]
pub struct ConsentRecord {
    pub client_id: ClientId,
    pub scope: String,
    pub granted_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[async_trait]
pub trait ConsentRepository {
    async fn find_consent(&self, user: UserId, client: &ClientId) -> Result<Option<String>>;
    /// Records `scope` (already merged with any earlier grant by the caller).
    async fn save_consent(
        &self,
        user: UserId,
        client: &ClientId,
        scope: &str,
        now: DateTime<Utc>,
    ) -> Result<()>;
    async fn list_consents(&self, user: UserId) -> Result<Vec<ConsentRecord>>;
    /// Removes the consent and, in the same transaction, ends what it
    /// granted: the user's refresh-token families at the client (families
    /// first, the lock order of every family change), their tokens, and the
    /// user's access tokens for the client. Returns whether a consent was
    /// removed.
    async fn revoke_consent(
        &self,
        user: UserId,
        client: &ClientId,
        now: DateTime<Utc>,
    ) -> Result<bool>;
    /// Forgets every user's consent for `client` (users are asked again);
    /// what was granted stays. Returns how many were removed.
    async fn forget_consents_of_client(&self, client: &ClientId) -> Result<u64>;
}

/// Consents, stamped onto each backend's store.
macro_rules! impl_consent_repository {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::ConsentRepository for $store {
            #[tracing::instrument(level = "debug", name = "store.consent.find", skip_all)]
            async fn find_consent(
                &self,
                user: $crate::domain::UserId,
                client: &$crate::domain::ClientId,
            ) -> $crate::store::Result<Option<String>> {
                let row: Option<(String,)> =
                    sqlx::query_as("SELECT scope FROM consents WHERE user_id = $1 AND client_id = $2")
                        .bind(user.to_string())
                        .bind(client.as_str())
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(row.map(|(scope,)| scope))
            }

            #[tracing::instrument(level = "debug", name = "store.consent.save", skip_all)]
            async fn save_consent(
                &self,
                user: $crate::domain::UserId,
                client: &$crate::domain::ClientId,
                scope: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<()> {
                sqlx::query(
                    "INSERT INTO consents (user_id, client_id, scope, granted_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
                     ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, updated_at = excluded.updated_at",
                )
                .bind(user.to_string())
                .bind(client.as_str())
                .bind(scope)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            #[tracing::instrument(level = "debug", name = "store.consent.list", skip_all)]
            async fn list_consents(
                &self,
                user: $crate::domain::UserId,
            ) -> $crate::store::Result<Vec<$crate::store::ConsentRecord>> {
                let rows: Vec<(String, String, chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
                    "SELECT client_id, scope, granted_at, updated_at FROM consents WHERE user_id = $1 ORDER BY granted_at, client_id",
                )
                .bind(user.to_string())
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|(client_id, scope, granted_at, updated_at)| {
                        let client_id = $crate::domain::ClientId::parse(&client_id)
                            .ok_or_else(|| $crate::store::rows::corrupt("consent", &client_id, "client_id"))?;
                        Ok($crate::store::ConsentRecord { client_id, scope, granted_at, updated_at })
                    })
                    .collect()
            }

            #[tracing::instrument(level = "debug", name = "store.consent.revoke", skip_all)]
            async fn revoke_consent(
                &self,
                user: $crate::domain::UserId,
                client: &$crate::domain::ClientId,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<bool> {
                let mut tx = self.pool.begin().await?;
                let deleted = sqlx::query("DELETE FROM consents WHERE user_id = $1 AND client_id = $2")
                    .bind(user.to_string())
                    .bind(client.as_str())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                Self::end_grants_of_user(&mut tx, user, Some(client), now).await?;
                tx.commit().await?;
                Ok(deleted == 1)
            }

            #[tracing::instrument(level = "debug", name = "store.consent.forget_client", skip_all)]
            async fn forget_consents_of_client(
                &self,
                client: &$crate::domain::ClientId,
            ) -> $crate::store::Result<u64> {
                Ok(sqlx::query("DELETE FROM consents WHERE client_id = $1")
                    .bind(client.as_str())
                    .execute(&self.pool)
                    .await?
                    .rows_affected())
            }
        }
    };
}
pub(super) use impl_consent_repository;
