//! Who may do what (issue 16): APIs, roles and groups decide the scope of
//! every grant; RFC 8707 `resource` selects the audience; permissions are
//! decided again at every refresh; authorization claims only for APIs that
//! opted in. The clients are the `oauth2` crate where it can be.
use authd::access::{apis, groups, roles};
use authd::clients::registration::NewClient;
use authd::clock::SystemClock;
use authd::startup::Runtime;
use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, ClientId, ClientSecret, RefreshToken, RequestTokenError, Scope, TokenResponse,
    TokenUrl,
};
use serde_json::Value;

use crate::authorization_code::{jwt_part, userinfo, verify_id_token};
use crate::client_credentials::verify_access_token;
use crate::helpers::{
    Backend, Browser, TestApp, WebClient, authorize_query, exchange_code, location,
    on_both_backends, pkce, query_param, spawn_app, within_5_seconds,
};

const INVOICES: &str = "https://invoices.example";
const ORDERS: &str = "https://orders.example";

/// The operator's set-up from the README: invoices (roles only, with the
/// `roles` and `permissions` claims), orders (any signed-in user, no
/// claims); `finance` may write invoices, `staff` may read them; alice is
/// in finance, bob in staff, carol in nothing.
struct World {
    alice: String,
    bob: String,
    carol: String,
}

async fn with_runtime<T>(app: &TestApp, f: impl AsyncFnOnce(&Runtime) -> T) -> T {
    let runtime = Runtime::open(&app.config, false, &SystemClock)
        .await
        .expect("open database");
    let out = f(&runtime).await;
    runtime.store.close().await;
    out
}

