//! Sign-in state stays bounded (security review finding 3): a browser that
//! has not signed in stores nothing (its pending request travels sealed to
//! it, whatever cookie it sends), a signed-in session holds at most
//! `MAX_PENDING_PER_SESSION` pending requests (the oldest is evicted), and
//! what a pending request stores is bounded.
use authd::oauth::authorization::MAX_PENDING_PER_SESSION;

use crate::helpers::{
    Backend, Browser, PASSWORD, TestApp, WebClient, authorize_query, count_rows, form_value,
    location, on_both_backends, pkce, query_param, spawn_app,
};

/// `GET /authorize` without a session: a 303 to the login page, and no row
/// anywhere.
async fn anonymous_authorize(app: &TestApp, client: &WebClient, cookie: Option<&str>) -> String {
    let mut request = app.http.get(app.url(&format!(
        "/authorize?{}",
        authorize_query(client, &pkce(), &[])
    )));
    if let Some(cookie) = cookie {
        request = request.header("cookie", format!("authd_session={cookie}"));
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 303);
    let login = location(&response);
    assert!(login.starts_with("/login?request=s."), "{login}");
    login
}

/// Cookie-less `/authorize` requests (a script, or every browser's first
/// visit) and requests with made-up cookies store nothing; a browser gets
/// its session row, and its request a row, when it signs in.
async fn a_browser_stores_nothing_until_it_signs_in(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(false, &[]).await;
    app.user("alice").await;
    for n in 0..20 {
        anonymous_authorize(&app, &client, None).await;
        anonymous_authorize(&app, &client, Some(&format!("made-up-{n}"))).await;
    }
    assert_eq!(count_rows(&app, backend, "browser_sessions").await, 0);
    assert_eq!(count_rows(&app, backend, "authorization_requests").await, 0);

    // A real browser: its login page works from the sealed request alone;
    // signing in stores the session and (for the consent page) the request.
    let browser = app.browser();
    let response = browser
        .authorize(&authorize_query(&client, &pkce(), &[]))
        .await;
    let login = location(&response);
    assert!(login.starts_with("/login?request=s."), "{login}");
    let consent = location(&browser.log_in(&login, "alice", PASSWORD).await);
    assert!(consent.starts_with("/consent?request="), "{consent}");
    assert!(!consent.contains("request=s."), "stored now: {consent}");
    assert_eq!(count_rows(&app, backend, "browser_sessions").await, 1);
    assert_eq!(count_rows(&app, backend, "authorization_requests").await, 1);
    let back = location(&browser.decide(&consent, "allow").await);
    assert!(query_param(&back, "code").is_some(), "{back}");
    assert_eq!(count_rows(&app, backend, "authorization_requests").await, 0);
}

/// A sealed request is the browser's own and is finished once: another
/// browser gets the expired page, and a login form posted twice at once
/// continues once (the other post finds the request taken).
async fn a_sealed_request_is_finished_once_by_its_browser(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(false, &[]).await;
    app.user("alice").await;
    let browser = app.browser();
    let login = location(
        &browser
            .authorize(&authorize_query(&client, &pkce(), &[]))
            .await,
    );
    let html = browser.get(&login).await.text().await.unwrap();
    let csrf = form_value(&html, "csrf").unwrap();
    let request = form_value(&html, "request").unwrap();
    assert!(request.starts_with("s."), "{request}");

    // Another browser (another cookie) cannot use it.
    let stranger = app.browser();
    let page = stranger.get(&login).await;
    assert_eq!(page.status(), 400);
    assert!(page.text().await.unwrap().contains("expired"));

    let post = |browser: &Browser| {
        browser.http.post(app.url("/login")).form(&[
            ("csrf", csrf.as_str()),
            ("request", request.as_str()),
            ("username", "alice"),
            ("password", PASSWORD),
        ])
    };
    let (first, second) = tokio::join!(post(&browser).send(), post(&browser).send());
    let mut outcomes: Vec<(u16, String)> = Vec::new();
    for response in [first.unwrap(), second.unwrap()] {
        let status = response.status().as_u16();
        let next = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        outcomes.push((status, next));
    }
    outcomes.sort();
    assert_eq!(outcomes[0].0, 303, "{outcomes:?}");
    assert!(
        outcomes[0].1.starts_with("/consent?request="),
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes[1].0, 400,
        "the second finds it taken: {outcomes:?}"
    );
    assert_eq!(count_rows(&app, backend, "authorization_requests").await, 1);
}

