//! `Store`: every repository, and the database as a whole (migrate, epochs, prune).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    ApiRepository, ClientRepository, CodeRepository, ConsentRepository, GroupRepository,
    IdempotencyRepository, MasterKeyRepository, PendingRequestRepository, RefreshTokenRepository,
    RegistrationTokenRepository, Result, RoleRepository, SessionRepository, SigningKeyRepository,
    UserRepository,
};

/// Which database a store talks to (for logs and `/readyz` only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// The connection pool right now (for `/metrics`).
#[derive(Debug, Clone, Copy)]
pub struct PoolStats {
    pub connections: u32,
    pub idle: u32,
    pub max: u32,
}

/// Counters bumped with every change to a cached table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheEpochs {
    pub clients: i64,
    pub signing_keys: i64,
    pub master_keys: i64,
}

#[async_trait]
pub trait Store:
    ClientRepository
    + UserRepository
    + SigningKeyRepository
    + SessionRepository
    + PendingRequestRepository
    + ConsentRepository
    + CodeRepository
    + RefreshTokenRepository
    + MasterKeyRepository
    + ApiRepository
    + RoleRepository
    + GroupRepository
    + IdempotencyRepository
    + RegistrationTokenRepository
    + Send
    + Sync
{
    fn backend(&self) -> Backend;
    fn pool_stats(&self) -> PoolStats;
    /// Applies pending migrations (safe to run from several processes).
    async fn migrate(&self) -> Result<()>;
    async fn ping(&self) -> Result<()>;
    async fn cache_epochs(&self) -> Result<CacheEpochs>;
    /// Records `fingerprint` for `version` unless one is recorded; returns the
    /// fingerprint now on record.
    async fn claim_master_key_fingerprint(
        &self,
        version: u32,
        fingerprint: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Vec<u8>>;
    async fn close(&self);
    /// Deletes up to `batch` rows of one kind of expired state (see
    /// [`PRUNABLE`]); returns how many went. Safe to run from several
    /// replicas at once: each batch is one `DELETE`.
    async fn prune_expired(&self, what: Prunable, before: DateTime<Utc>, batch: u32)
    -> Result<u64>;
}

/// Expired state the housekeeping task removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prunable {
    BrowserSessions,
    AuthorizationRequests,
    SealedRequests,
    AuthorizationCodes,
    AccessTokens,
    RefreshTokens,
    RefreshTokenFamilies,
    IdempotencyKeys,
    RegistrationTokens,
}

pub const PRUNABLE: [Prunable; 9] = [
    Prunable::AuthorizationRequests,
    Prunable::SealedRequests,
    Prunable::BrowserSessions,
    Prunable::AuthorizationCodes,
    Prunable::AccessTokens,
    Prunable::RefreshTokens,
    Prunable::RefreshTokenFamilies,
    Prunable::IdempotencyKeys,
    Prunable::RegistrationTokens,
];

impl Prunable {
    pub fn as_str(self) -> &'static str {
        match self {
            Prunable::BrowserSessions => "browser_sessions",
            Prunable::AuthorizationRequests => "authorization_requests",
            Prunable::SealedRequests => "sealed_requests",
            Prunable::AuthorizationCodes => "authorization_codes",
            Prunable::AccessTokens => "access_tokens",
            Prunable::RefreshTokens => "refresh_tokens",
            Prunable::RefreshTokenFamilies => "refresh_token_families",
            Prunable::IdempotencyKeys => "admin_idempotency",
            Prunable::RegistrationTokens => "registration_tokens",
        }
    }

    /// One batch: the statement names only fixed tables and columns.
    pub(crate) fn delete_statement(self) -> &'static str {
        match self {
            Prunable::BrowserSessions => {
                "DELETE FROM browser_sessions WHERE id IN (SELECT id FROM browser_sessions WHERE expires_at < $1 LIMIT $2)"
            }
            Prunable::AuthorizationRequests => {
                "DELETE FROM authorization_requests WHERE id IN (SELECT id FROM authorization_requests WHERE expires_at < $1 LIMIT $2)"
            }
            Prunable::SealedRequests => {
                "DELETE FROM sealed_requests WHERE id IN (SELECT id FROM sealed_requests WHERE expires_at < $1 LIMIT $2)"
            }
            Prunable::AuthorizationCodes => {
                "DELETE FROM authorization_codes WHERE id IN (SELECT id FROM authorization_codes WHERE expires_at < $1 LIMIT $2)"
            }
            Prunable::AccessTokens => {
                "DELETE FROM access_tokens WHERE jti IN (SELECT jti FROM access_tokens WHERE expires_at < $1 LIMIT $2)"
            }
            Prunable::RefreshTokens => {
                "DELETE FROM refresh_tokens WHERE id IN (SELECT id FROM refresh_tokens WHERE expires_at < $1 LIMIT $2)"
            }
            Prunable::RefreshTokenFamilies => {
                "DELETE FROM refresh_token_families WHERE id IN (SELECT id FROM refresh_token_families WHERE expires_at < $1 LIMIT $2)"
            }
            Prunable::IdempotencyKeys => {
                "DELETE FROM admin_idempotency WHERE id IN (SELECT id FROM admin_idempotency WHERE expires_at < $1 LIMIT $2)"
            }
            Prunable::RegistrationTokens => {
                "DELETE FROM registration_tokens WHERE id IN (SELECT id FROM registration_tokens WHERE expires_at < $1 LIMIT $2)"
            }
        }
    }
}

/// The database as a whole, stamped onto each backend's store.
macro_rules! impl_store {
    ($store:ty) => {
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
pub(super) use impl_store;
