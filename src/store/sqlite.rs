use std::str::FromStr;

use sqlx::SqlitePool;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{Backend, Error, PoolSettings, Result};

pub(super) struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    const BACKEND: Backend = Backend::Sqlite;
    const MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

    /// Creates the database file and its directory when missing, so that
    /// `cargo run` works on a fresh checkout.
    pub(super) async fn connect(url: &str, settings: PoolSettings) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(settings.acquire_timeout);
        if let Some(dir) = options
            .get_filename()
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|source| Error::SqliteDirectory {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }
}

impl SqliteStore {
    /// A transaction holding the signing-key lock.
    async fn begin_key_lock(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        // IMMEDIATE takes the write lock at once: no other writer, in this
        // process or another, decides the schedule at the same time.
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }
}

impl super::sql::HasDb for SqliteStore {
    type Db = sqlx::Sqlite;
}

super::sql::impl_repositories!(SqliteStore);