async fn world(app: &TestApp) -> World {
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    with_runtime(app, async |runtime| {
        let store = runtime.store.as_ref();
        apis::create(
            store,
            &SystemClock,
            apis::ApiInput {
                identifier: INVOICES.into(),
                name: "Invoices".into(),
                scopes: vec![
                    "invoices:read=Read your invoices".into(),
                    "invoices:write=Create and change invoices".into(),
                ],
                token_claims: Some(vec!["roles".into(), "permissions".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        apis::create(
            store,
            &SystemClock,
            apis::ApiInput {
                identifier: ORDERS.into(),
                name: "Orders".into(),
                scopes: vec!["orders:read=See your orders".into()],
                user_access: Some("any".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        roles::create(
            store,
            &SystemClock,
            "invoice-writer",
            &["invoices:read".into(), "invoices:write".into()],
        )
        .await
        .unwrap();
        roles::create(
            store,
            &SystemClock,
            "invoice-reader",
            &["invoices:read".into()],
        )
        .await
        .unwrap();
        for (group, role) in [("finance", "invoice-writer"), ("staff", "invoice-reader")] {
            groups::create(store, &SystemClock, group).await.unwrap();
            groups::set_role(store, group, role, true).await.unwrap();
        }
        groups::set_member(store, "finance", "alice", true)
            .await
            .unwrap();
        groups::set_member(store, "staff", "bob", true)
            .await
            .unwrap();
    })
    .await;
    // The running server sees the APIs within its cache refresh.
    within_5_seconds("the APIs reach the server", || async {
        let document = app.get_json("/.well-known/openid-configuration").await;
        document["scopes_supported"]
            .as_array()
            .is_some_and(|s| s.iter().any(|v| v == "invoices:write"))
    })
    .await;
    World { alice, bob, carol }
}

/// A confidential web client registered for every API scope, with refresh
/// tokens.
async fn invoicing_app(app: &TestApp) -> WebClient {
    app.web_client_with(NewClient {
        name: "Invoicing".into(),
        redirect_uris: vec!["https://app.example/cb".into()],
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        scopes: vec![
            "invoices:read".into(),
            "invoices:write".into(),
            "orders:read".into(),
        ],
        ..Default::default()
    })
    .await
}

/// `/authorize` → login → consent (answering `allow`) for `username`:
/// where the browser is sent back to the client.
async fn sign_in(app: &TestApp, client: &WebClient, username: &str, query: &str) -> String {
    let _ = app;
    let browser = app.browser();
    let back = browser.sign_in(query, username).await;
    assert!(back.starts_with(&client.redirect_uri), "{back}");
    back
}

/// Signs `username` in asking for `scope` (plus `extra` query text) and
/// exchanges the code: the token response.
async fn tokens_for(
    app: &TestApp,
    browser: &Browser,
    client: &WebClient,
    username: &str,
    scope: &str,
    extra: &str,
) -> Value {
    let pkce = pkce();
    let query = format!(
        "{}{extra}",
        authorize_query(client, &pkce, &[("scope", scope)])
    );
    let back = browser.sign_in(&query, username).await;
    let code = query_param(&back, "code").unwrap_or_else(|| panic!("a code in {back}"));
    let response = exchange_code(app, client, &code, &pkce.verifier).await;
    assert_eq!(response.status(), 200, "code exchanged");
    response.json().await.unwrap()
}

fn access_claims(tokens: &Value) -> Value {
    jwt_part(tokens["access_token"].as_str().unwrap(), 1)
}

fn form_encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The consent page's text for the request at `location`.
async fn consent_page(browser: &Browser, location: &str) -> String {
    let page = browser.get(location).await;
    assert_eq!(page.status(), 200);
    page.text().await.unwrap()
}

async fn a_user_without_the_role_never_gets_the_scope(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    world(&app).await;
    let client = invoicing_app(&app).await;
    let everything = "openid invoices:read invoices:write orders:read";

    // bob (staff: read only) asks for everything: the consent page lists
    // what he can grant, grouped by API, and never invoices:write.
    let browser = app.browser();
    let first = pkce();
    let query = authorize_query(&client, &first, &[("scope", everything)]);
    let response = browser.authorize(&query).await;
    let login = location(&response);
    let response = browser
        .log_in(&login, "bob", crate::helpers::PASSWORD)
        .await;
    let consent = location(&response);
    assert!(consent.starts_with("/consent"), "{consent}");
    let html = consent_page(&browser, &consent).await;
    assert!(html.contains("Invoices") && html.contains("Read your invoices"));
    assert!(html.contains("Orders") && html.contains("See your orders"));
    assert!(!html.contains("invoices:write"), "{html}");
    assert!(!html.contains("Create and change invoices"));
    let back = location(&browser.decide(&consent, "allow").await);
    let code = query_param(&back, "code").unwrap();
    let response = exchange_code(&app, &client, &code, &first.verifier).await;
    assert_eq!(response.status(), 200);
    let tokens: Value = response.json().await.unwrap();
    // RFC 6749 §3.3: the response says what was issued.
    assert_eq!(tokens["scope"], "invoices:read openid orders:read");
    let claims =
        verify_access_token(&app, tokens["access_token"].as_str().unwrap(), INVOICES).await;
    assert_eq!(claims["aud"], serde_json::json!([INVOICES, ORDERS]));
    assert_eq!(claims["scope"], "invoices:read openid orders:read");

    // The consent bob gave covers only what was granted: asking again
    // (remembered, no page) still never yields invoices:write.
    let tokens = tokens_for(&app, &browser, &client, "bob", everything, "").await;
    assert_eq!(tokens["scope"], "invoices:read openid orders:read");
    // Nor does prompt=none.
    let silent = pkce();
    let query = authorize_query(
        &client,
        &silent,
        &[("scope", "invoices:write orders:read"), ("prompt", "none")],
    );
    let back = location(&browser.authorize(&query).await);
    let code = query_param(&back, "code").unwrap_or_else(|| panic!("{back}"));
    let tokens: Value = exchange_code(&app, &client, &code, &silent.verifier)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(tokens["scope"], "orders:read");

    // Naming the invoices API while asking only for openid: the token is
    // not for that API and carries none of its claims (bob's roles and
    // permissions stay out of it).
    let invoices = format!("&resource={}", form_encode(INVOICES));
    let tokens = tokens_for(&app, &browser, &client, "bob", "openid", &invoices).await;
    let claims = access_claims(&tokens);
    assert_eq!(claims["aud"], app.issuer.as_str(), "{claims}");
    for claim in ["roles", "groups", "permissions"] {
        assert!(claims.get(claim).is_none(), "{claim} in {claims}");
    }

    // carol holds nothing of invoices, and asks only for it: access_denied,
    // with a description that says why, and no token.
    let denied = pkce();
    let query = authorize_query(&client, &denied, &[("scope", "invoices:write")]);
    let back = sign_in(&app, &client, "carol", &query).await;
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("access_denied")
    );
    assert!(
        query_param(&back, "error_description")
            .unwrap()
            .contains("none of the permissions"),
        "{back}"
    );
    assert_eq!(query_param(&back, "state").as_deref(), Some("st4te"));
    assert!(query_param(&back, "code").is_none());
}

/// An Allow grants at most what the consent page showed: a role that
/// arrives while the page is open counts from the next authorization.
async fn allow_grants_no_more_than_the_page_showed(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let world = world(&app).await;
    let client = invoicing_app(&app).await;
    let browser = app.browser();
    let pkce = pkce();
    let query = authorize_query(
        &client,
        &pkce,
        &[("scope", "openid invoices:read invoices:write")],
    );
    let login = location(&browser.authorize(&query).await);
    let consent = location(
        &browser
            .log_in(&login, "bob", crate::helpers::PASSWORD)
            .await,
    );
    let html = consent_page(&browser, &consent).await;
    assert!(!html.contains("invoices:write"));
    let field = |name: &str| crate::helpers::form_value(&html, name).unwrap();
    assert_eq!(field("shown_scope"), "invoices:read openid");
    // bob joins finance while the page is open.
    with_runtime(&app, async |runtime| {
        groups::set_member(runtime.store.as_ref(), "finance", &world.bob, true)
            .await
            .unwrap();
    })
    .await;
    let back = location(
        &browser
            .post_form(
                "/consent",
                &[
                    ("csrf", &field("csrf")),
                    ("request", &field("request")),
                    ("shown_scope", &field("shown_scope")),
                    ("decision", "allow"),
                ],
            )
            .await,
    );
    let code = query_param(&back, "code").unwrap_or_else(|| panic!("{back}"));
    let tokens: Value = exchange_code(&app, &client, &code, &pkce.verifier)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(tokens["scope"], "invoices:read openid");
    // The next authorization asks about invoices:write, and grants it.
    let tokens = tokens_for(
        &app,
        &browser,
        &client,
        "bob",
        "openid invoices:read invoices:write",
        "",
    )
    .await;
    assert_eq!(tokens["scope"], "invoices:read invoices:write openid");
    // A tampered field is refused, not widened.
    let pkce = crate::helpers::pkce();
    let query = authorize_query(
        &client,
        &pkce,
        &[("scope", "openid invoices:read"), ("prompt", "consent")],
    );
    let consent = location(&browser.authorize(&query).await);
    let html = consent_page(&browser, &consent).await;
    let field = |name: &str| crate::helpers::form_value(&html, name).unwrap();
    let response = browser
        .post_form(
            "/consent",
            &[
                ("csrf", &field("csrf")),
                ("request", &field("request")),
                ("shown_scope", "invoices:read \"bad"),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(response.status(), 400);
}

async fn a_role_through_a_group_grants_and_its_loss_shrinks_the_next_refresh(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let world = world(&app).await;
    let client = invoicing_app(&app).await;
    let scope = "openid offline_access invoices:read invoices:write";
    let browser = app.browser();

    // carol has no role: only the identity scopes.
    let tokens = tokens_for(&app, &browser, &client, "carol", scope, "").await;
    assert_eq!(tokens["scope"], "offline_access openid");

    // Added to finance: the next authorization grants what the group's
    // role gives (she is asked to consent to the new scopes).
    with_runtime(&app, async |runtime| {
        groups::set_member(runtime.store.as_ref(), "finance", &world.carol, true)
            .await
            .unwrap();
    })
    .await;
    let tokens = tokens_for(&app, &browser, &client, "carol", scope, "").await;
    assert_eq!(
        tokens["scope"],
        "invoices:read invoices:write offline_access openid"
    );
    let claims = access_claims(&tokens);
    assert_eq!(claims["aud"], INVOICES);
    assert_eq!(claims["roles"], serde_json::json!(["invoice-writer"]));
    assert_eq!(
        claims["permissions"],
        serde_json::json!(["invoices:read", "invoices:write"])
    );

    // The refresh, with the oauth2 crate.
    let oauth = BasicClient::new(ClientId::new(client.id.clone()))
        .set_client_secret(ClientSecret::new(client.secret.clone().unwrap()))
        .set_token_uri(TokenUrl::new(app.url("/token")).unwrap())
        .set_auth_type(AuthType::BasicAuth);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let refresh = RefreshToken::new(tokens["refresh_token"].as_str().unwrap().to_owned());
    let refreshed = oauth
        .exchange_refresh_token(&refresh)
        .request_async(&http)
        .await
        .expect("refresh");
    let granted: Vec<String> = refreshed
        .scopes()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert!(granted.contains(&"invoices:write".to_owned()));

    // Moved from finance to staff: the next refresh loses invoices:write.
    with_runtime(&app, async |runtime| {
        let store = runtime.store.as_ref();
        groups::set_member(store, "finance", &world.carol, false)
            .await
            .unwrap();
        groups::set_member(store, "staff", "carol", true)
            .await
            .unwrap();
    })
    .await;
    let refreshed = oauth
        .exchange_refresh_token(refreshed.refresh_token().unwrap())
        .request_async(&http)
        .await
        .expect("refresh");
    let claims = jwt_part(refreshed.access_token().secret(), 1);
    assert_eq!(
        claims["scope"], "invoices:read offline_access openid",
        "{claims}"
    );
    assert_eq!(claims["roles"], serde_json::json!(["invoice-reader"]));
    assert_eq!(claims["permissions"], serde_json::json!(["invoices:read"]));
    // Introspection says what the token carries.
    let introspected: Value = app
        .http
        .post(app.url("/introspect"))
        .basic_auth(&client.id, client.secret.as_deref())
        .form(&[("token", refreshed.access_token().secret().as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(introspected["active"], true);
    assert_eq!(introspected["scope"], "invoices:read offline_access openid");

    // Out of every group: nothing of the family's API scopes is left, so
    // the refresh is invalid_grant and the family ends (the same token
    // presented again is refused too, and its access token is revoked).
    with_runtime(&app, async |runtime| {
        groups::set_member(runtime.store.as_ref(), "staff", "carol", false)
            .await
            .unwrap();
    })
    .await;
    let last = refreshed.refresh_token().unwrap().clone();
    for attempt in 0..2 {
        let error = oauth
            .exchange_refresh_token(&last)
            .request_async(&http)
            .await
            .expect_err("no permission left");
        let RequestTokenError::ServerResponse(error) = error else {
            panic!("{error:?}");
        };
        assert_eq!(
            error.error(),
            &oauth2::basic::BasicErrorResponseType::InvalidGrant,
            "attempt {attempt}"
        );
        if attempt == 0 {
            assert!(
                error
                    .error_description()
                    .unwrap()
                    .contains("no longer holds any permission"),
                "{error:?}"
            );
        }
    }
    let introspected: Value = app
        .http
        .post(app.url("/introspect"))
        .basic_auth(&client.id, client.secret.as_deref())
        .form(&[("token", refreshed.access_token().secret().as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(introspected["active"], false, "the family's tokens end");
    let _ = world.alice;
    let _ = world.bob;
}

async fn resource_selects_the_audience_on_every_grant(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    world(&app).await;
    let client = invoicing_app(&app).await;

    // Client credentials, with the oauth2 crate: the resource is the aud,
    // and scopes of other APIs are left out.
    let (id, secret) = app.machine_client(&["invoices:read", "orders:read"]).await;
    let oauth = BasicClient::new(ClientId::new(id.clone()))
        .set_client_secret(ClientSecret::new(secret.clone()))
        .set_token_uri(TokenUrl::new(app.url("/token")).unwrap());
    let http = reqwest::Client::new();
    let token = oauth
        .exchange_client_credentials()
        .add_scope(Scope::new("invoices:read".into()))
        .add_scope(Scope::new("orders:read".into()))
        .add_extra_param("resource", ORDERS)
        .request_async(&http)
        .await
        .expect("client credentials with a resource");
    let claims = verify_access_token(&app, token.access_token().secret(), ORDERS).await;
    assert_eq!(claims["aud"], ORDERS);
    assert_eq!(claims["scope"], "orders:read");
    assert!(
        claims.get("permissions").is_none(),
        "orders opted in to no claim"
    );
    // Without a resource: every API of the granted scopes.
    let token = oauth
        .exchange_client_credentials()
        .request_async(&http)
        .await
        .unwrap();
    let claims = jwt_part(token.access_token().secret(), 1);
    assert_eq!(claims["aud"], serde_json::json!([INVOICES, ORDERS]));
    // A machine token for the invoices API carries the client's
    // permissions (its registered scopes of that API), no roles.
    let token = oauth
        .exchange_client_credentials()
        .add_extra_param("resource", INVOICES)
        .request_async(&http)
        .await
        .unwrap();
    let claims = jwt_part(token.access_token().secret(), 1);
    assert_eq!(claims["aud"], INVOICES);
    assert_eq!(claims["permissions"], serde_json::json!(["invoices:read"]));
    assert!(claims.get("roles").is_none());

    // The code flow: resource at /authorize selects the aud; a /token
    // resource may narrow within it.
    let browser = app.browser();
    let scope = "openid offline_access invoices:read orders:read";
    let both = format!(
        "&resource={}&resource={}",
        form_encode(INVOICES),
        form_encode(ORDERS)
    );
    let tokens = tokens_for(&app, &browser, &client, "bob", scope, &both).await;
    assert_eq!(
        access_claims(&tokens)["aud"],
        serde_json::json!([INVOICES, ORDERS])
    );
    let only_orders = format!("&resource={}", form_encode(ORDERS));
    let tokens = tokens_for(&app, &browser, &client, "bob", scope, &only_orders).await;
    let claims = access_claims(&tokens);
    assert_eq!(claims["aud"], ORDERS);
    assert_eq!(claims["scope"], "offline_access openid orders:read");

    // A refresh of the two-resource authorization narrows to one (RFC 8707
    // §2.2), and the next refresh without a resource gets both again.
    let tokens = tokens_for(&app, &browser, &client, "bob", scope, &both).await;
    let refresh = |token: String, resource: Option<&'static str>| {
        let app = &app;
        let client = &client;
        async move {
            let mut form = vec![
                ("grant_type", "refresh_token".to_owned()),
                ("refresh_token", token),
            ];
            if let Some(resource) = resource {
                form.push(("resource", resource.to_owned()));
            }
            app.http
                .post(app.url("/token"))
                .basic_auth(&client.id, client.secret.as_deref())
                .form(&form)
                .send()
                .await
                .unwrap()
        }
    };
    let response = refresh(
        tokens["refresh_token"].as_str().unwrap().to_owned(),
        Some(INVOICES),
    )
    .await;
    assert_eq!(response.status(), 200);
    let narrowed: Value = response.json().await.unwrap();
    let claims = access_claims(&narrowed);
    assert_eq!(claims["aud"], INVOICES);
    assert_eq!(claims["scope"], "invoices:read offline_access openid");
    let response = refresh(narrowed["refresh_token"].as_str().unwrap().to_owned(), None).await;
    let again: Value = response.json().await.unwrap();
    assert_eq!(
        access_claims(&again)["aud"],
        serde_json::json!([INVOICES, ORDERS])
    );
    // The authorization's orders API is deleted: the family keeps working
    // for what is left (invoices), and is not stuck on invalid_target.
    let both_tokens = tokens_for(&app, &browser, &client, "bob", scope, &both).await;
    with_runtime(&app, async |runtime| {
        apis::delete(runtime.store.as_ref(), ORDERS, true)
            .await
            .unwrap();
    })
    .await;
    within_5_seconds("the deletion reaches the server", || async {
        let document = app.get_json("/.well-known/openid-configuration").await;
        !document["scopes_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "orders:read")
    })
    .await;
    let response = refresh(
        both_tokens["refresh_token"].as_str().unwrap().to_owned(),
        None,
    )
    .await;
    assert_eq!(response.status(), 200);
    let left: Value = response.json().await.unwrap();
    assert_eq!(access_claims(&left)["aud"], INVOICES);
    assert_eq!(left["scope"], "invoices:read offline_access openid");
    apis::create(
        &*Runtime::open(&app.config, false, &SystemClock)
            .await
            .unwrap()
            .store,
        &SystemClock,
        apis::ApiInput {
            identifier: ORDERS.into(),
            name: "Orders".into(),
            scopes: vec!["orders:read=See your orders".into()],
            user_access: Some("any".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    within_5_seconds("the orders API is back", || async {
        let document = app.get_json("/.well-known/openid-configuration").await;
        document["scopes_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "orders:read")
    })
    .await;

    // A resource outside the authorization: invalid_target, and the
    // refresh token is not spent.
    let only_orders_tokens = tokens_for(&app, &browser, &client, "bob", scope, &only_orders).await;
    let token = only_orders_tokens["refresh_token"].as_str().unwrap();
    let response = refresh(token.to_owned(), Some(INVOICES)).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_target");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("not part of the authorization")
    );
    let response = refresh(token.to_owned(), Some(ORDERS)).await;
    assert_eq!(response.status(), 200, "the refresh token still works");
}

async fn every_invalid_target_answers_exactly(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    world(&app).await;
    let client = invoicing_app(&app).await;
    let (id, secret) = app.machine_client(&["orders:read"]).await;
    let cases: [(&str, &str); 4] = [
        ("orders", "absolute URI"),
        ("https://orders.example/#frag", "absolute URI"),
        ("https://unknown.example", "not an API this server knows"),
        (INVOICES, "may not request any scope"),
    ];
    for (resource, why) in cases {
        // /token, client credentials.
        let response = app
            .http
            .post(app.url("/token"))
            .basic_auth(&id, Some(&secret))
            .form(&[("grant_type", "client_credentials"), ("resource", resource)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{resource}");
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_target", "{resource}");
        assert!(
            body["error_description"].as_str().unwrap().contains(why),
            "{resource}: {body}"
        );
    }
    // /authorize: back to the client with the error, before any page.
    let browser = app.browser();
    for (resource, why) in [
        ("relative/path", "absolute URI"),
        ("https://unknown.example", "not an API this server knows"),
    ] {
        let request = pkce();
        let query = format!(
            "{}&resource={}",
            authorize_query(&client, &request, &[("scope", "openid orders:read")]),
            form_encode(resource)
        );
        let back = location(&browser.authorize(&query).await);
        assert!(back.starts_with(&client.redirect_uri), "{back}");
        assert_eq!(
            query_param(&back, "error").as_deref(),
            Some("invalid_target")
        );
        assert!(
            query_param(&back, "error_description")
                .unwrap()
                .contains(why)
        );
        assert_eq!(query_param(&back, "state").as_deref(), Some("st4te"));
    }
    // More than ten.
    let many: String = (0..11)
        .map(|i| format!("&resource={}", form_encode(&format!("https://{i}.example"))))
        .collect();
    let response = app
        .http
        .post(app.url("/token"))
        .basic_auth(&id, Some(&secret))
        .body(format!("grant_type=client_credentials{many}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_target");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("at most 10")
    );
    // Nothing left: the scope asked for belongs to another resource.
    let response = app
        .http
        .post(app.url("/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "orders:read"),
            ("resource", ORDERS),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // A code exchange naming a resource the authorization did not cover.
    let exchange = pkce();
    let query = format!(
        "{}&resource={}",
        authorize_query(&client, &exchange, &[("scope", "openid orders:read")]),
        form_encode(ORDERS)
    );
    let back = browser.sign_in(&query, "bob").await;
    let code = query_param(&back, "code").unwrap();
    let response = app
        .http
        .post(app.url("/token"))
        .basic_auth(&client.id, client.secret.as_deref())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &client.redirect_uri),
            ("code_verifier", &exchange.verifier),
            ("resource", INVOICES),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_target", "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("not part of the authorization")
    );
}

async fn claims_appear_only_for_apis_that_opted_in(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    world(&app).await;
    let client = invoicing_app(&app).await;
    let browser = app.browser();
    let scope = "openid groups orders:read invoices:read";
    // Orders alone: no authorization claim.
    let orders = format!("&resource={}", form_encode(ORDERS));
    let tokens = tokens_for(&app, &browser, &client, "alice", scope, &orders).await;
    let claims = access_claims(&tokens);
    for claim in ["roles", "groups", "permissions"] {
        assert!(claims.get(claim).is_none(), "{claim} in {claims}");
    }
    // Invoices opted in to roles and permissions (not groups); permissions
    // are every invoices scope alice holds, wider than the token's scope.
    let invoices = format!("&resource={}", form_encode(INVOICES));
    let tokens = tokens_for(&app, &browser, &client, "alice", scope, &invoices).await;
    let claims = access_claims(&tokens);
    assert_eq!(claims["scope"], "groups invoices:read openid");
    assert_eq!(claims["roles"], serde_json::json!(["invoice-writer"]));
    assert_eq!(
        claims["permissions"],
        serde_json::json!(["invoices:read", "invoices:write"])
    );
    assert!(claims.get("groups").is_none());
    // The groups scope: group names in the ID token and at /userinfo.
    let id_token = verify_id_token(&app, tokens["id_token"].as_str().unwrap(), &client.id).await;
    assert_eq!(id_token["groups"], serde_json::json!(["finance"]));
    let info: Value = userinfo(&app, tokens["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(info["groups"], serde_json::json!(["finance"]));
    // Without it, neither.
    let tokens = tokens_for(&app, &browser, &client, "alice", "openid orders:read", "").await;
    let id_token = verify_id_token(&app, tokens["id_token"].as_str().unwrap(), &client.id).await;
    assert!(id_token.get("groups").is_none());
    let info: Value = userinfo(&app, tokens["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert!(info.get("groups").is_none());
    // The groups claim for an API that opted in to it, and an API's
    // lifetime.
    with_runtime(&app, async |runtime| {
        apis::update(
            runtime.store.as_ref(),
            &SystemClock,
            ORDERS,
            apis::ApiChanges {
                token_claims: Some(vec!["groups".into()]),
                access_token_ttl: Some(300),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    })
    .await;
    within_5_seconds("the change reaches the server", || async {
        let tokens = tokens_for(&app, &browser, &client, "alice", "orders:read", "").await;
        access_claims(&tokens).get("groups").is_some()
    })
    .await;
    let tokens = tokens_for(&app, &browser, &client, "alice", "orders:read", "").await;
    assert_eq!(tokens["expires_in"], 300);
    let claims = access_claims(&tokens);
    assert_eq!(claims["groups"], serde_json::json!(["finance"]));
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );
}

/// The migration that added APIs: clients registered before it keep
/// tokens identical in scope and `aud`. Simulated on a database as it was
/// then (clients holding scopes, no API, the seed pending); the next start
/// makes one API named by the issuer, open to any user.
async fn the_migration_keeps_existing_clients_tokens_identical(backend: Backend) {
    const ISSUER: &str = "https://auth.example";
    let Some(database) = crate::helpers::test_database(backend).await else {
        return;
    };
    let database = std::sync::Arc::new(database);
    let key = authd::crypto::MasterKey::generate();
    let with_issuer = |config: &mut authd::config::Config| {
        config.issuer = Some(ISSUER.to_owned());
    };
    let copy = authd::crypto::MasterKey::from_base64(&key.to_base64()).unwrap();
    let app = crate::helpers::spawn_app_on(database.clone(), copy, with_issuer)
        .await
        .unwrap();
    app.user("dana").await;
    let (plain, plain_secret) = app.machine_client(&["orders:read", "orders:write"]).await;
    let (legacy, legacy_secret) = app
        .register(NewClient {
            name: "Registered audience".into(),
            scopes: vec!["orders:read".into()],
            audiences: vec!["https://legacy.example".into()],
            ..Default::default()
        })
        .await;
    let web = app
        .web_client_with(NewClient {
            name: "Web".into(),
            redirect_uris: vec!["https://app.example/cb".into()],
            scopes: vec!["orders:read".into()],
            ..Default::default()
        })
        .await;
    // Back to the day before APIs: no API, the seed pending.
    crate::helpers::execute_sql(&app, backend, "DELETE FROM apis").await;
    crate::helpers::execute_sql(
        &app,
        backend,
        "INSERT INTO pending_seeds (name) VALUES ('legacy_api')",
    )
    .await;
    // A CLI command without AUTHD_ISSUER cannot know the issuer: it
    // leaves the seed to the server.
    crate::helpers::json_ok(&crate::helpers::run_authd(&app, &["users", "list"]));
    assert_eq!(
        crate::helpers::count_rows(&app, backend, "apis").await,
        0,
        "not seeded by the CLI"
    );
    app.stop().await;
    let app = crate::helpers::spawn_app_on(database, key, with_issuer)
        .await
        .unwrap();

    let seeded = with_runtime(&app, async |runtime| {
        runtime.store.list_apis().await.unwrap()
    })
    .await;
    assert_eq!(seeded.len(), 1);
    assert_eq!(seeded[0].identifier.as_str(), ISSUER);
    assert_eq!(seeded[0].name.as_str(), "Default API", "made by the seed");
    assert_eq!(seeded[0].user_access, authd::domain::UserAccess::Any);
    assert_eq!(
        seeded[0]
            .scopes
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["orders:read", "orders:write"]
    );
    // The consent page says what it said before.
    assert_eq!(seeded[0].scopes[0].description, "Read access to orders");

    // As before APIs: the scope asked for (or the whole registered one),
    // `aud` the issuer, or the registered audience.
    let claims = verify_access_token(
        &app,
        &crate::helpers::cc_token(&app, &plain, &plain_secret).await,
        ISSUER,
    )
    .await;
    assert_eq!(claims["aud"], ISSUER);
    assert_eq!(claims["scope"], "orders:read orders:write");
    let legacy_secret = legacy_secret.unwrap();
    let claims = verify_access_token(
        &app,
        &crate::helpers::cc_token(&app, &legacy, &legacy_secret).await,
        "https://legacy.example",
    )
    .await;
    assert_eq!(claims["aud"], "https://legacy.example");
    assert_eq!(claims["scope"], "orders:read");
    // A user with no role still gets what any user got.
    let tokens = tokens_for(&app, &app.browser(), &web, "dana", "openid orders:read", "").await;
    assert_eq!(tokens["scope"], "openid orders:read");
    assert_eq!(access_claims(&tokens)["aud"], ISSUER);
    // A second start seeds nothing more.
    app.stop().await;
}

on_both_backends!(
    the_migration_keeps_existing_clients_tokens_identical,
    a_user_without_the_role_never_gets_the_scope,
    allow_grants_no_more_than_the_page_showed,
    a_role_through_a_group_grants_and_its_loss_shrinks_the_next_refresh,
    resource_selects_the_audience_on_every_grant,
    every_invalid_target_answers_exactly,
    claims_appear_only_for_apis_that_opted_in,
);
