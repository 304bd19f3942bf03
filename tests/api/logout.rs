//! `end_session_endpoint` `/logout` (OpenID Connect RP-Initiated Logout
//! 1.0): sign-out with an `id_token_hint`, with the user's confirmation,
//! the checks on `post_logout_redirect_uri`, and the session really ending.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::authorization_code::jwt_part;
use crate::helpers::{
    Backend, Browser, PASSWORD, TestApp, WebClient, authorize_query, exchange_code, form_value,
    location, on_both_backends, pkce, query_param, spawn_app,
};

const BYE: &str = "https://app.example/bye";

/// A session cookie set by `response`, as `name=value`.
fn session_cookie_set(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|value| {
            let pair = value.split(';').next()?;
            let (name, value) = pair.split_once('=')?;
            (name.trim().ends_with("authd_session") && !value.is_empty())
                .then(|| format!("{}={value}", name.trim()))
        })
}

/// Whether `response` removes the session cookie: empty, with `Max-Age=0`
/// or an `Expires` in the past (RFC 6265 §3.1).
fn clears_session_cookie(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| {
            let mut attributes = value.split(';').map(str::trim);
            let Some((name, value)) = attributes.next().and_then(|p| p.split_once('=')) else {
                return false;
            };
            name.ends_with("authd_session")
                && value.is_empty()
                && attributes.any(|attribute| {
                    let lower = attribute.to_ascii_lowercase();
                    lower == "max-age=0"
                        || (lower.starts_with("expires=")
                            && chrono::DateTime::parse_from_rfc2822(&attribute["expires=".len()..])
                                .is_ok_and(|at| at < chrono::Utc::now()))
                })
        })
}

/// A signed-in browser: signs `username` in at `client` in a fresh
/// browser, exchanges the code, and returns the browser, the token
/// response and the signed-in session cookie (`name=value`).
async fn signed_in(app: &TestApp, client: &WebClient, username: &str) -> (Browser, Value, String) {
    let browser = app.browser();
    let pkce = pkce();
    let mut cookie = None;
    let mut response = browser
        .authorize(&authorize_query(client, &pkce, &[]))
        .await;
    let code = loop {
        assert_eq!(response.status(), 303, "every step answers 303");
        cookie = session_cookie_set(&response).or(cookie);
        let next = location(&response);
        response = if next.starts_with("/login") {
            browser.log_in(&next, username, PASSWORD).await
        } else if next.starts_with("/consent") {
            browser.decide(&next, "allow").await
        } else {
            break query_param(&next, "code").expect("a code");
        };
    };
    let tokens = exchange_code(app, client, &code, &pkce.verifier).await;
    assert_eq!(tokens.status(), 200);
    (
        browser,
        tokens.json().await.unwrap(),
        cookie.expect("a session cookie"),
    )
}

/// `/authorize?prompt=none` for `client` (OIDC Core §3.1.2.1): `None` when
/// a code comes back (still signed in), else the `error`.
async fn prompt_none(response: reqwest::Response) -> Option<String> {
    assert_eq!(response.status(), 303);
    let back = location(&response);
    match query_param(&back, "error") {
        Some(error) => Some(error),
        None => {
            assert!(query_param(&back, "code").is_some(), "{back}");
            None
        }
    }
}

async fn prompt_none_in(browser: &Browser, client: &WebClient) -> Option<String> {
    let query = authorize_query(client, &pkce(), &[("prompt", "none")]);
    prompt_none(browser.authorize(&query).await).await
}

/// The same with only `cookie` (`name=value`), bypassing the browser's jar:
/// whether the server still knows that session.
async fn prompt_none_with_cookie(
    app: &TestApp,
    client: &WebClient,
    cookie: &str,
) -> Option<String> {
    let query = authorize_query(client, &pkce(), &[("prompt", "none")]);
    let response = app
        .http
        .get(app.url(&format!("/authorize?{query}")))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    prompt_none(response).await
}

