//! RFC 6749 §6 at `POST /token`: refresh tokens from a real sign-in with
//! `offline_access` (OIDC Core §11), rotated on every use and revoked as a
//! family when a consumed one comes back (RFC 9700 §4.14.2), with the
//! `oauth2` crate as the client where it can be.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use authd::clients::registration::{self, NewClient};
use authd::clock::SystemClock;
use authd::config::Config;
use authd::crypto::MasterKey;
use authd::startup::Runtime;
use futures_util::future::join_all;
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    ClientId, ClientSecret, EndpointNotSet, EndpointSet, RefreshToken, RequestTokenError, Scope,
    TokenResponse, TokenUrl,
};
use serde_json::{Value, json};

use crate::authorization_code::{
    challenge, disable_user, sign_in_and_exchange, userinfo, verify_id_token,
};
use crate::client_credentials::verify_access_token;
use crate::helpers::{
    Backend, TestApp, WebClient, assert_no_store, authorize_query, location, on_both_backends,
    pkce, query_param, spawn_app, spawn_app_on, test_database,
};

/// The scope every sign-in here asks for.
const OFFLINE_SCOPE: &str = "openid offline_access orders:read orders:write";
/// The same scope as the server writes it back (sorted).
const OFFLINE_SCOPE_SORTED: &str = "offline_access openid orders:read orders:write";

/// An app whose configuration `adjust` changes (refresh lifetimes, grace).
async fn spawn_app_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Option<TestApp> {
    let database = test_database(backend).await?;
    Some(
        spawn_app_on(Arc::new(database), MasterKey::generate(), adjust)
            .await
            .expect("app starts"),
    )
}

/// A client allowed `authorization_code` and `refresh_token`: confidential
/// at `https://app.example/cb`, or public at `https://spa.example/cb`.
async fn offline_client(app: &TestApp, public: bool) -> WebClient {
    app.web_client_with(NewClient {
        name: if public {
            "Offline SPA"
        } else {
            "Offline web app"
        }
        .into(),
        public,
        redirect_uris: vec![
            if public {
                "https://spa.example/cb"
            } else {
                "https://app.example/cb"
            }
            .into(),
        ],
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        scopes: vec!["orders:read".into(), "orders:write".into()],
        ..Default::default()
    })
    .await
}

/// A resource server allowed to introspect any token (RFC 7662 §2.1).
async fn resource_server(app: &TestApp) -> (String, String) {
    let (id, secret) = app
        .register(NewClient {
            name: "API".into(),
            can_introspect: true,
            ..Default::default()
        })
        .await;
    (id, secret.expect("a confidential client has a secret"))
}

/// Signs `username` in at `client` with `offline_access` and exchanges the
/// code: the token response.
async fn offline_sign_in(app: &TestApp, client: &WebClient, username: &str) -> Value {
    let browser = app.browser();
    sign_in_and_exchange(app, &browser, client, username, &[("scope", OFFLINE_SCOPE)]).await
}

fn field(response: &Value, name: &str) -> String {
    response[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} in {response}"))
        .to_owned()
}

/// `POST /token grant_type=refresh_token` as `client` (Basic for a
/// confidential client, `client_id` in the body for a public one).
async fn refresh(
    app: &TestApp,
    client: &WebClient,
    token: &str,
    scope: Option<&str>,
) -> reqwest::Response {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    let request = app.http.post(app.url("/token"));
    let request = match &client.secret {
        Some(secret) => request.basic_auth(&client.id, Some(secret)),
        None => {
            form.push(("client_id", client.id.as_str()));
            request
        }
    };
    request.form(&form).send().await.unwrap()
}

/// A refresh that must succeed: the token response.
async fn refreshed(app: &TestApp, client: &WebClient, token: &str, case: &str) -> Value {
    let response = refresh(app, client, token, None).await;
    assert_eq!(response.status(), 200, "{case}");
    assert_no_store(&response);
    response.json().await.unwrap()
}

/// Asserts an RFC 6749 §5.2 error response from `/token`.
async fn assert_token_error(response: reqwest::Response, status: u16, error: &str, case: &str) {
    assert_eq!(response.status().as_u16(), status, "{case}");
    assert_no_store(&response);
    let challenge = challenge(&response);
    if status == 401 {
        assert!(
            challenge
                .as_deref()
                .is_some_and(|c| c.starts_with("Basic ")),
            "{case}: WWW-Authenticate {challenge:?}"
        );
    } else {
        assert_eq!(challenge, None, "{case}");
    }
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], error, "{case}: {body}");
}

/// §5.2: a refresh token that is invalid, expired, revoked or another
/// client's is `invalid_grant`.
async fn assert_refresh_rejected(app: &TestApp, client: &WebClient, token: &str, case: &str) {
    let response = refresh(app, client, token, None).await;
    assert_token_error(response, 400, "invalid_grant", case).await;
}

/// `POST /introspect` as the resource server: the JSON answer.
async fn introspect(app: &TestApp, server: &(String, String), token: &str) -> Value {
    let response = app
        .http
        .post(app.url("/introspect"))
        .basic_auth(&server.0, Some(&server.1))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "introspection answers 200");
    response.json().await.unwrap()
}

