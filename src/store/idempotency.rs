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
    /// The key is this request's: it runs.
    Claimed,
    /// Another request holds (or held) the key.
    Taken(IdempotencyRecord),
}

#[async_trait]
pub trait IdempotencyRepository {
    /// Claims `id` for a request with `request_digest`: a new key, an
    /// expired one, or one whose first request stopped before `stale_before`
    /// without finishing.
    async fn claim_idempotency_key(
        &self,
        id: &str,
        request_digest: &[u8],
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> Result<IdempotencyClaim>;
    /// Records the answer of the request that claimed `id`.
    async fn finish_idempotency_key(&self, id: &str, status: u16, sealed: &[u8]) -> Result<()>;
    /// Gives `id` up (the request failed: a retry runs again).
    async fn release_idempotency_key(&self, id: &str) -> Result<()>;
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
                now: chrono::DateTime<chrono::Utc>,
                expires_at: chrono::DateTime<chrono::Utc>,
                stale_before: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<$crate::store::IdempotencyClaim> {
                let inserted = sqlx::query(
                    "INSERT INTO admin_idempotency (id, request_digest, status, response_sealed, created_at, expires_at) \
                     VALUES ($1, $2, 0, NULL, $3, $4) ON CONFLICT (id) DO NOTHING",
                )
                .bind(id)
                .bind(request_digest)
                .bind(now)
                .bind(expires_at)
                .execute(&self.pool)
                .await?
                .rows_affected();
                if inserted == 1 {
                    return Ok($crate::store::IdempotencyClaim::Claimed);
                }
                // An expired record, or a first request that never finished
                // (its process stopped): the key is free again.
                let taken_over = sqlx::query(
                    "UPDATE admin_idempotency SET request_digest = $2, status = 0, response_sealed = NULL, \
                     created_at = $3, expires_at = $4 \
                     WHERE id = $1 AND (expires_at <= $3 OR (status = 0 AND created_at < $5))",
                )
                .bind(id)
                .bind(request_digest)
                .bind(now)
                .bind(expires_at)
                .bind(stale_before)
                .execute(&self.pool)
                .await?
                .rows_affected();
                if taken_over == 1 {
                    return Ok($crate::store::IdempotencyClaim::Claimed);
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
                    // Released between the two statements: try once more
                    // later (the caller answers 409).
                    None => Ok($crate::store::IdempotencyClaim::Taken($crate::store::IdempotencyRecord {
                        request_digest: Vec::new(),
                        status: 0,
                        response_sealed: None,
                    })),
                }
            }

            #[tracing::instrument(level = "debug", name = "store.idempotency.finish", skip_all)]
            async fn finish_idempotency_key(
                &self,
                id: &str,
                status: u16,
                sealed: &[u8],
            ) -> $crate::store::Result<()> {
                sqlx::query("UPDATE admin_idempotency SET status = $2, response_sealed = $3 WHERE id = $1")
                    .bind(id)
                    .bind(i32::from(status))
                    .bind(sealed)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            #[tracing::instrument(level = "debug", name = "store.idempotency.release", skip_all)]
            async fn release_idempotency_key(&self, id: &str) -> $crate::store::Result<()> {
                sqlx::query("DELETE FROM admin_idempotency WHERE id = $1 AND status = 0")
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
        }
    };
}
pub(super) use impl_idempotency_repository;
