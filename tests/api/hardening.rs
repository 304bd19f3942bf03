//! Issue 7 items 2 and 3: CORS and the headers of every response.
//!
//! CORS is the Fetch standard's protocol (fetch.spec.whatwg.org, "CORS
//! protocol"): JWKS and discovery are readable by any origin (`*`); `/token`,
//! `/revoke` and `/userinfo` only by the origins registered for the client
//! the request turned out to be (`--allowed-origin`), or, when no client was
//! identified, by any registered origin so that an app can read its errors;
//! the sign-in pages and the other endpoints never send CORS headers.
//! Credentials mode is never allowed. Every response says `nosniff`, is
//! `no-store` unless it is a cacheable document, and carries HSTS (RFC 6797
//! §6.1) when the issuer is https.
use std::process::Output;
use std::sync::Arc;

use authd::clients::registration::NewClient;
use authd::config::Config;
use authd::crypto::MasterKey;
use serde_json::Value;

use crate::authorization_code::code_for;
use crate::helpers::{
    Backend, PASSWORD, TestApp, WebClient, authorize_query, form_value, json_ok, location,
    on_both_backends, pkce, run_authd, spawn_app, spawn_app_on, test_database,
};

/// The origin registered for the first client of a test.
const APP: &str = "https://app.example";
/// An origin registered for another client only.
const OTHER: &str = "https://b.example";
/// An origin registered for no client.
const STRANGER: &str = "https://anything.example";

/// The response headers a browser script may read besides the safelisted ones.
const EXPOSED: [&str; 6] = [
    "WWW-Authenticate",
    "Retry-After",
    "X-Request-Id",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
];

async fn spawn_app_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Option<TestApp> {
    let database = test_database(backend).await?;
    Some(
        spawn_app_on(Arc::new(database), MasterKey::generate(), adjust)
            .await
            .expect("app starts"),
    )
}

/// The value of header `name` as text, if present.
fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response
        .headers()
        .get(name)
        .map(|value| value.to_str().expect("a text header"))
}

/// Every element of the comma-separated lists in all `name` headers
/// (RFC 9110 §5.3: several lines are one list).
fn list(response: &reqwest::Response, name: &str) -> Vec<String> {
    response
        .headers()
        .get_all(name)
        .iter()
        .flat_map(|value| value.to_str().expect("a text header").split(','))
        .map(|element| element.trim().to_owned())
        .filter(|element| !element.is_empty())
        .collect()
}

/// The names of the `Access-Control-*` headers of a response.
fn cors_headers(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .keys()
        .map(|name| name.as_str().to_owned())
        .filter(|name| name.starts_with("access-control-"))
        .collect()
}

/// `Vary` names `Origin`: a cache must not serve one origin's answer to
/// another (Fetch standard, "CORS protocol and HTTP caches").
fn assert_varies_on_origin(response: &reqwest::Response, case: &str) {
    let vary = list(response, "vary");
    assert!(
        vary.iter().any(|v| v.eq_ignore_ascii_case("origin")),
        "{case}: Vary {vary:?} should name Origin"
    );
}

/// Credentials mode is never allowed: tokens travel in headers and bodies.
fn assert_no_credentials(response: &reqwest::Response, case: &str) {
    assert!(
        header(response, "access-control-allow-credentials").is_none(),
        "{case}: Access-Control-Allow-Credentials must never be sent"
    );
}

/// The response is readable by `origin` alone, with the headers an app
/// needs exposed.
fn assert_readable_by(response: &reqwest::Response, origin: &str, case: &str) {
    let allowed: Vec<&str> = response
        .headers()
        .get_all("access-control-allow-origin")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(allowed, [origin], "{case}: Access-Control-Allow-Origin");
    let exposed = list(response, "access-control-expose-headers");
    for name in EXPOSED {
        assert!(
            exposed.iter().any(|e| e.eq_ignore_ascii_case(name)),
            "{case}: Access-Control-Expose-Headers {exposed:?} should list {name}"
        );
    }
    assert_no_credentials(response, case);
}

/// No origin may read the response (a browser hides it from the script).
fn assert_not_readable(response: &reqwest::Response, case: &str) {
    assert!(
        header(response, "access-control-allow-origin").is_none(),
        "{case}: no Access-Control-Allow-Origin expected, got {:?}",
        header(response, "access-control-allow-origin")
    );
    assert!(
        header(response, "access-control-expose-headers").is_none(),
        "{case}: nothing exposed to an origin that may not read"
    );
    assert_no_credentials(response, case);
}

/// Not a CORS resource at all: no `Access-Control-*` header of any kind.
fn assert_no_cors(response: &reqwest::Response, case: &str) {
    assert_eq!(
        cors_headers(response),
        Vec::<String>::new(),
        "{case}: no Access-Control-* header expected"
    );
}