/// The access token works at /userinfo (OIDC Core §5.3) and is active at
/// /introspect (RFC 7662 §2.2).
async fn assert_access_token_works(
    app: &TestApp,
    server: &(String, String),
    token: &str,
    user_id: &str,
    case: &str,
) {
    let response = userinfo(app, token).await;
    assert_eq!(response.status(), 200, "{case}");
    let claims: Value = response.json().await.unwrap();
    assert_eq!(claims["sub"], user_id, "{case}");
    let answer = introspect(app, server, token).await;
    assert_eq!(answer["active"], true, "{case}: {answer}");
}

/// A revoked access token: 401 `invalid_token` at /userinfo (RFC 6750
/// §3.1) and exactly `{"active": false}` at /introspect (RFC 7662 §2.2).
async fn assert_access_token_revoked(
    app: &TestApp,
    server: &(String, String),
    token: &str,
    case: &str,
) {
    let response = userinfo(app, token).await;
    assert_eq!(response.status(), 401, "{case}");
    let challenge = challenge(&response).unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains(r#"error="invalid_token""#),
        "{case}: WWW-Authenticate {challenge:?}"
    );
    assert_eq!(
        introspect(app, server, token).await,
        json!({"active": false}),
        "{case}"
    );
}

type TokenClient =
    BasicClient<EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// The `oauth2` crate as `client`: Basic with the secret, or `client_id`
/// in the body for a public client.
fn oauth2_client(app: &TestApp, client: &WebClient) -> TokenClient {
    let oauth = BasicClient::new(ClientId::new(client.id.clone()))
        .set_token_uri(TokenUrl::new(app.url("/token")).unwrap());
    match &client.secret {
        Some(secret) => oauth.set_client_secret(ClientSecret::new(secret.clone())),
        None => oauth,
    }
}

/// The `jti` of an access token (unverified: the token was verified where
/// it was issued).
fn jti(access_token: &str) -> String {
    crate::authorization_code::jwt_part(access_token, 1)["jti"]
        .as_str()
        .expect("a jti")
        .to_owned()
}

/// Whether the store has the access token `jti` revoked.
async fn access_token_revoked_in_store(app: &TestApp, jti: &str) -> bool {
    let runtime = Runtime::open(&app.config, false, &SystemClock)
        .await
        .expect("open database");
    let record = runtime
        .store
        .find_access_token(jti)
        .await
        .unwrap()
        .expect("the access token is on record");
    runtime.store.close().await;
    record.revoked
}

/// RFC 6749 §6 with rotation (RFC 9700 §4.14.2): a refresh returns a new
/// access token and a new refresh token; the one presented is consumed.
/// OIDC Core §12.2: the ID token keeps the original `auth_time`, no nonce.
async fn refresh_rotates_the_refresh_token_and_consumes_the_old_one(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = offline_client(&app, false).await;
    let user_id = app.user("alice").await;
    let server = resource_server(&app).await;
    let first = offline_sign_in(&app, &client, "alice").await;
    let r0 = field(&first, "refresh_token");
    let signed_in = verify_id_token(&app, &field(&first, "id_token"), &client.id).await;

    let token = oauth2_client(&app, &client)
        .exchange_refresh_token(&RefreshToken::new(r0.clone()))
        .request_async(&app.http)
        .await
        .expect("refreshed with the oauth2 crate");
    let r1 = token
        .refresh_token()
        .expect("a new refresh token (rotation)")
        .secret()
        .clone();
    assert_ne!(r1, r0, "rotation issues a different token");
    assert_eq!(
        token.expires_in(),
        Some(std::time::Duration::from_secs(900))
    );
    assert_eq!(
        token
            .scopes()
            .expect("scope in the response")
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>(),
        ["offline_access", "openid", "orders:read", "orders:write"],
        "§6: without a scope parameter the original scope"
    );
    let a1 = token.access_token().secret().clone();
    let claims = verify_access_token(&app, &a1, &app.issuer).await;
    assert_eq!(claims["sub"], user_id.as_str());
    assert_eq!(claims["client_id"], client.id.as_str());
    assert_ne!(claims["jti"], jti(&field(&first, "access_token")).as_str());
    assert_access_token_works(&app, &server, &a1, &user_id, "the refreshed access token").await;

    // The presented token is consumed; its successor is live (RFC 7662).
    assert_eq!(
        introspect(&app, &server, &r0).await,
        json!({"active": false})
    );
    let live = introspect(&app, &server, &r1).await;
    assert_eq!(live["active"], true, "{live}");
    assert_eq!(live["token_type"], "refresh_token");
    assert_eq!(live["client_id"], client.id.as_str());
    assert_eq!(live["sub"], user_id.as_str());
    assert_eq!(live["scope"], OFFLINE_SCOPE_SORTED);

    // The next rotation, by hand: the whole §5.1 response.
    let second = refreshed(&app, &client, &r1, "second rotation").await;
    assert_eq!(second["token_type"], "Bearer");
    assert_eq!(second["expires_in"], 900);
    assert_eq!(second["scope"], OFFLINE_SCOPE_SORTED);
    let r2 = field(&second, "refresh_token");
    assert!(r2 != r1 && r2 != r0, "every rotation issues a new token");
    let id_token = verify_id_token(&app, &field(&second, "id_token"), &client.id).await;
    assert_eq!(id_token["sub"], user_id.as_str());
    assert_eq!(id_token["auth_time"], signed_in["auth_time"]);
    assert!(id_token["auth_time"].is_i64(), "{id_token}");
    assert_eq!(id_token.get("nonce"), None, "no nonce on refresh");
    assert_access_token_works(
        &app,
        &server,
        &field(&second, "access_token"),
        &user_id,
        "the second refreshed access token",
    )
    .await;
}

