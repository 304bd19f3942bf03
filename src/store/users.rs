//! Users and their password hashes: `UserRepository`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::Result;
use crate::domain::{User, UserId, Username};

#[async_trait]
pub trait UserRepository {
    /// `Error::Conflict` when the username is taken.
    async fn insert_user(&self, user: &User) -> Result<()>;
    async fn list_users(&self) -> Result<Vec<User>>;
    async fn find_user(&self, id: UserId) -> Result<Option<User>>;
    async fn find_user_by_username(&self, username: &Username) -> Result<Option<User>>;
    /// Returns whether the user exists.
    /// Also ends the user's browser sessions and refresh-token families: a
    /// password reset after a compromise must lock the intruder out.
    async fn set_password(
        &self,
        id: UserId,
        password_hash: &str,
        key_version: u32,
        now: DateTime<Utc>,
    ) -> Result<bool>;
    /// Replaces a hash with the same password keyed under another pepper
    /// version, unless the hash changed meanwhile (a new password wins).
    /// Sessions are not touched: the password is the same. Returns whether
    /// it was replaced.
    async fn rekey_password(
        &self,
        id: UserId,
        old_hash: &str,
        new_hash: &str,
        key_version: u32,
    ) -> Result<bool>;
    /// How many users' hashes each pepper version keyed, by version.
    async fn password_key_versions(&self) -> Result<Vec<(u32, u64)>>;
    /// The users whose hash was made before peppers (key version 0).
    async fn unpeppered_password_hashes(&self) -> Result<Vec<(UserId, String)>>;
    /// Disables the user, ends their browser sessions and revokes their
    /// refresh-token families. Returns whether a user was found.
    async fn disable_user(&self, id: UserId, now: DateTime<Utc>) -> Result<bool>;
    /// At most `limit` users after `after` (`created_at`, id) in that
    /// order, whose username or email contains `search` (any case).
    async fn list_users_page(
        &self,
        search: Option<&str>,
        after: Option<(DateTime<Utc>, UserId)>,
        limit: u32,
    ) -> Result<Vec<User>>;
    /// Replaces the profile (name, email, email_verified) if it is still
    /// `old`: `false` when it changed meanwhile or the user is gone.
    async fn update_user_profile(&self, id: UserId, old: &Profile, new: &Profile) -> Result<bool>;
    /// Enables a disabled user; whether the user exists.
    async fn enable_user(&self, id: UserId) -> Result<bool>;
    /// Ends the user's browser sessions and revokes their refresh-token
    /// families and access tokens; whether the user exists.
    async fn end_user_sessions(&self, id: UserId, now: DateTime<Utc>) -> Result<bool>;
}

/// A user's profile values, as the admin API changes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub name: Option<String>,
    pub email: Option<String>,
    pub email_verified: bool,
}

