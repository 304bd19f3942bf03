//! RFC 6749 §4.4 client credentials at `POST /token`, with the `oauth2`
//! crate as the client and `jsonwebtoken` as the resource server.
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{AuthType, ClientId, ClientSecret, RequestTokenError, Scope, TokenResponse, TokenUrl};
use serde_json::Value;

use crate::helpers::{Backend, TestApp, assert_no_store, on_both_backends, spawn_app};

/// Verifies an access token offline, as a resource server would: key from
/// the JWKS by `kid`, RS256, issuer and audience.
pub async fn verify_access_token(app: &TestApp, token: &str, audience: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).expect("JOSE header");
    assert_eq!(header.alg, Algorithm::RS256);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"), "RFC 9068 §2.1 typ");
    let kid = header.kid.expect("kid in header");
    let jwks: JwkSet =
        serde_json::from_value(app.get_json("/.well-known/jwks.json").await).unwrap();
    let jwk = jwks.find(&kid).expect("kid is published in the JWKS");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[&app.issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "sub", "aud"]);
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .expect("token verifies against the JWKS")
        .claims
}

fn oauth2_client(
    app: &TestApp,
    id: &str,
    secret: &str,
    auth: AuthType,
) -> BasicClient<
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
> {
    BasicClient::new(ClientId::new(id.to_owned()))
        .set_client_secret(ClientSecret::new(secret.to_owned()))
        .set_token_uri(TokenUrl::new(app.url("/token")).unwrap())
        .set_auth_type(auth)
}

async fn oauth2_client_gets_a_verifiable_token(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (id, secret) = app.machine_client(&["orders:read", "orders:write"]).await;
    for auth in [AuthType::BasicAuth, AuthType::RequestBody] {
        let before = chrono::Utc::now().timestamp();
        let token = oauth2_client(&app, &id, &secret, auth)
            .exchange_client_credentials()
            .add_scope(Scope::new("orders:read".into()))
            .request_async(&app.http)
            .await
            .expect("token issued");
        assert_eq!(token.token_type(), &oauth2::basic::BasicTokenType::Bearer);
        assert_eq!(
            token.expires_in(),
            Some(std::time::Duration::from_secs(900))
        );
        assert_eq!(token.scopes().unwrap()[0].as_str(), "orders:read");
        assert!(
            token.refresh_token().is_none(),
            "RFC 6749 §4.4.3: no refresh token"
        );

        let claims = verify_access_token(&app, token.access_token().secret(), &app.issuer).await;
        assert_eq!(claims["iss"], app.issuer.as_str());
        assert_eq!(claims["sub"], id.as_str());
        assert_eq!(claims["client_id"], id.as_str());
        assert_eq!(claims["aud"], app.issuer.as_str());
        assert_eq!(claims["scope"], "orders:read");
        let iat = claims["iat"].as_i64().unwrap();
        assert!((before - 1..=before + 5).contains(&iat));
        assert_eq!(claims["exp"].as_i64().unwrap() - iat, 900);
        assert!(!claims["jti"].as_str().unwrap().is_empty());
        let names: Vec<&String> = claims.as_object().unwrap().keys().collect();
        assert_eq!(names.len(), 8, "minimal claims only: {names:?}");
    }
}

async fn no_scope_grants_the_allowed_set_and_audience_is_registered(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (id, secret) = app
        .register(authd::clients::registration::NewClient {
            name: "Reports".into(),
            scopes: vec!["b".into(), "a".into()],
            audiences: vec!["https://api.example.com".into()],
            ..Default::default()
        })
        .await;
    let token = oauth2_client(&app, &id, &secret.unwrap(), AuthType::BasicAuth)
        .exchange_client_credentials()
        .request_async(&app.http)
        .await
        .unwrap();
    let claims = verify_access_token(
        &app,
        token.access_token().secret(),
        "https://api.example.com",
    )
    .await;
    assert_eq!(claims["scope"], "a b");
    assert_eq!(claims["aud"], "https://api.example.com");
}

async fn wrong_secret_is_invalid_client_for_the_oauth2_crate(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (id, _) = app.machine_client(&[]).await;
    let error = oauth2_client(&app, &id, "not-the-secret", AuthType::BasicAuth)
        .exchange_client_credentials()
        .request_async(&app.http)
        .await
        .unwrap_err();
    match error {
        RequestTokenError::ServerResponse(response) => {
            assert_eq!(response.error(), &BasicErrorResponseType::InvalidClient)
        }
        other => panic!("expected an invalid_client response, got {other:?}"),
    }
}

/// One request and the exact response it must get.
struct Case {
    name: &'static str,
    method: reqwest::Method,
    query: &'static str,
    content_type: &'static str,
    authorization: Option<String>,
    body: String,
    status: u16,
    error: &'static str,
}

