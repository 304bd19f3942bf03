//! RFC 7009 token revocation at `POST /revoke` and RFC 7662 token
//! introspection at `POST /introspect`, on tokens from real sign-ins,
//! refreshes and client-credentials grants; and the database dump check:
//! no value stored in any table is a credential the server accepts.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use authd::clients::registration::NewClient;
use authd::clock::MockClock;
use authd::crypto::MasterKey;
use authd::startup::Application;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::authorization_code::{
    challenge, code_for, disable_user, jwt_part, sign_in_and_exchange, userinfo,
};
use crate::helpers::{
    Backend, Browser, Pkce, TestApp, WebClient, assert_no_store, cc_token, exchange_code,
    on_both_backends, pkce, run_authd, spawn_app, spawn_app_on, test_database, within_5_seconds,
};

/// The scope of a sign-in that yields a refresh token (OIDC Core §11).
const OFFLINE_SCOPE: &str = "openid offline_access orders:read";

/// A client that signs users in and may refresh: confidential at
/// `https://app.example/cb`, or public at `https://spa.example/cb`.
async fn offline_client(app: &TestApp, name: &str, public: bool) -> WebClient {
    app.web_client_with(NewClient {
        name: name.into(),
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
        scopes: vec!["orders:read".into()],
        ..Default::default()
    })
    .await
}

/// A resource server registered to introspect any token.
async fn introspector(app: &TestApp) -> (String, String) {
    let (id, secret) = app
        .register(NewClient {
            name: "API".into(),
            can_introspect: true,
            ..Default::default()
        })
        .await;
    (id, secret.expect("a confidential client"))
}

/// The tokens of one token response.
#[derive(Debug, Clone)]
struct Tokens {
    access: String,
    refresh: String,
    id_token: String,
    scope: String,
}

impl Tokens {
    fn from_response(body: &Value) -> Self {
        let field = |name: &str| {
            body[name]
                .as_str()
                .unwrap_or_else(|| panic!("{name} in {body}"))
                .to_owned()
        };
        Tokens {
            access: field("access_token"),
            refresh: field("refresh_token"),
            id_token: field("id_token"),
            scope: field("scope"),
        }
    }
}

/// Signs `username` in at `client` with `offline_access` and exchanges the code.
async fn sign_in_offline(
    app: &TestApp,
    browser: &Browser,
    client: &WebClient,
    username: &str,
) -> Tokens {
    let body =
        sign_in_and_exchange(app, browser, client, username, &[("scope", OFFLINE_SCOPE)]).await;
    Tokens::from_response(&body)
}

/// How a request authenticates its client (RFC 6749 §2.3.1).
#[derive(Clone, Copy)]
enum Auth<'a> {
    Basic(&'a str, &'a str),
    Post(&'a str, &'a str),
    IdOnly(&'a str),
}

impl<'a> Auth<'a> {
    /// Basic for a confidential client, `client_id` alone for a public one.
    fn of(client: &'a WebClient) -> Self {
        match &client.secret {
            Some(secret) => Auth::Basic(&client.id, secret),
            None => Auth::IdOnly(&client.id),
        }
    }
}

/// `POST path` with `form` and the client authentication `auth`.
async fn post(
    app: &TestApp,
    path: &str,
    auth: Auth<'_>,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut form: Vec<(&str, &str)> = form.to_vec();
    let mut request = app.http.post(app.url(path));
    match auth {
        Auth::Basic(id, secret) => request = request.basic_auth(id, Some(secret)),
        Auth::Post(id, secret) => {
            form.push(("client_id", id));
            form.push(("client_secret", secret));
        }
        Auth::IdOnly(id) => form.push(("client_id", id)),
    }
    request.form(&form).send().await.unwrap()
}

/// `POST /revoke` for `token`, with `token_type_hint` when given.
async fn revoke(
    app: &TestApp,
    auth: Auth<'_>,
    token: &str,
    hint: Option<&str>,
) -> reqwest::Response {
    let mut form = vec![("token", token)];
    if let Some(hint) = hint {
        form.push(("token_type_hint", hint));
    }
    post(app, "/revoke", auth, &form).await
}

/// RFC 7009 §2.2: 200 with nothing to read, never cached.
async fn assert_revoked(response: reqwest::Response, case: &str) {
    assert_eq!(response.status(), 200, "{case}");
    assert_eq!(response.headers()["cache-control"], "no-store", "{case}");
    assert_eq!(response.text().await.unwrap(), "", "{case}");
}

/// `POST /introspect` for `token`, with `token_type_hint` when given.
async fn introspect(
    app: &TestApp,
    auth: Auth<'_>,
    token: &str,
    hint: Option<&str>,
) -> reqwest::Response {
    let mut form = vec![("token", token)];
    if let Some(hint) = hint {
        form.push(("token_type_hint", hint));
    }
    post(app, "/introspect", auth, &form).await
}

/// RFC 7662 §2.2: a 200 JSON answer that no cache keeps; its body.
async fn introspection(app: &TestApp, auth: Auth<'_>, token: &str, hint: Option<&str>) -> Value {
    let response = introspect(app, auth, token, hint).await;
    assert_eq!(response.status(), 200, "introspection answers 200");
    assert_no_store(&response);
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "RFC 7662 §2.2: JSON"
    );
    response.json().await.unwrap()
}

/// RFC 7662 §2.2: an inactive token gets exactly `{"active": false}`.
async fn assert_inactive(app: &TestApp, auth: Auth<'_>, token: &str, case: &str) {
    let body = introspection(app, auth, token, None).await;
    assert_eq!(body, json!({"active": false}), "{case}");
}

/// `grant_type=refresh_token` at `/token` for `client`.
async fn refresh(app: &TestApp, client: &WebClient, token: &str) -> reqwest::Response {
    post(
        app,
        "/token",
        Auth::of(client),
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
    .await
}

/// Refreshes `token`, which must work; the new tokens.
async fn refreshed(app: &TestApp, client: &WebClient, token: &str) -> Tokens {
    let response = refresh(app, client, token).await;
    assert_eq!(response.status(), 200, "refresh succeeds");
    Tokens::from_response(&response.json().await.unwrap())
}

/// Asserts an RFC 6749 §5.2 error: status, `error`, no caching, and a Basic
/// challenge exactly when the status is 401.
async fn assert_error(response: reqwest::Response, status: u16, error: &str, case: &str) {
    assert_eq!(response.status().as_u16(), status, "{case}");
    assert_no_store(&response);
    let challenge = challenge(&response);
    if status == 401 {
        assert_eq!(
            challenge.as_deref(),
            Some(r#"Basic realm="authd", charset="UTF-8""#),
            "{case}: RFC 6749 §5.2 challenge"
        );
    } else {
        assert_eq!(challenge, None, "{case}");
    }
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], error, "{case}: {body}");
}

/// `/token` refuses a dead refresh token with invalid_grant (RFC 6749 §5.2).
async fn assert_refresh_refused(app: &TestApp, client: &WebClient, token: &str, case: &str) {
    let response = refresh(app, client, token).await;
    assert_error(response, 400, "invalid_grant", case).await;
}

/// `/userinfo` refuses a dead access token (RFC 6750 §3.1).
async fn assert_userinfo_refused(app: &TestApp, token: &str, case: &str) {
    let response = userinfo(app, token).await;
    assert_eq!(response.status(), 401, "{case}");
    let challenge = challenge(&response).unwrap_or_default();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{case}: {challenge}"
    );
}

