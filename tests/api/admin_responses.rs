//! The admin API's OpenAPI document read the other way (issue 18): every
//! response it documents is one the code produces. `admin.rs` checks that
//! every route is in the document; this test takes every (method, path,
//! status) the live document at `/admin/v1/openapi.json` lists and, for
//! each, runs a recipe that makes that operation answer that status over
//! real HTTP. A documented status without a recipe fails the test (a new
//! one needs a way to produce it), and so does a recipe for a status the
//! document does not list (the table stays honest). Where a response's
//! description names several causes, each has a recipe of its own.
//!
//! Two recipes put the database in the state a race leaves, as the race
//! itself cannot be timed from outside: an `Idempotency-Key` whose first
//! request is still running (its record with status 0, as
//! `admin_idempotency` holds it until the answer is kept), and no
//! pre-published signing key (between a scheduled rotation and the
//! publication of the new next key).
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use authd::crypto::MasterKey;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, TestApp, authorize_query, cc_token, execute_sql, on_both_backends, pkce, spawn_app_on,
    test_database,
};

/// Where the admin API's paths start; the document's paths include it.
const PREFIX: &str = "/admin/v1";

/// A user id no user has.
const NOBODY: &str = "00000000-0000-4000-8000-000000000000";

/// One entry of [`OPERATIONS`].
type Operation = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
);

