//! Issue 7 items 4 and 5: input limits and the shape of every error.
//!
//! Bodies are bounded per endpoint (`src/http/form.rs` and the handlers:
//! 16 KiB at `/token`, `/revoke`, `/introspect`, `/userinfo`, `/authorize`
//! and `/logout`, 24 KiB for the login form, 8 KiB for the consent form):
//! 413 with a JSON
//! error at the API endpoints, a 413 error page at the pages; a body
//! must arrive within 10 s (else 408). Long
//! values are client errors. The request head is bounded by actix-http (96
//! headers, 128 KiB: a 40 KB header passes). A client that does not finish
//! its request head within 5 s gets 408, an idle keep-alive connection is
//! closed after 15 s (`src/startup/server.rs` `serve`). A repeated parameter is
//! `invalid_request` (RFC 6749 §3.1, §3.2); a wrong method is 405 with
//! `Allow` (RFC 9110 §15.5.6). Every JSON error is exactly `{error,
//! error_description, request_id}` (RFC 6749 §5.2 plus the request id,
//! which `X-Request-Id` repeats), and no body reveals internals.
use std::time::{Duration, Instant};

use authd::clients::registration::NewClient;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::authorization_code::code_for;
use crate::helpers::{
    Backend, TestApp, authorize_query, location, on_both_backends, pkce, query_param, spawn_app,
};

/// 32 KB: over every body limit.
const OVERSIZED: usize = 32 * 1024;
/// 10 KB: a long value that still fits in every body limit.
const LONG: usize = 10 * 1024;

/// Text no response body may contain: panics, database and source-file
/// details, Rust `Debug` output.
const INTERNALS: [&str; 5] = ["panicked", "sqlx", "src/", "thread", "Error {"];

fn assert_no_internals(text: &str, case: &str) {
    for needle in INTERNALS {
        assert!(
            !text.contains(needle),
            "{case}: the body reveals internals ({needle:?}): {text}"
        );
    }
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response
        .headers()
        .get(name)
        .map(|value| value.to_str().expect("an ASCII header"))
}

fn request_id_of(response: &reqwest::Response, case: &str) -> String {
    let id = header(response, "x-request-id")
        .unwrap_or_else(|| panic!("{case}: an X-Request-Id header"))
        .to_owned();
    assert!(!id.is_empty(), "{case}: an X-Request-Id value");
    id
}