fn space_set(scope: &str) -> BTreeSet<&str> {
    scope.split(' ').collect()
}

/// RFC 7009 §2.1: "If the particular token is a refresh token and the
/// authorization server supports the revocation of access tokens, then the
/// authorization server SHOULD also invalidate all access tokens based on
/// the same authorization grant". Revoking the latest refresh token ends
/// the family: every refresh token and every access token from it.
async fn revoking_a_refresh_token_revokes_its_whole_family(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = offline_client(&app, "App", false).await;
    let (api, api_secret) = introspector(&app).await;
    let api = Auth::Basic(&api, &api_secret);
    app.user("alice").await;
    let browser = app.browser();
    let first = sign_in_offline(&app, &browser, &client, "alice").await;
    let second = refreshed(&app, &client, &first.refresh).await;
    // Another sign-in of the same user at the same client: another family.
    let other = sign_in_offline(&app, &browser, &client, "alice").await;
    for token in [&first.access, &second.access, &other.access] {
        assert_eq!(userinfo(&app, token).await.status(), 200, "works before");
    }

    let response = revoke(
        &app,
        Auth::of(&client),
        &second.refresh,
        Some("refresh_token"),
    )
    .await;
    assert_revoked(response, "revoke the latest refresh token").await;

    assert_refresh_refused(&app, &client, &second.refresh, "revoked refresh token").await;
    assert_refresh_refused(&app, &client, &first.refresh, "its consumed parent").await;
    assert_userinfo_refused(&app, &first.access, "first access token of the family").await;
    assert_userinfo_refused(&app, &second.access, "access token from the refresh").await;
    for (token, case) in [
        (&first.refresh, "consumed parent"),
        (&second.refresh, "revoked refresh token"),
        (&first.access, "first access token"),
        (&second.access, "refreshed access token"),
    ] {
        assert_inactive(&app, api, token, case).await;
    }

    // The other family is untouched.
    assert_eq!(userinfo(&app, &other.access).await.status(), 200);
    refreshed(&app, &client, &other.refresh).await;
}

/// RFC 7009 §2.1: the hint only helps the lookup: "If the server is unable
/// to locate the token using the given hint, it MUST extend its search
/// across all of its supported token types", and an unknown hint is
/// ignored. Each client authentication method works as at `/token`.
async fn a_refresh_token_is_revoked_whatever_the_hint(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = offline_client(&app, "App", false).await;
    let secret = client.secret.clone().unwrap();
    app.user("alice").await;
    let browser = app.browser();
    for (hint, auth) in [
        (None, Auth::Basic(&client.id, &secret)),
        (Some("refresh_token"), Auth::Post(&client.id, &secret)),
        (Some("access_token"), Auth::Basic(&client.id, &secret)),
        (Some("id_token"), Auth::Post(&client.id, &secret)),
    ] {
        let case = format!("hint {hint:?}");
        let tokens = sign_in_offline(&app, &browser, &client, "alice").await;
        assert_revoked(revoke(&app, auth, &tokens.refresh, hint).await, &case).await;
        assert_refresh_refused(&app, &client, &tokens.refresh, &case).await;
        assert_userinfo_refused(&app, &tokens.access, &case).await;
    }
}

/// RFC 7009 §2.1: the client may revoke an access token; it stops working
/// at once. Only that token: the other access token of the same family and
/// the refresh token keep working. Revoking it again is still 200.
async fn revoking_an_access_token_denies_only_that_token(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = offline_client(&app, "App", false).await;
    let (api, api_secret) = introspector(&app).await;
    let api = Auth::Basic(&api, &api_secret);
    app.user("alice").await;
    let browser = app.browser();
    let first = sign_in_offline(&app, &browser, &client, "alice").await;
    let second = refreshed(&app, &client, &first.refresh).await;
    assert_eq!(userinfo(&app, &first.access).await.status(), 200);

    let response = revoke(&app, Auth::of(&client), &first.access, Some("access_token")).await;
    assert_revoked(response, "revoke an access token").await;
    assert_userinfo_refused(&app, &first.access, "revoked access token").await;
    assert_inactive(&app, api, &first.access, "revoked access token").await;
    let again = revoke(&app, Auth::of(&client), &first.access, None).await;
    assert_revoked(again, "revoked twice").await;

    assert_eq!(userinfo(&app, &second.access).await.status(), 200);
    assert_eq!(
        introspection(&app, api, &second.access, None).await["active"],
        true
    );

    // The wrong hint still finds it (§2.1).
    let response = revoke(
        &app,
        Auth::of(&client),
        &second.access,
        Some("refresh_token"),
    )
    .await;
    assert_revoked(response, "access token with the refresh_token hint").await;
    assert_userinfo_refused(&app, &second.access, "revoked with the wrong hint").await;
    assert_inactive(&app, api, &second.access, "revoked with the wrong hint").await;
    // The refresh token was not an access token and lives on.
    refreshed(&app, &client, &second.refresh).await;
}

/// RFC 7009 §2.1: a client-credentials access token can be revoked by its
/// client; it is inactive afterwards, to itself and to a resource server.
async fn revoking_a_client_credentials_token_makes_it_inactive(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (id, secret) = app.machine_client(&["orders:read"]).await;
    let token = cc_token(&app, &id, &secret).await;
    let machine = Auth::Basic(&id, &secret);
    let (api, api_secret) = introspector(&app).await;
    let api = Auth::Basic(&api, &api_secret);
    assert_eq!(
        introspection(&app, machine, &token, None).await["active"],
        true
    );
    assert_eq!(introspection(&app, api, &token, None).await["active"], true);

    assert_revoked(revoke(&app, machine, &token, None).await, "cc token").await;
    assert_inactive(
        &app,
        machine,
        &token,
        "revoked cc token, asked by its client",
    )
    .await;
    assert_inactive(&app, api, &token, "revoked cc token, asked by the API").await;
}

/// RFC 7009 §2.1: the server "verifies whether the token was issued to the
/// client making the revocation request"; §2.2: an invalid token is still
/// answered 200. Another client's tokens are not revoked and keep working.
async fn another_clients_tokens_are_not_revoked(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let owner = offline_client(&app, "App", false).await;
    let other = offline_client(&app, "Other app", false).await;
    let spa = offline_client(&app, "SPA", true).await;
    let (machine, machine_secret) = app.machine_client(&["orders:read"]).await;
    let (api, api_secret) = introspector(&app).await;
    let api = Auth::Basic(&api, &api_secret);
    app.user("alice").await;
    let browser = app.browser();
    let tokens = sign_in_offline(&app, &browser, &owner, "alice").await;
    let cc_token = cc_token(&app, &machine, &machine_secret).await;

    let user_tokens = [tokens.refresh.as_str(), tokens.access.as_str()];
    let all_tokens = [tokens.refresh.as_str(), tokens.access.as_str(), &cc_token];
    for (thief, foreign, name) in [
        (
            Auth::of(&other),
            &all_tokens[..],
            "another confidential client",
        ),
        (Auth::of(&spa), &all_tokens[..], "a public client"),
        (
            Auth::Basic(&machine, &machine_secret),
            &user_tokens[..],
            "a machine client",
        ),
        (Auth::of(&owner), &[cc_token.as_str()][..], "the web app"),
    ] {
        for token in foreign {
            for hint in [None, Some("access_token"), Some("refresh_token")] {
                let response = revoke(&app, thief, token, hint).await;
                assert_revoked(response, name).await;
            }
        }
    }
    assert_eq!(
        introspection(&app, api, &cc_token, None).await["active"],
        true
    );
    assert_eq!(
        introspection(&app, api, &tokens.access, None).await["active"],
        true
    );
    assert_eq!(
        introspection(&app, api, &tokens.refresh, None).await["active"],
        true
    );
    assert_eq!(userinfo(&app, &tokens.access).await.status(), 200);
    refreshed(&app, &owner, &tokens.refresh).await;
}

