//! The admin API: `/admin/v1/…` on its own listener (`AUTHD_ADMIN_BIND`,
//! off by default). JSON in and out, errors as RFC 9457 problem details
//! (`problem.rs`). Callers are machine clients holding access tokens authd
//! issued for the built-in API `urn:authd:admin` (client credentials); each
//! handler names the one scope it needs in its signature (`Caller<S>`), and
//! the OpenAPI document (`openapi.rs`) is generated from the same handlers.
//! Handlers call the service functions the CLI calls (`clients::registration`,
//! `users`, `access`, `tokens::keyring`, `secrets`) and nothing else, inside
//! `audit::acting_as` so that every change names the calling client.
pub mod access;
pub mod clients;
pub mod keys;
pub mod openapi;
pub mod problem;
pub mod registration;
pub mod users;

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use crate::domain::api::ADMIN_API;
pub use problem::Problem;

/// What every admin scope starts with.
pub const ADMIN_SCOPE_PREFIX: &str = "admin:";

/// The most items a page holds, and how many when `limit` is not given.
pub const MAX_PAGE: u32 = 200;
pub const DEFAULT_PAGE: u32 = 50;

/// A scope of the admin API, as a type: `Caller<ClientsWrite>` is a
/// caller whose token holds `admin:clients:write`.
pub trait AdminScope {
    const SCOPE: &'static str;
}

macro_rules! admin_scopes {
    ($($name:ident => $scope:literal),* $(,)?) => {
        $(
            #[doc = concat!("`", $scope, "`")]
            pub struct $name;
            impl AdminScope for $name {
                const SCOPE: &'static str = $scope;
            }
        )*
    };
}

admin_scopes! {
    ClientsRead => "admin:clients:read",
    ClientsWrite => "admin:clients:write",
    UsersRead => "admin:users:read",
    UsersWrite => "admin:users:write",
    ApisRead => "admin:apis:read",
    ApisWrite => "admin:apis:write",
    KeysRead => "admin:keys:read",
    KeysWrite => "admin:keys:write",
    RegistrationWrite => "admin:registration:write",
}

/// The client calling, authenticated by its access token and holding the
/// scope `S`: RFC 6750 §3.1 answers otherwise (401 `invalid_token` for no
/// token, one authd did not issue or no longer honours, a user's token, or
/// one for another API; 403 `insufficient_scope` without `S`).
pub struct Caller<S> {
    pub client_id: String,
    /// The admin scopes the caller holds now: those of its token that its
    /// registration still holds.
    admin_scopes: Vec<String>,
    scope: PhantomData<S>,
}

impl<S> Caller<S> {
    /// A caller may only hand out, or act on a client holding, admin
    /// scopes it holds itself: `admin:clients:write` alone must not make
    /// a client with `admin:keys:write`, nor take over one by rotating its
    /// secret (the first admin scope missing, as a 403).
    pub fn ensure_holds_admin_scopes<'a>(
        &self,
        scopes: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), Problem> {
        match scopes
            .into_iter()
            .filter(|s| s.starts_with(ADMIN_SCOPE_PREFIX))
            .find(|s| !self.admin_scopes.iter().any(|held| held == s))
        {
            Some(missing) => Err(Problem::insufficient_scope(missing)),
            None => Ok(()),
        }
    }

    /// What audit events of this request name as the actor.
    pub fn actor(&self) -> String {
        format!("client:{}", self.client_id)
    }

    /// Runs `work` with its audit events naming this caller.
    pub async fn acting<F: Future>(&self, work: F) -> F::Output {
        crate::audit::acting_as(self.actor(), work).await
    }
}

impl<S: AdminScope + 'static> FromRequest for Caller<S> {
    type Error = Problem;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Problem>>>>;

    fn from_request(request: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let request = request.clone();
        Box::pin(async move {
            authenticate::<S>(&request)
                .await
                .map_err(|problem| problem.in_request(&request))
        })
    }
}

/// The caller, and then its JSON body: a handler that takes a body takes
/// this, so that who may call is decided before what was sent is read (a
/// token without the scope gets 401/403, never a 400 or 415 about a body
/// it was not allowed to send), and the body must be a JSON object.
pub struct Authorized<S, T>(pub Caller<S>, pub web::Json<T>);

