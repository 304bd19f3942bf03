use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::SqlitePool;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{Backend, Error, PoolSettings, Result};

pub(super) struct SqliteStore {
    pub(super) pool: SqlitePool,
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
        prepare_private_files(url, options.get_filename())?;
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }
}

/// The database holds usernames, emails, consents and password hashes: a
/// new directory is created 0700 and a new database file 0600 before
/// SQLite opens it (SQLite gives the `-wal` and `-shm` files the database
/// file's mode). Existing files readable by others are reported, as the
/// master key file is, and left as they are.
fn prepare_private_files(url: &str, path: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let query = url.split_once('?').map_or("", |(_, query)| query);
    let mode = |value: &str| query.split('&').any(|pair| pair == format!("mode={value}"));
    // An in-memory database has no files (sqlx names it
    // `file:sqlx-in-memory-N`, which is not a path to create).
    if url.contains(":memory:") || mode("memory") || path.as_os_str().is_empty() {
        return Ok(());
    }
    // A read-only database is opened as it is; its modes are still checked.
    let create = !mode("ro");
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty())
        && create
        && !dir.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| Error::SqliteDirectory {
                path: dir.display().to_string(),
                source,
            })?;
    }
    let created = if create {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map(drop)
    } else {
        Ok(())
    };
    match created {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(source) => {
            return Err(Error::SqliteDirectory {
                path: path.display().to_string(),
                source,
            });
        }
    }
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        let Ok(metadata) = std::fs::metadata(&file) else {
            continue;
        };
        let mode = metadata.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %file.display(),
                mode = format!("{:o}", mode & 0o777),
                "the database file is readable by others than its owner; chmod 600 it"
            );
        }
    }
    Ok(())
}

impl SqliteStore {
    /// A transaction holding the signing-key lock.
    async fn begin_key_lock(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        // IMMEDIATE takes the write lock at once: no other writer, in this
        // process or another, decides the schedule at the same time.
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }
}

impl super::HasDb for SqliteStore {
    type Db = sqlx::Sqlite;
}

super::clients::impl_client_repository!(SqliteStore);
super::users::impl_user_repository!(SqliteStore);
super::signing_keys::impl_signing_key_repository!(SqliteStore);
super::sessions::impl_session_repository!(SqliteStore);
super::pending_requests::impl_pending_request_repository!(SqliteStore);
super::consents::impl_consent_repository!(SqliteStore);
super::codes::impl_code_repository!(SqliteStore);
super::refresh_tokens::impl_refresh_token_repository!(SqliteStore);
super::master_keys::impl_master_key_repository!(SqliteStore);
super::apis::impl_api_repository!(SqliteStore);
super::roles::impl_role_repository!(SqliteStore);
super::groups::impl_group_repository!(SqliteStore);
super::idempotency::impl_idempotency_repository!(SqliteStore);
super::registration_tokens::impl_registration_token_repository!(SqliteStore);
super::database::impl_store!(SqliteStore);
