//! The authorization endpoint and the sign-in pages over HTTP: the order of
//! the checks (RFC 6749 §4.1.2.1, OIDC Core §3.1.2.2), exact redirect URI
//! matching (RFC 9700 §4.1.3, RFC 8252 §7.3), errors redirected to the
//! client (RFC 6749 §4.1.2.1, RFC 9207), prompt / max_age / login_hint
//! (OIDC Core §3.1.2.1), remembered consent, CSRF, escaping, page headers,
//! the session cookie, login failures and throttling, and the binding of a
//! pending request to the browser that started it.
use std::sync::Arc;

use authd::clients::registration::NewClient;
use authd::crypto::MasterKey;

use crate::helpers::{
    Backend, Browser, PASSWORD, TestApp, WebClient, authorize_query, exchange_code, form_value,
    location, on_both_backends, pkce, query_param, spawn_app, spawn_app_on, test_database,
};

// ---------------------------------------------------------------------------
// Helpers: what every page, error page and redirect must look like.
// ---------------------------------------------------------------------------

const LOGIN_FAILED: &str = "The username or password is not correct.";

/// The headers of every HTML response (src/http/pages.rs).
#[track_caller]
fn assert_page_headers(response: &reqwest::Response, context: &str) {
    let headers = response.headers();
    let content_type = headers["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/html"),
        "{context}: {content_type}"
    );
    let csp = headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'self'",
        "script-src 'none'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{context}: {directive} in {csp}");
    }
    assert_eq!(headers["x-frame-options"], "DENY", "{context}");
    assert_eq!(headers["referrer-policy"], "no-referrer", "{context}");
    assert_eq!(headers["x-content-type-options"], "nosniff", "{context}");
    assert_eq!(headers["cache-control"], "no-store", "{context}");
}

/// An HTML error page with `status`: shown to the user, never a redirect.
async fn error_page(response: reqwest::Response, status: u16, context: &str) -> String {
    assert_eq!(response.status(), status, "{context}");
    assert!(
        response.headers().get("location").is_none(),
        "{context}: an error page never redirects"
    );
    assert_page_headers(&response, context);
    response.text().await.unwrap()
}

/// A 303 to the next page (`/login` or `/consent`) of a pending request.
#[track_caller]
fn assert_next_page(response: &reqwest::Response, page: &str, context: &str) -> String {
    assert_eq!(response.status(), 303, "{context}");
    let next = location(response);
    assert!(
        next.starts_with(&format!("{page}?request=")),
        "{context}: expected {page}, got {next}"
    );
    next
}

/// A 303 back to the client at `redirect_uri` with a code, `state` and `iss`.
#[track_caller]
fn assert_code_redirect(
    app: &TestApp,
    response: &reqwest::Response,
    redirect_uri: &str,
    context: &str,
) -> String {
    assert_eq!(response.status(), 303, "{context}");
    let back = location(response);
    assert_code_location(app, &back, redirect_uri, context)
}

/// The code of a final redirect to the client, after checking it.
#[track_caller]
fn assert_code_location(app: &TestApp, back: &str, redirect_uri: &str, context: &str) -> String {
    assert!(
        back.starts_with(&format!("{redirect_uri}?code=")),
        "{context}: {back}"
    );
    assert_eq!(
        query_param(back, "state").as_deref(),
        Some("st4te"),
        "{context}"
    );
    assert_eq!(
        query_param(back, "iss").as_deref(),
        Some(app.issuer.as_str()),
        "{context}: RFC 9207 iss"
    );
    query_param(back, "code").unwrap()
}

/// A 303 back to the client with `error`, an `error_description`, the
/// request's `state` and `iss` (RFC 6749 §4.1.2.1, RFC 9207 §2).
#[track_caller]
fn assert_error_redirect(
    app: &TestApp,
    response: &reqwest::Response,
    redirect_uri: &str,
    error: &str,
    state: Option<&str>,
    context: &str,
) {
    assert_eq!(response.status(), 303, "{context}");
    let back = location(response);
    assert!(
        back.starts_with(&format!("{redirect_uri}?")),
        "{context}: {back}"
    );
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some(error),
        "{context}: {back}"
    );
    // RFC 6749 §4.1.2.1: %x20-21 / %x23-5B / %x5D-7E, whatever the message
    // cites ("scope is malformed (RFC 6749 §3.3)").
    assert!(
        query_param(&back, "error_description").is_some_and(|d| !d.is_empty()
            && d.bytes()
                .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E))),
        "{context}: error_description in {back}"
    );
    assert_eq!(query_param(&back, "state").as_deref(), state, "{context}");
    assert_eq!(
        query_param(&back, "iss").as_deref(),
        Some(app.issuer.as_str()),
        "{context}: iss"
    );
    assert_eq!(query_param(&back, "code"), None, "{context}: no code");
}

/// [`assert_error_redirect`] for `client`'s URI and the usual `state`.
#[track_caller]
fn assert_client_error(
    app: &TestApp,
    response: &reqwest::Response,
    client: &WebClient,
    error: &str,
    context: &str,
) {
    assert_error_redirect(
        app,
        response,
        &client.redirect_uri,
        error,
        Some("st4te"),
        context,
    );
}

/// `GET /authorize?query` in `browser`, expecting the login page next.
async fn start(browser: &Browser, query: &str) -> String {
    assert_next_page(&browser.authorize(query).await, "/login", query)
}

/// Signs in as alice on the login page at `login`, expecting consent next.
async fn log_in_to_consent(browser: &Browser, login: &str) -> String {
    let response = browser.log_in(login, "alice", PASSWORD).await;
    assert_next_page(&response, "/consent", login)
}

/// Opens a login or consent page; returns its HTML, csrf and request fields.
async fn open_form(browser: &Browser, page: &str) -> (String, String, String) {
    let response = browser.get(page).await;
    assert_eq!(response.status(), 200, "{page}");
    let html = response.text().await.unwrap();
    let csrf = form_value(&html, "csrf").expect("csrf field");
    let request = form_value(&html, "request").expect("request field");
    (html, csrf, request)
}

/// Posts the login form of `request` with `csrf`.
async fn post_login(
    browser: &Browser,
    csrf: &str,
    request: &str,
    username: &str,
    password: &str,
) -> reqwest::Response {
    browser
        .post_form(
            "/login",
            &[
                ("csrf", csrf),
                ("request", request),
                ("username", username),
                ("password", password),
            ],
        )
        .await
}

