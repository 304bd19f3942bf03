//! Storage: a repository trait per entity, implemented once for PostgreSQL
//! and once for SQLite, picked from `DATABASE_URL` by [`connect`]. Business
//! logic holds an `Arc<dyn Store>` and never knows which backend it talks to.
//! Only this module knows sqlx. Backends hold SQL and row mapping only;
//! digests, sealing and state rules live above the trait.
//!
//! A file per repository holds its trait, its records and its
//! implementation, written once as a macro (`impl_consent_repository!`, …)
//! that `postgres.rs` and `sqlite.rs` stamp onto their store; `database.rs`
//! holds `Store` itself and `rows.rs` the row types. Every statement is
//! plain SQL that PostgreSQL and SQLite both accept (`$n` placeholders,
//! `ON CONFLICT DO NOTHING`), and every bound type maps on both. Statements
//! that must differ are written per backend: the signing-key lock in the
//! backend's own module; the refresh rotation's (PostgreSQL's
//! data-modifying CTEs, which SQLite lacks) in `refresh_tokens.rs`, the two
//! side by side below the shared macro, which calls them.
//!
//! Why macros and not generics: a generic `impl<S: SqlBackend>
//! ConsentRepository for S` was tried with sqlx 0.9. It compiles and passes
//! the contract tests on both backends, but needs nine bounds on the impl:
//! `&mut DB::Connection: Executor`, `DB::Arguments: IntoArguments<DB>`,
//! `Encode + Type` for `String`, `&str` and `DateTime<Utc>`, `Decode` for
//! those read back, `usize: ColumnIndex<DB::Row>` for tuple rows, and a
//! trait of our own for `rows_affected` (each backend's `QueryResult` has it
//! as an inherent method only). A trait's where-clause is not implied where
//! the trait is used (rust-lang/rust#20671), so these bounds cannot be named
//! once: every impl, and every helper taking a transaction, would repeat
//! them, growing with each column type (`Vec<u8>`, `i32`, `i64`, `bool`,
//! options, `FromRow` rows). A macro checks the same code against each
//! backend for none of that; its cost is that rustfmt leaves its body alone.
use std::sync::Arc;

mod apis;
mod clients;
mod codes;
mod consents;
mod database;
mod groups;
mod idempotency;
mod master_keys;
mod pending_requests;
mod postgres;
mod refresh_tokens;
mod registration_tokens;
mod roles;
pub(crate) mod rows;
mod sessions;
mod signing_keys;
mod sqlite;
mod users;

pub use apis::{ApiRepository, LegacyApiSeed};
pub use clients::ClientRepository;
pub use codes::{AccessTokenRecord, CodeRecord, CodeRepository, RedeemedCode};
pub use consents::{ConsentRecord, ConsentRepository};
pub use database::{Backend, CacheEpochs, PRUNABLE, PoolStats, Prunable, Store};
pub use groups::GroupRepository;
pub use idempotency::{IdempotencyClaim, IdempotencyRecord, IdempotencyRepository};
pub use master_keys::{
    MasterKeyRepository, MasterKeyVersion, Resealed, SEALED_COLUMNS, SealedColumn,
};
pub use pending_requests::{PendingRequestRecord, PendingRequestRepository};
pub use refresh_tokens::{
    BuildSuccessor, ConsumedRefresh, FamilyRecord, FamilyUser, RefreshTokenRecord,
    RefreshTokenRepository, StoredRefreshToken, Successor,
};
pub use registration_tokens::{RegistrationTokenRecord, RegistrationTokenRepository};
pub use roles::{RoleHolders, RoleRepository};
pub use sessions::{SessionRecord, SessionRepository};
pub use signing_keys::{
    KeySchedule, RevokeOutcome, RotateOutcome, ScheduleOutcome, SigningKeyRecord,
    SigningKeyRepository,
};
pub use users::{Profile, UserRepository};

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
    /// A check made inside a transaction refused the row; nothing changed.
    #[error("refused: {0}")]
    Refused(&'static str),
    #[error("must start with postgres://, postgresql:// or sqlite:")]
    UnsupportedUrl,
    #[error("cannot create the SQLite database or its directory {path}: {source}")]
    SqliteDirectory {
        path: String,
        source: std::io::Error,
    },
}

impl Error {
    /// The database cannot be reached right now (as opposed to a bug or a
    /// refused row): the connection failed or was cut, the pool timed out
    /// or was closed, or the server is shutting down (SQLSTATE class 08
    /// connection exception, 57P01–57P03 operator intervention).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Database(error) => match error {
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed => true,
                sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                    code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03")
                }),
                _ => false,
            },
            _ => false,
        }
    }

    /// The statement lost a lock race and can be retried as it is: SQLite
    /// `SQLITE_BUSY`/`SQLITE_LOCKED` (5/6, with their extended codes) once
    /// its busy timeout ran out; PostgreSQL serialization failure, deadlock
    /// or `lock_not_available` (40001, 40P01, 55P03).
    pub fn is_busy(&self) -> bool {
        let Error::Database(sqlx::Error::Database(db)) = self else {
            return false;
        };
        let Some(code) = db.code() else {
            return false;
        };
        if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
            // The extended result code; the primary code is its low byte.
            return code
                .parse::<u32>()
                .is_ok_and(|code| matches!(code & 0xff, 5 | 6));
        }
        // PostgreSQL SQLSTATEs (also all digits at times: 42501 is not
        // busy, hence the check of the driver above).
        db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
            .is_some()
            && matches!(code.as_ref(), "40001" | "40P01" | "55P03")
    }
}

/// The sqlx database type behind a store (for helpers that take a transaction).
trait HasDb {
    type Db: sqlx::Database;
}

const BUMP_EPOCH: &str = "UPDATE cache_epochs SET epoch = epoch + 1 WHERE name = $1";

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

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

    /// A second writer on a locked SQLite file (busy timeout 0) gets
    /// SQLITE_BUSY: a lock race to retry, not an outage.
    #[tokio::test]
    async fn a_lost_sqlite_lock_race_is_busy_and_not_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("busy.db"))
            .create_if_missing(true)
            .busy_timeout(std::time::Duration::ZERO);
        let mut first = SqliteConnection::connect_with(&options).await.unwrap();
        let mut second = SqliteConnection::connect_with(&options).await.unwrap();
        sqlx::query("CREATE TABLE t (x INTEGER)")
            .execute(&mut first)
            .await
            .unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut first)
            .await
            .unwrap();
        let error: Error = sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut second)
            .await
            .expect_err("the write lock is held")
            .into();
        assert!(error.is_busy(), "{error}");
        assert!(!error.is_unavailable(), "{error}");
        assert!(!Error::Refused("x").is_busy());
        assert!(!Error::Database(sqlx::Error::PoolTimedOut).is_busy());
    }
}
