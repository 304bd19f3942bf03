//! Sign-in state stays bounded (security review finding 3): a browser that
//! has not signed in stores nothing (its pending request travels sealed to
//! it, whatever cookie it sends), a signed-in session holds at most
//! `MAX_PENDING_PER_SESSION` pending requests (the oldest is evicted), and
//! what a pending request stores is bounded.
use authd::signin::pending::MAX_PENDING_PER_SESSION;

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
    // Finished, the request is gone; the record that its sealed form was
    // used stays until it expires.
    assert_eq!(count_rows(&app, backend, "authorization_requests").await, 0);
    assert_eq!(count_rows(&app, backend, "sealed_requests").await, 1);
}

/// The login page of a sealed request and its form's fields.
async fn login_form(browser: &Browser, login: &str) -> (String, String) {
    let html = browser.get(login).await.text().await.unwrap();
    let csrf = form_value(&html, "csrf").unwrap();
    let request = form_value(&html, "request").unwrap();
    assert!(request.starts_with("s."), "{request}");
    (csrf, request)
}

/// `POST /login` of `browser` with the given form fields.
async fn post_login(
    app: &TestApp,
    browser: &Browser,
    csrf: &str,
    request: &str,
    username: &str,
) -> (u16, String) {
    let response = browser
        .http
        .post(app.url("/login"))
        .form(&[
            ("csrf", csrf),
            ("request", request),
            ("username", username),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    let next = response
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (response.status().as_u16(), next)
}

/// A sealed request is its browser's own and is finished once: another
/// browser gets the expired page; a login form posted again after it
/// finished (a double click, the back button, or another user's password
/// on the same form) gets the expired page, not a second code.
async fn a_sealed_request_is_finished_once_by_its_browser(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    // Pre-consented: the login alone finishes the request with a code.
    let client = app
        .web_client_with(authd::clients::registration::NewClient {
            name: "First party".into(),
            redirect_uris: vec!["https://app.example/cb".into()],
            skip_consent: true,
            ..Default::default()
        })
        .await;
    app.user("alice").await;
    app.user("bob").await;
    let browser = app.browser();
    let login = location(
        &browser
            .authorize(&authorize_query(&client, &pkce(), &[]))
            .await,
    );
    let (csrf, request) = login_form(&browser, &login).await;

    // Another browser (another cookie) cannot use it.
    let stranger = app.browser();
    let page = stranger.get(&login).await;
    assert_eq!(page.status(), 400);
    assert!(page.text().await.unwrap().contains("expired"));

    // The form of the anonymous browser, kept from before its login (the
    // old cookie with it), as a replay would send it.
    let replay = app.browser();
    let cookie = browser_cookie(&browser, &app);
    let (status, back) = post_login(&app, &browser, &csrf, &request, "alice").await;
    assert_eq!(status, 303);
    assert!(query_param(&back, "code").is_some(), "{back}");
    for user in ["alice", "bob"] {
        let response = replay
            .http
            .post(app.url("/login"))
            .header("cookie", format!("authd_session={cookie}"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("request", request.as_str()),
                ("username", user),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{user}: no second code");
        assert!(response.text().await.unwrap().contains("expired"));
    }
}

/// The session cookie `browser` holds for `app`.
fn browser_cookie(browser: &Browser, app: &TestApp) -> String {
    use reqwest::cookie::CookieStore;
    let jar = browser.jar();
    let header = jar
        .cookies(&app.url("/").parse().unwrap())
        .expect("a cookie");
    header
        .to_str()
        .unwrap()
        .split("; ")
        .find_map(|pair| pair.strip_prefix("authd_session="))
        .expect("the session cookie")
        .to_owned()
}

/// Two logins from one anonymous cookie (alice's browser, and someone who
/// copied its cookie before she signed in) share only the sealed requests
/// made with that cookie: a request alice starts in her session later is
/// hers alone.
async fn a_copied_anonymous_cookie_shares_no_later_request(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(false, &[]).await;
    app.user("alice").await;
    app.user("bob").await;
    let alice = app.browser();
    let login = location(
        &alice
            .authorize(&authorize_query(&client, &pkce(), &[]))
            .await,
    );
    let copied = browser_cookie(&alice, &app);
    let consent = location(&alice.log_in(&login, "alice", PASSWORD).await);
    location(&alice.decide(&consent, "allow").await);

    // Bob, with the copied cookie, signs in with a request of his own.
    let bob = app.browser();
    let with_copy = |path: String| {
        bob.http
            .get(app.url(&path))
            .header("cookie", format!("authd_session={copied}"))
            .send()
    };
    let response = with_copy(format!(
        "/authorize?{}",
        authorize_query(&client, &pkce(), &[])
    ))
    .await
    .unwrap();
    let his_login = location(&response);
    let html = with_copy(his_login).await.unwrap().text().await.unwrap();
    let csrf = form_value(&html, "csrf").unwrap();
    let request = form_value(&html, "request").unwrap();
    let response = bob
        .http
        .post(app.url("/login"))
        .header("cookie", format!("authd_session={copied}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("request", request.as_str()),
            ("username", "bob"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let bobs_cookie = response
        .cookies()
        .find(|c| c.name() == "authd_session")
        .expect("a session cookie")
        .value()
        .to_owned();

    // Alice, signed in, starts a request that asks for consent again.
    let hers = location(
        &alice
            .authorize(&authorize_query(&client, &pkce(), &[("prompt", "consent")]))
            .await,
    );
    assert!(hers.starts_with("/consent?request="), "{hers}");
    let peek = bob
        .http
        .get(app.url(&hers))
        .header("cookie", format!("authd_session={bobs_cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(peek.status(), 400, "not bob's");
    assert_eq!(alice.get(&hers).await.status(), 200, "alice's");
}

/// A browser with two sign-ins started in two tabs before it signs in:
/// after the login in the first, the second continues (its request is
/// bound to the anonymous id the browser had, which the session
/// remembers), and so does a login form posted twice at once.
async fn other_tabs_and_double_posts_continue(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(false, &[]).await;
    app.user("alice").await;
    let browser = app.browser();
    let first = location(
        &browser
            .authorize(&authorize_query(&client, &pkce(), &[]))
            .await,
    );
    let second = location(
        &browser
            .authorize(&authorize_query(&client, &pkce(), &[]))
            .await,
    );
    let consent = location(&browser.log_in(&first, "alice", PASSWORD).await);
    assert!(consent.starts_with("/consent?request="), "{consent}");
    let back = location(&browser.decide(&consent, "allow").await);
    assert!(query_param(&back, "code").is_some());
    // The second tab, now signed in: its login page and form still work
    // (and the consent given in the first covers it: a code at once).
    let back = location(&browser.log_in(&second, "alice", PASSWORD).await);
    assert!(query_param(&back, "code").is_some(), "{back}");

    // A form posted twice at once (by bob, who has not consented yet):
    // both land on the consent page of the one request, in whichever
    // session the browser keeps; it is finished once.
    app.user("bob").await;
    let fresh = app.browser();
    let login = location(
        &fresh
            .authorize(&authorize_query(&client, &pkce(), &[]))
            .await,
    );
    let (csrf, request) = login_form(&fresh, &login).await;
    let (a, b) = tokio::join!(
        post_login(&app, &fresh, &csrf, &request, "bob"),
        post_login(&app, &fresh, &csrf, &request, "bob"),
    );
    for (status, next) in [&a, &b] {
        assert_eq!(*status, 303, "{a:?} {b:?}");
        assert!(next.starts_with("/consent?request="), "{a:?} {b:?}");
    }
    assert_eq!(a.1, b.1, "one request");
    let back = location(&fresh.decide(&a.1, "allow").await);
    assert!(query_param(&back, "code").is_some(), "{back}");
    let late = fresh.get(&a.1).await;
    assert_eq!(late.status(), 400, "finished once");
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
/// characters, the challenge 128, scopes the client's own; `state` and
/// `nonce` printable ASCII), so with every field at its limit, and quotes
/// that double in JSON, the sealed reference stays under 12 KB (in the
/// login form, never a URL) and the stored row under 6 KiB. Longer values
/// are refused or dropped (tests/api/input_limits.rs).
async fn a_pending_request_carries_a_bounded_amount(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app
        .web_client(false, &["orders:read", "orders:write"])
        .await;
    app.user("alice").await;
    // Quotes and backslashes double in the sealed JSON: the worst case.
    let state = "\"\\".repeat(authd::oauth::authorize::MAX_STATE_LEN / 2);
    let nonce = "\"".repeat(authd::oauth::authorize::MAX_NONCE_LEN);
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
    // Too long for a Location header behind a proxy (nginx's response
    // header buffer is 4 KiB): the login page comes at once, the sealed
    // request only in its form.
    let page = browser.authorize(&query).await;
    assert_eq!(page.status(), 200);
    assert!(page.headers().get("location").is_none());
    let html = page.text().await.unwrap();
    let csrf = form_value(&html, "csrf").unwrap();
    let request = form_value(&html, "request").unwrap();
    assert!(request.starts_with("s."));
    assert!(
        request.len() > 2048 + 512 + 64 + 128,
        "every field: {}",
        request.len()
    );
    assert!(request.len() < 12_000, "{} bytes", request.len());
    // The largest honest login form (a 1024-character password of 4-byte
    // characters) is read, not refused as too large.
    let longest = "\u{1F600}".repeat(1024);
    let form = |password: &str| {
        browser.http.post(app.url("/login")).form(&[
            ("csrf", csrf.as_str()),
            ("request", request.as_str()),
            ("username", "alice"),
            ("password", password),
        ])
    };
    let refused = form(&longest).send().await.unwrap();
    assert_eq!(refused.status(), 200, "a wrong password, not 413");
    // Signed in, the consent step stores it.
    let consent = location(&form(PASSWORD).send().await.unwrap());
    assert!(consent.starts_with("/consent?request="), "{consent}");
    let size = crate::helpers::query_i64(
        &app,
        backend,
        "SELECT CAST(MAX(LENGTH(request)) AS BIGINT) FROM authorization_requests",
    )
    .await;
    assert!(size > 2048 + 512 + 64 + 128, "every field stored: {size}");
    assert!(size < 6 * 1024, "{size} bytes");
}

on_both_backends!(
    a_browser_stores_nothing_until_it_signs_in,
    a_sealed_request_is_finished_once_by_its_browser,
    other_tabs_and_double_posts_continue,
    a_copied_anonymous_cookie_shares_no_later_request,
    one_session_holds_a_bounded_number_of_pending_requests,
    a_pending_request_carries_a_bounded_amount,
);
