//! Master-key rotation benchmark (`bench/reseal.sh`, or on its own with
//! `cargo bench --bench reseal_load`): how fast `authd::secrets::rotate`
//! re-seals, and whether refresh tokens keep working while it does.
//!
//! Each run gets a fresh database (PostgreSQL: a new database on
//! `TEST_DATABASE_URL`'s server, dropped afterwards; SQLite: a temp file),
//! opened the way a replica is during step 2 of docs/operations.md
//! "Rotating the master key": the old key configured, the new one held as an
//! extra. It mints RESEAL_TOKENS refresh tokens through `RefreshTokens`
//! (plus RESEAL_CODES authorization codes through `Codes`, and the signing
//! key), all sealed under master key version 1, then calls
//! `secrets::rotate` (propagation delay 0) with one batch size.
//!
//! An *online* run first measures refreshes alone for RESEAL_BEFORE_SECONDS,
//! then keeps RESEAL_REFRESHERS tasks refreshing (`RefreshTokens::rotate`,
//! each token of the first half once) for as long as the rotation runs, in
//! the same process and with the same `MasterKeys` the rotation updates (a
//! rotation run on the serving replica). A *quiet* run only rotates.
//! Afterwards every run checks that every sealed value is under version 2,
//! that a process holding only the new key refreshes an unused token minted
//! before the rotation (and one made during it) and redeems a code issued
//! before it, and that one holding only the old key is refused.
//!
//! Environment: RESEAL_BACKENDS (`postgres`; `postgres,sqlite`),
//! RESEAL_TOKENS (20000), RESEAL_CODES (100), RESEAL_BATCHES (quiet runs,
//! `500,100,2000`), RESEAL_ONLINE_BATCHES (`500`), RESEAL_REFRESHERS (4),
//! RESEAL_BEFORE_SECONDS (2), TEST_DATABASE_URL
//! (`postgres://postgres@127.0.0.1:5432/postgres`). Exits non-zero if a
//! check fails or a refresh errs.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use authd::clients::registration::{self, NewClient};
use authd::clock::SystemClock;
use authd::config::{Config, MasterKeySource};
use authd::crypto::{MasterKey, Purpose, Sealer};
use authd::domain::{Client, ClientId, CodeChallenge, VerifiedRedirect};
use authd::oauth::codes::{self, Codes, Redemption};
use authd::oauth::refresh::{RefreshSettings, RefreshTokens};
use authd::secrets::{RotationOptions, SecretsError};
use authd::startup::{Runtime, StartupError};
use authd::store::SEALED_COLUMNS;
use authd::tokens::Keys;
use sqlx::Connection;

const SCOPE: &str = "offline_access orders:read";
const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}: cannot parse {value:?}")),
        Err(_) => default,
    }
}

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn batches(name: &str, default: &str) -> Vec<u32> {
    env_list(name, default)
        .iter()
        .map(|b| b.parse().unwrap_or_else(|_| panic!("{name}: {b:?}")))
        .collect()
}

struct Settings {
    tokens: usize,
    codes: usize,
    refreshers: usize,
    before: Duration,
    admin_url: String,
}

/// A database that exists for one run.
struct Database {
    url: String,
    _dir: tempfile::TempDir,
    postgres: Option<(String, String)>,
}

impl Database {
    async fn create(backend: &str, admin_url: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            "sqlite" => Self {
                url: format!("sqlite://{}", dir.path().join("authd.db").display()),
                _dir: dir,
                postgres: None,
            },
            "postgres" => {
                let mut admin = sqlx::PgConnection::connect(admin_url)
                    .await
                    .unwrap_or_else(|e| panic!("PostgreSQL at {admin_url}: {e}"));
                let name = format!("authd_bench_reseal_{}", uuid::Uuid::new_v4().simple());
                sqlx::query(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
                    .execute(&mut admin)
                    .await
                    .expect("create database");
                let mut url = url::Url::parse(admin_url).expect("TEST_DATABASE_URL is a URL");
                url.set_path(&name);
                Self {
                    url: url.to_string(),
                    _dir: dir,
                    postgres: Some((admin_url.to_owned(), name)),
                }
            }
            other => panic!("RESEAL_BACKENDS: unknown backend {other:?}"),
        }
    }

    async fn drop_now(mut self) {
        if let Some((admin_url, name)) = self.postgres.take()
            && let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
            )))
            .execute(&mut admin)
            .await;
        }
    }
}