/// The value and attributes (lower-cased, trimmed) of the `Set-Cookie`
/// named `name`.
#[track_caller]
fn set_cookie(response: &reqwest::Response, name: &str) -> (String, Vec<String>) {
    let header = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .find(|value| value.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("a Set-Cookie for {name}"));
    let mut parts = header.split(';');
    let value = parts.next().unwrap()[name.len() + 1..].to_owned();
    let attributes = parts.map(|a| a.trim().to_ascii_lowercase()).collect();
    (value, attributes)
}

/// The web client (https://app.example/cb) allowed `orders:read`.
async fn web_client(app: &TestApp) -> WebClient {
    app.web_client(false, &["orders:read"]).await
}

/// A public native app with a loopback redirect URI (RFC 8252 §7.3).
async fn loopback_client(app: &TestApp) -> WebClient {
    app.web_client_with(NewClient {
        name: "Test CLI".into(),
        public: true,
        redirect_uris: vec!["http://127.0.0.1:8000/cb".into()],
        ..Default::default()
    })
    .await
}

// ---------------------------------------------------------------------------
// 1. Client and redirect URI first: until both are verified, errors are a
//    page and never a redirect (RFC 6749 §4.1.2.1, OIDC Core §3.1.2.2).
// ---------------------------------------------------------------------------

async fn missing_unknown_or_repeated_client_id_renders_the_error_page(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = web_client(&app).await;
    let pkce = pkce();
    let browser = app.browser();
    let good = authorize_query(&client, &pkce, &[]);
    let cases = [
        (
            "missing",
            authorize_query(&client, &pkce, &[("client_id", "")]),
        ),
        (
            "unknown",
            authorize_query(&client, &pkce, &[("client_id", "no-such-client")]),
        ),
        (
            "unknown uuid",
            authorize_query(
                &client,
                &pkce,
                &[("client_id", &uuid::Uuid::new_v4().to_string())],
            ),
        ),
        (
            "repeated, same value",
            format!("{good}&client_id={}", client.id),
        ),
        ("repeated, other value", format!("{good}&client_id=other")),
        // The client check comes first: a bad response_type does not turn
        // an unknown client into a redirect.
        (
            "unknown, with response_type=token",
            authorize_query(
                &client,
                &pkce,
                &[("client_id", "no-such-client"), ("response_type", "token")],
            ),
        ),
    ];
    for (name, query) in cases {
        error_page(browser.authorize(&query).await, 400, name).await;
    }
    start(&browser, &good).await;
}

async fn bad_redirect_uri_renders_the_error_page_before_other_checks(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = web_client(&app).await;
    let pkce = pkce();
    let browser = app.browser();
    // Each of these would be a redirected error with a good redirect_uri.
    for extra in [
        vec![("response_type", "token")],
        vec![("scope", "")],
        vec![("code_challenge", "")],
        vec![("request", "eyJhbGciOiJub25lIn0.e30.")],
    ] {
        let mut params = vec![("redirect_uri", "https://evil.example/cb")];
        params.extend(extra.iter().copied());
        let query = authorize_query(&client, &pkce, &params);
        let html = error_page(browser.authorize(&query).await, 400, &format!("{extra:?}")).await;
        assert!(html.contains("has not registered"), "{html}");
    }
}

async fn repeated_redirect_uri_renders_the_error_page(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = web_client(&app).await;
    let query = authorize_query(&client, &pkce(), &[]);
    let browser = app.browser();
    for repeat in ["https://app.example/cb", "https://evil.example/cb"] {
        let repeated = format!(
            "{query}&{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("redirect_uri", repeat)
                .finish()
        );
        error_page(browser.authorize(&repeated).await, 400, repeat).await;
    }
}

async fn omitted_redirect_uri_uses_the_only_registered_one(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = web_client(&app).await;
    app.user("alice").await;
    let pkce = pkce();
    let browser = app.browser();
    let query = authorize_query(&client, &pkce, &[("redirect_uri", "")]);
    let back = browser.sign_in(&query, "alice").await;
    assert_code_location(&app, &back, "https://app.example/cb", "omitted");
    // Errors after the client check go to that URI too.
    let query = authorize_query(&client, &pkce, &[("redirect_uri", ""), ("scope", "")]);
    let response = browser.authorize(&query).await;
    assert_error_redirect(
        &app,
        &response,
        "https://app.example/cb",
        "invalid_scope",
        Some("st4te"),
        "omitted, error",
    );
}

async fn omitted_redirect_uri_with_two_registered_renders_the_error_page(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app
        .web_client_with(NewClient {
            name: "Two URIs".into(),
            redirect_uris: vec![
                "https://app.example/cb".into(),
                "https://app.example/other".into(),
            ],
            ..Default::default()
        })
        .await;
    let pkce = pkce();
    let browser = app.browser();
    let query = authorize_query(&client, &pkce, &[("redirect_uri", "")]);
    error_page(
        browser.authorize(&query).await,
        400,
        "omitted, two registered",
    )
    .await;
    for uri in ["https://app.example/cb", "https://app.example/other"] {
        let query = authorize_query(&client, &pkce, &[("redirect_uri", uri)]);
        assert_next_page(&browser.authorize(&query).await, "/login", uri);
    }
}

// ---------------------------------------------------------------------------
// 2. Redirect URIs match the registration exactly (RFC 9700 §4.1.3, RFC 6749
//    §3.1.2.3); only a loopback port may differ (RFC 8252 §7.3).
// ---------------------------------------------------------------------------

async fn redirect_uri_must_match_the_registration_exactly(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = web_client(&app).await;
    let pkce = pkce();
    let browser = app.browser();
    for bad in [
        "HTTPS://APP.EXAMPLE/cb",
        "https://APP.EXAMPLE/cb",
        "https://app.example/CB",
        "https://app.example/cb/",
        "https://app.example/cb?x=1",
        "https://app.example/cb/extra",
        "https://app.example/cb/../cb",
        "https://app.example/cb%2F..%2Fx",
        "https://app.example/%63b",
        "https://app.example@evil.com/cb",
        "https://app.example.evil.com/cb",
        "https://app.example:443/cb",
        "http://app.example/cb",
        "https://app.example/cb#x",
    ] {
        let query = authorize_query(&client, &pkce, &[("redirect_uri", bad)]);
        error_page(browser.authorize(&query).await, 400, bad).await;
    }
    let query = authorize_query(&client, &pkce, &[]);
    start(&browser, &query).await;
}