/// RFC 9700 §4.14.2: a consumed refresh token presented again means one of
/// two parties holds a stolen copy: the whole family is revoked — the
/// latest refresh token and every access token issued from the family.
async fn reused_refresh_token_revokes_the_whole_family(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = offline_client(&app, false).await;
    let user_id = app.user("alice").await;
    let server = resource_server(&app).await;
    let first = offline_sign_in(&app, &client, "alice").await;
    let (r0, a0) = (
        field(&first, "refresh_token"),
        field(&first, "access_token"),
    );
    let second = refreshed(&app, &client, &r0, "first rotation").await;
    let (r1, a1) = (
        field(&second, "refresh_token"),
        field(&second, "access_token"),
    );
    let third = refreshed(&app, &client, &r1, "second rotation").await;
    let (r2, a2) = (
        field(&third, "refresh_token"),
        field(&third, "access_token"),
    );
    for (access, case) in [(&a0, "a0"), (&a1, "a1"), (&a2, "a2")] {
        assert_access_token_works(&app, &server, access, &user_id, case).await;
    }
    assert_eq!(introspect(&app, &server, &r2).await["active"], true);

    assert_refresh_rejected(&app, &client, &r0, "the consumed first token again").await;

    assert_refresh_rejected(&app, &client, &r2, "the latest token after reuse").await;
    assert_eq!(
        introspect(&app, &server, &r2).await,
        json!({"active": false})
    );
    for (access, case) in [(&a0, "a0"), (&a1, "a1"), (&a2, "a2")] {
        assert_access_token_revoked(&app, &server, access, case).await;
    }
    // The user signs in again: a new family, unaffected.
    let fresh = offline_sign_in(&app, &client, "alice").await;
    refreshed(
        &app,
        &client,
        &field(&fresh, "refresh_token"),
        "a new family",
    )
    .await;
}

