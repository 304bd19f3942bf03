//! APIs (resource servers) and their scopes: `ApiRepository`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::Result;
use crate::domain::Api;

/// What the seed of the API for clients' earlier scopes needs to know.
pub struct LegacyApiSeed<'a> {
    /// The issuer: the `aud` those clients' tokens carried.
    pub identifier: &'a str,
    pub name: &'a str,
    /// Scopes that are not an API's (OpenID Connect's own).
    pub identity_scopes: &'a [&'a str],
    /// The description a scope gets (what the consent page said of it).
    pub describe: fn(&str) -> String,
    pub ttl: u32,
    pub now: DateTime<Utc>,
}

#[async_trait]
pub trait ApiRepository {
    /// `Error::Conflict("api")` when the identifier is taken,
    /// `Error::Conflict("scope")` when another API defines one of its scopes.
    async fn insert_api(&self, api: &Api) -> Result<()>;
    /// Every API with its scopes, by identifier.
    async fn list_apis(&self) -> Result<Vec<Api>>;
    /// Replaces the API's settings and scopes (a scope it no longer defines
    /// leaves every role that held it). Returns whether the API exists;
    /// `Error::Conflict("scope")` as for insert.
    /// Replaces the API if its `updated_at` is still `expected`; `false`
    /// when it changed meanwhile or is gone.
    async fn update_api(&self, api: &Api, expected: DateTime<Utc>) -> Result<bool>;
    /// Deletes the API, its scopes, and those scopes from every role.
    /// Returns whether an API was deleted.
    async fn delete_api(&self, id: uuid::Uuid) -> Result<bool>;
    /// Once per database (the first process to start after the migration
    /// that added APIs): one API named by the issuer, policy `any`, for
    /// every scope clients registered that no API defines (joining the
    /// issuer's API if one exists). Returns what was added, if anything.
    async fn seed_legacy_api(&self, seed: LegacyApiSeed<'_>) -> Result<Option<Api>>;
}

/// APIs, stamped onto each backend's store.
macro_rules! impl_api_repository {
    ($store:ty) => {
        impl $store {
            /// Inserts the API and its scopes in `tx`.
            async fn insert_api_in(
                tx: &mut sqlx::Transaction<'static, <Self as $crate::store::HasDb>::Db>,
                api: &$crate::domain::Api,
            ) -> $crate::store::Result<()> {
                let row = $crate::store::rows::ApiRow::from_api(api);
                let inserted = sqlx::query(
                    "INSERT INTO apis (id, identifier, name, user_access, token_claims, access_token_ttl, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&row.id)
                .bind(&row.identifier)
                .bind(&row.name)
                .bind(&row.user_access)
                .bind(&row.token_claims)
                .bind(row.access_token_ttl)
                .bind(row.created_at)
                .bind(row.updated_at)
                .execute(&mut **tx)
                .await;
                if let Err(sqlx::Error::Database(e)) = &inserted {
                    if e.is_unique_violation() {
                        return Err($crate::store::Error::Conflict("api"));
                    }
                }
                inserted?;
                Self::write_api_scopes(tx, api).await
            }

            /// The API's scopes, written in `tx`: removed ones deleted
            /// (their roles lose them by cascade), new ones inserted,
            /// descriptions updated. `Conflict("scope")` when another API
            /// defines one.
            async fn write_api_scopes(
                tx: &mut sqlx::Transaction<'static, <Self as $crate::store::HasDb>::Db>,
                api: &$crate::domain::Api,
            ) -> $crate::store::Result<()> {
                let id = api.id.to_string();
                let existing: Vec<(String,)> =
                    sqlx::query_as("SELECT scope FROM api_scopes WHERE api_id = $1")
                        .bind(&id)
                        .fetch_all(&mut **tx)
                        .await?;
                for (scope,) in existing {
                    if !api.defines(&scope) {
                        sqlx::query("DELETE FROM api_scopes WHERE scope = $1 AND api_id = $2")
                            .bind(&scope)
                            .bind(&id)
                            .execute(&mut **tx)
                            .await?;
                    }
                }
                for scope in &api.scopes {
                    // The WHERE keeps another API's scope as it is: then
                    // nothing is written, and that is the conflict.
                    let written = sqlx::query(
                        "INSERT INTO api_scopes (scope, api_id, description) VALUES ($1, $2, $3) \
                         ON CONFLICT (scope) DO UPDATE SET description = excluded.description \
                         WHERE api_scopes.api_id = excluded.api_id",
                    )
                    .bind(&scope.name)
                    .bind(&id)
                    .bind(&scope.description)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected();
                    if written == 0 {
                        return Err($crate::store::Error::Conflict("scope"));
                    }
                }
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::ApiRepository for $store {
            #[tracing::instrument(level = "debug", name = "store.api.insert", skip_all, fields(api = %api.identifier))]
            async fn insert_api(&self, api: &$crate::domain::Api) -> $crate::store::Result<()> {
                let mut tx = self.pool.begin().await?;
                Self::insert_api_in(&mut tx, api).await?;
                sqlx::query($crate::store::BUMP_EPOCH)
                    .bind("clients")
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            #[tracing::instrument(level = "debug", name = "store.api.list", skip_all)]
            async fn list_apis(&self) -> $crate::store::Result<Vec<$crate::domain::Api>> {
                let mut tx = self.pool.begin().await?;
                let apis: Vec<$crate::store::rows::ApiRow> = sqlx::query_as(
                    "SELECT id, identifier, name, user_access, token_claims, access_token_ttl, created_at, updated_at \
                     FROM apis ORDER BY identifier",
                )
                .fetch_all(&mut *tx)
                .await?;
                let scopes: Vec<(String, String, String)> = sqlx::query_as(
                    "SELECT api_id, scope, description FROM api_scopes ORDER BY scope",
                )
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                $crate::store::rows::apis_from_rows(apis, scopes)
            }

            #[tracing::instrument(level = "debug", name = "store.api.update", skip_all, fields(api = %api.identifier))]
            async fn update_api(
                &self,
                api: &$crate::domain::Api,
                expected: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<bool> {
                let row = $crate::store::rows::ApiRow::from_api(api);
                let mut tx = self.pool.begin().await?;
                let updated = sqlx::query(
                    "UPDATE apis SET name = $1, user_access = $2, token_claims = $3, access_token_ttl = $4, updated_at = $5 \
                     WHERE id = $6 AND updated_at = $7",
                )
                .bind(&row.name)
                .bind(&row.user_access)
                .bind(&row.token_claims)
                .bind(row.access_token_ttl)
                .bind(row.updated_at)
                .bind(&row.id)
                .bind(expected)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if updated == 0 {
                    return Ok(false);
                }
                Self::write_api_scopes(&mut tx, api).await?;
                sqlx::query($crate::store::BUMP_EPOCH)
                    .bind("clients")
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(true)
            }

            #[tracing::instrument(level = "debug", name = "store.api.delete", skip_all)]
            async fn delete_api(&self, id: uuid::Uuid) -> $crate::store::Result<bool> {
                let mut tx = self.pool.begin().await?;
                let deleted = sqlx::query("DELETE FROM apis WHERE id = $1")
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                sqlx::query($crate::store::BUMP_EPOCH)
                    .bind("clients")
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(deleted == 1)
            }

            #[tracing::instrument(level = "debug", name = "store.api.seed_legacy", skip_all)]
            async fn seed_legacy_api(
                &self,
                seed: $crate::store::LegacyApiSeed<'_>,
            ) -> $crate::store::Result<Option<$crate::domain::Api>> {
                let mut tx = self.pool.begin().await?;
                // The DELETE decides which process seeds: a second one
                // waits for the first to commit, then finds nothing.
                let pending = sqlx::query("DELETE FROM pending_seeds WHERE name = 'legacy_api'")
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if pending == 0 {
                    return Ok(None);
                }
                let scopes: Vec<(String,)> = sqlx::query_as("SELECT scope FROM clients")
                    .fetch_all(&mut *tx)
                    .await?;
                let mut names: std::collections::BTreeSet<String> = scopes
                    .iter()
                    .flat_map(|(scope,)| scope.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
                    .collect();
                names.retain(|name| !seed.identity_scopes.contains(&name.as_str()));
                // Scopes an API defines already (one made by a CLI command
                // before the server's first start) stay where they are.
                let defined: Vec<(String,)> = sqlx::query_as("SELECT scope FROM api_scopes")
                    .fetch_all(&mut *tx)
                    .await?;
                for (scope,) in &defined {
                    names.remove(scope);
                }
                let api = $crate::store::rows::legacy_api(&seed, names)?;
                // An API named by the issuer already: the scopes join it.
                let existing: Option<(String,)> =
                    sqlx::query_as("SELECT id FROM apis WHERE identifier = $1")
                        .bind(seed.identifier)
                        .fetch_optional(&mut *tx)
                        .await?;
                if let (Some(api), Some((id,))) = (&api, &existing) {
                    for scope in &api.scopes {
                        sqlx::query(
                            "INSERT INTO api_scopes (scope, api_id, description) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                        )
                        .bind(&scope.name)
                        .bind(id)
                        .bind(&scope.description)
                        .execute(&mut *tx)
                        .await?;
                    }
                    sqlx::query($crate::store::BUMP_EPOCH)
                        .bind("clients")
                        .execute(&mut *tx)
                        .await?;
                } else if let Some(api) = &api {
                    Self::insert_api_in(&mut tx, api).await?;
                    sqlx::query($crate::store::BUMP_EPOCH)
                        .bind("clients")
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(api)
            }
        }
    };
}
pub(super) use impl_api_repository;
