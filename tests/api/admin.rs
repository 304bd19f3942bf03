//! The admin API (issue 18): `/admin/v1` on its own listener, called with
//! authd's own client-credentials tokens for `urn:authd:admin`, over real
//! HTTP on both databases.
use std::sync::Arc;

use authd::crypto::MasterKey;
use authd::domain::api::ADMIN_SCOPES;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, TestApp, cc_token, on_both_backends, spawn_app_on, test_database, within_5_seconds,
};

/// An app serving the admin API.
async fn admin_app(backend: Backend) -> Option<TestApp> {
    let database = Arc::new(test_database(backend).await?);
    Some(
        spawn_app_on(database, MasterKey::generate(), |config| {
            config.admin_bind = Some("127.0.0.1:0".parse().unwrap());
        })
        .await
        .expect("app starts"),
    )
}

fn admin_url(app: &TestApp, path: &str) -> String {
    format!(
        "http://127.0.0.1:{}/admin/v1{path}",
        app.admin_port.expect("the admin API is served")
    )
}

/// A token of a machine client holding `scopes` (admin ones or others).
async fn token_with(app: &TestApp, scopes: &[&str]) -> String {
    let (id, secret) = app.machine_client(scopes).await;
    cc_token(app, &id, &secret).await
}

async fn all_admin_scopes(app: &TestApp) -> String {
    let scopes: Vec<&str> = ADMIN_SCOPES.iter().map(|(s, _)| *s).collect();
    token_with(app, &scopes).await
}

/// A problem-details response: its status, `type` and body; checks the
/// media type and that the body names the request id the header carries.
async fn problem(response: reqwest::Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json",
        "status {status}"
    );
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status);
    assert_eq!(body["request_id"], request_id.as_str());
    assert!(!body["title"].as_str().unwrap().is_empty());
    assert!(!body["detail"].as_str().unwrap().is_empty());
    let kind = body["type"].as_str().unwrap().to_owned();
    (status, kind, body)
}

