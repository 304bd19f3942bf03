//! The example resource server (`examples/resource_server.rs`), run as its
//! own process against a real authd: it accepts fresh tokens across a
//! signing-key rotation and rejects a token whose key was revoked, with the
//! RFC 6750 §3 refusals, from the JWKS it caches (RFC 7517 §5, RFC 9068 §4).
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use authd::crypto::MasterKey;
use jsonwebtoken::jwk::JwkSet;
use serde_json::Value;

use crate::helpers::{
    Backend, TestApp, authd_command, cc_token, json_ok, kid_of, on_both_backends, spawn_app_on,
    state_of, test_database, within_5_seconds,
};

/// The example's identifier in authd: the `aud` it requires.
const ORDERS_API: &str = "https://orders.example";

/// authd's JWKS `max-age` is a quarter of this (src/tokens/keyring.rs).
const PREPUBLISH: Duration = Duration::from_secs(80);
/// authd's JWKS `max-age`, so how long the example keeps a fetched set. Above
/// the example's refetch interval on purpose: an unknown kid then refetches
/// before the set expires, so the two refetch paths are told apart. (The
/// example raises a max-age below 10 s to 10 s.)
const JWKS_MAX_AGE: Duration = Duration::from_secs(20);
/// Longer than the test, so only the CLI changes the keys.
const ROTATION_PERIOD: Duration = Duration::from_secs(3600);
/// `MIN_REFETCH_INTERVAL` in the example: no JWKS fetch follows another
/// within this, whether an expiry or an unknown `kid` asks for it.
const EXAMPLE_REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// Room for a fetch, the CLI's key reload in authd and a busy machine.
const SLACK: Duration = Duration::from_secs(5);

/// The example binary as `cargo test` builds it (target/<profile>/examples).
/// Built here when missing or older than its source (e.g. after `cargo test
/// --test api`, which builds no examples), so the test never skips.
fn example_binary() -> PathBuf {
    static BUILD: Mutex<()> = Mutex::new(());
    let _one_build_at_a_time = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/api-HASH
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary is in target/<profile>/deps");
    let name = format!("resource_server{}", std::env::consts::EXE_SUFFIX);
    let binary = profile_dir.join("examples").join(name);
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/resource_server.rs");
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let fresh = match (modified(&binary), modified(&source)) {
        (Some(built), Some(written)) => built >= written,
        (built, _) => built.is_some(),
    };
    if !fresh {
        let mut build = Command::new(option_env!("CARGO").unwrap_or("cargo"));
        build
            .args(["build", "--example", "resource_server"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null());
        match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => {}
            Some(profile) => {
                build.args(["--profile", profile]);
            }
        }
        let status = build.status().expect("cargo runs");
        assert!(
            status.success(),
            "cargo build --example resource_server: {status}"
        );
    }
    assert!(binary.exists(), "{} was not built", binary.display());
    binary
}