async fn loopback_redirect_uri_may_change_only_the_port(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = loopback_client(&app).await;
    app.user("alice").await;
    let pkce = pkce();
    let browser = app.browser();
    for bad in [
        "http://127.0.0.1:53123/other",
        "http://127.0.0.1:53123/cb/",
        "http://127.0.0.1:53123/cb?x=1",
        "http://127.0.0.1:8000@evil.com/cb",
        "http://127.0.0.1.evil.com/cb",
        "http://localhost:8000/cb",
        "http://[::1]:8000/cb",
        "https://127.0.0.1:8000/cb",
    ] {
        let query = authorize_query(&client, &pkce, &[("redirect_uri", bad)]);
        error_page(browser.authorize(&query).await, 400, bad).await;
    }
    let ephemeral = "http://127.0.0.1:53123/cb";
    let query = authorize_query(&client, &pkce, &[("redirect_uri", ephemeral)]);
    assert_next_page(&browser.authorize(&query).await, "/login", ephemeral);
    // The code goes back to the port the request named.
    let back = browser.sign_in(&query, "alice").await;
    assert_code_location(&app, &back, ephemeral, "loopback sign-in");
}

// ---------------------------------------------------------------------------
// 3. Every later error goes back to the client with `error`, its
//    description, `state` and `iss` (RFC 6749 §4.1.2.1, RFC 9207 §2).
// ---------------------------------------------------------------------------

async fn request_errors_are_redirected_with_state_and_iss(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = web_client(&app).await;
    let pkce = pkce();
    let browser = app.browser();
    let challenge_42 = &pkce.challenge[..42];
    let challenge_plus = format!("{}+", &pkce.challenge[..42]);
    // (parameter, value, error); an empty value removes the parameter.
    let cases = [
        ("response_type", "token", "unsupported_response_type"),
        (
            "response_type",
            "code id_token",
            "unsupported_response_type",
        ),
        ("response_type", "", "invalid_request"),
        ("scope", "openid orders:write", "invalid_scope"),
        ("scope", "", "invalid_scope"),
        ("scope", "openid  profile", "invalid_scope"),
        ("code_challenge", "", "invalid_request"),
        ("code_challenge", challenge_42, "invalid_request"),
        ("code_challenge", &challenge_plus, "invalid_request"),
        ("code_challenge_method", "plain", "invalid_request"),
        ("code_challenge_method", "", "invalid_request"),
        (
            "request",
            "eyJhbGciOiJub25lIn0.e30.",
            "request_not_supported",
        ),
        (
            "request_uri",
            "https://app.example/r",
            "request_uri_not_supported",
        ),
        ("prompt", "none login", "invalid_request"),
        ("prompt", "select_account", "invalid_request"),
        ("response_mode", "fragment", "invalid_request"),
        ("max_age", "abc", "invalid_request"),
        ("max_age", "-1", "invalid_request"),
    ];
    for (name, value, error) in cases {
        let query = authorize_query(&client, &pkce, &[(name, value)]);
        let response = browser.authorize(&query).await;
        assert_client_error(&app, &response, &client, error, &format!("{name}={value}"));
    }
    // A state too long to echo is refused without it; the limit itself is fine.
    let long = "s".repeat(2049);
    let response = browser
        .authorize(&authorize_query(&client, &pkce, &[("state", &long)]))
        .await;
    assert_error_redirect(
        &app,
        &response,
        &client.redirect_uri,
        "invalid_request",
        None,
        "state of 2049",
    );
    // At the limit the sealed request is too long for a Location header:
    // the login page comes at once.
    let at_limit = browser
        .authorize(&authorize_query(&client, &pkce, &[("state", &long[1..])]))
        .await;
    assert_eq!(at_limit.status(), 200, "state of 2048");
    let html = at_limit.text().await.unwrap();
    assert!(form_value(&html, "request").is_some_and(|r| r.starts_with("s.")));
    // RFC 6749 §3.1: no parameter may be repeated.
    let query = authorize_query(&client, &pkce, &[]);
    for repeat in [
        "scope=openid",
        "response_type=code",
        "code_challenge=x",
        "nonce=n0nce",
    ] {
        let response = browser.authorize(&format!("{query}&{repeat}")).await;
        assert_client_error(&app, &response, &client, "invalid_request", repeat);
    }
    // A repeated state cannot be echoed: which one would it be?
    let response = browser.authorize(&format!("{query}&state=other")).await;
    assert_error_redirect(
        &app,
        &response,
        &client.redirect_uri,
        "invalid_request",
        None,
        "repeated state",
    );
}

async fn client_with_authorization_code_grant_may_sign_users_in(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app
        .web_client_with(NewClient {
            name: "Explicit grant".into(),
            redirect_uris: vec!["https://app.example/cb".into()],
            grant_types: vec!["authorization_code".into()],
            ..Default::default()
        })
        .await;
    let query = authorize_query(&client, &pkce(), &[]);
    assert_next_page(
        &app.browser().authorize(&query).await,
        "/login",
        "code client",
    );
}

/// Registration refuses a redirect URI without authorization_code, so no
/// registered client reaches this branch; a row written to the store
/// directly (an edited or legacy row) does.
async fn client_without_authorization_code_grant_is_unauthorized_client(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    use authd::domain::{
        Client, ClientId, ClientKind, ClientName, GrantType, RedirectUri, Scope, SecretDigest,
    };
    let runtime = authd::startup::Runtime::open(&app.config, false, &authd::clock::SystemClock)
        .await
        .expect("open database");
    let now = chrono::Utc::now();
    let id = ClientId::generate();
    runtime
        .store
        .insert_client(&Client {
            id: id.clone(),
            name: ClientName::parse("Machine with a URI").unwrap(),
            kind: ClientKind::Confidential,
            secret: Some(SecretDigest {
                digest: vec![0; 32],
                key_version: 1,
            }),
            redirect_uris: vec![RedirectUri::parse("https://app.example/cb").unwrap()],
            grant_types: vec![GrantType::ClientCredentials],
            scope: Scope::default(),
            audiences: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            skip_consent: false,
            can_introspect: false,
            rate_tier: "standard".into(),
            allowed_origins: Vec::new(),
            dynamic: None,
            created_at: now,
            updated_at: now,
        })
        .await
        .expect("insert client");
    runtime.store.close().await;
    let client = WebClient {
        id: id.to_string(),
        secret: None,
        redirect_uri: "https://app.example/cb".into(),
    };
    let response = app
        .browser()
        .authorize(&authorize_query(&client, &pkce(), &[]))
        .await;
    assert_error_redirect(
        &app,
        &response,
        "https://app.example/cb",
        "unauthorized_client",
        Some("st4te"),
        "client_credentials only",
    );
}