/// DESIGN "one rotation wins": of 50 concurrent refreshes of one token
/// exactly one gets a new pair (the rotation is one conditional UPDATE);
/// the other 49 are `invalid_grant`, and no request fails with a server
/// error ("database is locked", a deadlock).
///
/// The 49 losers each present a token that is by then consumed, which is
/// exactly what reuse looks like (RFC 9700 §4.14.2): the server cannot tell
/// a client's own racing retries from an attacker replaying a stolen token,
/// so the family is revoked — the winner's new refresh token and access
/// token stop working too. That is the designed behaviour: a client must
/// not send the same refresh token twice.
async fn concurrent_refreshes_of_one_token_have_one_winner(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = offline_client(&app, false).await;
    app.user("alice").await;
    let server = resource_server(&app).await;
    let first = offline_sign_in(&app, &client, "alice").await;
    let r0 = field(&first, "refresh_token");

    let started = Instant::now();
    let responses = join_all((0..50).map(|_| refresh(&app, &client, &r0, None))).await;
    let elapsed = started.elapsed();
    eprintln!("{backend:?}: 50 concurrent refreshes took {elapsed:?}");
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    let mut winners = Vec::new();
    for response in responses {
        let status = response.status().as_u16();
        *statuses.entry(status).or_default() += 1;
        let body: Value = response.json().await.unwrap();
        if status == 200 {
            winners.push(body);
        } else {
            *errors.entry(body["error"].to_string()).or_default() += 1;
        }
    }
    assert_eq!(
        statuses,
        BTreeMap::from([(200, 1), (400, 49)]),
        "errors: {errors:?}"
    );
    assert_eq!(
        errors,
        BTreeMap::from([(r#""invalid_grant""#.to_owned(), 49)])
    );
    let winner = &winners[0];
    // The losers' reuse revoked the family: the winner's pair is dead too.
    assert_refresh_rejected(
        &app,
        &client,
        &field(winner, "refresh_token"),
        "the winner's refresh token after the losers' reuse",
    )
    .await;
    assert_access_token_revoked(
        &app,
        &server,
        &field(winner, "access_token"),
        "the winner's access token",
    )
    .await;
    assert_access_token_revoked(
        &app,
        &server,
        &field(&first, "access_token"),
        "the first access token",
    )
    .await;
}

/// The optional grace window (RFC 9700 §4.14.2 allows detecting reuse with
/// tolerance for lost responses): a retry of the token just consumed, while
/// its successor is unused, gets a new pair and the unused successor is
/// revoked — the family lives on.
async fn retry_within_the_grace_window_replaces_the_unused_successor(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| c.refresh_reuse_grace = 2).await else {
        return;
    };
    let client = offline_client(&app, false).await;
    let user_id = app.user("alice").await;
    let server = resource_server(&app).await;
    let first = offline_sign_in(&app, &client, "alice").await;
    let (r0, a0) = (
        field(&first, "refresh_token"),
        field(&first, "access_token"),
    );
    // The response carrying r1 "is lost".
    let lost = refreshed(&app, &client, &r0, "first rotation").await;
    let (r1, a1) = (field(&lost, "refresh_token"), field(&lost, "access_token"));

    let retried = refreshed(&app, &client, &r0, "retry within the window").await;
    let (r1b, a1b) = (
        field(&retried, "refresh_token"),
        field(&retried, "access_token"),
    );
    assert!(r1b != r1 && r1b != r0, "a new refresh token");
    assert_eq!(retried["scope"], OFFLINE_SCOPE_SORTED);
    assert!(retried["id_token"].is_string());

    // The replaced successor's access token is revoked, and the family
    // lives on.
    assert_access_token_revoked(&app, &server, &a1, "the replaced successor's access token").await;
    assert_access_token_works(&app, &server, &a0, &user_id, "the first access token").await;
    assert_access_token_works(&app, &server, &a1b, &user_id, "the retry's access token").await;
    let next = refreshed(&app, &client, &r1b, "the retry's refresh token").await;
    let a2 = field(&next, "access_token");
    assert_access_token_works(&app, &server, &a2, &user_id, "after the retry").await;
    // A second retry of r0 is not another lost response: grace is once per
    // token, so it is reuse and the family goes.
    assert_refresh_rejected(&app, &client, &r0, "a second retry").await;
    assert_access_token_revoked(&app, &server, &a2, "the family after a second retry").await;
}

/// The successor the grace path replaced was not lost after all: whoever
/// presents it holds a copy the server gave out twice. Reuse.
async fn replaced_successor_presented_later_is_reuse(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| c.refresh_reuse_grace = 2).await else {
        return;
    };
    let client = offline_client(&app, false).await;
    app.user("alice").await;
    let server = resource_server(&app).await;
    let first = offline_sign_in(&app, &client, "alice").await;
    let r0 = field(&first, "refresh_token");
    let lost = refreshed(&app, &client, &r0, "first rotation").await;
    let r1 = field(&lost, "refresh_token");
    let retried = refreshed(&app, &client, &r0, "retry within the window").await;
    let a1b = field(&retried, "access_token");
    assert_refresh_rejected(&app, &client, &r1, "the replaced successor").await;
    assert_access_token_revoked(
        &app,
        &server,
        &a1b,
        "the family after the replaced token came back",
    )
    .await;
    assert_refresh_rejected(
        &app,
        &client,
        &field(&retried, "refresh_token"),
        "the retry's token",
    )
    .await;
}

/// A retry after the successor was used is reuse, even within the window.
async fn retry_after_the_successor_was_used_is_reuse(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| c.refresh_reuse_grace = 2).await else {
        return;
    };
    let client = offline_client(&app, false).await;
    app.user("alice").await;
    let server = resource_server(&app).await;
    let first = offline_sign_in(&app, &client, "alice").await;
    let r0 = field(&first, "refresh_token");
    let second = refreshed(&app, &client, &r0, "first rotation").await;
    let third = refreshed(&app, &client, &field(&second, "refresh_token"), "second").await;

    assert_refresh_rejected(&app, &client, &r0, "retry after the successor was used").await;
    assert_refresh_rejected(
        &app,
        &client,
        &field(&third, "refresh_token"),
        "the latest token after reuse",
    )
    .await;
    assert_access_token_revoked(&app, &server, &field(&third, "access_token"), "a2").await;
}

/// Outside the window a retry is reuse and revokes the family.
async fn retry_outside_the_grace_window_is_reuse(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| c.refresh_reuse_grace = 2).await else {
        return;
    };
    let client = offline_client(&app, false).await;
    app.user("alice").await;
    let server = resource_server(&app).await;
    let first = offline_sign_in(&app, &client, "alice").await;
    let r0 = field(&first, "refresh_token");
    let second = refreshed(&app, &client, &r0, "first rotation").await;
    tokio::time::sleep(Duration::from_millis(2200)).await;

    assert_refresh_rejected(&app, &client, &r0, "retry after the window").await;
    assert_refresh_rejected(
        &app,
        &client,
        &field(&second, "refresh_token"),
        "the unused successor after reuse",
    )
    .await;
    assert_access_token_revoked(&app, &server, &field(&second, "access_token"), "a1").await;
}

