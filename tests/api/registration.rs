//! Dynamic client registration (RFC 7591) and its management (RFC 7592) at
//! `/register`, in each `AUTHD_REGISTRATION` mode, over real HTTP on both
//! databases; a registered client signs a user in with the `oauth2` crate.
use std::sync::Arc;

use authd::clients::dynamic::{RegistrationMode, remove_unused};
use authd::clients::registration::{self, ClientChanges, RegistrationError};
use authd::clients::registration_tokens::{self, NewRegistrationToken};
use authd::clock::{MockClock, SystemClock};
use authd::config::Config;
use authd::crypto::{MasterKey, Purpose};
use authd::startup::Runtime;
use futures_util::future::join_all;
use oauth2::basic::BasicClient;
use oauth2::{
    AuthorizationCode, ClientId, PkceCodeVerifier, RedirectUrl, RefreshToken, TokenResponse,
    TokenUrl,
};
use serde_json::{Value, json};

use crate::helpers::{
    Backend, PASSWORD, TestApp, WebClient, authorize_query, cc_token, location, on_both_backends,
    pkce, query_i64, query_param, spawn_app, spawn_app_on, test_database,
};

async fn app_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Option<TestApp> {
    let database = Arc::new(test_database(backend).await?);
    Some(
        spawn_app_on(database, MasterKey::generate(), adjust)
            .await
            .expect("app starts"),
    )
}

async fn open_app(backend: Backend) -> Option<TestApp> {
    app_with(backend, |config| {
        config.registration.mode = RegistrationMode::Open;
    })
    .await
}

async fn token_app(backend: Backend) -> Option<TestApp> {
    app_with(backend, |config| {
        config.registration.mode = RegistrationMode::Token;
    })
    .await
}

/// `POST /register` with `metadata` (and an initial access token).
async fn register(app: &TestApp, metadata: &Value, token: Option<&str>) -> reqwest::Response {
    let request = app.http.post(app.url("/register")).json(metadata);
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    request.send().await.unwrap()
}

/// A registration that must succeed: its JSON.
async fn registered(app: &TestApp, metadata: &Value, token: Option<&str>) -> Value {
    let response = register(app, metadata, token).await;
    assert_eq!(response.status(), 201, "registered");
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

/// An RFC 7591 §3.2.2 error: 400, the code, a description, nothing stored.
async fn refused(response: reqwest::Response, code: &str) -> String {
    assert_eq!(response.status(), 400, "{code}");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], code, "{body}");
    let description = body["error_description"].as_str().unwrap().to_owned();
    assert!(!description.is_empty());
    description
}

async fn clients_count(app: &TestApp, backend: Backend) -> i64 {
    query_i64(app, backend, "SELECT COUNT(*) FROM clients").await
}

/// An initial access token made as `authd registration-tokens create` does.
async fn initial_token(app: &TestApp, new: NewRegistrationToken, clock: &MockClock) -> String {
    use secrecy::ExposeSecret;
    let runtime = Runtime::open(&app.config, false, &SystemClock)
        .await
        .expect("open database");
    let issued = registration_tokens::create(
        runtime.store.as_ref(),
        &runtime.digester(Purpose::RegistrationTokenDigest),
        clock,
        new,
    )
    .await
    .expect("token made");
    runtime.store.close().await;
    issued.token.expose_secret().to_owned()
}

fn now() -> MockClock {
    MockClock::new(chrono::Utc::now())
}

