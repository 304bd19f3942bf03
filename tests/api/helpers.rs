//! `spawn_app`: a fresh database per test (a temp-dir SQLite file, or a new
//! PostgreSQL database on `TEST_DATABASE_URL` that is dropped afterwards),
//! the app built by `startup/` exactly as the binary builds it.
use std::sync::Arc;
use std::time::Duration;

use authd::clients::registration::{self, NewClient};
use authd::clock::SystemClock;
use authd::config::{Config, LogFormat, MasterKeySource};
use authd::crypto::MasterKey;
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
    // Every test client is 127.0.0.1: the limits get their own tests
    // (rate_limits.rs), the others must not trip them.
    let generous: authd::limits::buckets::Rate = "100000/sec".parse().unwrap();
    config.rate_limits.ip = generous;
    config.rate_limits.well_known = generous;
    config.rate_limits.login = generous;
    config.rate_limits.introspect = generous;
    config.rate_limits.register = generous;
    config.rate_limits.client_auth_failures = generous;
    for (_, rate) in &mut config.rate_limits.tiers {
        *rate = generous;
    }
    config
}

pub struct TestApp {
    pub issuer: String,
    pub port: u16,
    pub http: reqwest::Client,
    pub master_key: MasterKey,
    pub config: Config,
    /// The `/metrics` port when `config.metrics_bind` was set.
    pub metrics_port: Option<u16>,
    /// The admin API's port when `config.admin_bind` was set.
    pub admin_port: Option<u16>,
    handle: actix_web::dev::ServerHandle,
    // Last: the database outlives the server that uses it.
    pub database: Arc<TestDatabase>,
}

