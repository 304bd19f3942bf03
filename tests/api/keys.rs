//! Signing-key rotation (README "Signing keys"): next → active → retired →
//! removed, driven by the schedule every replica runs with the injected
//! clock; the JWKS (RFC 7517 §5) with `Cache-Control` and `ETag`.
use std::collections::BTreeSet;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use authd::clients::registration::{self, NewClient};
use authd::clock::{Clock, MockClock, SystemClock};
use authd::config::Config;
use authd::crypto::MasterKey;
use authd::domain::KeyState;
use authd::startup::{Application, Runtime};
use authd::store::SigningKeyRecord;
use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::authorization_code::sign_in_and_exchange;
use crate::helpers::{
    Backend, TestApp, TestDatabase, cc_token, json_ok, kid_of, on_both_backends, run_authd,
    spawn_app, spawn_app_on, state_of, test_config, test_database, within_5_seconds,
};

/// An app whose time is a [`MockClock`]; the schedule runs every 100 ms.
struct MockApp {
    port: u16,
    issuer: String,
    http: reqwest::Client,
    clock: Arc<MockClock>,
    runtime: Runtime,
    handle: actix_web::dev::ServerHandle,
    _database: Arc<TestDatabase>,
}

fn mock_config(database: &TestDatabase, master_key: &MasterKey) -> Config {
    let mut config = test_config(&database.url, master_key);
    config.key_check_interval = Duration::from_millis(100);
    config.cache_refresh = Duration::from_millis(100);
    config
}

async fn spawn_mock_app_on(
    database: Arc<TestDatabase>,
    master_key: &MasterKey,
    clock: Arc<MockClock>,
    adjust: impl FnOnce(&mut Config),
) -> MockApp {
    let mut config = mock_config(&database, master_key);
    adjust(&mut config);
    let app = Application::build_with_clock(config.clone(), true, clock.clone())
        .await
        .expect("app starts");
    let port = app.port();
    let issuer = app.issuer().to_owned();
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    let runtime = Runtime::open(&config, false, &SystemClock)
        .await
        .expect("open database");
    MockApp {
        port,
        issuer,
        http: reqwest::Client::new(),
        clock,
        runtime,
        handle,
        _database: database,
    }
}

/// Whole seconds: PostgreSQL keeps microseconds, SQLite more, so stored
/// times compare equal to the mock time on both.
fn start_time() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(0)
}

async fn spawn_mock_app(backend: Backend) -> Option<MockApp> {
    let database = Arc::new(test_database(backend).await?);
    let clock = Arc::new(MockClock::new(start_time()));
    Some(spawn_mock_app_on(database, &MasterKey::generate(), clock, |_| {}).await)
}

impl MockApp {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    async fn machine_client(&self) -> (String, String) {
        if self.runtime.store.list_apis().await.unwrap().is_empty() {
            authd::access::apis::create(
                self.runtime.store.as_ref(),
                &SystemClock,
                authd::access::apis::ApiInput {
                    identifier: self.issuer.clone(),
                    name: "Orders".into(),
                    scopes: vec!["orders:read".into()],
                    ..Default::default()
                },
            )
            .await
            .expect("create the API");
        }
        let credentials = registration::register(
            self.runtime.store.as_ref(),
            &self.runtime.client_secret_digester(),
            &SystemClock,
            &authd::limits::buckets::RateLimitSettings::default(),
            NewClient {
                name: "Test machine".into(),
                scopes: vec!["orders:read".into()],
                ..Default::default()
            },
        )
        .await
        .expect("register client");
        let secret = credentials.client_secret.expect("confidential");
        (credentials.client_id, secret.expose_secret().to_owned())
    }

