//! A resource server template: an API, known to authd by its identifier,
//! that accepts authd's access tokens and verifies them offline against the
//! issuer's public keys (JWKS), cached in memory. Copy `Authorized`,
//! `require_scope`, `require_permission`, `Verifier` and `JwksCache`.
//!
//! ```sh
//! cargo run --release                  # authd on http://127.0.0.1:8080
//! authd apis create --identifier http://127.0.0.1:8082 --name Orders \
//!     --scope orders:read --scope orders:write --scope orders:export \
//!     --user-access any --token-claims permissions
//! authd clients create --name reporting --scope orders:read   # prints the credentials
//! TOKEN=$(curl -s -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials \
//!     -d scope=orders:read -d resource=http://127.0.0.1:8082 \
//!     http://127.0.0.1:8080/token | jq -r .access_token)
//! cargo run --example resource_server
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8082/orders
//! ```
//!
//! `POST /orders` needs the `orders:write` scope: add `--scope orders:write`
//! to the client and to the token request. `GET /orders/export` needs the
//! `orders:export` *permission*: the `permissions` claim, which authd adds
//! for APIs created with `--token-claims permissions`, lists what the
//! caller holds (a user through their roles, a client through its
//! registration) whatever scope this token asked for (the API-gateway
//! pattern). `GET /health` needs no token.
//!
//! Environment: `AUTHD_URL` (the issuer, default http://127.0.0.1:8080),
//! `RESOURCE_IDENTIFIER` (this API's identifier in authd, which its tokens
//! carry in `aud`; default `http://` + the bind address),
//! `RESOURCE_SERVER_BIND` (default 127.0.0.1:8082), `RUST_LOG`.
//!
//! Checks, in this order:
//! - `alg` is RS256, chosen here, never by the token; `none`, HS* refused (RFC 8725 §3.1).
//! - `typ` is `at+jwt`, so an ID token is not taken for one (RFC 9068 §4, RFC 8725 §3.11).
//! - `kid` picks a key from the issuer's `jwks_uri`; its RS256 signature must hold (RFC 9068 §4).
//! - `iss` is the issuer exactly: no tokens from elsewhere (RFC 9068 §4, RFC 8725 §3.8).
//! - `aud` holds RESOURCE_IDENTIFIER: no tokens for other APIs (RFC 9068 §4, RFC 8725 §3.9).
//! - `exp` is present and not past, 60 s leeway (RFC 9068 §4, RFC 7519 §4.1.4).
//! - `iat` is at most 60 s in the future, i.e. only clock skew (RFC 7519 §4.1.6).
//! - `scope` holds what the route needs, else 403 (RFC 9068 §4, RFC 6750 §3.1);
//!   or, for a route gated on a permission, `permissions` holds it
//!   (RFC 9068 §2.2.3.1), else 403.
//!
//! Refusals follow RFC 6750 §3 (401 with a bare challenge when no token was
//! sent, 400 `invalid_request`, 401 `invalid_token`, 403 `insufficient_scope`)
//! and never echo or log the token.
//!
//! The JWKS cache keeps the keys for the response's `max-age` (300 s without
//! one, at most 1 h) and revalidates with `If-None-Match`. An expired set is
//! refreshed by the next request that needs a key (no background task); an
//! unknown `kid` refetches at once, but no fetch follows another within 10 s,
//! so made-up kids cannot make us hammer authd.
use std::collections::HashMap;
use std::error::Error;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::{StatusCode, header};
use actix_web::{App, FromRequest, HttpRequest, HttpResponse, HttpServer, ResponseError};
use actix_web::{dev::Payload, get, post, web};
use arc_swap::ArcSwap;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::json;

/// The protection space named in every challenge (RFC 9110 §11.5).
const REALM: &str = "orders";
/// Clock skew tolerated on `exp` and `iat`.
const LEEWAY_SECONDS: u64 = 60;
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
const MAX_AGE_CAP: Duration = Duration::from_secs(3600);
/// No JWKS fetch follows another within this, whatever triggers it.
const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(10);

// ---- JWKS cache ------------------------------------------------------------

/// One fetched JWKS.
struct KeySet {
    /// RS256 verification keys by `kid`.
    keys: Arc<HashMap<String, DecodingKey>>,
    etag: Option<String>,
    expires: Instant,
}