fn copy(key: &MasterKey) -> MasterKey {
    MasterKey::from_bytes(key.to_bytes())
}

/// A configuration built in code (as tests/api/helpers.rs `test_config`).
fn bench_config(database_url: &str, master_key: &MasterKey) -> Config {
    let mut config = Config::from_lookup(|_| None).expect("default configuration");
    config.database_url = database_url.to_owned();
    config.master_key = MasterKeySource::Inline(master_key.to_base64().into());
    config
}

fn refresh_tokens(runtime: &Runtime, config: &Config) -> RefreshTokens {
    RefreshTokens::new(
        runtime.store.clone(),
        runtime.digester(Purpose::RefreshTokenDigest),
        runtime.sealer(Purpose::RefreshTokenSealing),
        RefreshSettings {
            token_ttl: chrono::Duration::seconds(config.refresh_token_ttl as i64),
            family_ttl: chrono::Duration::seconds(config.refresh_family_ttl as i64),
            reuse_grace: chrono::Duration::zero(),
        },
        Arc::new(SystemClock),
    )
}

fn codes(runtime: &Runtime) -> Codes {
    Codes::new(
        runtime.store.clone(),
        runtime.digester(Purpose::AuthorizationCodeDigest),
        runtime.sealer(Purpose::GrantSealing),
        codes::MAX_CODE_TTL_SECONDS,
        Arc::new(SystemClock),
    )
}

/// One refresh as the token endpoint does it (minus the HTTP and the
/// signature): consume `token`, store its successor.
async fn refresh_once(
    refresh: &RefreshTokens,
    client: &Client,
    token: &str,
) -> Result<String, String> {
    let jti = uuid::Uuid::new_v4().to_string();
    let expires = refresh.now() + chrono::Duration::minutes(5);
    refresh
        .rotate(token, client, &jti, expires, &|_, _| Ok(()))
        .await
        .map(|rotated| rotated.token)
        .map_err(|e| format!("{e:?}"))
}

/// Master key version → number of sealed values, over every sealed column
/// (removed signing keys keep an empty value and are skipped).
async fn sealed_versions(runtime: &Runtime) -> BTreeMap<Option<u32>, u64> {
    let mut versions = BTreeMap::new();
    for column in SEALED_COLUMNS {
        let mut after = String::new();
        loop {
            let rows = runtime
                .store
                .sealed_values(column, &after, 5_000)
                .await
                .expect("sealed values");
            let Some((last, _)) = rows.last() else { break };
            after = last.clone();
            for (_, sealed) in rows.iter().filter(|(_, s)| !s.is_empty()) {
                *versions.entry(Sealer::version_of(sealed)).or_default() += 1;
            }
        }
    }
    versions
}

#[derive(Default)]
struct Refreshes {
    latencies: Vec<Duration>,
    errors: Vec<String>,
    /// The last successor each task made (sealed under whatever version
    /// was current then).
    last: Vec<String>,
}

impl Refreshes {
    fn pct(&mut self, p: f64) -> f64 {
        self.latencies.sort();
        self.latencies
            .get(
                ((self.latencies.len() as f64 * p) as usize)
                    .min(self.latencies.len().saturating_sub(1)),
            )
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    }
}

/// One task per entry of `starts` refreshing tokens from `pool` (each
/// once) until `stop`; when the pool runs out, a task refreshes its own last
/// successor (starting from its entry of `starts`).
fn spawn_refreshers(
    starts: Vec<Option<String>>,
    refresh: &Arc<RefreshTokens>,
    client: &Arc<Client>,
    pool: Vec<String>,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Refreshes>> {
    let pool = Arc::new(pool);
    let next = Arc::new(AtomicUsize::new(0));
    starts
        .into_iter()
        .map(|start| {
            let (refresh, client, pool, next, stop) = (
                refresh.clone(),
                client.clone(),
                pool.clone(),
                next.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let mut done = Refreshes::default();
                let mut own = start;
                while !stop.load(Ordering::Relaxed) {
                    let token = match pool.get(next.fetch_add(1, Ordering::Relaxed)) {
                        Some(token) => token.clone(),
                        None => match own.take() {
                            Some(token) => token,
                            None => break,
                        },
                    };
                    let sent = Instant::now();
                    match refresh_once(&refresh, &client, &token).await {
                        Ok(successor) => {
                            done.latencies.push(sent.elapsed());
                            own = Some(successor);
                        }
                        Err(error) => done.errors.push(error),
                    }
                }
                done.last.extend(own);
                done
            })
        })
        .collect()
}

