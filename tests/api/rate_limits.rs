//! Rate limits (issue 7 item 1): the per-IP buckets every route passes
//! through, the separate buckets of JWKS/discovery, `POST /login` and
//! `/introspect`, the failed-client-authentication limit per (IP,
//! client_id), the per-client `/token` tiers, and the CLI's check of
//! `--rate-tier`. A refusal is `429 Too Many Requests` with `Retry-After`
//! (RFC 6585 §4, RFC 9110 §10.2.3): JSON on API routes, the error page on
//! the sign-in pages. Every test client is 127.0.0.1, so each test sets
//! small limits on its own app.
use std::process::Output;
use std::sync::Arc;

use authd::clients::registration::NewClient;
use authd::config::Config;
use authd::crypto::MasterKey;
use authd::limits::buckets::RateLimitSettings;
use serde_json::Value;

use crate::helpers::{
    Backend, TestApp, authd_command, authorize_query, form_value, location, pkce, spawn_app_on,
    test_database, test_redis,
};

/// Every test body runs three times: counts in process on SQLite and on
/// PostgreSQL, and counts in Redis (PostgreSQL): the limits must read the
/// same, headers included, wherever they are counted.
#[derive(Debug, Clone, Copy)]
struct Setup {
    backend: Backend,
    redis: bool,
}

macro_rules! on_every_setup {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                use super::Setup;
                use crate::helpers::Backend;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(Setup { backend: Backend::Sqlite, redis: false }).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(Setup { backend: Backend::Postgres, redis: false }).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn redis() {
                    super::$name(Setup { backend: Backend::Postgres, redis: true }).await
                }
            }
        )+
    };
}

async fn spawn_app_with(setup: Setup, adjust: impl FnOnce(&mut Config)) -> Option<TestApp> {
    let redis = match setup.redis {
        true => Some(test_redis().await?),
        false => None,
    };
    let database = test_database(setup.backend).await?;
    let app = spawn_app_on(Arc::new(database), MasterKey::generate(), |config| {
        if redis.is_some() {
            config.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
        }
        config.redis = redis;
        adjust(config);
    })
    .await
    .expect("app starts");
    if setup.redis {
        assert_eq!(
            app.rate_limit_backend().await,
            "redis",
            "the test Redis answers"
        );
    }
    Some(app)
}

/// The value of header `name` as text (the test fails when it is absent).
fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("a {name} header on {}", response.status()))
        .to_str()
        .unwrap()
}

/// A header that must be a non-negative integer (delta-seconds, RFC 9110
/// §10.2.3, or a count).
fn number(response: &reqwest::Response, name: &str) -> u64 {
    let text = header(response, name);
    text.parse()
        .unwrap_or_else(|_| panic!("{name}: {text:?} is not an integer"))
}

/// `(X-RateLimit-Limit, X-RateLimit-Remaining)` of a response.
fn limit_and_remaining(response: &reqwest::Response) -> (u64, u64) {
    (
        number(response, "x-ratelimit-limit"),
        number(response, "x-ratelimit-remaining"),
    )
}

fn has_no_rate_limit_headers(response: &reqwest::Response) -> bool {
    [
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    ]
    .iter()
    .all(|name| response.headers().get(*name).is_none())
}

/// A JSON 429 (RFC 6585 §4) from a bucket of `limit` requests: `Retry-After`
/// within `1..=max_wait` seconds, `X-RateLimit-Remaining: 0`, the headers of
/// every API error (no-store, nosniff) and the error body naming the
/// request. Returns the body.
async fn assert_json_429(response: reqwest::Response, limit: u64, max_wait: u64) -> Value {
    assert_eq!(response.status(), 429);
    let wait = number(&response, "retry-after");
    assert!((1..=max_wait).contains(&wait), "Retry-After {wait}");
    assert_eq!(limit_and_remaining(&response), (limit, 0));
    let reset = number(&response, "x-ratelimit-reset");
    assert!(reset >= wait, "Reset {reset} < Retry-After {wait}");
    assert_eq!(header(&response, "content-type"), "application/json");
    assert_eq!(header(&response, "cache-control"), "no-store");
    assert_eq!(header(&response, "x-content-type-options"), "nosniff");
    let request_id = header(&response, "x-request-id").to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "too_many_requests", "{body}");
    assert!(body["error_description"].is_string(), "{body}");
    assert_eq!(body["request_id"], request_id.as_str(), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 3, "{body}");
    body
}