impl TestApp {
    /// Where the app's limits count now, as `/metrics` says
    /// (`authd_rate_limit_backend`); needs `config.metrics_bind`.
    pub async fn rate_limit_backend(&self) -> String {
        let port = self
            .metrics_port
            .expect("metrics are served (set config.metrics_bind)");
        let text = self
            .http
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for backend in ["redis", "local"] {
            if text.contains(&format!(
                "authd_rate_limit_backend{{backend=\"{backend}\"}} 1"
            )) {
                return backend.into();
            }
        }
        panic!("/metrics names no rate-limit backend:\n{text}");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Makes sure an API defines each of `scopes` (OpenID Connect's own
    /// aside): scopes not defined yet join the API named by the issuer,
    /// open to any user (`any`), as the migration made for clients
    /// registered before APIs. Their tokens' `aud` stays the issuer.
    pub async fn define_scopes(&self, scopes: &[String]) {
        let runtime = Runtime::open(&self.config, false, &SystemClock)
            .await
            .expect("open database");
        let store = runtime.store.as_ref();
        let apis = store.list_apis().await.unwrap();
        let missing: Vec<String> = scopes
            .iter()
            .filter(|s| !authd::domain::scope::IDENTITY_SCOPES.contains(&s.as_str()))
            .filter(|s| !apis.iter().any(|api| api.defines(s)))
            .cloned()
            .collect();
        if !missing.is_empty() {
            match apis
                .iter()
                .find(|api| api.identifier.as_str() == self.issuer)
            {
                Some(api) => {
                    let mut all: Vec<String> = api.scopes.iter().map(|s| s.name.clone()).collect();
                    all.extend(missing);
                    authd::access::apis::update(
                        store,
                        &SystemClock,
                        &self.issuer,
                        authd::access::apis::ApiChanges {
                            scopes: Some(all),
                            ..Default::default()
                        },
                    )
                    .await
                    .expect("add scopes to the test API");
                }
                None => {
                    authd::access::apis::create(
                        store,
                        &SystemClock,
                        authd::access::apis::ApiInput {
                            identifier: self.issuer.clone(),
                            name: "Test API".into(),
                            scopes: missing,
                            user_access: Some("any".into()),
                            ..Default::default()
                        },
                    )
                    .await
                    .expect("create the test API");
                }
            }
        }
        runtime.store.close().await;
    }

    /// Registers a client through the same code the CLI runs (after
    /// [`Self::define_scopes`] for its scopes).
    pub async fn register(&self, new: NewClient) -> (String, Option<String>) {
        self.define_scopes(&new.scopes).await;
        let runtime = Runtime::open(&self.config, false, &SystemClock)
            .await
            .expect("open database");
        let credentials = registration::register(
            runtime.store.as_ref(),
            &runtime.client_secret_digester(),
            &SystemClock,
            &self.config.rate_limits,
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
    let metrics_port = app.metrics_port();
    let admin_port = app.admin_port();
    let issuer = app.issuer().to_owned();
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    Ok(TestApp {
        issuer,
        port,
        metrics_port,
        admin_port,
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

/// A client that signs users in (authorization_code), as registered.
#[derive(Debug, Clone)]
pub struct WebClient {
    pub id: String,
    /// `None` for a public client.
    pub secret: Option<String>,
    pub redirect_uri: String,
}

/// A PKCE pair (RFC 7636 §4.1, §4.2 S256).
#[derive(Debug, Clone)]
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

pub fn pkce() -> Pkce {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use sha2::Digest;
    let verifier = URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes().repeat(2));
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

pub const PASSWORD: &str = "correct horse battery";

impl TestApp {
    /// Registers a client that signs users in: confidential with
    /// `https://app.example/cb`, or public (an SPA) with `https://spa.example/cb`.
    /// OIDC scopes need no registration; `scopes` are the API scopes.
    pub async fn web_client(&self, public: bool, scopes: &[&str]) -> WebClient {
        self.web_client_with(NewClient {
            name: if public { "Test SPA" } else { "Test web app" }.into(),
            public,
            redirect_uris: vec![
                if public {
                    "https://spa.example/cb"
                } else {
                    "https://app.example/cb"
                }
                .into(),
            ],
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            post_logout_redirect_uris: vec!["https://app.example/bye".into()],
            ..Default::default()
        })
        .await
    }

    /// Registers `new` (its first redirect URI is the one used).
    pub async fn web_client_with(&self, new: NewClient) -> WebClient {
        let redirect_uri = new.redirect_uris[0].clone();
        let (id, secret) = self.register(new).await;
        WebClient {
            id,
            secret,
            redirect_uri,
        }
    }

    /// Creates a user with password [`PASSWORD`] through the store, as the
    /// CLI does; returns the user id.
    pub async fn user(&self, username: &str) -> String {
        let runtime = Runtime::open(&self.config, false, &SystemClock)
            .await
            .expect("open database");
        let hashed = authd::crypto::password::hash(
            &PASSWORD.to_owned().into(),
            &runtime.secrets.peppers.current().unwrap(),
        )
        .unwrap();
        let user = authd::domain::User {
            id: authd::domain::UserId(uuid::Uuid::new_v4()),
            username: authd::domain::Username::parse(username).unwrap(),
            password_hash: hashed.phc,
            password_key_version: hashed.key_version,
            name: Some(format!("{username} Example")),
            email: Some(format!("{username}@example.com")),
            email_verified: true,
            disabled: false,
            created_at: chrono::Utc::now(),
        };
        runtime.store.insert_user(&user).await.expect("insert user");
        runtime.store.close().await;
        user.id.to_string()
    }

    /// A browser without JavaScript: a cookie jar over HTTP, redirects
    /// not followed.
    pub fn browser(&self) -> Browser {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        Browser {
            http: reqwest::Client::builder()
                .cookie_provider(jar.clone())
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            jar,
            base: self.url(""),
        }
    }
}

impl TestApp {
    /// `browser`'s cookie jar pointed at this app (cookies do not depend
    /// on the port, so a session started at another replica goes along).
    pub fn same_browser(&self, browser: &Browser) -> Browser {
        Browser {
            http: browser.http.clone(),
            jar: browser.jar.clone(),
            base: self.url(""),
        }
    }
}

/// The query of an authorization request for `client` with `pkce`, the
/// scope `openid profile email`, state `st4te` and nonce `n0nce`; `extra`
/// replaces or adds parameters (an empty value removes one).
pub fn authorize_query(client: &WebClient, pkce: &Pkce, extra: &[(&str, &str)]) -> String {
    let mut params: Vec<(String, String)> = [
        ("response_type", "code"),
        ("client_id", client.id.as_str()),
        ("redirect_uri", client.redirect_uri.as_str()),
        ("scope", "openid profile email"),
        ("state", "st4te"),
        ("nonce", "n0nce"),
        ("code_challenge", pkce.challenge.as_str()),
        ("code_challenge_method", "S256"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (name, value) in extra {
        params.retain(|(k, _)| k != name);
        if !value.is_empty() {
            params.push((name.to_string(), value.to_string()));
        }
    }
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in &params {
        query.append_pair(k, v);
    }
    query.finish()
}

/// The value of a hidden form field `name` in a page.
pub fn form_value(html: &str, name: &str) -> Option<String> {
    let marker = format!(r#"name="{name}" value=""#);
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

/// A query parameter of a URL (decoded).
pub fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The `Location` header of a response.
pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .expect("a Location header")
        .to_str()
        .unwrap()
        .to_owned()
}

pub struct Browser {
    pub http: reqwest::Client,
    jar: Arc<reqwest::cookie::Jar>,
    base: String,
}

impl Browser {
    /// Its cookie jar.
    pub fn jar(&self) -> &Arc<reqwest::cookie::Jar> {
        &self.jar
    }

    fn absolute(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            format!("{}{path_or_url}", self.base)
        }
    }

    pub async fn get(&self, path_or_url: &str) -> reqwest::Response {
        self.http
            .get(self.absolute(path_or_url))
            .send()
            .await
            .unwrap()
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(self.absolute(path))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// `GET /authorize?query`.
    pub async fn authorize(&self, query: &str) -> reqwest::Response {
        self.get(&format!("/authorize?{query}")).await
    }

    /// Opens the login page at `login_location` and posts the form.
    pub async fn log_in(
        &self,
        login_location: &str,
        username: &str,
        password: &str,
    ) -> reqwest::Response {
        let page = self.get(login_location).await;
        assert_eq!(page.status(), 200, "login page");
        let html = page.text().await.unwrap();
        let csrf = form_value(&html, "csrf").expect("csrf field");
        let request = form_value(&html, "request").expect("request field");
        self.post_form(
            "/login",
            &[
                ("csrf", &csrf),
                ("request", &request),
                ("username", username),
                ("password", password),
            ],
        )
        .await
    }

    /// Opens the consent page at `consent_location` and answers it.
    pub async fn decide(&self, consent_location: &str, decision: &str) -> reqwest::Response {
        let page = self.get(consent_location).await;
        assert_eq!(page.status(), 200, "consent page");
        let html = page.text().await.unwrap();
        let csrf = form_value(&html, "csrf").expect("csrf field");
        let request = form_value(&html, "request").expect("request field");
        // Every hidden field, as a browser posts it.
        let shown = form_value(&html, "shown_scope").unwrap_or_default();
        let mut form = vec![
            ("csrf", csrf.as_str()),
            ("request", request.as_str()),
            ("decision", decision),
        ];
        if !shown.is_empty() {
            form.push(("shown_scope", shown.as_str()));
        }
        self.post_form("/consent", &form).await
    }

    /// Runs `/authorize?query` to the end as `username`, logging in and
    /// allowing consent when asked; returns the final redirect to the client.
    pub async fn sign_in(&self, query: &str, username: &str) -> String {
        let mut response = self.authorize(query).await;
        for _ in 0..4 {
            assert_eq!(response.status(), 303, "every step answers 303");
            let next = location(&response);
            response = if next.starts_with("/login") {
                self.log_in(&next, username, PASSWORD).await
            } else if next.starts_with("/consent") {
                self.decide(&next, "allow").await
            } else {
                return next;
            };
        }
        panic!("sign-in did not finish");
    }
}

/// Exchanges `code` at `/token` with a raw HTTP request (client_secret_basic
/// for a confidential client, client_id in the body for a public one).
pub async fn exchange_code(
    app: &TestApp,
    client: &WebClient,
    code: &str,
    verifier: &str,
) -> reqwest::Response {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", client.redirect_uri.as_str()),
        ("code_verifier", verifier),
    ];
    let request = app.http.post(app.url("/token"));
    let request = match &client.secret {
        Some(secret) => request.basic_auth(&client.id, Some(secret)),
        None => {
            form.push(("client_id", client.id.as_str()));
            request
        }
    };
    request.form(&form).send().await.unwrap()
}

/// The JSON a CLI command printed; the test fails (with its stderr) when
/// the command did not succeed.
pub fn json_ok(output: &std::process::Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("stdout is JSON")
}

/// The kid of the key in `state` in the JSON of `authd keys list`.
pub fn state_of(keys: &serde_json::Value, state: &str) -> String {
    keys.as_array()
        .unwrap()
        .iter()
        .find(|k| k["state"] == state)
        .unwrap_or_else(|| panic!("a {state} key in {keys}"))["kid"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The `kid` of a JWT's JOSE header.
pub fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .expect("JOSE header")
        .kid
        .expect("kid in header")
}

/// A client-credentials access token (the request must succeed).
pub async fn cc_token(app: &TestApp, id: &str, secret: &str) -> String {
    let response = app.client_credentials(id, secret).await;
    assert_eq!(response.status(), 200, "client credentials");
    let body: serde_json::Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// Polls `check` every 100 ms for 5 s.
pub async fn within_5_seconds<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..50 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: not within 5 s");
}

/// The `authd` binary against `database_url` with `key` as
/// `AUTHD_MASTER_KEY`: a clean environment (only `PATH`), warnings only in
/// its log, stdin closed. Callers add arguments and variables.
pub fn authd_command(database_url: &str, key: &MasterKey) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_authd"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("AUTHD_MASTER_KEY", key.to_base64())
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null());
    command
}

/// `authd ARGS…` against the app's database, to completion.
pub fn run_authd(app: &TestApp, args: &[&str]) -> std::process::Output {
    authd_command(&app.database.url, &app.master_key)
        .args(args)
        .output()
        .expect("authd binary runs")
}

/// `SELECT COUNT(*) FROM table` in the app's database.
pub async fn count_rows(app: &TestApp, backend: Backend, table: &str) -> i64 {
    query_i64(app, backend, &format!("SELECT COUNT(*) FROM {table}")).await
}

/// The one integer a query answers, in the app's database.
pub async fn query_i64(app: &TestApp, backend: Backend, sql: &str) -> i64 {
    let sql = sql.to_owned();
    match backend {
        Backend::Sqlite => {
            let mut connection = sqlx::SqliteConnection::connect(&app.database.url)
                .await
                .unwrap();
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(&mut connection)
                .await
                .unwrap()
        }
        Backend::Postgres => {
            let mut connection = sqlx::PgConnection::connect(&app.database.url)
                .await
                .unwrap();
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(&mut connection)
                .await
                .unwrap()
        }
    }
}

/// Runs one statement in the app's database (test set-up only).
pub async fn execute_sql(app: &TestApp, backend: Backend, sql: &str) {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    match backend {
        Backend::Sqlite => {
            let mut connection = sqlx::SqliteConnection::connect(&app.database.url)
                .await
                .unwrap();
            sqlx::query(sql).execute(&mut connection).await.unwrap();
        }
        Backend::Postgres => {
            let mut connection = sqlx::PgConnection::connect(&app.database.url)
                .await
                .unwrap();
            sqlx::query(sql).execute(&mut connection).await.unwrap();
        }
    }
}

const DEFAULT_TEST_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Redis settings for one test, with a key prefix of its own so that tests
/// never share counts: `TEST_REDIS_URL`, else the Redis on 127.0.0.1:6379,
/// else a `redis-server` this test process starts (once, on a free port;
/// it dies with the process). `None` (the test passes without running)
/// when none of these answers, except in CI, where that is a failure.
pub async fn test_redis() -> Option<authd::limits::shared::RedisSettings> {
    let url = match std::env::var("TEST_REDIS_URL") {
        Ok(url) => url,
        Err(_) if redis_ping(DEFAULT_TEST_REDIS_URL).await.is_ok() => {
            DEFAULT_TEST_REDIS_URL.to_owned()
        }
        Err(_) => match process_redis() {
            Ok(url) => url,
            Err(error) => {
                redis_missing(DEFAULT_TEST_REDIS_URL, &error);
                return None;
            }
        },
    };
    if let Err(error) = redis_ping(&url).await {
        redis_missing(&url, &error);
        return None;
    }
    let prefix = format!(
        "authd-test-{}:",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    Some(
        authd::limits::shared::RedisSettings::parse(&url, Some(&prefix), Some("50"))
            .expect("a valid test Redis URL"),
    )
}

fn redis_missing(url: &str, error: &str) {
    if std::env::var_os("CI").is_some() {
        panic!(
            "Redis is required in CI but {url} does not answer and none could be started: {error}"
        );
    }
    use std::io::Write;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: the Redis tests pass without running: {url} does not answer and \
             redis-server does not start ({error}). Install redis-server or set \
             TEST_REDIS_URL (in CI this is a failure)."
        );
    });
}

/// One `redis-server` for this test process, when no Redis answers on the
/// default port. Started from a thread that lives as long as the process,
/// with `PR_SET_PDEATHSIG`, so it is killed when the process ends (a
/// test's own thread would take it down with it).
fn process_redis() -> Result<String, String> {
    static URL: std::sync::OnceLock<Result<String, String>> = std::sync::OnceLock::new();
    URL.get_or_init(|| {
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::os::unix::process::CommandExt;
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port());
            let started = port.map_err(|e| e.to_string()).and_then(|port| {
                let mut command = std::process::Command::new("redis-server");
                command
                    .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                    .args(["--save", "", "--appendonly", "no"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null());
                // SAFETY: prctl is async-signal-safe; nothing else runs
                // between fork and exec.
                unsafe {
                    command.pre_exec(|| {
                        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                        Ok(())
                    });
                }
                let child = command.spawn().map_err(|e| format!("redis-server: {e}"))?;
                for _ in 0..200 {
                    if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                        return Ok((child, port));
                    }
                    std::thread::sleep(Duration::from_millis(25));
                }
                Err("redis-server did not answer within 5 s".into())
            });
            match started {
                Ok((_child, port)) => {
                    let _ = sender.send(Ok(format!("redis://127.0.0.1:{port}")));
                    loop {
                        std::thread::park();
                    }
                }
                Err(error) => {
                    let _ = sender.send(Err(error));
                }
            }
        });
        receiver
            .recv()
            .unwrap_or_else(|_| Err("the starter thread died".into()))
    })
    .clone()
}

async fn redis_ping(url: &str) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut connection = tokio::time::timeout(
        Duration::from_secs(2),
        client.get_multiplexed_async_connection(),
    )
    .await
    .map_err(|_| "timed out".to_owned())?
    .map_err(|e| e.to_string())?;
    let _: String = redis::cmd("PING")
        .query_async(&mut connection)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// A Redis server of one test's own (Debian's `redis-server`), on a free
/// port, keeping nothing on disk: a test may stop and restart it. `None`
/// when the binary is absent outside CI.
pub struct OwnRedis {
    pub port: u16,
    process: Option<std::process::Child>,
}

impl OwnRedis {
    pub async fn start() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = Self {
            port,
            process: None,
        };
        if let Err(error) = redis.run() {
            if std::env::var_os("CI").is_some() {
                panic!("redis-server is required in CI: {error}");
            }
            skip_notice(&format!("redis-server does not start: {error}"));
            return None;
        }
        Some(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) and waits until it answers.
    pub fn run(&mut self) -> Result<(), String> {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        self.process = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Err("did not answer within 5 s".into())
    }

    /// Stops the server (SIGKILL: as abrupt as a crash).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