impl KeySet {
    /// The same keys with a new validator and expiry.
    fn renewed(&self, etag: Option<String>, expires: Instant) -> Self {
        let keys = self.keys.clone();
        Self {
            keys,
            etag,
            expires,
        }
    }
}

pub struct JwksCache {
    http: reqwest::Client,
    uri: String,
    /// Read lock-free by every request.
    current: ArcSwap<KeySet>,
    /// Serialises fetches and remembers when the last one started.
    last_fetch: tokio::sync::Mutex<Instant>,
}

impl JwksCache {
    pub async fn new(http: reqwest::Client, uri: String) -> Result<Self, String> {
        let set = fetch(&http, &uri, None).await?;
        if set.keys.is_empty() {
            return Err("it holds no RSA signing key with a kid".to_owned());
        }
        let (current, last_fetch) = (ArcSwap::from_pointee(set), Instant::now().into());
        Ok(Self {
            http,
            uri,
            current,
            last_fetch,
        })
    }

    /// The key for `kid`. An expired set is refreshed first; a kid not in the
    /// set triggers one (rate-limited) refetch and one more lookup.
    pub async fn key(&self, kid: &str) -> Option<DecodingKey> {
        if self.current.load().expires <= Instant::now() {
            self.refresh(false).await;
        }
        if let Some(key) = self.current.load().keys.get(kid) {
            return Some(key.clone());
        }
        self.refresh(true).await;
        self.current.load().keys.get(kid).cloned()
    }

    async fn refresh(&self, unknown_kid: bool) {
        let mut last_fetch = self.last_fetch.lock().await;
        // Whoever held the lock before us may have refreshed already.
        let current = self.current.load_full();
        let needed = unknown_kid || current.expires <= Instant::now();
        if !needed || last_fetch.elapsed() < MIN_REFETCH_INTERVAL {
            return;
        }
        *last_fetch = Instant::now();
        // authd unreachable: keep the keys we have and try again later.
        let next = fetch(&self.http, &self.uri, Some(&current)).await;
        let next = next.unwrap_or_else(|e| {
            tracing::warn!("refreshing the JWKS from {}: {e}", self.uri);
            current.renewed(current.etag.clone(), Instant::now() + MIN_REFETCH_INTERVAL)
        });
        self.current.store(Arc::new(next));
    }
}

/// GETs the JWKS, conditionally when `cached` has an ETag (RFC 9110 §13.1.2).
async fn fetch(
    http: &reqwest::Client,
    uri: &str,
    cached: Option<&KeySet>,
) -> Result<KeySet, String> {
    let mut request = http.get(uri);
    if let Some(etag) = cached.and_then(|c| c.etag.as_deref()) {
        request = request.header(reqwest::header::IF_NONE_MATCH, etag);
    }
    let response = request.send().await.map_err(|e| describe(&e))?;
    let text = |name| response.headers().get(name).and_then(|v| v.to_str().ok());
    let expires = Instant::now() + max_age(text(reqwest::header::CACHE_CONTROL));
    let etag = text(reqwest::header::ETAG).map(str::to_owned);
    let not_modified = response.status() == reqwest::StatusCode::NOT_MODIFIED;
    if let Some(cached) = cached.filter(|_| not_modified) {
        // RFC 9111 §4.3.4: a 304 renews the freshness of the keys we hold.
        tracing::info!("JWKS not modified");
        return Ok(cached.renewed(etag.or(cached.etag.clone()), expires));
    }
    let response = response.error_for_status().map_err(|e| describe(&e))?;
    let jwks: JwkSet = response.json().await.map_err(|e| describe(&e))?;
    let keys = Arc::new(rs256_keys(&jwks));
    tracing::info!(keys = keys.len(), "fetched the JWKS");
    Ok(KeySet {
        keys,
        etag,
        expires,
    })
}

