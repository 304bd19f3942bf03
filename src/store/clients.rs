//! Registered clients: `ClientRepository`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::Result;
use crate::domain::{Client, ClientId, SecretDigest};

#[async_trait]
pub trait ClientRepository {
    async fn insert_client(&self, client: &Client) -> Result<()>;
    async fn find_client(&self, id: &ClientId) -> Result<Option<Client>>;
    async fn list_clients(&self) -> Result<Vec<Client>>;
    /// At most `limit` clients after `after` (`created_at`, id) in that
    /// order: a page of a list that new clients only extend.
    async fn list_clients_page(
        &self,
        after: Option<(DateTime<Utc>, &ClientId)>,
        limit: u32,
    ) -> Result<Vec<Client>>;
    /// Replaces the client's registered values (not its id, kind, secret
    /// or creation time) if its `updated_at` is still `expected`: `false`
    /// when it changed meanwhile or is gone.
    async fn update_client(&self, client: &Client, expected: DateTime<Utc>) -> Result<bool>;
    /// Deletes the client and, in the same transaction, everything it
    /// holds: codes, refresh-token families, consents, pending requests;
    /// its recorded access tokens are revoked. Returns whether a client
    /// was deleted.
    /// With `expected`, only while its `updated_at` is that.
    async fn delete_client(
        &self,
        id: &ClientId,
        now: DateTime<Utc>,
        expected: Option<DateTime<Utc>>,
    ) -> Result<bool>;
    /// Returns whether the client exists and is confidential (and, with
    /// `expected`, still at that `updated_at`).
    async fn replace_client_secret(
        &self,
        id: &ClientId,
        secret: &SecretDigest,
        now: DateTime<Utc>,
        expected: Option<DateTime<Utc>>,
    ) -> Result<bool>;
    /// Records that an openly registered client redeemed a code (once:
    /// later calls change nothing).
    async fn mark_client_used(&self, id: &ClientId, now: DateTime<Utc>) -> Result<()>;
    /// Deletes at most `limit` openly registered clients created before
    /// `created_before` that never redeemed a code (with what they hold,
    /// as `delete_client`); returns their ids.
    async fn delete_unused_open_clients(
        &self,
        created_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClientId>>;
}

/// Clients, stamped onto each backend's store.
macro_rules! impl_client_repository {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::ClientRepository for $store {
            #[tracing::instrument(level = "debug", name = "store.client.insert", skip_all, fields(client_id = %client.id))]
            async fn insert_client(&self, client: &$crate::domain::Client) -> $crate::store::Result<()> {
                let row = $crate::store::rows::ClientRow::from_client(client);
                let mut tx = self.pool.begin().await?;
                let sql = "INSERT INTO clients (id, name, kind, secret_digest, secret_key_version, redirect_uris, grant_types, scope, audiences, post_logout_redirect_uris, skip_consent, can_introspect, rate_tier, allowed_origins, registered_via, registration_metadata, registration_token_digest, registration_token_key_version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)";
                let inserted = sqlx::query(sql)
                    .bind(&row.id)
                    .bind(&row.name)
                    .bind(&row.kind)
                    .bind(&row.secret_digest)
                    .bind(row.secret_key_version)
                    .bind(&row.redirect_uris)
                    .bind(&row.grant_types)
                    .bind(&row.scope)
                    .bind(&row.audiences)
                    .bind(&row.post_logout_redirect_uris)
                    .bind(row.skip_consent)
                    .bind(row.can_introspect)
                    .bind(&row.rate_tier)
                    .bind(&row.allowed_origins)
                    .bind(&row.registered_via)
                    .bind(&row.registration_metadata)
                    .bind(&row.registration_token_digest)
                    .bind(row.registration_token_key_version)
                    .bind(row.created_at)
                    .bind(row.updated_at)
                    .execute(&mut *tx)
                    .await;
                if let Err(sqlx::Error::Database(e)) = &inserted {
                    if e.is_unique_violation() {
                        return Err($crate::store::Error::Conflict("client"));
                    }
                }
                inserted?;
                sqlx::query($crate::store::BUMP_EPOCH)
                    .bind("clients")
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            #[tracing::instrument(level = "debug", name = "store.client.find", skip_all, fields(client_id = %id))]
            async fn find_client(
                &self,
                id: &$crate::domain::ClientId,
            ) -> $crate::store::Result<Option<$crate::domain::Client>> {
                let sql = "SELECT id, name, kind, secret_digest, secret_key_version, redirect_uris, grant_types, scope, audiences, post_logout_redirect_uris, skip_consent, can_introspect, rate_tier, allowed_origins, registered_via, registration_metadata, registration_token_digest, registration_token_key_version, created_at, updated_at FROM clients WHERE id = $1";
                sqlx::query_as::<_, $crate::store::rows::ClientRow>(sql)
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .map(TryInto::try_into)
                    .transpose()
            }

            #[tracing::instrument(level = "debug", name = "store.client.list", skip_all)]
            async fn list_clients(&self) -> $crate::store::Result<Vec<$crate::domain::Client>> {
                let sql = "SELECT id, name, kind, secret_digest, secret_key_version, redirect_uris, grant_types, scope, audiences, post_logout_redirect_uris, skip_consent, can_introspect, rate_tier, allowed_origins, registered_via, registration_metadata, registration_token_digest, registration_token_key_version, created_at, updated_at FROM clients ORDER BY created_at, id";
                sqlx::query_as::<_, $crate::store::rows::ClientRow>(sql)
                    .fetch_all(&self.pool)
                    .await?
                    .into_iter()
                    .map(TryInto::try_into)
                    .collect()
            }

            #[tracing::instrument(level = "debug", name = "store.client.list_page", skip_all)]
            async fn list_clients_page(
                &self,
                after: Option<(chrono::DateTime<chrono::Utc>, &$crate::domain::ClientId)>,
                limit: u32,
            ) -> $crate::store::Result<Vec<$crate::domain::Client>> {
                let rows = match after {
                    None => {
                        sqlx::query_as::<_, $crate::store::rows::ClientRow>(
                            "SELECT id, name, kind, secret_digest, secret_key_version, redirect_uris, grant_types, scope, audiences, post_logout_redirect_uris, skip_consent, can_introspect, rate_tier, allowed_origins, registered_via, registration_metadata, registration_token_digest, registration_token_key_version, created_at, updated_at FROM clients \
                             ORDER BY created_at, id LIMIT $1",
                        )
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await?
                    }
                    Some((created_at, id)) => {
                        sqlx::query_as::<_, $crate::store::rows::ClientRow>(
                            "SELECT id, name, kind, secret_digest, secret_key_version, redirect_uris, grant_types, scope, audiences, post_logout_redirect_uris, skip_consent, can_introspect, rate_tier, allowed_origins, registered_via, registration_metadata, registration_token_digest, registration_token_key_version, created_at, updated_at FROM clients \
                             WHERE created_at > $1 OR (created_at = $1 AND id > $2) ORDER BY created_at, id LIMIT $3",
                        )
                        .bind(created_at)
                        .bind(id.as_str())
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await?
                    }
                };
                rows.into_iter().map(TryInto::try_into).collect()
            }

            #[tracing::instrument(level = "debug", name = "store.client.update", skip_all, fields(client_id = %client.id))]
            async fn update_client(
                &self,
                client: &$crate::domain::Client,
                expected: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<bool> {
                let row = $crate::store::rows::ClientRow::from_client(client);
                let mut tx = self.pool.begin().await?;
                let updated = sqlx::query(
                    "UPDATE clients SET name = $1, redirect_uris = $2, grant_types = $3, scope = $4, \
                     audiences = $5, post_logout_redirect_uris = $6, skip_consent = $7, can_introspect = $8, \
                     rate_tier = $9, allowed_origins = $10, updated_at = $11, \
                     registration_metadata = $12, registration_token_digest = $13, \
                     registration_token_key_version = $14 \
                     WHERE id = $15 AND updated_at = $16",
                )
                .bind(&row.name)
                .bind(&row.redirect_uris)
                .bind(&row.grant_types)
                .bind(&row.scope)
                .bind(&row.audiences)
                .bind(&row.post_logout_redirect_uris)
                .bind(row.skip_consent)
                .bind(row.can_introspect)
                .bind(&row.rate_tier)
                .bind(&row.allowed_origins)
                .bind(row.updated_at)
                .bind(&row.registration_metadata)
                .bind(&row.registration_token_digest)
                .bind(row.registration_token_key_version)
                .bind(&row.id)
                .bind(expected)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                sqlx::query($crate::store::BUMP_EPOCH)
                    .bind("clients")
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(updated == 1)
            }

            #[tracing::instrument(level = "debug", name = "store.client.delete", skip_all, fields(client_id = %id))]
            async fn delete_client(
                &self,
                id: &$crate::domain::ClientId,
                now: chrono::DateTime<chrono::Utc>,
                expected: Option<chrono::DateTime<chrono::Utc>>,
            ) -> $crate::store::Result<bool> {
                let mut tx = self.pool.begin().await?;
                // Codes, refresh-token families (and their tokens), consents
                // and pending requests go with the client (ON DELETE
                // CASCADE); the recorded access tokens are revoked. The
                // DELETE comes first: it waits for a code redemption in
                // flight, whose access token the UPDATE then sees.
                let deleted = match expected {
                    None => sqlx::query("DELETE FROM clients WHERE id = $1").bind(id.as_str()),
                    Some(expected) => sqlx::query("DELETE FROM clients WHERE id = $1 AND updated_at = $2")
                        .bind(id.as_str())
                        .bind(expected),
                }
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if deleted == 0 {
                    return Ok(false);
                }
                sqlx::query(
                    "UPDATE access_tokens SET revoked_at = $1 WHERE client_id = $2 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
                sqlx::query($crate::store::BUMP_EPOCH)
                    .bind("clients")
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(deleted == 1)
            }

            #[tracing::instrument(level = "debug", name = "store.client.replace_secret", skip_all, fields(client_id = %id))]
            async fn replace_client_secret(
                &self,
                id: &$crate::domain::ClientId,
                secret: &$crate::domain::SecretDigest,
                now: chrono::DateTime<chrono::Utc>,
                expected: Option<chrono::DateTime<chrono::Utc>>,
            ) -> $crate::store::Result<bool> {
                let mut tx = self.pool.begin().await?;
                let updated = sqlx::query(
                    "UPDATE clients SET secret_digest = $1, secret_key_version = $2, updated_at = $3 \
                     WHERE id = $4 AND kind = 'confidential' AND ($5 IS NULL OR updated_at = $5)",
                )
                .bind(&secret.digest)
                .bind(secret.key_version as i32)
                .bind(now)
                .bind(id.as_str())
                .bind(expected)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                sqlx::query($crate::store::BUMP_EPOCH)
                    .bind("clients")
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(updated == 1)
            }

            #[tracing::instrument(level = "debug", name = "store.client.mark_used", skip_all, fields(client_id = %id))]
            async fn mark_client_used(
                &self,
                id: &$crate::domain::ClientId,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<()> {
                // Not a registration change: no cache epoch bump.
                sqlx::query("UPDATE clients SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
                    .bind(now)
                    .bind(id.as_str())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            #[tracing::instrument(level = "debug", name = "store.client.delete_unused_open", skip_all)]
            async fn delete_unused_open_clients(
                &self,
                created_before: chrono::DateTime<chrono::Utc>,
                limit: u32,
            ) -> $crate::store::Result<Vec<$crate::domain::ClientId>> {
                let mut tx = self.pool.begin().await?;
                // `used_at IS NULL` again in the DELETE: a client whose
                // first use was recorded meanwhile stays. `used_at` is
                // written after the tokens are issued, so a client is also
                // kept while any access token of its is on record: a code
                // redemption records its token's `jti` in the transaction
                // that redeems the code (and such records outlive the
                // tokens). Never used, it holds no tokens to revoke; its
                // codes, consents and pending requests go with it (ON
                // DELETE CASCADE).
                let deleted: Vec<(String,)> = sqlx::query_as(
                    "DELETE FROM clients WHERE id IN (SELECT id FROM clients AS candidate \
                       WHERE registered_via = 'open' AND used_at IS NULL AND created_at < $1 \
                       AND NOT EXISTS (SELECT 1 FROM access_tokens WHERE access_tokens.client_id = candidate.id) \
                       LIMIT $2) \
                     AND used_at IS NULL \
                     AND NOT EXISTS (SELECT 1 FROM access_tokens WHERE access_tokens.client_id = clients.id) \
                     RETURNING id",
                )
                .bind(created_before)
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
                if !deleted.is_empty() {
                    sqlx::query($crate::store::BUMP_EPOCH)
                        .bind("clients")
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                deleted
                    .into_iter()
                    .map(|(id,)| {
                        $crate::domain::ClientId::parse(&id)
                            .ok_or_else(|| $crate::store::rows::corrupt("client", &id, "id"))
                    })
                    .collect()
            }
        }
    };
}
pub(super) use impl_client_repository;