impl<S: AdminScope + 'static, T: serde::de::DeserializeOwned + 'static> FromRequest
    for Authorized<S, T>
{
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, actix_web::Error>>>>;

    fn from_request(request: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let request = request.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let caller =
                Caller::<S>::from_request(&request, &mut actix_web::dev::Payload::None).await?;
            // Every body here is a JSON object: read as JSON first (the
            // content type, size and syntax refused as `configure` says),
            // then refused unless an object (serde would read an array
            // into a struct whose fields may all be absent).
            let body = web::Json::<serde_json::Value>::from_request(&request, &mut payload)
                .await?
                .into_inner();
            if !body.is_object() {
                return Err(Problem::invalid("the JSON body must be an object")
                    .in_request(&request)
                    .into());
            }
            let body: T = serde_json::from_value(body).map_err(|error| {
                Problem::invalid(format!("the JSON body is not acceptable: {error}"))
                    .in_request(&request)
            })?;
            Ok(Authorized(caller, web::Json(body)))
        })
    }
}

/// The state every admin handler reads: registered with the admin
/// server's app (`startup::server::serve_admin`) before any route.
pub(super) fn state(request: &HttpRequest) -> &web::Data<AppState> {
    request
        .app_data::<web::Data<AppState>>()
        .expect("serve_admin registers the state before the routes")
}

async fn authenticate<S: AdminScope>(request: &HttpRequest) -> Result<Caller<S>, Problem> {
    let state = state(request);
    let token = match super::userinfo::bearer_from_header(request) {
        Ok(Some(token)) => token,
        Ok(None) => {
            return Err(Problem::unauthorized(
                None,
                "send an access token for urn:authd:admin: Authorization: Bearer TOKEN",
            ));
        }
        Err(error) => {
            return Err(Problem::unauthorized(
                Some("invalid_request"),
                error.description(),
            ));
        }
    };
    let invalid = |detail: &str| Problem::unauthorized(Some("invalid_token"), detail);
    let active = match state.token_endpoint.bearer.check(&token).await {
        Ok(Ok(active)) => active,
        Ok(Err(_)) => {
            return Err(invalid(
                "the access token is expired, revoked or not one authd issued",
            ));
        }
        Err(error) => return Err(Problem::internal(error.description())),
    };
    // Only machine clients administer: a person's token never does, whatever
    // it holds (their consent to an app is not an operator's mandate).
    if active.user.is_some() || active.claims.sub != active.claims.client_id {
        return Err(invalid(
            "a user's access token cannot call the admin API: use a client's (client credentials)",
        ));
    }
    // For the admin API alone: a token that also names another audience
    // is one that API's resource server received and could replay here.
    let audiences = match &active.claims.aud {
        serde_json::Value::String(one) => vec![one.as_str()],
        serde_json::Value::Array(many) => many.iter().filter_map(|a| a.as_str()).collect(),
        _ => Vec::new(),
    };
    if audiences != [ADMIN_API] {
        return Err(invalid(
            "the access token is not for urn:authd:admin alone: request it with only the admin:* \
             scopes you need (scope=admin:...)",
        ));
    }
    // What the token holds, narrowed to what the client still holds: a
    // scope taken from a client (or a client deleted) stops its tokens at
    // once, not when they expire.
    let client = crate::domain::ClientId::parse(&active.claims.client_id);
    let registered = match client {
        Some(id) => state
            .token_endpoint
            .clients
            .find(&id)
            .await
            .map_err(Problem::internal)?,
        None => None,
    };
    let Some(registered) = registered else {
        return Err(invalid("the client this token was issued to is gone"));
    };
    let admin_scopes: Vec<String> = active
        .claims
        .scope
        .as_deref()
        .unwrap_or_default()
        .split(' ')
        .filter(|s| s.starts_with(ADMIN_SCOPE_PREFIX) && registered.scope.iter().any(|r| r == *s))
        .map(str::to_owned)
        .collect();
    if !admin_scopes.iter().any(|s| s == S::SCOPE) {
        return Err(Problem::insufficient_scope(S::SCOPE));
    }
    Ok(Caller {
        client_id: active.claims.client_id,
        admin_scopes,
        scope: PhantomData,
    })
}