/// An `OPTIONS` preflight: `Access-Control-Request-Method`, and
/// `Access-Control-Request-Headers` when given.
async fn preflight(
    app: &TestApp,
    path: &str,
    origin: Option<&str>,
    method: &str,
    request_headers: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .http
        .request(reqwest::Method::OPTIONS, app.url(path))
        .header("access-control-request-method", method);
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    if let Some(names) = request_headers {
        request = request.header("access-control-request-headers", names);
    }
    request.send().await.unwrap()
}

/// Waits until the running server knows `origin` is registered: a client
/// registered while it runs reaches its cache with the next refresh.
async fn wait_for_origin(app: &TestApp, origin: &str) {
    let mut last = 0;
    for _ in 0..50 {
        let response = preflight(app, "/token", Some(origin), "POST", None).await;
        last = response.status().as_u16();
        if last == 204 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{origin} was not accepted within 5 s (last preflight answered {last})");
}

/// A confidential client_credentials client that registered `origins`.
async fn machine_client_from(app: &TestApp, origins: &[&str]) -> (String, String) {
    let (id, secret) = app
        .register(NewClient {
            name: "Browser machine".into(),
            allowed_origins: origins.iter().map(|o| o.to_string()).collect(),
            ..Default::default()
        })
        .await;
    (id, secret.expect("a confidential client"))
}

/// `grant_type=client_credentials` with `client_secret_basic`, from `origin`.
async fn client_credentials_from(
    app: &TestApp,
    id: &str,
    secret: &str,
    origin: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .http
        .post(app.url("/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")]);
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    request.send().await.unwrap()
}

async fn access_token_of(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 200, "token issued");
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// `GET url` with `Origin: origin`.
async fn get_from(http: &reqwest::Client, url: &str, origin: &str) -> reqwest::Response {
    http.get(url).header("origin", origin).send().await.unwrap()
}

/// `POST url` of a form with `Origin: origin`.
async fn post_from(
    http: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
    origin: &str,
) -> reqwest::Response {
    http.post(url)
        .header("origin", origin)
        .form(form)
        .send()
        .await
        .unwrap()
}

const PUBLIC_DOCUMENTS: [&str; 3] = [
    "/.well-known/jwks.json",
    "/.well-known/openid-configuration",
    "/.well-known/oauth-authorization-server",
];

/// JWKS and discovery (RFC 8414 §3, OIDC Discovery §4) are public: any
/// origin reads them, and their preflight allows GET and HEAD.
async fn public_documents_are_readable_by_any_origin(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    for path in PUBLIC_DOCUMENTS {
        let response = get_from(&app.http, &app.url(path), STRANGER).await;
        assert_eq!(response.status(), 200, "{path}");
        let allowed: Vec<&str> = response
            .headers()
            .get_all("access-control-allow-origin")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(allowed, ["*"], "{path}: one Access-Control-Allow-Origin");
        assert_no_credentials(&response, path);
        assert!(response.json::<Value>().await.is_ok(), "{path}: JSON");

        let head = app
            .http
            .head(app.url(path))
            .header("origin", STRANGER)
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), 200, "HEAD {path}");
        assert_eq!(
            header(&head, "access-control-allow-origin"),
            Some("*"),
            "HEAD {path}"
        );

        let preflight = preflight(&app, path, Some(STRANGER), "GET", None).await;
        let case = format!("preflight {path}");
        assert_eq!(preflight.status(), 204, "{case}");
        assert_eq!(
            header(&preflight, "access-control-allow-origin"),
            Some("*"),
            "{case}"
        );
        assert_eq!(
            header(&preflight, "access-control-allow-methods"),
            Some("GET, HEAD"),
            "{case}"
        );
        let max_age = header(&preflight, "access-control-max-age").expect("a Max-Age");
        assert!(
            max_age.parse::<u64>().is_ok_and(|seconds| seconds > 0),
            "{case}: Max-Age {max_age}"
        );
        assert_no_credentials(&preflight, &case);
        assert_eq!(preflight.text().await.unwrap(), "", "{case}: no body");
    }
}