/// RFC 6749 §6: "The requested scope MUST NOT include any scope not
/// originally granted by the resource owner, and if omitted is treated as
/// equal to the scope originally granted". A narrower scope is granted for
/// this token only; a wider one is `invalid_scope` and consumes nothing.
async fn refresh_may_narrow_the_scope_but_never_widen_it(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = offline_client(&app, false).await;
    let user_id = app.user("alice").await;
    let first = offline_sign_in(&app, &client, "alice").await;

    let narrowed = oauth2_client(&app, &client)
        .exchange_refresh_token(&RefreshToken::new(field(&first, "refresh_token")))
        .add_scope(Scope::new("orders:read".into()))
        .request_async(&app.http)
        .await
        .expect("a narrower scope is granted");
    assert_eq!(
        narrowed
            .scopes()
            .expect("scope in the response")
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>(),
        ["orders:read"]
    );
    let claims = verify_access_token(&app, narrowed.access_token().secret(), &app.issuer).await;
    assert_eq!(claims["scope"], "orders:read");
    assert_eq!(claims["sub"], user_id.as_str());
    let r1 = narrowed
        .refresh_token()
        .expect("a new refresh token")
        .secret()
        .clone();

    for (scope, case) in [
        ("orders:read profile", "an OIDC scope not granted"),
        ("orders:read admin", "a scope the client was never allowed"),
        (
            "openid offline_access orders:read orders:write email",
            "one more",
        ),
    ] {
        let response = refresh(&app, &client, &r1, Some(scope)).await;
        assert_token_error(response, 400, "invalid_scope", case).await;
    }
    let response = refresh(&app, &client, &r1, Some("orders:read  orders:write")).await;
    assert_token_error(response, 400, "invalid_scope", "a malformed scope").await;

    // r1 was not consumed by the refusals, and the family kept the original
    // scope: without `scope` the full grant comes back, with an ID token.
    let full = refreshed(&app, &client, &r1, "after the refused widenings").await;
    assert_eq!(full["scope"], OFFLINE_SCOPE_SORTED);
    let claims = verify_access_token(&app, &field(&full, "access_token"), &app.issuer).await;
    assert_eq!(claims["scope"], OFFLINE_SCOPE_SORTED);
    assert!(full["id_token"].is_string(), "openid is back: {full}");
    // Narrowed without openid: no ID token (OIDC Core §12.2), still a
    // refresh token.
    let response = refresh(
        &app,
        &client,
        &field(&full, "refresh_token"),
        Some("orders:write offline_access"),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["scope"], "offline_access orders:write");
    assert_eq!(body.get("id_token"), None, "{body}");
    assert!(body["refresh_token"].is_string());
}

/// RFC 6749 §6 / §10.4: a refresh token is bound to the client it was
/// issued to; another client presenting it gets `invalid_grant` and does
/// not hurt the owner's family.
async fn another_clients_refresh_token_is_rejected(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mine = offline_client(&app, false).await;
    let other = offline_client(&app, false).await;
    let spa = offline_client(&app, true).await;
    app.user("alice").await;
    let first = offline_sign_in(&app, &mine, "alice").await;
    let r0 = field(&first, "refresh_token");

    assert_refresh_rejected(&app, &other, &r0, "another confidential client").await;
    assert_refresh_rejected(&app, &spa, &r0, "a public client").await;
    let second = refreshed(&app, &mine, &r0, "the owner, afterwards").await;
    refreshed(
        &app,
        &mine,
        &field(&second, "refresh_token"),
        "the family is alive",
    )
    .await;
}

/// RFC 6749 §5.2 for the refresh grant: a failed client authentication is
/// 401 `invalid_client`; a missing `refresh_token` is `invalid_request`; a
/// client not registered for the grant is `unauthorized_client`; an
/// unknown token is `invalid_grant`. None of them consumes the token.
async fn refresh_requests_get_exact_errors(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = offline_client(&app, false).await;
    let code_only = app.web_client(false, &["orders:read"]).await;
    app.user("alice").await;
    let first = offline_sign_in(&app, &client, "alice").await;
    let r0 = field(&first, "refresh_token");

    let wrong_secret = WebClient {
        secret: Some("not-the-secret".into()),
        ..client.clone()
    };
    let response = refresh(&app, &wrong_secret, &r0, None).await;
    assert_token_error(response, 401, "invalid_client", "wrong secret").await;

    let response = app
        .http
        .post(app.url("/token"))
        .basic_auth(&client.id, client.secret.as_ref())
        .form(&[("grant_type", "refresh_token")])
        .send()
        .await
        .unwrap();
    assert_token_error(response, 400, "invalid_request", "no refresh_token").await;

    let response = refresh(&app, &code_only, &r0, None).await;
    assert_token_error(
        response,
        400,
        "unauthorized_client",
        "a client without the refresh_token grant",
    )
    .await;

    let response = refresh(&app, &client, "not-a-refresh-token", None).await;
    assert_token_error(response, 400, "invalid_grant", "an unknown token").await;

    // With the oauth2 crate: the same error, parsed.
    let error = oauth2_client(&app, &wrong_secret)
        .exchange_refresh_token(&RefreshToken::new(r0.clone()))
        .request_async(&app.http)
        .await
        .unwrap_err();
    match error {
        RequestTokenError::ServerResponse(response) => {
            assert_eq!(response.error(), &BasicErrorResponseType::InvalidClient)
        }
        other => panic!("expected an invalid_client response, got {other:?}"),
    }

    refreshed(&app, &client, &r0, "none of the errors consumed the token").await;
}

