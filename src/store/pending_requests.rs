//! `/authorize` requests waiting for login or consent: `PendingRequestRepository`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::Result;
use crate::domain::ClientId;

/// An `/authorize` request waiting for login or consent, in a session.
#[derive(Debug, Clone)]
pub struct PendingRequestRecord {
    pub id: String,
    pub session_id: String,
    pub client_id: ClientId,
    /// The validated request, serialised by the layer above.
    pub request: String,
    /// When the user signed in for this request (prompt=login, max_age).
    pub logged_in_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[async_trait]
pub trait PendingRequestRepository {
    /// Inserts `record` unless its id exists (then `false`: a request is
    /// stored once) and, in the same transaction, deletes the oldest
    /// pending requests of its session beyond the newest `keep`.
    async fn insert_pending_request(
        &self,
        record: &PendingRequestRecord,
        keep: u32,
    ) -> Result<bool>;
    /// The unexpired request `id` of session `session_id`'s browser: in
    /// that session, or a sealed request of the anonymous browser this
    /// session came from (a login form posted twice at once makes two
    /// sessions of one browser).
    async fn find_pending_request(
        &self,
        id: &str,
        session_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<PendingRequestRecord>>;
    async fn mark_pending_request_logged_in(&self, id: &str, at: DateTime<Utc>) -> Result<()>;
    /// Removes the request of session `session_id`'s browser (as in
    /// `find_pending_request`); only the caller that gets `true` may finish
    /// it (a form submitted twice yields one code).
    async fn take_pending_request(&self, id: &str, session_id: &str) -> Result<bool>;
    /// Stores an anonymous browser's sealed request at its login, in the
    /// new session `record.session_id`, and records its id
    /// (`sealed_requests`) until it expires. A sealed request stored before
    /// is only moved to the new session, while it is pending and if it was
    /// sealed to the same `anonymous_id` (a login form posted twice, another
    /// tab); once finished or otherwise gone, it is never stored again.
    /// Returns whether the request is now the session's; the cap applies as
    /// on insert, never evicting this request.
    async fn adopt_sealed_request(
        &self,
        record: &PendingRequestRecord,
        anonymous_id: &str,
        keep: u32,
    ) -> Result<bool>;
}

/// Pending requests, and the cap per session.
macro_rules! impl_pending_request_repository {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::PendingRequestRepository for $store {
            #[tracing::instrument(level = "debug", name = "store.pending_request.insert", skip_all)]
            async fn insert_pending_request(
                &self,
                record: &$crate::store::PendingRequestRecord,
                keep: u32,
            ) -> $crate::store::Result<bool> {
                let mut tx = self.pool.begin().await?;
                let inserted = sqlx::query(
                    "INSERT INTO authorization_requests (id, session_id, client_id, request, logged_in_at, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
                )
                .bind(&record.id)
                .bind(&record.session_id)
                .bind(record.client_id.as_str())
                .bind(&record.request)
                .bind(record.logged_in_at)
                .bind(record.created_at)
                .bind(record.expires_at)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if !inserted {
                    return Ok(false);
                }
                Self::keep_newest_pending(&mut tx, &record.session_id, keep, &record.id).await?;
                tx.commit().await?;
                Ok(true)
            }

            #[tracing::instrument(level = "debug", name = "store.pending_request.find", skip_all)]
            async fn find_pending_request(
                &self,
                id: &str,
                session_id: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<Option<$crate::store::PendingRequestRecord>> {
                let row: Option<(String, String, String, String, Option<chrono::DateTime<chrono::Utc>>, chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> =
                    sqlx::query_as(
                        "SELECT id, session_id, client_id, request, logged_in_at, created_at, expires_at \
                         FROM authorization_requests \
                         WHERE id = $1 AND expires_at > $3 AND (session_id = $2 OR id IN \
                         (SELECT id FROM sealed_requests WHERE anonymous_id = \
                          (SELECT anonymous_id FROM browser_sessions WHERE id = $2)))",
                    )
                    .bind(id)
                    .bind(session_id)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|(id, session_id, client_id, request, logged_in_at, created_at, expires_at)| {
                    let client_id = $crate::domain::ClientId::parse(&client_id)
                        .ok_or_else(|| $crate::store::rows::corrupt("authorization request", &id, "client_id"))?;
                    Ok($crate::store::PendingRequestRecord {
                        id,
                        session_id,
                        client_id,
                        request,
                        logged_in_at,
                        created_at,
                        expires_at,
                    })
                })
                .transpose()
            }

            #[tracing::instrument(level = "debug", name = "store.pending_request.logged_in", skip_all)]
            async fn mark_pending_request_logged_in(
                &self,
                id: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<()> {
                sqlx::query("UPDATE authorization_requests SET logged_in_at = $1 WHERE id = $2")
                    .bind(at)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            #[tracing::instrument(level = "debug", name = "store.pending_request.take", skip_all)]
            async fn take_pending_request(&self, id: &str, session_id: &str) -> $crate::store::Result<bool> {
                let taken = sqlx::query(
                    "DELETE FROM authorization_requests WHERE id = $1 AND (session_id = $2 OR id IN \
                     (SELECT id FROM sealed_requests WHERE anonymous_id = \
                      (SELECT anonymous_id FROM browser_sessions WHERE id = $2)))",
                )
                .bind(id)
                .bind(session_id)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(taken == 1)
            }

            #[tracing::instrument(level = "debug", name = "store.pending_request.adopt_sealed", skip_all)]
            async fn adopt_sealed_request(
                &self,
                record: &$crate::store::PendingRequestRecord,
                anonymous_id: &str,
                keep: u32,
            ) -> $crate::store::Result<bool> {
                let mut tx = self.pool.begin().await?;
                // The first login with this sealed request records it (a
                // concurrent one waits here for the first to commit).
                let first = sqlx::query(
                    "INSERT INTO sealed_requests (id, anonymous_id, expires_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(&record.id)
                .bind(anonymous_id)
                .bind(record.expires_at)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                let stored = if first {
                    sqlx::query(
                        "INSERT INTO authorization_requests (id, session_id, client_id, request, logged_in_at, created_at, expires_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(&record.id)
                    .bind(&record.session_id)
                    .bind(record.client_id.as_str())
                    .bind(&record.request)
                    .bind(record.logged_in_at)
                    .bind(record.created_at)
                    .bind(record.expires_at)
                    .execute(&mut *tx)
                    .await?;
                    true
                } else {
                    // Stored before, by this browser: it moves to the new
                    // session while it is pending; finished (or otherwise
                    // gone), it stays gone.
                    sqlx::query(
                        "UPDATE authorization_requests SET session_id = $1, logged_in_at = $2 \
                         WHERE id = $3 AND id IN (SELECT id FROM sealed_requests WHERE id = $3 AND anonymous_id = $4)",
                    )
                    .bind(&record.session_id)
                    .bind(record.logged_in_at)
                    .bind(&record.id)
                    .bind(anonymous_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1
                };
                if stored {
                    Self::keep_newest_pending(&mut tx, &record.session_id, keep, &record.id).await?;
                }
                tx.commit().await?;
                Ok(stored)
            }
        }

        impl $store {
            /// Deletes the session's pending requests beyond the newest
            /// `keep` (the cap per session), never `just_stored`.
            async fn keep_newest_pending(
                tx: &mut sqlx::Transaction<'_, <Self as $crate::store::HasDb>::Db>,
                session_id: &str,
                keep: u32,
                just_stored: &str,
            ) -> $crate::store::Result<()> {
                sqlx::query(
                    "DELETE FROM authorization_requests WHERE session_id = $1 AND id <> $3 AND id NOT IN \
                     (SELECT id FROM authorization_requests WHERE session_id = $1 \
                      ORDER BY created_at DESC, id DESC LIMIT $2)",
                )
                .bind(session_id)
                .bind(i64::from(keep))
                .bind(just_stored)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }
        }
    };
}
pub(super) use impl_pending_request_repository;