/// Users, and ending everything a user signed in to.
macro_rules! impl_user_repository {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::UserRepository for $store {
            #[tracing::instrument(level = "debug", name = "store.user.insert", skip_all, fields(user_id = %user.id))]
            async fn insert_user(&self, user: &$crate::domain::User) -> $crate::store::Result<()> {
                let inserted = sqlx::query(
                    "INSERT INTO users (id, username, password_hash, password_key_version, name, email, email_verified, disabled, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(user.id.to_string())
                .bind(user.username.as_str())
                .bind(&user.password_hash)
                .bind(user.password_key_version as i32)
                .bind(&user.name)
                .bind(&user.email)
                .bind(user.email_verified)
                .bind(user.disabled)
                .bind(user.created_at)
                .execute(&self.pool)
                .await;
                match inserted {
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                        Err($crate::store::Error::Conflict("username"))
                    }
                    other => other.map(|_| ()).map_err(Into::into),
                }
            }

            #[tracing::instrument(level = "debug", name = "store.user.list_page", skip_all)]
            async fn list_users_page(
                &self,
                search: Option<&str>,
                after: Option<(chrono::DateTime<chrono::Utc>, $crate::domain::UserId)>,
                limit: u32,
            ) -> $crate::store::Result<Vec<$crate::domain::User>> {
                // A substring of the username or the email, any case; `%`,
                // `_` and `\` in it are literal.
                let pattern = search.map(|s| {
                    let escaped = s
                        .to_lowercase()
                        .replace('\\', "\\\\")
                        .replace('%', "\\%")
                        .replace('_', "\\_");
                    format!("%{escaped}%")
                });
                let (after_at, after_id) = match after {
                    Some((at, id)) => (Some(at), Some(id.to_string())),
                    None => (None, None),
                };
                sqlx::query_as::<_, $crate::store::rows::UserRow>(
                    "SELECT id, username, password_hash, password_key_version, name, email, email_verified, disabled, created_at \
                     FROM users \
                     WHERE ($1 IS NULL OR LOWER(username) LIKE $1 ESCAPE '\\' OR LOWER(COALESCE(email, '')) LIKE $1 ESCAPE '\\') \
                       AND ($2 IS NULL OR created_at > $2 OR (created_at = $2 AND id > $3)) \
                     ORDER BY created_at, id LIMIT $4",
                )
                .bind(pattern)
                .bind(after_at)
                .bind(after_id)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(TryInto::try_into)
                .collect()
            }

            #[tracing::instrument(level = "debug", name = "store.user.update_profile", skip_all, fields(user_id = %id))]
            async fn update_user_profile(
                &self,
                id: $crate::domain::UserId,
                old: &$crate::store::Profile,
                new: &$crate::store::Profile,
            ) -> $crate::store::Result<bool> {
                let updated = sqlx::query(
                    "UPDATE users SET name = $2, email = $3, email_verified = $4 \
                     WHERE id = $1 AND name IS NOT DISTINCT FROM $5 AND email IS NOT DISTINCT FROM $6 \
                       AND email_verified = $7",
                )
                .bind(id.to_string())
                .bind(&new.name)
                .bind(&new.email)
                .bind(new.email_verified)
                .bind(&old.name)
                .bind(&old.email)
                .bind(old.email_verified)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(updated == 1)
            }

            #[tracing::instrument(level = "debug", name = "store.user.enable", skip_all, fields(user_id = %id))]
            async fn enable_user(&self, id: $crate::domain::UserId) -> $crate::store::Result<bool> {
                let updated = sqlx::query("UPDATE users SET disabled = FALSE WHERE id = $1")
                    .bind(id.to_string())
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(updated == 1)
            }

            #[tracing::instrument(level = "debug", name = "store.user.end_sessions", skip_all, fields(user_id = %id))]
            async fn end_user_sessions(
                &self,
                id: $crate::domain::UserId,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<bool> {
                let mut tx = self.pool.begin().await?;
                let exists: Option<(String,)> = sqlx::query_as("SELECT id FROM users WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(&mut *tx)
                    .await?;
                if exists.is_none() {
                    return Ok(false);
                }
                Self::sign_out_everywhere(&mut tx, id, now).await?;
                tx.commit().await?;
                Ok(true)
            }

            #[tracing::instrument(level = "debug", name = "store.user.list", skip_all)]
            async fn list_users(&self) -> $crate::store::Result<Vec<$crate::domain::User>> {
                sqlx::query_as::<_, $crate::store::rows::UserRow>(
                    "SELECT id, username, password_hash, password_key_version, name, email, email_verified, disabled, created_at \
                     FROM users ORDER BY created_at, id",
                )
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(TryInto::try_into)
                .collect()
            }

            #[tracing::instrument(level = "debug", name = "store.user.find", skip_all, fields(user_id = %id))]
            async fn find_user(&self, id: $crate::domain::UserId) -> $crate::store::Result<Option<$crate::domain::User>> {
                sqlx::query_as::<_, $crate::store::rows::UserRow>(
                    "SELECT id, username, password_hash, password_key_version, name, email, email_verified, disabled, created_at \
                     FROM users WHERE id = $1",
                )
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?
                .map(TryInto::try_into)
                .transpose()
            }

            #[tracing::instrument(level = "debug", name = "store.user.find_by_username", skip_all)]
            async fn find_user_by_username(&self, username: &$crate::domain::Username) -> $crate::store::Result<Option<$crate::domain::User>> {
                sqlx::query_as::<_, $crate::store::rows::UserRow>(
                    "SELECT id, username, password_hash, password_key_version, name, email, email_verified, disabled, created_at \
                     FROM users WHERE username = $1",
                )
                .bind(username.as_str())
                .fetch_optional(&self.pool)
                .await?
                .map(TryInto::try_into)
                .transpose()
            }

            #[tracing::instrument(level = "debug", name = "store.user.set_password", skip_all, fields(user_id = %id))]
            async fn set_password(
                &self,
                id: $crate::domain::UserId,
                password_hash: &str,
                key_version: u32,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<bool> {
                let mut tx = self.pool.begin().await?;
                let updated = sqlx::query(
                    "UPDATE users SET password_hash = $1, password_key_version = $2 WHERE id = $3",
                )
                .bind(password_hash)
                .bind(key_version as i32)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                Self::sign_out_everywhere(&mut tx, id, now).await?;
                tx.commit().await?;
                Ok(updated == 1)
            }

            #[tracing::instrument(level = "debug", name = "store.user.rekey_password", skip_all, fields(user_id = %id))]
            async fn rekey_password(
                &self,
                id: $crate::domain::UserId,
                old_hash: &str,
                new_hash: &str,
                key_version: u32,
            ) -> $crate::store::Result<bool> {
                let updated = sqlx::query(
                    "UPDATE users SET password_hash = $1, password_key_version = $2 \
                     WHERE id = $3 AND password_hash = $4",
                )
                .bind(new_hash)
                .bind(key_version as i32)
                .bind(id.to_string())
                .bind(old_hash)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(updated == 1)
            }

            #[tracing::instrument(level = "debug", name = "store.user.unpeppered", skip_all)]
            async fn unpeppered_password_hashes(
                &self,
            ) -> $crate::store::Result<Vec<($crate::domain::UserId, String)>> {
                let rows: Vec<(String, String)> = sqlx::query_as(
                    "SELECT id, password_hash FROM users WHERE password_key_version = 0 ORDER BY id",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|(id, hash)| {
                        let user = id
                            .parse()
                            .map($crate::domain::UserId)
                            .map_err(|_| $crate::store::rows::corrupt("user", &id, "id"))?;
                        Ok((user, hash))
                    })
                    .collect()
            }

            #[tracing::instrument(level = "debug", name = "store.user.password_key_versions", skip_all)]
            async fn password_key_versions(&self) -> $crate::store::Result<Vec<(u32, u64)>> {
                let rows: Vec<(i32, i64)> = sqlx::query_as(
                    "SELECT password_key_version, COUNT(*) FROM users WHERE password_hash <> '' \
                     GROUP BY password_key_version ORDER BY password_key_version",
                )
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(version, count)| (version.max(0) as u32, count.max(0) as u64))
                    .collect())
            }

            #[tracing::instrument(level = "debug", name = "store.user.disable", skip_all, fields(user_id = %id))]
            async fn disable_user(
                &self,
                id: $crate::domain::UserId,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<bool> {
                let mut tx = self.pool.begin().await?;
                let updated = sqlx::query("UPDATE users SET disabled = TRUE WHERE id = $1")
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                Self::sign_out_everywhere(&mut tx, id, now).await?;
                tx.commit().await?;
                Ok(updated == 1)
            }
        }

        impl $store {
            /// Ends every browser session of the user and revokes their
            /// refresh-token families (the family rows first: the same lock
            /// order as every other family change).
            async fn sign_out_everywhere(
                tx: &mut sqlx::Transaction<'_, <Self as $crate::store::HasDb>::Db>,
                id: $crate::domain::UserId,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<()> {
                let user = id.to_string();
                sqlx::query("DELETE FROM browser_sessions WHERE user_id = $1")
                    .bind(&user)
                    .execute(&mut **tx)
                    .await?;
                Self::end_grants_of_user(tx, id, None, now).await?;
                Ok(())
            }
        }
    };
}
pub(super) use impl_user_repository;