/// `?limit=&cursor=`: a page of a list, in a stable order.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// At most this many items (1 to 200; default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page, as it came (opaque; another
    /// value is a 400); absent or empty for the first.
    #[param(pattern = "^[A-Za-z0-9_-]*$")]
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn limit(&self) -> Result<u32, Problem> {
        match self.limit {
            None => Ok(DEFAULT_PAGE),
            Some(limit) if (1..=MAX_PAGE).contains(&limit) => Ok(limit),
            Some(_) => Err(Problem::invalid(format!("limit must be 1 to {MAX_PAGE}"))),
        }
    }

    /// The position the cursor names (what the list is ordered by), if
    /// any. Cursors are opaque to callers: base64url of this position.
    pub fn after<T: for<'de> Deserialize<'de>>(&self) -> Result<Option<T>, Problem> {
        // An empty cursor is the first page, as an absent one.
        let Some(cursor) = self.cursor.as_deref().filter(|c| !c.is_empty()) else {
            return Ok(None);
        };
        URL_SAFE_NO_PAD
            .decode(cursor)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .map(Some)
            .ok_or_else(|| {
                Problem::invalid("cursor is not one this API gave: pass next_cursor as it came")
            })
    }
}

/// A whole number from JSON, written `600` or `600.0` (JSON Schema's
/// `integer` admits both).
pub fn whole_u32<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let number: Option<serde_json::Number> = Deserialize::deserialize(d)?;
    let Some(number) = number else {
        return Ok(None);
    };
    let whole = number.as_u64().or_else(|| {
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= f64::from(u32::MAX))
            .map(|f| f as u64)
    });
    whole
        .and_then(|n| u32::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom("expected a whole number from 0 to 4294967295"))
}

/// The cursor that continues after `position`.
pub fn cursor_of(position: &impl Serialize) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(position).expect("a position serialises"))
}

/// A page of items and the cursor of the next (`null` on the last).
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// A page of a list the service returns whole (APIs, roles, groups: a
/// deployment holds tens, not thousands): ordered by `key`, which the
/// cursor holds.
pub fn page_of<T>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> String,
    query: &PageQuery,
) -> Result<Page<T>, Problem> {
    let limit = query.limit()? as usize;
    let after: Option<String> = query.after()?;
    items.sort_by_key(|item| key(item));
    let mut rest: Vec<T> = items
        .into_iter()
        .filter(|item| after.as_ref().is_none_or(|after| key(item) > *after))
        .collect();
    let more = rest.len() > limit;
    rest.truncate(limit);
    let next_cursor = match rest.last() {
        Some(last) if more => Some(cursor_of(&key(last))),
        _ => None,
    };
    Ok(Page {
        items: rest,
        next_cursor,
    })
}

/// A strong ETag of a resource's representation (RFC 9110 §8.8.3).
pub fn etag_of(resource: &impl Serialize) -> String {
    let json = serde_json::to_vec(resource).expect("a resource serialises");
    let digest = Sha256::digest(&json);
    format!("\"{}\"", URL_SAFE_NO_PAD.encode(&digest[..18]))
}

/// RFC 9110 §13.1.1: `If-Match` holds when absent, `*`, or naming the
/// current ETag (strong comparison: a weak tag never matches).
pub fn check_if_match(request: &HttpRequest, current: &str) -> Result<(), Problem> {
    let mut values = request.headers().get_all(header::IF_MATCH).peekable();
    if values.peek().is_none() {
        return Ok(());
    }
    for value in values {
        let Ok(text) = value.to_str() else {
            return Err(Problem::invalid("If-Match is not a list of ETags"));
        };
        for tag in text.split(',').map(str::trim) {
            if tag == "*" || tag == current {
                return Ok(());
            }
        }
    }
    Err(Problem::precondition_failed())
}