/// `/logout?params`.
fn logout_url(params: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        query.append_pair(name, value);
    }
    format!("/logout?{}", query.finish())
}

/// Asserts an HTML page with `status`, and returns it.
async fn page(response: reqwest::Response, status: u16, case: &str) -> String {
    assert_eq!(response.status().as_u16(), status, "{case}");
    assert!(
        response.headers().get("location").is_none(),
        "{case}: never a redirect"
    );
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{case}"
    );
    response.text().await.unwrap()
}

/// Decodes the character references minijinja's HTML escaping produces.
fn unescape_html(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find('&') {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find(';').expect("a terminated character reference");
        let decoded = match &rest[1..end] {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            name => name
                .strip_prefix("#x")
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        out.push(decoded.expect("a known character reference"));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn is_signed_out_page(html: &str) -> bool {
    html.contains("You are signed out")
}

fn is_confirmation_page(html: &str) -> bool {
    html.contains("Sign out?") && form_value(html, "csrf").is_some()
}

/// RP-Initiated Logout §2–§3: a valid `id_token_hint` of the signed-in user
/// ends the session at once and sends the browser to the registered
/// `post_logout_redirect_uri` with `state`.
async fn logout_with_an_id_token_hint_ends_the_session_and_returns_to_the_client(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(false, &[]).await;
    app.user("alice").await;
    let (browser, tokens, cookie) = signed_in(&app, &client, "alice").await;
    assert_eq!(prompt_none_in(&browser, &client).await, None, "signed in");

    let id_token = tokens["id_token"].as_str().unwrap();
    let response = browser
        .get(&logout_url(&[
            ("id_token_hint", id_token),
            ("post_logout_redirect_uri", BYE),
            ("state", "xyz"),
        ]))
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "https://app.example/bye?state=xyz");
    assert!(
        clears_session_cookie(&response),
        "{:?}",
        response.headers().get_all("set-cookie")
    );
    assert_eq!(
        prompt_none_in(&browser, &client).await.as_deref(),
        Some("login_required")
    );
    // The server forgot the session too: the old cookie is worth nothing.
    assert_eq!(
        prompt_none_with_cookie(&app, &client, &cookie)
            .await
            .as_deref(),
        Some("login_required")
    );
}

/// RP-Initiated Logout §2: without `post_logout_redirect_uri` the OP shows
/// its own page once signed out.
async fn logout_with_only_an_id_token_hint_shows_the_signed_out_page(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(true, &[]).await;
    app.user("alice").await;
    let (browser, tokens, cookie) = signed_in(&app, &client, "alice").await;
    let id_token = tokens["id_token"].as_str().unwrap();
    let response = browser
        .get(&logout_url(&[("id_token_hint", id_token)]))
        .await;
    assert!(clears_session_cookie(&response));
    assert!(is_signed_out_page(&page(response, 200, "hint only").await));
    assert_eq!(
        prompt_none_with_cookie(&app, &client, &cookie)
            .await
            .as_deref(),
        Some("login_required")
    );
}

/// RP-Initiated Logout §2: "the OP MUST ask the End-User whether to log out"
/// when the request is not vouched for by an `id_token_hint`; the answer is
/// a CSRF-protected form, so a link or a cross-site form cannot sign anyone
/// out.
async fn logout_without_a_hint_asks_the_user_to_confirm(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(false, &[]).await;
    app.user("alice").await;
    let (browser, _, cookie) = signed_in(&app, &client, "alice").await;

    let html = page(browser.get("/logout").await, 200, "GET").await;
    assert!(is_confirmation_page(&html), "{html}");
    let csrf = form_value(&html, "csrf").unwrap();
    assert_eq!(prompt_none_in(&browser, &client).await, None, "after GET");

    for (case, form) in [
        ("no csrf", vec![]),
        ("wrong csrf", vec![("csrf", "AAAA")]),
        ("empty csrf", vec![("csrf", "")]),
    ] {
        let response = browser.post_form("/logout", &form).await;
        assert!(!clears_session_cookie(&response), "{case}");
        let html = page(response, 200, case).await;
        assert!(is_confirmation_page(&html), "{case}: {html}");
        assert_eq!(prompt_none_in(&browser, &client).await, None, "{case}");
    }

    let response = browser.post_form("/logout", &[("csrf", &csrf)]).await;
    assert!(clears_session_cookie(&response));
    assert!(is_signed_out_page(&page(response, 200, "confirmed").await));
    assert_eq!(
        prompt_none_in(&browser, &client).await.as_deref(),
        Some("login_required")
    );
    assert_eq!(
        prompt_none_with_cookie(&app, &client, &cookie)
            .await
            .as_deref(),
        Some("login_required")
    );
}

/// RP-Initiated Logout §3: with `client_id` and a registered
/// `post_logout_redirect_uri`, the confirmed form returns to the client
/// with `state`.
async fn confirmed_logout_returns_to_the_registered_uri_with_state(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(false, &[]).await;
    app.user("alice").await;
    let (browser, _, cookie) = signed_in(&app, &client, "alice").await;
    let html = page(
        browser
            .get(&logout_url(&[
                ("client_id", &client.id),
                ("post_logout_redirect_uri", BYE),
                ("state", "xyz"),
            ]))
            .await,
        200,
        "GET",
    )
    .await;
    assert!(is_confirmation_page(&html), "{html}");
    assert_eq!(prompt_none_in(&browser, &client).await, None, "after GET");
    // The form as the page carries it, decoded as a browser would.
    let fields: Vec<(&str, String)> = ["csrf", "client_id", "post_logout_redirect_uri", "state"]
        .into_iter()
        .map(|name| (name, unescape_html(&form_value(&html, name).expect(name))))
        .collect();
    assert_eq!(fields[1].1, client.id);
    assert_eq!(fields[2].1, BYE);
    assert_eq!(fields[3].1, "xyz");
    let form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let response = browser.post_form("/logout", &form).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "https://app.example/bye?state=xyz");
    assert!(clears_session_cookie(&response));
    assert_eq!(
        prompt_none_with_cookie(&app, &client, &cookie)
            .await
            .as_deref(),
        Some("login_required")
    );
}

/// RP-Initiated Logout §2: a hint for another user than the one signed in
/// does not vouch for this sign-out; the user is asked.
async fn hint_of_another_user_asks_the_user_to_confirm(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(false, &[]).await;
    app.user("alice").await;
    app.user("bob").await;
    let (browser, _, _) = signed_in(&app, &client, "alice").await;
    let (_, bob_tokens, _) = signed_in(&app, &client, "bob").await;
    let response = browser
        .get(&logout_url(&[(
            "id_token_hint",
            bob_tokens["id_token"].as_str().unwrap(),
        )]))
        .await;
    assert!(!clears_session_cookie(&response));
    let html = page(response, 200, "bob's hint").await;
    assert!(is_confirmation_page(&html), "{html}");
    assert_eq!(prompt_none_in(&browser, &client).await, None);
}

/// RP-Initiated Logout §2–§3: a `post_logout_redirect_uri` must be
/// registered for a client the request identifies (by `client_id` or a
/// valid `id_token_hint`, which must agree); otherwise an error page, never
/// a redirect, and the session is left alone.
async fn refused_logout_requests_show_the_error_page(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(false, &[]).await;
    let other = app.web_client(false, &[]).await;
    app.user("alice").await;
    let (browser, tokens, cookie) = signed_in(&app, &client, "alice").await;
    let hint = tokens["id_token"].as_str().unwrap();
    let tampered = {
        let mut payload = jwt_part(hint, 1);
        payload["aud"] = other.id.clone().into();
        let parts: Vec<&str> = hint.split('.').collect();
        format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(payload.to_string()),
            parts[2]
        )
    };
    let access_token = tokens["access_token"].as_str().unwrap();
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "unregistered post_logout_redirect_uri with a hint",
            vec![
                ("id_token_hint", hint),
                ("post_logout_redirect_uri", "https://evil.example/bye"),
            ],
        ),
        (
            "unregistered post_logout_redirect_uri with client_id",
            vec![
                ("client_id", &client.id),
                ("post_logout_redirect_uri", "https://app.example/bye/other"),
            ],
        ),
        (
            "post_logout_redirect_uri without client_id or hint",
            vec![("post_logout_redirect_uri", BYE), ("state", "xyz")],
        ),
        (
            "tampered id_token_hint",
            vec![
                ("id_token_hint", &tampered),
                ("post_logout_redirect_uri", BYE),
            ],
        ),
        (
            "tampered id_token_hint alone",
            vec![("id_token_hint", &tampered)],
        ),
        (
            "access token as id_token_hint",
            vec![("id_token_hint", access_token)],
        ),
        ("garbage id_token_hint", vec![("id_token_hint", "x.y.z")]),
        (
            "client_id differs from the hint's aud",
            vec![
                ("id_token_hint", hint),
                ("client_id", &other.id),
                ("post_logout_redirect_uri", BYE),
            ],
        ),
        (
            "unknown client_id",
            vec![
                ("client_id", "no-such-client"),
                ("post_logout_redirect_uri", BYE),
            ],
        ),
    ];
    for (case, params) in cases {
        let response = browser.get(&logout_url(&params)).await;
        assert!(!clears_session_cookie(&response), "{case}");
        let html = page(response, 400, case).await;
        assert!(html.contains("Sign-out cannot continue"), "{case}: {html}");
        // The same refusal for the form's POST.
        let response = browser.post_form("/logout", &params).await;
        assert!(!clears_session_cookie(&response), "{case} (POST)");
        page(response, 400, &format!("{case} (POST)")).await;
    }
    assert_eq!(
        prompt_none_in(&browser, &client).await,
        None,
        "still signed in"
    );
    assert_eq!(prompt_none_with_cookie(&app, &client, &cookie).await, None);
}