async fn admin_clients_lifecycle(backend: Backend) {
    let Some(app) = admin_app(backend).await else {
        return;
    };
    app.define_scopes(&["orders:read".into(), "orders:write".into()])
        .await;
    let token = all_admin_scopes(&app).await;
    let http = &app.http;

    // Create: 201, Location, ETag, the secret once; the client works.
    let created = http
        .post(admin_url(&app, "/clients"))
        .bearer_auth(&token)
        .json(&json!({"name": "Billing job", "scopes": ["orders:read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert!(created.headers().contains_key("x-request-id"));
    assert_eq!(created.headers()["cache-control"], "no-store");
    let etag = created.headers()["etag"].to_str().unwrap().to_owned();
    let body: Value = created.json().await.unwrap();
    let id = body["client_id"].as_str().unwrap().to_owned();
    let secret = body["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(body["type"], "confidential");
    assert_eq!(body["grant_types"], json!(["client_credentials"]));
    assert_eq!(body["scope"], "orders:read");
    within_5_seconds("the new client gets tokens", || async {
        app.client_credentials(&id, &secret).await.status() == 200
    })
    .await;

    // Read: the same ETag, never the secret.
    let read = http
        .get(admin_url(&app, &format!("/clients/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(read.headers()["etag"].to_str().unwrap(), etag);
    let read: Value = read.json().await.unwrap();
    assert!(read.get("client_secret").is_none());
    assert_eq!(read["name"], "Billing job");

    // Update with If-Match: the change, a new ETag; the old one now loses.
    let patch = |if_match: &str, body: Value| {
        http.patch(admin_url(&app, &format!("/clients/{id}")))
            .bearer_auth(&token)
            .header("if-match", if_match)
            .json(&body)
            .send()
    };
    let updated = patch(
        &etag,
        json!({"name": "Billing", "scopes": ["orders:read", "orders:write"]}),
    )
    .await
    .unwrap();
    assert_eq!(updated.status(), 200);
    let new_etag = updated.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(new_etag, etag);
    let updated: Value = updated.json().await.unwrap();
    assert_eq!(updated["name"], "Billing");
    assert_eq!(updated["scope"], "orders:read orders:write");
    let (status, kind, _) = problem(patch(&etag, json!({"name": "Lost"})).await.unwrap()).await;
    assert_eq!(
        (status, kind.as_str()),
        (412, "urn:authd:problem:precondition_failed")
    );
    // `*` matches whatever version is current.
    assert_eq!(
        patch("*", json!({"name": "Billing"}))
            .await
            .unwrap()
            .status(),
        200
    );

    // Bad changes: nothing to change (400); metadata the rules refuse
    // (422, in this API's field names); a field the API does not know (400).
    // A patch that changes nothing changes nothing (RFC 7396): 200.
    let unchanged = patch("*", json!({})).await.unwrap();
    assert_eq!(unchanged.status(), 200);
    assert_eq!(unchanged.json::<Value>().await.unwrap()["name"], "Billing");
    let (status, kind, body) = problem(
        patch("*", json!({"grant_types": ["authorization_code"]}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, kind.as_str()),
        (422, "urn:authd:problem:invalid_client_metadata")
    );
    assert!(
        body["detail"].as_str().unwrap().contains("redirect_uris"),
        "{body}"
    );
    let (status, _, body) = problem(patch("*", json!({"public": true})).await.unwrap()).await;
    assert_eq!(status, 400, "{body}");
    let (status, _, body) = problem(
        patch("*", json!({"scopes": ["nobody:defines"]}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422);
    assert!(body["detail"].as_str().unwrap().contains("nobody:defines"));

    // Rotate the secret: the new one works, the old one stops.
    let rotated = http
        .post(admin_url(&app, &format!("/clients/{id}/secret")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), 200);
    let rotated: Value = rotated.json().await.unwrap();
    let new_secret = rotated["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    within_5_seconds("the old secret stops working", || async {
        app.client_credentials(&id, &secret).await.status() == 401
    })
    .await;
    assert_eq!(app.client_credentials(&id, &new_secret).await.status(), 200);

    // Delete: a stale If-Match loses; then 204; then 404 everywhere.
    let stale = http
        .delete(admin_url(&app, &format!("/clients/{id}")))
        .bearer_auth(&token)
        .header("if-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(stale).await.0, 412);
    let deleted = http
        .delete(admin_url(&app, &format!("/clients/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    for response in [
        http.get(admin_url(&app, &format!("/clients/{id}"))),
        http.delete(admin_url(&app, &format!("/clients/{id}"))),
        http.post(admin_url(&app, &format!("/clients/{id}/secret"))),
    ] {
        let (status, kind, _) = problem(response.bearer_auth(&token).send().await.unwrap()).await;
        assert_eq!(
            (status, kind.as_str()),
            (404, "urn:authd:problem:not_found")
        );
    }
    within_5_seconds("the deleted client gets no tokens", || async {
        app.client_credentials(&id, &new_secret).await.status() == 401
    })
    .await;
}

async fn admin_creates_validate_as_the_cli_does(backend: Backend) {
    let Some(app) = admin_app(backend).await else {
        return;
    };
    let token = all_admin_scopes(&app).await;
    let create = |body: Value| {
        app.http
            .post(admin_url(&app, "/clients"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    for (body, needle) in [
        (json!({"name": ""}), "name"),
        (
            json!({"name": "x", "public": true, "grant_types": ["client_credentials"]}),
            "public client",
        ),
        (
            json!({"name": "x", "redirect_uris": ["http://evil.example/cb"]}),
            "redirect_uris",
        ),
        (
            json!({"name": "x", "grant_types": ["password"]}),
            "grant_types",
        ),
        (json!({"name": "x", "rate_tier": "platinum"}), "rate_tier"),
        (
            json!({"name": "x", "allowed_origins": ["https://a.example/path"]}),
            "allowed_origins",
        ),
    ] {
        let (status, kind, problem_body) = problem(create(body.clone()).await.unwrap()).await;
        assert_eq!(status, 422, "{body}: {problem_body}");
        assert_eq!(kind, "urn:authd:problem:invalid_client_metadata");
        assert!(
            problem_body["detail"].as_str().unwrap().contains(needle),
            "{body}: {problem_body}"
        );
    }
    // Not JSON, the wrong media type, an unknown field: 400 (415 for the type).
    let not_json = app
        .http
        .post(admin_url(&app, "/clients"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(problem(not_json).await.0, 400);
    let (status, _, _) =
        problem(create(json!({"name": "x", "colour": "red"})).await.unwrap()).await;
    assert_eq!(status, 400);
    // A public client that signs users in: no secret in the answer.
    let public = create(json!({
        "name": "SPA", "public": true, "redirect_uris": ["https://spa.example/cb"]
    }))
    .await
    .unwrap();
    assert_eq!(public.status(), 201);
    let public: Value = public.json().await.unwrap();
    assert!(public.get("client_secret").is_none());
    assert_eq!(public["type"], "public");
}

async fn admin_scopes_are_enforced(backend: Backend) {
    let Some(app) = admin_app(backend).await else {
        return;
    };
    app.define_scopes(&["orders:read".into()]).await;
    let reader = token_with(&app, &["admin:clients:read"]).await;
    let other_api = token_with(&app, &["orders:read"]).await;
    let http = &app.http;

    // Reading is allowed; writing needs admin:clients:write (403, RFC 6750 §3.1).
    let list = http
        .get(admin_url(&app, "/clients"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200);
    let refused = http
        .post(admin_url(&app, "/clients"))
        .bearer_auth(&reader)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.headers()["www-authenticate"],
        r#"Bearer realm="authd-admin", error="insufficient_scope", scope="admin:clients:write""#
    );
    let (status, kind, _) = problem(refused).await;
    assert_eq!(
        (status, kind.as_str()),
        (403, "urn:authd:problem:insufficient_scope")
    );

    // No token, a token for another API, garbage: 401 with a challenge.
    for (token, error) in [
        (None, None),
        (Some(other_api.as_str()), Some("invalid_token")),
        (Some("not.a.jwt"), Some("invalid_token")),
    ] {
        let request = http.get(admin_url(&app, "/clients"));
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await.unwrap();
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.starts_with(r#"Bearer realm="authd-admin""#),
            "{challenge}"
        );
        match error {
            Some(error) => assert!(
                challenge.contains(&format!(r#"error="{error}""#)),
                "{challenge}"
            ),
            None => assert!(!challenge.contains("error="), "{challenge}"),
        }
        assert_eq!(problem(response).await.0, 401);
    }

    // The public listener does not serve the admin API.
    let public = http
        .get(app.url("/admin/v1/clients"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
}

async fn admin_lists_page_by_page(backend: Backend) {
    let Some(app) = admin_app(backend).await else {
        return;
    };
    let token = all_admin_scopes(&app).await;
    let create = |name: String| {
        let http = app.http.clone();
        let url = admin_url(&app, "/clients");
        let token = token.clone();
        async move {
            let response = http
                .post(url)
                .bearer_auth(token)
                .json(&json!({ "name": name }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201);
            let body: Value = response.json().await.unwrap();
            body["client_id"].as_str().unwrap().to_owned()
        }
    };
    let mut expected = Vec::new();
    for n in 0..7 {
        expected.push(create(format!("client {n}")).await);
    }
    let page = |cursor: Option<String>, limit: u32| {
        let mut url = format!("{}?limit={limit}", admin_url(&app, "/clients"));
        if let Some(cursor) = cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        app.http.get(url).bearer_auth(&token).send()
    };
    // Walk the pages, creating a client between two of them: it comes at
    // the end, and nothing is seen twice or missed.
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let response = page(cursor.clone(), 3).await.unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        let items = body["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(
            items
                .iter()
                .map(|c| c["client_id"].as_str().unwrap().to_owned()),
        );
        pages += 1;
        if pages == 1 {
            expected.push(create("late".into()).await);
        }
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    // The admin client itself was registered first.
    assert_eq!(seen.len(), expected.len() + 1, "{seen:?}");
    assert_eq!(&seen[1..], &expected[..]);
    assert_eq!(pages, 3);

    for (query, what) in [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=ten", "query"),
        ("cursor=bm90IGEgY3Vyc29y", "cursor"),
        ("cursor=%%%", "cursor"),
    ] {
        let response = app
            .http
            .get(format!("{}?{query}", admin_url(&app, "/clients")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let (status, _, body) = problem(response).await;
        assert_eq!(status, 400, "{query}");
        assert!(
            body["detail"].as_str().unwrap().contains(what),
            "{query}: {body}"
        );
    }
}

async fn openapi_document_describes_every_route(backend: Backend) {
    let Some(app) = admin_app(backend).await else {
        return;
    };
    let document: Value = app
        .http
        .get(admin_url(&app, "/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(
        document,
        serde_json::to_value(authd::http::admin::openapi::document()).unwrap()
    );
    // Every documented operation is served: without a token it is refused
    // (401), never unknown (404) or of another method (405).
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() >= 4, "{paths:?}");
    for (path, operations) in paths {
        for (method, operation) in operations.as_object().unwrap() {
            let url = admin_url(
                &app,
                &path.replace("/admin/v1", "").replace("{id}", "some-id"),
            );
            let response = app
                .http
                .request(method.to_uppercase().parse().unwrap(), url)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            if path.ends_with("/openapi.json") {
                assert_eq!(status, 200);
                continue;
            }
            assert_eq!(status, 401, "{method} {path}");
            // Every protected operation documents its scope and the 401.
            assert!(
                operation["responses"].get("401").is_some(),
                "{method} {path}"
            );
            assert!(
                operation["security"][0]["bearer"][0]
                    .as_str()
                    .unwrap()
                    .starts_with("admin:")
            );
        }
    }
    // A documented path with another method: 405 with Allow.
    let response = app
        .http
        .put(admin_url(&app, "/clients"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["allow"], "GET, POST");
    assert_eq!(problem(response).await.0, 405);
    let response = app
        .http
        .get(admin_url(&app, "/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(response).await.0, 404);
}

async fn admin_creates_are_idempotent(backend: Backend) {
    let Some(app) = admin_app(backend).await else {
        return;
    };
    let token = all_admin_scopes(&app).await;
    let create = |key: &str, body: Value| {
        app.http
            .post(admin_url(&app, "/clients"))
            .bearer_auth(&token)
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };
    let count = || async {
        let page: Value = app
            .http
            .get(format!("{}?limit=200", admin_url(&app, "/clients")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        page["items"].as_array().unwrap().len()
    };
    let before = count().await;
    let first = create("job-42", json!({"name": "Nightly export"}))
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let first: Value = first.json().await.unwrap();
    // The retry: the same answer, secret included, and no second client.
    let again = create("job-42", json!({"name": "Nightly export"}))
        .await
        .unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.headers()["etag"].to_str().unwrap(), first_etag);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again, first);
    assert!(first["client_secret"].as_str().is_some());
    assert_eq!(count().await, before + 1);
    // The secret is stored sealed: the database holds no copy of it.
    let secret = first["client_secret"].as_str().unwrap();
    let rows = crate::helpers::query_i64(
        &app,
        backend,
        "SELECT COUNT(*) FROM admin_idempotency WHERE response_sealed IS NOT NULL",
    )
    .await;
    assert_eq!(rows, 1);
    assert!(
        secret
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    );
    let in_clear = match backend {
        Backend::Sqlite => format!(
            "SELECT COUNT(*) FROM admin_idempotency WHERE instr(response_sealed, CAST('{secret}' AS BLOB)) > 0"
        ),
        Backend::Postgres => format!(
            "SELECT COUNT(*) FROM admin_idempotency WHERE position(convert_to('{secret}', 'UTF8') in response_sealed) > 0"
        ),
    };
    assert_eq!(crate::helpers::query_i64(&app, backend, &in_clear).await, 0);
    // The same key for another body: 422; a new key: a new client.
    let (status, kind, _) =
        problem(create("job-42", json!({"name": "Other"})).await.unwrap()).await;
    assert_eq!(
        (status, kind.as_str()),
        (422, "urn:authd:problem:idempotency_key_reused")
    );
    assert_eq!(
        create("job-43", json!({"name": "Nightly export"}))
            .await
            .unwrap()
            .status(),
        201
    );
    assert_eq!(count().await, before + 2);
    // A refused create keeps nothing: fixed, the same key then works.
    let (status, _, _) = problem(create("job-44", json!({"name": ""})).await.unwrap()).await;
    assert_eq!(status, 422);
    assert_eq!(
        create("job-44", json!({"name": "Fixed"}))
            .await
            .unwrap()
            .status(),
        201
    );
    // Another caller's same key is another request.
    let other = token_with(&app, &["admin:clients:write"]).await;
    let theirs = app
        .http
        .post(admin_url(&app, "/clients"))
        .bearer_auth(&other)
        .header("idempotency-key", "job-42")
        .json(&json!({"name": "Nightly export"}))
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), 201);
    assert!(theirs.headers().get("idempotent-replayed").is_none());
    // Keys out of bounds: 400.
    for key in ["", &"k".repeat(256)] {
        let (status, _, _) = problem(create(key, json!({"name": "x"})).await.unwrap()).await;
        assert_eq!(status, 400, "{key:?}");
    }
}

/// Whether `username` can sign in with `password` at the login page.
async fn signs_in(
    app: &TestApp,
    client: &crate::helpers::WebClient,
    username: &str,
    password: &str,
) -> bool {
    let browser = app.browser();
    let pkce = crate::helpers::pkce();
    let query = crate::helpers::authorize_query(client, &pkce, &[]);
    let response = browser.authorize(&query).await;
    let login = crate::helpers::location(&response);
    let response = browser.log_in(&login, username, password).await;
    response.status() == 303 && !crate::helpers::location(&response).starts_with("/login")
}

async fn admin_users_lifecycle(backend: Backend) {
    let Some(app) = admin_app(backend).await else {
        return;
    };
    let token = all_admin_scopes(&app).await;
    let client = app.web_client(false, &["openid"]).await;
    let http = &app.http;
    let users = admin_url(&app, "/users");

    // Create with a password: the person signs in with it.
    let created = http
        .post(&users)
        .bearer_auth(&token)
        .json(&json!({
            "username": "dana", "password": crate::helpers::PASSWORD,
            "name": "Dana Scully", "email": "dana@example.com", "email_verified": true
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let etag = created.headers()["etag"].to_str().unwrap().to_owned();
    let dana: Value = created.json().await.unwrap();
    assert_eq!(dana["has_password"], true);
    assert!(dana.get("password").is_none() && dana.get("password_hash").is_none());
    let id = dana["id"].as_str().unwrap().to_owned();
    assert!(signs_in(&app, &client, "dana", crate::helpers::PASSWORD).await);

    // Without a password: no password signs in, not even an empty one.
    let created = http
        .post(&users)
        .bearer_auth(&token)
        .json(&json!({"username": "fox"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let fox: Value = created.json().await.unwrap();
    assert_eq!(fox["has_password"], false);
    let fox_id = fox["id"].as_str().unwrap().to_owned();
    assert!(!signs_in(&app, &client, "fox", "a long enough secret").await);

    // Bad input: taken username 409; short password, bad email 422.
    for (body, status) in [
        (json!({"username": "dana"}), 409),
        (json!({"username": "x", "password": "short"}), 422),
        (json!({"username": "y", "email": "not-an-email"}), 422),
        (json!({"username": "has space"}), 422),
        (
            json!({"username": "00000000-0000-4000-8000-000000000000"}),
            422,
        ),
    ] {
        let response = http
            .post(&users)
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let (got, _, problem_body) = problem(response).await;
        assert_eq!(got, status, "{body}: {problem_body}");
        assert!(
            !problem_body.to_string().contains("short\""),
            "the password is never echoed"
        );
    }

    // Search by username or email, any case.
    let found: Value = http
        .get(format!("{users}?search=EXAMPLE.com"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = found["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["dana"]);
    let none: Value = http
        .get(format!("{users}?search=%25"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(none["items"], json!([]), "% is literal");

    // Profile: If-Match, 412 on a stale ETag, null clears, a changed
    // email is unverified.
    let patch = |if_match: &str, body: Value| {
        http.patch(admin_url(&app, &format!("/users/{id}")))
            .bearer_auth(&token)
            .header("if-match", if_match)
            .json(&body)
            .send()
    };
    let updated = patch(&etag, json!({"name": null, "email": "dana@fbi.example"}))
        .await
        .unwrap();
    assert_eq!(updated.status(), 200);
    let updated: Value = updated.json().await.unwrap();
    assert_eq!(updated["name"], Value::Null);
    assert_eq!(updated["email"], "dana@fbi.example");
    assert_eq!(updated["email_verified"], false);
    assert_eq!(
        problem(patch(&etag, json!({"name": "Lost"})).await.unwrap())
            .await
            .0,
        412
    );
    assert_eq!(patch("*", json!({})).await.unwrap().status(), 200);
    assert_eq!(
        problem(patch("*", json!({"email": "nope"})).await.unwrap())
            .await
            .0,
        422
    );
    assert_eq!(
        problem(patch("*", json!({"username": "other"})).await.unwrap())
            .await
            .0,
        400
    );

    // Disable: no sign-in; enable: sign-in again.
    let action = |method: reqwest::Method, path: String| {
        http.request(method, admin_url(&app, &path))
            .bearer_auth(&token)
            .send()
    };
    assert_eq!(
        action(reqwest::Method::POST, format!("/users/{id}/disable"))
            .await
            .unwrap()
            .status(),
        204
    );
    let read: Value = http
        .get(admin_url(&app, &format!("/users/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["disabled"], true);
    assert!(!signs_in(&app, &client, "dana", crate::helpers::PASSWORD).await);
    assert_eq!(
        action(reqwest::Method::POST, format!("/users/{id}/enable"))
            .await
            .unwrap()
            .status(),
        204
    );
    assert!(signs_in(&app, &client, "dana", crate::helpers::PASSWORD).await);

    // A password for the user who had none: they sign in with it.
    let set = |user: &str, password: &str| {
        http.put(admin_url(&app, &format!("/users/{user}/password")))
            .bearer_auth(&token)
            .json(&json!({ "password": password }))
            .send()
    };
    assert_eq!(problem(set(&fox_id, "short").await.unwrap()).await.0, 422);
    assert_eq!(
        set(&fox_id, "the truth is out there")
            .await
            .unwrap()
            .status(),
        204
    );
    assert!(signs_in(&app, &client, "fox", "the truth is out there").await);

    // A full sign-in records the consent; sessions end; consents list and
    // withdraw.
    let browser = app.browser();
    let pkce = crate::helpers::pkce();
    let done = browser
        .sign_in(
            &crate::helpers::authorize_query(&client, &pkce, &[]),
            "dana",
        )
        .await;
    assert!(done.contains("code="), "{done}");
    assert_eq!(
        action(reqwest::Method::DELETE, format!("/users/{id}/sessions"))
            .await
            .unwrap()
            .status(),
        204
    );
    let consents: Value = http
        .get(admin_url(&app, &format!("/users/{id}/consents")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = consents.as_array().unwrap();
    assert!(
        listed.iter().any(|c| c["client_id"] == client.id.as_str()),
        "{consents}"
    );
    let withdraw = action(
        reqwest::Method::DELETE,
        format!("/users/{id}/consents/{}", client.id),
    )
    .await
    .unwrap();
    assert_eq!(withdraw.status(), 204);
    let again = action(
        reqwest::Method::DELETE,
        format!("/users/{id}/consents/{}", client.id),
    )
    .await
    .unwrap();
    assert_eq!(problem(again).await.0, 404);

    // Unknown users: 404 on every operation.
    let nobody = "00000000-0000-4000-8000-000000000000";
    for (method, path) in [
        (reqwest::Method::GET, format!("/users/{nobody}")),
        (reqwest::Method::POST, format!("/users/{nobody}/disable")),
        (reqwest::Method::POST, format!("/users/{nobody}/enable")),
        (reqwest::Method::DELETE, format!("/users/{nobody}/sessions")),
        (reqwest::Method::GET, format!("/users/{nobody}/consents")),
        (reqwest::Method::GET, "/users/not-a-uuid".to_owned()),
    ] {
        let response = action(method.clone(), path.clone()).await.unwrap();
        assert_eq!(problem(response).await.0, 404, "{method} {path}");
    }

    // Users' scopes: a token without admin:users:write cannot change them.
    let reader = token_with(&app, &["admin:users:read"]).await;
    let refused = http
        .post(format!(
            "{}/disable",
            admin_url(&app, &format!("/users/{id}"))
        ))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(refused).await.0, 403);
}

async fn admin_keys_rotate_and_revoke(backend: Backend) {
    let Some(app) = admin_app(backend).await else {
        return;
    };
    let token = all_admin_scopes(&app).await;
    let http = &app.http;
    let keys: Value = http
        .get(admin_url(&app, "/keys"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let state_of = |keys: &Value, state: &str| -> String {
        keys.as_array()
            .unwrap()
            .iter()
            .find(|k| k["state"] == state)
            .unwrap()["kid"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let active = state_of(&keys, "active");
    let next = state_of(&keys, "next");
    assert_eq!(crate::helpers::kid_of(&token), active);
    // No key material, only public facts.
    assert!(!keys.to_string().contains("private"), "{keys}");

    // Rotate: the pre-published key signs at once on this replica.
    let rotated = http
        .post(admin_url(&app, "/keys/rotate"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), 200);
    let rotated: Value = rotated.json().await.unwrap();
    assert_eq!(rotated["activated"], next.as_str());
    let new_next = rotated["next"].as_str().unwrap().to_owned();
    assert_eq!(state_of(&rotated["keys"], "active"), next);
    let (id, secret) = app.machine_client(&["admin:keys:read"]).await;
    assert_eq!(
        crate::helpers::kid_of(&cc_token(&app, &id, &secret).await),
        next
    );
    // A malformed body is refused, not taken for "no force".
    let bad = http
        .post(admin_url(&app, "/keys/rotate"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(r#"{"force": "yes"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(bad).await.0, 400);

    // Revoke the signing key: the next one signs; again: 409; unknown: 404.
    let revoke = |kid: &str| {
        http.post(admin_url(&app, &format!("/keys/{kid}/revoke")))
            .bearer_auth(&token)
            .send()
    };
    let revoked = revoke(&next).await.unwrap();
    assert_eq!(revoked.status(), 200);
    let revoked: Value = revoked.json().await.unwrap();
    assert_eq!(revoked["activated"], new_next.as_str());
    let jwks = app.get_json("/.well-known/jwks.json").await;
    assert!(
        !jwks.to_string().contains(&next),
        "a revoked key leaves the JWKS"
    );
    assert_eq!(problem(revoke(&next).await.unwrap()).await.0, 409);
    assert_eq!(problem(revoke("no-such-kid").await.unwrap()).await.0, 404);

    // The master key: one version, current, held; read-only.
    let status: Value = http
        .get(admin_url(&app, "/master-key"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status.as_array().unwrap().len(), 1, "{status}");
    assert_eq!(status[0]["current"], true);
    assert_eq!(status[0]["configured"], true);
    let write = http
        .post(admin_url(&app, "/master-key"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(write).await.0, 405);

    // Reading keys does not allow rotating them.
    let reader = token_with(&app, &["admin:keys:read"]).await;
    let refused = http
        .post(admin_url(&app, "/keys/rotate"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(refused).await.0, 403);
}

async fn admin_manages_apis_roles_and_groups(backend: Backend) {
    let Some(app) = admin_app(backend).await else {
        return;
    };
    let token = all_admin_scopes(&app).await;
    let http = &app.http;
    let send = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let request = http
            .request(method, admin_url(&app, path))
            .bearer_auth(&token);
        match body {
            Some(body) => request.json(&body).send(),
            None => request.send(),
        }
    };
    use reqwest::Method;

    // An API with two scopes.
    let created = send(Method::POST, "/apis", Some(json!({
        "identifier": "https://invoices.example", "name": "Invoices",
        "scopes": [{"scope": "invoices:read", "description": "Read invoices"}, {"scope": "invoices:write"}],
        "token_claims": ["permissions"]
    }))).await.unwrap();
    assert_eq!(created.status(), 201);
    let api: Value = created.json().await.unwrap();
    let api_id = api["id"].as_str().unwrap().to_owned();
    assert_eq!(api["scopes"][0]["description"], "Read invoices");
    // Taken identifier 409; a bad identifier 422 naming the field.
    let again = send(Method::POST, "/apis", Some(json!({"identifier": "https://invoices.example", "name": "x", "scopes": [{"scope": "x:y"}]}))).await.unwrap();
    assert_eq!(problem(again).await.0, 409);
    let bad = send(
        Method::POST,
        "/apis",
        Some(json!({"identifier": "not a uri", "name": "x", "scopes": [{"scope": "x:y"}]})),
    )
    .await
    .unwrap();
    let (status, _, body) = problem(bad).await;
    assert_eq!(status, 422);
    assert!(
        body["detail"].as_str().unwrap().starts_with("identifier"),
        "{body}"
    );

    // A role, a group holding it, a member: the member's permissions.
    assert_eq!(
        send(
            Method::POST,
            "/roles",
            Some(json!({"name": "writer", "scopes": ["invoices:read", "invoices:write"]}))
        )
        .await
        .unwrap()
        .status(),
        201
    );
    assert_eq!(
        send(Method::POST, "/groups", Some(json!({"name": "finance"})))
            .await
            .unwrap()
            .status(),
        201
    );
    let user = app.user("erin").await;
    let added = send(Method::PUT, "/groups/finance/roles/writer", None)
        .await
        .unwrap();
    assert_eq!(added.status(), 200);
    let added = send(
        Method::PUT,
        &format!("/groups/finance/members/{user}"),
        None,
    )
    .await
    .unwrap();
    let added: Value = added.json().await.unwrap();
    assert_eq!(added["changed"], true);
    let twice: Value = send(Method::PUT, "/groups/finance/members/erin", None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(twice["changed"], false);
    let permissions: Value = send(Method::GET, "/users/erin/permissions", None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let scopes: Vec<&str> = permissions["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["scope"].as_str().unwrap())
        .collect();
    assert_eq!(scopes, ["invoices:read", "invoices:write"]);

    // Admin scopes are for machine clients: no role holds one.
    let admin_role = send(
        Method::POST,
        "/roles",
        Some(json!({"name": "sneaky", "scopes": ["admin:keys:write"]})),
    )
    .await
    .unwrap();
    assert_eq!(problem(admin_role).await.0, 422);

    // Role changes take If-Match; a stale ETag loses.
    let role = send(Method::GET, "/roles/writer", None).await.unwrap();
    let etag = role.headers()["etag"].to_str().unwrap().to_owned();
    let narrow = |if_match: String| {
        http.patch(admin_url(&app, "/roles/writer"))
            .bearer_auth(&token)
            .header("if-match", if_match)
            .json(&json!({"scopes": ["invoices:read"]}))
            .send()
    };
    assert_eq!(narrow(etag.clone()).await.unwrap().status(), 200);
    assert_eq!(problem(narrow(etag).await.unwrap()).await.0, 412);

    // In use: deleting needs force; the built-in admin API never changes.
    assert_eq!(
        problem(send(Method::DELETE, "/roles/writer", None).await.unwrap())
            .await
            .0,
        409
    );
    assert_eq!(
        problem(
            send(Method::DELETE, &format!("/apis/{api_id}"), None)
                .await
                .unwrap()
        )
        .await
        .0,
        409
    );
    assert_eq!(
        send(Method::DELETE, "/roles/writer?force=true", None)
            .await
            .unwrap()
            .status(),
        204
    );
    let listed: Value = send(Method::GET, "/apis?limit=200", None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let admin_api = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["identifier"] == "urn:authd:admin")
        .unwrap()
        .clone();
    assert_eq!(admin_api["scopes"].as_array().unwrap().len(), 9);
    let admin_id = admin_api["id"].as_str().unwrap();
    let (status, kind, _) = problem(
        send(
            Method::PATCH,
            &format!("/apis/{admin_id}"),
            Some(json!({"name": "mine"})),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!((status, kind.as_str()), (403, "urn:authd:problem:built_in"));
    assert_eq!(
        problem(
            send(
                Method::DELETE,
                &format!("/apis/{admin_id}?force=true"),
                None
            )
            .await
            .unwrap()
        )
        .await
        .0,
        403
    );

    // Unknown names: 404.
    for path in [
        "/roles/nobody",
        "/groups/nobody",
        "/apis/00000000-0000-4000-8000-000000000000",
        "/users/nobody/permissions",
    ] {
        assert_eq!(
            problem(send(Method::GET, path, None).await.unwrap())
                .await
                .0,
            404,
            "{path}"
        );
    }
    assert_eq!(
        problem(
            send(Method::PUT, "/groups/finance/members/nobody", None)
                .await
                .unwrap()
        )
        .await
        .0,
        404
    );

    // Reading APIs does not allow changing them.
    let reader = token_with(&app, &["admin:apis:read"]).await;
    let refused = http
        .post(admin_url(&app, "/groups"))
        .bearer_auth(&reader)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(refused).await.0, 403);
}

async fn admin_scopes_cannot_be_escalated(backend: Backend) {
    let Some(app) = admin_app(backend).await else {
        return;
    };
    app.define_scopes(&["orders:read".into()]).await;
    let http = &app.http;
    let (writer_id, writer_secret) = app
        .machine_client(&["admin:clients:write", "admin:clients:read"])
        .await;
    let writer = cc_token(&app, &writer_id, &writer_secret).await;
    let (boss_id, _) = app.machine_client(&["admin:keys:write"]).await;

    // A client with an admin scope the caller lacks: not made, not changed,
    // not taken over, not deleted.
    let made = http
        .post(admin_url(&app, "/clients"))
        .bearer_auth(&writer)
        .json(&json!({"name": "x", "scopes": ["admin:keys:write"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        made.headers()["www-authenticate"],
        r#"Bearer realm="authd-admin", error="insufficient_scope", scope="admin:keys:write""#
    );
    assert_eq!(problem(made).await.0, 403);
    for (method, path, body) in [
        (
            reqwest::Method::POST,
            format!("/clients/{boss_id}/secret"),
            None,
        ),
        (
            reqwest::Method::PATCH,
            format!("/clients/{boss_id}"),
            Some(json!({"name": "mine"})),
        ),
        (reqwest::Method::DELETE, format!("/clients/{boss_id}"), None),
        (
            reqwest::Method::PATCH,
            format!("/clients/{writer_id}"),
            Some(json!({"scopes": ["admin:clients:write", "admin:users:write"]})),
        ),
    ] {
        let request = http
            .request(method.clone(), admin_url(&app, &path))
            .bearer_auth(&writer);
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        assert_eq!(
            problem(request.send().await.unwrap()).await.0,
            403,
            "{method} {path}"
        );
    }
    // Within its own scopes it may.
    let made = http
        .post(admin_url(&app, "/clients"))
        .bearer_auth(&writer)
        .json(&json!({"name": "reader", "scopes": ["admin:clients:read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);

    // A token naming another audience too is refused: its resource server
    // could replay it here. Asking for the admin scopes alone works.
    let (mixed_id, mixed_secret) = app
        .machine_client(&["admin:clients:read", "orders:read"])
        .await;
    let mixed = cc_token(&app, &mixed_id, &mixed_secret).await;
    let refused = http
        .get(admin_url(&app, "/clients"))
        .bearer_auth(&mixed)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(refused).await.0, 401);
    let narrow: Value = http
        .post(app.url("/token"))
        .basic_auth(&mixed_id, Some(&mixed_secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "admin:clients:read"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let narrow = narrow["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        http.get(admin_url(&app, "/clients"))
            .bearer_auth(&narrow)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // A scope taken from a client stops its tokens at once, not at expiry.
    let all = all_admin_scopes(&app).await;
    let patched = http
        .patch(admin_url(&app, &format!("/clients/{mixed_id}")))
        .bearer_auth(&all)
        .json(&json!({"scopes": ["orders:read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    within_5_seconds("the narrowed client's admin token stops", || async {
        http.get(admin_url(&app, "/clients"))
            .bearer_auth(&narrow)
            .send()
            .await
            .unwrap()
            .status()
            == 403
    })
    .await;

    // Admin scopes go to new clients only: an existing client's secret may
    // be known to a caller with fewer scopes.
    let (plain_id, _) = app.machine_client(&["orders:read"]).await;
    let added = http
        .patch(admin_url(&app, &format!("/clients/{plain_id}")))
        .bearer_auth(&all)
        .json(&json!({"scopes": ["orders:read", "admin:keys:read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(added).await.0, 409);

    // A retried rotation answers the secret the first made.
    let rotate = || {
        http.post(admin_url(&app, &format!("/clients/{boss_id}/secret")))
            .bearer_auth(&all)
            .header("idempotency-key", "rotate-boss-1")
            .send()
    };
    let first: Value = rotate().await.unwrap().json().await.unwrap();
    let again = rotate().await.unwrap();
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(first, again);
    within_5_seconds("the rotated secret works", || async {
        app.client_credentials(&boss_id, first["client_secret"].as_str().unwrap())
            .await
            .status()
            == 200
    })
    .await;
}

/// Every change through the admin API is an audit event naming the calling
/// client; from the CLI, `cli`. No secret reaches the log.
async fn admin_changes_are_audited_with_their_actor(backend: Backend) {
    let Some(app) = admin_app(backend).await else {
        return;
    };
    app.stop().await;
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("authd.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let binary = env!("CARGO_BIN_EXE_authd");
    let command = |args: &[&str]| {
        let mut command = std::process::Command::new(binary);
        command
            .args(args)
            .env_clear()
            .env("DATABASE_URL", &app.database.url)
            .env("AUTHD_MASTER_KEY", app.master_key.to_base64())
            .env("AUTHD_BIND", "127.0.0.1:0")
            .env("AUTHD_ADMIN_BIND", "127.0.0.1:0")
            .env("AUTHD_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stderr(log.try_clone().unwrap());
        command
    };
    let bootstrap = command(&["admin", "bootstrap"]).output().unwrap();
    assert!(bootstrap.status.success());
    let credentials: Value = serde_json::from_slice(&bootstrap.stdout).unwrap();
    let admin_id = credentials["client_id"].as_str().unwrap().to_owned();
    let admin_secret = credentials["client_secret"].as_str().unwrap().to_owned();
    let mut server = command(&["serve"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lines = || -> Vec<Value> {
        std::fs::read_to_string(&log_path)
            .unwrap()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    };
    let mut ports = None;
    for _ in 0..100 {
        let all = lines();
        let public = all.iter().find(|l| l["message"] == "authd is listening");
        let admin = all
            .iter()
            .find(|l| l["message"] == "admin API on /admin/v1");
        if let (Some(public), Some(admin)) = (public, admin) {
            let public = public["address"]
                .as_str()
                .unwrap()
                .rsplit(':')
                .next()
                .unwrap()
                .to_owned();
            ports = Some((public, admin["port"].as_u64().unwrap()));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (public, admin) = ports.expect("both listeners started");
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("http://127.0.0.1:{public}/token"))
        .basic_auth(&admin_id, Some(&admin_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
    let base = format!("http://127.0.0.1:{admin}/admin/v1");
    let created: Value = http
        .post(format!("{base}/clients"))
        .bearer_auth(&token)
        .json(&json!({"name": "Audited"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(
        http.patch(format!("{base}/clients/{id}"))
            .bearer_auth(&token)
            .json(&json!({"name": "Audited 2"}))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http.delete(format!("{base}/clients/{id}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let password = "audited-password-Kq2";
    assert_eq!(
        http.post(format!("{base}/users"))
            .bearer_auth(&token)
            .json(&json!({"username": "audited", "password": password}))
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
    server.kill().unwrap();
    server.wait().unwrap();

    let all = lines();
    let audit: Vec<&Value> = all.iter().filter(|l| l["target"] == "audit").collect();
    let event = |name: &str, target: &str| {
        audit.iter().any(|l| {
            l["event"] == name
                && l["actor"] == format!("client:{admin_id}")
                && (target.is_empty() || l["client_id"] == target)
        })
    };
    assert!(
        audit.iter().any(|l| l["event"] == "client_created"
            && l["actor"] == "cli"
            && l["client_id"] == admin_id.as_str()),
        "{audit:?}"
    );
    assert!(event("client_created", &id), "{audit:?}");
    assert!(event("client_updated", &id), "{audit:?}");
    assert!(event("client_deleted", &id), "{audit:?}");
    assert!(event("user_created", ""), "{audit:?}");
    let text = std::fs::read_to_string(&log_path).unwrap();
    for secret in [
        admin_secret.as_str(),
        secret.as_str(),
        password,
        token.as_str(),
    ] {
        assert!(!text.contains(secret), "a secret reached the log");
    }
}

on_both_backends!(
    admin_clients_lifecycle,
    admin_creates_validate_as_the_cli_does,
    admin_scopes_are_enforced,
    admin_lists_page_by_page,
    admin_creates_are_idempotent,
    admin_users_lifecycle,
    admin_keys_rotate_and_revoke,
    admin_manages_apis_roles_and_groups,
    admin_scopes_cannot_be_escalated,
    admin_changes_are_audited_with_their_actor,
    openapi_document_describes_every_route,
);