/// RFC 7009 §2.2: "invalid tokens do not cause an error response since the
/// client cannot handle such an error in a reasonable way".
async fn unknown_and_malformed_tokens_are_answered_200(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = offline_client(&app, "App", false).await;
    app.user("alice").await;
    let browser = app.browser();
    let tokens = sign_in_offline(&app, &browser, &client, "alice").await;
    let long = "x".repeat(8000);
    let unknown = URL_SAFE_NO_PAD.encode([7u8; 32]);
    for (token, case) in [
        (unknown.as_str(), "unknown refresh-token-shaped value"),
        ("garbage", "garbage"),
        ("a.b.c", "three dots"),
        ("тoken with spaces", "unicode"),
        (long.as_str(), "8000 characters"),
        (
            tokens.id_token.as_str(),
            "an ID token (not an access token)",
        ),
    ] {
        for hint in [None, Some("access_token"), Some("refresh_token")] {
            assert_revoked(revoke(&app, Auth::of(&client), token, hint).await, case).await;
        }
    }
    // Nothing of the client's was touched.
    assert_eq!(userinfo(&app, &tokens.access).await.status(), 200);
    refreshed(&app, &client, &tokens.refresh).await;
}

/// RFC 7009 §2.1: a public client identifies itself with `client_id`
/// alone, as at `/token` (RFC 6749 §2.3, §3.2.1).
async fn a_public_client_revokes_with_its_client_id_alone(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let spa = offline_client(&app, "SPA", true).await;
    app.user("alice").await;
    let browser = app.browser();
    let tokens = sign_in_offline(&app, &browser, &spa, "alice").await;
    let access_only = sign_in_offline(&app, &browser, &spa, "alice").await;

    let response = revoke(&app, Auth::IdOnly(&spa.id), &tokens.refresh, None).await;
    assert_revoked(response, "public client revokes its refresh token").await;
    assert_refresh_refused(&app, &spa, &tokens.refresh, "revoked by the SPA").await;
    assert_userinfo_refused(&app, &tokens.access, "family revoked by the SPA").await;

    let response = revoke(&app, Auth::IdOnly(&spa.id), &access_only.access, None).await;
    assert_revoked(response, "public client revokes its access token").await;
    assert_userinfo_refused(&app, &access_only.access, "revoked by the SPA").await;
    refreshed(&app, &spa, &access_only.refresh).await;
}

/// One malformed or unauthenticated request and the exact answer it gets.
struct ErrorCase {
    name: &'static str,
    method: reqwest::Method,
    query: &'static str,
    content_type: &'static str,
    authorization: Option<String>,
    body: String,
    status: u16,
    error: &'static str,
}

fn basic_header(id: &str, secret: &str) -> Option<String> {
    Some(format!(
        "Basic {}",
        STANDARD.encode(format!("{id}:{secret}"))
    ))
}