/// `/token` answers are readable by the origins of the client that got the
/// token, and by no other origin, registered or not.
async fn token_responses_are_readable_only_by_the_clients_origins(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (a, a_secret) = machine_client_from(&app, &[APP]).await;
    let (b, b_secret) = machine_client_from(&app, &[OTHER]).await;
    wait_for_origin(&app, APP).await;
    wait_for_origin(&app, OTHER).await;

    let response = client_credentials_from(&app, &a, &a_secret, Some(APP)).await;
    assert_eq!(response.status(), 200, "A from its origin");
    assert_readable_by(&response, APP, "A from its origin");
    assert_varies_on_origin(&response, "A from its origin");
    assert_eq!(header(&response, "cache-control"), Some("no-store"));

    let response = client_credentials_from(&app, &b, &b_secret, Some(OTHER)).await;
    assert_eq!(response.status(), 200, "B from its origin");
    assert_readable_by(&response, OTHER, "B from its origin");

    let cases = [
        (Some(OTHER), "A from B's origin"),
        (Some(STRANGER), "A from an unregistered origin"),
        (
            Some("https://APP.example"),
            "A from its origin, differently cased",
        ),
        (Some("http://app.example"), "A from its origin's http twin"),
        (Some("https://app.example:8443"), "A from another port"),
        (Some("null"), "A from an opaque origin"),
        (None, "A without Origin"),
    ];
    for (origin, case) in cases {
        let response = client_credentials_from(&app, &a, &a_secret, origin).await;
        assert_eq!(response.status(), 200, "{case}");
        assert_not_readable(&response, case);
        assert_varies_on_origin(&response, case);
    }

    // A failed authentication identifies no client: a registered origin
    // may read the error (and its challenge, RFC 6749 §5.2), others not.
    let response = client_credentials_from(&app, &a, "wrong secret", Some(APP)).await;
    assert_eq!(response.status(), 401, "wrong secret");
    assert!(header(&response, "www-authenticate").is_some());
    assert_readable_by(&response, APP, "wrong secret from a registered origin");
    assert_varies_on_origin(&response, "wrong secret");
    let response = client_credentials_from(&app, &a, "wrong secret", Some(STRANGER)).await;
    assert_eq!(response.status(), 401);
    assert_not_readable(&response, "wrong secret from an unregistered origin");
    assert_varies_on_origin(&response, "wrong secret from an unregistered origin");
}

/// The preflights of `/token`, `/revoke` and `/userinfo`: a registered
/// origin gets its answer, any other a JSON refusal.
async fn api_preflights_answer_registered_origins_only(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    machine_client_from(&app, &[APP]).await;
    wait_for_origin(&app, APP).await;
    let routes = [
        ("/token", "POST", "POST"),
        ("/revoke", "POST", "POST"),
        ("/userinfo", "GET", "GET, POST"),
        ("/userinfo", "POST", "GET, POST"),
    ];
    for (path, method, methods) in routes {
        let case = format!("preflight {method} {path} from a registered origin");
        let response = preflight(
            &app,
            path,
            Some(APP),
            method,
            Some("authorization, content-type"),
        )
        .await;
        assert_eq!(response.status(), 204, "{case}");
        let allowed: Vec<&str> = response
            .headers()
            .get_all("access-control-allow-origin")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(allowed, [APP], "{case}");
        assert_eq!(
            header(&response, "access-control-allow-methods"),
            Some(methods),
            "{case}"
        );
        assert_eq!(
            header(&response, "access-control-allow-headers"),
            Some("Authorization, Content-Type"),
            "{case}"
        );
        assert_eq!(
            header(&response, "access-control-max-age"),
            Some("600"),
            "{case}"
        );
        assert_varies_on_origin(&response, &case);
        assert_no_credentials(&response, &case);
        assert_eq!(
            header(&response, "cache-control"),
            Some("no-store"),
            "{case}"
        );
        assert_eq!(response.text().await.unwrap(), "", "{case}: no body");

        for origin in [Some(STRANGER), Some("null"), None] {
            let case = format!("preflight {method} {path} from {origin:?}");
            let response = preflight(&app, path, origin, method, None).await;
            assert_eq!(response.status(), 403, "{case}");
            assert_not_readable(&response, &case);
            assert_varies_on_origin(&response, &case);
            assert_eq!(
                header(&response, "content-type"),
                Some("application/json"),
                "{case}"
            );
            assert_eq!(
                header(&response, "cache-control"),
                Some("no-store"),
                "{case}"
            );
            let request_id = header(&response, "x-request-id")
                .expect("an X-Request-Id")
                .to_owned();
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"], "invalid_request", "{case}: {body}");
            assert_eq!(body["request_id"], request_id.as_str(), "{case}");
            assert!(
                body["error_description"]
                    .as_str()
                    .is_some_and(|d| d.contains("--allowed-origin")),
                "{case}: {body}"
            );
        }
    }
}

