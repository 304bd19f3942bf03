//! RFC 6749 §4.1 + RFC 7636 at `POST /token`: codes from a real sign-in,
//! exchanged with the `oauth2` crate and by hand; the ID token (OIDC Core
//! §2, §3.1.3) and the access token (RFC 9068) they yield.
use std::sync::Arc;

use authd::clock::SystemClock;
use authd::crypto::MasterKey;
use authd::startup::Runtime;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use oauth2::basic::{
    BasicClient, BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, PkceCodeVerifier, RedirectUrl,
    StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use serde_json::Value;
use sha2::Digest;

use crate::client_credentials::verify_access_token;
use crate::helpers::{
    Backend, Browser, Pkce, TestApp, WebClient, assert_no_store, authorize_query, exchange_code,
    on_both_backends, pkce, query_param, spawn_app, spawn_app_on, test_database,
};

/// Runs `/authorize` for `client` in `browser` (signing `username` in when
/// needed) and returns the code from the redirect back.
pub async fn code_for(
    browser: &Browser,
    client: &WebClient,
    pkce: &Pkce,
    username: &str,
    extra: &[(&str, &str)],
) -> String {
    let back = browser
        .sign_in(&authorize_query(client, pkce, extra), username)
        .await;
    assert!(
        back.starts_with(&format!("{}?code=", client.redirect_uri)),
        "{back}"
    );
    query_param(&back, "code").expect("a code")
}

/// Signs `username` in at `client` in `browser` and exchanges the code:
/// the token response, after checking it is a 200.
pub async fn sign_in_and_exchange(
    app: &TestApp,
    browser: &Browser,
    client: &WebClient,
    username: &str,
    extra: &[(&str, &str)],
) -> Value {
    let pkce = pkce();
    let code = code_for(browser, client, &pkce, username, extra).await;
    let response = exchange_code(app, client, &code, &pkce.verifier).await;
    assert_eq!(response.status(), 200, "code exchanged");
    assert_no_store(&response);
    response.json().await.unwrap()
}

/// The JSON of part `index` (0 header, 1 payload) of a JWS, unverified.
pub fn jwt_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("a JWS part");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

/// Verifies an ID token as a relying party would (OIDC Core §3.1.3.7):
/// RS256, `typ: JWT`, key from the JWKS by `kid`, `iss`, `aud` = client id.
pub async fn verify_id_token(app: &TestApp, token: &str, client_id: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).expect("JOSE header");
    assert_eq!(header.alg, Algorithm::RS256);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    let kid = header.kid.expect("kid in header");
    let jwks: JwkSet =
        serde_json::from_value(app.get_json("/.well-known/jwks.json").await).unwrap();
    let jwk = jwks.find(&kid).expect("kid is published in the JWKS");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[&app.issuer]);
    validation.set_audience(&[client_id]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "sub", "aud"]);
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .expect("ID token verifies against the JWKS")
        .claims
}

/// Disables a user through the store, as `authd users disable` does.
pub async fn disable_user(app: &TestApp, user_id: &str) {
    let runtime = Runtime::open(&app.config, false, &SystemClock)
        .await
        .expect("open database");
    let id = authd::domain::UserId(user_id.parse().expect("a user id"));
    assert!(
        runtime
            .store
            .disable_user(id, chrono::Utc::now())
            .await
            .expect("disable user")
    );
    runtime.store.close().await;
}

