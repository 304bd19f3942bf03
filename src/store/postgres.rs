use std::str::FromStr;

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::{Backend, PoolSettings, Result};

pub(super) struct PgStore {
    pub(super) pool: PgPool,
}

impl PgStore {
    const BACKEND: Backend = Backend::Postgres;
    const MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

    pub(super) async fn connect(url: &str, settings: PoolSettings) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)?.application_name("authd");
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }
}

impl PgStore {
    /// A transaction holding the signing-key lock.
    async fn begin_key_lock(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        let mut tx = self.pool.begin().await?;
        // One key schedule decision at a time across replicas; released at
        // commit or rollback. The number is authd's own, arbitrary.
        sqlx::query("SELECT pg_advisory_xact_lock(7405189242)")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }
}

impl super::HasDb for PgStore {
    type Db = sqlx::Postgres;
}

super::clients::impl_client_repository!(PgStore);
super::users::impl_user_repository!(PgStore);
super::signing_keys::impl_signing_key_repository!(PgStore);
super::sessions::impl_session_repository!(PgStore);
super::pending_requests::impl_pending_request_repository!(PgStore);
super::consents::impl_consent_repository!(PgStore);
super::codes::impl_code_repository!(PgStore);
super::refresh_tokens::impl_refresh_token_repository!(PgStore);
super::master_keys::impl_master_key_repository!(PgStore);
super::apis::impl_api_repository!(PgStore);
super::roles::impl_role_repository!(PgStore);
super::groups::impl_group_repository!(PgStore);
super::idempotency::impl_idempotency_repository!(PgStore);
super::registration_tokens::impl_registration_token_repository!(PgStore);
super::database::impl_store!(PgStore);