/// Preflights take from the per-IP bucket like every request ("per client
/// IP on every route"), so an OPTIONS flood is limited too. A preflight
/// within the limit carries the `X-RateLimit-*` headers; a refused one is
/// a bare 429 (no CORS headers: the browser reports a failed preflight),
/// while a refused request is readable by a registered origin, with
/// `Retry-After` (RFC 6585 §4). Each phase comes from its own believed
/// client IP (`X-Forwarded-For` from a trusted proxy), so waiting for the
/// origin to reach the server's cache uses no phase's bucket.
async fn preflights_take_from_the_per_ip_bucket(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |config| {
        config.rate_limits.ip = "3/min".parse().unwrap();
        config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await
    else {
        return;
    };
    let (id, secret) = machine_client_from(&app, &[APP]).await;
    let preflight_as = |ip: &str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/token"))
            .header("access-control-request-method", "POST")
            .header("origin", APP)
            .header("x-forwarded-for", ip.to_owned())
            .send()
    };
    let token_as = |ip: &'static str| {
        app.http
            .post(app.url("/token"))
            .basic_auth(&id, Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .header("origin", APP)
            .header("x-forwarded-for", ip)
            .send()
    };
    // Until the server's cache has the client, each poll from its own
    // believed IP (TEST-NET-2): 3/min would not last the wait from one.
    let mut known = false;
    for n in 1..=50 {
        let response = preflight_as(&format!("198.51.100.{n}")).await.unwrap();
        if response.status() == 204 {
            known = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(known, "{APP} was not accepted within 5 s");
    const A: &str = "203.0.113.7";
    let remaining = |response: &reqwest::Response| {
        header(response, "x-ratelimit-remaining").map(|r| r.parse::<u64>().unwrap())
    };

    let first = preflight_as(A).await.unwrap();
    assert_eq!(first.status(), 204, "first preflight");
    assert_eq!(
        header(&first, "access-control-allow-origin"),
        Some(APP),
        "preflight within the limit"
    );
    assert_eq!(header(&first, "x-ratelimit-limit"), Some("3"));
    assert_eq!(remaining(&first), Some(2), "the preflight took one");
    let token = token_as(A).await.unwrap();
    assert_eq!(token.status(), 200, "the request it preceded");
    assert_eq!(remaining(&token), Some(1));
    let second = preflight_as(A).await.unwrap();
    assert_eq!(second.status(), 204);
    assert_eq!(remaining(&second), Some(0));

    // The bucket is empty: the next preflight is refused without CORS
    // headers, the next request is refused readably.
    let refused = preflight_as(A).await.unwrap();
    assert_eq!(refused.status(), 429, "a preflight over the limit");
    assert!(header(&refused, "retry-after").is_some());
    assert!(
        header(&refused, "access-control-allow-origin").is_none(),
        "a refused preflight grants nothing"
    );
    assert_eq!(remaining(&refused), Some(0));
    let refused = token_as(A).await.unwrap();
    assert_eq!(refused.status(), 429, "a request over the limit");
    assert!(header(&refused, "retry-after").is_some());
    assert_readable_by(&refused, APP, "429 from a registered origin");
    assert_varies_on_origin(&refused, "429");

    // Another client IP has its own bucket.
    let other = preflight_as("203.0.113.8").await.unwrap();
    assert_eq!(other.status(), 204, "another IP");
    assert_eq!(remaining(&other), Some(2));
}

/// `/userinfo` (OIDC Core §5.3) and the code exchange of a browser app (a
/// public client): readable by the token's client's origins only; errors
/// readable by any registered origin.
async fn userinfo_is_readable_by_the_token_clients_origins(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    const SPA: &str = "https://spa.example";
    let spa = app
        .web_client_with(NewClient {
            name: "SPA".into(),
            public: true,
            redirect_uris: vec!["https://spa.example/cb".into()],
            allowed_origins: vec![SPA.into()],
            ..Default::default()
        })
        .await;
    machine_client_from(&app, &[OTHER]).await;
    wait_for_origin(&app, SPA).await;
    wait_for_origin(&app, OTHER).await;
    app.user("alice").await;

    // The SPA exchanges its code from its own origin (RFC 6749 §4.1.3,
    // RFC 7636 §4.5).
    let pkce = pkce();
    let code = code_for(&app.browser(), &spa, &pkce, "alice", &[]).await;
    let response = post_from(
        &app.http,
        &app.url("/token"),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &spa.redirect_uri),
            ("code_verifier", &pkce.verifier),
            ("client_id", &spa.id),
        ],
        SPA,
    )
    .await;
    assert_eq!(response.status(), 200, "code exchanged");
    assert_readable_by(&response, SPA, "code exchange from the SPA");
    assert_varies_on_origin(&response, "code exchange");
    let token = access_token_of(response).await;

    let get = |origin: &str| {
        app.http
            .get(app.url("/userinfo"))
            .bearer_auth(&token)
            .header("origin", origin)
            .send()
    };
    let response = get(SPA).await.unwrap();
    assert_eq!(response.status(), 200, "userinfo from the SPA");
    assert_readable_by(&response, SPA, "GET /userinfo from the SPA");
    assert_varies_on_origin(&response, "GET /userinfo from the SPA");
    assert_eq!(header(&response, "cache-control"), Some("no-store"));

    // OIDC Core §5.3.1: POST with the token in the header.
    let response = app
        .http
        .post(app.url("/userinfo"))
        .bearer_auth(&token)
        .header("origin", SPA)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "POST /userinfo");
    assert_readable_by(&response, SPA, "POST /userinfo from the SPA");

    for (origin, case) in [
        (OTHER, "userinfo from another client's origin"),
        (STRANGER, "userinfo from an unregistered origin"),
    ] {
        let response = get(origin).await.unwrap();
        assert_eq!(response.status(), 200, "{case}");
        assert_not_readable(&response, case);
        assert_varies_on_origin(&response, case);
    }

    // RFC 6750 §3: the app must be able to read why its token was refused.
    let refused = |token: &'static str, origin: &'static str| {
        app.http
            .get(app.url("/userinfo"))
            .bearer_auth(token)
            .header("origin", origin)
            .send()
    };
    let response = refused("not-a-token", OTHER).await.unwrap();
    assert_eq!(response.status(), 401, "invalid token");
    assert!(
        header(&response, "www-authenticate").is_some_and(|c| c.contains("invalid_token")),
        "a challenge"
    );
    assert_readable_by(&response, OTHER, "invalid token from a registered origin");
    assert_varies_on_origin(&response, "invalid token");
    let response = refused("not-a-token", STRANGER).await.unwrap();
    assert_eq!(response.status(), 401);
    assert_not_readable(&response, "invalid token from an unregistered origin");

    // RFC 6750 §3.1: no token at all → a bare challenge, readable too.
    let response = app
        .http
        .get(app.url("/userinfo"))
        .header("origin", SPA)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "no token");
    assert_readable_by(&response, SPA, "no token from a registered origin");
}