/// RP-Initiated Logout §2: nobody signed in, nothing to confirm: the
/// signed-out page, or straight back to a valid post-logout URI.
async fn logout_without_a_session_is_already_done(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(false, &[]).await;
    app.user("alice").await;
    let (_, tokens, _) = signed_in(&app, &client, "alice").await;
    let stranger = app.browser();

    let html = page(stranger.get("/logout").await, 200, "bare").await;
    assert!(is_signed_out_page(&html), "{html}");

    for (case, params) in [
        (
            "client_id",
            vec![
                ("client_id", client.id.as_str()),
                ("post_logout_redirect_uri", BYE),
                ("state", "xyz"),
            ],
        ),
        (
            "id_token_hint",
            vec![
                ("id_token_hint", tokens["id_token"].as_str().unwrap()),
                ("post_logout_redirect_uri", BYE),
                ("state", "xyz"),
            ],
        ),
    ] {
        let response = stranger.get(&logout_url(&params)).await;
        assert_eq!(response.status(), 303, "{case}");
        assert_eq!(
            location(&response),
            "https://app.example/bye?state=xyz",
            "{case}"
        );
    }
    let response = stranger
        .get(&logout_url(&[
            ("client_id", client.id.as_str()),
            ("post_logout_redirect_uri", BYE),
        ]))
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), BYE, "no state, no query");
}

on_both_backends!(
    logout_with_an_id_token_hint_ends_the_session_and_returns_to_the_client,
    logout_with_only_an_id_token_hint_shows_the_signed_out_page,
    logout_without_a_hint_asks_the_user_to_confirm,
    confirmed_logout_returns_to_the_registered_uri_with_state,
    hint_of_another_user_asks_the_user_to_confirm,
    refused_logout_requests_show_the_error_page,
    logout_without_a_session_is_already_done,
);