/// Checks a JSON error (RFC 6749 §5.2, issue 7 item 5): `status`, the
/// `error` code, exactly the keys `error`, `error_description` and
/// `request_id`, the request id equal to `X-Request-Id`, `no-store`, and
/// nothing internal in the body. Returns the body.
fn check_json_error(
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    expected_status: u16,
    code: &str,
    case: &str,
) -> Value {
    let text = String::from_utf8_lossy(body);
    assert_eq!(status, expected_status, "{case}: status ({text})");
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(
        get("content-type"),
        Some("application/json"),
        "{case}: a JSON error"
    );
    assert_eq!(get("cache-control"), Some("no-store"), "{case}");
    assert_no_internals(&text, case);
    let json: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{case}: the body is JSON ({e}): {text}"));
    let mut keys: Vec<&str> = json
        .as_object()
        .unwrap_or_else(|| panic!("{case}: a JSON object: {text}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["error", "error_description", "request_id"],
        "{case}: {text}"
    );
    assert_eq!(json["error"], code, "{case}: {text}");
    assert!(
        json["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{case}: a description: {text}"
    );
    let request_id = get("x-request-id").unwrap_or_else(|| panic!("{case}: X-Request-Id"));
    assert_eq!(json["request_id"], request_id, "{case}: same request id");
    json
}

fn headers_of(response: &reqwest::Response) -> Vec<(String, String)> {
    response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// [`check_json_error`] on a reqwest response.
async fn json_error(
    response: reqwest::Response,
    expected_status: u16,
    code: &str,
    case: &str,
) -> Value {
    let status = response.status().as_u16();
    let headers = headers_of(&response);
    let body = response.bytes().await.unwrap();
    check_json_error(status, &headers, &body, expected_status, code, case)
}

/// An HTML error page: `status`, the request id of `X-Request-Id` shown on
/// the page, nothing internal. Returns the page.
async fn error_page(response: reqwest::Response, status: u16, case: &str) -> String {
    let request_id = request_id_of(&response, case);
    let actual = response.status().as_u16();
    assert_eq!(
        header(&response, "content-type"),
        Some("text/html; charset=utf-8"),
        "{case}: an HTML page"
    );
    let html = response.text().await.unwrap();
    assert_eq!(actual, status, "{case}: status ({html})");
    assert!(
        html.contains(&request_id),
        "{case}: the page names the request id"
    );
    assert_no_internals(&html, case);
    html
}

/// `POST path` with a form body given as encoded text.
async fn post_encoded(app: &TestApp, path: &str, body: String) -> reqwest::Response {
    app.http
        .post(app.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// A form of `size` bytes: `prefix` then a padding parameter.
fn padded_form(prefix: &str, size: usize) -> String {
    let mut body = format!("{prefix}&pad=");
    body.push_str(&"a".repeat(size - body.len()));
    body
}

/// What the server sent on a raw connection.
struct RawAnswer {
    /// The status of the first response, if one arrived.
    status: Option<u16>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Whether the server closed the connection (EOF or reset).
    closed: bool,
    /// How long the server took to answer or close.
    elapsed: Duration,
}

/// Parses the first response out of `bytes` (a body of `Content-Length`).
fn parse_raw(bytes: &[u8]) -> (Option<u16>, Vec<(String, String)>, Vec<u8>) {
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return (None, Vec::new(), Vec::new());
    };
    let head = String::from_utf8_lossy(&bytes[..end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok());
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let body = bytes[end + 4..]
        .iter()
        .take(length)
        .copied()
        .collect::<Vec<u8>>();
    (status, headers, body)
}

/// Writes `request` on a new connection (write errors are ignored: the
/// server may refuse before reading everything), then reads until the
/// server closes, a whole response has arrived and `until_closed` is
/// false, or `wait` has passed.
async fn raw_exchange(port: u16, request: &[u8], wait: Duration, until_closed: bool) -> RawAnswer {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let started = Instant::now();
    let _ = stream.write_all(request).await;
    let mut received = Vec::new();
    let mut closed = false;
    let mut buffer = [0u8; 16 * 1024];
    let deadline = started + wait;
    loop {
        let (status, headers, body) = parse_raw(&received);
        if !until_closed && status.is_some() {
            let length = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .and_then(|(_, v)| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                break;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_) => break,
        }
    }
    let elapsed = started.elapsed();
    let (status, headers, body) = parse_raw(&received);
    RawAnswer {
        status,
        headers,
        body,
        closed,
        elapsed,
    }
}

/// A chunked (no `Content-Length`) form POST of `size` bytes to `path`.
fn chunked_post(path: &str, size: usize) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    let body = padded_form("grant_type=client_credentials", size);
    for chunk in body.as_bytes().chunks(4096) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    request
}

// ---------------------------------------------------------------------------
// 1. Body limits
// ---------------------------------------------------------------------------

/// The API endpoints refuse an oversized form with 413 (RFC 9110 §15.5.14)
/// and an `invalid_request` JSON error, whether the size is declared
/// (`Content-Length`) or found while reading a chunked body.
async fn oversized_bodies_are_refused_with_413(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (id, secret) = app.machine_client(&["read"]).await;
    for path in ["/token", "/revoke", "/introspect"] {
        let response = app
            .http
            .post(app.url(path))
            .basic_auth(&id, Some(&secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(padded_form(
                "grant_type=client_credentials&token=x",
                OVERSIZED,
            ))
            .send()
            .await
            .unwrap();
        let body = json_error(response, 413, "invalid_request", path).await;
        assert_eq!(
            body["error_description"], "request body is larger than 16384 bytes",
            "{path}"
        );
        // Exactly the limit is read (and then judged on its content).
        let response = app
            .http
            .post(app.url(path))
            .basic_auth(&id, Some(&secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(padded_form(
                "grant_type=client_credentials&token=x",
                16 * 1024,
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}: 16 KiB exactly is accepted");

        // Chunked: no Content-Length, the limit is found while reading.
        let answer = raw_exchange(
            app.port,
            &chunked_post(path, OVERSIZED),
            Duration::from_secs(10),
            false,
        )
        .await;
        let case = format!("chunked {path}");
        let status = answer.status.unwrap_or_else(|| panic!("{case}: an answer"));
        let body = check_json_error(
            status,
            &answer.headers,
            &answer.body,
            413,
            "invalid_request",
            &case,
        );
        assert_eq!(
            body["error_description"], "request body is larger than 16384 bytes",
            "{case}"
        );
    }

    // `/userinfo` (RFC 6750 §2.2 form body) reads with the same limit and
    // answers 413 like the others: the body, not the token, is at fault,
    // so no Bearer challenge.
    let response = post_encoded(&app, "/userinfo", padded_form("access_token=x", OVERSIZED)).await;
    let challenge = header(&response, "www-authenticate").map(str::to_owned);
    let body = json_error(response, 413, "invalid_request", "/userinfo").await;
    assert_eq!(
        body["error_description"],
        "request body is larger than 16384 bytes"
    );
    assert_eq!(challenge, None, "/userinfo: no challenge for a 413");

    // The pages (login, consent, and the POST forms of /authorize and
    // /logout) answer an oversized form with their error page, 413.
    for (path, limit) in [
        ("/login", 24576),
        ("/consent", 8192),
        ("/authorize", 16384),
        ("/logout", 16384),
    ] {
        let response = post_encoded(&app, path, padded_form("csrf=x", OVERSIZED)).await;
        let html = error_page(response, 413, path).await;
        assert!(
            html.contains(&format!("request body is larger than {limit} bytes")),
            "{path}: the page says why: {html}"
        );
        let answer = raw_exchange(
            app.port,
            &chunked_post(path, OVERSIZED),
            Duration::from_secs(10),
            false,
        )
        .await;
        assert_eq!(answer.status, Some(413), "chunked {path}");
        assert!(
            String::from_utf8_lossy(&answer.body)
                .contains(&format!("request body is larger than {limit} bytes")),
            "chunked {path}"
        );
    }
    app.stop().await;
}

// ---------------------------------------------------------------------------
// 2. Long values
// ---------------------------------------------------------------------------

/// Long values in an authorization request are client errors, redirected
/// to the verified redirect URI (RFC 6749 §4.1.2.1) or, for a hint,
/// ignored; never a 5xx.
async fn long_authorization_values_are_client_errors(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(false, &[]).await;
    let pkce = pkce();
    let long = "a".repeat(LONG);
    let browser = app.browser();

    // `state` over 2048 characters (MAX_STATE_LEN): invalid_request, and
    // the state is not echoed (it would make the redirect URL huge).
    let response = browser
        .authorize(&authorize_query(&client, &pkce, &[("state", &long)]))
        .await;
    assert_eq!(response.status(), 303, "long state");
    let back = location(&response);
    assert!(
        back.starts_with(&format!("{}?", client.redirect_uri)),
        "{back}"
    );
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("invalid_request")
    );
    assert_eq!(
        query_param(&back, "error_description").as_deref(),
        Some("state must be 1 to 2048 printable ASCII characters (RFC 6749 A.5)")
    );
    assert_eq!(
        query_param(&back, "state"),
        None,
        "a long state is not echoed"
    );
    assert_eq!(query_param(&back, "iss"), Some(app.issuer.clone()));

    // `scope`: one 10 KB scope token the client may not request.
    let response = browser
        .authorize(&authorize_query(&client, &pkce, &[("scope", &long)]))
        .await;
    assert_eq!(response.status(), 303, "long scope");
    let back = location(&response);
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("invalid_scope")
    );
    assert_eq!(query_param(&back, "state").as_deref(), Some("st4te"));

    // `nonce` over 512 characters.
    let response = browser
        .authorize(&authorize_query(&client, &pkce, &[("nonce", &long)]))
        .await;
    assert_eq!(response.status(), 303, "long nonce");
    let back = location(&response);
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("invalid_request")
    );
    assert_eq!(
        query_param(&back, "error_description").as_deref(),
        Some("nonce must be at most 512 bytes without control characters")
    );
    assert_eq!(query_param(&back, "state").as_deref(), Some("st4te"));

    // `state` outside VSCHAR (RFC 6749 A.5), or control characters in
    // `nonce`: invalid_request; such a state is not echoed either.
    for (name, value) in [
        ("state", "a\u{1}b"),
        ("nonce", "a\nb"),
        ("state", "caf\u{e9}"),
    ] {
        let response = browser
            .authorize(&authorize_query(&client, &pkce, &[(name, value)]))
            .await;
        assert_eq!(response.status(), 303, "{name} {value:?}");
        let back = location(&response);
        assert_eq!(
            query_param(&back, "error").as_deref(),
            Some("invalid_request"),
            "{name} {value:?}"
        );
        let echoed = query_param(&back, "state");
        if name == "state" {
            assert_eq!(echoed, None, "{value:?} is not echoed");
        } else {
            assert_eq!(echoed.as_deref(), Some("st4te"));
        }
    }

    // `login_hint` is only a hint: a long one is dropped, sign-in goes on.
    let response = browser
        .authorize(&authorize_query(&client, &pkce, &[("login_hint", &long)]))
        .await;
    assert_eq!(response.status(), 303, "long login_hint");
    let login = location(&response);
    assert!(login.starts_with("/login"), "{login}");
    let page = browser.get(&login).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(!html.contains(&long[..100]), "the long hint is not shown");

    // An unverified client: the error page, never a redirect.
    let response = browser
        .authorize(&authorize_query(&client, &pkce, &[("client_id", &long)]))
        .await;
    error_page(response, 400, "long client_id at /authorize").await;
    let response = browser
        .authorize(&authorize_query(
            &client,
            &pkce,
            &[("redirect_uri", &format!("https://app.example/{long}"))],
        ))
        .await;
    error_page(response, 400, "long redirect_uri at /authorize").await;
    app.stop().await;
}

/// Long values at the token endpoint get the RFC 6749 §5.2 code for the
/// parameter they are in; a long Basic id is a failed authentication; a
/// long bearer token is `invalid_token` (RFC 6750 §3.1).
async fn long_token_values_are_client_errors(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let long = "a".repeat(LONG);
    let client = app
        .web_client_with(NewClient {
            name: "Refreshing app".into(),
            redirect_uris: vec!["https://app.example/cb".into()],
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            ..Default::default()
        })
        .await;
    let secret = client.secret.clone().expect("a confidential client");
    let token = |form: Vec<(&'static str, String)>| {
        app.http
            .post(app.url("/token"))
            .basic_auth(&client.id, Some(&secret))
            .form(&form)
            .send()
    };

    // A 10 KB code is no code this server issued.
    let response = token(vec![
        ("grant_type", "authorization_code".into()),
        ("code", long.clone()),
        ("redirect_uri", client.redirect_uri.clone()),
        ("code_verifier", pkce().verifier),
    ])
    .await
    .unwrap();
    json_error(response, 400, "invalid_grant", "long code").await;

    // A 10 KB refresh token is no refresh token this server issued.
    let response = token(vec![
        ("grant_type", "refresh_token".into()),
        ("refresh_token", long.clone()),
    ])
    .await
    .unwrap();
    json_error(response, 400, "invalid_grant", "long refresh_token").await;

    // A real code with a 10 KB verifier: RFC 7636 §4.1 allows at most 128
    // characters, so it cannot match (§4.6 → invalid_grant).
    app.user("alice").await;
    let browser = app.browser();
    let pair = pkce();
    let code = code_for(&browser, &client, &pair, "alice", &[]).await;
    let response = token(vec![
        ("grant_type", "authorization_code".into()),
        ("code", code),
        ("redirect_uri", client.redirect_uri.clone()),
        ("code_verifier", long.clone()),
    ])
    .await
    .unwrap();
    let body = json_error(response, 400, "invalid_grant", "long code_verifier").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("code_verifier"),
        "{body}"
    );

    // A 10 KB scope: one token the client may not have, or a malformed list
    // (RFC 6749 §3.3) → invalid_scope.
    let (machine, machine_secret) = app.machine_client(&["read"]).await;
    for (case, scope) in [
        ("long scope token", long.clone()),
        ("long malformed scope", "a  ".repeat(LONG / 3)),
    ] {
        let response = app
            .http
            .post(app.url("/token"))
            .basic_auth(&machine, Some(&machine_secret))
            .form(&[("grant_type", "client_credentials"), ("scope", &scope)])
            .send()
            .await
            .unwrap();
        json_error(response, 400, "invalid_scope", case).await;
    }
    // The same at the refresh grant, which reads the scope before the token.
    let response = token(vec![
        ("grant_type", "refresh_token".into()),
        ("refresh_token", "x".into()),
        ("scope", "a  ".repeat(LONG / 3)),
    ])
    .await
    .unwrap();
    json_error(response, 400, "invalid_scope", "long scope at refresh").await;

    // A 10 KB client id in Basic: unknown client, 401 with the Basic
    // challenge (RFC 6749 §5.2).
    let response = app
        .http
        .post(app.url("/token"))
        .basic_auth(&long, Some("x"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&response, "www-authenticate"),
        Some(r#"Basic realm="authd", charset="UTF-8""#)
    );
    let body = json_error(response, 401, "invalid_client", "long Basic id").await;
    assert_eq!(body["error_description"], "client authentication failed");
    // The same in the body (client_secret_post).
    let response = app
        .http
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &long),
            ("client_secret", "x"),
        ])
        .send()
        .await
        .unwrap();
    json_error(
        response,
        401,
        "invalid_client",
        "long client_id in the body",
    )
    .await;

    // A 10 KB bearer token at /userinfo, in the header and in the form.
    for (case, request) in [
        (
            "long bearer header",
            app.http.get(app.url("/userinfo")).bearer_auth(&long),
        ),
        (
            "long bearer JWS-shaped",
            app.http
                .get(app.url("/userinfo"))
                .bearer_auth(format!("{0}.{0}.{0}", &long[..LONG / 3])),
        ),
        (
            "long bearer form",
            app.http
                .post(app.url("/userinfo"))
                .form(&[("access_token", &long)]),
        ),
    ] {
        let response = request.send().await.unwrap();
        let challenge = header(&response, "www-authenticate").map(str::to_owned);
        json_error(response, 401, "invalid_token", case).await;
        assert!(
            challenge.is_some_and(|c| c.contains(r#"error="invalid_token""#)),
            "{case}: RFC 6750 §3 challenge"
        );
    }

    // A 10 KB token at /revoke and /introspect: unknown token, answered as
    // RFC 7009 §2.2 and RFC 7662 §2.2 say (200; inactive).
    let response = app
        .http
        .post(app.url("/revoke"))
        .basic_auth(&client.id, Some(&secret))
        .form(&[("token", &long)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "long token at /revoke");
    let response = app
        .http
        .post(app.url("/introspect"))
        .basic_auth(&client.id, Some(&secret))
        .form(&[("token", &long)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "long token at /introspect");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({ "active": false }));
    app.stop().await;
}

// ---------------------------------------------------------------------------
// 3. Header limits
// ---------------------------------------------------------------------------

/// The request head is bounded by actix-http: more than 96 headers, or a
/// head over 128 KiB, is refused with 431 (RFC 6585 §5) and the connection
/// closed, before any handler runs. A 40 KB header is within the limit.
async fn oversized_request_heads_are_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    // One 40 KB header: served (the head limit is 128 KiB).
    let response = app
        .http
        .get(app.url("/healthz"))
        .header("x-pad", "a".repeat(40 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "a 40 KB header is within the limit");

    // One 140 KB header: 431.
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(140 * 1024)
    );
    let answer = raw_exchange(app.port, request.as_bytes(), Duration::from_secs(10), true).await;
    eprintln!(
        "140 KB header: status {:?} after {:?}",
        answer.status, answer.elapsed
    );
    assert_eq!(answer.status, Some(431), "a 140 KB header");
    assert!(answer.closed, "the connection is closed after a 431");

    // 120 headers: more than actix-http's 96.
    let mut request = String::from("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for i in 0..120 {
        request.push_str(&format!("X-H{i}: v\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    let answer = raw_exchange(app.port, request.as_bytes(), Duration::from_secs(10), true).await;
    assert_eq!(answer.status, Some(431), "120 headers");
    assert!(answer.closed, "the connection is closed after a 431");

    // 90 headers are fine.
    let mut request = String::from("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for i in 0..90 {
        request.push_str(&format!("X-H{i}: v\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    let answer = raw_exchange(app.port, request.as_bytes(), Duration::from_secs(10), true).await;
    assert_eq!(answer.status, Some(200), "90 headers");

    // The server still serves afterwards.
    let response = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    app.stop().await;
}

// ---------------------------------------------------------------------------
// 4. Slow clients
// ---------------------------------------------------------------------------

/// A client that never finishes its request head gets 408 (RFC 9110
/// §15.5.9) and a closed connection after `client_request_timeout` (5 s);
/// an idle keep-alive connection is closed after `keep_alive` (15 s).
async fn slow_and_idle_clients_are_cut_off(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let port = app.port;
    let idle = tokio::spawn(async move {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .unwrap();
        let mut received = Vec::new();
        let mut buffer = [0u8; 4096];
        // The response, then nothing until the server closes.
        let started = Instant::now();
        let mut answered_at = None;
        loop {
            match tokio::time::timeout(Duration::from_secs(25), stream.read(&mut buffer)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => {
                    received.extend_from_slice(&buffer[..n]);
                    if answered_at.is_none() && parse_raw(&received).0.is_some() {
                        answered_at = Some(Instant::now());
                    }
                }
                Err(_) => panic!("the idle connection was still open after 25 s"),
            }
        }
        let answered_at = answered_at.expect("the request was answered");
        (parse_raw(&received).0, answered_at.elapsed(), started)
    });

    let trickle = tokio::spawn(async move {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let started = Instant::now();
        let head = format!(
            "POST /token HTTP/1.1\r\nHost: x\r\nX-Pad: {}",
            "b".repeat(100)
        );
        let mut received = Vec::new();
        let mut buffer = [0u8; 4096];
        for byte in head.bytes().cycle() {
            if stream.write_all(&[byte]).await.is_err() {
                break;
            }
            match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buffer)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
                Err(_) => {}
            }
            assert!(
                started.elapsed() < Duration::from_secs(12),
                "a trickled head was still read after 12 s"
            );
        }
        // Whatever else is in flight, up to the close.
        let mut closed = false;
        loop {
            match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buffer)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    closed = true;
                    break;
                }
                Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
                Err(_) => break,
            }
        }
        (parse_raw(&received).0, closed, started.elapsed())
    });

    let answer = raw_exchange(
        app.port,
        b"POST /token HTTP/1.1\r\nHost: x\r\n",
        Duration::from_secs(12),
        true,
    )
    .await;
    eprintln!(
        "unfinished head: status {:?}, closed {} after {:?}",
        answer.status, answer.closed, answer.elapsed
    );
    assert!(
        answer.closed,
        "the server closes a connection whose head never ends"
    );
    assert_eq!(answer.status, Some(408), "actix-http answers 408");

    // The 5 s are a deadline for the whole head, not an idle timeout: a
    // client that trickles its head a byte at a time gets 408 too.
    let (status, closed, elapsed) = trickle.await.unwrap();
    eprintln!("trickled head: status {status:?}, closed {closed} after {elapsed:?}");
    assert_eq!(status, Some(408), "a trickled head");
    assert!(closed, "the trickling connection is closed");

    let (status, idle_for, _) = idle.await.unwrap();
    eprintln!("idle keep-alive connection closed {idle_for:?} after its response");
    assert_eq!(status, Some(200));
    app.stop().await;
}

// ---------------------------------------------------------------------------
// 5. Repeated parameters
// ---------------------------------------------------------------------------

/// RFC 6749 §3.1, §3.2: "Request and response parameters MUST NOT be
/// included more than once." Every endpoint answers a repeat with
/// `invalid_request`: a JSON error at the API endpoints, a redirect or the
/// error page at `/authorize` (by whether the client and redirect URI were
/// verified, RFC 6749 §4.1.2.1), the error page at `/logout`.
async fn repeated_parameters_are_invalid_requests(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (id, secret) = app.machine_client(&["read"]).await;
    for (path, form) in [
        (
            "/token",
            "grant_type=client_credentials&grant_type=client_credentials",
        ),
        ("/revoke", "token=a&token=b"),
        ("/introspect", "token=a&token=b"),
    ] {
        let response = app
            .http
            .post(app.url(path))
            .basic_auth(&id, Some(&secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .unwrap();
        let body = json_error(response, 400, "invalid_request", path).await;
        let name = form.split('=').next().unwrap();
        assert_eq!(
            body["error_description"],
            format!("parameter '{name}' is repeated"),
            "{path}"
        );
    }
    // client_id twice in the body (client_secret_post).
    let response = post_encoded(
        &app,
        "/token",
        format!(
            "grant_type=client_credentials&client_id={id}&client_id={id}&client_secret={secret}"
        ),
    )
    .await;
    let body = json_error(response, 400, "invalid_request", "client_id twice").await;
    assert_eq!(
        body["error_description"],
        "parameter 'client_id' is repeated"
    );

    // /userinfo POST: access_token twice in the form (RFC 6750 §3.1).
    let response = post_encoded(&app, "/userinfo", "access_token=a&access_token=b".into()).await;
    let challenge = header(&response, "www-authenticate").map(str::to_owned);
    let body = json_error(response, 400, "invalid_request", "/userinfo").await;
    assert_eq!(
        body["error_description"],
        "parameter 'access_token' is repeated"
    );
    assert!(
        challenge.is_some_and(|c| c.contains(r#"error="invalid_request""#)),
        "/userinfo challenge"
    );

    // /authorize: after the client and redirect URI are verified a repeat
    // goes back to the client; `state` is echoed unless it is the repeat.
    let client = app.web_client(false, &[]).await;
    let pkce = pkce();
    let browser = app.browser();
    let base = authorize_query(&client, &pkce, &[]);
    let response = browser
        .authorize(&format!("{base}&response_type=code"))
        .await;
    assert_eq!(response.status(), 303, "response_type twice");
    let back = location(&response);
    assert!(
        back.starts_with(&format!("{}?", client.redirect_uri)),
        "{back}"
    );
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("invalid_request")
    );
    assert_eq!(
        query_param(&back, "error_description").as_deref(),
        Some("parameter 'response_type' is repeated")
    );
    assert_eq!(query_param(&back, "state").as_deref(), Some("st4te"));

    let response = browser.authorize(&format!("{base}&state=other")).await;
    assert_eq!(response.status(), 303, "state twice");
    let back = location(&response);
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("invalid_request")
    );
    assert_eq!(
        query_param(&back, "error_description").as_deref(),
        Some("parameter 'state' is repeated")
    );
    assert_eq!(
        query_param(&back, "state"),
        None,
        "a repeated state is not echoed"
    );

    // Before verification: the error page, never a redirect.
    for (case, extra) in [
        ("client_id twice", format!("&client_id={}", client.id)),
        (
            "redirect_uri twice",
            "&redirect_uri=https%3A%2F%2Fapp.example%2Fcb".to_owned(),
        ),
    ] {
        let response = browser.authorize(&format!("{base}{extra}")).await;
        let html = error_page(response, 400, case).await;
        assert!(
            html.contains("more than once") || html.contains("more than one"),
            "{case}"
        );
    }

    // /logout, GET and POST.
    let twice = "post_logout_redirect_uri=https%3A%2F%2Fapp.example%2Fbye\
                 &post_logout_redirect_uri=https%3A%2F%2Fapp.example%2Fbye";
    let response = browser.get(&format!("/logout?{twice}")).await;
    let html = error_page(response, 400, "GET /logout").await;
    assert!(html.contains("is repeated"), "{html}");
    let response = post_encoded(&app, "/logout", twice.to_owned()).await;
    let html = error_page(response, 400, "POST /logout").await;
    assert!(html.contains("is repeated"), "{html}");
    app.stop().await;
}

// ---------------------------------------------------------------------------
// 6. Malformed Basic credentials
// ---------------------------------------------------------------------------

/// Malformed `Authorization` headers at `/token`: a malformed Basic value
/// is a failed client authentication, 401 with the Basic challenge (RFC
/// 6749 §5.2, RFC 7617 §2); two headers or two methods are
/// `invalid_request` (RFC 6749 §2.3, RFC 9110 §5.3: Authorization is not a
/// list header). The scheme name is case-insensitive (RFC 9110 §11.1).
async fn malformed_basic_credentials_are_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (id, secret) = app.machine_client(&["read"]).await;
    let basic = |raw: &[u8]| format!("Basic {}", STANDARD.encode(raw));
    let send = |values: Vec<reqwest::header::HeaderValue>, form: Vec<(&'static str, String)>| {
        let mut request = app.http.post(app.url("/token")).form(&form);
        for value in values {
            request = request.header("authorization", value);
        }
        request.send()
    };
    let grant = || vec![("grant_type", "client_credentials".to_owned())];
    let value = |text: &str| reqwest::header::HeaderValue::from_str(text).unwrap();

    for (case, header_value, description) in [
        ("Basic alone", value("Basic"), "malformed Basic credentials"),
        (
            "not base64",
            value("Basic !!!notbase64"),
            "malformed Basic credentials",
        ),
        (
            "no colon",
            value(&basic(b"nocolon")),
            "malformed Basic credentials",
        ),
        (
            "not UTF-8 after base64",
            value(&basic(&[0xff, 0xfe, b':', b'x'])),
            "malformed Basic credentials",
        ),
        (
            "not UTF-8 in the header",
            reqwest::header::HeaderValue::from_bytes(b"Basic \xff\xfe").unwrap(),
            "malformed Basic credentials",
        ),
        (
            "percent-decodes to invalid UTF-8",
            value(&basic(b"%ff:x")),
            "malformed Basic credentials",
        ),
        // An empty id, and a percent sign that is no escape (decoded as
        // itself), name no registered client.
        (
            "empty id",
            value(&basic(b":")),
            // An empty id names no client: refused while parsing.
            "malformed Basic credentials",
        ),
        (
            "bad percent escape",
            value(&basic(b"%zz:x")),
            "client authentication failed",
        ),
        (
            "Bearer scheme",
            value("Bearer abc"),
            "only the Basic authentication scheme is supported here",
        ),
    ] {
        let response = send(vec![header_value], grant()).await.unwrap();
        assert_eq!(
            header(&response, "www-authenticate"),
            Some(r#"Basic realm="authd", charset="UTF-8""#),
            "{case}: the Basic challenge"
        );
        let body = json_error(response, 401, "invalid_client", case).await;
        assert_eq!(body["error_description"], description, "{case}");
    }

    // Two Authorization headers.
    let good = basic(format!("{id}:{secret}").as_bytes());
    let response = send(vec![value(&good), value(&good)], grant())
        .await
        .unwrap();
    assert!(header(&response, "www-authenticate").is_none());
    let body = json_error(response, 400, "invalid_request", "two headers").await;
    assert_eq!(
        body["error_description"],
        "more than one Authorization header"
    );

    // Basic and client_secret in the body: two methods (RFC 6749 §2.3).
    let mut form = grant();
    form.push(("client_secret", secret.clone()));
    let response = send(vec![value(&good)], form).await.unwrap();
    let body = json_error(response, 400, "invalid_request", "two methods").await;
    assert_eq!(
        body["error_description"],
        "use one client authentication method: Basic or client_secret, not both"
    );

    // A body client_id that differs from the Basic id.
    let mut form = grant();
    form.push(("client_id", "someone-else".to_owned()));
    let response = send(vec![value(&good)], form).await.unwrap();
    json_error(response, 400, "invalid_request", "two ids").await;

    // The scheme in lower case (RFC 9110 §11.1: case-insensitive) works,
    // as does extra whitespace around the credentials.
    for scheme in ["basic", "BASIC"] {
        let encoded = STANDARD.encode(format!("{id}:{secret}"));
        let response = send(vec![value(&format!("{scheme} {encoded}"))], grant())
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{scheme}");
    }
    app.stop().await;
}

// ---------------------------------------------------------------------------
// 7. Methods
// ---------------------------------------------------------------------------

/// Every route of `routes()` with the methods it handles and the `Allow`
/// value of its 405.
const ROUTES: [(&str, &[&str], &str); 15] = [
    ("/token", &["POST"], "POST"),
    ("/.well-known/jwks.json", &["GET", "HEAD"], "GET, HEAD"),
    (
        "/.well-known/openid-configuration",
        &["GET", "HEAD"],
        "GET, HEAD",
    ),
    (
        "/.well-known/oauth-authorization-server",
        &["GET", "HEAD"],
        "GET, HEAD",
    ),
    ("/revoke", &["POST"], "POST"),
    ("/introspect", &["POST"], "POST"),
    ("/authorize", &["GET", "POST"], "GET, POST"),
    ("/login", &["GET", "HEAD", "POST"], "GET, HEAD, POST"),
    ("/consent", &["GET", "HEAD", "POST"], "GET, HEAD, POST"),
    ("/logout", &["GET", "POST"], "GET, POST"),
    ("/userinfo", &["GET", "HEAD", "POST"], "GET, HEAD, POST"),
    ("/assets/authd.css", &["GET", "HEAD"], "GET, HEAD"),
    ("/assets/logo.svg", &["GET", "HEAD"], "GET, HEAD"),
    ("/healthz", &["GET", "HEAD"], "GET, HEAD"),
    ("/readyz", &["GET", "HEAD"], "GET, HEAD"),
];

/// Routes whose 405 would be actix-web's own (no `default_service`, an
/// empty body): none any more.
const BARE_405: [&str; 0] = [];

const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

/// RFC 9110 §15.5.6: a method the resource does not handle is 405 with an
/// `Allow` header naming the methods it does. A handled method never gets
/// 405 or a 5xx. An unknown path is a 404 JSON error.
async fn wrong_methods_get_405_with_allow(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    for (path, handled, allow) in ROUTES {
        for method in METHODS {
            let case = format!("{method} {path}");
            let response = app
                .http
                .request(method.parse().unwrap(), app.url(path))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            request_id_of(&response, &case);
            if handled.contains(&method) {
                assert_ne!(status, 405, "{case}");
                assert!(status < 500, "{case}: {status}");
                continue;
            }
            assert_eq!(status, 405, "{case}");
            assert_eq!(header(&response, "allow"), Some(allow), "{case}: Allow");
            if BARE_405.contains(&path) {
                // actix-web's default 405: no body at all.
                let body = response.bytes().await.unwrap();
                assert!(body.is_empty(), "{case}: {body:?}");
            } else if method == "HEAD" {
                // No body in a HEAD response (RFC 9110 §9.3.2).
                assert_eq!(
                    header(&response, "content-type"),
                    Some("application/json"),
                    "{case}"
                );
                let body = response.bytes().await.unwrap();
                assert!(body.is_empty(), "{case}");
            } else {
                let body = json_error(response, 405, "invalid_request", &case).await;
                assert_eq!(
                    body["error_description"],
                    format!("this endpoint accepts {allow} only"),
                    "{case}"
                );
            }
        }
    }
    for path in ["/nope", "/token/", "/.well-known/nope", "/assets/x.css"] {
        for method in ["GET", "POST", "DELETE"] {
            let case = format!("{method} {path}");
            let response = app
                .http
                .request(method.parse().unwrap(), app.url(path))
                .send()
                .await
                .unwrap();
            let body = json_error(response, 404, "not_found", &case).await;
            assert_eq!(body["error_description"], "no such endpoint");
        }
    }
    app.stop().await;
}

/// Requests a server must read past: a malformed request line or a body
/// that contradicts its framing is refused by actix-http with 400 and the
/// connection closed.
async fn malformed_requests_are_refused_with_400(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    for (case, request) in [
        ("garbage", &b"NOT HTTP\r\n\r\n"[..]),
        (
            "bad Content-Length",
            &b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"[..],
        ),
        (
            "Content-Length and chunked",
            &b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\
               Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..],
        ),
        (
            "two Content-Lengths",
            &b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\
               Content-Length: 4\r\n\r\nabcd"[..],
        ),
    ] {
        let answer = raw_exchange(app.port, request, Duration::from_secs(10), true).await;
        assert_eq!(answer.status, Some(400), "{case}");
        assert!(answer.closed, "{case}: closed");
    }
    app.stop().await;
}

on_both_backends!(
    oversized_bodies_are_refused_with_413,
    long_authorization_values_are_client_errors,
    long_token_values_are_client_errors,
    oversized_request_heads_are_refused,
    slow_and_idle_clients_are_cut_off,
    repeated_parameters_are_invalid_requests,
    malformed_basic_credentials_are_refused,
    wrong_methods_get_405_with_allow,
    malformed_requests_are_refused_with_400,
);

/// A client that sends a complete head and then stalls in the body:
/// `client_request_timeout` covers the head only, so `read_body`
/// (src/http/form.rs) gives the body 10 s; the server answers (408) or
/// closes within 20 s.
mod a_stalled_body_is_cut_off {
    use super::*;

    async fn stalled_body(backend: Backend) {
        let Some(app) = spawn_app(backend).await else {
            return;
        };
        let answer = raw_exchange(
            app.port,
            b"POST /token HTTP/1.1\r\nHost: x\r\n\
              Content-Type: application/x-www-form-urlencoded\r\n\
              Content-Length: 100\r\n\r\ngrant_type",
            Duration::from_secs(20),
            true,
        )
        .await;
        eprintln!(
            "stalled body: status {:?}, closed {} after {:?}",
            answer.status, answer.closed, answer.elapsed
        );
        assert!(
            answer.closed || answer.status.is_some(),
            "a stalled body was still being waited for after 20 s"
        );
        if let Some(status) = answer.status {
            assert!((400..500).contains(&status), "{status}");
        }
        app.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        stalled_body(Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        stalled_body(Backend::Postgres).await
    }
}