/// `/revoke` (RFC 7009 §2.2) from the client's origin is readable by it.
async fn revocation_is_readable_by_the_clients_origins(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (a, a_secret) = machine_client_from(&app, &[APP]).await;
    machine_client_from(&app, &[OTHER]).await;
    wait_for_origin(&app, APP).await;
    wait_for_origin(&app, OTHER).await;
    let revoke = |secret: &str, token: &str, origin: &str| {
        app.http
            .post(app.url("/revoke"))
            .basic_auth(&a, Some(secret.to_owned()))
            .header("origin", origin.to_owned())
            .form(&[("token", token.to_owned())])
            .send()
    };

    let token = access_token_of(app.client_credentials(&a, &a_secret).await).await;
    let response = revoke(&a_secret, &token, APP).await.unwrap();
    assert_eq!(response.status(), 200, "revoked");
    assert_readable_by(&response, APP, "revoke from the client's origin");
    assert_varies_on_origin(&response, "revoke from the client's origin");
    assert_eq!(header(&response, "cache-control"), Some("no-store"));

    let token = access_token_of(app.client_credentials(&a, &a_secret).await).await;
    let response = revoke(&a_secret, &token, OTHER).await.unwrap();
    assert_eq!(response.status(), 200, "revoked");
    assert_not_readable(&response, "revoke from another client's origin");
    assert_varies_on_origin(&response, "revoke from another client's origin");

    let response = revoke("wrong secret", &token, APP).await.unwrap();
    assert_eq!(response.status(), 401, "wrong secret");
    assert_readable_by(&response, APP, "failed revoke from a registered origin");
}