/// The example running as a child process; killed when dropped, so a
/// failing assertion does not leave it behind.
struct ResourceServer {
    child: Child,
    /// Before the spawn, so before the example's first JWKS fetch.
    spawned: Instant,
    base: String,
    http: reqwest::Client,
    /// stdout and stderr lines (the tracing log), for failure messages.
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for ResourceServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ResourceServer {
    /// Starts the example against `issuer` on a free port and waits until
    /// `GET /health` answers.
    async fn start(issuer: &str) -> Self {
        Self::start_as(issuer, ORDERS_API).await
    }

    /// As [`Self::start`], for the API with this identifier.
    async fn start_as(issuer: &str, identifier: &str) -> Self {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
            listener.local_addr().unwrap().port()
        };
        let binary = example_binary();
        let spawned = Instant::now();
        let mut child = Command::new(binary)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AUTHD_URL", issuer)
            .env("RESOURCE_IDENTIFIER", identifier)
            .env("RESOURCE_SERVER_BIND", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the example starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        collect_lines(child.stdout.take().unwrap(), log.clone());
        collect_lines(child.stderr.take().unwrap(), log.clone());
        let mut server = Self {
            child,
            spawned,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            log,
        };
        let started = Instant::now();
        loop {
            let health = server.http.get(server.url("/health")).send().await;
            if let Ok(response) = health {
                assert_eq!(response.status(), 200, "{}", server.log());
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["status"], "ok");
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("the example exited with {status}:\n{}", server.log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the example did not answer /health within 30 s:\n{}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn orders(&self, method: reqwest::Method, token: Option<&str>) -> reqwest::Response {
        let request = self.http.request(method, self.url("/orders"));
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        request.send().await.expect("the example answers")
    }

    async fn get_orders(&self, token: &str) -> reqwest::Response {
        self.orders(reqwest::Method::GET, Some(token)).await
    }

    /// `GET /orders` with `token` every 250 ms until it answers `want`, for
    /// at most `limit`; every other answer must be `meanwhile`. Returns the
    /// final response and how long it took.
    async fn poll_orders(
        &self,
        token: &str,
        want: u16,
        meanwhile: u16,
        limit: Duration,
    ) -> (reqwest::Response, Duration) {
        let started = Instant::now();
        loop {
            let response = self.get_orders(token).await;
            if response.status() == want {
                return (response, started.elapsed());
            }
            assert_eq!(
                response.status(),
                meanwhile,
                "{:?}\n{}",
                response.headers().get("www-authenticate"),
                self.log()
            );
            assert!(
                started.elapsed() < limit,
                "GET /orders did not answer {want} within {limit:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

/// Copies a child's output into `log` line by line on a thread of its own,
/// so a full pipe never blocks the child.
fn collect_lines(output: impl Read + Send + 'static, log: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines() {
            let Ok(line) = line else { break };
            log.lock().unwrap().push(line);
        }
    });
}

/// The `WWW-Authenticate` value of a refusal.
fn challenge(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("www-authenticate")
        .expect("a WWW-Authenticate header (RFC 6750 §3)")
        .to_str()
        .unwrap()
        .to_owned()
}

fn authd(app: &TestApp, args: &[&str]) -> Output {
    authd_command(&app.database.url, &app.master_key)
        .args(args)
        // The schedule the running app has, so the CLI dates keys alike.
        .env("AUTHD_KEY_PREPUBLISH", format!("{}s", PREPUBLISH.as_secs()))
        .env(
            "AUTHD_KEY_ROTATION_PERIOD",
            format!("{}s", ROTATION_PERIOD.as_secs()),
        )
        .output()
        .expect("authd binary runs")
}

async fn published_kids(app: &TestApp) -> Vec<String> {
    let jwks: JwkSet =
        serde_json::from_value(app.get_json("/.well-known/jwks.json").await).unwrap();
    jwks.keys
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .collect()
}

/// An authd whose JWKS max-age is [`JWKS_MAX_AGE`]; `None` when the backend
/// is not available.
async fn spawn_short_cache_app(backend: Backend) -> Option<TestApp> {
    let database = Arc::new(test_database(backend).await?);
    let app = spawn_app_on(database, MasterKey::generate(), |config| {
        config.key_prepublish = PREPUBLISH;
        config.key_rotation_period = ROTATION_PERIOD;
    })
    .await
    .expect("app starts");
    // RFC 9111 §5.2.2.1: what the example caches the key set for.
    let response = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let max_age = format!("public, max-age={}", JWKS_MAX_AGE.as_secs());
    assert_eq!(response.headers()["cache-control"], max_age.as_str());
    // The example is this API: any signed-in user may consent to its
    // scopes, and its tokens list the caller's permissions.
    json_ok(&authd(
        &app,
        &[
            "apis",
            "create",
            "--identifier",
            ORDERS_API,
            "--name",
            "Orders",
            "--scope",
            "orders:read=See your orders",
            "--scope",
            "orders:write=Place orders",
            "--scope",
            "orders:export=Export every order",
            "--user-access",
            "any",
            "--token-claims",
            "permissions",
        ],
    ));
    Some(app)
}

/// Issue: "the example resource server accepts fresh tokens across a
/// rotation and rejects one whose key was revoked". A rotation activates the
/// pre-published next key, which the example already holds (RFC 7517 §5
/// served with a max-age); a token with a kid the example has not seen makes
/// it refetch; a revoked key leaves authd's JWKS and so, by the example's
/// next fetch, its set (RFC 6750 §3.1 invalid_token).
async fn example_accepts_fresh_tokens_across_a_rotation_and_rejects_a_revoked_key(
    backend: Backend,
) {
    let Some(app) = spawn_short_cache_app(backend).await else {
        return;
    };
    let example = ResourceServer::start(&app.issuer).await;
    let (id, secret) = app.machine_client(&["orders:read"]).await;
    let (id, secret) = (id.as_str(), secret.as_str());

    let keys = json_ok(&authd(&app, &["keys", "list"]));
    let first = state_of(&keys, "active");
    let second = state_of(&keys, "next");
    let token_a = cc_token(&app, id, secret).await;
    assert_eq!(kid_of(&token_a), first);
    let response = example.get_orders(&token_a).await;
    assert_eq!(response.status(), 200, "{}", example.log());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["client_id"], id);
    assert_eq!(
        body["for"], id,
        "client credentials: the client is the subject"
    );
    assert_eq!(body["orders"].as_array().unwrap().len(), 2);

    // Rotation: the next key, published since before the example started,
    // signs from now on.
    let rotated = json_ok(&authd(&app, &["keys", "rotate"]));
    assert_eq!(state_of(&rotated, "active"), second);
    assert_eq!(state_of(&rotated, "retired"), first);
    let third = state_of(&rotated, "next");
    within_5_seconds("tokens carry the rotated kid", || async {
        kid_of(&cc_token(&app, id, secret).await) == second
    })
    .await;
    let token_b = cc_token(&app, id, secret).await;
    assert_eq!(kid_of(&token_b), second);
    let response = example.get_orders(&token_b).await;
    assert_eq!(response.status(), 200, "{}", example.log());
    // Within 10 s of its start the example cannot fetch at all, so an
    // acceptance then came from the key set it fetched at start-up.
    let since_start = example.spawned.elapsed();
    eprintln!(
        "token B accepted {since_start:?} after the example started (no fetch possible: {})",
        since_start < EXAMPLE_REFETCH_INTERVAL
    );
    // The retired key stays published until its last token expires.
    assert!(published_kids(&app).await.contains(&first));
    let response = example.get_orders(&token_a).await;
    assert_eq!(response.status(), 200, "{}", example.log());

    // Revocation of the key that signs: the third key signs at once.
    let revoked = json_ok(&authd(&app, &["keys", "revoke", &second]));
    let revoked_at = Instant::now();
    assert_eq!(state_of(&revoked, "revoked"), second);
    assert_eq!(state_of(&revoked, "active"), third);
    within_5_seconds("authd's JWKS drops the revoked key", || async {
        !published_kids(&app).await.contains(&second)
    })
    .await;
    let token_c = cc_token(&app, id, secret).await;
    assert_eq!(kid_of(&token_c), third);
    // The third key was published after the example's start-up fetch. Its
    // unknown kid refetches at once, except within 10 s of the previous
    // fetch: until then token C is refused as signed by an unknown key
    // (401), so this polls for up to 10 s and a margin.
    let (_, waited) = example
        .poll_orders(&token_c, 200, 401, EXAMPLE_REFETCH_INTERVAL + SLACK)
        .await;
    eprintln!(
        "token C (new kid) accepted after {waited:?} of polling, {:?} after the example started",
        example.spawned.elapsed()
    );

    // Token B: refused by the first set the example fetched after the
    // revocation reached authd's JWKS: the one token C's kid just made it
    // fetch. The limit allows for a refetch at the set's expiry instead.
    let (response, waited) = example
        .poll_orders(&token_b, 401, 200, JWKS_MAX_AGE + SLACK)
        .await;
    eprintln!(
        "token B refused after {waited:?} of polling, {:?} after the revocation",
        revoked_at.elapsed()
    );
    let challenge_b = challenge(&response);
    assert!(challenge_b.starts_with("Bearer "), "{challenge_b}");
    assert!(
        challenge_b.contains(r#"error="invalid_token""#),
        "{challenge_b}"
    );
    assert!(
        challenge_b.contains("signed with an unknown key"),
        "{challenge_b}"
    );
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");

    // The retired first key was not touched, and the third key signs.
    let response = example.get_orders(&token_a).await;
    assert_eq!(response.status(), 200, "{}", example.log());
    let response = example.get_orders(&token_c).await;
    assert_eq!(response.status(), 200, "{}", example.log());

    // Revoking the retired key: its kid is in the example's set, so nothing
    // makes the example refetch before the set is max-age old.
    let revoked = json_ok(&authd(&app, &["keys", "revoke", &first]));
    let revoked_at = Instant::now();
    assert_eq!(state_of(&revoked, "revoked"), first);
    assert_eq!(state_of(&revoked, "active"), third, "the signing key stays");
    within_5_seconds("authd's JWKS drops the revoked retired key", || async {
        !published_kids(&app).await.contains(&first)
    })
    .await;
    let (response, waited) = example
        .poll_orders(&token_a, 401, 200, JWKS_MAX_AGE + SLACK)
        .await;
    eprintln!(
        "token A refused after {waited:?} of polling, {:?} after revoking its retired key",
        revoked_at.elapsed()
    );
    let challenge_a = challenge(&response);
    assert!(
        challenge_a.contains(r#"error="invalid_token""#),
        "{challenge_a}"
    );
    let response = example.get_orders(&token_c).await;
    assert_eq!(response.status(), 200, "{}", example.log());
    eprintln!("example log:\n{}", example.log());
    drop(example);
    app.stop().await;
}

/// RFC 6750 §3.1 against a real issuer: no token is a 401 with a bare
/// challenge (no error code), a token without the route's scope a 403
/// `insufficient_scope` naming the scope; with it, the route runs.
async fn example_refuses_a_missing_token_and_a_missing_scope(backend: Backend) {
    let Some(app) = spawn_short_cache_app(backend).await else {
        return;
    };
    let example = ResourceServer::start(&app.issuer).await;

    let response = example.orders(reqwest::Method::GET, None).await;
    assert_eq!(response.status(), 401);
    let bare = challenge(&response);
    assert!(bare.starts_with("Bearer "), "{bare}");
    assert!(
        !bare.contains("error="),
        "no error code without a token: {bare}"
    );

    let (reader, reader_secret) = app.machine_client(&["orders:read"]).await;
    let read_only = cc_token(&app, &reader, &reader_secret).await;
    let response = example
        .orders(reqwest::Method::POST, Some(&read_only))
        .await;
    assert_eq!(response.status(), 403, "{}", example.log());
    let scope_challenge = challenge(&response);
    assert!(
        scope_challenge.contains(r#"error="insufficient_scope""#),
        "{scope_challenge}"
    );
    assert!(
        scope_challenge.contains(r#"scope="orders:write""#),
        "{scope_challenge}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_scope");

    let (writer, writer_secret) = app.machine_client(&["orders:write"]).await;
    let write_only = cc_token(&app, &writer, &writer_secret).await;
    let response = example.get_orders(&write_only).await;
    assert_eq!(response.status(), 403, "{}", example.log());
    assert!(challenge(&response).contains(r#"scope="orders:read""#));
    let response = example
        .orders(reqwest::Method::POST, Some(&write_only))
        .await;
    assert_eq!(response.status(), 201, "{}", example.log());
    assert_eq!(response.headers()["location"], "/orders/ord-1003");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["client_id"], writer.as_str());
    drop(example);
    app.stop().await;
}

/// Issue 16: the example checks its identifier in `aud` and gates a route
/// on a permission. A user holding `orders:export` through a group's role
/// may export; removed from the group, their next refreshed token loses
/// the permission (and the route), keeping the scope `any` user gets. A
/// token for another API is refused.
async fn example_gates_a_route_on_a_permission_across_a_role_removal(backend: Backend) {
    let Some(app) = spawn_short_cache_app(backend).await else {
        return;
    };
    let example = ResourceServer::start(&app.issuer).await;
    app.user("dave").await;
    for args in [
        &[
            "roles",
            "create",
            "--name",
            "exporter",
            "--scope",
            "orders:export",
        ][..],
        &["groups", "create", "--name", "ops"],
        &["groups", "add-role", "ops", "exporter"],
        &["groups", "add-member", "ops", "dave"],
    ] {
        json_ok(&authd(&app, args));
    }
    let client = app
        .web_client_with(authd::clients::registration::NewClient {
            name: "Orders dashboard".into(),
            redirect_uris: vec!["https://app.example/cb".into()],
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            scopes: vec!["orders:read".into()],
            ..Default::default()
        })
        .await;
    let pkce = crate::helpers::pkce();
    let query = format!(
        "{}&resource={}",
        crate::helpers::authorize_query(
            &client,
            &pkce,
            &[("scope", "openid offline_access orders:read")]
        ),
        form_urlencoded::byte_serialize(ORDERS_API.as_bytes()).collect::<String>()
    );
    let back = app.browser().sign_in(&query, "dave").await;
    let code = crate::helpers::query_param(&back, "code").expect("a code");
    let response = crate::helpers::exchange_code(&app, &client, &code, &pkce.verifier).await;
    assert_eq!(response.status(), 200);
    let tokens: Value = response.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        example.get_orders(access).await.status(),
        200,
        "{}",
        example.log()
    );
    let export = |token: String| {
        let example = &example;
        async move {
            example
                .http
                .get(example.url("/orders/export"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    // The permission, though the token's scope is only orders:read.
    let response = export(access.to_owned()).await;
    assert_eq!(response.status(), 200, "{}", example.log());

    json_ok(&authd(&app, &["groups", "remove-member", "ops", "dave"]));
    let response = app
        .http
        .post(app.url("/token"))
        .basic_auth(&client.id, client.secret.as_deref())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let refreshed: Value = response.json().await.unwrap();
    let access = refreshed["access_token"].as_str().unwrap().to_owned();
    let response = export(access.clone()).await;
    assert_eq!(response.status(), 403, "{}", example.log());
    assert!(challenge(&response).contains(r#"error="insufficient_scope""#));
    assert_eq!(example.get_orders(&access).await.status(), 200);

    // A token for another API (the issuer's own) is not for this one.
    let other = app.user("erin").await;
    let _ = other;
    let pkce = crate::helpers::pkce();
    let query = crate::helpers::authorize_query(&client, &pkce, &[("scope", "openid")]);
    let back = app.browser().sign_in(&query, "erin").await;
    let code = crate::helpers::query_param(&back, "code").expect("a code");
    let tokens: Value = crate::helpers::exchange_code(&app, &client, &code, &pkce.verifier)
        .await
        .json()
        .await
        .unwrap();
    let response = example
        .get_orders(tokens["access_token"].as_str().unwrap())
        .await;
    assert_eq!(response.status(), 401);
    assert!(challenge(&response).contains("not meant for this API"));
    drop(example);
    app.stop().await;
}

on_both_backends!(
    example_accepts_fresh_tokens_across_a_rotation_and_rejects_a_revoked_key,
    example_refuses_a_missing_token_and_a_missing_scope,
    example_gates_a_route_on_a_permission_across_a_role_removal,
);