async fn prompt_none_without_a_session_is_login_required(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = web_client(&app).await;
    let query = authorize_query(&client, &pkce(), &[("prompt", "none")]);
    let response = app.browser().authorize(&query).await;
    assert_client_error(
        &app,
        &response,
        &client,
        "login_required",
        "OIDC Core §3.1.2.6",
    );
}

async fn prompt_none_for_a_scope_not_consented_is_consent_required(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = web_client(&app).await;
    app.user("alice").await;
    let pkce = pkce();
    let browser = app.browser();
    browser
        .sign_in(&authorize_query(&client, &pkce, &[]), "alice")
        .await;
    let query = authorize_query(
        &client,
        &pkce,
        &[("prompt", "none"), ("scope", "openid orders:read")],
    );
    let response = browser.authorize(&query).await;
    assert_client_error(
        &app,
        &response,
        &client,
        "consent_required",
        "OIDC Core §3.1.2.6",
    );
}

async fn unknown_parameters_are_ignored(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = web_client(&app).await;
    // RFC 6749 §3.1: "The authorization server MUST ignore unrecognized
    // request parameters."
    let query = authorize_query(&client, &pkce(), &[("foo", "bar"), ("ui_locales", "de")]);
    assert_next_page(&app.browser().authorize(&query).await, "/login", "foo=bar");
}