/// The sign-in pages, logout, introspection and health never answer
/// another origin's script, even an origin registered for a client; their
/// `OPTIONS` is not a CORS preflight.
async fn other_routes_never_send_cors_headers(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client: WebClient = app
        .web_client_with(NewClient {
            name: "Web app".into(),
            redirect_uris: vec!["https://app.example/cb".into()],
            allowed_origins: vec![APP.into()],
            ..Default::default()
        })
        .await;
    let (introspector, introspector_secret) = {
        let (id, secret) = app
            .register(NewClient {
                name: "API".into(),
                can_introspect: true,
                allowed_origins: vec![APP.into()],
                ..Default::default()
            })
            .await;
        (id, secret.unwrap())
    };
    wait_for_origin(&app, APP).await;
    app.user("alice").await;
    let browser = app.browser();
    let http = &browser.http;

    // The whole sign-in, every request from a registered origin.
    let query = authorize_query(&client, &pkce(), &[]);
    let response = get_from(http, &app.url(&format!("/authorize?{query}")), APP).await;
    assert_eq!(response.status(), 303, "GET /authorize");
    assert_no_cors(&response, "GET /authorize");
    let login = location(&response);
    assert!(login.starts_with("/login"), "{login}");

    let response = get_from(http, &app.url(&login), APP).await;
    assert_eq!(response.status(), 200, "login page");
    assert_no_cors(&response, "GET /login");
    let html = response.text().await.unwrap();
    let response = post_from(
        http,
        &app.url("/login"),
        &[
            ("csrf", &form_value(&html, "csrf").unwrap()),
            ("request", &form_value(&html, "request").unwrap()),
            ("username", "alice"),
            ("password", PASSWORD),
        ],
        APP,
    )
    .await;
    assert_eq!(response.status(), 303, "POST /login");
    assert_no_cors(&response, "POST /login");
    let consent = location(&response);
    assert!(consent.starts_with("/consent"), "{consent}");

    let response = get_from(http, &app.url(&consent), APP).await;
    assert_eq!(response.status(), 200, "consent page");
    assert_no_cors(&response, "GET /consent");
    let html = response.text().await.unwrap();
    let response = post_from(
        http,
        &app.url("/consent"),
        &[
            ("csrf", &form_value(&html, "csrf").unwrap()),
            ("request", &form_value(&html, "request").unwrap()),
            ("decision", "allow"),
        ],
        APP,
    )
    .await;
    assert_eq!(response.status(), 303, "POST /consent");
    assert_no_cors(&response, "POST /consent");
    assert!(location(&response).starts_with("https://app.example/cb?code="));

    let response = get_from(http, &app.url("/logout"), APP).await;
    assert!(response.status().as_u16() < 500, "GET /logout");
    assert_no_cors(&response, "GET /logout");

    // Introspection (RFC 7662) is for resource servers, not browsers.
    let (machine, machine_secret) = machine_client_from(&app, &[APP]).await;
    let token = access_token_of(app.client_credentials(&machine, &machine_secret).await).await;
    let response = app
        .http
        .post(app.url("/introspect"))
        .basic_auth(&introspector, Some(&introspector_secret))
        .header("origin", APP)
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "POST /introspect");
    assert_no_cors(&response, "POST /introspect");

    for path in ["/healthz", "/readyz", "/assets/authd.css", "/no-such-path"] {
        let response = get_from(&app.http, &app.url(path), APP).await;
        assert_no_cors(&response, path);
    }

    // OPTIONS elsewhere is routed like any other method: no preflight
    // answer, so a browser refuses the cross-origin request.
    for (path, allow) in [
        ("/authorize", "GET, POST"),
        ("/login", "GET, HEAD, POST"),
        ("/consent", "GET, HEAD, POST"),
        ("/logout", "GET, POST"),
        ("/introspect", "POST"),
    ] {
        let case = format!("OPTIONS {path}");
        let response = preflight(&app, path, Some(APP), "POST", Some("content-type")).await;
        assert_eq!(response.status(), 405, "{case}");
        assert_eq!(header(&response, "allow"), Some(allow), "{case}");
        assert_no_cors(&response, &case);
    }
    let response = preflight(&app, "/healthz", Some(APP), "GET", None).await;
    assert_ne!(response.status(), 204, "OPTIONS /healthz");
    assert_no_cors(&response, "OPTIONS /healthz");
}

/// The headers every response carries, whatever its status: `nosniff`
/// exactly once, and no HSTS on an http issuer.
fn assert_common_headers(response: &reqwest::Response, hsts: Option<&str>, case: &str) {
    let nosniff: Vec<&str> = response
        .headers()
        .get_all("x-content-type-options")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(nosniff, ["nosniff"], "{case}: X-Content-Type-Options");
    assert!(
        header(response, "x-request-id").is_some(),
        "{case}: X-Request-Id"
    );
    assert_eq!(
        header(response, "strict-transport-security"),
        hsts,
        "{case}: Strict-Transport-Security"
    );
}

