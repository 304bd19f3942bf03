//! `spawn_app`: a fresh database per test (a temp-dir SQLite file, or a new
//! PostgreSQL database on `TEST_DATABASE_URL` that is dropped afterwards),
//! the app built by `startup.rs` exactly as the binary builds it.
use std::sync::Arc;
use std::time::Duration;

use authd::clock::SystemClock;
use authd::config::{Config, LogFormat, MasterKeySource};
use authd::crypto::MasterKey;
use authd::oauth::registration::{self, NewClient};
use authd::startup::{Application, Runtime, StartupError};
use secrecy::ExposeSecret;
use sqlx::Connection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one `#[tokio::test]` per backend for each listed test body
/// `async fn name(backend: Backend)`.
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            }
        )+
    };
}
pub(crate) use on_both_backends;

const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database that exists for one test.
pub struct TestDatabase {
    pub url: String,
    _dir: tempfile::TempDir,
    postgres: Option<(String, String)>,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.postgres.take() else {
            return;
        };
        // Drop runs outside async; a short-lived runtime on its own thread
        // removes the database (FORCE closes the app's open connections).
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
                )))
                .execute(&mut admin)
                .await
                .ok()
            })
        })
        .join();
    }
}

/// Says once per run why the PostgreSQL half is skipped. Written to the
/// stderr handle directly: libtest captures `eprintln!` of passing tests.
fn skip_notice(reason: &str) {
    use std::io::Write;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: the PostgreSQL tests pass without running: {reason}. \
             Start PostgreSQL or set TEST_DATABASE_URL (in CI this is a failure)."
        );
    });
}

/// A fresh database, or `None` (with the reason printed) when PostgreSQL is
/// not reachable outside CI. In CI a missing PostgreSQL fails the test.
pub async fn test_database(backend: Backend) -> Option<TestDatabase> {
    let dir = tempfile::tempdir().expect("temp dir");
    match backend {
        Backend::Sqlite => Some(TestDatabase {
            url: format!("sqlite://{}", dir.path().join("authd.db").display()),
            _dir: dir,
            postgres: None,
        }),
        Backend::Postgres => {
            let admin_url = std::env::var("TEST_DATABASE_URL")
                .unwrap_or_else(|_| DEFAULT_TEST_DATABASE_URL.to_owned());
            let mut admin = match sqlx::PgConnection::connect(&admin_url).await {
                Ok(connection) => connection,
                Err(error) => {
                    if std::env::var_os("CI").is_some() {
                        panic!(
                            "PostgreSQL is required in CI but {admin_url} does not answer: {error}"
                        );
                    }
                    skip_notice(&format!("{admin_url} does not answer: {error}"));
                    return None;
                }
            };
            let name = format!("authd_test_{}", uuid::Uuid::new_v4().simple());
            sqlx::query(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
                .execute(&mut admin)
                .await
                .expect("create test database");
            let mut url = url::Url::parse(&admin_url).expect("TEST_DATABASE_URL is a URL");
            url.set_path(&name);
            Some(TestDatabase {
                url: url.to_string(),
                _dir: dir,
                postgres: Some((admin_url, name)),
            })
        }
    }
}

/// The configuration a test app runs with: built in code, not read from
/// the environment.
pub fn test_config(database_url: &str, master_key: &MasterKey) -> Config {
    let mut config = Config::from_lookup(|_| None).expect("default configuration");
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.database_url = database_url.to_owned();
    config.master_key = MasterKeySource::Inline(master_key.to_base64().into());
    config.log_format = LogFormat::Pretty;
    config.workers = 1;
    config.cache_refresh = Duration::from_millis(100);
    config
}

pub struct TestApp {
    pub issuer: String,
    pub port: u16,
    pub http: reqwest::Client,
    pub master_key: MasterKey,
    pub config: Config,
    handle: actix_web::dev::ServerHandle,
    // Last: the database outlives the server that uses it.
    pub database: Arc<TestDatabase>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Registers a client through the same code the CLI runs.
    pub async fn register(&self, new: NewClient) -> (String, Option<String>) {
        let runtime = Runtime::open(&self.config, false, &SystemClock)
            .await
            .expect("open database");
        let credentials = registration::register(
            runtime.store.as_ref(),
            &runtime.client_secret_digester(),
            &SystemClock,
            new,
        )
        .await
        .expect("register client");
        runtime.store.close().await;
        (
            credentials.client_id,
            credentials
                .client_secret
                .map(|s| s.expose_secret().to_owned()),
        )
    }

    /// A confidential client_credentials client allowed `scopes`.
    pub async fn machine_client(&self, scopes: &[&str]) -> (String, String) {
        let (id, secret) = self
            .register(NewClient {
                name: "Test machine".into(),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            })
            .await;
        (id, secret.expect("confidential client has a secret"))
    }

    /// `GET path`, expecting JSON.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        response.json().await.expect("a JSON body")
    }

    /// A client-credentials request with `client_secret_basic`.
    pub async fn client_credentials(&self, id: &str, secret: &str) -> reqwest::Response {
        self.http
            .post(self.url("/token"))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
    }

    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}

pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    let database = Arc::new(test_database(backend).await?);
    Some(
        spawn_app_on(database, MasterKey::generate(), |_| {})
            .await
            .expect("app starts"),
    )
}

/// Starts an app on an existing database (restarts, several replicas).
pub async fn spawn_app_on(
    database: Arc<TestDatabase>,
    master_key: MasterKey,
    adjust: impl FnOnce(&mut Config),
) -> Result<TestApp, StartupError> {
    let mut config = test_config(&database.url, &master_key);
    adjust(&mut config);
    let app = Application::build(config.clone(), true).await?;
    let port = app.port();
    let issuer = app.issuer().to_owned();
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    Ok(TestApp {
        issuer,
        port,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        master_key,
        config,
        handle,
        database,
    })
}

/// Asserts the headers every token-endpoint response carries (RFC 6749 §5.1).
pub fn assert_no_store(response: &reqwest::Response) {
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["pragma"], "no-cache");
}