/// Every operation: method, path as documented (without [`PREFIX`]), a
/// path that reaches it, the scope it needs (`None`: no token), and a JSON
/// body its extractors accept. The 401 and 403 recipes are made from this
/// list. Where an operation takes a body they send one it refuses (not
/// JSON, as `text/plain`): who may call is decided before the body is read
/// (`Authorized<S, T>`), so the answer is still 401 or 403, never a 415 or
/// 400 about a body the caller was not allowed to send.
const OPERATIONS: &[Operation] = &[
    ("GET", "/openapi.json", "/openapi.json", None, None),
    (
        "GET",
        "/clients",
        "/clients",
        Some("admin:clients:read"),
        None,
    ),
    (
        "POST",
        "/clients",
        "/clients",
        Some("admin:clients:write"),
        Some(r#"{"name": "x"}"#),
    ),
    (
        "GET",
        "/clients/{id}",
        "/clients/x",
        Some("admin:clients:read"),
        None,
    ),
    (
        "PATCH",
        "/clients/{id}",
        "/clients/x",
        Some("admin:clients:write"),
        Some(r#"{}"#),
    ),
    (
        "DELETE",
        "/clients/{id}",
        "/clients/x",
        Some("admin:clients:write"),
        None,
    ),
    (
        "POST",
        "/clients/{id}/secret",
        "/clients/x/secret",
        Some("admin:clients:write"),
        None,
    ),
    ("GET", "/users", "/users", Some("admin:users:read"), None),
    (
        "POST",
        "/users",
        "/users",
        Some("admin:users:write"),
        Some(r#"{"username": "x"}"#),
    ),
    (
        "GET",
        "/users/{id}",
        "/users/x",
        Some("admin:users:read"),
        None,
    ),
    (
        "PATCH",
        "/users/{id}",
        "/users/x",
        Some("admin:users:write"),
        Some(r#"{}"#),
    ),
    (
        "POST",
        "/users/{id}/disable",
        "/users/x/disable",
        Some("admin:users:write"),
        None,
    ),
    (
        "POST",
        "/users/{id}/enable",
        "/users/x/enable",
        Some("admin:users:write"),
        None,
    ),
    (
        "DELETE",
        "/users/{id}/sessions",
        "/users/x/sessions",
        Some("admin:users:write"),
        None,
    ),
    (
        "PUT",
        "/users/{id}/password",
        "/users/x/password",
        Some("admin:users:write"),
        Some(r#"{"password": "long enough"}"#),
    ),
    (
        "GET",
        "/users/{id}/consents",
        "/users/x/consents",
        Some("admin:users:read"),
        None,
    ),
    (
        "DELETE",
        "/users/{id}/consents/{client_id}",
        "/users/x/consents/y",
        Some("admin:users:write"),
        None,
    ),
    ("GET", "/keys", "/keys", Some("admin:keys:read"), None),
    (
        "POST",
        "/keys/rotate",
        "/keys/rotate",
        Some("admin:keys:write"),
        None,
    ),
    (
        "POST",
        "/keys/{kid}/revoke",
        "/keys/x/revoke",
        Some("admin:keys:write"),
        None,
    ),
    (
        "GET",
        "/master-key",
        "/master-key",
        Some("admin:keys:read"),
        None,
    ),
    ("GET", "/apis", "/apis", Some("admin:apis:read"), None),
    (
        "POST",
        "/apis",
        "/apis",
        Some("admin:apis:write"),
        Some(r#"{"identifier": "https://x.example", "name": "x", "scopes": []}"#),
    ),
    (
        "GET",
        "/apis/{id}",
        "/apis/x",
        Some("admin:apis:read"),
        None,
    ),
    (
        "PATCH",
        "/apis/{id}",
        "/apis/x",
        Some("admin:apis:write"),
        Some(r#"{}"#),
    ),
    (
        "DELETE",
        "/apis/{id}",
        "/apis/x",
        Some("admin:apis:write"),
        None,
    ),
    ("GET", "/roles", "/roles", Some("admin:apis:read"), None),
    (
        "POST",
        "/roles",
        "/roles",
        Some("admin:apis:write"),
        Some(r#"{"name": "x", "scopes": []}"#),
    ),
    (
        "GET",
        "/roles/{name}",
        "/roles/x",
        Some("admin:apis:read"),
        None,
    ),
    (
        "PATCH",
        "/roles/{name}",
        "/roles/x",
        Some("admin:apis:write"),
        Some(r#"{"scopes": []}"#),
    ),
    (
        "DELETE",
        "/roles/{name}",
        "/roles/x",
        Some("admin:apis:write"),
        None,
    ),
    ("GET", "/groups", "/groups", Some("admin:apis:read"), None),
    (
        "POST",
        "/groups",
        "/groups",
        Some("admin:apis:write"),
        Some(r#"{"name": "x"}"#),
    ),
    (
        "GET",
        "/groups/{name}",
        "/groups/x",
        Some("admin:apis:read"),
        None,
    ),
    (
        "DELETE",
        "/groups/{name}",
        "/groups/x",
        Some("admin:apis:write"),
        None,
    ),
    (
        "PUT",
        "/groups/{group}/members/{user}",
        "/groups/x/members/y",
        Some("admin:apis:write"),
        None,
    ),
    (
        "DELETE",
        "/groups/{group}/members/{user}",
        "/groups/x/members/y",
        Some("admin:apis:write"),
        None,
    ),
    (
        "PUT",
        "/groups/{group}/roles/{role}",
        "/groups/x/roles/y",
        Some("admin:apis:write"),
        None,
    ),
    (
        "DELETE",
        "/groups/{group}/roles/{role}",
        "/groups/x/roles/y",
        Some("admin:apis:write"),
        None,
    ),
    (
        "PUT",
        "/users/{user}/roles/{role}",
        "/users/x/roles/y",
        Some("admin:apis:write"),
        None,
    ),
    (
        "DELETE",
        "/users/{user}/roles/{role}",
        "/users/x/roles/y",
        Some("admin:apis:write"),
        None,
    ),
    (
        "GET",
        "/users/{id}/permissions",
        "/users/x/permissions",
        Some("admin:apis:read"),
        None,
    ),
    (
        "POST",
        "/registration-tokens",
        "/registration-tokens",
        Some("admin:registration:write"),
        Some(r#"{}"#),
    ),
    (
        "GET",
        "/registration-tokens",
        "/registration-tokens",
        Some("admin:registration:write"),
        None,
    ),
    (
        "DELETE",
        "/registration-tokens/{id}",
        "/registration-tokens/x",
        Some("admin:registration:write"),
        None,
    ),
];

/// An operation's documented response: method (upper case), path without
/// [`PREFIX`], status.
type Triple = (String, String, u16);

/// An answer, read whole.
struct Got {
    status: u16,
    headers: HeaderMap,
    /// The body as JSON (`null` when empty or not JSON).
    body: Value,
}

impl Got {
    async fn of(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a body");
        Self {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body of a success the recipe builds on (its own set-up).
    fn success(self, status: u16, what: &str) -> Value {
        assert_eq!(self.status, status, "{what}: {}", self.body);
        self.body
    }

    fn etag(&self) -> String {
        self.header("etag").expect("an ETag").to_owned()
    }
}

/// A body in a failure message: its start.
fn short(body: &Value) -> String {
    let text = body.to_string();
    match text.char_indices().nth(300) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

type Run = Box<dyn Fn(Arc<Ctx>) -> Pin<Box<dyn Future<Output = Got>>>>;

/// A way to make one operation answer one documented status.
struct Recipe {
    method: &'static str,
    path: &'static str,
    status: u16,
    /// The problem `type` an error answer must have (its last part).
    kind: Option<&'static str>,
    run: Run,
}

fn recipe<F, Fut>(method: &'static str, path: &'static str, status: u16, run: F) -> Recipe
where
    F: Fn(Arc<Ctx>) -> Fut + 'static,
    Fut: Future<Output = Got> + 'static,
{
    Recipe {
        method,
        path,
        status,
        kind: None,
        run: Box::new(move |ctx| Box::pin(run(ctx))),
    }
}

impl Recipe {
    fn kind(mut self, kind: &'static str) -> Self {
        self.kind = Some(kind);
        self
    }

    fn triple(&self) -> Triple {
        (self.method.to_owned(), self.path.to_owned(), self.status)
    }

    /// Why `got` is not what this recipe promises, if it is not.
    fn mismatch(&self, got: &Got) -> Option<String> {
        if got.status != self.status {
            return Some(format!("answered {}: {}", got.status, short(&got.body)));
        }
        let problem = got.header("content-type") == Some("application/problem+json");
        if self.status < 400 {
            return problem.then(|| format!("a success as a problem: {}", short(&got.body)));
        }
        if !problem {
            return Some(format!(
                "content-type {:?}, not application/problem+json",
                got.header("content-type")
            ));
        }
        // RFC 9457 §3.1: type, title, status (and this API's detail and
        // request id, the one its header carries).
        let body = &got.body;
        let kind = body["type"].as_str().unwrap_or_default();
        if !kind.starts_with("urn:authd:problem:")
            || body["title"].as_str().unwrap_or_default().is_empty()
            || body["status"] != self.status
            || body["detail"].as_str().unwrap_or_default().is_empty()
            || body["request_id"].as_str() != got.header("x-request-id")
        {
            return Some(format!("not an RFC 9457 problem of this status: {body}"));
        }
        if let Some(expected) = self.kind
            && kind != format!("urn:authd:problem:{expected}")
        {
            return Some(format!("a problem of type {kind}, not {expected}: {body}"));
        }
        // RFC 6750 §3: a challenge with 401 and 403 insufficient_scope.
        if (self.status == 401 || self.kind == Some("insufficient_scope"))
            && !got
                .header("www-authenticate")
                .is_some_and(|c| c.starts_with(r#"Bearer realm="authd-admin""#))
        {
            return Some("no WWW-Authenticate challenge".into());
        }
        None
    }
}

/// What the recipes share: the app, tokens, and a counter for names.
struct Ctx {
    app: TestApp,
    backend: Backend,
    /// Every admin scope.
    token: String,
    /// For each scope an operation needs: every admin scope but that one.
    lacking: BTreeMap<&'static str, String>,
    counter: AtomicU32,
}

impl Ctx {
    async fn new(app: TestApp, backend: Backend) -> Self {
        let all: Vec<&str> = authd::domain::api::ADMIN_SCOPES
            .iter()
            .map(|(s, _)| *s)
            .collect();
        let token = token_with(&app, &all).await;
        let mut lacking = BTreeMap::new();
        for scope in OPERATIONS.iter().filter_map(|op| op.3) {
            if lacking.contains_key(scope) {
                continue;
            }
            let others: Vec<&str> = all.iter().copied().filter(|s| s != &scope).collect();
            lacking.insert(scope, token_with(&app, &others).await);
        }
        Self {
            app,
            backend,
            token,
            lacking,
            counter: AtomicU32::new(0),
        }
    }

    fn url(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}{PREFIX}{path}",
            self.app.admin_port.expect("the admin API is served")
        )
    }

    /// A request with a token holding every admin scope but
    /// `admin:keys:write`.
    fn without_keys_write(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.app
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.lacking["admin:keys:write"])
    }

    /// A request with the token holding every admin scope.
    fn admin(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.app
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
    }

    async fn go(&self, request: reqwest::RequestBuilder) -> Got {
        Got::of(request.send().await.expect("the admin API answers")).await
    }

    /// `method path` with every admin scope, and `body` as JSON if any.
    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Got {
        let request = self.admin(method, path);
        self.go(match body {
            Some(body) => request.json(&body),
            None => request,
        })
        .await
    }

    /// `method path` with every admin scope and `body` as `content_type`.
    async fn raw(&self, method: Method, path: &str, content_type: &str, body: &str) -> Got {
        self.go(self
            .admin(method, path)
            .header("content-type", content_type)
            .body(body.to_owned()))
            .await
    }

    /// A fresh name: `prefix` and a number.
    fn unique(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.counter.fetch_add(1, Ordering::Relaxed))
    }

    /// Registers a client; its body as created.
    async fn client(&self, body: Value) -> Value {
        self.send(Method::POST, "/clients", Some(body))
            .await
            .success(201, "create a client")
    }

    /// A new machine client's id.
    async fn machine(&self) -> String {
        let name = self.unique("client ");
        self.client(json!({ "name": name }))
            .await
            .get("client_id")
            .and_then(Value::as_str)
            .expect("a client_id")
            .to_owned()
    }

    /// A new machine client holding `admin:keys:write` (which the tokens
    /// in `lacking["admin:keys:write"]` do not hold).
    async fn keys_admin(&self) -> String {
        let name = self.unique("keys admin ");
        self.client(json!({ "name": name, "scopes": ["admin:keys:write"] }))
            .await["client_id"]
            .as_str()
            .expect("a client_id")
            .to_owned()
    }

    /// A new user's id (no password).
    async fn user(&self) -> String {
        let username = self.unique("user");
        self.send(
            Method::POST,
            "/users",
            Some(json!({ "username": username })),
        )
        .await
        .success(201, "create a user")["id"]
            .as_str()
            .expect("an id")
            .to_owned()
    }

    /// A new API with `n` scopes: its id and scope names.
    async fn api(&self, n: usize) -> (String, Vec<String>) {
        let tag = self.unique("api");
        let scopes: Vec<String> = (0..n).map(|i| format!("{tag}:s{i}")).collect();
        let body = json!({
            "identifier": format!("https://{tag}.example"),
            "name": tag,
            "scopes": scopes.iter().map(|s| json!({ "scope": s })).collect::<Vec<_>>(),
        });
        let api = self
            .send(Method::POST, "/apis", Some(body))
            .await
            .success(201, "create an API");
        (api["id"].as_str().expect("an id").to_owned(), scopes)
    }

    /// A new role holding `scope`.
    async fn role_with(&self, scope: &str) -> String {
        let name = self.unique("role");
        self.send(
            Method::POST,
            "/roles",
            Some(json!({ "name": name, "scopes": [scope] })),
        )
        .await
        .success(201, "create a role");
        name
    }

    /// A new role holding the scope of a new API.
    async fn role(&self) -> String {
        let (_, scopes) = self.api(1).await;
        self.role_with(&scopes[0]).await
    }

    async fn group(&self) -> String {
        let name = self.unique("group");
        self.send(Method::POST, "/groups", Some(json!({ "name": name })))
            .await
            .success(201, "create a group");
        name
    }

    /// The built-in API's id.
    async fn admin_api(&self) -> String {
        let page = self
            .send(Method::GET, "/apis?limit=200", None)
            .await
            .success(200, "list APIs");
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|api| api["identifier"] == "urn:authd:admin")
            .and_then(|api| api["id"].as_str())
            .expect("the built-in API is listed")
            .to_owned()
    }

    /// Rotates with force (a new active key that signed none of the tests'
    /// tokens): its kid.
    async fn fresh_active_key(&self) -> String {
        self.send(Method::POST, "/keys/rotate", Some(json!({ "force": true })))
            .await
            .success(200, "rotate the keys")["activated"]
            .as_str()
            .expect("the activated kid")
            .to_owned()
    }

    /// The database as it is while the first request under an
    /// `Idempotency-Key` runs: its record, for the resource `resource_id`,
    /// without an answer yet.
    async fn first_request_still_running(&self, resource_id: &str) {
        execute_sql(
            &self.app,
            self.backend,
            &format!(
                "UPDATE admin_idempotency SET status = 0, response_sealed = NULL \
                 WHERE resource_id = '{resource_id}'"
            ),
        )
        .await;
    }
}

/// An app serving the admin API; its key schedule does not run while the
/// test does (one recipe removes the next key and must find it absent).
async fn admin_app(backend: Backend) -> Option<TestApp> {
    let database = Arc::new(test_database(backend).await?);
    Some(
        spawn_app_on(database, MasterKey::generate(), |config| {
            config.admin_bind = Some("127.0.0.1:0".parse().unwrap());
            config.key_check_interval = std::time::Duration::from_secs(3600);
        })
        .await
        .expect("app starts"),
    )
}

/// A token of a new machine client holding `scopes`.
async fn token_with(app: &TestApp, scopes: &[&str]) -> String {
    let (id, secret) = app.machine_client(scopes).await;
    cc_token(app, &id, &secret).await
}

/// Every (method, path, status) the document lists.
fn documented(document: &Value) -> BTreeSet<Triple> {
    let mut triples = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        let path = path
            .strip_prefix(PREFIX)
            .unwrap_or_else(|| panic!("{path} is not under {PREFIX}"));
        for (method, operation) in item.as_object().expect("a path item") {
            let Some(responses) = operation["responses"].as_object() else {
                continue;
            };
            for status in responses.keys() {
                let status: u16 = status
                    .parse()
                    .unwrap_or_else(|_| panic!("{method} {path}: status {status} is not a code"));
                triples.insert((method.to_uppercase(), path.to_owned(), status));
            }
        }
    }
    triples
}

fn method(name: &str) -> Method {
    Method::from_bytes(name.as_bytes()).expect("an HTTP method")
}

/// 401 without a token and 403 without the scope, for every operation
/// that needs one.
fn refusals() -> Vec<Recipe> {
    let mut recipes = Vec::new();
    for &(verb, path, sample, scope, body) in OPERATIONS {
        let Some(scope) = scope else {
            continue;
        };
        let request = move |c: &Ctx| {
            let request = c.app.http.request(method(verb), c.url(sample));
            match body {
                Some(_) => request.header("content-type", "text/plain").body(NOT_JSON),
                None => request,
            }
        };
        recipes.push(
            recipe(
                verb,
                path,
                401,
                move |c| async move { c.go(request(&c)).await },
            )
            .kind("unauthorized"),
        );
        recipes.push(
            recipe(verb, path, 403, move |c| async move {
                c.go(request(&c).bearer_auth(&c.lacking[scope])).await
            })
            .kind("insufficient_scope"),
        );
    }
    recipes
}

const NOT_JSON: &str = "{not json";

fn clients() -> Vec<Recipe> {
    vec![
        recipe("GET", "/clients", 200, |c| async move {
            c.machine().await;
            c.send(Method::GET, "/clients?limit=1", None).await
        }),
        recipe("GET", "/clients", 400, |c| async move {
            c.send(Method::GET, "/clients?limit=0", None).await
        })
        .kind("invalid_request"),
        recipe("POST", "/clients", 201, |c| async move {
            c.send(Method::POST, "/clients", Some(json!({"name": "Billing"})))
                .await
        }),
        recipe("POST", "/clients", 400, |c| async move {
            c.raw(Method::POST, "/clients", "application/json", NOT_JSON)
                .await
        })
        .kind("invalid_request"),
        recipe("POST", "/clients", 415, |c| async move {
            c.raw(Method::POST, "/clients", "text/plain", r#"{"name": "x"}"#)
                .await
        })
        .kind("unsupported_media_type"),
        // An admin scope the caller lacks.
        recipe("POST", "/clients", 403, |c| async move {
            c.go(c
                .without_keys_write(Method::POST, "/clients")
                .json(&json!({"name": "x", "scopes": ["admin:keys:write"]})))
                .await
        })
        .kind("insufficient_scope"),
        recipe("POST", "/clients", 422, |c| async move {
            c.send(Method::POST, "/clients", Some(json!({"name": ""})))
                .await
        })
        .kind("invalid_client_metadata"),
        // An Idempotency-Key used for another body.
        recipe("POST", "/clients", 422, |c| async move {
            let create = |name: &str| {
                c.admin(Method::POST, "/clients")
                    .header("idempotency-key", "reused-for-another")
                    .json(&json!({ "name": name }))
            };
            c.go(create("first")).await.success(201, "first create");
            c.go(create("second")).await
        })
        .kind("idempotency_key_reused"),
        // The first request with this Idempotency-Key still running.
        recipe("POST", "/clients", 409, |c| async move {
            let create = || {
                c.admin(Method::POST, "/clients")
                    .header("idempotency-key", "still-running")
                    .json(&json!({"name": "Nightly export"}))
            };
            let first = c.go(create()).await.success(201, "first create");
            c.first_request_still_running(first["client_id"].as_str().unwrap())
                .await;
            c.go(create()).await
        })
        .kind("conflict"),
        recipe("GET", "/clients/{id}", 200, |c| async move {
            let id = c.machine().await;
            c.send(Method::GET, &format!("/clients/{id}"), None).await
        }),
        recipe("GET", "/clients/{id}", 404, |c| async move {
            c.send(Method::GET, "/clients/no-such-client", None).await
        })
        .kind("not_found"),
        recipe("PATCH", "/clients/{id}", 200, |c| async move {
            let id = c.machine().await;
            c.send(
                Method::PATCH,
                &format!("/clients/{id}"),
                Some(json!({"name": "Renamed"})),
            )
            .await
        }),
        recipe("PATCH", "/clients/{id}", 400, |c| async move {
            let id = c.machine().await;
            c.send(
                Method::PATCH,
                &format!("/clients/{id}"),
                Some(json!({"public": true})),
            )
            .await
        })
        .kind("invalid_request"),
        recipe("PATCH", "/clients/{id}", 415, |c| async move {
            let id = c.machine().await;
            c.raw(
                Method::PATCH,
                &format!("/clients/{id}"),
                "text/plain",
                r#"{"name": "x"}"#,
            )
            .await
        })
        .kind("unsupported_media_type"),
        // A client holding an admin scope the caller lacks.
        recipe("PATCH", "/clients/{id}", 403, |c| async move {
            let id = c.keys_admin().await;
            c.go(c
                .without_keys_write(Method::PATCH, &format!("/clients/{id}"))
                .json(&json!({"name": "mine"})))
                .await
        })
        .kind("insufficient_scope"),
        recipe("PATCH", "/clients/{id}", 404, |c| async move {
            c.send(
                Method::PATCH,
                "/clients/no-such-client",
                Some(json!({"name": "x"})),
            )
            .await
        })
        .kind("not_found"),
        // An admin scope is only for new clients.
        recipe("PATCH", "/clients/{id}", 409, |c| async move {
            let id = c.machine().await;
            c.send(
                Method::PATCH,
                &format!("/clients/{id}"),
                Some(json!({"scopes": ["admin:clients:read"]})),
            )
            .await
        })
        .kind("conflict"),
        recipe("PATCH", "/clients/{id}", 412, |c| async move {
            let id = c.machine().await;
            let path = format!("/clients/{id}");
            let stale = c.send(Method::GET, &path, None).await.etag();
            c.send(Method::PATCH, &path, Some(json!({"name": "Changed"})))
                .await
                .success(200, "change the client");
            c.go(c
                .admin(Method::PATCH, &path)
                .header("if-match", stale)
                .json(&json!({"name": "Lost"})))
                .await
        })
        .kind("precondition_failed"),
        recipe("PATCH", "/clients/{id}", 422, |c| async move {
            let id = c.machine().await;
            c.send(
                Method::PATCH,
                &format!("/clients/{id}"),
                Some(json!({"grant_types": ["authorization_code"]})),
            )
            .await
        })
        .kind("invalid_client_metadata"),
        recipe("DELETE", "/clients/{id}", 204, |c| async move {
            let id = c.machine().await;
            c.send(Method::DELETE, &format!("/clients/{id}"), None)
                .await
        }),
        recipe("DELETE", "/clients/{id}", 403, |c| async move {
            let id = c.keys_admin().await;
            c.go(c.without_keys_write(Method::DELETE, &format!("/clients/{id}")))
                .await
        })
        .kind("insufficient_scope"),
        recipe("DELETE", "/clients/{id}", 404, |c| async move {
            c.send(Method::DELETE, "/clients/no-such-client", None)
                .await
        })
        .kind("not_found"),
        recipe("DELETE", "/clients/{id}", 412, |c| async move {
            let id = c.machine().await;
            let path = format!("/clients/{id}");
            let stale = c.send(Method::GET, &path, None).await.etag();
            c.send(Method::PATCH, &path, Some(json!({"name": "Changed"})))
                .await
                .success(200, "change the client");
            c.go(c.admin(Method::DELETE, &path).header("if-match", stale))
                .await
        })
        .kind("precondition_failed"),
        recipe("POST", "/clients/{id}/secret", 200, |c| async move {
            let id = c.machine().await;
            c.send(Method::POST, &format!("/clients/{id}/secret"), None)
                .await
        }),
        recipe("POST", "/clients/{id}/secret", 403, |c| async move {
            let id = c.keys_admin().await;
            c.go(c.without_keys_write(Method::POST, &format!("/clients/{id}/secret")))
                .await
        })
        .kind("insufficient_scope"),
        recipe("POST", "/clients/{id}/secret", 404, |c| async move {
            c.send(Method::POST, "/clients/no-such-client/secret", None)
                .await
        })
        .kind("not_found"),
        // A public client has no secret.
        recipe("POST", "/clients/{id}/secret", 409, |c| async move {
            let spa = c
                .client(json!({
                    "name": "SPA", "public": true, "redirect_uris": ["https://spa.example/cb"]
                }))
                .await;
            let id = spa["client_id"].as_str().unwrap();
            c.send(Method::POST, &format!("/clients/{id}/secret"), None)
                .await
        })
        .kind("conflict"),
        // The first rotation with this Idempotency-Key still running.
        recipe("POST", "/clients/{id}/secret", 409, |c| async move {
            let id = c.machine().await;
            let rotate = || {
                c.admin(Method::POST, &format!("/clients/{id}/secret"))
                    .header("idempotency-key", "rotation-still-running")
            };
            c.go(rotate()).await.success(200, "first rotation");
            c.first_request_still_running(&id).await;
            c.go(rotate()).await
        })
        .kind("conflict"),
        // An Idempotency-Key of more than 255 characters.
        recipe("POST", "/clients/{id}/secret", 400, |c| async move {
            let id = c.machine().await;
            c.go(c
                .admin(Method::POST, &format!("/clients/{id}/secret"))
                .header("idempotency-key", "k".repeat(256)))
                .await
        })
        .kind("invalid_request"),
        // The same Idempotency-Key for another client's rotation.
        recipe("POST", "/clients/{id}/secret", 422, |c| async move {
            let rotate = |id: String| {
                c.admin(Method::POST, &format!("/clients/{id}/secret"))
                    .header("idempotency-key", "rotation-reused")
            };
            let first = c.machine().await;
            c.go(rotate(first)).await.success(200, "first rotation");
            let second = c.machine().await;
            c.go(rotate(second)).await
        })
        .kind("idempotency_key_reused"),
    ]
}

fn users() -> Vec<Recipe> {
    vec![
        recipe("GET", "/users", 200, |c| async move {
            c.user().await;
            c.send(Method::GET, "/users?search=user", None).await
        }),
        recipe("GET", "/users", 400, |c| async move {
            c.send(Method::GET, "/users?limit=201", None).await
        })
        .kind("invalid_request"),
        recipe("POST", "/users", 201, |c| async move {
            c.send(
                Method::POST,
                "/users",
                Some(json!({"username": "dana", "password": "a long enough password"})),
            )
            .await
        }),
        recipe("POST", "/users", 400, |c| async move {
            c.raw(Method::POST, "/users", "application/json", NOT_JSON)
                .await
        })
        .kind("invalid_request"),
        recipe("POST", "/users", 409, |c| async move {
            let username = c.unique("taken");
            let create = || {
                c.send(
                    Method::POST,
                    "/users",
                    Some(json!({ "username": username })),
                )
            };
            create().await.success(201, "create the user");
            create().await
        })
        .kind("conflict"),
        recipe("POST", "/users", 415, |c| async move {
            c.raw(Method::POST, "/users", "text/plain", r#"{"username": "x"}"#)
                .await
        })
        .kind("unsupported_media_type"),
        recipe("POST", "/users", 422, |c| async move {
            c.send(
                Method::POST,
                "/users",
                Some(json!({"username": "has space"})),
            )
            .await
        })
        .kind("invalid_user"),
        recipe("GET", "/users/{id}", 200, |c| async move {
            let id = c.user().await;
            c.send(Method::GET, &format!("/users/{id}"), None).await
        }),
        recipe("GET", "/users/{id}", 404, |c| async move {
            c.send(Method::GET, &format!("/users/{NOBODY}"), None).await
        })
        .kind("not_found"),
        recipe("PATCH", "/users/{id}", 200, |c| async move {
            let id = c.user().await;
            c.send(
                Method::PATCH,
                &format!("/users/{id}"),
                Some(json!({"name": "Dana Scully"})),
            )
            .await
        }),
        recipe("PATCH", "/users/{id}", 400, |c| async move {
            let id = c.user().await;
            c.send(
                Method::PATCH,
                &format!("/users/{id}"),
                Some(json!({"username": "other"})),
            )
            .await
        })
        .kind("invalid_request"),
        recipe("PATCH", "/users/{id}", 404, |c| async move {
            c.send(
                Method::PATCH,
                &format!("/users/{NOBODY}"),
                Some(json!({"name": "x"})),
            )
            .await
        })
        .kind("not_found"),
        recipe("PATCH", "/users/{id}", 412, |c| async move {
            let id = c.user().await;
            let path = format!("/users/{id}");
            let stale = c.send(Method::GET, &path, None).await.etag();
            c.send(Method::PATCH, &path, Some(json!({"name": "Changed"})))
                .await
                .success(200, "change the user");
            c.go(c
                .admin(Method::PATCH, &path)
                .header("if-match", stale)
                .json(&json!({"name": "Lost"})))
                .await
        })
        .kind("precondition_failed"),
        recipe("PATCH", "/users/{id}", 415, |c| async move {
            let id = c.user().await;
            c.raw(
                Method::PATCH,
                &format!("/users/{id}"),
                "text/plain",
                r#"{"name": "x"}"#,
            )
            .await
        })
        .kind("unsupported_media_type"),
        recipe("PATCH", "/users/{id}", 422, |c| async move {
            let id = c.user().await;
            c.send(
                Method::PATCH,
                &format!("/users/{id}"),
                Some(json!({"email": "not-an-email"})),
            )
            .await
        })
        .kind("invalid_user"),
        recipe("POST", "/users/{id}/disable", 204, |c| async move {
            let id = c.user().await;
            c.send(Method::POST, &format!("/users/{id}/disable"), None)
                .await
        }),
        recipe("POST", "/users/{id}/disable", 404, |c| async move {
            c.send(Method::POST, &format!("/users/{NOBODY}/disable"), None)
                .await
        })
        .kind("not_found"),
        recipe("POST", "/users/{id}/enable", 204, |c| async move {
            let id = c.user().await;
            c.send(Method::POST, &format!("/users/{id}/disable"), None)
                .await
                .success(204, "disable the user");
            c.send(Method::POST, &format!("/users/{id}/enable"), None)
                .await
        }),
        recipe("POST", "/users/{id}/enable", 404, |c| async move {
            c.send(Method::POST, &format!("/users/{NOBODY}/enable"), None)
                .await
        })
        .kind("not_found"),
        recipe("DELETE", "/users/{id}/sessions", 204, |c| async move {
            let id = c.user().await;
            c.send(Method::DELETE, &format!("/users/{id}/sessions"), None)
                .await
        }),
        recipe("DELETE", "/users/{id}/sessions", 404, |c| async move {
            c.send(Method::DELETE, &format!("/users/{NOBODY}/sessions"), None)
                .await
        })
        .kind("not_found"),
        recipe("PUT", "/users/{id}/password", 204, |c| async move {
            let id = c.user().await;
            c.send(
                Method::PUT,
                &format!("/users/{id}/password"),
                Some(json!({"password": "the truth is out there"})),
            )
            .await
        }),
        recipe("PUT", "/users/{id}/password", 400, |c| async move {
            let id = c.user().await;
            c.raw(
                Method::PUT,
                &format!("/users/{id}/password"),
                "application/json",
                NOT_JSON,
            )
            .await
        })
        .kind("invalid_request"),
        recipe("PUT", "/users/{id}/password", 404, |c| async move {
            c.send(
                Method::PUT,
                &format!("/users/{NOBODY}/password"),
                Some(json!({"password": "the truth is out there"})),
            )
            .await
        })
        .kind("not_found"),
        recipe("PUT", "/users/{id}/password", 415, |c| async move {
            let id = c.user().await;
            c.raw(
                Method::PUT,
                &format!("/users/{id}/password"),
                "text/plain",
                r#"{"password": "the truth is out there"}"#,
            )
            .await
        })
        .kind("unsupported_media_type"),
        recipe("PUT", "/users/{id}/password", 422, |c| async move {
            let id = c.user().await;
            c.send(
                Method::PUT,
                &format!("/users/{id}/password"),
                Some(json!({"password": "short"})),
            )
            .await
        })
        .kind("invalid_user"),
        recipe("GET", "/users/{id}/consents", 200, |c| async move {
            let id = c.user().await;
            c.send(Method::GET, &format!("/users/{id}/consents"), None)
                .await
        }),
        recipe("GET", "/users/{id}/consents", 404, |c| async move {
            c.send(Method::GET, &format!("/users/{NOBODY}/consents"), None)
                .await
        })
        .kind("not_found"),
        // A consent given by signing in.
        recipe(
            "DELETE",
            "/users/{id}/consents/{client_id}",
            204,
            |c| async move {
                let client = c.app.web_client(false, &["openid"]).await;
                let username = c.unique("consenting");
                let id = c.app.user(&username).await;
                let done = c
                    .app
                    .browser()
                    .sign_in(&authorize_query(&client, &pkce(), &[]), &username)
                    .await;
                assert!(done.contains("code="), "signed in: {done}");
                c.send(
                    Method::DELETE,
                    &format!("/users/{id}/consents/{}", client.id),
                    None,
                )
                .await
            },
        ),
        // No such consent.
        recipe(
            "DELETE",
            "/users/{id}/consents/{client_id}",
            404,
            |c| async move {
                let id = c.user().await;
                let client = c.machine().await;
                c.send(
                    Method::DELETE,
                    &format!("/users/{id}/consents/{client}"),
                    None,
                )
                .await
            },
        )
        .kind("not_found"),
        // No such user.
        recipe(
            "DELETE",
            "/users/{id}/consents/{client_id}",
            404,
            |c| async move {
                let client = c.machine().await;
                c.send(
                    Method::DELETE,
                    &format!("/users/{NOBODY}/consents/{client}"),
                    None,
                )
                .await
            },
        )
        .kind("not_found"),
    ]
}

fn keys() -> Vec<Recipe> {
    vec![
        recipe("GET", "/keys", 200, |c| async move {
            c.send(Method::GET, "/keys", None).await
        }),
        recipe("GET", "/master-key", 200, |c| async move {
            c.send(Method::GET, "/master-key", None).await
        }),
        recipe("POST", "/keys/rotate", 200, |c| async move {
            c.send(Method::POST, "/keys/rotate", Some(json!({"force": true})))
                .await
        }),
        recipe("POST", "/keys/rotate", 400, |c| async move {
            c.raw(
                Method::POST,
                "/keys/rotate",
                "application/json",
                r#"{"force": "yes"}"#,
            )
            .await
        })
        .kind("invalid_request"),
        // No pre-published next key: the database as it is between a
        // scheduled rotation and the publication of the new next key.
        recipe("POST", "/keys/rotate", 409, |c| async move {
            execute_sql(
                &c.app,
                c.backend,
                "DELETE FROM signing_keys WHERE state = 'next'",
            )
            .await;
            c.send(Method::POST, "/keys/rotate", None).await
        })
        .kind("conflict"),
        recipe("POST", "/keys/{kid}/revoke", 200, |c| async move {
            let kid = c.fresh_active_key().await;
            c.send(Method::POST, &format!("/keys/{kid}/revoke"), None)
                .await
        }),
        recipe("POST", "/keys/{kid}/revoke", 404, |c| async move {
            c.send(Method::POST, "/keys/no-such-kid/revoke", None).await
        })
        .kind("not_found"),
        recipe("POST", "/keys/{kid}/revoke", 409, |c| async move {
            let kid = c.fresh_active_key().await;
            let path = format!("/keys/{kid}/revoke");
            c.send(Method::POST, &path, None)
                .await
                .success(200, "revoke the key");
            c.send(Method::POST, &path, None).await
        })
        .kind("conflict"),
    ]
}

fn apis() -> Vec<Recipe> {
    vec![
        recipe("GET", "/apis", 200, |c| async move {
            c.send(Method::GET, "/apis", None).await
        }),
        recipe("GET", "/apis", 400, |c| async move {
            c.send(Method::GET, "/apis?cursor=bm90IGEgY3Vyc29y", None)
                .await
        })
        .kind("invalid_request"),
        recipe("POST", "/apis", 201, |c| async move {
            c.send(
                Method::POST,
                "/apis",
                Some(json!({
                    "identifier": "https://invoices.example", "name": "Invoices",
                    "scopes": [{"scope": "invoices:read", "description": "Read invoices"}]
                })),
            )
            .await
        }),
        recipe("POST", "/apis", 400, |c| async move {
            c.raw(Method::POST, "/apis", "application/json", NOT_JSON)
                .await
        })
        .kind("invalid_request"),
        // The identifier is taken.
        recipe("POST", "/apis", 409, |c| async move {
            let tag = c.unique("taken");
            let create = |scope: &str| {
                c.send(
                    Method::POST,
                    "/apis",
                    Some(json!({
                        "identifier": format!("https://{tag}.example"), "name": "x",
                        "scopes": [{"scope": scope}]
                    })),
                )
            };
            create(&format!("{tag}:a"))
                .await
                .success(201, "create the API");
            create(&format!("{tag}:b")).await
        })
        .kind("conflict"),
        // A scope is taken.
        recipe("POST", "/apis", 409, |c| async move {
            let (_, scopes) = c.api(1).await;
            c.send(
                Method::POST,
                "/apis",
                Some(json!({
                    "identifier": "https://scope-thief.example", "name": "x",
                    "scopes": [{"scope": scopes[0]}]
                })),
            )
            .await
        })
        .kind("conflict"),
        recipe("POST", "/apis", 415, |c| async move {
            c.raw(Method::POST, "/apis", "text/plain", r#"{"name": "x"}"#)
                .await
        })
        .kind("unsupported_media_type"),
        recipe("POST", "/apis", 422, |c| async move {
            c.send(
                Method::POST,
                "/apis",
                Some(json!({"identifier": "not a uri", "name": "x", "scopes": [{"scope": "x:y"}]})),
            )
            .await
        })
        .kind("invalid_value"),
        recipe("GET", "/apis/{id}", 200, |c| async move {
            let (id, _) = c.api(1).await;
            c.send(Method::GET, &format!("/apis/{id}"), None).await
        }),
        recipe("GET", "/apis/{id}", 404, |c| async move {
            c.send(Method::GET, &format!("/apis/{NOBODY}"), None).await
        })
        .kind("not_found"),
        recipe("PATCH", "/apis/{id}", 200, |c| async move {
            let (id, _) = c.api(1).await;
            c.send(
                Method::PATCH,
                &format!("/apis/{id}"),
                Some(json!({"name": "Renamed"})),
            )
            .await
        }),
        recipe("PATCH", "/apis/{id}", 400, |c| async move {
            let (id, _) = c.api(1).await;
            c.send(
                Method::PATCH,
                &format!("/apis/{id}"),
                Some(json!({"identifier": "https://other.example"})),
            )
            .await
        })
        .kind("invalid_request"),
        // The built-in API.
        recipe("PATCH", "/apis/{id}", 403, |c| async move {
            let id = c.admin_api().await;
            c.send(
                Method::PATCH,
                &format!("/apis/{id}"),
                Some(json!({"name": "mine"})),
            )
            .await
        })
        .kind("built_in"),
        recipe("PATCH", "/apis/{id}", 404, |c| async move {
            c.send(
                Method::PATCH,
                &format!("/apis/{NOBODY}"),
                Some(json!({"name": "x"})),
            )
            .await
        })
        .kind("not_found"),
        // A scope a role holds, removed without force.
        recipe("PATCH", "/apis/{id}", 409, |c| async move {
            let (id, scopes) = c.api(2).await;
            c.role_with(&scopes[0]).await;
            c.send(
                Method::PATCH,
                &format!("/apis/{id}"),
                Some(json!({"scopes": [{"scope": scopes[1]}]})),
            )
            .await
        })
        .kind("conflict"),
        // A scope of another API.
        recipe("PATCH", "/apis/{id}", 409, |c| async move {
            let (id, mine) = c.api(1).await;
            let (_, theirs) = c.api(1).await;
            c.send(
                Method::PATCH,
                &format!("/apis/{id}"),
                Some(json!({"scopes": [{"scope": mine[0]}, {"scope": theirs[0]}]})),
            )
            .await
        })
        .kind("conflict"),
        recipe("PATCH", "/apis/{id}", 412, |c| async move {
            let (id, _) = c.api(1).await;
            let path = format!("/apis/{id}");
            let stale = c.send(Method::GET, &path, None).await.etag();
            c.send(Method::PATCH, &path, Some(json!({"name": "Changed"})))
                .await
                .success(200, "change the API");
            c.go(c
                .admin(Method::PATCH, &path)
                .header("if-match", stale)
                .json(&json!({"name": "Lost"})))
                .await
        })
        .kind("precondition_failed"),
        recipe("PATCH", "/apis/{id}", 415, |c| async move {
            let (id, _) = c.api(1).await;
            c.raw(
                Method::PATCH,
                &format!("/apis/{id}"),
                "text/plain",
                r#"{"name": "x"}"#,
            )
            .await
        })
        .kind("unsupported_media_type"),
        recipe("PATCH", "/apis/{id}", 422, |c| async move {
            let (id, _) = c.api(1).await;
            c.send(
                Method::PATCH,
                &format!("/apis/{id}"),
                Some(json!({"access_token_ttl": 5})),
            )
            .await
        })
        .kind("invalid_value"),
        recipe("DELETE", "/apis/{id}", 204, |c| async move {
            let (id, _) = c.api(1).await;
            c.send(Method::DELETE, &format!("/apis/{id}"), None).await
        }),
        recipe("DELETE", "/apis/{id}", 400, |c| async move {
            let (id, _) = c.api(1).await;
            c.send(Method::DELETE, &format!("/apis/{id}?force=maybe"), None)
                .await
        })
        .kind("invalid_request"),
        // The built-in API, even with force.
        recipe("DELETE", "/apis/{id}", 403, |c| async move {
            let id = c.admin_api().await;
            c.send(Method::DELETE, &format!("/apis/{id}?force=true"), None)
                .await
        })
        .kind("built_in"),
        recipe("DELETE", "/apis/{id}", 404, |c| async move {
            c.send(Method::DELETE, &format!("/apis/{NOBODY}"), None)
                .await
        })
        .kind("not_found"),
        recipe("DELETE", "/apis/{id}", 409, |c| async move {
            let (id, scopes) = c.api(1).await;
            c.role_with(&scopes[0]).await;
            c.send(Method::DELETE, &format!("/apis/{id}"), None).await
        })
        .kind("conflict"),
    ]
}

fn roles() -> Vec<Recipe> {
    vec![
        recipe("GET", "/roles", 200, |c| async move {
            c.role().await;
            c.send(Method::GET, "/roles?limit=1", None).await
        }),
        recipe("GET", "/roles", 400, |c| async move {
            c.send(Method::GET, "/roles?limit=0", None).await
        })
        .kind("invalid_request"),
        recipe("POST", "/roles", 201, |c| async move {
            let (_, scopes) = c.api(1).await;
            c.send(
                Method::POST,
                "/roles",
                Some(json!({"name": "writer", "scopes": scopes})),
            )
            .await
        }),
        recipe("POST", "/roles", 400, |c| async move {
            c.raw(Method::POST, "/roles", "application/json", NOT_JSON)
                .await
        })
        .kind("invalid_request"),
        recipe("POST", "/roles", 409, |c| async move {
            let (_, scopes) = c.api(1).await;
            let name = c.role_with(&scopes[0]).await;
            c.send(
                Method::POST,
                "/roles",
                Some(json!({"name": name, "scopes": scopes})),
            )
            .await
        })
        .kind("conflict"),
        recipe("POST", "/roles", 415, |c| async move {
            c.raw(Method::POST, "/roles", "text/plain", r#"{"name": "x"}"#)
                .await
        })
        .kind("unsupported_media_type"),
        recipe("POST", "/roles", 422, |c| async move {
            c.send(
                Method::POST,
                "/roles",
                Some(json!({"name": "sneaky", "scopes": ["admin:keys:write"]})),
            )
            .await
        })
        .kind("invalid_value"),
        recipe("GET", "/roles/{name}", 200, |c| async move {
            let name = c.role().await;
            c.send(Method::GET, &format!("/roles/{name}"), None).await
        }),
        recipe("GET", "/roles/{name}", 404, |c| async move {
            c.send(Method::GET, "/roles/nobody", None).await
        })
        .kind("not_found"),
        recipe("PATCH", "/roles/{name}", 200, |c| async move {
            let (_, scopes) = c.api(2).await;
            let name = c.role_with(&scopes[0]).await;
            c.send(
                Method::PATCH,
                &format!("/roles/{name}"),
                Some(json!({ "scopes": scopes })),
            )
            .await
        }),
        recipe("PATCH", "/roles/{name}", 400, |c| async move {
            let name = c.role().await;
            c.send(
                Method::PATCH,
                &format!("/roles/{name}"),
                Some(json!({"name": "other"})),
            )
            .await
        })
        .kind("invalid_request"),
        recipe("PATCH", "/roles/{name}", 404, |c| async move {
            let (_, scopes) = c.api(1).await;
            c.send(
                Method::PATCH,
                "/roles/nobody",
                Some(json!({ "scopes": scopes })),
            )
            .await
        })
        .kind("not_found"),
        recipe("PATCH", "/roles/{name}", 412, |c| async move {
            let (_, scopes) = c.api(2).await;
            let name = c.role_with(&scopes[0]).await;
            let path = format!("/roles/{name}");
            let stale = c.send(Method::GET, &path, None).await.etag();
            c.send(Method::PATCH, &path, Some(json!({ "scopes": scopes })))
                .await
                .success(200, "change the role");
            c.go(c
                .admin(Method::PATCH, &path)
                .header("if-match", stale)
                .json(&json!({"scopes": [scopes[0]]})))
                .await
        })
        .kind("precondition_failed"),
        recipe("PATCH", "/roles/{name}", 415, |c| async move {
            let name = c.role().await;
            c.raw(
                Method::PATCH,
                &format!("/roles/{name}"),
                "text/plain",
                r#"{"scopes": []}"#,
            )
            .await
        })
        .kind("unsupported_media_type"),
        recipe("PATCH", "/roles/{name}", 422, |c| async move {
            let name = c.role().await;
            c.send(
                Method::PATCH,
                &format!("/roles/{name}"),
                Some(json!({"scopes": ["nobody:defines"]})),
            )
            .await
        })
        .kind("invalid_value"),
        recipe("DELETE", "/roles/{name}", 204, |c| async move {
            let name = c.role().await;
            c.send(Method::DELETE, &format!("/roles/{name}"), None)
                .await
        }),
        recipe("DELETE", "/roles/{name}", 400, |c| async move {
            let name = c.role().await;
            c.send(Method::DELETE, &format!("/roles/{name}?force=maybe"), None)
                .await
        })
        .kind("invalid_request"),
        recipe("DELETE", "/roles/{name}", 404, |c| async move {
            c.send(Method::DELETE, "/roles/nobody", None).await
        })
        .kind("not_found"),
        // Held by a user.
        recipe("DELETE", "/roles/{name}", 409, |c| async move {
            let name = c.role().await;
            let user = c.user().await;
            c.send(Method::PUT, &format!("/users/{user}/roles/{name}"), None)
                .await
                .success(200, "give the role");
            c.send(Method::DELETE, &format!("/roles/{name}"), None)
                .await
        })
        .kind("conflict"),
    ]
}

fn groups() -> Vec<Recipe> {
    vec![
        recipe("GET", "/groups", 200, |c| async move {
            c.group().await;
            c.send(Method::GET, "/groups", None).await
        }),
        recipe("GET", "/groups", 400, |c| async move {
            c.send(Method::GET, "/groups?limit=ten", None).await
        })
        .kind("invalid_request"),
        recipe("POST", "/groups", 201, |c| async move {
            c.send(Method::POST, "/groups", Some(json!({"name": "finance"})))
                .await
        }),
        recipe("POST", "/groups", 400, |c| async move {
            c.raw(Method::POST, "/groups", "application/json", NOT_JSON)
                .await
        })
        .kind("invalid_request"),
        recipe("POST", "/groups", 409, |c| async move {
            let name = c.group().await;
            c.send(Method::POST, "/groups", Some(json!({ "name": name })))
                .await
        })
        .kind("conflict"),
        recipe("POST", "/groups", 415, |c| async move {
            c.raw(Method::POST, "/groups", "text/plain", r#"{"name": "x"}"#)
                .await
        })
        .kind("unsupported_media_type"),
        recipe("POST", "/groups", 422, |c| async move {
            c.send(Method::POST, "/groups", Some(json!({"name": "has space"})))
                .await
        })
        .kind("invalid_value"),
        recipe("GET", "/groups/{name}", 200, |c| async move {
            let name = c.group().await;
            c.send(Method::GET, &format!("/groups/{name}"), None).await
        }),
        recipe("GET", "/groups/{name}", 404, |c| async move {
            c.send(Method::GET, "/groups/nobody", None).await
        })
        .kind("not_found"),
        recipe("DELETE", "/groups/{name}", 204, |c| async move {
            let name = c.group().await;
            c.send(Method::DELETE, &format!("/groups/{name}"), None)
                .await
        }),
        recipe("DELETE", "/groups/{name}", 400, |c| async move {
            let name = c.group().await;
            c.send(Method::DELETE, &format!("/groups/{name}?force=maybe"), None)
                .await
        })
        .kind("invalid_request"),
        recipe("DELETE", "/groups/{name}", 404, |c| async move {
            c.send(Method::DELETE, "/groups/nobody", None).await
        })
        .kind("not_found"),
        // Not empty.
        recipe("DELETE", "/groups/{name}", 409, |c| async move {
            let name = c.group().await;
            let user = c.user().await;
            c.send(Method::PUT, &format!("/groups/{name}/members/{user}"), None)
                .await
                .success(200, "add a member");
            c.send(Method::DELETE, &format!("/groups/{name}"), None)
                .await
        })
        .kind("conflict"),
    ]
}

fn memberships() -> Vec<Recipe> {
    vec![
        recipe(
            "PUT",
            "/groups/{group}/members/{user}",
            200,
            |c| async move {
                let (group, user) = (c.group().await, c.user().await);
                c.send(
                    Method::PUT,
                    &format!("/groups/{group}/members/{user}"),
                    None,
                )
                .await
            },
        ),
        recipe(
            "PUT",
            "/groups/{group}/members/{user}",
            404,
            |c| async move {
                let user = c.user().await;
                c.send(Method::PUT, &format!("/groups/nobody/members/{user}"), None)
                    .await
            },
        )
        .kind("not_found"),
        recipe(
            "DELETE",
            "/groups/{group}/members/{user}",
            200,
            |c| async move {
                let (group, user) = (c.group().await, c.user().await);
                let path = format!("/groups/{group}/members/{user}");
                c.send(Method::PUT, &path, None)
                    .await
                    .success(200, "add the member");
                c.send(Method::DELETE, &path, None).await
            },
        ),
        recipe(
            "DELETE",
            "/groups/{group}/members/{user}",
            404,
            |c| async move {
                let group = c.group().await;
                c.send(
                    Method::DELETE,
                    &format!("/groups/{group}/members/{NOBODY}"),
                    None,
                )
                .await
            },
        )
        .kind("not_found"),
        recipe("PUT", "/groups/{group}/roles/{role}", 200, |c| async move {
            let (group, role) = (c.group().await, c.role().await);
            c.send(Method::PUT, &format!("/groups/{group}/roles/{role}"), None)
                .await
        }),
        recipe("PUT", "/groups/{group}/roles/{role}", 404, |c| async move {
            let group = c.group().await;
            c.send(Method::PUT, &format!("/groups/{group}/roles/nobody"), None)
                .await
        })
        .kind("not_found"),
        recipe(
            "DELETE",
            "/groups/{group}/roles/{role}",
            200,
            |c| async move {
                let (group, role) = (c.group().await, c.role().await);
                let path = format!("/groups/{group}/roles/{role}");
                c.send(Method::PUT, &path, None)
                    .await
                    .success(200, "give the role");
                c.send(Method::DELETE, &path, None).await
            },
        ),
        recipe(
            "DELETE",
            "/groups/{group}/roles/{role}",
            404,
            |c| async move {
                let role = c.role().await;
                c.send(
                    Method::DELETE,
                    &format!("/groups/nobody/roles/{role}"),
                    None,
                )
                .await
            },
        )
        .kind("not_found"),
        recipe("PUT", "/users/{user}/roles/{role}", 200, |c| async move {
            let (user, role) = (c.user().await, c.role().await);
            c.send(Method::PUT, &format!("/users/{user}/roles/{role}"), None)
                .await
        }),
        recipe("PUT", "/users/{user}/roles/{role}", 404, |c| async move {
            let role = c.role().await;
            c.send(Method::PUT, &format!("/users/{NOBODY}/roles/{role}"), None)
                .await
        })
        .kind("not_found"),
        recipe(
            "DELETE",
            "/users/{user}/roles/{role}",
            200,
            |c| async move {
                let (user, role) = (c.user().await, c.role().await);
                let path = format!("/users/{user}/roles/{role}");
                c.send(Method::PUT, &path, None)
                    .await
                    .success(200, "give the role");
                c.send(Method::DELETE, &path, None).await
            },
        ),
        recipe(
            "DELETE",
            "/users/{user}/roles/{role}",
            404,
            |c| async move {
                let user = c.user().await;
                c.send(Method::DELETE, &format!("/users/{user}/roles/nobody"), None)
                    .await
            },
        )
        .kind("not_found"),
        recipe("GET", "/users/{id}/permissions", 200, |c| async move {
            let user = c.user().await;
            c.send(Method::GET, &format!("/users/{user}/permissions"), None)
                .await
        }),
        recipe("GET", "/users/{id}/permissions", 404, |c| async move {
            c.send(Method::GET, &format!("/users/{NOBODY}/permissions"), None)
                .await
        })
        .kind("not_found"),
    ]
}

fn registration_tokens() -> Vec<Recipe> {
    vec![
        recipe("POST", "/registration-tokens", 201, |c| async move {
            c.send(
                Method::POST,
                "/registration-tokens",
                Some(json!({"max_uses": 1, "expires_in": 60})),
            )
            .await
        }),
        recipe("POST", "/registration-tokens", 400, |c| async move {
            c.raw(
                Method::POST,
                "/registration-tokens",
                "application/json",
                NOT_JSON,
            )
            .await
        })
        .kind("invalid_request"),
        recipe("POST", "/registration-tokens", 415, |c| async move {
            c.raw(Method::POST, "/registration-tokens", "text/plain", "{}")
                .await
        })
        .kind("unsupported_media_type"),
        recipe("POST", "/registration-tokens", 422, |c| async move {
            c.send(
                Method::POST,
                "/registration-tokens",
                Some(json!({"scopes": ["admin:clients:write"]})),
            )
            .await
        })
        .kind("invalid_value"),
        recipe("GET", "/registration-tokens", 200, |c| async move {
            c.send(Method::GET, "/registration-tokens", None).await
        }),
        recipe("DELETE", "/registration-tokens/{id}", 204, |c| async move {
            let made = c
                .send(Method::POST, "/registration-tokens", Some(json!({})))
                .await
                .success(201, "make a registration token");
            let id = made["id"].as_str().unwrap().to_owned();
            c.send(Method::DELETE, &format!("/registration-tokens/{id}"), None)
                .await
        }),
        recipe("DELETE", "/registration-tokens/{id}", 404, |c| async move {
            c.send(Method::DELETE, "/registration-tokens/no-such-token", None)
                .await
        })
        .kind("not_found"),
    ]
}

fn meta() -> Vec<Recipe> {
    vec![recipe("GET", "/openapi.json", 200, |c| async move {
        c.go(c.app.http.get(c.url("/openapi.json"))).await
    })]
}

fn all_recipes() -> Vec<Recipe> {
    [
        meta(),
        refusals(),
        clients(),
        users(),
        keys(),
        apis(),
        roles(),
        groups(),
        memberships(),
        registration_tokens(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// See `every_documented_response_is_produced`.
const RACE_ONLY: &[(&str, &str, u16)] = &[
    ("DELETE", "/clients/{id}", 409),
    ("PATCH", "/users/{id}", 409),
    ("PATCH", "/roles/{name}", 409),
];

fn list(triples: &[&Triple]) -> String {
    triples
        .iter()
        .map(|(method, path, status)| format!("\n  {method} {PREFIX}{path} {status}"))
        .collect()
}

async fn every_documented_response_is_produced(backend: Backend) {
    let Some(app) = admin_app(backend).await else {
        return;
    };
    let document: Value = app
        .http
        .get(format!(
            "http://127.0.0.1:{}{PREFIX}/openapi.json",
            app.admin_port.expect("the admin API is served")
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let documented = documented(&document);
    let recipes = all_recipes();
    let mut named: BTreeSet<Triple> = recipes.iter().map(Recipe::triple).collect();
    // Answers only a lost race between two statements of one request
    // produces (a change committed between the read that checked the
    // caller's rights and the conditional write): documented because the
    // code answers them, and not producible on demand from outside.
    for (verb, path, status) in RACE_ONLY {
        let triple = (verb.to_string(), path.to_string(), *status);
        assert!(
            documented.contains(&triple),
            "{verb} {path} {status} is listed as race-only but not documented"
        );
        named.insert(triple);
    }
    let missing: Vec<&Triple> = documented.difference(&named).collect();
    let undocumented: Vec<&Triple> = named.difference(&documented).collect();
    assert!(
        missing.is_empty() && undocumented.is_empty(),
        "the recipes and the document disagree.\n\
         Documented, with no recipe to produce it ({}):{}\n\
         Recipes for responses the document does not list ({}):{}",
        missing.len(),
        list(&missing),
        undocumented.len(),
        list(&undocumented),
    );

    let ctx = Arc::new(Ctx::new(app, backend).await);
    let mut failures = Vec::new();
    for recipe in &recipes {
        let got = (recipe.run)(ctx.clone()).await;
        if let Some(why) = recipe.mismatch(&got) {
            failures.push(format!(
                "\n  {} {PREFIX}{} {}: {why}",
                recipe.method, recipe.path, recipe.status
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} recipes did not produce the documented response:{}",
        failures.len(),
        recipes.len(),
        failures.concat()
    );
}

on_both_backends!(every_documented_response_is_produced);