    /// A fresh client-credentials access token.
    async fn token(&self, client: &(String, String)) -> String {
        let response = self
            .http
            .post(self.url("/token"))
            .basic_auth(&client.0, Some(&client.1))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "client credentials token");
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    async fn jwks(&self) -> JwkSet {
        let response = self
            .http
            .get(self.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    async fn keys(&self) -> Vec<SigningKeyRecord> {
        self.runtime.store.list_signing_keys().await.unwrap()
    }

    /// Advances the mock time and waits until the schedule has done what
    /// is due at the new time and the server publishes it.
    async fn advance(&self, by: chrono::Duration) {
        self.clock.advance(by);
        settle(self, &[self]).await;
    }

    async fn stop(self) {
        self.handle.stop(true).await;
        self.runtime.store.close().await;
    }
}

/// Waits (≤ 10 s) until nothing is due in the database at `clock` time and
/// every app in `apps` serves the JWKS the database describes.
async fn settle(db: &MockApp, apps: &[&MockApp]) {
    // At least one whole schedule tick after the time moved.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let retention = authd::tokens::keyring::retention();
    for _ in 0..200 {
        let now = db.now();
        let keys = db.keys().await;
        let due = keys.iter().any(|k| {
            (k.state == KeyState::Next && k.activates_at.is_some_and(|at| at <= now))
                || (k.state == KeyState::Retired
                    && k.retired_at.is_some_and(|at| at + retention <= now))
        }) || !keys.iter().any(|k| k.state == KeyState::Next);
        if !due {
            let expected = published(&keys);
            let mut all = true;
            for app in apps {
                if kids(&app.jwks().await) != expected {
                    all = false;
                }
            }
            if all {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the key schedule did not settle within 10 s");
}

fn published(keys: &[SigningKeyRecord]) -> BTreeSet<String> {
    keys.iter()
        .filter(|k| {
            matches!(
                k.state,
                KeyState::Active | KeyState::Next | KeyState::Retired
            )
        })
        .map(|k| k.kid.0.clone())
        .collect()
}

fn kids(jwks: &JwkSet) -> BTreeSet<String> {
    jwks.keys
        .iter()
        .map(|k| k.common.key_id.clone().expect("every JWK has a kid"))
        .collect()
}

fn key_in(keys: &[SigningKeyRecord], state: KeyState) -> &SigningKeyRecord {
    keys.iter()
        .find(|k| k.state == state)
        .unwrap_or_else(|| panic!("a {state:?} key in {keys:?}"))
}

/// Verifies an access token against `jwks` as a resource server holding
/// that document would (RFC 9068 §4), with `exp` checked against `now`
/// (the mock time), not the wall clock.
fn verify_with(jwks: &JwkSet, token: &str, issuer: &str, now: DateTime<Utc>) -> Value {
    let kid = kid_of(token);
    let jwk = jwks
        .find(&kid)
        .unwrap_or_else(|| panic!("kid {kid} is in the JWKS"));
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
    let claims =
        jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
            .expect("signature verifies against the JWKS")
            .claims;
    let exp = claims["exp"].as_i64().unwrap();
    assert!(
        exp > now.timestamp(),
        "token not expired at mock time {now}"
    );
    claims
}

fn short(kid: &str) -> &str {
    &kid[..8]
}

/// README "Signing keys": a key signs for 30 days; the next one is
/// published from the moment the previous rotation happened (RFC 7517 §5:
/// consumers find a key in the set before they see it used), and a retired
/// key leaves once its tokens have expired (15 min + 60 s skew).
async fn walking_ninety_days_rotates_three_times(backend: Backend) {
    let Some(app) = spawn_mock_app(backend).await else {
        return;
    };
    let client = app.machine_client().await;
    let t0 = app.now();
    let retention = authd::tokens::keyring::retention();
    assert_eq!(retention, chrono::Duration::minutes(61));

    // kid → (first seen in the JWKS, first signed, last signed)
    let mut first_seen = std::collections::HashMap::<String, DateTime<Utc>>::new();
    let mut last_signed = std::collections::HashMap::<String, DateTime<Utc>>::new();
    let mut changes = Vec::new();
    let mut previous: Option<String> = None;
    eprintln!("day | signing  | published keys (kid prefix: state)");
    for day in 0..=90 {
        if day > 0 {
            app.advance(chrono::Duration::days(1)).await;
        }
        let now = app.now();
        let jwks = app.jwks().await;
        let published = kids(&jwks);
        let token = app.token(&client).await;
        let signer = kid_of(&token);
        verify_with(&jwks, &token, &app.issuer, now);
        assert!(published.contains(&signer), "day {day}: signer published");
        assert!(
            (2..=3).contains(&published.len()),
            "day {day}: 2 or 3 keys, got {published:?}"
        );
        for kid in &published {
            first_seen.entry(kid.clone()).or_insert(now);
        }
        if previous.as_ref() != Some(&signer) {
            if let Some(old) = &previous {
                changes.push(day);
                // The new signer was published ≥ 24 h before it signed.
                let seen = first_seen[&signer];
                assert!(
                    now - seen >= chrono::Duration::hours(24),
                    "day {day}: {signer} published at {seen}, signs at {now}"
                );
                last_signed.insert(old.clone(), now - chrono::Duration::days(1));
            }
            previous = Some(signer.clone());
        }
        // A key that stopped signing more than 16 min ago is gone.
        for (kid, last) in &last_signed {
            if now - *last > retention + chrono::Duration::days(1) {
                assert!(
                    !published.contains(kid),
                    "day {day}: retired {kid} still published"
                );
            }
        }
        let keys = app.keys().await;
        let states: Vec<String> = keys
            .iter()
            .map(|k| format!("{}: {}", short(&k.kid.0), k.state.as_str()))
            .collect();
        eprintln!("{day:>3} | {} | {}", short(&signer), states.join(", "));
    }
    assert_eq!(changes, vec![30, 60, 90], "rotations at days 30, 60, 90");
    let keys = app.keys().await;
    // `authd keys list` on day 90, times as day + hh:mm after the start.
    let at = |t: Option<DateTime<Utc>>| {
        t.map(|t| {
            let d = t - t0;
            format!(
                "day {:>2} +{:02}:{:02}",
                d.num_days(),
                d.num_hours() % 24,
                d.num_minutes() % 60
            )
        })
        .unwrap_or_else(|| "-".into())
    };
    eprintln!(
        "kid      | state   | created      | activates    | activated    | retired      | removed"
    );
    for k in &keys {
        eprintln!(
            "{} | {:<7} | {} | {} | {} | {} | {}",
            short(&k.kid.0),
            k.state.as_str(),
            at(Some(k.created_at)),
            at(k.activates_at),
            at(k.activated_at),
            at(k.retired_at),
            at(k.removed_at)
        );
    }
    assert_eq!(keys.len(), 5, "first key + 4 generated: {keys:?}");
    let removed = keys.iter().filter(|k| k.state == KeyState::Removed).count();
    assert_eq!(removed, 2, "keys retired at days 30 and 60 are removed");
    // Removed keys lose their private half.
    assert!(
        keys.iter()
            .filter(|k| k.state == KeyState::Removed)
            .all(|k| k.private_key_sealed.is_empty())
    );
    assert_eq!(
        key_in(&keys, KeyState::Active).activated_at.unwrap(),
        t0 + chrono::Duration::days(90)
    );
    app.stop().await;
}

/// RFC 7517 §5 / README: max-age ≤ 1 h and a 24 h pre-publication mean a
/// resource server with a JWKS fetched 23 h before activation already knows
/// the key that signs after it.
async fn token_signed_after_activation_verifies_against_a_jwks_fetched_23_hours_earlier(
    backend: Backend,
) {
    let Some(app) = spawn_mock_app(backend).await else {
        return;
    };
    let client = app.machine_client().await;
    let keys = app.keys().await;
    let next = key_in(&keys, KeyState::Next).clone();
    let activation = next.activates_at.expect("a next key has a date");
    assert_eq!(
        activation - key_in(&keys, KeyState::Active).activated_at.unwrap(),
        chrono::Duration::days(30)
    );

    let wait = activation - chrono::Duration::hours(23) - app.now();
    app.advance(wait).await;
    let old_jwks = app.jwks().await;
    assert_eq!(
        kid_of(&app.token(&client).await),
        key_in(&keys, KeyState::Active).kid.0
    );
    assert!(
        old_jwks.find(&next.kid.0).is_some(),
        "next key pre-published"
    );

    app.advance(chrono::Duration::hours(23) + chrono::Duration::minutes(1))
        .await;
    let token = app.token(&client).await;
    assert_eq!(kid_of(&token), next.kid.0, "the pre-published key signs");
    let claims = verify_with(&old_jwks, &token, &app.issuer, app.now());
    assert_eq!(claims["iat"].as_i64().unwrap(), app.now().timestamp());
    app.stop().await;
}

/// README: a retired key stays published for the longest token lifetime
/// (an API may give its tokens an hour) plus skew (60 min + 60 s) after its
/// last signature, then leaves.
async fn retired_key_stays_until_its_last_token_expires(backend: Backend) {
    let Some(app) = spawn_mock_app(backend).await else {
        return;
    };
    let client = app.machine_client().await;
    let keys = app.keys().await;
    let old = key_in(&keys, KeyState::Active).kid.0.clone();
    let activation = key_in(&keys, KeyState::Next).activates_at.unwrap();

    app.advance(activation - chrono::Duration::minutes(1) - app.now())
        .await;
    let last_old_token = app.token(&client).await;
    assert_eq!(kid_of(&last_old_token), old);

    app.advance(chrono::Duration::minutes(2)).await;
    let rotated_at = app.now();
    assert_ne!(kid_of(&app.token(&client).await), old, "rotated");
    let keys = app.keys().await;
    let retired = key_in(&keys, KeyState::Retired);
    assert_eq!(retired.kid.0, old);
    assert_eq!(retired.retired_at.unwrap(), rotated_at);
    let live = app.jwks().await;
    assert!(live.find(&old).is_some(), "retired key still published");
    verify_with(&live, &last_old_token, &app.issuer, app.now());

    app.advance(chrono::Duration::minutes(60)).await;
    assert!(
        app.jwks().await.find(&old).is_some(),
        "60 min after rotation the retired key is still published"
    );

    app.advance(chrono::Duration::minutes(2)).await;
    assert!(
        app.jwks().await.find(&old).is_none(),
        "62 min after rotation the retired key is gone"
    );
    let keys = app.keys().await;
    let removed = keys.iter().find(|k| k.kid.0 == old).unwrap();
    assert_eq!(removed.state, KeyState::Removed);
    assert!(
        removed.private_key_sealed.is_empty(),
        "private half deleted"
    );
    app.stop().await;
}

/// README: every replica runs the schedule; the database lock makes each
/// transition happen once.
async fn two_processes_on_one_postgres_rotate_once(backend: Backend) {
    let Some(database) = test_database(backend).await else {
        return;
    };
    let database = Arc::new(database);
    let master_key = MasterKey::generate();
    let clock = Arc::new(MockClock::new(start_time()));
    // Migrated once, then both replicas start at the same time: each may
    // create a first key and a next key; the database keeps one of each.
    let migrated = Runtime::open(&mock_config(&database, &master_key), true, &SystemClock)
        .await
        .expect("migrate");
    migrated.store.close().await;
    let (a, b) = tokio::join!(
        spawn_mock_app_on(database.clone(), &master_key, clock.clone(), |_| {}),
        spawn_mock_app_on(database, &master_key, clock.clone(), |_| {}),
    );
    let keys = a.keys().await;
    assert_eq!(keys.len(), 2, "one active and one next key: {keys:?}");
    let first = key_in(&keys, KeyState::Active).kid.0.clone();
    let next = key_in(&keys, KeyState::Next).clone();

    clock.advance(next.activates_at.unwrap() - clock.now() + chrono::Duration::seconds(1));
    settle(&a, &[&a, &b]).await;
    // A few more ticks on both replicas.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let keys = a.keys().await;
    assert_eq!(keys.len(), 3, "exactly one new next key: {keys:?}");
    let count = |state| keys.iter().filter(|k| k.state == state).count();
    assert_eq!(count(KeyState::Active), 1);
    assert_eq!(count(KeyState::Next), 1);
    assert_eq!(count(KeyState::Retired), 1);
    assert_eq!(key_in(&keys, KeyState::Retired).kid.0, first);
    let active = key_in(&keys, KeyState::Active);
    assert_eq!(active.kid.0, next.kid.0);
    // Activated once: its activation time is the first pass that saw it due.
    assert_eq!(
        active.activated_at,
        key_in(&keys, KeyState::Retired).retired_at
    );
    assert_eq!(kids(&a.jwks().await), kids(&b.jwks().await));
    a.stop().await;
    b.stop().await;
}

fn authd(app: &TestApp, args: &[&str]) -> Output {
    run_authd(app, args)
}

async fn introspect(app: &TestApp, caller: &(String, String), token: &str) -> Value {
    let response = app
        .http
        .post(app.url("/introspect"))
        .basic_auth(&caller.0, Some(&caller.1))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// README "Signing keys": `keys rotate` and `keys revoke` change the
/// database; running servers follow within the cache refresh. A revoked
/// key's tokens are rejected (RFC 7662 §2.2 inactive, RFC 6750 §3.1
/// invalid_token). The refusal of `keys rotate` without a next key is not
/// tested here: a started server always has one.
async fn cli_rotate_and_revoke_reach_a_running_server_within_5_seconds(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let machine = app.machine_client(&["orders:read"]).await;
    let (id, secret) = (machine.0.as_str(), machine.1.as_str());
    let (rs_id, rs_secret) = app
        .register(NewClient {
            name: "Resource server".into(),
            can_introspect: true,
            ..Default::default()
        })
        .await;
    let resource_server = (rs_id, rs_secret.unwrap());
    let web = app.web_client(false, &[]).await;
    app.user("alice").await;

    let keys = json_ok(&authd(&app, &["keys", "list"]));
    let first = state_of(&keys, "active");
    let second = state_of(&keys, "next");
    let before = cc_token(&app, id, secret).await;
    assert_eq!(kid_of(&before), first);

    let rotated = json_ok(&authd(&app, &["keys", "rotate"]));
    assert_eq!(state_of(&rotated, "active"), second);
    let third = state_of(&rotated, "next");
    within_5_seconds("tokens carry the rotated kid", || async {
        kid_of(&cc_token(&app, id, secret).await) == second
    })
    .await;

    // Tokens signed by the key about to be revoked.
    let doomed_cc = cc_token(&app, id, secret).await;
    assert_eq!(kid_of(&doomed_cc), second);
    let user_tokens = sign_in_and_exchange(&app, &app.browser(), &web, "alice", &[]).await;
    let doomed_user = user_tokens["access_token"].as_str().unwrap().to_owned();
    assert_eq!(kid_of(&doomed_user), second);
    assert_eq!(
        introspect(&app, &resource_server, &doomed_cc).await["active"],
        true
    );
    let userinfo = |token: String| {
        let app = &app;
        async move {
            app.http
                .get(app.url("/userinfo"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(userinfo(doomed_user.clone()).await.status(), 200);

    let revoked = json_ok(&authd(&app, &["keys", "revoke", &second]));
    assert_eq!(state_of(&revoked, "revoked"), second);
    assert_eq!(state_of(&revoked, "active"), third, "the next key signs");
    let runtime = Runtime::open(&app.config, false, &SystemClock)
        .await
        .unwrap();
    let stored = runtime.store.list_signing_keys().await.unwrap();
    runtime.store.close().await;
    let gone = stored.iter().find(|k| k.kid.0 == second).unwrap();
    assert_eq!(gone.state, KeyState::Revoked);
    assert!(
        gone.private_key_sealed.is_empty(),
        "revoked: private half deleted"
    );
    within_5_seconds("the JWKS drops the revoked key", || async {
        let jwks: JwkSet =
            serde_json::from_value(app.get_json("/.well-known/jwks.json").await).unwrap();
        jwks.find(&second).is_none()
    })
    .await;
    assert_eq!(
        introspect(&app, &resource_server, &doomed_cc).await,
        serde_json::json!({ "active": false })
    );
    let response = userinfo(doomed_user).await;
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    let after = cc_token(&app, id, secret).await;
    assert_eq!(kid_of(&after), third, "new tokens carry another kid");
    // The retired first key was not touched: its token still introspects.
    assert_eq!(
        introspect(&app, &resource_server, &before).await["active"],
        true
    );
    app.stop().await;
}

/// RFC 9111 §5.2.2.1 max-age: a quarter of the pre-publication time, at
/// most an hour; RFC 9110 §8.8.3 ETag and §13.1.2 If-None-Match.
async fn jwks_cache_headers(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let response = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "public, max-age=3600");
    app.stop().await;

    let short = spawn_app_on(
        app.database.clone(),
        MasterKey::from_base64(&app.master_key.to_base64()).unwrap(),
        |config| {
            config.key_prepublish = Duration::from_secs(4 * 600);
        },
    )
    .await
    .expect("app starts");
    let response = short
        .http
        .get(short.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["cache-control"], "public, max-age=600");
    short.stop().await;

    let Some(mock) = spawn_mock_app(backend).await else {
        return;
    };
    let get = |etag: Option<String>| {
        let mock = &mock;
        async move {
            let request = mock.http.get(mock.url("/.well-known/jwks.json"));
            let request = match etag {
                Some(etag) => request.header("if-none-match", etag),
                None => request,
            };
            request.send().await.unwrap()
        }
    };
    let first = get(None).await;
    let old_etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let old_body = first.text().await.unwrap();
    assert_eq!(get(Some(old_etag.clone())).await.status(), 304);

    let activation = key_in(&mock.keys().await, KeyState::Next)
        .activates_at
        .unwrap();
    mock.advance(activation - mock.now()).await;
    let response = get(Some(old_etag.clone())).await;
    assert_eq!(response.status(), 200, "old ETag after a rotation");
    let new_etag = response.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(new_etag, old_etag);
    assert_eq!(response.headers()["cache-control"], "public, max-age=3600");
    let new_body = response.text().await.unwrap();
    assert_ne!(new_body, old_body);
    let jwks: JwkSet = serde_json::from_str(&new_body).unwrap();
    assert_eq!(kids(&jwks), published(&mock.keys().await));
    let not_modified = get(Some(new_etag.clone())).await;
    assert_eq!(not_modified.status(), 304);
    assert_eq!(not_modified.headers()["etag"].to_str().unwrap(), new_etag);
    mock.stop().await;
}

on_both_backends!(
    walking_ninety_days_rotates_three_times,
    token_signed_after_activation_verifies_against_a_jwks_fetched_23_hours_earlier,
    retired_key_stays_until_its_last_token_expires,
    two_processes_on_one_postgres_rotate_once,
    cli_rotate_and_revoke_reach_a_running_server_within_5_seconds,
    jwks_cache_headers,
);