/// The error cases shared by `/revoke` and `/introspect`: client
/// authentication as at `/token` (RFC 7009 §2.1, RFC 7662 §2.1, RFC 6749
/// §2.3.1, §5.2), `token` required, POST of a form only.
fn shared_error_cases(id: &str, secret: &str, token: &str) -> Vec<ErrorCase> {
    let form = "application/x-www-form-urlencoded";
    let good = basic_header(id, secret);
    let with_token = format!("token={token}");
    let case = |name, authorization: Option<String>, body: String, status, error| ErrorCase {
        name,
        method: reqwest::Method::POST,
        query: "",
        content_type: form,
        authorization,
        body,
        status,
        error,
    };
    vec![
        case(
            "missing token",
            good.clone(),
            "token_type_hint=refresh_token".into(),
            400,
            "invalid_request",
        ),
        case(
            // RFC 6749 §3.2: a parameter without a value is omitted.
            "empty token",
            good.clone(),
            "token=".into(),
            400,
            "invalid_request",
        ),
        case(
            "repeated token",
            good.clone(),
            format!("{with_token}&token=other"),
            400,
            "invalid_request",
        ),
        case(
            "no client authentication",
            None,
            with_token.clone(),
            401,
            "invalid_client",
        ),
        case(
            "wrong Basic secret",
            basic_header(id, "not-the-secret"),
            with_token.clone(),
            401,
            "invalid_client",
        ),
        case(
            "unknown client",
            basic_header("no-such-client", secret),
            with_token.clone(),
            401,
            "invalid_client",
        ),
        case(
            "wrong client_secret_post secret",
            None,
            format!("{with_token}&client_id={id}&client_secret=nope"),
            401,
            "invalid_client",
        ),
        case(
            "confidential client_id without a secret",
            None,
            format!("{with_token}&client_id={id}"),
            401,
            "invalid_client",
        ),
        case(
            "client_secret without client_id",
            None,
            format!("{with_token}&client_secret={secret}"),
            401,
            "invalid_client",
        ),
        case(
            "malformed Basic",
            Some("Basic %%%".into()),
            with_token.clone(),
            401,
            "invalid_client",
        ),
        case(
            "Basic and client_secret_post at once",
            good.clone(),
            format!("{with_token}&client_secret={secret}"),
            400,
            "invalid_request",
        ),
        ErrorCase {
            name: "client credentials in the URL",
            query: "client_secret=x",
            ..case("", good.clone(), with_token.clone(), 400, "invalid_request")
        },
        ErrorCase {
            name: "client_id in the URL",
            query: "client_id=x",
            ..case("", good.clone(), with_token.clone(), 400, "invalid_request")
        },
        ErrorCase {
            name: "a JSON body",
            content_type: "application/json",
            ..case(
                "",
                good.clone(),
                format!(r#"{{"token": "{token}"}}"#),
                400,
                "invalid_request",
            )
        },
        ErrorCase {
            name: "GET",
            method: reqwest::Method::GET,
            ..case("", good.clone(), String::new(), 405, "invalid_request")
        },
        ErrorCase {
            name: "PUT",
            method: reqwest::Method::PUT,
            ..case("", good.clone(), with_token.clone(), 405, "invalid_request")
        },
    ]
}

/// Runs `cases` against `path` and checks each exact answer; a 405 names
/// `POST` in `Allow` (RFC 9110 §15.5.6).
async fn run_error_cases(app: &TestApp, path: &str, cases: Vec<ErrorCase>) {
    for case in cases {
        let url = if case.query.is_empty() {
            app.url(path)
        } else {
            app.url(&format!("{path}?{}", case.query))
        };
        let mut request = app
            .http
            .request(case.method.clone(), url)
            .header("content-type", case.content_type)
            .body(case.body.clone());
        if let Some(authorization) = &case.authorization {
            request = request.header("authorization", authorization);
        }
        let response = request.send().await.unwrap();
        let name = format!("{path}: {}", case.name);
        if case.status == 405 {
            assert_eq!(response.headers()["allow"], "POST", "{name}");
        }
        assert_error(response, case.status, case.error, &name).await;
    }
}

/// RFC 7009 §2.1 (client authentication as at `/token`, `token` required),
/// §2.2.1 and RFC 6749 §5.2: each error with its status, code and headers;
/// none of the failed requests revokes anything.
async fn revocation_errors_get_their_exact_responses(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = offline_client(&app, "App", false).await;
    app.user("alice").await;
    let browser = app.browser();
    let tokens = sign_in_offline(&app, &browser, &client, "alice").await;
    let secret = client.secret.clone().unwrap();
    run_error_cases(
        &app,
        "/revoke",
        shared_error_cases(&client.id, &secret, &tokens.refresh),
    )
    .await;
    run_error_cases(
        &app,
        "/revoke",
        shared_error_cases(&client.id, &secret, &tokens.access),
    )
    .await;
    assert_eq!(userinfo(&app, &tokens.access).await.status(), 200);
    refreshed(&app, &client, &tokens.refresh).await;
}

/// RFC 7662 §2.1: "the endpoint MUST also require some form of
/// authorization"; authd takes a confidential client's credentials. A
/// public client proves nothing and is invalid_client; the rest as at
/// `/revoke`.
async fn introspection_errors_get_their_exact_responses(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = offline_client(&app, "App", false).await;
    let spa = offline_client(&app, "SPA", true).await;
    app.user("alice").await;
    let browser = app.browser();
    let tokens = sign_in_offline(&app, &browser, &spa, "alice").await;
    let (api, api_secret) = introspector(&app).await;
    let mut cases = shared_error_cases(&api, &api_secret, &tokens.access);
    cases.push(ErrorCase {
        name: "a public client with its client_id alone",
        method: reqwest::Method::POST,
        query: "",
        content_type: "application/x-www-form-urlencoded",
        authorization: None,
        body: format!("token={}&client_id={}", tokens.access, spa.id),
        status: 401,
        error: "invalid_client",
    });
    cases.push(ErrorCase {
        name: "a public client asks about its own refresh token",
        method: reqwest::Method::POST,
        query: "",
        content_type: "application/x-www-form-urlencoded",
        authorization: None,
        body: format!(
            "token={}&token_type_hint=refresh_token&client_id={}",
            tokens.refresh, spa.id
        ),
        status: 401,
        error: "invalid_client",
    });
    run_error_cases(&app, "/introspect", cases).await;
    let secret = client.secret.clone().unwrap();
    run_error_cases(
        &app,
        "/introspect",
        shared_error_cases(&client.id, &secret, &tokens.refresh),
    )
    .await;
}

/// RFC 7662 §2.2 for an access token: `active`, and `scope`, `client_id`,
/// `sub`, `exp`, `iat`, `iss`, `aud`, `token_type`, `jti` exactly as in the
/// JWT (RFC 9068 §2.2) — for a resource server allowed to introspect any
/// token and for the client the token was issued to, by Basic and by
/// client_secret_post.
async fn introspection_describes_an_active_access_token(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = offline_client(&app, "App", false).await;
    let secret = client.secret.clone().unwrap();
    let (api, api_secret) = introspector(&app).await;
    let alice = app.user("alice").await;
    let browser = app.browser();
    let tokens = sign_in_offline(&app, &browser, &client, "alice").await;
    let claims = jwt_part(&tokens.access, 1);
    let expected = json!({
        "active": true,
        "scope": claims["scope"],
        "client_id": claims["client_id"],
        "sub": claims["sub"],
        "exp": claims["exp"],
        "iat": claims["iat"],
        "iss": claims["iss"],
        "aud": claims["aud"],
        "token_type": "Bearer",
        "jti": claims["jti"],
    });
    // The JWT itself says what it should: the introspection copies it.
    assert_eq!(claims["sub"], alice.as_str());
    assert_eq!(claims["client_id"], client.id.as_str());
    assert_eq!(claims["iss"], app.issuer.as_str());
    assert_eq!(
        space_set(claims["scope"].as_str().unwrap()),
        space_set(OFFLINE_SCOPE)
    );
    for auth in [
        Auth::Basic(&api, &api_secret),
        Auth::Post(&api, &api_secret),
        Auth::Basic(&client.id, &secret),
        Auth::Post(&client.id, &secret),
    ] {
        for hint in [None, Some("access_token"), Some("refresh_token")] {
            let body = introspection(&app, auth, &tokens.access, hint).await;
            assert_eq!(body, expected, "hint {hint:?}");
        }
    }
}

/// RFC 7662 §2.2 for a refresh token: active, with the family's scope, the
/// client, the user, its own lifetime (24 h) and `token_type`
/// `refresh_token`; its `jti` is not the token.
async fn introspection_describes_an_active_refresh_token(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = offline_client(&app, "App", false).await;
    let secret = client.secret.clone().unwrap();
    let (api, api_secret) = introspector(&app).await;
    let alice = app.user("alice").await;
    let browser = app.browser();
    let before = chrono::Utc::now().timestamp();
    let tokens = sign_in_offline(&app, &browser, &client, "alice").await;
    let after = chrono::Utc::now().timestamp();
    for auth in [
        Auth::Basic(&api, &api_secret),
        Auth::Basic(&client.id, &secret),
        Auth::Post(&client.id, &secret),
    ] {
        for hint in [None, Some("refresh_token"), Some("access_token")] {
            let body = introspection(&app, auth, &tokens.refresh, hint).await;
            let case = format!("hint {hint:?}: {body}");
            assert_eq!(body["active"], true, "{case}");
            assert_eq!(
                space_set(body["scope"].as_str().unwrap()),
                space_set(&tokens.scope),
                "{case}"
            );
            assert_eq!(body["client_id"], client.id.as_str(), "{case}");
            assert_eq!(body["sub"], alice.as_str(), "{case}");
            assert_eq!(body["iss"], app.issuer.as_str(), "{case}");
            assert_eq!(body["token_type"], "refresh_token", "{case}");
            let iat = body["iat"].as_i64().unwrap();
            assert!((before - 1..=after + 1).contains(&iat), "{case}");
            assert_eq!(body["exp"].as_i64().unwrap() - iat, 24 * 60 * 60, "{case}");
            let jti = body["jti"].as_str().unwrap();
            assert!(!jti.is_empty(), "{case}");
            assert!(
                !body.to_string().contains(&tokens.refresh),
                "the answer does not repeat the token: {case}"
            );
        }
    }
}

/// RFC 7662 §2.2 for a client-credentials token: active, `sub` is the
/// client itself (RFC 9068 §2.2), every member as in the JWT.
async fn introspection_describes_a_client_credentials_token(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (machine, machine_secret) = app.machine_client(&["orders:read"]).await;
    let (api, api_secret) = introspector(&app).await;
    let token = cc_token(&app, &machine, &machine_secret).await;
    let claims = jwt_part(&token, 1);
    let expected = json!({
        "active": true,
        "scope": "orders:read",
        "client_id": machine,
        "sub": machine,
        "exp": claims["exp"],
        "iat": claims["iat"],
        "iss": app.issuer,
        "aud": claims["aud"],
        "token_type": "Bearer",
        "jti": claims["jti"],
    });
    assert_eq!(claims["aud"], app.issuer.as_str());
    for auth in [
        Auth::Basic(&api, &api_secret),
        Auth::Basic(&machine, &machine_secret),
        Auth::Post(&machine, &machine_secret),
    ] {
        assert_eq!(introspection(&app, auth, &token, None).await, expected);
    }
}

/// An access token with a forged `alg: none` or a changed payload.
fn forgeries(access_token: &str) -> Vec<(String, &'static str)> {
    let parts: Vec<&str> = access_token.split('.').collect();
    let mut payload = jwt_part(access_token, 1);
    payload["scope"] = json!("openid offline_access orders:read orders:write");
    let widened = URL_SAFE_NO_PAD.encode(payload.to_string());
    let mut header = jwt_part(access_token, 0);
    header["alg"] = json!("none");
    let none = URL_SAFE_NO_PAD.encode(header.to_string());
    vec![
        (
            format!("{}.{widened}.{}", parts[0], parts[2]),
            "payload changed",
        ),
        (format!("{none}.{}.", parts[1]), "alg none"),
        (format!("{}.{}.", parts[0], parts[1]), "signature removed"),
    ]
}

/// RFC 7662 §2.2: "If the introspection call is properly authorized but
/// the token is not active, does not exist on this server, or the protected
/// resource is not allowed to introspect this particular token, then the
/// authorization server MUST return an introspection response with the
/// "active" field set to "false"" — and nothing else (§4: no information
/// about an inactive token). Consumed, revoked, forged, garbage, an ID
/// token: exactly `{"active": false}` with 200, never an error.
async fn inactive_tokens_are_exactly_active_false(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = offline_client(&app, "App", false).await;
    let secret = client.secret.clone().unwrap();
    let (api, api_secret) = introspector(&app).await;
    app.user("alice").await;
    let browser = app.browser();
    let consumed = sign_in_offline(&app, &browser, &client, "alice").await;
    let live = refreshed(&app, &client, &consumed.refresh).await;
    let revoked_family = sign_in_offline(&app, &browser, &client, "alice").await;
    assert_revoked(
        revoke(&app, Auth::of(&client), &revoked_family.refresh, None).await,
        "setup",
    )
    .await;
    let revoked_access = sign_in_offline(&app, &browser, &client, "alice").await;
    assert_revoked(
        revoke(&app, Auth::of(&client), &revoked_access.access, None).await,
        "setup",
    )
    .await;
    let long = "y".repeat(10_000);
    let mut cases: Vec<(String, &str)> = vec![
        (consumed.refresh.clone(), "consumed refresh token"),
        (revoked_family.refresh.clone(), "revoked refresh token"),
        (
            revoked_family.access.clone(),
            "access token of a revoked family",
        ),
        (revoked_access.access.clone(), "revoked access token"),
        (live.id_token.clone(), "an ID token"),
        ("garbage".into(), "garbage"),
        ("a.b.c".into(), "three dots"),
        ("тoken with spaces".into(), "unicode"),
        (long, "10 000 characters"),
        (
            URL_SAFE_NO_PAD.encode([9u8; 32]),
            "unknown refresh-token-shaped",
        ),
    ];
    cases.extend(forgeries(&live.access));
    for (token, case) in &cases {
        for auth in [
            Auth::Basic(&api, &api_secret),
            Auth::Basic(&client.id, &secret),
        ] {
            for hint in [None, Some("access_token"), Some("refresh_token"), Some("x")] {
                let body = introspection(&app, auth, token, hint).await;
                assert_eq!(body, json!({"active": false}), "{case}, hint {hint:?}");
            }
        }
    }
    // The live tokens of the same family are active: the cases above failed
    // for what they are, not for the setup.
    let api = Auth::Basic(&api, &api_secret);
    assert_eq!(
        introspection(&app, api, &live.access, None).await["active"],
        true
    );
    assert_eq!(
        introspection(&app, api, &live.refresh, None).await["active"],
        true
    );
}

/// RFC 7662 §2.2: an expired token is not active. A second server on the
/// same database runs on a mock clock: 2 hours behind, it issues a
/// client-credentials token that expired long ago; moved 25 hours ahead,
/// it sees a refresh token from the real-time server as expired (its
/// lifetime is 24 hours), which that server still takes.
async fn expired_tokens_are_inactive(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = offline_client(&app, "App", false).await;
    let (api_id, api_secret) = introspector(&app).await;
    let api = Auth::Basic(&api_id, &api_secret);
    let (machine, machine_secret) = app.machine_client(&["orders:read"]).await;
    app.user("alice").await;
    let browser = app.browser();
    let tokens = sign_in_offline(&app, &browser, &client, "alice").await;

    let clock = Arc::new(MockClock::new(
        chrono::Utc::now() - chrono::Duration::hours(2),
    ));
    let late = Application::build_with_clock(app.config.clone(), false, clock.clone())
        .await
        .expect("second server starts");
    let late_base = format!("http://127.0.0.1:{}", late.port());
    let late_handle = late.handle();
    tokio::spawn(late.run_until_stopped());
    let late_post = |path: &str, auth: (&str, &str), form: Vec<(&str, String)>| {
        app.http
            .post(format!("{late_base}{path}"))
            .basic_auth(auth.0, Some(auth.1))
            .form(&form)
            .send()
    };

    let response = late_post(
        "/token",
        (&machine, &machine_secret),
        vec![("grant_type", "client_credentials".into())],
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let expired = response.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let exp = jwt_part(&expired, 1)["exp"].as_i64().unwrap();
    assert!(
        exp < chrono::Utc::now().timestamp() - 3600,
        "expired an hour ago"
    );
    // The real-time server judges expiry by its own clock: an hour past.
    let response = app
        .http
        .post(app.url("/introspect"))
        .basic_auth(&machine, Some(&machine_secret))
        .form(&[("token", expired.clone())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"active": false}),
        "expired access token"
    );
    // The server whose clock is two hours behind still sees it as fresh:
    // expiry follows the injected clock.
    let response = late_post(
        "/introspect",
        (&machine, &machine_secret),
        vec![("token", expired.clone())],
    )
    .await
    .unwrap();
    assert_eq!(response.json::<Value>().await.unwrap()["active"], true);

    clock.advance(chrono::Duration::hours(27));
    let response = late_post(
        "/introspect",
        (&api_id, &api_secret),
        vec![("token", tokens.refresh.clone())],
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"active": false}),
        "refresh token past its 24 hours"
    );
    let response = late_post(
        "/token",
        (&client.id, client.secret.as_deref().unwrap()),
        vec![
            ("grant_type", "refresh_token".into()),
            ("refresh_token", tokens.refresh.clone()),
        ],
    )
    .await
    .unwrap();
    assert_error(response, 400, "invalid_grant", "expired refresh token").await;
    late_handle.stop(true).await;

    // In real time the same refresh token is alive.
    assert_eq!(
        introspection(&app, api, &tokens.refresh, None).await["active"],
        true
    );
    refreshed(&app, &client, &tokens.refresh).await;
}