async fn every_error_gets_its_rfc_6749_response(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (id, secret) = app.machine_client(&["orders:read"]).await;
    let (code_only, code_only_secret) = app
        .register(authd::clients::registration::NewClient {
            name: "Web app".into(),
            redirect_uris: vec!["https://app.example.com/cb".into()],
            ..Default::default()
        })
        .await;
    let basic = |id: &str, secret: &str| {
        Some(format!(
            "Basic {}",
            STANDARD.encode(format!("{id}:{secret}"))
        ))
    };
    let good = basic(&id, &secret);
    let form = "application/x-www-form-urlencoded";
    let cc = "grant_type=client_credentials".to_owned();
    let case = |name, authorization: Option<String>, body: String, status, error| Case {
        name,
        method: reqwest::Method::POST,
        query: "",
        content_type: form,
        authorization,
        body,
        status,
        error,
    };
    let cases = vec![
        case(
            "wrong secret",
            basic(&id, "wrong"),
            cc.clone(),
            401,
            "invalid_client",
        ),
        case(
            "unknown client",
            basic("no-such-client", &secret),
            cc.clone(),
            401,
            "invalid_client",
        ),
        case("no credentials", None, cc.clone(), 401, "invalid_client"),
        case(
            "secret without id",
            None,
            format!("{cc}&client_secret={secret}"),
            401,
            "invalid_client",
        ),
        case(
            "id without secret",
            None,
            format!("{cc}&client_id={id}"),
            401,
            "invalid_client",
        ),
        case(
            "wrong post secret",
            None,
            format!("{cc}&client_id={id}&client_secret=nope"),
            401,
            "invalid_client",
        ),
        case(
            "bad base64",
            Some("Basic %%%not-base64".into()),
            cc.clone(),
            401,
            "invalid_client",
        ),
        case(
            "no colon",
            Some(format!("Basic {}", STANDARD.encode(&id))),
            cc.clone(),
            401,
            "invalid_client",
        ),
        case(
            "non-UTF-8",
            Some(format!(
                "Basic {}",
                STANDARD.encode([0xff, 0xfe, b':', 0xc3])
            )),
            cc.clone(),
            401,
            "invalid_client",
        ),
        case(
            "bad percent-encoding",
            basic(&id, "%ff%fe"),
            cc.clone(),
            401,
            "invalid_client",
        ),
        case(
            "other scheme",
            Some("Bearer abc".into()),
            cc.clone(),
            401,
            "invalid_client",
        ),
        case(
            "basic and post",
            good.clone(),
            format!("{cc}&client_secret={secret}"),
            400,
            "invalid_request",
        ),
        case(
            "missing grant_type",
            good.clone(),
            "scope=orders:read".into(),
            400,
            "invalid_request",
        ),
        case(
            "unknown grant",
            good.clone(),
            "grant_type=password".into(),
            400,
            "unsupported_grant_type",
        ),
        case(
            "grant not allowed",
            basic(&code_only, code_only_secret.as_deref().unwrap()),
            cc.clone(),
            400,
            "unauthorized_client",
        ),
        case(
            "scope not allowed",
            good.clone(),
            format!("{cc}&scope=orders:write"),
            400,
            "invalid_scope",
        ),
        case(
            "scope partly allowed",
            good.clone(),
            format!("{cc}&scope=orders:read+admin"),
            400,
            "invalid_scope",
        ),
        case(
            "malformed scope",
            good.clone(),
            format!("{cc}&scope=orders:read++x"),
            400,
            "invalid_scope",
        ),
        case(
            "repeated parameter",
            good.clone(),
            format!("{cc}&scope=orders:read&scope=orders:read"),
            400,
            "invalid_request",
        ),
        case(
            "repeated grant_type",
            good.clone(),
            format!("{cc}&{cc}"),
            400,
            "invalid_request",
        ),
        Case {
            query: "client_secret=x",
            ..case(
                "credentials in query",
                good.clone(),
                cc.clone(),
                400,
                "invalid_request",
            )
        },
        Case {
            query: "client_secret=x&client_secret=x",
            ..case(
                "repeated credentials in query",
                good.clone(),
                cc.clone(),
                400,
                "invalid_request",
            )
        },
        Case {
            query: "client_id=x",
            ..case(
                "client_id in query",
                None,
                cc.clone(),
                400,
                "invalid_request",
            )
        },
        Case {
            content_type: "application/json",
            ..case(
                "json body",
                good.clone(),
                r#"{"grant_type":"client_credentials"}"#.into(),
                400,
                "invalid_request",
            )
        },
        case(
            "oversized body",
            good.clone(),
            format!("{cc}&pad={}", "x".repeat(17 * 1024)),
            413,
            "invalid_request",
        ),
        Case {
            method: reqwest::Method::GET,
            ..case("GET", good.clone(), String::new(), 405, "invalid_request")
        },
        Case {
            method: reqwest::Method::PUT,
            ..case("PUT", good.clone(), cc.clone(), 405, "invalid_request")
        },
    ];
    for case in cases {
        let url = if case.query.is_empty() {
            app.url("/token")
        } else {
            app.url(&format!("/token?{}", case.query))
        };
        let mut request = app
            .http
            .request(case.method.clone(), url)
            .header("content-type", case.content_type)
            .body(case.body.clone());
        if let Some(value) = &case.authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), case.status, "{}", case.name);
        assert_no_store(&response);
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        if case.status == 401 {
            assert!(
                challenge
                    .as_deref()
                    .is_some_and(|c| c.starts_with("Basic realm=")),
                "{}: WWW-Authenticate {challenge:?}",
                case.name
            );
        } else {
            assert_eq!(challenge, None, "{}", case.name);
        }
        if case.status == 405 {
            assert_eq!(response.headers()["allow"], "POST", "{}", case.name);
        }
        let request_id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{}",
            case.name
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], case.error, "{}: {body}", case.name);
        assert!(
            body["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{}",
            case.name
        );
        // RFC 6749 §5.2: error_description is %x20-21 / %x23-5B / %x5D-7E
        // (the malformed-scope message cites "RFC 6749 §3.3").
        let description = body["error_description"].as_str().unwrap_or_default();
        assert!(
            description
                .bytes()
                .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E)),
            "{}: {description:?}",
            case.name
        );
        assert_eq!(body["request_id"], request_id.as_str(), "{}", case.name);
        assert!(
            !body.to_string().contains(&secret),
            "{}: the secret is echoed",
            case.name
        );
    }
}

on_both_backends!(
    oauth2_client_gets_a_verifiable_token,
    no_scope_grants_the_allowed_set_and_audience_is_registered,
    wrong_secret_is_invalid_client_for_the_oauth2_crate,
    every_error_gets_its_rfc_6749_response,
);
