//! The UserInfo endpoint (OIDC Core §5.3) with RFC 6750 bearer tokens:
//! where the token may be, the challenges of each refusal, and the tokens
//! that must never be accepted.
use std::sync::Arc;

use authd::clock::MockClock;
use authd::startup::Application;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::authorization_code::{
    challenge, disable_user, jwt_part, sign_in_and_exchange, userinfo,
};
use crate::helpers::{Backend, TestApp, WebClient, on_both_backends, spawn_app};

/// A user-bound access token (and the rest of the token response) for
/// `username` at `client` with `scope`, from a real sign-in.
async fn tokens(app: &TestApp, client: &WebClient, username: &str, scope: &str) -> Value {
    sign_in_and_exchange(app, &app.browser(), client, username, &[("scope", scope)]).await
}

fn access_token(response: &Value) -> &str {
    response["access_token"].as_str().expect("an access token")
}

/// Asserts a 200 UserInfo response and returns its claims.
async fn claims(response: reqwest::Response, case: &str) -> Value {
    assert_eq!(response.status(), 200, "{case}");
    assert_eq!(response.headers()["cache-control"], "no-store", "{case}");
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "{case}"
    );
    response.json().await.unwrap()
}

/// Asserts an RFC 6750 §3 refusal: `status`, and `error` in both the
/// `WWW-Authenticate` challenge and the JSON body.
async fn assert_refused(response: reqwest::Response, status: u16, error: &str, case: &str) {
    assert_eq!(response.status().as_u16(), status, "{case}");
    let challenge = challenge(&response).unwrap_or_default();
    assert!(
        challenge.starts_with(r#"Bearer realm="authd""#),
        "{case}: {challenge}"
    );
    assert!(
        challenge.contains(&format!(r#"error="{error}""#)),
        "{case}: {challenge}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], error, "{case}: {body}");
}

/// RFC 6750 §3.1: no credentials at all → 401 with a bare challenge.
fn assert_bare_challenge(response: &reqwest::Response, case: &str) {
    assert_eq!(response.status(), 401, "{case}");
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="authd""#,
        "{case}"
    );
}

/// OIDC Core §5.3.2 and §5.4: the claims of the granted scope, about the
/// user the token was issued for (`sub` = the user id).
async fn userinfo_returns_the_claims_of_the_granted_scope(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(false, &[]).await;
    let user_id = app.user("alice").await;
    let full = tokens(&app, &client, "alice", "openid profile email").await;
    let body = claims(userinfo(&app, access_token(&full)).await, "full").await;
    assert_eq!(
        body,
        json!({
            "sub": user_id,
            "name": "alice Example",
            "preferred_username": "alice",
            "email": "alice@example.com",
            "email_verified": true,
        })
    );
    let bare = tokens(&app, &client, "alice", "openid").await;
    let body = claims(userinfo(&app, access_token(&bare)).await, "openid").await;
    assert_eq!(body, json!({ "sub": user_id }));
}

/// RFC 6750 §2.1 (header, any method; the scheme is case-insensitive,
/// RFC 7235 §2.1) and §2.2 (form body of a POST).
async fn bearer_token_is_accepted_in_the_header_or_the_form_body(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(false, &[]).await;
    let user_id = app.user("alice").await;
    let response = tokens(&app, &client, "alice", "openid profile").await;
    let token = access_token(&response);
    let url = app.url("/userinfo");
    let requests = [
        ("GET header", app.http.get(&url).bearer_auth(token)),
        ("POST header", app.http.post(&url).bearer_auth(token)),
        (
            "GET lower-case scheme",
            app.http
                .get(&url)
                .header("authorization", format!("bearer {token}")),
        ),
        (
            "POST form body",
            app.http.post(&url).form(&[("access_token", token)]),
        ),
    ];
    for (case, request) in requests {
        let body = claims(request.send().await.unwrap(), case).await;
        assert_eq!(body["sub"], user_id.as_str(), "{case}");
        assert_eq!(body["preferred_username"], "alice", "{case}");
    }
}

/// `HEAD /userinfo` over a raw connection (`Connection: close`): every byte
/// the server sent.
async fn raw_head(app: &TestApp, token: Option<&str>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    let authorization = token
        .map(|token| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    let request =
        format!("HEAD /userinfo HTTP/1.1\r\nHost: x\r\n{authorization}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut raw),
    )
    .await
    .expect("the server closes the connection")
    .unwrap();
    String::from_utf8_lossy(&raw).into_owned()
}

/// RFC 9110 §9.3.2: HEAD is GET without the body: the same status and
/// headers (a token's challenge included), nothing after them.
async fn head_answers_like_get_without_a_body(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(false, &[]).await;
    app.user("alice").await;
    let response = tokens(&app, &client, "alice", "openid profile").await;
    let token = access_token(&response);
    let url = app.url("/userinfo");
    let head = app.http.head(&url).bearer_auth(token).send().await.unwrap();
    assert_eq!(head.status(), 200, "HEAD with a valid token");
    assert_eq!(head.headers()["content-type"], "application/json");
    assert_eq!(head.headers()["cache-control"], "no-store");
    // An HTTP client never reads a body after a HEAD; the raw bytes tell
    // whether the server sent one.
    let raw = raw_head(&app, Some(token)).await;
    let (status_line, rest) = raw.split_once("\r\n\r\n").expect("a complete head");
    assert!(status_line.starts_with("HTTP/1.1 200"), "{raw}");
    assert_eq!(rest, "", "HEAD answered with a body");

    let head = app.http.head(&url).send().await.unwrap();
    assert_bare_challenge(&head, "HEAD without a token");
    let raw = raw_head(&app, None).await;
    let (status_line, rest) = raw.split_once("\r\n\r\n").expect("a complete head");
    assert!(status_line.starts_with("HTTP/1.1 401"), "{raw}");
    assert_eq!(rest, "", "HEAD answered with a body");
    let head = app
        .http
        .head(&url)
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 401, "HEAD with a forged token");
    let challenge = challenge(&head).unwrap_or_default();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
}

/// RFC 6750 §2: "Clients MUST NOT use more than one method to transmit the
/// token in each request" → 400 `invalid_request` (§3.1). authd does not
/// take the token from the URL (§2.3 is optional and leaks it into logs).
async fn token_sent_two_ways_or_in_the_query_is_invalid_request(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(false, &[]).await;
    app.user("alice").await;
    let response = tokens(&app, &client, "alice", "openid").await;
    let token = access_token(&response);
    let url = app.url("/userinfo");
    let query = format!("{url}?access_token={token}");
    let requests = [
        (
            "header and body",
            app.http
                .post(&url)
                .bearer_auth(token)
                .form(&[("access_token", token)]),
        ),
        ("GET query", app.http.get(&query)),
        (
            "GET header and query",
            app.http.get(&query).bearer_auth(token),
        ),
        (
            "POST header and query",
            app.http.post(&query).bearer_auth(token),
        ),
        (
            "POST body and query",
            app.http.post(&query).form(&[("access_token", token)]),
        ),
        (
            "two Authorization headers",
            app.http
                .get(&url)
                .header("authorization", format!("Bearer {token}"))
                .header("authorization", format!("Bearer {token}")),
        ),
    ];
    for (case, request) in requests {
        assert_refused(request.send().await.unwrap(), 400, "invalid_request", case).await;
    }
}

/// The same rule as above for a POST whose only token is in the query: it
/// must not be read, and must not pass for "no token" either.
async fn token_in_the_query_of_a_post_is_invalid_request(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(false, &[]).await;
    app.user("alice").await;
    let response = tokens(&app, &client, "alice", "openid").await;
    let query = app.url(&format!(
        "/userinfo?access_token={}",
        access_token(&response)
    ));
    let response = app.http.post(&query).send().await.unwrap();
    assert_refused(response, 400, "invalid_request", "POST query").await;
}

/// RFC 6750 §3.1: "If the request lacks any authentication information …
/// the resource server SHOULD NOT include an error code".
async fn request_without_a_token_gets_a_bare_challenge(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let url = app.url("/userinfo");
    let requests = [
        ("GET", app.http.get(&url)),
        ("POST", app.http.post(&url)),
        (
            "POST form without access_token",
            app.http.post(&url).form(&[("scope", "openid")]),
        ),
    ];
    for (case, request) in requests {
        let response = request.send().await.unwrap();
        assert_bare_challenge(&response, case);
        assert_eq!(response.headers()["cache-control"], "no-store", "{case}");
    }
}

/// RFC 6750 §3.1: a request that "attempted using an unsupported
/// authentication method" lacks authentication information: 401 with a
/// bare challenge, no error code.
async fn other_authorization_scheme_gets_a_bare_challenge(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let response = app
        .http
        .get(app.url("/userinfo"))
        .basic_auth("alice", Some("secret"))
        .send()
        .await
        .unwrap();
    assert_bare_challenge(&response, "Basic");
}

/// RFC 6750 §3.1 `insufficient_scope` (403): OIDC Core §5.3 needs a token
/// issued with `openid`.
async fn token_without_openid_is_insufficient_scope(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(false, &["orders:read"]).await;
    app.user("alice").await;
    let response = tokens(&app, &client, "alice", "orders:read").await;
    let response = userinfo(&app, access_token(&response)).await;
    let challenge = challenge(&response).unwrap_or_default();
    assert!(challenge.contains(r#"scope="openid""#), "{challenge}");
    assert_refused(response, 403, "insufficient_scope", "orders:read").await;
}

/// A token with `header` (JSON) and `payload` (JSON) and the given
/// signature part.
fn assemble(header: &Value, payload: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    )
}

/// RFC 6750 §3.1 `invalid_token` (401) for every token authd did not issue
/// as a user access token, or that was altered: the algorithm and keys are
/// the server's choice, never the token's (RFC 8725 §2.1, §3.1).
async fn forged_and_foreign_tokens_are_invalid_token(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(false, &[]).await;
    app.user("alice").await;
    let bob = app.user("bob").await;
    let response = tokens(&app, &client, "alice", "openid").await;
    let token = access_token(&response).to_owned();
    let id_token = response["id_token"].as_str().unwrap().to_owned();
    let header = jwt_part(&token, 0);
    let payload = jwt_part(&token, 1);
    let signature = token.rsplit('.').next().unwrap().to_owned();
    let kid = header["kid"].as_str().unwrap().to_owned();
    let jwks = app.get_json("/.well-known/jwks.json").await;
    let n = URL_SAFE_NO_PAD
        .decode(jwks["keys"][0]["n"].as_str().unwrap())
        .unwrap();

    let hs256 = |secret: &[u8]| {
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some("at+jwt".into());
        header.kid = Some(kid.clone());
        jsonwebtoken::encode(&header, &payload, &EncodingKey::from_secret(secret)).unwrap()
    };
    let with_claim = |name: &str, value: &str| {
        let mut payload = payload.clone();
        payload[name] = value.into();
        assemble(&header, &payload, &signature)
    };
    let with_header = |name: &str, value: Option<&str>| {
        let mut header = header.clone();
        match value {
            Some(value) => header[name] = value.into(),
            None => {
                header.as_object_mut().unwrap().remove(name);
            }
        }
        assemble(&header, &payload, &signature)
    };
    let (machine, machine_secret) = app.machine_client(&["openid"]).await;
    let cc: Value = app
        .client_credentials(&machine, &machine_secret)
        .await
        .json()
        .await
        .unwrap();

    let cases = [
        (
            "alg none",
            assemble(
                &json!({ "alg": "none", "typ": "at+jwt", "kid": kid }),
                &payload,
                "",
            ),
        ),
        ("HS256 keyed with the modulus", hs256(&n)),
        (
            "HS256 keyed with the JWKS document",
            hs256(jwks.to_string().as_bytes()),
        ),
        (
            "unknown kid",
            with_header("kid", Some("not-a-published-kid")),
        ),
        ("no kid", with_header("kid", None)),
        ("typ JWT", with_header("typ", Some("JWT"))),
        (
            "tampered scope",
            with_claim("scope", "openid profile email"),
        ),
        ("tampered sub", with_claim("sub", &bob)),
        ("tampered iss", with_claim("iss", "https://evil.example")),
        (
            "signature removed",
            format!("{}.", token.rsplit_once('.').unwrap().0),
        ),
        ("ID token", id_token.clone()),
        (
            "client-credentials token",
            cc["access_token"].as_str().unwrap().to_owned(),
        ),
        ("not a JWT", "not-a-jwt".to_owned()),
    ];
    for (case, forged) in cases {
        let response = userinfo(&app, &forged).await;
        assert_refused(response, 401, "invalid_token", case).await;
    }
    // The token the forgeries came from is good: the checks above failed on
    // what was changed.
    let body = claims(userinfo(&app, &token).await, "original").await;
    assert_ne!(body["sub"], bob.as_str());
}

/// OIDC Core §5.3: the claims are about a user who may still sign in; a
/// disabled user's tokens stop working at once.
async fn disabled_user_token_is_invalid_token(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(false, &[]).await;
    let user_id = app.user("alice").await;
    let response = tokens(&app, &client, "alice", "openid").await;
    let token = access_token(&response);
    assert_eq!(userinfo(&app, token).await.status(), 200);
    disable_user(&app, &user_id).await;
    assert_refused(
        userinfo(&app, token).await,
        401,
        "invalid_token",
        "disabled",
    )
    .await;
}

/// Security review finding 5 (RFC 7662 §2.2; RFC 7519 §4.1.4): authd judges
/// its own tokens by its own clock, without the clock-skew leeway that is
/// for other parties' clocks. A second server on the same database and
/// issuer runs on a mock clock: 5 s before `exp` the token is good at
/// `/userinfo` and `/introspect`; at `exp` and 10 s after it is not.
async fn own_tokens_expire_at_exp_without_leeway(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(false, &[]).await;
    app.user("alice").await;
    let (api, api_secret) = app
        .register(authd::clients::registration::NewClient {
            name: "API".into(),
            can_introspect: true,
            ..Default::default()
        })
        .await;
    let api_secret = api_secret.expect("confidential");
    let response = tokens(&app, &client, "alice", "openid").await;
    let token = access_token(&response).to_owned();
    let exp = jwt_part(&token, 1)["exp"].as_i64().unwrap();

    let clock = Arc::new(MockClock::new(
        chrono::DateTime::from_timestamp(exp - 5, 0).unwrap(),
    ));
    let mut config = app.config.clone();
    config.issuer = Some(app.issuer.clone());
    let late = Application::build_with_clock(config, false, clock.clone())
        .await
        .expect("second server starts");
    let base = format!("http://127.0.0.1:{}", late.port());
    let handle = late.handle();
    tokio::spawn(late.run_until_stopped());
    let userinfo_status = || async {
        app.http
            .get(format!("{base}/userinfo"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    let introspected = || async {
        let body: Value = app
            .http
            .post(format!("{base}/introspect"))
            .basic_auth(&api, Some(&api_secret))
            .form(&[("token", token.as_str())])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body
    };

    assert_eq!(userinfo_status().await, 200, "5 s before exp");
    assert_eq!(introspected().await["active"], true, "5 s before exp");
    clock.advance(chrono::Duration::seconds(5));
    assert_eq!(userinfo_status().await, 401, "at exp");
    assert_eq!(introspected().await, json!({"active": false}), "at exp");
    clock.advance(chrono::Duration::seconds(10));
    assert_eq!(userinfo_status().await, 401, "10 s past exp");
    assert_eq!(
        introspected().await,
        json!({"active": false}),
        "10 s past exp"
    );
    handle.stop(true).await;
}

on_both_backends!(
    userinfo_returns_the_claims_of_the_granted_scope,
    bearer_token_is_accepted_in_the_header_or_the_form_body,
    token_sent_two_ways_or_in_the_query_is_invalid_request,
    token_in_the_query_of_a_post_is_invalid_request,
    request_without_a_token_gets_a_bare_challenge,
    other_authorization_scheme_gets_a_bare_challenge,
    token_without_openid_is_insufficient_scope,
    forged_and_foreign_tokens_are_invalid_token,
    disabled_user_token_is_invalid_token,
    head_answers_like_get_without_a_body,
    own_tokens_expire_at_exp_without_leeway,
);
