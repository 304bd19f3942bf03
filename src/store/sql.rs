//! The repository implementations, written once for both backends.
//!
//! Every statement here is plain SQL that PostgreSQL and SQLite both accept
//! (`$n` placeholders, `ON CONFLICT DO NOTHING`), and every bound type maps
//! on both. A generic `impl<DB: Database>` would need a wall of sqlx trait
//! bounds per type, so a macro stamps the same code onto each backend's pool
//! instead. Statements that must differ (locking, later) are written in the
//! backend's own module.

pub(super) const BUMP_EPOCH: &str = "UPDATE cache_epochs SET epoch = epoch + 1 WHERE name = $1";

macro_rules! impl_repositories {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::ClientRepository for $store {
            #[tracing::instrument(level = "debug", name = "store.client.insert", skip_all, fields(client_id = %client.id))]
            async fn insert_client(&self, client: &$crate::domain::Client) -> $crate::store::Result<()> {
                let row = $crate::store::rows::ClientRow::from_client(client);
                let mut tx = self.pool.begin().await?;
                let sql = "INSERT INTO clients (id, name, kind, secret_digest, secret_key_version, redirect_uris, grant_types, scope, audiences, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
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
                let sql = "SELECT id, name, kind, secret_digest, secret_key_version, redirect_uris, grant_types, scope, audiences, created_at, updated_at FROM clients WHERE id = $1";
                sqlx::query_as::<_, $crate::store::rows::ClientRow>(sql)
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .map(TryInto::try_into)
                    .transpose()
            }

            #[tracing::instrument(level = "debug", name = "store.client.list", skip_all)]
            async fn list_clients(&self) -> $crate::store::Result<Vec<$crate::domain::Client>> {
                let sql = "SELECT id, name, kind, secret_digest, secret_key_version, redirect_uris, grant_types, scope, audiences, created_at, updated_at FROM clients ORDER BY created_at, id";
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
            ) -> $crate::store::Result<bool> {
                let mut tx = self.pool.begin().await?;
                let deleted = sqlx::query("DELETE FROM clients WHERE id = $1")
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
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
                    "INSERT INTO users (id, username, password_hash, disabled, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(user.id.to_string())
                .bind(user.username.as_str())
                .bind(&user.password_hash)
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
                    "SELECT id, username, password_hash, disabled, created_at FROM users \
                     ORDER BY created_at, id",
                )
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(TryInto::try_into)
                .collect()
            }

            #[tracing::instrument(level = "debug", name = "store.user.disable", skip_all, fields(user_id = %id))]
            async fn disable_user(&self, id: $crate::domain::UserId) -> $crate::store::Result<bool> {
                let updated = sqlx::query("UPDATE users SET disabled = TRUE WHERE id = $1")
                    .bind(id.to_string())
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(updated == 1)
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::SigningKeyRepository for $store {
            #[tracing::instrument(level = "debug", name = "store.signing_key.insert_first", skip_all, fields(kid = %key.kid))]
            async fn insert_first_active_key(
                &self,
                key: &$crate::store::SigningKeyRecord,
            ) -> $crate::store::Result<bool> {
                let mut tx = self.pool.begin().await?;
                let sql = "INSERT INTO signing_keys (kid, alg, state, public_n, public_e, private_key_sealed, created_at, activated_at, retired_at) VALUES ($1, $2, 'active', $3, $4, $5, $6, $7, NULL) \
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
                let sql = "SELECT kid, alg, state, public_n, public_e, private_key_sealed, created_at, activated_at, retired_at FROM signing_keys ORDER BY created_at, kid";
                sqlx::query_as::<_, $crate::store::rows::SigningKeyRow>(sql)
                    .fetch_all(&self.pool)
                    .await?
                    .into_iter()
                    .map(TryInto::try_into)
                    .collect()
            }

            #[tracing::instrument(level = "debug", name = "store.signing_key.replace_active", skip_all, fields(kid = %key.kid))]
            async fn replace_active_key(
                &self,
                key: &$crate::store::SigningKeyRecord,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "UPDATE signing_keys SET state = 'retired', retired_at = $1 WHERE state = 'active'",
                )
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let sql = "INSERT INTO signing_keys (kid, alg, state, public_n, public_e, private_key_sealed, created_at, activated_at, retired_at) VALUES ($1, $2, 'active', $3, $4, $5, $6, $7, NULL)";
                sqlx::query(sql)
                    .bind(&key.kid.0)
                    .bind(&key.alg)
                    .bind(&key.public_n)
                    .bind(&key.public_e)
                    .bind(&key.private_key_sealed)
                    .bind(key.created_at)
                    .bind(key.activated_at)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query($crate::store::sql::BUMP_EPOCH)
                    .bind("signing_keys")
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            fn backend(&self) -> $crate::store::Backend {
                Self::BACKEND
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
                    "INSERT INTO master_key_fingerprints (version, fingerprint, created_at) \
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
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
        }
    };
}

pub(super) use impl_repositories;
