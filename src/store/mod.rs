//! Storage: a repository trait per entity, implemented once for PostgreSQL
//! and once for SQLite, picked from `DATABASE_URL` by [`connect`]. Business
//! logic holds an `Arc<dyn Store>` and never knows which backend it talks to.
//! Only this module knows sqlx. Backends hold SQL and row mapping only;
//! digests, sealing and state rules live above the trait.
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::{Client, ClientId, KeyState, Kid, SecretDigest, User, UserId};

mod postgres;
mod rows;
mod sql;
mod sqlite;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0} already exists")]
    Conflict(&'static str),
    #[error("stored {entity} {id} is unreadable: {problem}")]
    Corrupt {
        entity: &'static str,
        id: String,
        problem: String,
    },
    #[error("must start with postgres://, postgresql:// or sqlite:")]
    UnsupportedUrl,
    #[error("cannot create the SQLite directory {path}: {source}")]
    SqliteDirectory {
        path: String,
        source: std::io::Error,
    },
}

/// Which database a store talks to (for logs and `/readyz` only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A signing key as stored: the public half in the clear, the private half
/// sealed under the master key with the kid as associated data.
#[derive(Clone)]
pub struct SigningKeyRecord {
    pub kid: Kid,
    pub alg: String,
    pub state: KeyState,
    /// base64url big-endian modulus and exponent, as in the JWK (RFC 7518 §6.3.1).
    pub public_n: String,
    pub public_e: String,
    pub private_key_sealed: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub activated_at: Option<DateTime<Utc>>,
    pub retired_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// Counters bumped with every change to a cached table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheEpochs {
    pub clients: i64,
    pub signing_keys: i64,
}

#[async_trait]
pub trait ClientRepository {
    async fn insert_client(&self, client: &Client) -> Result<()>;
    async fn find_client(&self, id: &ClientId) -> Result<Option<Client>>;
    async fn list_clients(&self) -> Result<Vec<Client>>;
    /// Returns whether a client was deleted.
    async fn delete_client(&self, id: &ClientId) -> Result<bool>;
    /// Returns whether the client exists and is confidential.
    async fn replace_client_secret(
        &self,
        id: &ClientId,
        secret: &SecretDigest,
        now: DateTime<Utc>,
    ) -> Result<bool>;
}

#[async_trait]
pub trait UserRepository {
    /// `Error::Conflict` when the username is taken.
    async fn insert_user(&self, user: &User) -> Result<()>;
    async fn list_users(&self) -> Result<Vec<User>>;
    /// Returns whether a user was found.
    async fn disable_user(&self, id: UserId) -> Result<bool>;
}

#[async_trait]
pub trait SigningKeyRepository {
    /// Inserts `key` as the active key unless one exists already (one
    /// statement; a unique index makes concurrent starts safe). Returns
    /// whether it was inserted.
    async fn insert_first_active_key(&self, key: &SigningKeyRecord) -> Result<bool>;
    async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>>;
    /// In one transaction: the active key becomes retired, `key` active.
    async fn replace_active_key(&self, key: &SigningKeyRecord, now: DateTime<Utc>) -> Result<()>;
}

#[async_trait]
pub trait Store: ClientRepository + UserRepository + SigningKeyRepository + Send + Sync {
    fn backend(&self) -> Backend;
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
}

/// Connection settings that do not come from the URL.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: std::time::Duration,
}

/// Opens the database named by `url`: `postgres://…` / `postgresql://…` or
/// `sqlite:…` (the SQLite file and its directory are created if missing).
pub async fn connect(url: &str, settings: PoolSettings) -> Result<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgStore::connect(url, settings).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::connect(url, settings).await?))
    } else {
        Err(Error::UnsupportedUrl)
    }
}
