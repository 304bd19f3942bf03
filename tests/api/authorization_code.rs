//! RFC 6749 §4.1 + RFC 7636 at `POST /token`: codes from a real sign-in,
//! exchanged with the `oauth2` crate and by hand.
use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, PkceCodeVerifier, RedirectUrl,
    TokenResponse, TokenUrl,
};

use crate::helpers::{
    Backend, authorize_query, exchange_code, on_both_backends, pkce, query_param, spawn_app,
};

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
    let body: serde_json::Value = again.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
}

on_both_backends!(confidential_client_signs_in_and_exchanges_with_oauth2);
