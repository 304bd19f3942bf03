//! Load generator for `bench/refresh.sh`: mints refresh tokens straight
//! into the database (through authd's own library, with the server's master
//! key), then spends them at `POST /token` with `grant_type=refresh_token`
//! from many concurrent connections, each token once.
//!
//! Usage (environment as for authd: DATABASE_URL, AUTHD_MASTER_KEY):
//! `refresh_load BASE_URL SECONDS CONCURRENCY TOKENS SCOPE` (SECONDS 0: mint
//! one token and print `CLIENT_ID SECRET TOKEN`).
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use authd::clients::registration::{self, NewClient};
use authd::clock::SystemClock;
use authd::config::Config;
use authd::crypto::Purpose;
use authd::oauth::refresh::{RefreshSettings, RefreshTokens};
use authd::startup::Runtime;
use secrecy::ExposeSecret;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.to_owned());
    let base = arg(1, "http://127.0.0.1:18080");
    let seconds: u64 = arg(2, "10").parse().expect("SECONDS");
    let concurrency: usize = arg(3, "32").parse().expect("CONCURRENCY");
    let count: usize = arg(4, "20000").parse().expect("TOKENS");
    let scope = arg(5, "offline_access orders:read");

    let config = Config::from_env().expect("configuration");
    let runtime = Runtime::open(&config, true, &SystemClock)
        .await
        .expect("database");
    let store = runtime.store.clone();
    // Its scope belongs to an API whose scopes users get only through
    // roles: every refresh decides the scope again from the user's roles.
    let api_scopes: Vec<String> = std::iter::once("orders:read".to_owned())
        .chain((1..10).map(|i| format!("orders:s{i}")))
        .collect();
    let _ = authd::access::apis::create(
        store.as_ref(),
        &SystemClock,
        authd::access::apis::ApiInput {
            identifier: "https://orders.example".into(),
            name: "Orders".into(),
            scopes: api_scopes.clone(),
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
            name: "refresh bench".into(),
            redirect_uris: vec!["https://bench.example/cb".into()],
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            scopes: vec!["orders:read".into()],
            skip_consent: true,
            ..Default::default()
        },
    )
    .await
    .expect("client");
    let client_id = credentials.client_id.clone();
    let secret = credentials
        .client_secret
        .expect("secret")
        .expose_secret()
        .to_owned();
    let client = store
        .find_client(&authd::domain::ClientId::parse(&client_id).unwrap())
        .await
        .unwrap()
        .unwrap();
    let user = authd::domain::User {
        id: authd::domain::UserId(uuid::Uuid::new_v4()),
        username: authd::domain::Username::parse(&format!(
            "bench-{}",
            uuid::Uuid::new_v4().simple()
        ))
        .unwrap(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into(),
        password_key_version: 1,
        name: None,
        email: None,
        email_verified: false,
        disabled: false,
        created_at: chrono::Utc::now(),
    };
    store.insert_user(&user).await.expect("user");
    // The user: 10 roles, each giving a scope, held through 3
    // groups (4, 3 and 3 roles).
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    for group in 0..3 {
        let name = format!("g{group}-{suffix}");
        authd::access::groups::create(store.as_ref(), &SystemClock, &name)
            .await
            .expect("group");
        authd::access::groups::set_member(store.as_ref(), &name, user.username.as_str(), true)
            .await
            .expect("member");
    }
    for (i, scope) in api_scopes.iter().enumerate() {
        let role = format!("r{i}-{suffix}");
        authd::access::roles::create(
            store.as_ref(),
            &SystemClock,
            &role,
            std::slice::from_ref(scope),
        )
        .await
        .expect("role");
        let group = format!("g{}-{suffix}", [0, 0, 0, 0, 1, 1, 1, 2, 2, 2][i]);
        authd::access::groups::set_role(store.as_ref(), &group, &role, true)
            .await
            .expect("group role");
    }
    // Offline access is always consented (OIDC Core §11); refreshes check it.
    store
        .save_consent(user.id, &client.id, &scope, chrono::Utc::now())
        .await
        .expect("consent");

    let refresh = Arc::new(RefreshTokens::new(
        store.clone(),
        runtime.digester(Purpose::RefreshTokenDigest),
        runtime.sealer(Purpose::RefreshTokenSealing),
        RefreshSettings {
            token_ttl: chrono::Duration::seconds(config.refresh_token_ttl as i64),
            family_ttl: chrono::Duration::seconds(config.refresh_family_ttl as i64),
            reuse_grace: chrono::Duration::zero(),
        },
        Arc::new(SystemClock),
    ));
    let started = Instant::now();
    let mut tokens = Vec::with_capacity(count);
    for chunk in (0..count).collect::<Vec<_>>().chunks(64) {
        let minted =
            futures_util::future::join_all(chunk.iter().map(|_| {
                refresh.start_family(&client, user.id, &scope, &[], chrono::Utc::now(), "-")
            }))
            .await;
        tokens.extend(minted.into_iter().map(|t| t.expect("mint")));
    }
    eprintln!(
        "minted {} tokens in {:.1} s",
        tokens.len(),
        started.elapsed().as_secs_f64()
    );
    if seconds == 0 {
        // Mint only: print what a single hand-made refresh needs.
        println!("{client_id} {secret} {}", tokens[0]);
        runtime.store.close().await;
        return;
    }

    let tokens = Arc::new(tokens);
    let next = Arc::new(AtomicUsize::new(0));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let url = format!("{base}/token");
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (tokens, next, http, url) =
                (tokens.clone(), next.clone(), http.clone(), url.clone());
            let (id, secret) = (client_id.clone(), secret.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut failures = 0usize;
                while Instant::now() < deadline {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(token) = tokens.get(i) else { break };
                    let sent = Instant::now();
                    let response = http
                        .post(&url)
                        .basic_auth(&id, Some(&secret))
                        .form(&[
                            ("grant_type", "refresh_token"),
                            ("refresh_token", token.as_str()),
                        ])
                        .send()
                        .await;
                    match response {
                        Ok(r) if r.status() == 200 => {
                            let _ = r.bytes().await;
                            latencies.push(sent.elapsed());
                        }
                        _ => failures += 1,
                    }
                }
                (latencies, failures)
            })
        })
        .collect();
    let begun = Instant::now();
    let mut latencies = Vec::new();
    let mut failures = 0;
    for worker in workers {
        let (l, f) = worker.await.unwrap();
        latencies.extend(l);
        failures += f;
    }
    let elapsed = begun.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    if latencies.len() == tokens.len() {
        eprintln!("warning: every token was used before the deadline; mint more for a full run");
    }
    println!(
        "refreshes {} in {elapsed:.1} s = {:.0}/s; errors {failures}; p50 {:.2} ms p99 {:.2} ms",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99)
    );
    runtime.store.close().await;
}