/// RFC 7662 §2.2: a token is active only while the resource owner may
/// still use it; a disabled user's access and refresh tokens are inactive.
async fn a_disabled_users_tokens_are_inactive(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = offline_client(&app, "App", false).await;
    let (api, api_secret) = introspector(&app).await;
    let api = Auth::Basic(&api, &api_secret);
    let alice = app.user("alice").await;
    app.user("bob").await;
    let alice_browser = app.browser();
    let bob_browser = app.browser();
    let tokens = sign_in_offline(&app, &alice_browser, &client, "alice").await;
    let bobs = sign_in_offline(&app, &bob_browser, &client, "bob").await;
    assert_eq!(
        introspection(&app, api, &tokens.access, None).await["active"],
        true
    );
    disable_user(&app, &alice).await;
    assert_inactive(&app, api, &tokens.access, "disabled user's access token").await;
    assert_inactive(&app, api, &tokens.refresh, "disabled user's refresh token").await;
    assert_eq!(
        introspection(&app, api, &bobs.refresh, None).await["active"],
        true,
        "another user is not affected"
    );
}

/// Security review finding 4: `authd clients delete` ends everything the
/// client holds. Its user's access token is refused at `/userinfo` and
/// inactive at `/introspect`, its refresh token is inactive, its
/// client-credentials token is inactive (it is on record nowhere: the
/// registry decides), and in the database its access tokens are revoked in
/// the deleting transaction. Another client's tokens keep working.
async fn a_deleted_clients_tokens_stop_working(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = offline_client(&app, "App", false).await;
    let other = offline_client(&app, "Other", false).await;
    let (api, api_secret) = introspector(&app).await;
    let api = Auth::Basic(&api, &api_secret);
    let (machine, machine_secret) = app.machine_client(&["orders:read"]).await;
    app.user("alice").await;
    let tokens = sign_in_offline(&app, &app.browser(), &client, "alice").await;
    let others = sign_in_offline(&app, &app.browser(), &other, "alice").await;
    let machine_token = cc_token(&app, &machine, &machine_secret).await;
    for (token, case) in [
        (&tokens.access, "access token"),
        (&tokens.refresh, "refresh token"),
        (&machine_token, "client-credentials token"),
    ] {
        assert_eq!(
            introspection(&app, api, token, None).await["active"],
            true,
            "{case} before the deletion"
        );
    }
    assert_eq!(userinfo(&app, &tokens.access).await.status(), 200);

    for id in [&client.id, &machine] {
        let output = run_authd(&app, &["clients", "delete", id]);
        assert!(output.status.success(), "{output:?}");
    }
    // In the database at once: the deleting transaction revoked the
    // recorded access token.
    let runtime = authd::startup::Runtime::open(&app.config, false, &authd::clock::SystemClock)
        .await
        .expect("open database");
    let jti = jwt_part(&tokens.access, 1)["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    let record = runtime.store.find_access_token(&jti).await.unwrap();
    assert!(record.is_some_and(|r| r.revoked), "revoked with the client");
    runtime.store.close().await;
    // This server within its cache refresh interval (100 ms in tests).
    within_5_seconds("the deleted client's tokens are refused", || async {
        introspection(&app, api, &machine_token, None).await == json!({"active": false})
    })
    .await;
    assert_userinfo_refused(&app, &tokens.access, "deleted client's access token").await;
    assert_inactive(&app, api, &tokens.access, "deleted client's access token").await;
    assert_inactive(&app, api, &tokens.refresh, "deleted client's refresh token").await;
    assert_inactive(&app, api, &machine_token, "deleted client's own token").await;
    assert_eq!(
        introspection(&app, api, &others.access, None).await["active"],
        true,
        "another client's access token"
    );
    assert_eq!(userinfo(&app, &others.access).await.status(), 200);
}

/// A sibling of security review finding 4: withdrawing a consent ends the
/// access tokens issued under it, also those from a code without
/// `offline_access` (no refresh family), and a password reset ends all the
/// user's access tokens: refused at `/userinfo`, inactive at `/introspect`,
/// at once (the records are revoked in the same transaction); codes issued
/// before and not yet redeemed are refused too.
async fn a_withdrawn_consent_or_a_new_password_ends_access_tokens(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(false, &[]).await;
    let other = app.web_client(true, &[]).await;
    let (api, api_secret) = introspector(&app).await;
    let api = Auth::Basic(&api, &api_secret);
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let signed_in = |client: &WebClient, user: &'static str| {
        let browser = app.browser();
        let client = client.clone();
        let app = &app;
        async move {
            sign_in_and_exchange(app, &browser, &client, user, &[("scope", "openid")]).await
                ["access_token"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let alice_here = signed_in(&client, "alice").await;
    let alice_there = signed_in(&other, "alice").await;
    let bob_here = signed_in(&client, "bob").await;
    for token in [&alice_here, &alice_there, &bob_here] {
        assert_eq!(userinfo(&app, token).await.status(), 200);
    }
    // Codes issued before, not yet redeemed.
    let (alice_pkce, bob_pkce) = (pkce(), pkce());
    let openid = [("scope", "openid")];
    let alice_code = code_for(&app.browser(), &client, &alice_pkce, "alice", &openid).await;
    let bob_code = code_for(&app.browser(), &client, &bob_pkce, "bob", &openid).await;

    let output = run_authd(&app, &["users", "consents", &alice, "--revoke", &client.id]);
    assert!(output.status.success(), "{output:?}");
    assert_userinfo_refused(&app, &alice_here, "after the consent was withdrawn").await;
    assert_inactive(&app, api, &alice_here, "after the consent was withdrawn").await;
    assert_eq!(
        userinfo(&app, &alice_there).await.status(),
        200,
        "her token at another client"
    );
    assert_eq!(
        userinfo(&app, &bob_here).await.status(),
        200,
        "another user"
    );
    let late = exchange_code(&app, &client, &alice_code, &alice_pkce.verifier).await;
    assert_error(
        late,
        400,
        "invalid_grant",
        "a code issued before the withdrawal",
    )
    .await;

    let mut command = crate::helpers::authd_command(&app.database.url, &app.master_key);
    let mut child = command
        .args(["users", "set-password", &bob, "--password-stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "a brand new password").unwrap();
    }
    assert!(child.wait().unwrap().success());
    assert_userinfo_refused(&app, &bob_here, "after a password reset").await;
    assert_inactive(&app, api, &bob_here, "after a password reset").await;
    let late = exchange_code(&app, &client, &bob_code, &bob_pkce.verifier).await;
    assert_error(late, 400, "invalid_grant", "a code issued before the reset").await;
}

/// RFC 7662 §2.1 and §4: a client not registered as a resource server may
/// only learn about tokens issued to itself; another client's token, user
/// or machine, is `{"active": false}` to it.
async fn a_client_without_the_introspect_permission_sees_only_its_own_tokens(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mine = offline_client(&app, "App", false).await;
    let theirs = offline_client(&app, "Other app", false).await;
    let (machine, machine_secret) = app.machine_client(&["orders:read"]).await;
    app.user("alice").await;
    let browser = app.browser();
    let own = sign_in_offline(&app, &browser, &mine, "alice").await;
    let foreign = sign_in_offline(&app, &browser, &theirs, "alice").await;
    let cc_token = cc_token(&app, &machine, &machine_secret).await;
    let me = Auth::of(&mine);
    let machine_auth = Auth::Basic(&machine, &machine_secret);

    for (auth, token, case) in [
        (me, &own.access, "own access token"),
        (me, &own.refresh, "own refresh token"),
        (machine_auth, &cc_token, "the machine's own token"),
        (
            Auth::of(&theirs),
            &foreign.access,
            "the other app's own access token",
        ),
    ] {
        let body = introspection(&app, auth, token, None).await;
        assert_eq!(body["active"], true, "{case}: {body}");
    }
    for (auth, token, case) in [
        (me, &foreign.access, "another client's access token"),
        (me, &foreign.refresh, "another client's refresh token"),
        (me, &cc_token, "a machine's token"),
        (
            machine_auth,
            &own.access,
            "a machine asks about a user's token",
        ),
        (
            machine_auth,
            &own.refresh,
            "a machine asks about a refresh token",
        ),
    ] {
        for hint in [None, Some("access_token"), Some("refresh_token")] {
            let body = introspection(&app, auth, token, hint).await;
            assert_eq!(body, json!({"active": false}), "{case}, hint {hint:?}");
        }
    }
}

// ---------------------------------------------------------------------------
// The database dump.

/// A value read from the database, by its storage class.
#[derive(Debug)]
enum Stored {
    Text(String),
    Bytes(Vec<u8>),
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if text.is_empty() || !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Every column of every row of every table on SQLite, with the number of
/// rows per table.
async fn dump_sqlite(url: &str) -> (Vec<Stored>, BTreeMap<String, usize>) {
    use sqlx::{Connection, Row, TypeInfo, ValueRef};
    let mut connection = sqlx::SqliteConnection::connect(url).await.unwrap();
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(&mut connection)
            .await
            .unwrap();
    let mut values = Vec::new();
    let mut counts = BTreeMap::new();
    for table in tables {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(r#"SELECT * FROM "{table}""#)))
            .fetch_all(&mut connection)
            .await
            .unwrap();
        counts.insert(table.clone(), rows.len());
        for row in &rows {
            for column in 0..row.len() {
                let kind = {
                    let raw = row.try_get_raw(column).unwrap();
                    if raw.is_null() {
                        continue;
                    }
                    raw.type_info().name().to_owned()
                };
                let bytes = || row.try_get_unchecked::<Vec<u8>, _>(column).ok();
                let text = || row.try_get_unchecked::<String, _>(column).ok();
                let integer = || row.try_get_unchecked::<i64, _>(column).ok();
                let value = match kind.as_str() {
                    "BLOB" => bytes().map(Stored::Bytes),
                    "INTEGER" | "BOOLEAN" => integer().map(|i| Stored::Text(i.to_string())),
                    "REAL" => row
                        .try_get_unchecked::<f64, _>(column)
                        .ok()
                        .map(|f| Stored::Text(f.to_string())),
                    _ => text()
                        .map(Stored::Text)
                        .or_else(|| bytes().map(Stored::Bytes))
                        .or_else(|| integer().map(|i| Stored::Text(i.to_string()))),
                };
                values.push(value.unwrap_or_else(|| {
                    panic!("{table} column {column} ({kind}) could not be read")
                }));
            }
        }
    }
    connection.close().await.unwrap();
    (values, counts)
}

/// A JSON value from `row_to_json` as stored values: `bytea` comes out as
/// `\x`-prefixed hex text.
fn json_values(value: &Value, out: &mut Vec<Stored>) {
    match value {
        Value::String(text) => match text.strip_prefix("\\x").and_then(hex_decode) {
            Some(bytes) => out.push(Stored::Bytes(bytes)),
            None => out.push(Stored::Text(text.clone())),
        },
        Value::Number(number) => out.push(Stored::Text(number.to_string())),
        Value::Array(items) => items.iter().for_each(|item| json_values(item, out)),
        Value::Object(members) => members.values().for_each(|item| json_values(item, out)),
        Value::Bool(_) | Value::Null => {}
    }
}

/// Every column of every row of every table on PostgreSQL.
async fn dump_postgres(url: &str) -> (Vec<Stored>, BTreeMap<String, usize>) {
    use sqlx::Connection;
    let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&mut connection)
    .await
    .unwrap();
    let mut values = Vec::new();
    let mut counts = BTreeMap::new();
    for table in tables {
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            r#"SELECT row_to_json(t)::text FROM "{table}" t"#
        )))
        .fetch_all(&mut connection)
        .await
        .unwrap();
        counts.insert(table.clone(), rows.len());
        for row in rows {
            json_values(&serde_json::from_str(&row).unwrap(), &mut values);
        }
    }
    connection.close().await.unwrap();
    (values, counts)
}

/// The strings a stored value could be presented as: raw; bytes also as
/// base64, base64url and hex; text also, when it decodes as hex, base64 or
/// base64url, its bytes as base64url; JSON text also leaf by leaf.
fn candidates_of(value: &Stored, out: &mut BTreeSet<String>) {
    let mut add = |candidate: String| {
        if !candidate.is_empty() && candidate.len() <= 4096 {
            out.insert(candidate);
        }
    };
    match value {
        Stored::Bytes(bytes) => {
            add(STANDARD.encode(bytes));
            add(URL_SAFE_NO_PAD.encode(bytes));
            add(hex_encode(bytes));
            if let Ok(text) = std::str::from_utf8(bytes) {
                candidates_of(&Stored::Text(text.to_owned()), out);
            }
        }
        Stored::Text(text) => {
            add(text.clone());
            let decoded = [
                hex_decode(text),
                STANDARD.decode(text).ok(),
                URL_SAFE_NO_PAD.decode(text).ok(),
            ];
            for bytes in decoded.into_iter().flatten() {
                if !bytes.is_empty() {
                    add(URL_SAFE_NO_PAD.encode(bytes));
                }
            }
            if let Ok(json) = serde_json::from_str::<Value>(text)
                && (json.is_object() || json.is_array())
            {
                let mut leaves = Vec::new();
                json_values(&json, &mut leaves);
                for leaf in &leaves {
                    candidates_of(leaf, out);
                }
            }
        }
    }
}

/// One way a dumped value is tried against the server.
#[derive(Debug, Clone, Copy)]
enum Use<'a> {
    /// `grant_type=refresh_token` as the flow's client.
    RefreshToken,
    /// `grant_type=authorization_code` with the pending code's verifier.
    AuthorizationCode,
    /// `client_credentials` with this client id and the value as secret.
    ClientSecret(&'a str),
    /// `GET /userinfo` with the value as bearer token.
    BearerToken,
}

/// What the dump probes need: the flow's client and the pending code's PKCE.
struct DumpTarget<'a> {
    app: &'a TestApp,
    client: &'a WebClient,
    pending: &'a Pkce,
}

/// RFC 6749 §2.3.1: Basic credentials are form-urlencoded first.
fn form_basic(id: &str, secret: &str) -> String {
    let encode =
        |value: &str| form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", encode(id), encode(secret)))
    )
}

