//! The admin API's `Idempotency-Key` records: `IdempotencyRepository`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::Result;

/// A key's record, as another request with the same key finds it.
#[derive(Debug, Clone)]
pub struct IdempotencyRecord {
    pub request_digest: Vec<u8>,
    /// 0 while the first request runs.
    pub status: u16,
    pub response_sealed: Option<Vec<u8>>,
}

/// What claiming a key found.
#[derive(Debug, Clone)]
pub enum IdempotencyClaim {
    /// The key is this request's: it runs, making its resource with
    /// `resource_id` (the one the first request chose, when this takes over
    /// a request that stopped without an answer).
    Claimed {
        resource_id: String,
        took_over: bool,
    },
    /// Another request holds (or held) the key.
    Taken(IdempotencyRecord),
    /// The key was given up while this looked: try again.
    Retry,
}

#[async_trait]
pub trait IdempotencyRepository {
    /// Claims `id` with `claim` for a request with `request_digest`: a new
    /// key (its resource gets `resource_id`), an expired one, or one whose
    /// first request (the same) started before `stale_before` and never
    /// finished (its resource id is kept).
    #[allow(clippy::too_many_arguments)]
    async fn claim_idempotency_key(
        &self,
        id: &str,
        request_digest: &[u8],
        claim: &str,
        resource_id: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> Result<IdempotencyClaim>;
    /// Records the answer, if `claim` still holds `id`.
    async fn finish_idempotency_key(
        &self,
        id: &str,
        claim: &str,
        status: u16,
        sealed: &[u8],
    ) -> Result<()>;
    /// Gives `id` up, if `claim` still holds it unfinished (the request
    /// failed: a retry runs again).
    async fn release_idempotency_key(&self, id: &str, claim: &str) -> Result<()>;
}

macro_rules! impl_idempotency_repository {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::IdempotencyRepository for $store {
            #[tracing::instrument(level = "debug", name = "store.idempotency.claim", skip_all)]
            async fn claim_idempotency_key(
                &self,
                id: &str,
                request_digest: &[u8],
                claim: &str,
                resource_id: &str,
                now: chrono::DateTime<chrono::Utc>,
                expires_at: chrono::DateTime<chrono::Utc>,
                stale_before: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<$crate::store::IdempotencyClaim> {
                let inserted = sqlx::query(
                    "INSERT INTO admin_idempotency (id, request_digest, status, response_sealed, claim, resource_id, created_at, expires_at) \
                     VALUES ($1, $2, 0, NULL, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
                )
                .bind(id)
                .bind(request_digest)
                .bind(claim)
                .bind(resource_id)
                .bind(now)
                .bind(expires_at)
                .execute(&self.pool)
                .await?
                .rows_affected();
                if inserted == 1 {
                    return Ok($crate::store::IdempotencyClaim::Claimed {
                        resource_id: resource_id.to_owned(),
                        took_over: false,
                    });
                }
                // An expired record is free again (a new request, a new
                // resource id). The same request whose first run started long
                // ago and never finished (its process stopped) runs again
                // with the resource id that run chose: if that run made its
                // resource, this one collides instead of making a second.
                let taken_over: Option<(String, bool)> = sqlx::query_as(
                    "UPDATE admin_idempotency SET \
                       resource_id = CASE WHEN expires_at <= $5 THEN $4 ELSE resource_id END, \
                       request_digest = $2, status = 0, response_sealed = NULL, claim = $3, \
                       created_at = $5, expires_at = $6 \
                     WHERE id = $1 AND (expires_at <= $5 OR (status = 0 AND created_at < $7 AND request_digest = $2)) \
                     RETURNING resource_id, resource_id <> $4",
                )
                .bind(id)
                .bind(request_digest)
                .bind(claim)
                .bind(resource_id)
                .bind(now)
                .bind(expires_at)
                .bind(stale_before)
                .fetch_optional(&self.pool)
                .await?;
                if let Some((resource_id, took_over)) = taken_over {
                    return Ok($crate::store::IdempotencyClaim::Claimed {
                        resource_id,
                        took_over,
                    });
                }
                let row: Option<(Vec<u8>, i32, Option<Vec<u8>>)> = sqlx::query_as(
                    "SELECT request_digest, status, response_sealed FROM admin_idempotency WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                match row {
                    Some((request_digest, status, response_sealed)) => {
                        Ok($crate::store::IdempotencyClaim::Taken($crate::store::IdempotencyRecord {
                            request_digest,
                            status: u16::try_from(status).unwrap_or(0),
                            response_sealed,
                        }))
                    }
                    // Given up between the statements.
                    None => Ok($crate::store::IdempotencyClaim::Retry),
                }
            }

            #[tracing::instrument(level = "debug", name = "store.idempotency.finish", skip_all)]
            async fn finish_idempotency_key(
                &self,
                id: &str,
                claim: &str,
                status: u16,
                sealed: &[u8],
            ) -> $crate::store::Result<()> {
                sqlx::query("UPDATE admin_idempotency SET status = $3, response_sealed = $4 WHERE id = $1 AND claim = $2")
                    .bind(id)
                    .bind(claim)
                    .bind(i32::from(status))
                    .bind(sealed)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            #[tracing::instrument(level = "debug", name = "store.idempotency.release", skip_all)]
            async fn release_idempotency_key(&self, id: &str, claim: &str) -> $crate::store::Result<()> {
                sqlx::query("DELETE FROM admin_idempotency WHERE id = $1 AND claim = $2 AND status = 0")
                    .bind(id)
                    .bind(claim)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
        }
    };
}
pub(super) use impl_idempotency_repository;