/// OIDC Core §11: a refresh token only when `offline_access` was requested
/// (and consented), and only for a client allowed the refresh_token grant;
/// for any other client `offline_access` is a scope it may not request
/// (RFC 6749 §4.1.2.1 `invalid_scope`, redirected).
async fn refresh_token_only_with_offline_access_for_a_client_allowed_the_grant(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = offline_client(&app, false).await;
    let code_only = app.web_client(false, &["orders:read"]).await;
    app.user("alice").await;
    let browser = app.browser();

    let online = sign_in_and_exchange(
        &app,
        &browser,
        &client,
        "alice",
        &[("scope", "openid orders:read")],
    )
    .await;
    assert!(online["access_token"].is_string());
    assert_eq!(online.get("refresh_token"), None, "{online}");

    let offline = offline_sign_in(&app, &client, "alice").await;
    assert!(offline["refresh_token"].is_string(), "{offline}");

    let pkce = pkce();
    let query = authorize_query(
        &code_only,
        &pkce,
        &[("scope", "openid offline_access orders:read")],
    );
    let response = browser.authorize(&query).await;
    assert_eq!(response.status(), 303);
    let back = location(&response);
    assert!(back.starts_with("https://app.example/cb?"), "{back}");
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("invalid_scope")
    );
    assert_eq!(query_param(&back, "state").as_deref(), Some("st4te"));
    assert_eq!(query_param(&back, "code"), None);
}

/// A refresh token outlives nothing it was granted from (RFC 6749 §10.4,
/// OIDC Core §11): a disabled user ends the family at the next refresh.
async fn disabled_user_ends_the_family(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = offline_client(&app, false).await;
    let user_id = app.user("alice").await;
    let first = offline_sign_in(&app, &client, "alice").await;
    let second = refreshed(&app, &client, &field(&first, "refresh_token"), "before").await;
    let a1 = field(&second, "access_token");
    assert!(!access_token_revoked_in_store(&app, &jti(&a1)).await);

    disable_user(&app, &user_id).await;
    assert_refresh_rejected(
        &app,
        &client,
        &field(&second, "refresh_token"),
        "a disabled user's refresh token",
    )
    .await;
    // The family is revoked: its access tokens are on record as revoked.
    for (token, case) in [(&field(&first, "access_token"), "a0"), (&a1, "a1")] {
        assert!(
            access_token_revoked_in_store(&app, &jti(token)).await,
            "{case}"
        );
    }
}

/// A withdrawn consent ends the family: the refresh checks the consent
/// still covers the family's scope, and revokes the family when not.
async fn revoked_consent_ends_the_family(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = offline_client(&app, false).await;
    let user_id = app.user("alice").await;
    let server = resource_server(&app).await;
    let first = offline_sign_in(&app, &client, "alice").await;
    let a0 = field(&first, "access_token");
    assert_access_token_works(&app, &server, &a0, &user_id, "before").await;

    // The consent row alone disappears (`revoke_consent` would end the
    // family at once, see cli_consent_revocation_ends_the_family) ...
    crate::helpers::execute_sql(
        &app,
        backend,
        &format!("DELETE FROM consents WHERE user_id = '{user_id}'"),
    )
    .await;
    assert_access_token_works(&app, &server, &a0, &user_id, "consent gone, family alive").await;

    // ... the next refresh finds the consent gone and ends the family.
    assert_refresh_rejected(
        &app,
        &client,
        &field(&first, "refresh_token"),
        "refresh without consent",
    )
    .await;
    assert_access_token_revoked(&app, &server, &a0, "the family's access token").await;
}

/// The refresh checks the user itself, not only that disabling them
/// revoked their families: a user row marked disabled by any other means
/// (here SQL alone, families untouched) ends the family at the next
/// refresh, and its access tokens with it.
async fn refresh_checks_the_user_is_still_enabled(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = offline_client(&app, false).await;
    let user_id = app.user("alice").await;
    let first = offline_sign_in(&app, &client, "alice").await;
    let a0 = field(&first, "access_token");
    crate::helpers::execute_sql(
        &app,
        backend,
        &format!("UPDATE users SET disabled = TRUE WHERE id = '{user_id}'"),
    )
    .await;
    assert!(!access_token_revoked_in_store(&app, &jti(&a0)).await);
    assert_refresh_rejected(
        &app,
        &client,
        &field(&first, "refresh_token"),
        "a disabled user's refresh token",
    )
    .await;
    assert!(
        access_token_revoked_in_store(&app, &jti(&a0)).await,
        "the family is revoked"
    );
}

/// A retry within the grace window is checked as a refresh is: with the
/// consent gone meanwhile it is `invalid_grant` and the family ends (the
/// unused successor and every access token), instead of a new pair.
async fn retry_within_the_grace_window_rechecks_the_consent(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| c.refresh_reuse_grace = 2).await else {
        return;
    };
    let client = offline_client(&app, false).await;
    let user_id = app.user("alice").await;
    let server = resource_server(&app).await;
    let first = offline_sign_in(&app, &client, "alice").await;
    let r0 = field(&first, "refresh_token");
    // The response carrying r1 "is lost"; then the consent row disappears.
    let lost = refreshed(&app, &client, &r0, "first rotation").await;
    crate::helpers::execute_sql(
        &app,
        backend,
        &format!("DELETE FROM consents WHERE user_id = '{user_id}'"),
    )
    .await;
    assert_refresh_rejected(&app, &client, &r0, "a retry without consent").await;
    for (token, case) in [
        (field(&first, "access_token"), "the first access token"),
        (
            field(&lost, "access_token"),
            "the lost response's access token",
        ),
    ] {
        assert_access_token_revoked(&app, &server, &token, case).await;
    }
    assert_refresh_rejected(
        &app,
        &client,
        &field(&lost, "refresh_token"),
        "the unused successor",
    )
    .await;
}