/// Tries `candidate` as `use`; `Err` describes any answer but the refusal
/// expected (a 200 is the candidate accepted).
async fn probe(target: &DumpTarget<'_>, using: Use<'_>, candidate: &str) -> Result<(), String> {
    let app = target.app;
    let client_basic = form_basic(&target.client.id, target.client.secret.as_deref().unwrap());
    let token_request = |authorization: String, form: Vec<(&str, &str)>| {
        app.http
            .post(app.url("/token"))
            .header("authorization", authorization)
            .form(&form)
            .send()
    };
    let (response, status, error) = match using {
        Use::RefreshToken => (
            token_request(
                client_basic,
                vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", candidate),
                ],
            )
            .await,
            400,
            Some("invalid_grant"),
        ),
        Use::AuthorizationCode => (
            token_request(
                client_basic,
                vec![
                    ("grant_type", "authorization_code"),
                    ("code", candidate),
                    ("redirect_uri", &target.client.redirect_uri),
                    ("code_verifier", &target.pending.verifier),
                ],
            )
            .await,
            400,
            Some("invalid_grant"),
        ),
        Use::ClientSecret(id) => (
            token_request(
                form_basic(id, candidate),
                vec![("grant_type", "client_credentials")],
            )
            .await,
            401,
            Some("invalid_client"),
        ),
        Use::BearerToken => (
            app.http
                .get(app.url("/userinfo"))
                .header("authorization", format!("Bearer {candidate}"))
                .send()
                .await,
            401,
            None,
        ),
    };
    let response = response.map_err(|e| format!("{using:?}: request failed: {e}"))?;
    let got = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if got == status && error.is_none_or(|error| body["error"] == error) {
        Ok(())
    } else {
        let short = |text: &str| text.chars().take(120).collect::<String>();
        Err(format!(
            "{}{using:?} with {:?}: {got} {}",
            if got == 200 { "ACCEPTED: " } else { "" },
            short(candidate),
            short(&body.to_string()),
        ))
    }
}