/// Replaying `/authorize` (here with `prompt=login`) in one signed-in
/// session keeps at most `MAX_PENDING_PER_SESSION` pending requests: each
/// new one evicts the oldest, which then answers "expired"; the newest
/// still signs in.
async fn one_session_holds_a_bounded_number_of_pending_requests(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(false, &[]).await;
    app.user("alice").await;
    let browser = app.browser();
    let back = browser
        .sign_in(&authorize_query(&client, &pkce(), &[]), "alice")
        .await;
    assert!(query_param(&back, "code").is_some());
    let mut logins = Vec::new();
    for _ in 0..(MAX_PENDING_PER_SESSION + 14) {
        let response = browser
            .authorize(&authorize_query(&client, &pkce(), &[("prompt", "login")]))
            .await;
        assert_eq!(response.status(), 303);
        logins.push(location(&response));
    }
    assert_eq!(
        count_rows(&app, backend, "authorization_requests").await,
        i64::from(MAX_PENDING_PER_SESSION)
    );
    let oldest = browser.get(&logins[0]).await;
    assert_eq!(oldest.status(), 400, "evicted");
    assert!(oldest.text().await.unwrap().contains("expired"));
    let newest = browser
        .log_in(logins.last().unwrap(), "alice", PASSWORD)
        .await;
    assert_eq!(newest.status(), 303, "the newest signs in");
}

/// What a pending request carries is bounded: every field of the validated
/// request is (`state` 2048 bytes, `nonce` 512, `login_hint` 64
/// characters, the challenge 128, scopes the client's own), so with every
/// field at its limit the sealed reference stays under 6 KB and the stored
/// row under 4 KiB. Longer values are refused or dropped
/// (tests/api/input_limits.rs).
async fn a_pending_request_carries_a_bounded_amount(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app
        .web_client(false, &["orders:read", "orders:write"])
        .await;
    app.user("alice").await;
    let state = "s".repeat(authd::oauth::authorize::MAX_STATE_LEN);
    let nonce = "n".repeat(authd::oauth::authorize::MAX_NONCE_LEN);
    let hint = "h".repeat(authd::oauth::authorize::MAX_LOGIN_HINT_CHARS);
    let challenge = "c".repeat(128);
    let query = authorize_query(
        &client,
        &pkce(),
        &[
            ("state", &state),
            ("nonce", &nonce),
            ("login_hint", &hint),
            ("code_challenge", &challenge),
            ("scope", "openid profile email orders:read orders:write"),
            ("prompt", "login consent"),
            ("max_age", "4294967295"),
        ],
    );
    let browser = app.browser();
    let login = location(&browser.authorize(&query).await);
    assert!(login.starts_with("/login?request=s."));
    assert!(
        login.len() > 2048 + 512 + 64 + 128,
        "every field: {}",
        login.len()
    );
    assert!(login.len() < 6000, "{} bytes", login.len());
    // The largest honest login form (a 1024-character password of 4-byte
    // characters) is read, not refused as too large.
    let longest = "\u{1F600}".repeat(1024);
    let refused = browser.log_in(&login, "alice", &longest).await;
    assert_eq!(refused.status(), 200, "a wrong password, not 413");
    // Signed in, the consent step stores it.
    let consent = location(&browser.log_in(&login, "alice", PASSWORD).await);
    assert!(consent.starts_with("/consent?request="), "{consent}");
    let size = crate::helpers::query_i64(
        &app,
        backend,
        "SELECT CAST(MAX(LENGTH(request)) AS BIGINT) FROM authorization_requests",
    )
    .await;
    assert!(size > 2048 + 512 + 64 + 128, "every field stored: {size}");
    assert!(size < 4096, "{size} bytes");
}

on_both_backends!(
    a_browser_stores_nothing_until_it_signs_in,
    a_sealed_request_is_finished_once_by_its_browser,
    one_session_holds_a_bounded_number_of_pending_requests,
    a_pending_request_carries_a_bounded_amount,
);