/// An HTML 429: the error page with the page security headers, telling the
/// person to wait. Returns the page.
async fn assert_page_429(response: reqwest::Response, limit: u64, max_wait: u64) -> String {
    assert_eq!(response.status(), 429);
    let wait = number(&response, "retry-after");
    assert!((1..=max_wait).contains(&wait), "Retry-After {wait}");
    assert_eq!(limit_and_remaining(&response), (limit, 0));
    assert_eq!(
        header(&response, "content-type"),
        "text/html; charset=utf-8"
    );
    assert!(header(&response, "content-security-policy").contains("frame-ancestors 'none'"));
    assert_eq!(header(&response, "x-frame-options"), "DENY");
    assert_eq!(header(&response, "x-content-type-options"), "nosniff");
    assert_eq!(header(&response, "cache-control"), "no-store");
    let request_id = header(&response, "x-request-id").to_owned();
    let html = response.text().await.unwrap();
    assert!(html.contains("Too many requests"), "{html}");
    assert!(
        html.contains(&match wait {
            1 => "Wait 1 second,".to_owned(),
            n => format!("Wait {n} seconds,"),
        }),
        "the page says how long to wait: {html}"
    );
    assert!(html.contains(&request_id), "the page names the request");
    html
}

type Form<'a> = [(&'a str, &'a str)];

/// `POST /token` with `client_secret_basic` and `form`.
async fn token(app: &TestApp, id: &str, secret: &str, form: &[(&str, &str)]) -> reqwest::Response {
    app.http
        .post(app.url("/token"))
        .basic_auth(id, Some(secret))
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.http.get(app.url(path)).send().await.unwrap()
}

/// A client_credentials client in `tier`.
async fn client_in_tier(app: &TestApp, tier: &str) -> (String, String) {
    let (id, secret) = app
        .register(NewClient {
            name: format!("Tier {tier}"),
            scopes: vec!["orders:read".into()],
            rate_tier: Some(tier.into()),
            ..Default::default()
        })
        .await;
    (id, secret.expect("a confidential client"))
}

async fn per_ip_limit_counts_every_token_request_then_refuses_with_json(backend: Setup) {
    let Some(app) = spawn_app_with(backend, |config| {
        config.rate_limits.ip = "5/min".parse().unwrap();
    })
    .await
    else {
        return;
    };
    let (id, secret) = app.machine_client(&["orders:read"]).await;
    // Any outcome takes from the bucket: tokens, malformed requests and
    // failed client authentication alike.
    let cc = [("grant_type", "client_credentials")];
    let cases: [(&str, &Form, u16); 5] = [
        (secret.as_str(), &cc, 200),
        (secret.as_str(), &[], 400),
        ("wrong secret", &cc, 401),
        (secret.as_str(), &cc, 200),
        (secret.as_str(), &[("grant_type", "password")], 400),
    ];
    let mut last_reset = 0;
    for (n, (secret, form, status)) in cases.iter().enumerate() {
        let response = token(&app, &id, secret, form).await;
        assert_eq!(response.status(), *status, "request {}", n + 1);
        // The per-IP bucket is the tightest here (the tiers are generous).
        assert_eq!(
            limit_and_remaining(&response),
            (5, 4 - n as u64),
            "request {}",
            n + 1
        );
        let reset = number(&response, "x-ratelimit-reset");
        assert!((1..=60).contains(&reset), "Reset {reset}");
        assert!(reset >= last_reset, "fewer left, longer until full");
        last_reset = reset;
        assert!(response.headers().get("retry-after").is_none());
    }
    // The sixth: one cell of 5/min refills every 12 s.
    let refused = token(&app, &id, &secret, &cc).await;
    let body = assert_json_429(refused, 5, 12).await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("retry after"),
        "{body}"
    );
    // Other routes share the bucket.
    assert_json_429(get(&app, "/userinfo").await, 5, 12).await;

    // Probes of load balancers are never limited.
    for probe in ["/healthz", "/readyz"] {
        let response = get(&app, probe).await;
        assert_eq!(response.status(), 200, "{probe}");
        assert!(has_no_rate_limit_headers(&response), "{probe}");
    }
    app.stop().await;
}