/// A bearer token is `token68` (RFC 6750 §2.1): only such values are sent
/// in the header.
fn fits_a_header(candidate: &str) -> bool {
    candidate.bytes().all(|b| b.is_ascii_graphic())
}

/// The issue's requirement: after complete flows — two users signing in
/// with `offline_access`, a refresh, a client-credentials token, a refresh
/// token and an access token revoked, a code issued but not yet redeemed —
/// every value of every column of every row of every table, raw and
/// re-encoded, is refused as a refresh token, an authorization code, a
/// client secret (of every client) and a bearer token. Secrets, codes and
/// refresh tokens are stored only as keyed digests or sealed (RFC 9700
/// §4.14.2, RFC 6819 §5.1.4.1.3, §5.1.4.2.2). The live credentials are
/// then checked to work with the very same requests, so a refusal above
/// means the value is not one.
async fn database_dump_yields_nothing_the_server_accepts(backend: Backend) {
    let started = Instant::now();
    let Some(database) = test_database(backend).await else {
        return;
    };
    // Codes live 10 minutes here, so the pending one outlasts the probes.
    let app = spawn_app_on(Arc::new(database), MasterKey::generate(), |config| {
        config.authorization_code_ttl = 600
    })
    .await
    .expect("app starts");
    let client = offline_client(&app, "App", false).await;
    let (api, api_secret) = introspector(&app).await;
    let (machine, machine_secret) = app.machine_client(&["orders:read"]).await;
    app.user("alice").await;
    app.user("bob").await;
    let alice_browser = app.browser();
    let bob_browser = app.browser();
    let alice_first = sign_in_offline(&app, &alice_browser, &client, "alice").await;
    let alice = refreshed(&app, &client, &alice_first.refresh).await;
    let bob = sign_in_offline(&app, &bob_browser, &client, "bob").await;
    assert_revoked(
        revoke(&app, Auth::of(&client), &bob.refresh, None).await,
        "bob",
    )
    .await;
    assert_revoked(
        revoke(&app, Auth::of(&client), &alice_first.access, None).await,
        "alice's first access token",
    )
    .await;
    let cc_token = cc_token(&app, &machine, &machine_secret).await;
    let api_auth = Auth::Basic(&api, &api_secret);
    assert_eq!(
        introspection(&app, api_auth, &cc_token, None).await["active"],
        true
    );
    let pending = pkce();
    let pending_code = code_for(
        &alice_browser,
        &client,
        &pending,
        "alice",
        &[("scope", OFFLINE_SCOPE)],
    )
    .await;

    let (values, counts) = match backend {
        Backend::Sqlite => dump_sqlite(&app.database.url).await,
        Backend::Postgres => dump_postgres(&app.database.url).await,
    };
    for table in [
        "clients",
        "users",
        "signing_keys",
        "browser_sessions",
        "consents",
        "authorization_codes",
        "access_tokens",
        "refresh_token_families",
        "refresh_tokens",
    ] {
        assert!(
            counts.get(table).is_some_and(|rows| *rows > 0),
            "{table} has rows: {counts:?}"
        );
    }
    let mut candidates = BTreeSet::new();
    for value in &values {
        candidates_of(value, &mut candidates);
    }
    // The dump reads what it should: the users' names, the client ids.
    for known in ["alice", "bob", client.id.as_str(), machine.as_str()] {
        assert!(candidates.contains(known), "{known} is in the dump");
    }

    let target = DumpTarget {
        app: &app,
        client: &client,
        pending: &pending,
    };
    let client_ids = [client.id.as_str(), api.as_str(), machine.as_str()];
    let mut jobs: Vec<(Use, &str)> = Vec::new();
    let mut not_bearer = 0;
    for candidate in &candidates {
        jobs.push((Use::RefreshToken, candidate));
        jobs.push((Use::AuthorizationCode, candidate));
        for id in client_ids {
            jobs.push((Use::ClientSecret(id), candidate));
        }
        if fits_a_header(candidate) {
            jobs.push((Use::BearerToken, candidate));
        } else {
            not_bearer += 1;
        }
    }
    let probing = Instant::now();
    let mut findings = Vec::new();
    for chunk in jobs.chunks(32) {
        let results = futures_util::future::join_all(
            chunk
                .iter()
                .map(|(using, candidate)| probe(&target, *using, candidate)),
        )
        .await;
        findings.extend(results.into_iter().filter_map(Result::err));
    }
    let probe_time = probing.elapsed();

    eprintln!(
        "database dump ({backend:?}): {} values from {} tables ({counts:?}); {} distinct \
         candidates × 4 uses = {} requests ({} candidates not header-safe, not sent as bearer); \
         probes {:.1?}, whole test {:.1?}",
        values.len(),
        counts.len(),
        candidates.len(),
        jobs.len(),
        not_bearer,
        probe_time,
        started.elapsed()
    );
    assert!(
        findings.is_empty(),
        "{} dumped values were not refused:\n{}",
        findings.len(),
        findings.join("\n")
    );

    // The same requests with the real credentials are accepted.
    assert_eq!(userinfo(&app, &alice.access).await.status(), 200);
    let response = exchange_code(&app, &client, &pending_code, &pending.verifier).await;
    assert_eq!(
        response.status(),
        200,
        "the pending code was live throughout"
    );
    refreshed(&app, &client, &alice.refresh).await;
    assert_eq!(
        app.client_credentials(&machine, &machine_secret)
            .await
            .status(),
        200
    );
    let api_basic = form_basic(&api, &api_secret);
    let response = app
        .http
        .post(app.url("/token"))
        .header("authorization", api_basic)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the API's own secret");

    assert!(
        candidates.len() > 100,
        "only {} candidates: the dump read too little",
        candidates.len()
    );
}

on_both_backends!(
    revoking_a_refresh_token_revokes_its_whole_family,
    a_refresh_token_is_revoked_whatever_the_hint,
    revoking_an_access_token_denies_only_that_token,
    revoking_a_client_credentials_token_makes_it_inactive,
    another_clients_tokens_are_not_revoked,
    unknown_and_malformed_tokens_are_answered_200,
    a_public_client_revokes_with_its_client_id_alone,
    revocation_errors_get_their_exact_responses,
    introspection_errors_get_their_exact_responses,
    introspection_describes_an_active_access_token,
    introspection_describes_an_active_refresh_token,
    introspection_describes_a_client_credentials_token,
    inactive_tokens_are_exactly_active_false,
    expired_tokens_are_inactive,
    a_disabled_users_tokens_are_inactive,
    a_deleted_clients_tokens_stop_working,
    a_withdrawn_consent_or_a_new_password_ends_access_tokens,
    a_client_without_the_introspect_permission_sees_only_its_own_tokens,
    database_dump_yields_nothing_the_server_accepts,
);