async fn join(handles: Vec<tokio::task::JoinHandle<Refreshes>>) -> Refreshes {
    let mut all = Refreshes::default();
    for handle in handles {
        let one = handle.await.expect("refresher");
        all.latencies.extend(one.latencies);
        all.errors.extend(one.errors);
        all.last.extend(one.last);
    }
    all
}

struct Outcome {
    backend: String,
    batch: u32,
    online: bool,
    resealed: BTreeMap<&'static str, u64>,
    passes: u32,
    seconds: f64,
    /// (count, p50 ms, p99 ms, refreshes/s) before and during the rotation.
    before: Option<(usize, f64, f64, f64)>,
    during: Option<(usize, f64, f64, f64)>,
    refresh_errors: Vec<String>,
    failures: Vec<String>,
}

impl Outcome {
    fn rows(&self) -> u64 {
        self.resealed.values().sum()
    }
}

async fn run(backend: &str, batch: u32, online: bool, settings: &Settings) -> Outcome {
    let label = format!(
        "{backend}, batch {batch}, {}",
        if online { "online" } else { "quiet" }
    );
    let database = Database::create(backend, &settings.admin_url).await;
    let (old, new) = (MasterKey::generate(), MasterKey::generate());
    let config = bench_config(&database.url, &old);
    // Step 2 of the procedure: the old key configured, the new one held.
    let runtime = Runtime::open_with(&config, true, &SystemClock, vec![copy(&new)])
        .await
        .expect("open the database");
    let store = runtime.store.clone();
    Keys::load_or_create(
        store.clone(),
        runtime.signing_key_sealer(),
        &SystemClock,
        config.signing_key_bits,
        config.key_schedule(),
    )
    .await
    .expect("signing key");
    // Its scope belongs to an API open to any user (a second run finds it).
    let _ = authd::access::apis::create(
        store.as_ref(),
        &SystemClock,
        authd::access::apis::ApiInput {
            identifier: "https://orders.example".into(),
            name: "Orders".into(),
            scopes: vec!["orders:read".into()],
            user_access: Some("any".into()),
            ..Default::default()
        },
    )
    .await;
    let credentials = registration::register(
        store.as_ref(),
        &runtime.client_secret_digester(),
        &SystemClock,
        &authd::limits::buckets::RateLimitSettings::default(),
        NewClient {
            name: "reseal bench".into(),
            redirect_uris: vec!["https://bench.example/cb".into()],
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            scopes: vec!["orders:read".into()],
            skip_consent: true,
            ..Default::default()
        },
    )
    .await
    .expect("client");
    let client_id = ClientId::parse(&credentials.client_id).expect("client id");
    let client = Arc::new(
        store
            .find_client(&client_id)
            .await
            .expect("find client")
            .expect("client exists"),
    );
    let user = authd::domain::User {
        id: authd::domain::UserId(uuid::Uuid::new_v4()),
        username: authd::domain::Username::parse("reseal-bench").expect("username"),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into(),
        password_key_version: 1,
        name: None,
        email: None,
        email_verified: false,
        disabled: false,
        created_at: chrono::Utc::now(),
    };
    store.insert_user(&user).await.expect("user");
    store
        .save_consent(user.id, &client.id, SCOPE, chrono::Utc::now())
        .await
        .expect("consent");

    let refresh = Arc::new(refresh_tokens(&runtime, &config));
    let started = Instant::now();
    let mut tokens = Vec::with_capacity(settings.tokens);
    while tokens.len() < settings.tokens {
        let n = (settings.tokens - tokens.len()).min(64);
        let minted =
            futures_util::future::join_all((0..n).map(|_| {
                refresh.start_family(&client, user.id, SCOPE, &[], chrono::Utc::now(), "-")
            }))
            .await;
        tokens.extend(minted.into_iter().map(|t| t.expect("mint")));
    }
    let code_issuer = codes(&runtime);
    let grant = codes::Grant {
        user_id: user.id.0,
        client_id: client.id.to_string(),
        redirect: VerifiedRedirect {
            uri: "https://bench.example/cb".into(),
            explicit: true,
        },
        scope: SCOPE.into(),
        nonce: None,
        auth_time: chrono::Utc::now(),
        code_challenge: CodeChallenge::parse(&"c".repeat(43)).expect("challenge"),
        resources: Vec::new(),
    };
    let mut issued = Vec::with_capacity(settings.codes);
    for _ in 0..settings.codes {
        issued.push(code_issuer.issue(&grant).await.expect("code"));
    }
    let before_rotation = sealed_versions(&runtime).await;
    eprintln!(
        "[{label}] minted {} refresh tokens and {} codes in {:.1} s; sealed values by version: {before_rotation:?}",
        tokens.len(),
        issued.len(),
        started.elapsed().as_secs_f64()
    );
    let mut failures = Vec::new();
    if before_rotation.keys().any(|v| *v != Some(1)) {
        failures.push(format!(
            "before: not all under version 1: {before_rotation:?}"
        ));
    }

    // The first quarter is spent before the rotation, the second during it
    // (tokens sealed under version 1 that the rotation is re-sealing at the
    // same time); the second half stays unused.
    let quarter = tokens.len() / 4;
    let unused = &tokens[2 * quarter..];
    let mut starts = vec![None; settings.refreshers];
    let rate = |r: &mut Refreshes, seconds: f64| {
        (
            r.latencies.len(),
            r.pct(0.50),
            r.pct(0.99),
            r.latencies.len() as f64 / seconds,
        )
    };
    let mut before = None;
    if online {
        let stop = Arc::new(AtomicBool::new(false));
        let begun = Instant::now();
        let pool = tokens[..quarter].to_vec();
        let handles = spawn_refreshers(starts, &refresh, &client, pool, &stop);
        tokio::time::sleep(settings.before).await;
        stop.store(true, Ordering::Relaxed);
        let mut alone = join(handles).await;
        eprintln!(
            "[{label}] before the rotation: {} refreshes, {} errors, slowest {:.0} ms",
            alone.latencies.len(),
            alone.errors.len(),
            alone.pct(1.0),
        );
        starts = alone.last.drain(..).map(Some).collect();
        before = Some(rate(&mut alone, begun.elapsed().as_secs_f64()));
        failures.extend(
            alone
                .errors
                .iter()
                .take(3)
                .map(|e| format!("refresh before: {e}")),
        );
    }

    let stop = Arc::new(AtomicBool::new(false));
    let handles = if online {
        let pool = tokens[quarter..2 * quarter].to_vec();
        spawn_refreshers(starts, &refresh, &client, pool, &stop)
    } else {
        Vec::new()
    };
    let rotation_started = Instant::now();
    let rotation = authd::secrets::rotate(
        store.as_ref(),
        &runtime.secrets.master_keys,
        copy(&new),
        &SystemClock,
        RotationOptions {
            propagation_delay: Duration::ZERO,
            batch,
            // No other replica runs: the check finds nobody lacking the key.
            force: false,
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut during_refreshes = join(handles).await;
    let rotation_seconds = rotation_started.elapsed().as_secs_f64();
    if online {
        eprintln!(
            "[{label}] during the rotation: {} refreshes, {} errors, slowest {:.0} ms",
            during_refreshes.latencies.len(),
            during_refreshes.errors.len(),
            during_refreshes.pct(1.0),
        );
    }
    for error in during_refreshes.errors.iter().take(5) {
        eprintln!("[{label}]   refresh error: {error}");
    }
    let report = match rotation {
        Ok(report) => report,
        Err(error) => {
            eprintln!("[{label}] ROTATION FAILED after {rotation_seconds:.2} s: {error}");
            runtime.store.close().await;
            database.drop_now().await;
            return Outcome {
                backend: backend.into(),
                batch,
                online,
                resealed: BTreeMap::new(),
                passes: 0,
                seconds: f64::NAN,
                before,
                during: None,
                refresh_errors: during_refreshes.errors,
                failures: vec![format!("rotation failed: {error}")],
            };
        }
    };
    let during = online.then(|| rate(&mut during_refreshes, report.seconds));
    eprintln!(
        "[{label}] rotated to version {} in {:.2} s, {} passes, re-sealed {:?}",
        report.version, report.seconds, report.passes, report.resealed,
    );

    // Every sealed value is under the new version.
    let after_rotation = sealed_versions(&runtime).await;
    if after_rotation.keys().any(|v| *v != Some(2)) {
        failures.push(format!(
            "after: not all under version 2: {after_rotation:?}"
        ));
    }
    runtime.store.close().await;

    // Step 5: a process holding only the new key serves what came before.
    let new_config = bench_config(&database.url, &new);
    match Runtime::open(&new_config, false, &SystemClock).await {
        Ok(only_new) => {
            let refresh = refresh_tokens(&only_new, &new_config);
            let last_unused = unused.last().expect("an unused token");
            if let Err(e) = refresh_once(&refresh, &client, last_unused).await {
                failures.push(format!("new key only: unused pre-rotation token: {e}"));
            }
            if let Some(made_during) = during_refreshes.last.first()
                && let Err(e) = refresh_once(&refresh, &client, made_during).await
            {
                failures.push(format!("new key only: token made during rotation: {e}"));
            }
            if let Some(code) = issued.first() {
                let jti = uuid::Uuid::new_v4().to_string();
                let expires = chrono::Utc::now() + chrono::Duration::minutes(5);
                match codes(&only_new)
                    .redeem(code, &client.id, &jti, expires)
                    .await
                {
                    Ok(Redemption::Won(_)) => {}
                    Ok(Redemption::Refused { replayed }) => failures.push(format!(
                        "new key only: pre-rotation code refused (replayed: {replayed})"
                    )),
                    Err(e) => failures.push(format!("new key only: code: {e:?}")),
                }
            }
            only_new.store.close().await;
        }
        Err(e) => failures.push(format!("new key only: does not open: {e}")),
    }
    // The old key alone no longer opens the database.
    match Runtime::open(&bench_config(&database.url, &old), false, &SystemClock).await {
        Err(StartupError::Secrets(SecretsError::WrongMasterKey { current: 2, .. })) => {}
        Err(e) => failures.push(format!("old key only: unexpected error: {e}")),
        Ok(runtime) => {
            runtime.store.close().await;
            failures.push("old key only: opened".into());
        }
    }
    for failure in &failures {
        eprintln!("[{label}] CHECK FAILED: {failure}");
    }
    database.drop_now().await;
    Outcome {
        backend: backend.into(),
        batch,
        online,
        resealed: report.resealed,
        passes: report.passes,
        seconds: report.seconds,
        before,
        during,
        refresh_errors: during_refreshes.errors,
        failures,
    }
}

fn latency(figures: Option<(usize, f64, f64, f64)>) -> String {
    figures.map_or("—".into(), |(n, p50, p99, per_second)| {
        if n == 0 {
            return "0".into();
        }
        format!("{n} ({per_second:.0}/s) p50 {p50:.1} p99 {p99:.1}")
    })
}

#[tokio::main]
async fn main() {
    // RUST_LOG=info shows the rotation's passes; sqlx=debug every statement.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let settings = Settings {
        tokens: env_or("RESEAL_TOKENS", 20_000),
        codes: env_or("RESEAL_CODES", 100),
        refreshers: env_or("RESEAL_REFRESHERS", 4),
        before: Duration::from_secs_f64(env_or("RESEAL_BEFORE_SECONDS", 2.0)),
        admin_url: std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned()),
    };
    assert!(settings.tokens >= 4, "RESEAL_TOKENS: at least 4");
    let online_batches = batches("RESEAL_ONLINE_BATCHES", "500");
    let quiet_batches = batches("RESEAL_BATCHES", "500,100,2000");
    let mut outcomes = Vec::new();
    for backend in env_list("RESEAL_BACKENDS", "postgres") {
        for &batch in &online_batches {
            outcomes.push(run(&backend, batch, true, &settings).await);
        }
        for &batch in &quiet_batches {
            outcomes.push(run(&backend, batch, false, &settings).await);
        }
    }

    println!(
        "\n{} refresh tokens + {} codes + digest and signing keys per run; {} refreshers online; \
         latencies in ms (RefreshTokens::rotate, no HTTP)",
        settings.tokens, settings.codes, settings.refreshers
    );
    println!(
        "| backend | batch | load | rows re-sealed | passes | seconds | rows/s | refreshes before | refreshes during | refresh errors | checks |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut ok = true;
    for o in &outcomes {
        ok &= o.failures.is_empty() && o.refresh_errors.is_empty();
        println!(
            "| {} | {} | {} | {} | {} | {:.2} | {:.0} | {} | {} | {} | {} |",
            o.backend,
            o.batch,
            if o.online { "online" } else { "quiet" },
            o.rows(),
            o.passes,
            o.seconds,
            o.rows() as f64 / o.seconds,
            latency(o.before),
            latency(o.during),
            o.refresh_errors.len(),
            if o.failures.is_empty() {
                "ok".to_owned()
            } else {
                format!("{} FAILED", o.failures.len())
            },
        );
    }
    if !ok {
        std::process::exit(1);
    }
}