async fn sign_in_pages_are_refused_with_an_html_page(backend: Setup) {
    let Some(app) = spawn_app_with(backend, |config| {
        config.rate_limits.ip = "1/min".parse().unwrap();
    })
    .await
    else {
        return;
    };
    let first = get(&app, "/authorize?client_id=x").await;
    assert_ne!(first.status(), 429);
    assert_eq!(limit_and_remaining(&first), (1, 0));
    let second = get(&app, "/authorize?client_id=x").await;
    assert_page_429(second, 1, 60).await;
    // The other pages too.
    assert_page_429(get(&app, "/login").await, 1, 60).await;
    // An API route answers JSON.
    assert_json_429(get(&app, "/userinfo").await, 1, 60).await;
    app.stop().await;
}

async fn jwks_and_discovery_have_their_own_bucket(backend: Setup) {
    let Some(app) = spawn_app_with(backend, |config| {
        config.rate_limits.ip = "2/min".parse().unwrap();
        config.rate_limits.well_known = "10/min".parse().unwrap();
    })
    .await
    else {
        return;
    };
    for _ in 0..2 {
        assert_eq!(get(&app, "/userinfo").await.status(), 401);
    }
    assert_json_429(get(&app, "/userinfo").await, 2, 30).await;
    // The IP bucket is spent; resource servers still fetch keys and
    // metadata from the well-known bucket.
    let paths = [
        "/.well-known/jwks.json",
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ];
    for (n, path) in paths.iter().enumerate() {
        let response = get(&app, path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(limit_and_remaining(&response), (10, 9 - n as u64), "{path}");
    }
    // And the well-known requests did not take from the IP bucket's
    // refill: it still refuses.
    assert_json_429(get(&app, "/userinfo").await, 2, 30).await;
    app.stop().await;
}

async fn login_posts_have_their_own_bucket(backend: Setup) {
    let Some(app) = spawn_app_with(backend, |config| {
        config.rate_limits.login = "2/min".parse().unwrap();
    })
    .await
    else {
        return;
    };
    let form = [("username", "alice"), ("password", "guess")];
    let post_login = || app.http.post(app.url("/login")).form(&form).send();
    // No CSRF token, no pending request: refused by the handler, but
    // counted all the same (the bucket runs before the form is read).
    let first = post_login().await.unwrap();
    assert!(first.status().is_client_error(), "{}", first.status());
    assert_ne!(first.status(), 429);
    // The login bucket leaves less room than the per-IP one.
    assert_eq!(limit_and_remaining(&first), (2, 1));
    // GET /login draws from the per-IP bucket only.
    for _ in 0..3 {
        let page = get(&app, "/login").await;
        assert_ne!(page.status(), 429);
        assert_eq!(number(&page, "x-ratelimit-limit"), 100_000);
    }
    let second = post_login().await.unwrap();
    assert_ne!(second.status(), 429);
    assert_eq!(limit_and_remaining(&second), (2, 0));
    assert_page_429(post_login().await.unwrap(), 2, 30).await;
    // The page that shows the form is still served.
    assert_ne!(get(&app, "/login").await.status(), 429);
    app.stop().await;
}

async fn introspection_has_its_own_bucket(backend: Setup) {
    let Some(app) = spawn_app_with(backend, |config| {
        config.rate_limits.introspect = "2/min".parse().unwrap();
    })
    .await
    else {
        return;
    };
    let (machine, machine_secret) = app.machine_client(&["orders:read"]).await;
    let (api, api_secret) = app
        .register(NewClient {
            name: "API".into(),
            can_introspect: true,
            ..Default::default()
        })
        .await;
    let api_secret = api_secret.expect("a confidential client");
    let issued = app.client_credentials(&machine, &machine_secret).await;
    assert_eq!(issued.status(), 200);
    let body: Value = issued.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap().to_owned();
    let introspect = || {
        app.http
            .post(app.url("/introspect"))
            .basic_auth(&api, Some(&api_secret))
            .form(&[("token", access.as_str())])
            .send()
    };
    for remaining in [1, 0] {
        let response = introspect().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(limit_and_remaining(&response), (2, remaining));
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["active"], true);
    }
    assert_json_429(introspect().await.unwrap(), 2, 30).await;
    // /token does not draw from the introspection bucket.
    let response = app.client_credentials(&machine, &machine_secret).await;
    assert_eq!(response.status(), 200);
    assert_eq!(number(&response, "x-ratelimit-limit"), 100_000);
    app.stop().await;
}

