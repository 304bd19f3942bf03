//! JWKS (RFC 7517) and server metadata (RFC 8414, OIDC Discovery).
use serde_json::Value;

use crate::helpers::{Backend, on_both_backends, spawn_app, spawn_app_on, test_database};

async fn jwks_publishes_public_members_only(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let response = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    // A quarter of the 24 h pre-publication, capped at an hour.
    assert_eq!(response.headers()["cache-control"], "public, max-age=3600");
    assert_eq!(response.headers()["content-type"], "application/json");
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let jwks: Value = response.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "the active and the pre-published next key");
    // RFC 9110 §13.1.2: a matching If-None-Match gets 304 with no body.
    let again = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], etag.as_str());
    assert!(again.bytes().await.unwrap().is_empty());
    let other = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .header("if-none-match", "\"something-else\"")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    let key = keys[0].as_object().unwrap();
    let mut members: Vec<&str> = key.keys().map(String::as_str).collect();
    members.sort();
    assert_eq!(
        members,
        ["alg", "e", "kid", "kty", "n", "use"],
        "no private members (d, p, q, dp, dq, qi)"
    );
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["alg"], "RS256");
    // 2048-bit modulus: 256 bytes, 342 base64url characters.
    assert_eq!(key["n"].as_str().unwrap().len(), 342);
}

async fn discovery_documents_describe_what_is_implemented(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.machine_client(&["orders:read", "orders:write"]).await;
    // The new client's scopes reach discovery within the cache refresh.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let mut documents = Vec::new();
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            response.headers()["access-control-allow-origin"],
            "*",
            "{path}"
        );
        documents.push(response.json::<Value>().await.unwrap());
    }
    assert_eq!(documents[0], documents[1]);
    let document = &documents[0];
    assert_eq!(document["issuer"], app.issuer.as_str());
    assert_eq!(
        document["jwks_uri"],
        format!("{}/.well-known/jwks.json", app.issuer)
    );
    assert_eq!(document["token_endpoint"], format!("{}/token", app.issuer));
    for (name, path) in [
        ("authorization_endpoint", "/authorize"),
        ("userinfo_endpoint", "/userinfo"),
        ("end_session_endpoint", "/logout"),
        ("revocation_endpoint", "/revoke"),
        ("introspection_endpoint", "/introspect"),
    ] {
        assert_eq!(document[name], format!("{}{path}", app.issuer), "{name}");
    }
    assert_eq!(
        document["grant_types_supported"],
        serde_json::json!(["authorization_code", "client_credentials", "refresh_token"])
    );
    assert_eq!(
        document["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post", "none"])
    );
    assert_eq!(
        document["scopes_supported"],
        serde_json::json!([
            "email",
            "groups",
            "offline_access",
            "openid",
            "orders:read",
            "orders:write",
            "profile"
        ])
    );
    assert_eq!(
        document["revocation_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post", "none"])
    );
    assert_eq!(
        document["introspection_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post"])
    );
    assert_eq!(
        document["response_types_supported"],
        serde_json::json!(["code"])
    );
    assert_eq!(
        document["response_modes_supported"],
        serde_json::json!(["query"])
    );
    assert_eq!(
        document["subject_types_supported"],
        serde_json::json!(["public"])
    );
    assert_eq!(
        document["prompt_values_supported"],
        serde_json::json!(["none", "login", "consent"])
    );
    assert_eq!(
        document["authorization_response_iss_parameter_supported"],
        true
    );
    assert_eq!(document["request_parameter_supported"], false);
    assert_eq!(document["request_uri_parameter_supported"], false);
    let claims = document["claims_supported"].as_array().unwrap();
    for claim in [
        "sub",
        "auth_time",
        "nonce",
        "name",
        "email",
        "email_verified",
    ] {
        assert!(claims.iter().any(|c| c == claim), "{claim}");
    }
    assert_eq!(
        document["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256"])
    );
    assert_eq!(
        document["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
}

async fn configured_issuer_is_returned_byte_for_byte(backend: Backend) {
    let Some(database) = test_database(backend).await else {
        return;
    };
    let issuer = "https://Auth.Example.com:8443";
    let app = spawn_app_on(
        database.into(),
        authd::crypto::MasterKey::generate(),
        |config| {
            config.issuer = Some(issuer.to_owned());
        },
    )
    .await
    .unwrap();
    let document: Value = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(document["issuer"], issuer);
    assert_eq!(
        document["token_endpoint"],
        "https://Auth.Example.com:8443/token"
    );
}

async fn health_and_readiness(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<Value>().await.unwrap()["status"], "ready");
    let head = app
        .http
        .head(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    let post = app
        .http
        .post(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
    assert_eq!(post.headers()["allow"], "GET, HEAD");
    let missing = app.http.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.headers().contains_key("x-request-id"));
}

on_both_backends!(
    jwks_publishes_public_members_only,
    discovery_documents_describe_what_is_implemented,
    configured_issuer_is_returned_byte_for_byte,
    health_and_readiness,
);
