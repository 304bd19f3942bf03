//! Browser sessions of signed-in browsers: `SessionRepository` and `SessionRecord`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::Result;
use crate::domain::UserId;

/// A browser session as stored (found by the keyed digest of its cookie).
/// Only a browser that signed in has one; before that a browser is known by
/// its cookie alone and stores nothing (`signin::session`).
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub id: String,
    pub user_id: Option<UserId>,
    pub auth_time: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
    /// The anonymous id its browser had before this session's first login
    /// (its other tabs' sealed requests are bound to it).
    pub anonymous_id: Option<String>,
}

#[async_trait]
pub trait SessionRepository {
    /// The first login of a browser: its session, with a new cookie's
    /// digest, the user, the time of authentication and the anonymous id
    /// the browser had until now.
    async fn insert_session(
        &self,
        id: &str,
        cookie_digest: &[u8],
        user_id: UserId,
        auth_time: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        anonymous_id: Option<&str>,
    ) -> Result<()>;
    /// The unexpired session whose cookie has this digest.
    async fn find_session(
        &self,
        cookie_digest: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Option<SessionRecord>>;
    /// A login in a session that exists: it gets a new cookie (no
    /// fixation), the user and the time of authentication. Returns whether
    /// it still exists.
    async fn sign_in_session(
        &self,
        id: &str,
        new_cookie_digest: &[u8],
        user_id: UserId,
        auth_time: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<bool>;
    /// Ends the session (and its pending requests).
    async fn delete_session(&self, id: &str) -> Result<()>;
}

/// Browser sessions, stamped onto each backend's store.
macro_rules! impl_session_repository {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::SessionRepository for $store {
            #[tracing::instrument(level = "debug", name = "store.session.insert", skip_all, fields(user_id = %user_id))]
            async fn insert_session(
                &self,
                id: &str,
                cookie_digest: &[u8],
                user_id: $crate::domain::UserId,
                auth_time: chrono::DateTime<chrono::Utc>,
                expires_at: chrono::DateTime<chrono::Utc>,
                anonymous_id: Option<&str>,
            ) -> $crate::store::Result<()> {
                sqlx::query(
                    "INSERT INTO browser_sessions (id, cookie_digest, user_id, auth_time, created_at, expires_at, anonymous_id) \
                     VALUES ($1, $2, $3, $4, $4, $5, $6)",
                )
                .bind(id)
                .bind(cookie_digest)
                .bind(user_id.to_string())
                .bind(auth_time)
                .bind(expires_at)
                .bind(anonymous_id)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            #[tracing::instrument(level = "debug", name = "store.session.find", skip_all)]
            async fn find_session(
                &self,
                cookie_digest: &[u8],
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<Option<$crate::store::SessionRecord>> {
                let row: Option<(String, Option<String>, Option<chrono::DateTime<chrono::Utc>>, chrono::DateTime<chrono::Utc>, Option<String>)> =
                    sqlx::query_as(
                        "SELECT id, user_id, auth_time, expires_at, anonymous_id FROM browser_sessions \
                         WHERE cookie_digest = $1 AND expires_at > $2",
                    )
                    .bind(cookie_digest)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|(id, user_id, auth_time, expires_at, anonymous_id)| {
                    let user_id = user_id
                        .map(|u| u.parse().map($crate::domain::UserId))
                        .transpose()
                        .map_err(|_| $crate::store::rows::corrupt("session", &id, "user_id"))?;
                    Ok($crate::store::SessionRecord { id, user_id, auth_time, expires_at, anonymous_id })
                })
                .transpose()
            }

            #[tracing::instrument(level = "debug", name = "store.session.sign_in", skip_all, fields(user_id = %user_id))]
            async fn sign_in_session(
                &self,
                id: &str,
                new_cookie_digest: &[u8],
                user_id: $crate::domain::UserId,
                auth_time: chrono::DateTime<chrono::Utc>,
                expires_at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<bool> {
                let updated = sqlx::query(
                    "UPDATE browser_sessions SET cookie_digest = $1, user_id = $2, auth_time = $3, expires_at = $4 \
                     WHERE id = $5",
                )
                .bind(new_cookie_digest)
                .bind(user_id.to_string())
                .bind(auth_time)
                .bind(expires_at)
                .bind(id)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(updated == 1)
            }

            #[tracing::instrument(level = "debug", name = "store.session.delete", skip_all)]
            async fn delete_session(&self, id: &str) -> $crate::store::Result<()> {
                // Its pending requests go with it (ON DELETE CASCADE).
                sqlx::query("DELETE FROM browser_sessions WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
        }
    };
}
pub(super) use impl_session_repository;