/// What a response may be cached as.
#[derive(Debug, Clone, Copy)]
enum Caching {
    /// Exactly `no-store`.
    NoStore,
    /// Exactly this value.
    Exactly(&'static str),
    /// `public, max-age=N` with N > 0.
    Public,
}

fn assert_caching(response: &reqwest::Response, caching: Caching, case: &str) {
    let values: Vec<&str> = response
        .headers()
        .get_all("cache-control")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(values.len(), 1, "{case}: one Cache-Control, got {values:?}");
    let value = values[0];
    match caching {
        Caching::NoStore => assert_eq!(value, "no-store", "{case}"),
        Caching::Exactly(expected) => assert_eq!(value, expected, "{case}"),
        Caching::Public => {
            let age = value.strip_prefix("public, max-age=").unwrap_or_else(|| {
                panic!("{case}: Cache-Control {value:?} should be public, max-age=N")
            });
            assert!(
                age.parse::<u64>().is_ok_and(|seconds| seconds > 0),
                "{case}: {value}"
            );
        }
    }
}

/// A sample of responses of every kind: `(case, response, caching)`.
async fn sample_responses(app: &TestApp) -> Vec<(String, reqwest::Response, Caching)> {
    let (id, secret) = app.machine_client(&[]).await;
    let client = app.web_client(false, &[]).await;
    let url = |path: &str| app.url(path);
    let http = &app.http;
    let mut sample = Vec::new();
    let mut add = |case: &str, response: reqwest::Response, caching: Caching| {
        sample.push((case.to_owned(), response, caching));
    };

    let token = app.client_credentials(&id, &secret).await;
    assert_eq!(token.status(), 200);
    add("token 200", token, Caching::NoStore);
    let bad_grant = http
        .post(url("/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad_grant.status(), 400);
    add("token 400", bad_grant, Caching::NoStore);
    let unauthenticated = app.client_credentials(&id, "wrong").await;
    assert_eq!(unauthenticated.status(), 401);
    add("token 401", unauthenticated, Caching::NoStore);

    // RFC 9110 §15.5.6: a 405 names the methods the resource allows.
    let wrong_method = http.get(url("/token")).send().await.unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(header(&wrong_method, "allow"), Some("POST"));
    add("GET /token 405", wrong_method, Caching::NoStore);
    let wrong_method = http
        .post(url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(header(&wrong_method, "allow"), Some("GET, HEAD"));
    add("POST jwks 405", wrong_method, Caching::NoStore);

    let jwks = http
        .get(url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(jwks.status(), 200);
    let etag = header(&jwks, "etag").expect("an ETag").to_owned();
    add("jwks", jwks, Caching::Public);
    // RFC 9111 §4.3.4: a 304 updates the stored headers, so it must not
    // say no-store.
    let not_modified = http
        .get(url("/.well-known/jwks.json"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), 304);
    add("jwks 304", not_modified, Caching::Public);
    let preflight_204 = preflight(app, "/.well-known/jwks.json", Some(STRANGER), "GET", None).await;
    assert_eq!(preflight_204.status(), 204);
    add("jwks preflight", preflight_204, Caching::NoStore);
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let response = http.get(url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        add(path, response, Caching::Exactly("public, max-age=300"));
    }
    for path in ["/assets/authd.css", "/assets/logo.svg"] {
        let response = http.get(url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        add(path, response, Caching::Public);
    }

    // The pages: an error page, the redirect to sign-in, the login page.
    let error_page = http.get(url("/authorize")).send().await.unwrap();
    assert_eq!(
        error_page.status(),
        400,
        "GET /authorize without parameters"
    );
    assert!(
        header(&error_page, "content-type").is_some_and(|t| t.starts_with("text/html")),
        "an HTML error page"
    );
    add("authorize error page", error_page, Caching::NoStore);
    let browser = app.browser();
    let query = authorize_query(&client, &pkce(), &[]);
    let redirect = browser.authorize(&query).await;
    assert_eq!(redirect.status(), 303);
    let login = location(&redirect);
    add("authorize 303", redirect, Caching::NoStore);
    let login_page = browser.get(&login).await;
    assert_eq!(login_page.status(), 200, "login page");
    add("login page", login_page, Caching::NoStore);

    for path in ["/healthz", "/readyz"] {
        let response = http.get(url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        add(path, response, Caching::NoStore);
    }
    let missing = http.get(url("/no-such-path")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    add("404", missing, Caching::NoStore);
    let no_token = http.get(url("/userinfo")).send().await.unwrap();
    assert_eq!(no_token.status(), 401);
    add("userinfo 401", no_token, Caching::NoStore);
    let refused = preflight(app, "/token", Some(STRANGER), "POST", None).await;
    assert_eq!(refused.status(), 403);
    add("refused preflight", refused, Caching::NoStore);
    sample
}

/// Every response says `nosniff` and `no-store` unless it is a document
/// meant to be cached (JWKS, discovery, assets); no HSTS over an http
/// issuer (RFC 6797 §7.2: HSTS is only meaningful over https).
async fn every_response_carries_the_security_headers(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    assert!(app.issuer.starts_with("http://"), "{}", app.issuer);
    for (case, response, caching) in sample_responses(&app).await {
        assert_common_headers(&response, None, &case);
        assert_caching(&response, caching, &case);
    }
    // A user's claims are not cached either (OIDC Core §5.3.2).
    let client = app.web_client(false, &[]).await;
    app.user("alice").await;
    let tokens = crate::authorization_code::sign_in_and_exchange(
        &app,
        &app.browser(),
        &client,
        "alice",
        &[],
    )
    .await;
    let response =
        crate::authorization_code::userinfo(&app, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(response.status(), 200);
    assert_common_headers(&response, None, "userinfo 200");
    assert_caching(&response, Caching::NoStore, "userinfo 200");
}

/// With an https issuer every response carries HSTS for a year (RFC 6797
/// §6.1; authd sits behind a TLS-terminating proxy, so the test talks
/// plain HTTP to the port).
async fn an_https_issuer_adds_hsts_to_every_response(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |config| {
        config.issuer = Some("https://auth.example".into());
    })
    .await
    else {
        return;
    };
    assert_eq!(app.issuer, "https://auth.example");
    let discovery = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(discovery["issuer"], "https://auth.example");
    for (case, response, caching) in sample_responses(&app).await {
        assert_common_headers(&response, Some("max-age=31536000"), &case);
        assert_caching(&response, caching, &case);
    }
}

/// Runs the `authd` binary against the app's database.
fn authd(app: &TestApp, args: &[&str]) -> Output {
    run_authd(app, args)
}

/// `clients create --name x --allowed-origin origin…`; the stored origins
/// as `clients show` reports them.
fn create_with_origins(app: &TestApp, origins: &[&str]) -> (String, Value) {
    let mut args = vec!["clients", "create", "--name", "x"];
    for origin in origins {
        args.extend(["--allowed-origin", origin]);
    }
    let created = json_ok(&authd(app, &args));
    let id = created["client_id"].as_str().unwrap().to_owned();
    let shown = json_ok(&authd(app, &["clients", "show", &id]));
    (id, shown["allowed_origins"].clone())
}

/// `--allowed-origin` stores the origin's serialisation (RFC 6454 §6.1:
/// lower-case scheme and host, no default port, no trailing slash), which
/// is what browsers send in `Origin`.
async fn allowed_origins_are_normalised_at_registration(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let cases: [(&[&str], &[&str]); 6] = [
        (&["https://App.Example:443/"], &["https://app.example"]),
        (&["https://app.example:8443"], &["https://app.example:8443"]),
        (&["http://127.0.0.1:3000"], &["http://127.0.0.1:3000"]),
        (&["http://localhost:5173"], &["http://localhost:5173"]),
        (&["http://[::1]:8080/"], &["http://[::1]:8080"]),
        (
            &[
                "https://app.example",
                "HTTPS://APP.EXAMPLE/",
                "https://bücher.example",
            ],
            &["https://app.example", "https://xn--bcher-kva.example"],
        ),
    ];
    for (given, stored) in cases {
        let (_, origins) = create_with_origins(&app, given);
        assert_eq!(origins, serde_json::json!(stored), "{given:?}");
    }
    // The running server accepts the normalised origin once it reloads.
    wait_for_origin(&app, "https://app.example").await;
    let response = preflight(&app, "/token", Some("https://App.Example"), "POST", None).await;
    assert_eq!(
        response.status(),
        403,
        "Origin is compared as browsers send it"
    );
}

/// `--allowed-origin` refuses what is not an origin a browser could send
/// for a secure context: http off loopback, paths, queries, fragments,
/// credentials, other schemes, wildcards, garbage.
async fn bad_allowed_origins_are_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    for origin in [
        "http://app.example",
        "http://localhost.evil.example",
        "https://app.example/path",
        "https://app.example/?x=1",
        "https://app.example#f",
        "https://user@app.example",
        "https://user:pw@app.example",
        "ftp://app.example",
        "not a url",
        "app.example",
        "*",
        "null",
        "",
    ] {
        let output = authd(
            &app,
            &[
                "clients",
                "create",
                "--name",
                "x",
                "--allowed-origin",
                origin,
            ],
        );
        assert!(!output.status.success(), "{origin:?} should be refused");
        assert!(output.stdout.is_empty(), "{origin:?}: nothing on stdout");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("--allowed-origin {origin}")),
            "{origin:?}: {stderr}"
        );
    }
    let listed = json_ok(&authd(&app, &["clients", "list"]));
    assert_eq!(listed, serde_json::json!([]), "nothing was registered");
}

on_both_backends!(
    public_documents_are_readable_by_any_origin,
    token_responses_are_readable_only_by_the_clients_origins,
    api_preflights_answer_registered_origins_only,
    preflights_take_from_the_per_ip_bucket,
    userinfo_is_readable_by_the_token_clients_origins,
    revocation_is_readable_by_the_clients_origins,
    other_routes_never_send_cors_headers,
    every_response_carries_the_security_headers,
    an_https_issuer_adds_hsts_to_every_response,
    allowed_origins_are_normalised_at_registration,
    bad_allowed_origins_are_refused,
);