/// RSA keys with a `kid`, meant for signatures (or unmarked) and for RS256 (or
/// unmarked); nothing else in the set could verify a token here anyway.
fn rs256_keys(jwks: &JwkSet) -> HashMap<String, DecodingKey> {
    let for_signing = |u: &PublicKeyUse| *u == PublicKeyUse::Signature;
    let for_rs256 = |a: KeyAlgorithm| a == KeyAlgorithm::RS256;
    let usable = |jwk: &&Jwk| {
        matches!(jwk.algorithm, AlgorithmParameters::RSA(_))
            && jwk.common.public_key_use.as_ref().is_none_or(for_signing)
            && jwk.common.key_algorithm.is_none_or(for_rs256)
    };
    let keys = jwks.keys.iter().filter(usable);
    keys.filter_map(|jwk| Some((jwk.common.key_id.clone()?, DecodingKey::from_jwk(jwk).ok()?)))
        .collect()
}

/// RFC 9111 §5.2.2.1 `max-age`, defaulted, capped, and never below the
/// refetch interval (so `max-age=0` cannot mean a fetch per request).
fn max_age(cache_control: Option<&str>) -> Duration {
    let directives = cache_control.into_iter().flat_map(|v| v.split(','));
    let mut pairs = directives.filter_map(|d| d.split_once('='));
    let value = pairs.find(|(name, _)| name.trim().eq_ignore_ascii_case("max-age"));
    let seconds = value.and_then(|(_, v)| v.trim().trim_matches('"').parse().ok());
    let max_age = seconds.map_or(DEFAULT_MAX_AGE, Duration::from_secs);
    max_age.clamp(MIN_REFETCH_INTERVAL, MAX_AGE_CAP)
}

// ---- Verification ----------------------------------------------------------

/// What a handler learns about the caller.
#[derive(Debug, Clone, Deserialize)]
pub struct Claims {
    /// The user, or for client credentials the client itself.
    pub sub: String,
    pub client_id: String,
    /// Space-separated; absent means none.
    #[serde(default)]
    pub scope: String,
    /// RFC 9068 §2.2.3.1: what the caller holds at this API (present when
    /// the API opted in with `--token-claims permissions`).
    #[serde(default)]
    pub permissions: Vec<String>,
    pub jti: String,
    pub exp: i64,
}

/// Adds the claims that are checked here and then dropped.
#[derive(Deserialize)]
struct TokenClaims {
    iss: String,
    iat: i64,
    #[serde(flatten)]
    kept: Claims,
}

pub struct Verifier {
    pub issuer: String,
    /// This API's identifier: the `aud` its tokens carry.
    pub identifier: String,
    pub jwks: JwksCache,
}

impl Verifier {
    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let header = jsonwebtoken::decode_header(token);
        let header = header.map_err(|_| invalid("not a JWS with a known alg"))?;
        if header.alg != Algorithm::RS256 {
            return Err(invalid("alg must be RS256"));
        }
        if !is_access_token_type(header.typ.as_deref()) {
            return Err(invalid("typ must be at+jwt"));
        }
        let kid = header.kid.ok_or(invalid("the header has no kid"))?;
        let key = self.jwks.key(&kid).await;
        let key = key.ok_or(invalid("signed with an unknown key"))?;

        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = LEEWAY_SECONDS;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.identifier]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<TokenClaims>(token, &key, &validation)
            .map_err(|e| invalid(jwt_error(e.kind())))?
            .claims;
        // Checked by jsonwebtoken too; a String here also rules out an array.
        if claims.iss != self.issuer {
            return Err(invalid("issued by another issuer"));
        }
        if claims.iat > chrono::Utc::now().timestamp() + LEEWAY_SECONDS as i64 {
            return Err(invalid("iat is in the future"));
        }
        Ok(claims.kept)
    }
}

/// RFC 9068 §4: `at+jwt`, or its full media type, in any case.
fn is_access_token_type(typ: Option<&str>) -> bool {
    let is = |t: &str, want| t.eq_ignore_ascii_case(want);
    typ.is_some_and(|t| is(t, "at+jwt") || is(t, "application/at+jwt"))
}

fn jwt_error(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidSignature => "the signature is invalid",
        ErrorKind::ExpiredSignature => "the token has expired",
        ErrorKind::InvalidIssuer => "issued by another issuer",
        ErrorKind::InvalidAudience => "the token is not meant for this API (aud)",
        ErrorKind::MissingRequiredClaim(_) | ErrorKind::Json(_) => {
            "a claim is missing or malformed"
        }
        _ => "the token is malformed",
    }
}