/// A change that lost a race with another: `412` when the caller sent
/// `If-Match` (its version is gone), else `409` (nothing was asked of the
/// version; read again and retry).
pub fn lost_race(request: &HttpRequest) -> Problem {
    if request.headers().contains_key(header::IF_MATCH) {
        Problem::precondition_failed()
    } else {
        Problem::conflict("it changed while this request ran: read it again, then retry")
    }
}

/// `200` with the resource and its `ETag`.
pub fn with_etag(resource: &impl Serialize) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::ETAG, etag_of(resource)))
        .json(resource)
}

/// The operations of `/admin/v1`, each registered with its OpenAPI
/// description (`openapi::mount`).
pub fn configure(config: &mut utoipa_actix_web::service_config::ServiceConfig) {
    config
        .app_data(
            web::JsonConfig::default()
                .limit(64 * 1024)
                .error_handler(|error, request| {
                    let problem = match error {
                        actix_web::error::JsonPayloadError::ContentType => Problem::new(
                            actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                            "unsupported_media_type",
                            "send the body as application/json",
                        ),
                        error => {
                            Problem::invalid(format!("the JSON body is not acceptable: {error}"))
                        }
                    };
                    problem.in_request(request).into()
                }),
        )
        .app_data(web::QueryConfig::default().error_handler(|error, request| {
            Problem::invalid(format!("the query is not acceptable: {error}"))
                .in_request(request)
                .into()
        }))
        .app_data(web::PathConfig::default().error_handler(|error, request| {
            Problem::not_found(format!("no such resource: {error}"))
                .in_request(request)
                .into()
        }))
        .service(openapi::openapi_json);
    clients::routes(config);
    users::routes(config);
    keys::routes(config);
    access::routes(config);
    registration::routes(config);
}

/// Every other request: `405` with `Allow` for a path the document lists
/// with other methods, `404` otherwise.
pub async fn unrouted(
    request: HttpRequest,
    methods: web::Data<Methods>,
) -> Result<HttpResponse, Problem> {
    Err(unrouted_problem(&request, &methods))
}

fn unrouted_problem(request: &HttpRequest, methods: &Methods) -> Problem {
    let allowed = methods.allowed(request.path());
    if allowed.is_empty() {
        return Problem::not_found(format!(
            "no admin API operation at {}: the operations are listed at /admin/v1/openapi.json",
            request.path()
        ))
        .in_request(request);
    }
    Problem::method_not_allowed(request.method().as_str(), &allowed).in_request(request)
}

/// The documented paths and their methods: what `unrouted` answers `405`
/// from.
pub struct Methods(Vec<(Vec<String>, Vec<String>)>);

impl Methods {
    pub fn of(document: &utoipa::openapi::OpenApi) -> Self {
        let value = serde_json::to_value(document).unwrap_or_default();
        let mut paths = Vec::new();
        if let Some(map) = value.get("paths").and_then(|p| p.as_object()) {
            for (path, item) in map {
                let methods: Vec<String> = item
                    .as_object()
                    .map(|ops| {
                        ops.keys()
                            .filter(|k| {
                                ["get", "post", "put", "patch", "delete", "head", "options"]
                                    .contains(&k.as_str())
                            })
                            .map(|k| k.to_uppercase())
                            .collect()
                    })
                    .unwrap_or_default();
                let segments = path.split('/').map(str::to_owned).collect();
                paths.push((segments, methods));
            }
        }
        Self(paths)
    }

    /// The methods the document lists for `path` (its `{…}` segments
    /// match any one segment).
    fn allowed(&self, path: &str) -> Vec<String> {
        let segments: Vec<&str> = path.split('/').collect();
        let mut allowed: Vec<String> = self
            .0
            .iter()
            .filter(|(pattern, _)| {
                pattern.len() == segments.len()
                    && pattern.iter().zip(&segments).all(|(p, s)| {
                        (p.starts_with('{') && p.ends_with('}') && !s.is_empty()) || p == s
                    })
            })
            .flat_map(|(_, methods)| methods.iter().cloned())
            .collect();
        allowed.sort();
        allowed.dedup();
        allowed
    }
}