/// `GET /userinfo` with `Authorization: Bearer token`.
pub async fn userinfo(app: &TestApp, token: &str) -> reqwest::Response {
    app.http
        .get(app.url("/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// The `WWW-Authenticate` header, if any.
pub fn challenge(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
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

async fn confidential_client_signs_in_and_exchanges_with_oauth2(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(false, &["orders:read"]).await;
    app.user("alice").await;
    let pkce = pkce();
    let browser = app.browser();
    let query = authorize_query(&client, &pkce, &[("scope", "openid profile orders:read")]);
    let back = browser.sign_in(&query, "alice").await;
    assert!(back.starts_with("https://app.example/cb?code="), "{back}");
    assert_eq!(query_param(&back, "state").as_deref(), Some("st4te"));
    assert_eq!(
        query_param(&back, "iss").as_deref(),
        Some(app.issuer.as_str())
    );
    let code = query_param(&back, "code").unwrap();

    let oauth = BasicClient::new(ClientId::new(client.id.clone()))
        .set_client_secret(ClientSecret::new(client.secret.clone().unwrap()))
        .set_auth_uri(AuthUrl::new(app.url("/authorize")).unwrap())
        .set_token_uri(TokenUrl::new(app.url("/token")).unwrap())
        .set_redirect_uri(RedirectUrl::new(client.redirect_uri.clone()).unwrap());
    let token = oauth
        .exchange_code(AuthorizationCode::new(code.clone()))
        .set_pkce_verifier(PkceCodeVerifier::new(pkce.verifier.clone()))
        .request_async(&app.http)
        .await
        .expect("code exchanged");
    assert_eq!(
        token
            .scopes()
            .unwrap()
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>(),
        ["openid", "orders:read", "profile"]
    );

    // Single use: the same code again is invalid_grant.
    let again = exchange_code(&app, &client, &code, &pkce.verifier).await;
    assert_eq!(again.status(), 400);
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
}

/// The `id_token` member of a token response (OIDC Core §3.1.3.3), for
/// the `oauth2` crate.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
struct IdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

impl oauth2::ExtraTokenFields for IdTokenField {}

type OidcClient = oauth2::Client<
    BasicErrorResponse,
    StandardTokenResponse<IdTokenField, BasicTokenType>,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
>;

/// RFC 6749 §2.3 / §4.1.3: a public client authenticates with its
/// `client_id` alone (the `oauth2` crate puts it in the body when there is
/// no secret); PKCE (RFC 7636 §4.5) is what binds the code to it.
async fn public_client_exchanges_without_a_secret_with_oauth2(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(true, &[]).await;
    assert_eq!(client.secret, None);
    let user_id = app.user("alice").await;
    let pkce = pkce();
    let browser = app.browser();
    let code = code_for(&browser, &client, &pkce, "alice", &[]).await;

    let oauth = OidcClient::new(ClientId::new(client.id.clone()))
        .set_token_uri(TokenUrl::new(app.url("/token")).unwrap())
        .set_redirect_uri(RedirectUrl::new(client.redirect_uri.clone()).unwrap());
    let token = oauth
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(PkceCodeVerifier::new(pkce.verifier.clone()))
        .request_async(&app.http)
        .await
        .expect("code exchanged without a secret");
    assert_eq!(token.token_type(), &BasicTokenType::Bearer);
    assert_eq!(
        token.expires_in(),
        Some(std::time::Duration::from_secs(900))
    );
    assert!(token.refresh_token().is_none());
    let access = verify_access_token(&app, token.access_token().secret(), &app.issuer).await;
    assert_eq!(access["sub"], user_id.as_str());
    assert_eq!(access["client_id"], client.id.as_str());
    let id_token = token
        .extra_fields()
        .id_token
        .as_deref()
        .expect("an ID token for the openid scope");
    let claims = verify_id_token(&app, id_token, &client.id).await;
    assert_eq!(claims["sub"], user_id.as_str());
    assert_eq!(claims["azp"], client.id.as_str());
}

/// OIDC Core §2 and §3.1.3.6: every required claim, `nonce` echoed,
/// `at_hash` the left half of SHA-256 of the access token, `azp`.
async fn id_token_carries_the_oidc_core_claims(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(true, &[]).await;
    let user_id = app.user("alice").await;
    let browser = app.browser();
    let before = chrono::Utc::now().timestamp();
    let response = sign_in_and_exchange(&app, &browser, &client, "alice", &[]).await;
    let after = chrono::Utc::now().timestamp();
    let id_token = response["id_token"].as_str().expect("an id_token");
    let access_token = response["access_token"].as_str().unwrap();

    let header = jwt_part(id_token, 0);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "JWT");
    let kids: Vec<Value> = app.get_json("/.well-known/jwks.json").await["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].clone())
        .collect();
    assert!(
        kids.contains(&header["kid"]),
        "kid {} in the JWKS",
        header["kid"]
    );

    let claims = verify_id_token(&app, id_token, &client.id).await;
    assert_eq!(claims["iss"], app.issuer.as_str());
    assert_eq!(claims["sub"], user_id.as_str());
    assert_eq!(claims["aud"], client.id.as_str());
    assert_eq!(claims["azp"], client.id.as_str());
    assert_eq!(claims["nonce"], "n0nce");
    let iat = claims["iat"].as_i64().unwrap();
    assert!((before - 1..=after + 1).contains(&iat), "iat {iat}");
    assert!(claims["exp"].as_i64().unwrap() > iat);
    let auth_time = claims["auth_time"].as_i64().unwrap();
    assert!(
        (before - 1..=iat).contains(&auth_time),
        "auth_time {auth_time} is the login just made"
    );
    let digest = sha2::Sha256::digest(access_token.as_bytes());
    assert_eq!(claims["at_hash"], URL_SAFE_NO_PAD.encode(&digest[..16]));
    assert_eq!(claims["name"], "alice Example");
    assert_eq!(claims["preferred_username"], "alice");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["email_verified"], true);
}

/// OIDC Core §5.4: `profile` releases `name` and `preferred_username`,
/// `email` releases `email` and `email_verified`; nothing else does.
async fn id_token_releases_profile_and_email_claims_only_by_scope(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(false, &[]).await;
    app.user("alice").await;
    let browser = app.browser();
    let profile = ["name", "preferred_username"];
    let email = ["email", "email_verified"];
    for (scope, released) in [
        ("openid", vec![]),
        ("openid profile", profile.to_vec()),
        ("email openid", email.to_vec()),
        ("email openid profile", [profile, email].concat()),
    ] {
        let response =
            sign_in_and_exchange(&app, &browser, &client, "alice", &[("scope", scope)]).await;
        assert_eq!(response["scope"], scope);
        let claims =
            verify_id_token(&app, response["id_token"].as_str().unwrap(), &client.id).await;
        for name in [profile, email].concat() {
            assert_eq!(
                claims.get(name).is_some(),
                released.contains(&name),
                "scope {scope:?}: claim {name} in {claims}"
            );
        }
    }
}

/// OIDC Core §3.1.3.3: the ID token comes with the `openid` scope only; a
/// plain OAuth request gets an access token alone.
async fn no_id_token_without_the_openid_scope(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(false, &["orders:read"]).await;
    let user_id = app.user("alice").await;
    let response = sign_in_and_exchange(
        &app,
        &app.browser(),
        &client,
        "alice",
        &[("scope", "orders:read")],
    )
    .await;
    assert_eq!(response.get("id_token"), None, "{response}");
    assert_eq!(response["scope"], "orders:read");
    let claims = verify_access_token(
        &app,
        response["access_token"].as_str().unwrap(),
        &app.issuer,
    )
    .await;
    assert_eq!(claims["sub"], user_id.as_str());
    assert_eq!(claims["scope"], "orders:read");
}

/// RFC 9068 §2.2: the access token of a code names the user (`sub`), the
/// client (`client_id`), the granted scope, and the issuer as audience when
/// the client has no registered audience.
async fn access_token_names_the_user_and_the_client(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(false, &["orders:read"]).await;
    let user_id = app.user("alice").await;
    let response = sign_in_and_exchange(
        &app,
        &app.browser(),
        &client,
        "alice",
        &[("scope", "openid orders:read")],
    )
    .await;
    assert_eq!(response["token_type"], "Bearer");
    assert_eq!(response["expires_in"], 900);
    let token = response["access_token"].as_str().unwrap();
    assert_eq!(jwt_part(token, 0)["typ"], "at+jwt");
    let claims = verify_access_token(&app, token, &app.issuer).await;
    assert_eq!(claims["iss"], app.issuer.as_str());
    assert_eq!(claims["sub"], user_id.as_str());
    assert_eq!(claims["client_id"], client.id.as_str());
    assert_eq!(claims["scope"], "openid orders:read");
    assert_eq!(claims["aud"], app.issuer.as_str());
    for personal in ["name", "email", "preferred_username", "nonce"] {
        assert_eq!(claims.get(personal), None, "RFC 9068: no {personal}");
    }
}

/// One token request made from a correct one, and the error it must get.
struct Case {
    name: &'static str,
    /// The PKCE pair of the authorization request (default: a fresh one).
    pkce: Option<Pkce>,
    /// Form parameters replaced (`Some`) or removed (`None`).
    changes: Vec<(&'static str, Option<String>)>,
    /// The Basic secret; `None` sends `client_id` in the body instead.
    secret: Option<String>,
    status: u16,
    error: &'static str,
}

/// A PKCE pair whose verifier is `verifier`, whatever its shape.
fn pkce_with(verifier: String) -> Pkce {
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

/// RFC 6749 §5.2 and RFC 7636 §4.6: each broken token request gets its
/// exact error; a failed client authentication does not use up the code.
async fn every_code_exchange_error_gets_its_rfc_6749_response(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(false, &[]).await;
    let secret = client.secret.clone().unwrap();
    app.user("alice").await;
    let browser = app.browser();
    let case = |name, changes: Vec<(&'static str, Option<String>)>, status, error| Case {
        name,
        pkce: None,
        changes,
        secret: Some(secret.clone()),
        status,
        error,
    };
    let some = |value: &str| Some(value.to_owned());
    let cases = vec![
        case(
            "wrong code_verifier",
            vec![("code_verifier", Some(pkce().verifier))],
            400,
            "invalid_grant",
        ),
        case(
            "missing code_verifier",
            vec![("code_verifier", None)],
            400,
            "invalid_grant",
        ),
        // RFC 7636 §4.1: 43 to 128 unreserved characters, even when the
        // challenge was computed from the malformed value.
        Case {
            pkce: Some(pkce_with("a".repeat(42))),
            ..case("verifier too short", vec![], 400, "invalid_grant")
        },
        Case {
            pkce: Some(pkce_with("a".repeat(129))),
            ..case("verifier too long", vec![], 400, "invalid_grant")
        },
        Case {
            pkce: Some(pkce_with(format!("{}+/=", "a".repeat(43)))),
            ..case("verifier not unreserved", vec![], 400, "invalid_grant")
        },
        case(
            "other redirect_uri",
            vec![("redirect_uri", some("https://app.example/other"))],
            400,
            "invalid_grant",
        ),
        case(
            "redirect_uri with a trailing slash",
            vec![("redirect_uri", some("https://app.example/cb/"))],
            400,
            "invalid_grant",
        ),
        case(
            "redirect_uri omitted though the request had one",
            vec![("redirect_uri", None)],
            400,
            "invalid_grant",
        ),
        case(
            "unknown code",
            vec![("code", some("not-a-code-this-server-issued"))],
            400,
            "invalid_grant",
        ),
        case("missing code", vec![("code", None)], 400, "invalid_request"),
        Case {
            secret: some("wrong-secret"),
            ..case("wrong secret", vec![], 401, "invalid_client")
        },
        Case {
            secret: None,
            ..case(
                "confidential client sends only client_id",
                vec![],
                401,
                "invalid_client",
            )
        },
    ];
    for case in cases {
        let pkce = case.pkce.clone().unwrap_or_else(pkce);
        let code = code_for(&browser, &client, &pkce, "alice", &[]).await;
        let mut form: Vec<(&str, String)> = vec![
            ("grant_type", "authorization_code".into()),
            ("code", code.clone()),
            ("redirect_uri", client.redirect_uri.clone()),
            ("code_verifier", pkce.verifier.clone()),
        ];
        for (name, value) in &case.changes {
            form.retain(|(k, _)| k != name);
            if let Some(value) = value {
                form.push((name, value.clone()));
            }
        }
        let mut request = app.http.post(app.url("/token"));
        match &case.secret {
            Some(secret) => request = request.basic_auth(&client.id, Some(secret)),
            None => form.push(("client_id", client.id.clone())),
        }
        let response = request.form(&form).send().await.unwrap();
        assert_token_error(response, case.status, case.error, case.name).await;
        if case.status == 401 {
            // The client was never authenticated: the code is untouched.
            let response = exchange_code(&app, &client, &code, &pkce.verifier).await;
            assert_eq!(response.status(), 200, "{}: code still usable", case.name);
        }
    }
}

/// RFC 6749 §4.1.3: without `redirect_uri` at `/authorize` (one registered
/// URI), `/token` may omit it too; when given, it must still be that URI.
async fn redirect_uri_may_be_omitted_when_the_request_had_none(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(false, &[]).await;
    app.user("alice").await;
    let browser = app.browser();
    let pkce = pkce();
    let code = code_for(&browser, &client, &pkce, "alice", &[("redirect_uri", "")]).await;
    let response = app
        .http
        .post(app.url("/token"))
        .basic_auth(&client.id, client.secret.as_deref())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("code_verifier", pkce.verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let pkce = crate::helpers::pkce();
    let code = code_for(&browser, &client, &pkce, "alice", &[("redirect_uri", "")]).await;
    let response = app
        .http
        .post(app.url("/token"))
        .basic_auth(&client.id, client.secret.as_deref())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "https://app.example/elsewhere"),
            ("code_verifier", pkce.verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_token_error(response, 400, "invalid_grant", "other redirect_uri").await;
}

/// RFC 6749 §4.1.3: the code must have been issued to the authenticated
/// client. Another client's attempt fails and does not spend the code.
async fn code_of_another_client_is_invalid_grant_and_stays_usable(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let owner = app.web_client(false, &[]).await;
    let other = app.web_client(false, &[]).await;
    let public = app.web_client(true, &[]).await;
    app.user("alice").await;
    let browser = app.browser();
    let pkce = pkce();
    let code = code_for(&browser, &owner, &pkce, "alice", &[]).await;
    // `other` has the same redirect URI, so only the client binding differs.
    for (name, thief) in [("confidential", &other), ("public", &public)] {
        let thief = WebClient {
            redirect_uri: owner.redirect_uri.clone(),
            ..thief.clone()
        };
        let response = exchange_code(&app, &thief, &code, &pkce.verifier).await;
        assert_token_error(response, 400, "invalid_grant", name).await;
    }
    let response = exchange_code(&app, &owner, &code, &pkce.verifier).await;
    assert_eq!(response.status(), 200, "the owner still redeems the code");
}

/// RFC 6749 §4.1.2: codes are short-lived; past `expires_at` a code is
/// invalid_grant.
async fn expired_code_is_invalid_grant(backend: Backend) {
    let Some(database) = test_database(backend).await else {
        return;
    };
    let app = spawn_app_on(Arc::new(database), MasterKey::generate(), |config| {
        config.authorization_code_ttl = 1
    })
    .await
    .expect("app starts");
    let client = app.web_client(false, &[]).await;
    app.user("alice").await;
    let browser = app.browser();
    let pkce = pkce();
    let code = code_for(&browser, &client, &pkce, "alice", &[]).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let response = exchange_code(&app, &client, &code, &pkce.verifier).await;
    assert_token_error(response, 400, "invalid_grant", "expired code").await;

    // A fresh code from the same app is fine: the TTL, not the setup, failed it.
    let pkce = crate::helpers::pkce();
    let code = code_for(&browser, &client, &pkce, "alice", &[]).await;
    let response = exchange_code(&app, &client, &code, &pkce.verifier).await;
    assert_eq!(response.status(), 200);
}

/// RFC 6749 §4.1.2: "If an authorization code is used more than once, the
/// authorization server MUST deny the request and SHOULD revoke (when
/// possible) all tokens previously issued based on that authorization code."
async fn replayed_code_is_refused_and_revokes_its_access_token(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(true, &[]).await;
    app.user("alice").await;
    let browser = app.browser();
    let pkce = pkce();
    let code = code_for(&browser, &client, &pkce, "alice", &[]).await;
    let response = exchange_code(&app, &client, &code, &pkce.verifier).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(userinfo(&app, token).await.status(), 200);

    let again = exchange_code(&app, &client, &code, &pkce.verifier).await;
    assert_token_error(again, 400, "invalid_grant", "replayed code").await;

    let revoked = userinfo(&app, token).await;
    assert_eq!(revoked.status(), 401);
    let challenge = challenge(&revoked).unwrap_or_default();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
}

/// DESIGN "single use": of 20 simultaneous exchanges of one code exactly
/// one wins; the others are invalid_grant (never a 500, never two tokens).
async fn concurrent_exchanges_of_one_code_have_one_winner(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(false, &[]).await;
    app.user("alice").await;
    let browser = app.browser();
    let pkce = pkce();
    let code = code_for(&browser, &client, &pkce, "alice", &[]).await;
    let responses = futures_util::future::join_all(
        (0..20).map(|_| exchange_code(&app, &client, &code, &pkce.verifier)),
    )
    .await;
    let mut statuses = Vec::new();
    for response in responses {
        let status = response.status().as_u16();
        statuses.push(status);
        let body: Value = response.json().await.unwrap();
        if status == 400 {
            assert_eq!(body["error"], "invalid_grant", "{body}");
        } else {
            assert_eq!(status, 200, "{body}");
        }
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 400).count(),
        19,
        "{statuses:?}"
    );
}

/// RFC 6749 §5.2 `invalid_grant`: a code whose user was disabled after
/// signing in yields no tokens.
async fn code_of_a_disabled_user_is_invalid_grant(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.web_client(false, &[]).await;
    let user_id = app.user("alice").await;
    let browser = app.browser();
    let pkce = pkce();
    let code = code_for(&browser, &client, &pkce, "alice", &[]).await;
    disable_user(&app, &user_id).await;
    let response = exchange_code(&app, &client, &code, &pkce.verifier).await;
    assert_token_error(response, 400, "invalid_grant", "disabled user").await;
}

/// Client-credentials tokens are not recorded (DESIGN): their `sub` is the
/// client, so `/userinfo` has nobody to describe and refuses them.
async fn client_credentials_token_is_refused_at_userinfo(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (id, secret) = app.machine_client(&["openid"]).await;
    let response = app.client_credentials(&id, &secret).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();
    let response = userinfo(&app, token).await;
    assert_eq!(response.status(), 401);
    let challenge = challenge(&response).unwrap_or_default();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
}

on_both_backends!(
    confidential_client_signs_in_and_exchanges_with_oauth2,
    public_client_exchanges_without_a_secret_with_oauth2,
    id_token_carries_the_oidc_core_claims,
    id_token_releases_profile_and_email_claims_only_by_scope,
    no_id_token_without_the_openid_scope,
    access_token_names_the_user_and_the_client,
    every_code_exchange_error_gets_its_rfc_6749_response,
    redirect_uri_may_be_omitted_when_the_request_had_none,
    code_of_another_client_is_invalid_grant_and_stays_usable,
    expired_code_is_invalid_grant,
    replayed_code_is_refused_and_revokes_its_access_token,
    concurrent_exchanges_of_one_code_have_one_winner,
    code_of_a_disabled_user_is_invalid_grant,
    client_credentials_token_is_refused_at_userinfo,
);