// ---- RFC 6750 errors, the extractor and the scope check ---------------------

/// Why a request was refused; the message becomes `error_description`, so it
/// must hold no `"` or `\` (RFC 6750 §3), and never the token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credentials at all: a bare challenge (RFC 6750 §3.1).
    #[error("a bearer token is required")]
    NoToken,
    #[error("{0}")]
    InvalidRequest(&'static str),
    #[error("{0}")]
    InvalidToken(&'static str),
    /// Holds the scope the route needs.
    #[error("the token lacks the {0} scope")]
    InsufficientScope(String),
    #[error("the caller does not hold the {0} permission")]
    MissingPermission(String),
}

fn invalid(reason: &'static str) -> AuthError {
    AuthError::InvalidToken(reason)
}

fn bad_request(reason: &'static str) -> AuthError {
    AuthError::InvalidRequest(reason)
}

impl AuthError {
    /// The HTTP status and RFC 6750 §3.1 error code.
    fn parts(&self) -> (StatusCode, Option<&'static str>) {
        match self {
            Self::NoToken => (StatusCode::UNAUTHORIZED, None),
            Self::InvalidRequest(_) => (StatusCode::BAD_REQUEST, Some("invalid_request")),
            Self::InvalidToken(_) => (StatusCode::UNAUTHORIZED, Some("invalid_token")),
            Self::InsufficientScope(_) | Self::MissingPermission(_) => {
                (StatusCode::FORBIDDEN, Some("insufficient_scope"))
            }
        }
    }

    /// The `WWW-Authenticate` value (RFC 6750 §3).
    fn challenge(&self) -> String {
        let start = format!(r#"Bearer realm="{REALM}""#);
        match (self, self.parts().1) {
            (_, None) => start,
            (Self::InsufficientScope(scope), Some(code)) => {
                format!(r#"{start}, error="{code}", scope="{scope}""#)
            }
            (_, Some(code)) => format!(r#"{start}, error="{code}", error_description="{self}""#),
        }
    }
}

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        self.parts().0
    }

    fn error_response(&self) -> HttpResponse {
        let mut body = json!({ "error_description": self.to_string() });
        if let Some(code) = self.parts().1 {
            body["error"] = code.into();
        }
        HttpResponse::build(self.status_code())
            .insert_header((header::WWW_AUTHENTICATE, self.challenge()))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(body)
    }
}

/// RFC 6750 §2.1: `Bearer <b64token>`; the scheme is case-insensitive (RFC 9110 §11.1).
fn bearer_token(value: &str) -> Result<&str, AuthError> {
    let parts = value.split_once(' ');
    let (scheme, token) = parts.ok_or(bad_request("expected Bearer <token>"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(bad_request("only the Bearer scheme is accepted"));
    }
    let token = token.trim_start_matches(' ');
    let b64token = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
    match token.trim_end_matches('=') {
        "" => Err(bad_request("the bearer token is empty")),
        body if body.bytes().all(b64token) => Ok(token),
        _ => Err(bad_request("the bearer token is malformed")),
    }
}

/// The token from the one `Authorization` header of a request.
fn request_token(req: &HttpRequest) -> Result<String, AuthError> {
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let value = values.next().ok_or(AuthError::NoToken)?;
    if values.next().is_some() {
        return Err(bad_request("more than one Authorization header"));
    }
    let value = value
        .to_str()
        .map_err(|_| bad_request("non-ASCII Authorization header"))?;
    bearer_token(value).map(str::to_owned)
}

/// A handler argument that exists only for a request with a valid access
/// token; otherwise the request is refused (RFC 6750) before the handler runs.
pub struct Authorized(pub Claims);

impl FromRequest for Authorized {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let verifier = req.app_data::<web::Data<Verifier>>().cloned();
        let token = request_token(req);
        Box::pin(async move {
            let missing = "no web::Data<Verifier> in the app";
            let verifier =
                verifier.ok_or_else(|| actix_web::error::ErrorInternalServerError(missing))?;
            let claims = verifier.verify(&token?).await.inspect_err(|e| {
                tracing::info!(reason = %e, "refused an access token");
            })?;
            Ok(Authorized(claims))
        })
    }
}

/// Passes when the token's scope holds `needed` (a `resource:action` token).
pub fn require_scope(claims: &Claims, needed: &str) -> Result<(), AuthError> {
    match claims.scope.split(' ').any(|granted| granted == needed) {
        true => Ok(()),
        false => Err(AuthError::InsufficientScope(needed.to_owned())),
    }
}

/// The caller holds `needed` (the `permissions` claim), whatever the
/// token's `scope`.
pub fn require_permission(claims: &Claims, needed: &str) -> Result<(), AuthError> {
    match claims.permissions.iter().any(|held| held == needed) {
        true => Ok(()),
        false => Err(AuthError::MissingPermission(needed.to_owned())),
    }
}

// ---- The API ---------------------------------------------------------------

#[get("/health")]
async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

#[get("/orders")]
async fn list_orders(Authorized(claims): Authorized) -> Result<HttpResponse, AuthError> {
    require_scope(&claims, "orders:read")?;
    Ok(HttpResponse::Ok().json(json!({
        "orders": [
            { "id": "ord-1001", "item": "keyboard", "quantity": 2 },
            { "id": "ord-1002", "item": "monitor", "quantity": 1 },
        ],
        "for": claims.sub,
        "client_id": claims.client_id,
    })))
}

/// A real handler would take the body too, and parse it only after the scope
/// check, so that callers without the scope learn nothing from its errors.
/// Gated on a permission, not a scope.
#[get("/orders/export")]
async fn export_orders(Authorized(claims): Authorized) -> Result<HttpResponse, AuthError> {
    require_permission(&claims, "orders:export")?;
    Ok(HttpResponse::Ok().json(json!({
        "export": "ord-1001,keyboard,2\nord-1002,monitor,1\n",
        "for": claims.sub,
    })))
}

#[post("/orders")]
async fn create_order(Authorized(claims): Authorized) -> Result<HttpResponse, AuthError> {
    require_scope(&claims, "orders:write")?;
    let order = json!({
        "id": "ord-1003", "status": "created",
        "created_by": claims.sub, "client_id": claims.client_id,
    });
    let location = (header::LOCATION, "/orders/ord-1003");
    Ok(HttpResponse::Created().insert_header(location).json(order))
}

// ---- Start-up ----------------------------------------------------------------

/// An error and its causes on one line (reqwest keeps "connection refused" in `source()`).
fn describe(err: &dyn Error) -> String {
    let chain = std::iter::successors(Some(err), |&e| e.source());
    chain.map(|e| e.to_string()).collect::<Vec<_>>().join(": ")
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

/// Reads the discovery document (OpenID Connect Discovery §4), then the JWKS.
async fn connect(authd_url: &str, identifier: String) -> Result<Verifier, String> {
    // No redirects: keys come only from where the issuer says. No idle
    // connections: fetches are rare and come from any worker's runtime.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|e| describe(&e))?;
    let authd_url = authd_url.trim_end_matches('/');
    let url = format!("{authd_url}/.well-known/openid-configuration");
    let unreadable = |e: reqwest::Error| {
        let why = describe(&e);
        format!("Cannot read {url}: {why}\nIs authd running at {authd_url}?")
    };
    let response = http.get(&url).send().await;
    let response = response
        .and_then(|r| r.error_for_status())
        .map_err(unreadable)?;
    let meta: Discovery = response.json().await.map_err(unreadable)?;
    // Discovery §4.3: the document must be about the issuer we asked for.
    if meta.issuer.trim_end_matches('/') != authd_url {
        let issuer = &meta.issuer;
        return Err(format!(
            "{url} names issuer {issuer}: set AUTHD_URL to that"
        ));
    }
    let jwks = JwksCache::new(http, meta.jwks_uri.clone()).await;
    let jwks = jwks.map_err(|e| format!("Cannot use the JWKS at {}: {e}", meta.jwks_uri))?;
    let issuer = meta.issuer;
    Ok(Verifier {
        issuer,
        identifier,
        jwks,
    })
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env();
    let filter = filter.unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let authd_url = env("AUTHD_URL").unwrap_or_else(|| "http://127.0.0.1:8080".to_owned());
    let bind = env("RESOURCE_SERVER_BIND").unwrap_or_else(|| "127.0.0.1:8082".to_owned());
    let identifier = env("RESOURCE_IDENTIFIER").unwrap_or_else(|| format!("http://{bind}"));
    let verifier = connect(&authd_url, identifier).await.unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1);
    });
    let (issuer, identifier) = (&verifier.issuer, &verifier.identifier);
    tracing::info!(%issuer, %identifier, "resource server on http://{bind}");
    let verifier = web::Data::new(verifier);
    HttpServer::new(move || {
        App::new()
            .app_data(verifier.clone())
            .service(health)
            .service(export_orders)
            .service(list_orders)
            .service(create_order)
    })
    .bind(bind)?
    .run()
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope_error(scope: &str) -> Option<(StatusCode, String)> {
        let claims = json!({ "sub": "s", "client_id": "c", "jti": "j", "exp": 0, "scope": scope });
        let claims: Claims = serde_json::from_value(claims).unwrap();
        let error = require_scope(&claims, "orders:write").err();
        error.map(|e| (e.status_code(), e.challenge()))
    }

    #[test]
    fn scopes_match_whole_tokens() {
        assert_eq!(scope_error("orders:read orders:write"), None);
        let want = r#"Bearer realm="orders", error="insufficient_scope", scope="orders:write""#;
        for scope in ["", "orders:read", "orders:writer", "orders"] {
            let want = Some((StatusCode::FORBIDDEN, want.to_owned()));
            assert_eq!(scope_error(scope), want, "{scope:?}");
        }
    }

    #[test]
    fn permissions_match_whole_entries() {
        let claims = |permissions: &[&str]| -> Claims {
            let claims = json!({
                "sub": "s", "client_id": "c", "jti": "j", "exp": 0,
                "scope": "orders:export", "permissions": permissions,
            });
            serde_json::from_value(claims).unwrap()
        };
        assert!(require_permission(&claims(&["orders:export"]), "orders:export").is_ok());
        // The scope alone is not the permission.
        for held in [&[][..], &["orders:read"], &["orders:exporter"]] {
            let error = require_permission(&claims(held), "orders:export").unwrap_err();
            assert_eq!(error.status_code(), StatusCode::FORBIDDEN, "{held:?}");
            assert!(error.challenge().contains(r#"error="insufficient_scope""#));
        }
    }

    #[test]
    fn parses_bearer_headers() {
        assert_eq!(bearer_token("Bearer a.B-_~+/==").ok(), Some("a.B-_~+/=="));
        assert_eq!(bearer_token("bearer  abc").ok(), Some("abc"));
        let bad = ["Bearer", "Bearer ", "Basic dTpw", "Bearer a b", "Bearer ="];
        for bad in bad.into_iter().chain(["Bearer a\"b", "Bearer é"]) {
            let err = bearer_token(bad).unwrap_err();
            assert_eq!(err.status_code(), StatusCode::BAD_REQUEST, "{bad:?}");
        }
    }

    #[test]
    fn only_access_token_types_pass() {
        for good in ["at+jwt", "AT+JWT", "application/at+jwt"] {
            assert!(is_access_token_type(Some(good)), "{good}");
        }
        for bad in [None, Some("JWT"), Some("jwt"), Some("at+jwt ")] {
            assert!(!is_access_token_type(bad), "{bad:?}");
        }
    }

    #[test]
    fn challenges_follow_rfc_6750() {
        assert_eq!(AuthError::NoToken.challenge(), r#"Bearer realm="orders""#);
        let want = r#"Bearer realm="orders", error="invalid_token", error_description="expired""#;
        assert_eq!(invalid("expired").challenge(), want);
    }

    #[test]
    fn max_age_is_read_defaulted_and_bounded() {
        let secs = Duration::from_secs;
        assert_eq!(max_age(Some("public, max-age=120")), secs(120));
        assert_eq!(max_age(Some("Max-Age=\"60\"")), secs(60));
        assert_eq!(max_age(None), DEFAULT_MAX_AGE);
        assert_eq!(max_age(Some("max-age=86400")), MAX_AGE_CAP);
        assert_eq!(max_age(Some("max-age=0")), MIN_REFETCH_INTERVAL);
    }
}