/// `authd users consents ID --revoke CLIENT` revokes the client's families
/// for that user at once: their access tokens stop working before any
/// refresh is tried.
async fn cli_consent_revocation_ends_the_family(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = offline_client(&app, false).await;
    let user_id = app.user("alice").await;
    let server = resource_server(&app).await;
    let first = offline_sign_in(&app, &client, "alice").await;
    let second = refreshed(&app, &client, &field(&first, "refresh_token"), "before").await;
    let a1 = field(&second, "access_token");
    assert_access_token_works(&app, &server, &a1, &user_id, "before").await;

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_authd"))
        .args(["users", "consents", &user_id, "--revoke", &client.id])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &app.database.url)
        .env("AUTHD_MASTER_KEY", app.master_key.to_base64())
        .env("RUST_LOG", "warn")
        .output()
        .expect("authd binary runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    assert_access_token_revoked(&app, &server, &a1, "a1 after the CLI revocation").await;
    assert_access_token_revoked(&app, &server, &field(&first, "access_token"), "a0").await;
    assert_refresh_rejected(
        &app,
        &client,
        &field(&second, "refresh_token"),
        "the latest refresh token after the CLI revocation",
    )
    .await;
}

/// A deleted client can no longer authenticate: its refresh tokens die with
/// it (`invalid_client`, RFC 6749 §5.2) once the server sees the deletion.
async fn deleted_client_can_no_longer_refresh(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = offline_client(&app, false).await;
    app.user("alice").await;
    let first = offline_sign_in(&app, &client, "alice").await;
    let second = refreshed(&app, &client, &field(&first, "refresh_token"), "before").await;
    let r1 = field(&second, "refresh_token");

    let runtime = Runtime::open(&app.config, false, &SystemClock)
        .await
        .expect("open database");
    registration::delete(runtime.store.as_ref(), &SystemClock, &client.id)
        .await
        .expect("client deleted");
    runtime.store.close().await;

    // The server's client cache refreshes every 100 ms in tests; until then
    // the token itself is already gone with its client (invalid_grant).
    for _ in 0..50 {
        let response = refresh(&app, &client, &r1, None).await;
        if response.status() == 401 {
            assert_token_error(response, 401, "invalid_client", "deleted client").await;
            return;
        }
        assert_token_error(response, 400, "invalid_grant", "deleted, still cached").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the deleted client still authenticates after 5 s");
}

/// RFC 6749 §2.3, §6: a public client refreshes with its `client_id` in the
/// body and no secret; without any client identification it is
/// `invalid_client`.
async fn public_client_refreshes_with_its_client_id(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let spa = offline_client(&app, true).await;
    assert_eq!(spa.secret, None);
    let user_id = app.user("alice").await;
    let server = resource_server(&app).await;
    let first = offline_sign_in(&app, &spa, "alice").await;
    let r0 = field(&first, "refresh_token");

    let token = oauth2_client(&app, &spa)
        .exchange_refresh_token(&RefreshToken::new(r0.clone()))
        .request_async(&app.http)
        .await
        .expect("a public client refreshes with the oauth2 crate");
    let r1 = token
        .refresh_token()
        .expect("a new refresh token")
        .secret()
        .clone();
    assert_ne!(r1, r0);
    let claims = verify_access_token(&app, token.access_token().secret(), &app.issuer).await;
    assert_eq!(claims["client_id"], spa.id.as_str());
    assert_access_token_works(&app, &server, token.access_token().secret(), &user_id, "a1").await;

    let response = app
        .http
        .post(app.url("/token"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", &r1)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "no client identification");
    assert_no_store(&response);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");

    let by_hand = refreshed(&app, &spa, &r1, "client_id in the body").await;
    assert_ne!(field(&by_hand, "refresh_token"), r1);
    assert!(by_hand["id_token"].is_string());
}

/// A refresh token lives `refresh_token_ttl`: after it, `invalid_grant` —
/// an expired token is not reuse, so the family's access tokens live on.
async fn refresh_token_expires_after_its_lifetime(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| c.refresh_token_ttl = 1).await else {
        return;
    };
    let client = offline_client(&app, false).await;
    let user_id = app.user("alice").await;
    let server = resource_server(&app).await;
    let first = offline_sign_in(&app, &client, "alice").await;
    let second = refreshed(&app, &client, &field(&first, "refresh_token"), "in time").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    assert_refresh_rejected(
        &app,
        &client,
        &field(&second, "refresh_token"),
        "after its lifetime",
    )
    .await;
    assert_access_token_works(
        &app,
        &server,
        &field(&second, "access_token"),
        &user_id,
        "expiry revokes nothing",
    )
    .await;
}

/// A family ends `refresh_family_ttl` after the sign-in however often it is
/// rotated: a token still within its own lifetime is refused then.
async fn refresh_family_ends_at_its_absolute_lifetime(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| {
        c.refresh_token_ttl = 2;
        c.refresh_family_ttl = 3;
    })
    .await
    else {
        return;
    };
    let client = offline_client(&app, false).await;
    app.user("alice").await;
    let server = resource_server(&app).await;
    let first = offline_sign_in(&app, &client, "alice").await;
    // The family was created before this instant.
    let signed_in = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // r1 lives until ~3.5 s, its family until ~3 s.
    let second = refreshed(&app, &client, &field(&first, "refresh_token"), "at 1.5 s").await;
    let r1 = field(&second, "refresh_token");
    let live = introspect(&app, &server, &r1).await;
    assert_eq!(live["active"], true, "{live}");
    tokio::time::sleep(Duration::from_millis(3200).saturating_sub(signed_in.elapsed())).await;

    assert_refresh_rejected(&app, &client, &r1, "after the family's lifetime").await;
}

/// RFC 6749 §4.1.2: a replayed code revokes every token issued from it —
/// the refresh-token family too, not only the first access token.
async fn replayed_code_revokes_the_refresh_family(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = offline_client(&app, false).await;
    app.user("alice").await;
    let server = resource_server(&app).await;
    let browser = app.browser();
    let pkce = crate::helpers::pkce();
    let code = crate::authorization_code::code_for(
        &browser,
        &client,
        &pkce,
        "alice",
        &[("scope", OFFLINE_SCOPE)],
    )
    .await;
    let first = crate::helpers::exchange_code(&app, &client, &code, &pkce.verifier).await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    let r0 = field(&first, "refresh_token");
    let later = refreshed(&app, &client, &r0, "a refresh before the replay").await;
    let replay = crate::helpers::exchange_code(&app, &client, &code, &pkce.verifier).await;
    assert_token_error(replay, 400, "invalid_grant", "the replayed code").await;
    assert_refresh_rejected(
        &app,
        &client,
        &field(&later, "refresh_token"),
        "the family after the replay",
    )
    .await;
    assert_access_token_revoked(
        &app,
        &server,
        &field(&later, "access_token"),
        "an access token refreshed before the replay",
    )
    .await;
}

/// OIDC Core §11: offline access always asks, even a pre-consented
/// first-party client; without offline_access such a client skips the page.
async fn offline_access_is_consented_even_for_a_skip_consent_client(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app
        .web_client_with(NewClient {
            name: "First party".into(),
            redirect_uris: vec!["https://app.example/cb".into()],
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            skip_consent: true,
            ..Default::default()
        })
        .await;
    app.user("alice").await;
    let browser = app.browser();
    let online =
        crate::helpers::authorize_query(&client, &crate::helpers::pkce(), &[("scope", "openid")]);
    let first = browser.authorize(&online).await;
    let login = crate::helpers::location(&first);
    let after_login = browser
        .log_in(&login, "alice", crate::helpers::PASSWORD)
        .await;
    assert!(
        crate::helpers::location(&after_login).starts_with("https://app.example/cb?code="),
        "no consent page without offline_access"
    );
    let offline = crate::helpers::authorize_query(
        &client,
        &crate::helpers::pkce(),
        &[("scope", "openid offline_access")],
    );
    let asked = browser.authorize(&offline).await;
    assert!(
        crate::helpers::location(&asked).starts_with("/consent?"),
        "offline access asks: {}",
        crate::helpers::location(&asked)
    );
}

/// A password reset after a compromise locks the intruder out: sessions end
/// and refresh families are revoked.
async fn password_change_ends_sessions_and_families(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = offline_client(&app, false).await;
    let user_id = app.user("alice").await;
    let tokens = offline_sign_in(&app, &client, "alice").await;
    let runtime = Runtime::open(&app.config, false, &SystemClock)
        .await
        .unwrap();
    let hash = authd::crypto::password::hash(
        &"a brand new password".to_owned().into(),
        &runtime.secrets.peppers.current().unwrap(),
    )
    .unwrap();
    assert!(
        runtime
            .store
            .set_password(
                authd::domain::UserId(user_id.parse().unwrap()),
                &hash.phc,
                hash.key_version,
                chrono::Utc::now()
            )
            .await
            .unwrap()
    );
    runtime.store.close().await;
    assert_refresh_rejected(
        &app,
        &client,
        &field(&tokens, "refresh_token"),
        "after the password change",
    )
    .await;
}

on_both_backends!(
    refresh_rotates_the_refresh_token_and_consumes_the_old_one,
    reused_refresh_token_revokes_the_whole_family,
    concurrent_refreshes_of_one_token_have_one_winner,
    retry_within_the_grace_window_replaces_the_unused_successor,
    replaced_successor_presented_later_is_reuse,
    replayed_code_revokes_the_refresh_family,
    offline_access_is_consented_even_for_a_skip_consent_client,
    password_change_ends_sessions_and_families,
    retry_after_the_successor_was_used_is_reuse,
    retry_outside_the_grace_window_is_reuse,
    refresh_may_narrow_the_scope_but_never_widen_it,
    another_clients_refresh_token_is_rejected,
    refresh_requests_get_exact_errors,
    refresh_token_only_with_offline_access_for_a_client_allowed_the_grant,
    disabled_user_ends_the_family,
    revoked_consent_ends_the_family,
    refresh_checks_the_user_is_still_enabled,
    retry_within_the_grace_window_rechecks_the_consent,
    cli_consent_revocation_ends_the_family,
    deleted_client_can_no_longer_refresh,
    public_client_refreshes_with_its_client_id,
    refresh_token_expires_after_its_lifetime,
    refresh_family_ends_at_its_absolute_lifetime,
);
