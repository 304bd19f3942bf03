//! The repository implementations, written once for both backends.
//!
//! Every statement here is plain SQL that PostgreSQL and SQLite both accept
//! (`$n` placeholders, `ON CONFLICT DO NOTHING`), and every bound type maps
//! on both. A generic `impl<DB: Database>` would need a wall of sqlx trait
//! bounds per type, so a macro stamps the same code onto each backend's pool
//! instead. Statements that must differ (locking, later) are written in the
//! backend's own module.

/// The sqlx database type behind a store (for helpers that take a transaction).
pub(super) trait HasDb {
    type Db: sqlx::Database;
}

pub(super) const BUMP_EPOCH: &str = "UPDATE cache_epochs SET epoch = epoch + 1 WHERE name = $1";

macro_rules! impl_repositories {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::ClientRepository for $store {
            #[tracing::instrument(level = "debug", name = "store.client.insert", skip_all, fields(client_id = %client.id))]
            async fn insert_client(&self, client: &$crate::domain::Client) -> $crate::store::Result<()> {
                let row = $crate::store::rows::ClientRow::from_client(client);
                let mut tx = self.pool.begin().await?;
                let sql = "INSERT INTO clients (id, name, kind, secret_digest, secret_key_version, redirect_uris, grant_types, scope, audiences, post_logout_redirect_uris, skip_consent, can_introspect, rate_tier, allowed_origins, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)";
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
                sqlx::query($crate::store::sql::BUMP_EPOCH)
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
                let sql = "SELECT id, name, kind, secret_digest, secret_key_version, redirect_uris, grant_types, scope, audiences, post_logout_redirect_uris, skip_consent, can_introspect, rate_tier, allowed_origins, created_at, updated_at FROM clients WHERE id = $1";
                sqlx::query_as::<_, $crate::store::rows::ClientRow>(sql)
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .map(TryInto::try_into)
                    .transpose()
            }

            #[tracing::instrument(level = "debug", name = "store.client.list", skip_all)]
            async fn list_clients(&self) -> $crate::store::Result<Vec<$crate::domain::Client>> {
                let sql = "SELECT id, name, kind, secret_digest, secret_key_version, redirect_uris, grant_types, scope, audiences, post_logout_redirect_uris, skip_consent, can_introspect, rate_tier, allowed_origins, created_at, updated_at FROM clients ORDER BY created_at, id";
                sqlx::query_as::<_, $crate::store::rows::ClientRow>(sql)
                    .fetch_all(&self.pool)
                    .await?
                    .into_iter()
                    .map(TryInto::try_into)
                    .collect()
            }

            #[tracing::instrument(level = "debug", name = "store.client.delete", skip_all, fields(client_id = %id))]
            async fn delete_client(
                &self,
                id: &$crate::domain::ClientId,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<bool> {
                let mut tx = self.pool.begin().await?;
                // Codes, refresh-token families (and their tokens), consents
                // and pending requests go with the client (ON DELETE
                // CASCADE); the recorded access tokens are revoked. The
                // DELETE comes first: it waits for a code redemption in
                // flight, whose access token the UPDATE then sees.
                let deleted = sqlx::query("DELETE FROM clients WHERE id = $1")
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                sqlx::query(
                    "UPDATE access_tokens SET revoked_at = $1 WHERE client_id = $2 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
                sqlx::query($crate::store::sql::BUMP_EPOCH)
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
            ) -> $crate::store::Result<bool> {
                let mut tx = self.pool.begin().await?;
                let updated = sqlx::query(
                    "UPDATE clients SET secret_digest = $1, secret_key_version = $2, updated_at = $3 \
                     WHERE id = $4 AND kind = 'confidential'",
                )
                .bind(&secret.digest)
                .bind(secret.key_version as i32)
                .bind(now)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                sqlx::query($crate::store::sql::BUMP_EPOCH)
                    .bind("clients")
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(updated == 1)
            }
        }

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
                    "SELECT password_key_version, COUNT(*) FROM users \
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
            /// Deletes the session's pending requests beyond the newest
            /// `keep` (the cap per session), never `just_stored`.
            async fn keep_newest_pending(
                tx: &mut sqlx::Transaction<'_, <Self as $crate::store::sql::HasDb>::Db>,
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

            /// Ends every browser session of the user and revokes their
            /// refresh-token families (the family rows first: the same lock
            /// order as every other family change).
            async fn sign_out_everywhere(
                tx: &mut sqlx::Transaction<'_, <Self as $crate::store::sql::HasDb>::Db>,
                user: $crate::domain::UserId,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<()> {
                let user = user.to_string();
                sqlx::query("DELETE FROM browser_sessions WHERE user_id = $1")
                    .bind(&user)
                    .execute(&mut **tx)
                    .await?;
                for sql in [
                    "UPDATE refresh_token_families SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
                    "UPDATE refresh_tokens SET revoked_at = $1 WHERE revoked_at IS NULL AND family_id IN (SELECT id FROM refresh_token_families WHERE user_id = $2)",
                ] {
                    sqlx::query(sql).bind(now).bind(&user).execute(&mut **tx).await?;
                }
                // Codes not yet redeemed end too, before the access tokens
                // (a redemption in flight is waited for).
                sqlx::query("DELETE FROM authorization_codes WHERE user_id = $1 AND redeemed_at IS NULL")
                    .bind(&user)
                    .execute(&mut **tx)
                    .await?;
                sqlx::query(
                    "UPDATE access_tokens SET revoked_at = $1 WHERE revoked_at IS NULL AND \
                     (user_id = $2 OR family_id IN (SELECT id FROM refresh_token_families WHERE user_id = $2))",
                )
                .bind(now)
                .bind(&user)
                .execute(&mut **tx)
                .await?;
                // A family started from a code redeemed just before (its
                // transaction tagged the token, which the update above
                // waited for) is visible now: end it too.
                for sql in [
                    "UPDATE refresh_token_families SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
                    "UPDATE refresh_tokens SET revoked_at = $1 WHERE revoked_at IS NULL AND family_id IN (SELECT id FROM refresh_token_families WHERE user_id = $2)",
                ] {
                    sqlx::query(sql).bind(now).bind(&user).execute(&mut **tx).await?;
                }
                Ok(())
            }
        }

        $crate::store::sql::impl_sign_in_repositories!($store);
        $crate::store::sql::impl_refresh_repository!($store);
        $crate::store::sql::impl_master_key_repository!($store);

        #[async_trait::async_trait]
        impl $crate::store::SigningKeyRepository for $store {
            #[tracing::instrument(level = "debug", name = "store.signing_key.insert_first", skip_all, fields(kid = %key.kid))]
            async fn insert_first_active_key(
                &self,
                key: &$crate::store::SigningKeyRecord,
            ) -> $crate::store::Result<bool> {
                let mut tx = self.pool.begin().await?;
                let sql = "INSERT INTO signing_keys (kid, alg, state, public_n, public_e, private_key_sealed, created_at, activated_at, retired_at, activates_at, removed_at, revoked_at) VALUES ($1, $2, 'active', $3, $4, $5, $6, $7, NULL, NULL, NULL, NULL) \
                     ON CONFLICT DO NOTHING";
                let inserted = sqlx::query(sql)
                    .bind(&key.kid.0)
                    .bind(&key.alg)
                    .bind(&key.public_n)
                    .bind(&key.public_e)
                    .bind(&key.private_key_sealed)
                    .bind(key.created_at)
                    .bind(key.activated_at)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
                if inserted {
                    sqlx::query($crate::store::sql::BUMP_EPOCH)
                        .bind("signing_keys")
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(inserted)
            }

            #[tracing::instrument(level = "debug", name = "store.signing_key.list", skip_all)]
            async fn list_signing_keys(
                &self,
            ) -> $crate::store::Result<Vec<$crate::store::SigningKeyRecord>> {
                let sql = "SELECT kid, alg, state, public_n, public_e, private_key_sealed, created_at, activated_at, retired_at, activates_at, removed_at, revoked_at FROM signing_keys ORDER BY created_at, kid";
                sqlx::query_as::<_, $crate::store::rows::SigningKeyRow>(sql)
                    .fetch_all(&self.pool)
                    .await?
                    .into_iter()
                    .map(TryInto::try_into)
                    .collect()
            }

            #[tracing::instrument(level = "debug", name = "store.signing_key.schedule", skip_all)]
            async fn apply_key_schedule(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                schedule: &$crate::store::KeySchedule,
                candidate: Option<&$crate::store::SigningKeyRecord>,
            ) -> $crate::store::Result<$crate::store::ScheduleOutcome> {
                let mut tx = self.begin_key_lock().await?;
                let keys = Self::keys_in(&mut tx).await?;
                let mut outcome = $crate::store::ScheduleOutcome::default();
                let active = keys.iter().find(|k| k.state == $crate::domain::KeyState::Active);
                let next = keys.iter().find(|k| k.state == $crate::domain::KeyState::Next);
                let mut next_exists = next.is_some();
                let mut active_since = active.and_then(|k| k.activated_at);
                if let Some(next) = next.filter(|n| n.activates_at.is_some_and(|at| at <= now)) {
                    if let Some(active) = active {
                        Self::set_state(&mut tx, &active.kid, "retired", now).await?;
                        outcome.retired = Some(active.kid.clone());
                    }
                    Self::set_state(&mut tx, &next.kid, "active", now).await?;
                    outcome.activated = Some(next.kid.clone());
                    next_exists = false;
                    active_since = Some(now);
                }
                for retired in keys.iter().filter(|k| {
                    k.state == $crate::domain::KeyState::Retired
                        && k.retired_at.is_some_and(|at| at + schedule.retention <= now)
                }) {
                    Self::set_state(&mut tx, &retired.kid, "removed", now).await?;
                    outcome.removed.push(retired.kid.clone());
                }
                if !next_exists {
                    match candidate {
                        Some(candidate) => {
                            // Published at least `prepublish` before it signs.
                            let due = active_since.map_or(now, |since| since + schedule.rotation_period);
                            let activates_at = due.max(now + schedule.prepublish);
                            Self::insert_key(&mut tx, candidate, "next", None, Some(activates_at)).await?;
                            outcome.inserted_next = Some(candidate.kid.clone());
                        }
                        None => outcome.needs_next = true,
                    }
                }
                if outcome.changed() {
                    Self::bump_keys_epoch(&mut tx).await?;
                }
                tx.commit().await?;
                Ok(outcome)
            }

            #[tracing::instrument(level = "debug", name = "store.signing_key.rotate_now", skip_all)]
            async fn rotate_keys_now(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                schedule: &$crate::store::KeySchedule,
                candidate: &$crate::store::SigningKeyRecord,
                force: bool,
            ) -> $crate::store::Result<$crate::store::RotateOutcome> {
                let mut tx = self.begin_key_lock().await?;
                let keys = Self::keys_in(&mut tx).await?;
                let active = keys.iter().find(|k| k.state == $crate::domain::KeyState::Active);
                let next = keys.iter().find(|k| k.state == $crate::domain::KeyState::Next);
                if next.is_none() && !force {
                    return Ok($crate::store::RotateOutcome::NoNextKey);
                }
                if let Some(active) = active {
                    Self::set_state(&mut tx, &active.kid, "retired", now).await?;
                }
                let outcome = match next {
                    Some(next) => {
                        Self::set_state(&mut tx, &next.kid, "active", now).await?;
                        let activates_at = (now + schedule.rotation_period).max(now + schedule.prepublish);
                        Self::insert_key(&mut tx, candidate, "next", None, Some(activates_at)).await?;
                        $crate::store::RotateOutcome::Rotated {
                            activated: next.kid.clone(),
                            next: candidate.kid.clone(),
                        }
                    }
                    None => {
                        Self::insert_key(&mut tx, candidate, "active", Some(now), None).await?;
                        $crate::store::RotateOutcome::Forced { activated: candidate.kid.clone() }
                    }
                };
                Self::bump_keys_epoch(&mut tx).await?;
                tx.commit().await?;
                Ok(outcome)
            }

            #[tracing::instrument(level = "debug", name = "store.signing_key.revoke", skip_all, fields(kid = %kid))]
            async fn revoke_key(
                &self,
                kid: &$crate::domain::Kid,
                now: chrono::DateTime<chrono::Utc>,
                schedule: &$crate::store::KeySchedule,
                candidate: &$crate::store::SigningKeyRecord,
            ) -> $crate::store::Result<$crate::store::RevokeOutcome> {
                use $crate::domain::KeyState;
                let mut tx = self.begin_key_lock().await?;
                let keys = Self::keys_in(&mut tx).await?;
                let Some(target) = keys.iter().find(|k| &k.kid == kid) else {
                    return Ok($crate::store::RevokeOutcome::NotFound);
                };
                if matches!(target.state, KeyState::Removed | KeyState::Revoked) {
                    return Ok($crate::store::RevokeOutcome::AlreadyGone);
                }
                Self::set_state(&mut tx, &target.kid, "revoked", now).await?;
                let next = keys.iter().find(|k| k.state == KeyState::Next && &k.kid != kid);
                let (activated, new_next) = match (target.state, next) {
                    // The active key goes: the pre-published key signs now.
                    (KeyState::Active, Some(next)) => {
                        Self::set_state(&mut tx, &next.kid, "active", now).await?;
                        let activates_at = now + schedule.rotation_period.max(schedule.prepublish);
                        Self::insert_key(&mut tx, candidate, "next", None, Some(activates_at)).await?;
                        (Some(next.kid.clone()), Some(candidate.kid.clone()))
                    }
                    // No next key to fall back on: the candidate signs at once.
                    (KeyState::Active, None) => {
                        Self::insert_key(&mut tx, candidate, "active", Some(now), None).await?;
                        (Some(candidate.kid.clone()), None)
                    }
                    // The next key goes: the candidate replaces it on the same date.
                    (KeyState::Next, _) => {
                        let activates_at = target.activates_at.unwrap_or(now).max(now + schedule.prepublish);
                        Self::insert_key(&mut tx, candidate, "next", None, Some(activates_at)).await?;
                        (None, Some(candidate.kid.clone()))
                    }
                    _ => (None, None),
                };
                Self::bump_keys_epoch(&mut tx).await?;
                tx.commit().await?;
                Ok($crate::store::RevokeOutcome::Revoked { activated, next: new_next })
            }
        }

        impl $store {
            async fn keys_in(
                tx: &mut sqlx::Transaction<'_, <Self as $crate::store::sql::HasDb>::Db>,
            ) -> $crate::store::Result<Vec<$crate::store::SigningKeyRecord>> {
                let sql = "SELECT kid, alg, state, public_n, public_e, private_key_sealed, created_at, activated_at, retired_at, activates_at, removed_at, revoked_at FROM signing_keys ORDER BY created_at, kid";
                sqlx::query_as::<_, $crate::store::rows::SigningKeyRow>(sql)
                    .fetch_all(&mut **tx)
                    .await?
                    .into_iter()
                    .map(TryInto::try_into)
                    .collect()
            }

            /// Moves a key to `state`, stamping the matching time; removed and
            /// revoked keys lose their private half.
            async fn set_state(
                tx: &mut sqlx::Transaction<'_, <Self as $crate::store::sql::HasDb>::Db>,
                kid: &$crate::domain::Kid,
                state: &'static str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<()> {
                let sql = match state {
                    "active" => "UPDATE signing_keys SET state = 'active', activated_at = $1 WHERE kid = $2",
                    "retired" => "UPDATE signing_keys SET state = 'retired', retired_at = $1 WHERE kid = $2",
                    "removed" => "UPDATE signing_keys SET state = 'removed', removed_at = $1, private_key_sealed = $3 WHERE kid = $2",
                    _ => "UPDATE signing_keys SET state = 'revoked', revoked_at = $1, private_key_sealed = $3 WHERE kid = $2",
                };
                let query = sqlx::query(sql).bind(now).bind(&kid.0);
                let query = if matches!(state, "removed" | "revoked") {
                    query.bind(Vec::<u8>::new())
                } else {
                    query
                };
                query.execute(&mut **tx).await?;
                Ok(())
            }

            async fn insert_key(
                tx: &mut sqlx::Transaction<'_, <Self as $crate::store::sql::HasDb>::Db>,
                key: &$crate::store::SigningKeyRecord,
                state: &'static str,
                activated_at: Option<chrono::DateTime<chrono::Utc>>,
                activates_at: Option<chrono::DateTime<chrono::Utc>>,
            ) -> $crate::store::Result<()> {
                let sql = "INSERT INTO signing_keys (kid, alg, state, public_n, public_e, private_key_sealed, created_at, activated_at, retired_at, activates_at, removed_at, revoked_at) \
                           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9, NULL, NULL)";
                sqlx::query(sql)
                    .bind(&key.kid.0)
                    .bind(&key.alg)
                    .bind(state)
                    .bind(&key.public_n)
                    .bind(&key.public_e)
                    .bind(&key.private_key_sealed)
                    .bind(key.created_at)
                    .bind(activated_at)
                    .bind(activates_at)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            async fn bump_keys_epoch(
                tx: &mut sqlx::Transaction<'_, <Self as $crate::store::sql::HasDb>::Db>,
            ) -> $crate::store::Result<()> {
                sqlx::query($crate::store::sql::BUMP_EPOCH)
                    .bind("signing_keys")
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            fn backend(&self) -> $crate::store::Backend {
                Self::BACKEND
            }

            fn pool_stats(&self) -> $crate::store::PoolStats {
                $crate::store::PoolStats {
                    connections: self.pool.size(),
                    idle: self.pool.num_idle() as u32,
                    max: self.pool.options().get_max_connections(),
                }
            }

            async fn migrate(&self) -> $crate::store::Result<()> {
                Self::MIGRATOR.run(&self.pool).await?;
                Ok(())
            }

            async fn ping(&self) -> $crate::store::Result<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn cache_epochs(&self) -> $crate::store::Result<$crate::store::CacheEpochs> {
                let rows: Vec<(String, i64)> = sqlx::query_as("SELECT name, epoch FROM cache_epochs")
                    .fetch_all(&self.pool)
                    .await?;
                let mut epochs = $crate::store::CacheEpochs::default();
                for (name, epoch) in rows {
                    match name.as_str() {
                        "clients" => epochs.clients = epoch,
                        "signing_keys" => epochs.signing_keys = epoch,
                        "master_keys" => epochs.master_keys = epoch,
                        _ => {}
                    }
                }
                Ok(epochs)
            }

            async fn claim_master_key_fingerprint(
                &self,
                version: u32,
                fingerprint: &[u8],
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<Vec<u8>> {
                sqlx::query(
                    "INSERT INTO master_key_fingerprints (version, fingerprint, created_at, resealed_at) \
                     VALUES ($1, $2, $3, $3) ON CONFLICT DO NOTHING",
                )
                .bind(version as i32)
                .bind(fingerprint)
                .bind(now)
                .execute(&self.pool)
                .await?;
                let (recorded,): (Vec<u8>,) = sqlx::query_as(
                    "SELECT fingerprint FROM master_key_fingerprints WHERE version = $1",
                )
                .bind(version as i32)
                .fetch_one(&self.pool)
                .await?;
                Ok(recorded)
            }

            async fn close(&self) {
                self.pool.close().await;
            }

            #[tracing::instrument(level = "debug", name = "store.prune", skip_all, fields(table = what.as_str()))]
            async fn prune_expired(
                &self,
                what: $crate::store::Prunable,
                before: chrono::DateTime<chrono::Utc>,
                batch: u32,
            ) -> $crate::store::Result<u64> {
                Ok(sqlx::query(what.delete_statement())
                    .bind(before)
                    .bind(i64::from(batch))
                    .execute(&self.pool)
                    .await?
                    .rows_affected())
            }
        }
    };
}

/// Master key versions, digest keys and re-sealing.
macro_rules! impl_master_key_repository {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::MasterKeyRepository for $store {
            async fn master_key_versions(
                &self,
            ) -> $crate::store::Result<Vec<$crate::store::MasterKeyVersion>> {
                type Row = (
                    i32,
                    Vec<u8>,
                    chrono::DateTime<chrono::Utc>,
                    Option<chrono::DateTime<chrono::Utc>>,
                );
                let rows: Vec<Row> = sqlx::query_as(
                    "SELECT version, fingerprint, created_at, resealed_at \
                     FROM master_key_fingerprints ORDER BY version",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|(version, fingerprint, created_at, resealed_at)| {
                        Ok($crate::store::MasterKeyVersion {
                            version: u32::try_from(version).map_err(|_| {
                                $crate::store::Error::Corrupt {
                                    entity: "master key version",
                                    id: version.to_string(),
                                    problem: "negative".into(),
                                }
                            })?,
                            fingerprint,
                            created_at,
                            resealed_at,
                        })
                    })
                    .collect()
            }

            #[tracing::instrument(level = "debug", name = "store.master_key.register", skip_all, fields(version))]
            async fn register_master_key(
                &self,
                version: u32,
                fingerprint: &[u8],
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<bool> {
                let mut tx = self.pool.begin().await?;
                let inserted = sqlx::query(
                    "INSERT INTO master_key_fingerprints (version, fingerprint, created_at, resealed_at) \
                     VALUES ($1, $2, $3, NULL) ON CONFLICT DO NOTHING",
                )
                .bind(version as i32)
                .bind(fingerprint)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                sqlx::query($crate::store::sql::BUMP_EPOCH)
                    .bind("master_keys")
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(inserted == 1)
            }

            async fn finish_master_key_rotation(
                &self,
                version: u32,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "UPDATE master_key_fingerprints SET resealed_at = $1 \
                     WHERE version = $2 AND resealed_at IS NULL",
                )
                .bind(now)
                .bind(version as i32)
                .execute(&mut *tx)
                .await?;
                sqlx::query($crate::store::sql::BUMP_EPOCH)
                    .bind("master_keys")
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn digest_keys(&self) -> $crate::store::Result<Vec<(String, Vec<u8>)>> {
                Ok(sqlx::query_as("SELECT purpose, key_sealed FROM digest_keys ORDER BY purpose")
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn insert_digest_key(
                &self,
                purpose: &str,
                sealed: &[u8],
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<()> {
                sqlx::query(
                    "INSERT INTO digest_keys (purpose, key_sealed, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(purpose)
                .bind(sealed)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn sealed_values(
                &self,
                column: $crate::store::SealedColumn,
                after: &str,
                limit: u32,
            ) -> $crate::store::Result<Vec<(String, Vec<u8>)>> {
                Ok(sqlx::query_as(column.select_statement())
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn record_master_key_holder(
                &self,
                replica: &str,
                key_ids: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<()> {
                sqlx::query(
                    "INSERT INTO master_key_holders (replica, key_ids, seen_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (replica) DO UPDATE SET key_ids = excluded.key_ids, seen_at = excluded.seen_at",
                )
                .bind(replica)
                .bind(key_ids)
                .bind(now)
                .execute(&self.pool)
                .await?;
                // A replica silent for a day crashed without forgetting
                // its record; nothing reads it any more.
                sqlx::query("DELETE FROM master_key_holders WHERE seen_at < $1")
                    .bind(now - chrono::Duration::days(1))
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn forget_master_key_holder(&self, replica: &str) -> $crate::store::Result<()> {
                sqlx::query("DELETE FROM master_key_holders WHERE replica = $1")
                    .bind(replica)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn master_key_holders(
                &self,
                since: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<Vec<(String, String)>> {
                // Read only: the check before a rotation must not queue
                // behind writers (on SQLite, the one write lock).
                Ok(sqlx::query_as(
                    "SELECT replica, key_ids FROM master_key_holders WHERE seen_at >= $1 ORDER BY replica",
                )
                .bind(since)
                .fetch_all(&self.pool)
                .await?)
            }

            #[tracing::instrument(level = "debug", name = "store.master_key.reseal", skip_all, fields(table = column.as_str(), rows = values.len()))]
            async fn replace_sealed_values(
                &self,
                column: $crate::store::SealedColumn,
                values: &[$crate::store::Resealed],
            ) -> $crate::store::Result<u64> {
                let mut tx = self.pool.begin().await?;
                let mut replaced = 0;
                for value in values {
                    replaced += sqlx::query(column.update_statement())
                        .bind(&value.new)
                        .bind(&value.id)
                        .bind(&value.old)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                tx.commit().await?;
                Ok(replaced)
            }
        }
    };
}
pub(super) use impl_master_key_repository;

/// Sessions, pending requests, consents, codes and access-token records.
macro_rules! impl_sign_in_repositories {
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
                for sql in [
                    "UPDATE refresh_token_families SET revoked_at = $1 \
                     WHERE user_id = $2 AND client_id = $3 AND revoked_at IS NULL",
                    "UPDATE refresh_tokens SET revoked_at = $1 WHERE revoked_at IS NULL AND family_id IN \
                     (SELECT id FROM refresh_token_families WHERE user_id = $2 AND client_id = $3)",
                ] {
                    sqlx::query(sql)
                        .bind(now)
                        .bind(user.to_string())
                        .bind(client.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                // Codes not yet redeemed end too, before the access tokens
                // are revoked: a redemption in flight is waited for, and
                // the token it recorded is then revoked with the others.
                sqlx::query(
                    "DELETE FROM authorization_codes WHERE user_id = $1 AND client_id = $2 AND redeemed_at IS NULL",
                )
                .bind(user.to_string())
                .bind(client.as_str())
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE access_tokens SET revoked_at = $1 WHERE revoked_at IS NULL AND \
                     ((user_id = $2 AND client_id = $3) OR family_id IN \
                      (SELECT id FROM refresh_token_families WHERE user_id = $2 AND client_id = $3))",
                )
                .bind(now)
                .bind(user.to_string())
                .bind(client.as_str())
                .execute(&mut *tx)
                .await?;
                // A family started from a code redeemed just before (its
                // transaction tagged the token, which the update above
                // waited for) is visible now: end it too.
                for sql in [
                    "UPDATE refresh_token_families SET revoked_at = $1 \
                     WHERE user_id = $2 AND client_id = $3 AND revoked_at IS NULL",
                    "UPDATE refresh_tokens SET revoked_at = $1 WHERE revoked_at IS NULL AND family_id IN \
                     (SELECT id FROM refresh_token_families WHERE user_id = $2 AND client_id = $3)",
                ] {
                    sqlx::query(sql)
                        .bind(now)
                        .bind(user.to_string())
                        .bind(client.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(deleted == 1)
            }
        }

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

/// Refresh token families and their rotation.
macro_rules! impl_refresh_repository {
    ($store:ty) => {
        impl $store {
            /// Inserts a successor and its access-token record. Callers hold
            /// the family's row lock (taken first in their transaction, after
            /// checking the family is alive), so a concurrent revocation waits
            /// for this transaction and then revokes these rows too.
            async fn insert_successor(
                tx: &mut sqlx::Transaction<'_, <Self as $crate::store::sql::HasDb>::Db>,
                successor: &$crate::store::Successor,
            ) -> $crate::store::Result<()> {
                let token = &successor.token;
                sqlx::query(
                    "INSERT INTO refresh_tokens (id, token_digest, key_version, family_id, parent_id, client_id, grant_sealed, created_at, expires_at, consumed_at, revoked_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, NULL)",
                )
                .bind(&token.id)
                .bind(&token.token_digest)
                .bind(token.key_version as i32)
                .bind(&token.family_id)
                .bind(&token.parent_id)
                .bind(token.client_id.as_str())
                .bind(&token.grant_sealed)
                .bind(token.created_at)
                .bind(token.expires_at)
                .execute(&mut **tx)
                .await?;
                sqlx::query(
                    "INSERT INTO access_tokens (jti, code_id, client_id, user_id, expires_at, revoked_at, family_id, refresh_token_id) \
                     VALUES ($1, NULL, $2, (SELECT user_id FROM refresh_token_families WHERE id = $4), $3, NULL, $4, $5)",
                )
                .bind(&successor.jti)
                .bind(token.client_id.as_str())
                .bind(successor.access_expires_at)
                .bind(&token.family_id)
                .bind(&token.id)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::RefreshTokenRepository for $store {
            #[tracing::instrument(level = "debug", name = "store.refresh.create_family", skip_all, fields(client_id = %family.client_id))]
            async fn create_family(
                &self,
                family: &$crate::store::FamilyRecord,
                token: &$crate::store::RefreshTokenRecord,
                jti: &str,
            ) -> $crate::store::Result<bool> {
                let mut tx = self.pool.begin().await?;
                // First tag the access token issued with the code: this locks
                // its row, so a replay of the code either revoked it already
                // (then no family is created) or waits and then finds the
                // family through it (revoke_replayed_code).
                let tagged: Option<(Option<chrono::DateTime<chrono::Utc>>,)> = sqlx::query_as(
                    "UPDATE access_tokens SET family_id = $1 WHERE jti = $2 RETURNING revoked_at",
                )
                .bind(&family.id)
                .bind(jti)
                .fetch_optional(&mut *tx)
                .await?;
                if matches!(tagged, Some((Some(_),))) {
                    return Ok(false);
                }
                sqlx::query(
                    "INSERT INTO refresh_token_families (id, client_id, user_id, created_at, expires_at, revoked_at) \
                     VALUES ($1, $2, $3, $4, $5, NULL)",
                )
                .bind(&family.id)
                .bind(family.client_id.as_str())
                .bind(family.user_id.to_string())
                .bind(family.created_at)
                .bind(family.expires_at)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO refresh_tokens (id, token_digest, key_version, family_id, parent_id, client_id, grant_sealed, created_at, expires_at, consumed_at, revoked_at) \
                     VALUES ($1, $2, $3, $4, NULL, $5, $6, $7, $8, NULL, NULL)",
                )
                .bind(&token.id)
                .bind(&token.token_digest)
                .bind(token.key_version as i32)
                .bind(&token.family_id)
                .bind(token.client_id.as_str())
                .bind(&token.grant_sealed)
                .bind(token.created_at)
                .bind(token.expires_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(true)
            }

            #[tracing::instrument(level = "debug", name = "store.refresh.rotate", skip_all, fields(client_id = %client))]
            async fn rotate_refresh_token(
                &self,
                token_digest: &[u8],
                client: &$crate::domain::ClientId,
                now: chrono::DateTime<chrono::Utc>,
                build: $crate::store::BuildSuccessor<'_>,
            ) -> $crate::store::Result<Option<$crate::store::Successor>> {
                let mut tx = self.pool.begin().await?;
                // Lock order, everywhere: the family row first, then its
                // tokens (revoke_family does the same), so a rotation and a
                // revocation of one family never deadlock. This no-op update
                // takes the family's lock and checks it is alive.
                let family_alive = sqlx::query(
                    "UPDATE refresh_token_families SET revoked_at = revoked_at \
                     WHERE id = (SELECT family_id FROM refresh_tokens WHERE token_digest = $1 AND client_id = $2) \
                     AND revoked_at IS NULL AND expires_at > $3",
                )
                .bind(token_digest)
                .bind(client.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if !family_alive {
                    return Ok(None);
                }
                // The single statement that decides which use wins.
                let consumed: Option<(String, String, Vec<u8>)> = sqlx::query_as(
                    "UPDATE refresh_tokens SET consumed_at = $1 \
                     WHERE token_digest = $2 AND client_id = $3 AND consumed_at IS NULL \
                     AND revoked_at IS NULL AND expires_at > $1 \
                     AND EXISTS (SELECT 1 FROM refresh_token_families f WHERE f.id = refresh_tokens.family_id \
                                 AND f.revoked_at IS NULL AND f.expires_at > $1) \
                     RETURNING id, family_id, grant_sealed",
                )
                .bind(now)
                .bind(token_digest)
                .bind(client.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                let Some((id, family_id, grant_sealed)) = consumed else {
                    return Ok(None);
                };
                let successor = build(&$crate::store::ConsumedRefresh { id, family_id, grant_sealed })?;
                Self::insert_successor(&mut tx, &successor).await?;
                tx.commit().await?;
                Ok(Some(successor))
            }

            #[tracing::instrument(level = "debug", name = "store.refresh.replace_successor", skip_all)]
            async fn replace_unused_successor(
                &self,
                parent_id: &str,
                consumed_since: chrono::DateTime<chrono::Utc>,
                now: chrono::DateTime<chrono::Utc>,
                build: $crate::store::BuildSuccessor<'_>,
            ) -> $crate::store::Result<Option<$crate::store::Successor>> {
                let mut tx = self.pool.begin().await?;
                // The family's lock first, as in every other transaction on it.
                let family_alive = sqlx::query(
                    "UPDATE refresh_token_families SET revoked_at = revoked_at \
                     WHERE id = (SELECT family_id FROM refresh_tokens WHERE id = $1) \
                     AND revoked_at IS NULL AND expires_at > $2",
                )
                .bind(parent_id)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if !family_alive {
                    return Ok(None);
                }
                let replaced: Option<(String,)> = sqlx::query_as(
                    "UPDATE refresh_tokens SET revoked_at = $1 \
                     WHERE parent_id = $2 AND consumed_at IS NULL AND revoked_at IS NULL \
                     AND EXISTS (SELECT 1 FROM refresh_tokens p WHERE p.id = $2 AND p.consumed_at > $3) \
                     AND (SELECT COUNT(*) FROM refresh_tokens c WHERE c.parent_id = $2) = 1 \
                     RETURNING id",
                )
                .bind(now)
                .bind(parent_id)
                .bind(consumed_since)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((successor_id,)) = replaced else {
                    return Ok(None);
                };
                sqlx::query("UPDATE access_tokens SET revoked_at = $1 WHERE refresh_token_id = $2 AND revoked_at IS NULL")
                    .bind(now)
                    .bind(&successor_id)
                    .execute(&mut *tx)
                    .await?;
                let parent: (String, String, Vec<u8>) = sqlx::query_as(
                    "SELECT id, family_id, grant_sealed FROM refresh_tokens WHERE id = $1",
                )
                .bind(parent_id)
                .fetch_one(&mut *tx)
                .await?;
                let successor = build(&$crate::store::ConsumedRefresh {
                    id: parent.0,
                    family_id: parent.1,
                    grant_sealed: parent.2,
                })?;
                Self::insert_successor(&mut tx, &successor).await?;
                tx.commit().await?;
                Ok(Some(successor))
            }

            #[tracing::instrument(level = "debug", name = "store.refresh.find", skip_all)]
            async fn find_refresh_token(
                &self,
                token_digest: &[u8],
            ) -> $crate::store::Result<Option<$crate::store::StoredRefreshToken>> {
                type Row = (
                    String,
                    String,
                    String,
                    String,
                    Vec<u8>,
                    chrono::DateTime<chrono::Utc>,
                    chrono::DateTime<chrono::Utc>,
                    Option<chrono::DateTime<chrono::Utc>>,
                    Option<chrono::DateTime<chrono::Utc>>,
                    chrono::DateTime<chrono::Utc>,
                    Option<chrono::DateTime<chrono::Utc>>,
                );
                let row: Option<Row> = sqlx::query_as(
                    "SELECT t.id, t.family_id, t.client_id, f.user_id, t.grant_sealed, t.created_at, t.expires_at, \
                     t.consumed_at, t.revoked_at, f.expires_at, f.revoked_at \
                     FROM refresh_tokens t JOIN refresh_token_families f ON f.id = t.family_id \
                     WHERE t.token_digest = $1",
                )
                .bind(token_digest)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|r| $crate::store::StoredRefreshToken {
                    id: r.0,
                    family_id: r.1,
                    client_id: r.2,
                    user_id: r.3,
                    grant_sealed: r.4,
                    created_at: r.5,
                    expires_at: r.6,
                    consumed_at: r.7,
                    revoked_at: r.8,
                    family_expires_at: r.9,
                    family_revoked: r.10.is_some(),
                }))
            }

            #[tracing::instrument(level = "debug", name = "store.refresh.revoke_family", skip_all)]
            async fn revoke_family(
                &self,
                family_id: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<bool> {
                let mut tx = self.pool.begin().await?;
                let revoked = sqlx::query(
                    "UPDATE refresh_token_families SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(family_id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL")
                    .bind(now)
                    .bind(family_id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE access_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL")
                    .bind(now)
                    .bind(family_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(revoked)
            }

            #[tracing::instrument(level = "debug", name = "store.access_token.revoke", skip_all)]
            async fn revoke_access_token(
                &self,
                jti: &str,
                client: &$crate::domain::ClientId,
                expires_at: chrono::DateTime<chrono::Utc>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<()> {
                sqlx::query(
                    "INSERT INTO access_tokens (jti, code_id, client_id, expires_at, revoked_at, family_id, refresh_token_id) \
                     VALUES ($1, NULL, $2, $3, $4, NULL, NULL) \
                     ON CONFLICT (jti) DO UPDATE SET revoked_at = COALESCE(access_tokens.revoked_at, excluded.revoked_at)",
                )
                .bind(jti)
                .bind(client.as_str())
                .bind(expires_at)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(())
            }
        }
    };
}

pub(super) use impl_refresh_repository;
pub(super) use impl_repositories;
pub(super) use impl_sign_in_repositories;
