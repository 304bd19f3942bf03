//! Sign-in state stays bounded (security review finding 3): a browser
//! without a cookie stores no session row before it signs in, one browser
//! holds at most `MAX_PENDING_PER_BROWSER` pending requests (the oldest is
//! evicted), and what a pending request stores is bounded.
use authd::oauth::authorization::MAX_PENDING_PER_BROWSER;

use crate::helpers::{
    Backend, authorize_query, count_rows, location, on_both_backends, pkce, query_param, spawn_app,
};

/// Cookie-less `/authorize` requests (a script, or the first visit of
/// every browser) store their pending request and nothing else; the
/// session row appears when the browser signs in, and the pending request
/// made while anonymous carries on in it.
async fn a_browser_gets_a_session_row_only_when_it_signs_in(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(false, &[]).await;
    app.user("alice").await;
    for _ in 0..20 {
        let response = app
            .http
            .get(app.url(&format!(
                "/authorize?{}",
                authorize_query(&client, &pkce(), &[])
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303);
        assert!(response.headers().get("set-cookie").is_some());
    }
    assert_eq!(count_rows(&app, backend, "browser_sessions").await, 0);
    assert_eq!(
        count_rows(&app, backend, "authorization_requests").await,
        20
    );

    // A real browser: anonymous until it signs in, then one session.
    let browser = app.browser();
    let pkce = pkce();
    let back = browser
        .sign_in(&authorize_query(&client, &pkce, &[]), "alice")
        .await;
    assert!(query_param(&back, "code").is_some(), "{back}");
    assert_eq!(count_rows(&app, backend, "browser_sessions").await, 1);
    // Signed in, the next request finishes at once with a code.
    let again = browser
        .authorize(&authorize_query(&client, &crate::helpers::pkce(), &[]))
        .await;
    assert_eq!(again.status(), 303);
    assert!(query_param(&location(&again), "code").is_some());
    assert_eq!(count_rows(&app, backend, "browser_sessions").await, 1);
}

/// Replaying `/authorize` with one cookie keeps at most
/// `MAX_PENDING_PER_BROWSER` pending requests: each new one evicts the
/// oldest, which then answers "expired"; the newest still signs in.
async fn one_browser_holds_a_bounded_number_of_pending_requests(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(false, &[]).await;
    app.user("alice").await;
    let browser = app.browser();
    let mut logins = Vec::new();
    for _ in 0..(MAX_PENDING_PER_BROWSER + 14) {
        let response = browser
            .authorize(&authorize_query(&client, &pkce(), &[]))
            .await;
        assert_eq!(response.status(), 303);
        logins.push(location(&response));
    }
    assert_eq!(
        count_rows(&app, backend, "authorization_requests").await,
        i64::from(MAX_PENDING_PER_BROWSER)
    );
    let oldest = browser.get(&logins[0]).await;
    assert_eq!(oldest.status(), 400, "evicted");
    assert!(oldest.text().await.unwrap().contains("expired"));
    let newest = browser
        .log_in(logins.last().unwrap(), "alice", crate::helpers::PASSWORD)
        .await;
    assert_eq!(newest.status(), 303, "the newest signs in");
}

/// A pending request stores the validated request, whose every field is
/// bounded (`state` 2048 bytes, `nonce` 512, `login_hint` 64 characters,
/// the challenge 128, scopes the client's own): with every field at its
/// limit it stays under 4 KiB. Longer values are refused or dropped
/// (tests/api/input_limits.rs).
async fn a_pending_request_stores_a_bounded_amount(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app
        .web_client(false, &["orders:read", "orders:write"])
        .await;
    let state = "s".repeat(authd::oauth::authorize::MAX_STATE_LEN);
    let nonce = "n".repeat(authd::oauth::authorize::MAX_NONCE_LEN);
    let hint = "h".repeat(authd::oauth::authorize::MAX_LOGIN_HINT_CHARS);
    let challenge = "c".repeat(128);
    let response = app
        .browser()
        .authorize(&authorize_query(
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
        ))
        .await;
    assert_eq!(response.status(), 303);
    assert!(location(&response).starts_with("/login?request="));
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
    a_pending_request_stores_a_bounded_amount,
    a_browser_gets_a_session_row_only_when_it_signs_in,
    one_browser_holds_a_bounded_number_of_pending_requests,
);