/// OIDC Core §3.1.2.1: the endpoint takes POST (a form) as well as GET,
/// with the same checks.
async fn post_authorize_is_checked_like_get(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = web_client(&app).await;
    let pkce = pkce();
    let browser = app.browser();
    let post = |query: String| {
        browser
            .http
            .post(app.url("/authorize"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(query)
            .send()
    };
    // Without a session cookie (a cross-site form post does not send the
    // SameSite=Lax cookie) the same request goes on as a top-level GET, so
    // a signed-in user's cookie is never replaced.
    let query = authorize_query(&client, &pkce, &[]);
    let response = post(query.clone()).await.unwrap();
    assert_eq!(response.status(), 303);
    let again = crate::helpers::location(&response);
    assert!(again.starts_with("/authorize?"), "{again}");
    assert!(
        response.headers().get("set-cookie").is_none(),
        "no cookie is set"
    );
    let followed = browser.get(&again).await;
    assert_next_page(&followed, "/login", "the GET that follows");
    // With the session cookie the POST itself is answered.
    let response = post(query).await.unwrap();
    assert_next_page(&response, "/login", "POST");
    let bad = authorize_query(
        &client,
        &pkce,
        &[("redirect_uri", "https://evil.example/cb")],
    );
    error_page(post(bad).await.unwrap(), 400, "POST, bad redirect_uri").await;
    let query = authorize_query(&client, &pkce, &[("scope", "")]);
    let response = post(query).await.unwrap();
    assert_client_error(&app, &response, &client, "invalid_scope", "POST, no scope");
}

async fn state_is_echoed_verbatim(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = web_client(&app).await;
    app.user("alice").await;
    let pkce = pkce();
    let browser = app.browser();
    let state = r#""><script>alert(1)</script>&x=1"#;
    let query = authorize_query(
        &client,
        &pkce,
        &[("state", state), ("response_type", "token")],
    );
    let response = browser.authorize(&query).await;
    assert_error_redirect(
        &app,
        &response,
        &client.redirect_uri,
        "unsupported_response_type",
        Some(state),
        "error redirect",
    );
    let raw = location(&response);
    assert!(!raw.contains('<') && !raw.contains('"'), "encoded: {raw}");
    assert_eq!(query_param(&raw, "x"), None, "no parameter injected");

    let back = browser
        .sign_in(
            &authorize_query(&client, &pkce, &[("state", state)]),
            "alice",
        )
        .await;
    assert_eq!(query_param(&back, "state").as_deref(), Some(state));
    assert_eq!(query_param(&back, "x"), None, "no parameter injected");
    assert!(query_param(&back, "code").is_some(), "{back}");
}

// ---------------------------------------------------------------------------
// 4. The user says no (RFC 6749 §4.1.2.1 access_denied).
// ---------------------------------------------------------------------------

async fn denying_consent_redirects_access_denied(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = web_client(&app).await;
    app.user("alice").await;
    let browser = app.browser();
    let response = browser
        .authorize(&authorize_query(&client, &pkce(), &[]))
        .await;
    let login = assert_next_page(&response, "/login", "authorize");
    let response = browser.log_in(&login, "alice", PASSWORD).await;
    let consent = assert_next_page(&response, "/consent", "login");
    let response = browser.decide(&consent, "deny").await;
    assert_client_error(&app, &response, &client, "access_denied", "deny");
    // The request is over: its consent page is gone.
    error_page(browser.get(&consent).await, 400, "after deny").await;
}

// ---------------------------------------------------------------------------
// 5. prompt, max_age and login_hint (OIDC Core §3.1.2.1).
// ---------------------------------------------------------------------------

async fn prompt_none_with_session_and_consent_returns_a_code(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = web_client(&app).await;
    app.user("alice").await;
    let browser = app.browser();
    browser
        .sign_in(&authorize_query(&client, &pkce(), &[]), "alice")
        .await;
    let pkce = pkce();
    let response = browser
        .authorize(&authorize_query(&client, &pkce, &[("prompt", "none")]))
        .await;
    let code = assert_code_redirect(&app, &response, &client.redirect_uri, "prompt=none");
    let token = exchange_code(&app, &client, &code, &pkce.verifier).await;
    assert_eq!(token.status(), 200, "the code is a real one");
}

async fn prompt_login_asks_for_the_password_again(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = web_client(&app).await;
    app.user("alice").await;
    let browser = app.browser();
    browser
        .sign_in(&authorize_query(&client, &pkce(), &[]), "alice")
        .await;
    let pkce = pkce();
    let response = browser
        .authorize(&authorize_query(&client, &pkce, &[("prompt", "login")]))
        .await;
    let login = assert_next_page(&response, "/login", "prompt=login");
    let response = browser.log_in(&login, "alice", PASSWORD).await;
    let code = assert_code_redirect(&app, &response, &client.redirect_uri, "after login");
    let token = exchange_code(&app, &client, &code, &pkce.verifier).await;
    assert_eq!(token.status(), 200);
}

async fn max_age_zero_forces_the_login_page(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = web_client(&app).await;
    app.user("alice").await;
    let browser = app.browser();
    let pkce = pkce();
    browser
        .sign_in(&authorize_query(&client, &pkce, &[]), "alice")
        .await;
    let response = browser
        .authorize(&authorize_query(&client, &pkce, &[("max_age", "0")]))
        .await;
    let login = assert_next_page(&response, "/login", "max_age=0");
    let response = browser.log_in(&login, "alice", PASSWORD).await;
    assert_code_redirect(&app, &response, &client.redirect_uri, "after login");
    // With prompt=none the fresh login it needs cannot happen.
    let query = authorize_query(&client, &pkce, &[("max_age", "0"), ("prompt", "none")]);
    let response = browser.authorize(&query).await;
    assert_client_error(&app, &response, &client, "login_required", "prompt=none");
    // A generous max_age does not ask again.
    let response = browser
        .authorize(&authorize_query(&client, &pkce, &[("max_age", "3600")]))
        .await;
    assert_code_redirect(&app, &response, &client.redirect_uri, "max_age=3600");
}

async fn login_hint_prefills_the_username_escaped(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = web_client(&app).await;
    let pkce = pkce();
    let browser = app.browser();
    let response = browser
        .authorize(&authorize_query(&client, &pkce, &[("login_hint", "alice")]))
        .await;
    let login = assert_next_page(&response, "/login", "hint");
    let (html, _, _) = open_form(&browser, &login).await;
    assert!(html.contains(r#"value="alice""#), "{html}");

    let response = browser
        .authorize(&authorize_query(
            &client,
            &pkce,
            &[("login_hint", "\"><script>")],
        ))
        .await;
    let login = assert_next_page(&response, "/login", "hostile hint");
    let (html, _, _) = open_form(&browser, &login).await;
    assert!(
        html.contains(r#"value="&quot;&gt;&lt;script&gt;""#),
        "{html}"
    );
    assert!(!html.contains("<script>"), "{html}");
}

// ---------------------------------------------------------------------------
// 6. Remembered consent; always asked for public loopback clients (RFC 8252
//    §8.6); never asked for skip_consent clients.
// ---------------------------------------------------------------------------

async fn remembered_consent_skips_the_consent_page(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = web_client(&app).await;
    app.user("alice").await;
    let pkce = pkce();
    let query = authorize_query(&client, &pkce, &[]);

    // First time: login, then consent.
    let first = app.browser();
    let login = start(&first, &query).await;
    let consent = log_in_to_consent(&first, &login).await;
    assert_code_redirect(
        &app,
        &first.decide(&consent, "allow").await,
        &client.redirect_uri,
        "allow",
    );

    // Signed in already: straight back from /authorize.
    let response = first.authorize(&query).await;
    assert_code_redirect(&app, &response, &client.redirect_uri, "same browser");

    // Another browser: login, then straight back from POST /login.
    let second = app.browser();
    let login = start(&second, &query).await;
    let response = second.log_in(&login, "alice", PASSWORD).await;
    assert_code_redirect(&app, &response, &client.redirect_uri, "second login");
}

async fn new_scope_or_prompt_consent_asks_again(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = web_client(&app).await;
    app.user("alice").await;
    let pkce = pkce();
    let browser = app.browser();
    browser
        .sign_in(&authorize_query(&client, &pkce, &[]), "alice")
        .await;

    let orders = authorize_query(&client, &pkce, &[("scope", "openid orders:read")]);
    let consent = assert_next_page(&browser.authorize(&orders).await, "/consent", "new scope");
    let (html, _, _) = open_form(&browser, &consent).await;
    assert!(html.contains("orders:read"), "{html}");
    assert_code_redirect(
        &app,
        &browser.decide(&consent, "allow").await,
        &client.redirect_uri,
        "allow",
    );

    // Consents add up: the union of both grants needs no new question.
    let all = authorize_query(
        &client,
        &pkce,
        &[("scope", "openid profile email orders:read")],
    );
    assert_code_redirect(
        &app,
        &browser.authorize(&all).await,
        &client.redirect_uri,
        "union",
    );

    // prompt=consent asks even so.
    let forced = authorize_query(&client, &pkce, &[("prompt", "consent")]);
    let consent = assert_next_page(
        &browser.authorize(&forced).await,
        "/consent",
        "prompt=consent",
    );
    assert_code_redirect(
        &app,
        &browser.decide(&consent, "allow").await,
        &client.redirect_uri,
        "allow again",
    );
}

async fn public_loopback_client_is_asked_every_time(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = loopback_client(&app).await;
    app.user("alice").await;
    let pkce = pkce();
    let browser = app.browser();
    let query = authorize_query(&client, &pkce, &[]);
    let back = browser.sign_in(&query, "alice").await;
    assert_code_location(&app, &back, &client.redirect_uri, "first sign-in");

    let consent = assert_next_page(&browser.authorize(&query).await, "/consent", "again");
    assert_code_redirect(
        &app,
        &browser.decide(&consent, "allow").await,
        &client.redirect_uri,
        "allow again",
    );
    let none = authorize_query(&client, &pkce, &[("prompt", "none")]);
    assert_client_error(
        &app,
        &browser.authorize(&none).await,
        &client,
        "consent_required",
        "prompt=none",
    );
}

async fn skip_consent_client_never_shows_the_consent_page(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app
        .web_client_with(NewClient {
            name: "First party".into(),
            redirect_uris: vec!["https://app.example/cb".into()],
            scopes: vec!["orders:read".into()],
            skip_consent: true,
            ..Default::default()
        })
        .await;
    app.user("alice").await;
    let pkce = pkce();
    let browser = app.browser();
    let query = authorize_query(&client, &pkce, &[("scope", "openid orders:read")]);
    let login = start(&browser, &query).await;
    let response = browser.log_in(&login, "alice", PASSWORD).await;
    assert_code_redirect(&app, &response, &client.redirect_uri, "straight back");
}

// ---------------------------------------------------------------------------
// 7. CSRF: the forms only accept the token of this browser's session.
// ---------------------------------------------------------------------------

async fn login_form_without_the_right_csrf_token_is_forbidden(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = web_client(&app).await;
    app.user("alice").await;
    let query = authorize_query(&client, &pkce(), &[]);
    let browser = app.browser();
    let login = start(&browser, &query).await;
    let (_, csrf, request) = open_form(&browser, &login).await;

    let other = app.browser();
    let other_login = start(&other, &query).await;
    let (_, other_csrf, _) = open_form(&other, &other_login).await;
    assert_ne!(csrf, other_csrf);

    let form = |csrf: Option<&'static str>| {
        let mut form = vec![
            ("request", request.clone()),
            ("username", "alice".to_owned()),
            ("password", PASSWORD.to_owned()),
        ];
        if let Some(csrf) = csrf {
            form.push(("csrf", csrf.to_owned()));
        }
        form
    };
    let mut forms = vec![
        ("missing", form(None)),
        (
            "wrong",
            form(Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")),
        ),
        ("not base64", form(Some("!!!"))),
    ];
    let mut foreign = form(None);
    foreign.push(("csrf", other_csrf));
    forms.push(("another browser's", foreign));
    for (name, form) in forms {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let response = browser.post_form("/login", &form).await;
        error_page(response, 403, name).await;
    }
    // The request was not spent: the right token still signs in.
    let response = post_login(&browser, &csrf, &request, "alice", PASSWORD).await;
    assert_next_page(&response, "/consent", "right token");
}

async fn consent_form_without_the_right_csrf_token_is_forbidden(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = web_client(&app).await;
    app.user("alice").await;
    let query = authorize_query(&client, &pkce(), &[]);
    let browser = app.browser();
    let login = start(&browser, &query).await;
    let (_, login_csrf, _) = open_form(&browser, &login).await;
    let consent = log_in_to_consent(&browser, &login).await;
    let (_, csrf, request) = open_form(&browser, &consent).await;
    // The cookie changes at sign-in (session fixation), and so the token.
    assert_ne!(csrf, login_csrf);

    let other = app.browser();
    let other_login = start(&other, &query).await;
    let (_, other_csrf, _) = open_form(&other, &other_login).await;

    for (name, token) in [
        ("missing", None),
        ("wrong", Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")),
        ("from before sign-in", Some(login_csrf.as_str())),
        ("another browser's", Some(other_csrf.as_str())),
    ] {
        let mut form = vec![("request", request.as_str()), ("decision", "allow")];
        if let Some(token) = token {
            form.push(("csrf", token));
        }
        let response = browser.post_form("/consent", &form).await;
        error_page(response, 403, name).await;
    }
    let response = browser
        .post_form(
            "/consent",
            &[
                ("csrf", &csrf),
                ("request", &request),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_code_redirect(&app, &response, &client.redirect_uri, "right token");
}

// ---------------------------------------------------------------------------
// 8. Escaping: the pages are auto-escaped templates.
// ---------------------------------------------------------------------------

async fn client_name_is_escaped_on_login_and_consent_pages(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app
        .web_client_with(NewClient {
            name: r#"Evil "><script>alert(1)</script>"#.into(),
            redirect_uris: vec!["https://app.example/cb".into()],
            ..Default::default()
        })
        .await;
    app.user("alice").await;
    let browser = app.browser();
    let query = authorize_query(&client, &pkce(), &[]);
    let login = start(&browser, &query).await;
    let (html, _, _) = open_form(&browser, &login).await;
    let escaped = "Evil &quot;&gt;&lt;script&gt;alert(1)";
    assert!(html.contains(escaped), "login page: {html}");
    assert!(!html.contains("<script>alert(1)"), "login page: {html}");

    let consent = log_in_to_consent(&browser, &login).await;
    let (html, _, _) = open_form(&browser, &consent).await;
    assert!(html.contains(escaped), "consent page: {html}");
    assert!(!html.contains("<script>alert(1)"), "consent page: {html}");
}

// ---------------------------------------------------------------------------
// 9. Headers of every page, and the session cookie.
// ---------------------------------------------------------------------------

async fn pages_carry_the_security_headers(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = web_client(&app).await;
    app.user("alice").await;
    let browser = app.browser();
    let query = authorize_query(&client, &pkce(), &[]);
    let response = browser.authorize(&query).await;
    let login = assert_next_page(&response, "/login", "authorize");
    // Redirects are not cached and leak no Referer either.
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["referrer-policy"], "no-referrer");

    let page = browser.get(&login).await;
    assert_eq!(page.status(), 200);
    assert_page_headers(&page, "login page");
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("form-action 'self' https://app.example"),
        "the form may end at the client: {csp}"
    );

    let consent = log_in_to_consent(&browser, &login).await;
    let page = browser.get(&consent).await;
    assert_eq!(page.status(), 200);
    assert_page_headers(&page, "consent page");
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("form-action 'self' https://app.example"),
        "{csp}"
    );

    let response = app.browser().authorize("client_id=nope").await;
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.ends_with("form-action 'self'"), "error page: {csp}");
    error_page(response, 400, "error page").await;
}

async fn session_cookie_is_http_only_lax_and_host_wide(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = web_client(&app).await;
    app.user("alice").await;
    let browser = app.browser();
    let query = authorize_query(&client, &pkce(), &[]);
    let response = browser.authorize(&query).await;
    let login = assert_next_page(&response, "/login", "authorize");
    let check = |attributes: &[String], context: &str| {
        for expected in ["httponly", "samesite=lax", "path=/"] {
            assert!(
                attributes.iter().any(|a| a == expected),
                "{context}: {expected} in {attributes:?}"
            );
        }
        assert!(
            !attributes
                .iter()
                .any(|a| a == "secure" || a.starts_with("domain=")),
            "{context}: http issuer, host-only: {attributes:?}"
        );
    };
    let (anonymous, attributes) = set_cookie(&response, "authd_session");
    check(&attributes, "anonymous");

    // A completed POST answers 303 (never 307, which would re-post the
    // password to the client) with a new cookie value: a cookie planted
    // before login is worthless after it (session fixation).
    let response = browser.log_in(&login, "alice", PASSWORD).await;
    assert_eq!(response.status(), 303);
    let (signed_in, attributes) = set_cookie(&response, "authd_session");
    check(&attributes, "signed in");
    assert_ne!(anonymous, signed_in);
    let none = format!(
        "/authorize?{}",
        authorize_query(&client, &pkce(), &[("prompt", "none")])
    );
    let with_cookie = |value: &str| {
        app.http
            .get(app.url(&none))
            .header("cookie", format!("authd_session={value}"))
            .send()
    };
    let response = with_cookie(&anonymous).await.unwrap();
    assert_client_error(&app, &response, &client, "login_required", "old cookie");
    // Consent is still pending, so the live cookie gets consent_required.
    let response = with_cookie(&signed_in).await.unwrap();
    assert_client_error(&app, &response, &client, "consent_required", "new cookie");
}

async fn https_issuer_uses_a_secure_host_prefixed_cookie(backend: Backend) {
    let Some(database) = test_database(backend).await else {
        return;
    };
    let app = spawn_app_on(Arc::new(database), MasterKey::generate(), |config| {
        config.issuer = Some("https://id.example".into());
    })
    .await
    .expect("app starts");
    let client = web_client(&app).await;
    let response = app
        .http
        .get(app.url(&format!(
            "/authorize?{}",
            authorize_query(&client, &pkce(), &[])
        )))
        .send()
        .await
        .unwrap();
    assert_next_page(&response, "/login", "authorize");
    let (_, attributes) = set_cookie(&response, "__Host-authd_session");
    for expected in ["secure", "httponly", "samesite=lax", "path=/"] {
        assert!(
            attributes.iter().any(|a| a == expected),
            "{expected} in {attributes:?}"
        );
    }
    assert!(
        !attributes.iter().any(|a| a.starts_with("domain=")),
        "__Host- cookies have no Domain: {attributes:?}"
    );
    // And redirected errors name this issuer.
    let query = authorize_query(&client, &pkce(), &[("scope", "")]);
    let response = app
        .http
        .get(app.url(&format!("/authorize?{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(app.issuer, "https://id.example");
    assert_client_error(&app, &response, &client, "invalid_scope", "https issuer");
}

// ---------------------------------------------------------------------------
// 10. Login: one answer for every failure, disabled users, throttling.
// ---------------------------------------------------------------------------

async fn wrong_password_and_unknown_user_get_the_same_answer(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = web_client(&app).await;
    app.user("alice").await;
    let query = authorize_query(&client, &pkce(), &[]);
    let browser = app.browser();
    let login = start(&browser, &query).await;
    let (_, csrf, request) = open_form(&browser, &login).await;
    for (username, password) in [("alice", "wrong password"), ("nobody", PASSWORD)] {
        let response = post_login(&browser, &csrf, &request, username, password).await;
        assert_eq!(response.status(), 200, "{username}");
        assert!(
            response.headers().get("set-cookie").is_none(),
            "{username}: the session does not change"
        );
        assert_page_headers(&response, username);
        let html = response.text().await.unwrap();
        assert!(html.contains(LOGIN_FAILED), "{username}: {html}");
        assert!(html.contains(&format!(r#"value="{username}""#)), "{html}");
        assert_eq!(form_value(&html, "csrf").as_deref(), Some(csrf.as_str()));
        assert_eq!(
            form_value(&html, "request").as_deref(),
            Some(request.as_str())
        );
    }
    // Nobody is signed in.
    let none = authorize_query(&client, &pkce(), &[("prompt", "none")]);
    assert_client_error(
        &app,
        &browser.authorize(&none).await,
        &client,
        "login_required",
        "after failures",
    );
    // The same request still completes with the right password.
    let response = post_login(&browser, &csrf, &request, "alice", PASSWORD).await;
    assert_next_page(&response, "/consent", "right password");
}

async fn disabled_user_cannot_sign_in(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = web_client(&app).await;
    let id = app.user("carol").await;
    let query = authorize_query(&client, &pkce(), &[]);
    // Signed in before being disabled.
    let earlier = app.browser();
    earlier.sign_in(&query, "carol").await;

    let runtime = authd::startup::Runtime::open(&app.config, false, &authd::clock::SystemClock)
        .await
        .expect("open database");
    let disabled = runtime
        .store
        .disable_user(
            authd::domain::UserId(id.parse().unwrap()),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    assert!(disabled);
    runtime.store.close().await;

    let browser = app.browser();
    let login = start(&browser, &query).await;
    let response = browser.log_in(&login, "carol", PASSWORD).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("set-cookie").is_none());
    let html = response.text().await.unwrap();
    assert!(html.contains(LOGIN_FAILED), "{html}");
    // The existing session no longer counts as signed in.
    let none = authorize_query(&client, &pkce(), &[("prompt", "none")]);
    let response = earlier.authorize(&none).await;
    assert_client_error(&app, &response, &client, "login_required", "old session");
}

async fn repeated_failures_are_throttled_with_retry_after(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = web_client(&app).await;
    app.user("alice").await;
    let query = authorize_query(&client, &pkce(), &[]);
    let browser = app.browser();
    let login = start(&browser, &query).await;
    let (_, csrf, request) = open_form(&browser, &login).await;
    for attempt in 1..=5 {
        let response = post_login(&browser, &csrf, &request, "alice", "wrong password").await;
        assert_eq!(response.status(), 200, "free failure {attempt}");
    }
    // Blocked: even the right password is not checked now.
    let response = post_login(&browser, &csrf, &request, "alice", PASSWORD).await;
    assert_eq!(response.status(), 429);
    assert_page_headers(&response, "throttled");
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let html = response.text().await.unwrap();
    assert!(
        html.contains(&match retry_after {
            1 => "Wait 1 second,".to_owned(),
            n => format!("Wait {n} seconds,"),
        }),
        "{html}"
    );
    // Once the wait is over, the right password signs in.
    tokio::time::sleep(std::time::Duration::from_millis(retry_after * 1000 + 100)).await;
    let response = post_login(&browser, &csrf, &request, "alice", PASSWORD).await;
    assert_next_page(&response, "/consent", "after the wait");
}

// ---------------------------------------------------------------------------
// 11. A pending request belongs to the browser that started it.
// ---------------------------------------------------------------------------

async fn pending_request_in_another_browser_renders_the_error_page(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = web_client(&app).await;
    app.user("alice").await;
    let query = authorize_query(&client, &pkce(), &[]);
    let browser = app.browser();
    let login = start(&browser, &query).await;
    let (_, _, request) = open_form(&browser, &login).await;

    // A browser without any session.
    let stranger = app.browser();
    let html = error_page(stranger.get(&login).await, 400, "no session").await;
    assert!(html.contains("another browser"), "{html}");

    // A browser with its own session and pending request.
    let other = app.browser();
    let other_login = start(&other, &query).await;
    let (_, other_csrf, _) = open_form(&other, &other_login).await;
    error_page(other.get(&login).await, 400, "other session").await;
    let response = post_login(&other, &other_csrf, &request, "alice", PASSWORD).await;
    error_page(response, 400, "other session posts").await;

    // The consent page of a request is bound the same way.
    let consent = log_in_to_consent(&browser, &login).await;
    error_page(other.get(&consent).await, 400, "other session, consent").await;
    // The owner is unaffected.
    assert_code_redirect(
        &app,
        &browser.decide(&consent, "allow").await,
        &client.redirect_uri,
        "owner",
    );
}

/// Guesses sent in parallel are counted before any password is checked:
/// only the free attempts get through, the rest are throttled.
async fn parallel_guesses_are_throttled(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = web_client(&app).await;
    app.user("alice").await;
    let browser = app.browser();
    let first = browser
        .authorize(&authorize_query(&client, &pkce(), &[]))
        .await;
    let page = browser
        .get(&crate::helpers::location(&first))
        .await
        .text()
        .await
        .unwrap();
    let csrf = crate::helpers::form_value(&page, "csrf").unwrap();
    let request = crate::helpers::form_value(&page, "request").unwrap();
    let guesses = (0..30).map(|i| {
        let password = format!("wrong password {i}");
        let form = [
            ("csrf", csrf.clone()),
            ("request", request.clone()),
            ("username", "alice".to_owned()),
            ("password", password),
        ];
        let request = browser.http.post(app.url("/login")).form(&form).send();
        async move { request.await.unwrap().status().as_u16() }
    });
    let statuses = futures_util::future::join_all(guesses).await;
    let checked = statuses.iter().filter(|&&s| s == 200).count();
    let throttled = statuses.iter().filter(|&&s| s == 429).count();
    assert_eq!(checked, 5, "{statuses:?}");
    assert_eq!(throttled, 25, "{statuses:?}");
}

/// Security review finding 2: password checks are bounded
/// (`AUTHD_PASSWORD_CHECKS`), and an attempt that cannot get one within
/// `AUTHD_PASSWORD_CHECK_WAIT` gets the login page again with `503` and
/// `Retry-After`, without counting as a failure. One check at a time and a
/// 1 ms wait: of a burst of logins, the ones that arrive while a check runs
/// are refused; afterwards the right password signs in.
async fn password_checks_are_bounded_and_the_rest_wait_then_get_503(backend: Backend) {
    let Some(database) = test_database(backend).await else {
        return;
    };
    let app = spawn_app_on(Arc::new(database), MasterKey::generate(), |config| {
        config.password_checks = authd::signin::password::PasswordChecks {
            concurrent: 1,
            wait: std::time::Duration::from_millis(1),
        };
        config.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
    })
    .await
    .expect("app starts");
    let client = web_client(&app).await;
    app.user("alice").await;
    let browser = app.browser();
    let login = location(
        &browser
            .authorize(&authorize_query(&client, &pkce(), &[]))
            .await,
    );
    let page = browser.get(&login).await.text().await.unwrap();
    let csrf = form_value(&page, "csrf").unwrap();
    let request = form_value(&page, "request").unwrap();
    let attempts = (0..12).map(|i| {
        let form = [
            ("csrf", csrf.clone()),
            ("request", request.clone()),
            ("username", format!("nobody{i}")),
            ("password", "wrong password".to_owned()),
        ];
        let request = browser.http.post(app.url("/login")).form(&form).send();
        async move {
            let response = request.await.unwrap();
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let html = response.text().await.unwrap();
            (status, retry_after, html)
        }
    });
    let answers = futures_util::future::join_all(attempts).await;
    let statuses: Vec<u16> = answers.iter().map(|(status, _, _)| *status).collect();
    assert!(statuses.contains(&200), "some were checked: {statuses:?}");
    assert!(statuses.contains(&503), "some were refused: {statuses:?}");
    assert!(
        statuses.iter().all(|s| [200, 503].contains(s)),
        "{statuses:?}"
    );
    for (status, retry_after, html) in &answers {
        if *status == 503 {
            assert_eq!(retry_after.as_deref(), Some("1"));
            assert!(html.contains("Too many people are signing in"), "{html}");
            assert!(
                form_value(html, "csrf").is_some(),
                "the form is shown again"
            );
        }
    }
    // Operators see them counted.
    let metrics = reqwest::get(format!(
        "http://127.0.0.1:{}/metrics",
        app.metrics_port.unwrap()
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    let refused = statuses.iter().filter(|&&s| s == 503).count();
    assert!(
        metrics.contains(&format!("\nlogin_busy_total {refused}\n")),
        "login_busy_total {refused} in {metrics}"
    );
    // Refusals are not failures: nobody was throttled, and alice gets in.
    let response = browser
        .post_form(
            "/login",
            &[
                ("csrf", &csrf),
                ("request", &request),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(response.status(), 303, "the right password signs in");
}

on_both_backends!(
    parallel_guesses_are_throttled,
    password_checks_are_bounded_and_the_rest_wait_then_get_503,
    missing_unknown_or_repeated_client_id_renders_the_error_page,
    bad_redirect_uri_renders_the_error_page_before_other_checks,
    repeated_redirect_uri_renders_the_error_page,
    omitted_redirect_uri_uses_the_only_registered_one,
    omitted_redirect_uri_with_two_registered_renders_the_error_page,
    redirect_uri_must_match_the_registration_exactly,
    loopback_redirect_uri_may_change_only_the_port,
    request_errors_are_redirected_with_state_and_iss,
    client_with_authorization_code_grant_may_sign_users_in,
    client_without_authorization_code_grant_is_unauthorized_client,
    prompt_none_without_a_session_is_login_required,
    prompt_none_for_a_scope_not_consented_is_consent_required,
    unknown_parameters_are_ignored,
    post_authorize_is_checked_like_get,
    state_is_echoed_verbatim,
    denying_consent_redirects_access_denied,
    prompt_none_with_session_and_consent_returns_a_code,
    prompt_login_asks_for_the_password_again,
    max_age_zero_forces_the_login_page,
    login_hint_prefills_the_username_escaped,
    remembered_consent_skips_the_consent_page,
    new_scope_or_prompt_consent_asks_again,
    public_loopback_client_is_asked_every_time,
    skip_consent_client_never_shows_the_consent_page,
    login_form_without_the_right_csrf_token_is_forbidden,
    consent_form_without_the_right_csrf_token_is_forbidden,
    client_name_is_escaped_on_login_and_consent_pages,
    pages_carry_the_security_headers,
    session_cookie_is_http_only_lax_and_host_wide,
    https_issuer_uses_a_secure_host_prefixed_cookie,
    wrong_password_and_unknown_user_get_the_same_answer,
    disabled_user_cannot_sign_in,
    repeated_failures_are_throttled_with_retry_after,
    pending_request_in_another_browser_renders_the_error_page,
);
