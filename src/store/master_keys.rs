//! Master-key versions, digest keys and re-sealing: `MasterKeyRepository`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::Result;

/// One master key version as the database records it.
#[derive(Debug, Clone)]
pub struct MasterKeyVersion {
    pub version: u32,
    pub fingerprint: Vec<u8>,
    pub created_at: DateTime<Utc>,
    /// When every value sealed under an earlier version was re-sealed under
    /// this one; `None` while a rotation to it is under way.
    pub resealed_at: Option<DateTime<Utc>>,
}

/// A column of sealed values that a master-key rotation re-seals. Each row
/// is keyed by a text id, which is also the sealed value's associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedColumn {
    DigestKeys,
    SigningKeys,
    AuthorizationCodes,
    RefreshTokens,
    IdempotentResponses,
}

pub const SEALED_COLUMNS: [SealedColumn; 5] = [
    SealedColumn::DigestKeys,
    SealedColumn::SigningKeys,
    SealedColumn::AuthorizationCodes,
    SealedColumn::RefreshTokens,
    SealedColumn::IdempotentResponses,
];

impl SealedColumn {
    pub fn as_str(self) -> &'static str {
        match self {
            SealedColumn::DigestKeys => "digest_keys",
            SealedColumn::SigningKeys => "signing_keys",
            SealedColumn::AuthorizationCodes => "authorization_codes",
            SealedColumn::RefreshTokens => "refresh_tokens",
            SealedColumn::IdempotentResponses => "admin_idempotency",
        }
    }

    /// A page of rows after `$1` in id order, at most `$2`: fixed names only.
    pub(crate) fn select_statement(self) -> &'static str {
        match self {
            SealedColumn::DigestKeys => {
                "SELECT purpose, key_sealed FROM digest_keys WHERE purpose > $1 ORDER BY purpose LIMIT $2"
            }
            SealedColumn::SigningKeys => {
                "SELECT kid, private_key_sealed FROM signing_keys WHERE kid > $1 ORDER BY kid LIMIT $2"
            }
            SealedColumn::AuthorizationCodes => {
                "SELECT id, grant_sealed FROM authorization_codes WHERE id > $1 ORDER BY id LIMIT $2"
            }
            SealedColumn::RefreshTokens => {
                "SELECT id, grant_sealed FROM refresh_tokens WHERE id > $1 ORDER BY id LIMIT $2"
            }
            SealedColumn::IdempotentResponses => {
                "SELECT id, response_sealed FROM admin_idempotency WHERE id > $1 AND response_sealed IS NOT NULL ORDER BY id LIMIT $2"
            }
        }
    }

    /// Replaces one value only if it is still the one that was read, so a
    /// row changed meanwhile (a key removed, say) is left to the next pass.
    pub(crate) fn update_statement(self) -> &'static str {
        match self {
            SealedColumn::DigestKeys => {
                "UPDATE digest_keys SET key_sealed = $1 WHERE purpose = $2 AND key_sealed = $3"
            }
            SealedColumn::SigningKeys => {
                "UPDATE signing_keys SET private_key_sealed = $1 WHERE kid = $2 AND private_key_sealed = $3"
            }
            SealedColumn::AuthorizationCodes => {
                "UPDATE authorization_codes SET grant_sealed = $1 WHERE id = $2 AND grant_sealed = $3"
            }
            SealedColumn::RefreshTokens => {
                "UPDATE refresh_tokens SET grant_sealed = $1 WHERE id = $2 AND grant_sealed = $3"
            }
            SealedColumn::IdempotentResponses => {
                "UPDATE admin_idempotency SET response_sealed = $1 WHERE id = $2 AND response_sealed = $3"
            }
        }
    }
}

/// A re-sealed value: row id, the value read, its replacement.
#[derive(Debug, Clone)]
pub struct Resealed {
    pub id: String,
    pub old: Vec<u8>,
    pub new: Vec<u8>,
}

#[async_trait]
pub trait MasterKeyRepository {
    /// Every registered version, oldest first.
    async fn master_key_versions(&self) -> Result<Vec<MasterKeyVersion>>;
    /// Registers `version` (not yet re-sealed) and bumps the `master_keys`
    /// epoch; `false` if that version exists (another rotation won).
    async fn register_master_key(
        &self,
        version: u32,
        fingerprint: &[u8],
        now: DateTime<Utc>,
    ) -> Result<bool>;
    /// Records that nothing sealed under an earlier version remains.
    async fn finish_master_key_rotation(&self, version: u32, now: DateTime<Utc>) -> Result<()>;
    /// `(purpose, sealed key)` of every stored digest key.
    async fn digest_keys(&self) -> Result<Vec<(String, Vec<u8>)>>;
    /// Stores a digest key unless one is stored for `purpose`.
    async fn insert_digest_key(
        &self,
        purpose: &str,
        sealed: &[u8],
        now: DateTime<Utc>,
    ) -> Result<()>;
    /// Up to `limit` `(id, sealed)` rows with ids after `after`, in id order.
    async fn sealed_values(
        &self,
        column: SealedColumn,
        after: &str,
        limit: u32,
    ) -> Result<Vec<(String, Vec<u8>)>>;
    /// Records (or refreshes) the key ids `replica` holds, and deletes the
    /// records of replicas not seen for a day.
    async fn record_master_key_holder(
        &self,
        replica: &str,
        key_ids: &str,
        now: DateTime<Utc>,
    ) -> Result<()>;
    /// Forgets `replica` (it is stopping).
    async fn forget_master_key_holder(&self, replica: &str) -> Result<()>;
    /// `(replica, key ids)` of every replica seen since `since` (reads
    /// only).
    async fn master_key_holders(&self, since: DateTime<Utc>) -> Result<Vec<(String, String)>>;
    /// Applies the replacements in one transaction; returns how many rows
    /// still held the value that was read.
    async fn replace_sealed_values(&self, column: SealedColumn, values: &[Resealed])
    -> Result<u64>;
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
                sqlx::query($crate::store::BUMP_EPOCH)
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
                sqlx::query($crate::store::BUMP_EPOCH)
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