async fn failed_client_authentication_blocks_the_ip_and_client_pair(backend: Setup) {
    let Some(app) = spawn_app_with(backend, |config| {
        config.rate_limits.client_auth_failures = "3/min".parse().unwrap();
        config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await
    else {
        return;
    };
    let (id, secret) = app.machine_client(&["orders:read"]).await;
    let (other, other_secret) = app.machine_client(&["orders:read"]).await;
    for n in 1..=3 {
        let response = app.client_credentials(&id, "wrong secret").await;
        // RFC 6749 §5.2: invalid_client with the scheme the client used.
        assert_eq!(response.status(), 401, "failure {n}");
        assert!(
            header(&response, "www-authenticate").starts_with("Basic "),
            "failure {n}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client", "failure {n}");
    }
    // The pair is blocked before its credentials are checked: even the
    // right secret is refused until a failure has been refilled (20 s).
    let blocked = app.client_credentials(&id, &secret).await;
    assert!(blocked.headers().get("www-authenticate").is_none());
    assert_json_429(blocked, 3, 20).await;
    // Another client from the same address is unaffected.
    let response = app.client_credentials(&other, &other_secret).await;
    assert_eq!(response.status(), 200);
    // Behind a trusted proxy, the address it names is another client
    // address, with a pair of its own.
    let forwarded = app
        .http
        .post(app.url("/token"))
        .header("x-forwarded-for", "198.51.100.7")
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(forwarded.status(), 200);
    // The proxy's own address is still blocked.
    assert_json_429(app.client_credentials(&id, &secret).await, 3, 20).await;

    // A huge client_id (10 KB in the Basic header) is an unknown client,
    // not a server error; its failures are counted like any other (under
    // a bounded key), so the fourth is refused.
    let huge = "c".repeat(10 * 1024);
    for n in 1..=3 {
        let response = app.client_credentials(&huge, "x").await;
        assert_eq!(response.status(), 401, "huge client_id, failure {n}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client");
    }
    assert_json_429(app.client_credentials(&huge, "x").await, 3, 20).await;
    app.stop().await;
}

async fn forwarded_headers_are_ignored_without_trusted_proxies(backend: Setup) {
    let Some(app) = spawn_app_with(backend, |config| {
        config.rate_limits.ip = "2/min".parse().unwrap();
    })
    .await
    else {
        return;
    };
    assert!(app.config.trusted_proxies.is_empty(), "the default");
    let spoofed = |name: &'static str, value: &'static str| {
        app.http
            .get(app.url("/userinfo"))
            .header(name, value)
            .send()
    };
    for (n, value) in ["198.51.100.1", "198.51.100.2"].iter().enumerate() {
        let response = spoofed("x-forwarded-for", value).await.unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(limit_and_remaining(&response), (2, 1 - n as u64));
    }
    let third = spoofed("x-forwarded-for", "198.51.100.3").await.unwrap();
    assert_json_429(third, 2, 30).await;
    // RFC 7239 Forwarded likewise.
    let forwarded = spoofed("forwarded", "for=198.51.100.4").await.unwrap();
    assert_json_429(forwarded, 2, 30).await;
    app.stop().await;
}

/// Security review finding 1: behind a proxy that appends to
/// `X-Forwarded-For` (nginx, HAProxy, Envoy), a client's own `Forwarded`
/// header passes through untouched and must not choose its address.
/// Twenty-one failed logins, each with a new `Forwarded: for=`, from one
/// address the proxy names: the login throttle holds (20 free failures
/// per IP, then 429).
async fn a_clients_own_forwarded_header_does_not_escape_the_login_throttle(backend: Setup) {
    let Some(app) = spawn_app_with(backend, |config| {
        config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await
    else {
        return;
    };
    assert_eq!(
        app.config.client_ip_header,
        authd::limits::client_ip::ClientIpHeader::XForwardedFor,
        "the default"
    );
    let client = app.web_client(false, &[]).await;
    let browser = app.browser();
    let login = location(
        &browser
            .authorize(&authorize_query(&client, &pkce(), &[]))
            .await,
    );
    let html = browser.get(&login).await.text().await.unwrap();
    let csrf = form_value(&html, "csrf").unwrap();
    let request = form_value(&html, "request").unwrap();
    let mut statuses = Vec::new();
    for n in 1..=21 {
        let username = format!("nobody{n}");
        let response = browser
            .http
            .post(app.url("/login"))
            .header("forwarded", format!("for=198.51.100.{n}"))
            .header("x-forwarded-for", "203.0.113.50")
            .form(&[
                ("csrf", csrf.as_str()),
                ("request", request.as_str()),
                ("username", username.as_str()),
                ("password", "wrong password"),
            ])
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses[..20], [200; 20], "{statuses:?}");
    assert_eq!(statuses[20], 429, "{statuses:?}");
    app.stop().await;
}

/// Security review finding 1: a client cannot spend another address's
/// failed-authentication allowance by naming it in a `Forwarded` header
/// the proxy passed through: the victim still gets its token.
async fn a_forwarded_header_cannot_block_another_address(backend: Setup) {
    let Some(app) = spawn_app_with(backend, |config| {
        config.rate_limits.client_auth_failures = "10/min".parse().unwrap();
        config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await
    else {
        return;
    };
    let (id, secret) = app.machine_client(&["orders:read"]).await;
    let token_request = |secret: &str, forwarded: Option<&str>, proxied_for: &str| {
        let mut request = app
            .http
            .post(app.url("/token"))
            .header("x-forwarded-for", proxied_for.to_owned())
            .basic_auth(&id, Some(secret.to_owned()))
            .form(&[("grant_type", "client_credentials")]);
        if let Some(forwarded) = forwarded {
            request = request.header("forwarded", forwarded.to_owned());
        }
        request.send()
    };
    for _ in 0..11 {
        let response = token_request("wrong", Some("for=203.0.113.10"), "203.0.113.9")
            .await
            .unwrap();
        assert!([401, 429].contains(&response.status().as_u16()));
    }
    // The attacker's own address is blocked...
    assert_json_429(
        token_request(&secret, None, "203.0.113.9").await.unwrap(),
        10,
        6,
    )
    .await;
    // ...the address it named is not.
    let victim = token_request(&secret, None, "203.0.113.10").await.unwrap();
    assert_eq!(victim.status(), 200);
    app.stop().await;
}

/// `AUTHD_CLIENT_IP_HEADER=forwarded`: the proxy writes RFC 7239
/// `Forwarded`, so that is read and a client's `X-Forwarded-For` is not.
async fn only_the_configured_client_ip_header_is_read(backend: Setup) {
    let Some(app) = spawn_app_with(backend, |config| {
        config.rate_limits.ip = "2/min".parse().unwrap();
        config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        config.client_ip_header = authd::limits::client_ip::ClientIpHeader::Forwarded;
    })
    .await
    else {
        return;
    };
    let get = |forwarded: &'static str, xff: String| {
        app.http
            .get(app.url("/userinfo"))
            .header("forwarded", forwarded)
            .header("x-forwarded-for", xff)
            .send()
    };
    for n in 1..=2 {
        let response = get("for=198.51.100.1", format!("192.0.2.{n}"))
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "request {n}");
    }
    assert_json_429(
        get("for=198.51.100.1", "192.0.2.3".into()).await.unwrap(),
        2,
        30,
    )
    .await;
    let elsewhere = get(r#"for="[2001:db8::1]:443""#, "192.0.2.1".into())
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 401, "another address");
    app.stop().await;
}

/// Security review finding 8: IPv6 clients are counted per /64
/// (`AUTHD_IPV6_PREFIX`): fresh addresses from one prefix share its bucket;
/// another prefix has its own.
async fn ipv6_addresses_share_their_prefixs_bucket(backend: Setup) {
    let Some(app) = spawn_app_with(backend, |config| {
        config.rate_limits.ip = "2/min".parse().unwrap();
        config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await
    else {
        return;
    };
    assert_eq!(app.config.ipv6_prefix, 64, "the default");
    let get = |address: &'static str| {
        app.http
            .get(app.url("/userinfo"))
            .header("x-forwarded-for", address)
            .send()
    };
    assert_eq!(get("2001:db8:1:2::1").await.unwrap().status(), 401);
    assert_eq!(get("2001:db8:1:2:ffff::9").await.unwrap().status(), 401);
    assert_json_429(get("2001:db8:1:2:abcd::1").await.unwrap(), 2, 30).await;
    assert_eq!(get("2001:db8:1:3::1").await.unwrap().status(), 401);
    app.stop().await;
}

async fn token_requests_are_limited_per_client_by_tier(backend: Setup) {
    let Some(app) = spawn_app_with(backend, |config| {
        config.rate_limits.tiers =
            RateLimitSettings::parse_tiers("standard=100/min,low=2/min").unwrap();
    })
    .await
    else {
        return;
    };
    let (low, low_secret) = client_in_tier(&app, "low").await;
    let (standard, standard_secret) = app.machine_client(&["orders:read"]).await;
    for remaining in [1, 0] {
        let response = app.client_credentials(&low, &low_secret).await;
        assert_eq!(response.status(), 200);
        // The tier is tighter than the per-IP bucket: it is reported.
        assert_eq!(limit_and_remaining(&response), (2, remaining));
        let reset = number(&response, "x-ratelimit-reset");
        assert!((1..=60).contains(&reset), "Reset {reset}");
    }
    // One cell of 2/min refills every 30 s.
    let refused = app.client_credentials(&low, &low_secret).await;
    assert_json_429(refused, 2, 30).await;
    // The standard client has its own, larger bucket.
    let response = app.client_credentials(&standard, &standard_secret).await;
    assert_eq!(response.status(), 200);
    assert_eq!(limit_and_remaining(&response), (100, 99));
    // A refused tier request still took only from its own client's bucket.
    let response = app.client_credentials(&low, &low_secret).await;
    assert_eq!(response.status(), 429);
    app.stop().await;
}

/// The `authd` binary against the app's database, with `env` added.
fn authd(app: &TestApp, args: &[&str], env: &[(&str, &str)]) -> Output {
    authd_command(&app.database.url, &app.master_key)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("authd binary runs")
}

fn fails_with(output: &Output, message: &str) {
    assert!(!output.status.success(), "expected failure");
    assert!(output.stdout.is_empty(), "nothing on stdout when failing");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(message),
        "stderr {stderr:?} should contain {message:?}"
    );
}

fn succeeds(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

async fn cli_refuses_an_unknown_rate_tier(backend: Setup) {
    const TIERS: &str = "standard=10/min,low=1/min";
    let Some(app) = spawn_app_with(backend, |config| {
        config.rate_limits.tiers = RateLimitSettings::parse_tiers(TIERS).unwrap();
    })
    .await
    else {
        return;
    };
    let create = ["clients", "create", "--name", "x", "--rate-tier"];
    let gold = [&create[..], &["gold"]].concat();
    // The default tiers.
    fails_with(&authd(&app, &gold, &[]), "low, standard, high");
    // The configured tiers.
    let env = [("AUTHD_RATE_TIERS", TIERS)];
    let refused = authd(&app, &gold, &env);
    fails_with(&refused, "gold");
    fails_with(&refused, "standard, low");
    let low = [&create[..], &["low"]].concat();
    let created: Value = serde_json::from_str(&succeeds(&authd(&app, &low, &env))).unwrap();
    let id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    let shown = succeeds(&authd(&app, &["clients", "show", &id], &env));
    assert!(shown.contains(r#""rate_tier": "low""#), "{shown}");

    // The running server sees the new client (cache refresh) in its tier.
    let mut first = None;
    for _ in 0..50 {
        let response = app.client_credentials(&id, &secret).await;
        if response.status() != 401 {
            first = Some(response);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let first = first.expect("the server sees the client within 5 s");
    assert_eq!(first.status(), 200);
    assert_eq!(limit_and_remaining(&first), (1, 0));
    assert_json_429(app.client_credentials(&id, &secret).await, 1, 60).await;
    app.stop().await;
}

on_every_setup!(
    per_ip_limit_counts_every_token_request_then_refuses_with_json,
    sign_in_pages_are_refused_with_an_html_page,
    jwks_and_discovery_have_their_own_bucket,
    login_posts_have_their_own_bucket,
    introspection_has_its_own_bucket,
    failed_client_authentication_blocks_the_ip_and_client_pair,
    forwarded_headers_are_ignored_without_trusted_proxies,
    a_clients_own_forwarded_header_does_not_escape_the_login_throttle,
    a_forwarded_header_cannot_block_another_address,
    only_the_configured_client_ip_header_is_read,
    ipv6_addresses_share_their_prefixs_bucket,
    token_requests_are_limited_per_client_by_tier,
    cli_refuses_an_unknown_rate_tier,
);