async fn registration_is_off_by_default(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let discovery = app.get_json("/.well-known/openid-configuration").await;
    assert!(discovery.get("registration_endpoint").is_none());
    let response = register(
        &app,
        &json!({"redirect_uris": ["https://a.example/cb"]}),
        None,
    )
    .await;
    assert_eq!(response.status(), 404);
    let response = app
        .http
        .get(app.url("/register/some-client"))
        .bearer_auth("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(clients_count(&app, backend).await, 0);
}

/// The consent page of a pending request for `client`, after signing in.
async fn consent_page(
    browser: &crate::helpers::Browser,
    query: &str,
    username: &str,
) -> (String, String) {
    let response = browser.authorize(query).await;
    assert_eq!(response.status(), 303);
    let login = location(&response);
    let response = browser.log_in(&login, username, PASSWORD).await;
    assert_eq!(response.status(), 303);
    let consent = location(&response);
    assert!(consent.starts_with("/consent"), "{consent}");
    let html = browser.get(&consent).await.text().await.unwrap();
    (consent, html)
}

/// Open mode: a public client registers itself (unknown metadata ignored),
/// the consent page says the operator did not verify it, and it finishes a
/// code flow and a refresh with the `oauth2` crate.
async fn open_registration_signs_a_user_in_with_oauth2(backend: Backend) {
    let Some(app) = open_app(backend).await else {
        return;
    };
    let discovery = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(
        discovery["registration_endpoint"],
        format!("{}/register", app.issuer)
    );
    let before = chrono::Utc::now().timestamp();
    let body = registered(
        &app,
        &json!({
            "client_name": "Notes MCP client",
            "redirect_uris": ["http://127.0.0.1:7777/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "scope": "openid offline_access",
            "client_uri": "https://notes.example",
            "contacts": ["ops@notes.example"],
            "software_id": "4NRB1-0XZABZI9E6-5SM3R",
            "tos_uri": "https://notes.example/tos",
            "jwks": {"keys": []},
        }),
        None,
    )
    .await;
    let client_id = body["client_id"].as_str().unwrap().to_owned();
    assert_eq!(body["token_endpoint_auth_method"], "none");
    assert!(body.get("client_secret").is_none());
    assert!(body.get("client_secret_expires_at").is_none());
    assert!(body["client_id_issued_at"].as_i64().unwrap() >= before);
    assert_eq!(body["client_name"], "Notes MCP client");
    assert_eq!(body["scope"], "offline_access openid");
    assert_eq!(
        body["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(body["response_types"], json!(["code"]));
    assert_eq!(
        body["redirect_uris"],
        json!(["http://127.0.0.1:7777/callback"])
    );
    assert_eq!(body["client_uri"], "https://notes.example");
    assert_eq!(body["contacts"], json!(["ops@notes.example"]));
    assert!(body.get("software_id").is_none() && body.get("tos_uri").is_none());
    assert_eq!(
        body["registration_client_uri"],
        format!("{}/register/{client_id}", app.issuer)
    );
    assert!(body["registration_access_token"].as_str().unwrap().len() >= 43);

    // Marked as dynamic, never pre-consented.
    let shown = {
        let runtime = Runtime::open(&app.config, false, &SystemClock)
            .await
            .unwrap();
        let view = registration::show(runtime.store.as_ref(), &client_id)
            .await
            .unwrap();
        let refused = registration::update(
            runtime.store.as_ref(),
            &SystemClock,
            &app.config.rate_limits,
            &client_id,
            ClientChanges {
                skip_consent: Some(true),
                ..Default::default()
            },
            None,
        )
        .await;
        assert!(
            matches!(refused, Err(RegistrationError::SkipConsentDynamic)),
            "{refused:?}"
        );
        runtime.store.close().await;
        view
    };
    assert_eq!(shown.registered_via, "open");
    assert!(!shown.skip_consent);

    app.user("alice").await;
    let client = WebClient {
        id: client_id.clone(),
        secret: None,
        redirect_uri: "http://127.0.0.1:7777/callback".into(),
    };
    let pkce = pkce();
    let browser = app.browser();
    let query = authorize_query(&client, &pkce, &[("scope", "openid offline_access")]);
    let (consent, html) = consent_page(&browser, &query, "alice").await;
    assert!(html.contains("Not verified by the operator"), "{html}");
    assert!(
        html.contains("<strong>an app on this device</strong>"),
        "{html}"
    );
    let back = location(&browser.decide(&consent, "allow").await);
    let code = query_param(&back, "code").expect("a code");

    let oauth = BasicClient::new(ClientId::new(client_id.clone()))
        .set_token_uri(TokenUrl::new(app.url("/token")).unwrap())
        .set_redirect_uri(RedirectUrl::new(client.redirect_uri.clone()).unwrap());
    let token = oauth
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(PkceCodeVerifier::new(pkce.verifier.clone()))
        .request_async(&app.http)
        .await
        .expect("a registered client exchanges its code with the oauth2 crate");
    let refresh = token.refresh_token().expect("offline_access").clone();
    oauth
        .exchange_refresh_token(&RefreshToken::new(refresh.secret().clone()))
        .request_async(&app.http)
        .await
        .expect("and refreshes");
    // Its first use is recorded: housekeeping keeps it.
    assert_eq!(
        query_i64(
            &app,
            backend,
            "SELECT COUNT(*) FROM clients WHERE used_at IS NOT NULL"
        )
        .await,
        1
    );
}

/// Open mode's limits and RFC 7591 §3.2.2's errors; nothing is stored for
/// a refused request.
async fn open_registration_refuses_what_it_must(backend: Backend) {
    let Some(app) = open_app(backend).await else {
        return;
    };
    app.define_scopes(&["orders:read".into()]).await;
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "client_secret_basic"}),
            "invalid_client_metadata",
            "public clients only",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
            "not supported",
        ),
        (
            json!({"redirect_uris": ["http://evil.example/cb"]}),
            "invalid_redirect_uri",
            "http://evil.example/cb",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb#frag"]}),
            "invalid_redirect_uri",
            "redirect_uris",
        ),
        (json!({}), "invalid_redirect_uri", "at least one"),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "scope": "openid orders:read"}),
            "invalid_client_metadata",
            "orders:read may not be registered here",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "scope": "openid admin:clients:write"}),
            "invalid_client_metadata",
            "admin:clients:write is never given",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "grant_types": ["client_credentials"], "response_types": []}),
            "invalid_client_metadata",
            "cannot use client_credentials",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "grant_types": ["implicit"]}),
            "invalid_client_metadata",
            "implicit is not supported",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "grant_types": ["authorization_code", "password"]}),
            "invalid_client_metadata",
            "password is not supported",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "response_types": ["token"]}),
            "invalid_client_metadata",
            "only code",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "grant_types": ["authorization_code"], "response_types": []}),
            "invalid_client_metadata",
            "go together",
        ),
        (
            json!({"redirect_uris": "https://a.example/cb"}),
            "invalid_client_metadata",
            "redirect_uris must be an array of strings",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "client_name": "x\u{0007}y"}),
            "invalid_client_metadata",
            "client_name",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "client_name": "Pay\u{200B}Pal"}),
            "invalid_client_metadata",
            "invisible",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "client_uri": "https://a.example/ x"}),
            "invalid_client_metadata",
            "client_uri must be an https URL",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "client_name": 7}),
            "invalid_client_metadata",
            "client_name must be a string",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "logo_uri": "http://a.example/logo.png"}),
            "invalid_client_metadata",
            "logo_uri must be an https URL",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "client_uri": "javascript:alert(1)"}),
            "invalid_client_metadata",
            "client_uri must be an https URL",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "contacts": ["not an address"]}),
            "invalid_client_metadata",
            "is not an e-mail address",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "post_logout_redirect_uris": ["ftp://a.example/"]}),
            "invalid_client_metadata",
            "post_logout_redirect_uris",
        ),
        (
            json!(["https://a.example/cb"]),
            "invalid_client_metadata",
            "JSON object",
        ),
    ];
    for (metadata, code, says) in cases {
        let description = refused(register(&app, &metadata, None).await, code).await;
        assert!(description.contains(says), "{metadata}: {description}");
    }
    // Not JSON, or not said to be.
    let response = app
        .http
        .post(app.url("/register"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    refused(response, "invalid_client_metadata").await;
    let response = app
        .http
        .post(app.url("/register"))
        .form(&[("redirect_uris", "https://a.example/cb")])
        .send()
        .await
        .unwrap();
    let description = refused(response, "invalid_client_metadata").await;
    assert!(description.contains("application/json"), "{description}");
    // A body beyond 16 KiB.
    let big = json!({"redirect_uris": ["https://a.example/cb"], "client_name": "x".repeat(20_000)});
    assert_eq!(register(&app, &big, None).await.status(), 413);
    // An invalid initial access token is refused even in open mode.
    let response = register(
        &app,
        &json!({"redirect_uris": ["https://a.example/cb"]}),
        Some("nope"),
    )
    .await;
    assert_eq!(response.status(), 401);
    // Other methods.
    let response = app.http.get(app.url("/register")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    assert_eq!(clients_count(&app, backend).await, 0);
    // The name defaults to where the client sends people back.
    let body = registered(
        &app,
        &json!({"redirect_uris": ["https://notes.example/cb"]}),
        None,
    )
    .await;
    assert_eq!(body["client_name"], "notes.example");
    assert_eq!(body["scope"], "email offline_access openid profile");
    assert_eq!(body["grant_types"], json!(["authorization_code"]));
}

/// Open mode's per-IP limit (`AUTHD_RATE_LIMIT_REGISTER`): 429 with
/// `Retry-After`, counted before anything is read.
async fn open_registration_is_rate_limited_per_ip(backend: Backend) {
    let Some(app) = app_with(backend, |config| {
        config.registration.mode = RegistrationMode::Open;
        config.rate_limits.register = "3/hour".parse().unwrap();
    })
    .await
    else {
        return;
    };
    let metadata = json!({"redirect_uris": ["https://a.example/cb"]});
    let mut made = Vec::new();
    for _ in 0..2 {
        made.push(registered(&app, &metadata, None).await);
    }
    // A change (each reloads every replica's clients) counts too.
    let id = made[0]["client_id"].as_str().unwrap();
    let rat = made[0]["registration_access_token"].as_str().unwrap();
    let change = json!({"client_id": id, "redirect_uris": ["https://b.example/cb"]});
    let response = manage(&app, reqwest::Method::PUT, id, Some(rat), Some(&change)).await;
    assert_eq!(response.status(), 200);
    let rat = response.json::<Value>().await.unwrap()["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = manage(&app, reqwest::Method::DELETE, id, Some(&rat), None).await;
    assert_eq!(response.status(), 429, "a DELETE counts");
    let response = register(&app, &metadata, None).await;
    assert_eq!(response.status(), 429);
    assert!(
        response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );
    assert_eq!(clients_count(&app, backend).await, 2);
    // Reading a registration is not counted against it.
    let response = app
        .http
        .get(app.url("/register/x"))
        .bearer_auth("y")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

/// Token mode: no token → 401 with a bare challenge; a token's limits
/// (scope, uses, expiry) hold, and of concurrent last uses one wins.
async fn token_registration_needs_a_usable_initial_access_token(backend: Backend) {
    let Some(app) = token_app(backend).await else {
        return;
    };
    app.define_scopes(&["orders:read".into(), "orders:write".into()])
        .await;
    let metadata =
        json!({"redirect_uris": ["https://app.example/cb"], "scope": "openid orders:read"});
    let response = register(&app, &metadata, None).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="authd""#
    );
    let response = register(&app, &metadata, Some("made-up")).await;
    assert_eq!(response.status(), 401);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains(r#"error="invalid_token""#)
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");

    // A confidential client, within the token's scopes.
    let token = initial_token(
        &app,
        NewRegistrationToken {
            max_uses: Some(2),
            scopes: vec!["openid".into(), "orders:read".into()],
            ..Default::default()
        },
        &now(),
    )
    .await;
    let body = registered(&app, &metadata, Some(&token)).await;
    assert_eq!(body["token_endpoint_auth_method"], "client_secret_basic");
    assert!(body["client_secret"].as_str().unwrap().len() >= 43);
    assert_eq!(body["client_secret_expires_at"], 0);
    // Beyond the token's scopes.
    let description = refused(
        register(
            &app,
            &json!({"redirect_uris": ["https://app.example/cb"], "scope": "orders:write"}),
            Some(&token),
        )
        .await,
        "invalid_client_metadata",
    )
    .await;
    assert!(description.contains("orders:write"), "{description}");
    // Without a scope: the token's.
    let second = registered(
        &app,
        &json!({"redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "client_secret_post"}),
        Some(&token),
    )
    .await;
    assert_eq!(second["scope"], "openid orders:read");
    assert_eq!(second["token_endpoint_auth_method"], "client_secret_post");
    // Used up (a refused request did not count).
    assert_eq!(register(&app, &metadata, Some(&token)).await.status(), 401);

    // A machine client from an unrestricted token gets tokens at once.
    let open_token = initial_token(&app, NewRegistrationToken::default(), &now()).await;
    let machine = registered(
        &app,
        &json!({"grant_types": ["client_credentials"], "response_types": [], "scope": "orders:write", "client_name": "Batch job"}),
        Some(&open_token),
    )
    .await;
    assert_eq!(machine["response_types"], json!([]));
    let access = cc_token(
        &app,
        machine["client_id"].as_str().unwrap(),
        machine["client_secret"].as_str().unwrap(),
    )
    .await;
    assert!(!access.is_empty());
    // Never the admin API's scopes, whatever the token.
    refused(
        register(
            &app,
            &json!({"grant_types": ["client_credentials"], "response_types": [], "scope": "admin:keys:write"}),
            Some(&open_token),
        )
        .await,
        "invalid_client_metadata",
    )
    .await;

    // An expired token.
    let past = MockClock::new(chrono::Utc::now() - chrono::Duration::hours(2));
    let expired = initial_token(
        &app,
        NewRegistrationToken {
            expires_in: Some(std::time::Duration::from_secs(3600)),
            ..Default::default()
        },
        &past,
    )
    .await;
    assert_eq!(
        register(&app, &metadata, Some(&expired)).await.status(),
        401
    );

    // Eight at once for one last use: exactly one client.
    let last = initial_token(
        &app,
        NewRegistrationToken {
            max_uses: Some(1),
            ..Default::default()
        },
        &now(),
    )
    .await;
    let before = clients_count(&app, backend).await;
    let statuses: Vec<u16> = join_all((0..8).map(|_| async {
        register(&app, &metadata, Some(&last))
            .await
            .status()
            .as_u16()
    }))
    .await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 401),
        "{statuses:?}"
    );
    assert_eq!(clients_count(&app, backend).await, before + 1);
    // Every client here registered with a token, and says so.
    assert_eq!(
        query_i64(
            &app,
            backend,
            "SELECT COUNT(*) FROM clients WHERE registered_via = 'token'"
        )
        .await,
        clients_count(&app, backend).await
    );
}

async fn manage(
    app: &TestApp,
    method: reqwest::Method,
    client_id: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut request = app
        .http
        .request(method, app.url(&format!("/register/{client_id}")));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.unwrap()
}

/// RFC 7592: read, update (the registration access token rotates, the
/// secret stays), delete; an unknown client or a wrong token is 401.
async fn registration_management_reads_updates_and_deletes(backend: Backend) {
    let Some(app) = token_app(backend).await else {
        return;
    };
    let token = initial_token(&app, NewRegistrationToken::default(), &now()).await;
    let created = registered(
        &app,
        &json!({"redirect_uris": ["https://app.example/cb"], "client_name": "Portal", "scope": "openid"}),
        Some(&token),
    )
    .await;
    let id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    let rat = created["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = registered(
        &app,
        &json!({"redirect_uris": ["https://other.example/cb"]}),
        Some(&token),
    )
    .await;

    // Read: the registration as made, without the secrets.
    let response = manage(&app, reqwest::Method::GET, &id, Some(&rat), None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let read: Value = response.json().await.unwrap();
    assert_eq!(read["client_name"], "Portal");
    assert_eq!(read["redirect_uris"], created["redirect_uris"]);
    assert_eq!(read["client_id_issued_at"], created["client_id_issued_at"]);
    assert_eq!(
        read["registration_client_uri"],
        created["registration_client_uri"]
    );
    assert!(read.get("client_secret").is_none());
    // RFC 7592 §3: the token it was sent (authd keeps only a digest).
    assert_eq!(read["registration_access_token"], rat.as_str());

    // Who may: the client's own token only.
    let response = manage(&app, reqwest::Method::GET, &id, None, None).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="authd""#
    );
    let other_rat = other["registration_access_token"].as_str().unwrap();
    for (client, token) in [
        (id.as_str(), other_rat),
        (id.as_str(), "x"),
        ("no-such-client", rat.as_str()),
    ] {
        let response = manage(&app, reqwest::Method::GET, client, Some(token), None).await;
        assert_eq!(response.status(), 401, "{client}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_token");
    }

    // Update: every value replaced; omitted ones take their defaults.
    let update = json!({
        "client_id": id,
        "client_secret": secret,
        "redirect_uris": ["https://app.example/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "scope": "openid offline_access",
        "logo_uri": "https://app.example/logo.png",
    });
    let response = manage(&app, reqwest::Method::PUT, &id, Some(&rat), Some(&update)).await;
    assert_eq!(response.status(), 200);
    let updated: Value = response.json().await.unwrap();
    assert_eq!(
        updated["redirect_uris"],
        json!(["https://app.example/callback"])
    );
    assert_eq!(updated["scope"], "offline_access openid");
    assert_eq!(updated["client_name"], "app.example");
    assert_eq!(updated["logo_uri"], "https://app.example/logo.png");
    assert!(updated.get("client_secret").is_none());
    let new_rat = updated["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_rat, rat);
    // The old registration access token is gone; the secret still works.
    assert_eq!(
        manage(&app, reqwest::Method::GET, &id, Some(&rat), None)
            .await
            .status(),
        401
    );
    assert_eq!(
        manage(&app, reqwest::Method::GET, &id, Some(&new_rat), None)
            .await
            .status(),
        200
    );
    let response = app
        .http
        .post(app.url("/revoke"))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", "whatever")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the secret authenticates");

    // Refused updates change nothing.
    let cases = [
        (
            json!({"redirect_uris": ["https://app.example/cb"]}),
            "client_id must be given",
        ),
        (
            json!({"client_id": other["client_id"], "redirect_uris": ["https://app.example/cb"]}),
            "client_id must be given",
        ),
        (
            json!({"client_id": id, "client_secret": "guess", "redirect_uris": ["https://app.example/cb"]}),
            "client_secret does not match",
        ),
        (
            json!({"client_id": id, "token_endpoint_auth_method": "none", "redirect_uris": ["https://app.example/cb"]}),
            "cannot change",
        ),
    ];
    for (body, says) in cases {
        let response = manage(&app, reqwest::Method::PUT, &id, Some(&new_rat), Some(&body)).await;
        let description = refused(response, "invalid_client_metadata").await;
        assert!(description.contains(says), "{body}: {description}");
    }
    let response = manage(
        &app,
        reqwest::Method::PUT,
        &id,
        Some(&new_rat),
        Some(&json!({"client_id": id, "redirect_uris": ["http://evil.example/cb"]})),
    )
    .await;
    refused(response, "invalid_redirect_uri").await;
    for scope in ["admin:clients:write", "openid admin:keys:read"] {
        let body =
            json!({"client_id": id, "redirect_uris": ["https://app.example/cb"], "scope": scope});
        let response = manage(&app, reqwest::Method::PUT, &id, Some(&new_rat), Some(&body)).await;
        let description = refused(response, "invalid_client_metadata").await;
        assert!(description.contains("never given"), "{description}");
    }
    let still: Value = manage(&app, reqwest::Method::GET, &id, Some(&new_rat), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        still["redirect_uris"],
        json!(["https://app.example/callback"])
    );
    let response = manage(&app, reqwest::Method::PATCH, &id, Some(&new_rat), None).await;
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET, PUT, DELETE");

    // Delete: the client and its credentials are gone.
    let response = manage(&app, reqwest::Method::DELETE, &id, Some(&new_rat), None).await;
    assert_eq!(response.status(), 204);
    assert_eq!(
        manage(&app, reqwest::Method::GET, &id, Some(&new_rat), None)
            .await
            .status(),
        401
    );
    crate::helpers::within_5_seconds("the deleted client's secret stops working", || async {
        app.http
            .post(app.url("/revoke"))
            .basic_auth(&id, Some(&secret))
            .form(&[("token", "whatever")])
            .send()
            .await
            .unwrap()
            .status()
            == 401
    })
    .await;
    // An operator's client is not managed here.
    let (operator_client, _) = app.machine_client(&[]).await;
    assert_eq!(
        manage(
            &app,
            reqwest::Method::GET,
            &operator_client,
            Some(&new_rat),
            None
        )
        .await
        .status(),
        401
    );
}

/// RFC 9700 §4.11.2: a self-registered redirect URI is never reached
/// without a page of authd's first: errors are shown, not redirected (an
/// operator's client still gets them by redirect); Deny, chosen on the
/// consent page, redirects. A PUT stays within open mode's rules, and new
/// redirect URIs make users consent again. Sign-out returns to a dynamic
/// client only with an ID token hint.
async fn self_registered_redirects_are_never_reached_unasked(backend: Backend) {
    let Some(app) = open_app(backend).await else {
        return;
    };
    let created = registered(
        &app,
        &json!({
            "redirect_uris": ["https://app.example/cb"],
            "post_logout_redirect_uris": ["https://app.example/bye"],
            "scope": "openid",
        }),
        None,
    )
    .await;
    let id = created["client_id"].as_str().unwrap().to_owned();
    let rat = created["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let client = WebClient {
        id: id.clone(),
        secret: None,
        redirect_uri: "https://app.example/cb".into(),
    };
    let pkce = pkce();
    app.user("alice").await;
    let browser = app.browser();
    // A request /authorize refuses, and prompt=none with nobody signed in.
    for extra in [
        vec![("response_type", "token")],
        vec![("code_challenge", "")],
        vec![("prompt", "none")],
    ] {
        let response = browser
            .authorize(&authorize_query(&client, &pkce, &extra))
            .await;
        assert_eq!(response.status(), 400, "{extra:?}");
        assert!(response.headers().get("location").is_none());
        let page = response.text().await.unwrap();
        assert!(page.contains("registered"), "{page}");
    }
    // An operator's client is answered by redirect, as RFC 6749 says.
    let operator = app.web_client(true, &[]).await;
    let response = browser
        .authorize(&authorize_query(
            &operator,
            &pkce,
            &[("response_type", "token")],
        ))
        .await;
    assert_eq!(response.status(), 303);
    assert!(location(&response).starts_with("https://spa.example/cb?error="));

    // Deny on the consent page goes back with access_denied.
    let query = authorize_query(&client, &pkce, &[("scope", "openid")]);
    let (consent, _) = consent_page(&browser, &query, "alice").await;
    let back = location(&browser.decide(&consent, "deny").await);
    assert!(
        back.starts_with("https://app.example/cb?error=access_denied"),
        "{back}"
    );
    // Allow, once: remembered.
    let back = browser.sign_in(&query, "alice").await;
    let code = query_param(&back, "code").expect("a code");
    let tokens: Value = crate::helpers::exchange_code(&app, &client, &code, &pkce.verifier)
        .await
        .json()
        .await
        .unwrap();
    let id_token = tokens["id_token"].as_str().expect("an ID token").to_owned();
    let again = browser
        .authorize(&authorize_query(
            &client,
            &crate::helpers::pkce(),
            &[("scope", "openid"), ("prompt", "none")],
        ))
        .await;
    assert_eq!(again.status(), 303, "remembered consent");

    // Signed in, asking for nothing alice may grant: shown, not redirected.
    let response = browser
        .authorize(&authorize_query(
            &client,
            &crate::helpers::pkce(),
            &[("scope", "profile")],
        ))
        .await;
    assert_eq!(response.status(), 400);
    assert!(response.headers().get("location").is_none());
    assert!(response.text().await.unwrap().contains("nothing to grant"));

    // PUT: open mode's rules hold; new redirect URIs are asked about again.
    for (body, says) in [
        (
            json!({"client_id": id, "redirect_uris": ["https://app.example/cb"], "scope": "openid offline_access groups"}),
            "groups may not be registered here",
        ),
        (
            json!({"client_id": id, "redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "client_secret_basic"}),
            "cannot change",
        ),
        (
            json!({"client_id": id, "redirect_uris": ["https://app.example/cb"], "grant_types": ["client_credentials"], "response_types": []}),
            "cannot use client_credentials",
        ),
        (
            json!({"client_id": id, "redirect_uris": ["https://app.example/cb"], "client_name": "Bank\u{202E}"}),
            "invisible",
        ),
    ] {
        let response = manage(&app, reqwest::Method::PUT, &id, Some(&rat), Some(&body)).await;
        let description = refused(response, "invalid_client_metadata").await;
        assert!(description.contains(says), "{body}: {description}");
    }
    assert_eq!(
        query_i64(
            &app,
            backend,
            &format!("SELECT COUNT(*) FROM consents WHERE client_id = '{id}'")
        )
        .await,
        1
    );
    let response = manage(
        &app,
        reqwest::Method::PUT,
        &id,
        Some(&rat),
        Some(&json!({
            "client_id": id,
            "redirect_uris": ["https://new.example/cb"],
            "post_logout_redirect_uris": ["https://app.example/bye"],
            "scope": "openid",
        })),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        query_i64(
            &app,
            backend,
            &format!("SELECT COUNT(*) FROM consents WHERE client_id = '{id}'")
        )
        .await,
        0
    );
    let moved = WebClient {
        redirect_uri: "https://new.example/cb".into(),
        ..client.clone()
    };
    // Once this replica knows the new address: consent_required, shown.
    crate::helpers::within_5_seconds("consent is asked again, never assumed", || async {
        let response = browser
            .authorize(&authorize_query(
                &moved,
                &crate::helpers::pkce(),
                &[("scope", "openid"), ("prompt", "none")],
            ))
            .await;
        response.status() == 400
            && response
                .text()
                .await
                .unwrap()
                .contains("the user has not consented")
    })
    .await;

    // Sign-out returns to a dynamic client only when it ended the session
    // of the user its ID token names.
    let bye = "post_logout_redirect_uri=https%3A%2F%2Fapp.example%2Fbye";
    // No hint: alice is asked, and stays on authd's page.
    let response = browser.get(&format!("/logout?client_id={id}&{bye}")).await;
    assert_eq!(response.status(), 200);
    let page = response.text().await.unwrap();
    assert!(!page.contains("app.example/bye"), "{page}");
    // A visitor nobody signed in, with a leaked ID token: signed-out page.
    let stranger = app.browser();
    let response = stranger
        .get(&format!("/logout?id_token_hint={id_token}&{bye}"))
        .await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("location").is_none());
    // Alice, with her own ID token: signed out and returned.
    let response = browser
        .get(&format!("/logout?id_token_hint={id_token}&{bye}&state=s1"))
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "https://app.example/bye?state=s1");
}

/// Openly registered clients that redeemed no code within the TTL are
/// removed; used ones and token-registered ones stay.
async fn unused_open_clients_are_removed(backend: Backend) {
    let Some(app) = open_app(backend).await else {
        return;
    };
    let metadata = json!({"redirect_uris": ["https://app.example/cb"], "scope": "openid"});
    let unused = registered(&app, &metadata, None).await;
    let used = registered(&app, &metadata, None).await;
    let token = initial_token(&app, NewRegistrationToken::default(), &now()).await;
    let with_token = registered(&app, &metadata, Some(&token)).await;
    app.user("alice").await;
    let client = WebClient {
        id: used["client_id"].as_str().unwrap().to_owned(),
        secret: None,
        redirect_uri: "https://app.example/cb".into(),
    };
    let pkce = pkce();
    let back = app
        .browser()
        .sign_in(
            &authorize_query(&client, &pkce, &[("scope", "openid")]),
            "alice",
        )
        .await;
    let code = query_param(&back, "code").unwrap();
    let response = crate::helpers::exchange_code(&app, &client, &code, &pkce.verifier).await;
    assert_eq!(response.status(), 200);

    let runtime = Runtime::open(&app.config, false, &SystemClock)
        .await
        .unwrap();
    let store = runtime.store.as_ref();
    // Within the TTL nothing goes.
    assert_eq!(
        remove_unused(store, &SystemClock, std::time::Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    // Its first use not yet recorded (the moment between the code's
    // redemption and `used_at`): its access token on record keeps it.
    crate::helpers::execute_sql(
        &app,
        backend,
        &format!(
            "UPDATE clients SET used_at = NULL WHERE id = '{}'",
            used["client_id"].as_str().unwrap()
        ),
    )
    .await;
    let later = MockClock::new(chrono::Utc::now() + chrono::Duration::hours(2));
    assert_eq!(
        remove_unused(store, &later, std::time::Duration::from_secs(3600))
            .await
            .unwrap(),
        1
    );
    runtime.store.close().await;
    let exists = |id: &Value| {
        format!(
            "SELECT COUNT(*) FROM clients WHERE id = '{}'",
            id.as_str().unwrap()
        )
    };
    assert_eq!(
        query_i64(&app, backend, &exists(&unused["client_id"])).await,
        0
    );
    assert_eq!(
        query_i64(&app, backend, &exists(&used["client_id"])).await,
        1
    );
    assert_eq!(
        query_i64(&app, backend, &exists(&with_token["client_id"])).await,
        1
    );
    // Its registration is gone with it.
    let rat = unused["registration_access_token"].as_str().unwrap();
    let response = manage(
        &app,
        reqwest::Method::GET,
        unused["client_id"].as_str().unwrap(),
        Some(rat),
        None,
    )
    .await;
    assert_eq!(response.status(), 401);
}

/// The admin API makes, lists and deletes registration tokens with
/// `admin:registration:write`.
async fn admin_api_manages_registration_tokens(backend: Backend) {
    let Some(app) = app_with(backend, |config| {
        config.registration.mode = RegistrationMode::Token;
        config.admin_bind = Some("127.0.0.1:0".parse().unwrap());
    })
    .await
    else {
        return;
    };
    let admin = |path: &str| {
        format!(
            "http://127.0.0.1:{}/admin/v1{path}",
            app.admin_port.unwrap()
        )
    };
    let (id, secret) = app.machine_client(&["admin:registration:write"]).await;
    let writer = cc_token(&app, &id, &secret).await;
    let (id, secret) = app.machine_client(&["admin:clients:read"]).await;
    let reader = cc_token(&app, &id, &secret).await;

    let response = app
        .http
        .post(admin("/registration-tokens"))
        .bearer_auth(&reader)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let response = app
        .http
        .post(admin("/registration-tokens"))
        .bearer_auth(&writer)
        .json(&json!({"max_uses": 1, "expires_in": 600, "scopes": ["openid"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let made: Value = response.json().await.unwrap();
    let token = made["token"].as_str().unwrap();
    assert_eq!(made["max_uses"], 1);
    assert_eq!(made["scope"], "openid");
    let response = app
        .http
        .post(admin("/registration-tokens"))
        .bearer_auth(&writer)
        .json(&json!({"scopes": ["admin:users:write"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let response = app
        .http
        .post(admin("/registration-tokens"))
        .bearer_auth(&writer)
        .json(&json!({"expires_in": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422, "a token already expired");

    registered(
        &app,
        &json!({"redirect_uris": ["https://app.example/cb"]}),
        Some(token),
    )
    .await;
    let listed: Value = app
        .http
        .get(admin("/registration-tokens"))
        .bearer_auth(&writer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["uses"], 1);
    assert!(listed[0].get("token").is_none());
    // The registered client shows how it came.
    let (id, secret) = app.machine_client(&["admin:clients:read"]).await;
    let clients_reader = cc_token(&app, &id, &secret).await;
    let clients: Value = app
        .http
        .get(admin("/clients"))
        .bearer_auth(&clients_reader)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let vias: Vec<&str> = clients["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["registered_via"].as_str().unwrap())
        .collect();
    assert_eq!(
        vias.iter().filter(|v| **v == "token").count(),
        1,
        "{vias:?}"
    );
    assert!(
        vias.iter()
            .filter(|v| **v != "token")
            .all(|v| *v == "operator")
    );

    let token_id = made["id"].as_str().unwrap();
    let response = app
        .http
        .delete(admin(&format!("/registration-tokens/{token_id}")))
        .bearer_auth(&writer)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let response = app
        .http
        .delete(admin(&format!("/registration-tokens/{token_id}")))
        .bearer_auth(&writer)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

on_both_backends!(
    registration_is_off_by_default,
    open_registration_signs_a_user_in_with_oauth2,
    open_registration_refuses_what_it_must,
    open_registration_is_rate_limited_per_ip,
    token_registration_needs_a_usable_initial_access_token,
    registration_management_reads_updates_and_deletes,
    unused_open_clients_are_removed,
    admin_api_manages_registration_tokens,
    self_registered_redirects_are_never_reached_unasked,
);
