//! CORS (the Fetch standard's CORS protocol) for the endpoints browsers
//! call from other origins. JWKS and discovery are public documents: any
//! origin may read them. `/token`, `/userinfo` and `/revoke` answer only the
//! origins registered for a client (`authd clients create --allowed-origin`);
//! `/authorize`, the sign-in pages and everything else never send CORS
//! headers (a page must not be readable by another origin).
//!
//! Which origin may read a response: the one registered for the client the
//! request turned out to be (handlers name it with [`CorsClient`]); when no
//! client was identified (a failed authentication, a malformed request),
//! any origin registered for some client, so that a browser app can read
//! its own errors. Credentials mode is never allowed: these endpoints take
//! tokens in headers or bodies, never cookies.
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpResponse, web};
use tracing_actix_web::RequestId;

use super::AppState;
use super::error::json_error;

/// The client whose registered origins decide whether the response may be
/// read (put in the response extensions by the handler).
#[derive(Debug, Clone)]
pub struct CorsClient(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    /// Readable by every origin.
    Public,
    /// Readable by registered origins; the methods a preflight may ask for.
    Registered(&'static str),
}

fn policy(path: &str) -> Option<Policy> {
    match path {
        "/.well-known/jwks.json"
        | "/.well-known/openid-configuration"
        | "/.well-known/oauth-authorization-server" => Some(Policy::Public),
        "/token" | "/revoke" => Some(Policy::Registered("POST")),
        "/userinfo" => Some(Policy::Registered("GET, POST")),
        _ => None,
    }
}

/// Response headers a browser script may read besides the safelisted ones.
const EXPOSED: &str = "WWW-Authenticate, Retry-After, X-Request-Id, X-RateLimit-Limit, \
                       X-RateLimit-Remaining, X-RateLimit-Reset";
/// Request headers a preflight may ask for.
const ALLOWED_HEADERS: &str = "Authorization, Content-Type";

fn origin_of(request: &ServiceRequest) -> Option<String> {
    request
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn state_of(request: &ServiceRequest) -> web::Data<AppState> {
    request
        .app_data::<web::Data<AppState>>()
        .expect("AppState is registered")
        .clone()
}

/// Answers a preflight (`OPTIONS` with `Access-Control-Request-Method`)
/// before routing; `None` lets the request on.
pub fn preflight(request: &ServiceRequest) -> Option<HttpResponse> {
    if request.method() != Method::OPTIONS
        || !request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        return None;
    }
    let policy = policy(request.match_info().as_str())?;
    let mut response = HttpResponse::NoContent().finish();
    let headers = response.headers_mut();
    match policy {
        Policy::Public => {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, HEAD"),
            );
            headers.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("86400"),
            );
        }
        Policy::Registered(methods) => {
            let state = state_of(request);
            let registered =
                origin_of(request).filter(|o| state.token_endpoint.clients.origin_registered(o));
            let Some(origin) = registered else {
                let request_id = request.extensions_get_request_id();
                let mut refused = json_error(
                    StatusCode::FORBIDDEN,
                    "invalid_request",
                    "this origin is not registered for any client (authd clients create --allowed-origin)",
                    request_id,
                );
                refused
                    .headers_mut()
                    .insert(header::VARY, HeaderValue::from_static("Origin"));
                return Some(refused);
            };
            let origin = HeaderValue::from_str(&origin).ok()?;
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(methods),
            );
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(ALLOWED_HEADERS),
            );
            headers.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
            headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Some(response)
}

trait RequestIdOf {
    fn extensions_get_request_id(&self) -> RequestId;
}

impl RequestIdOf for ServiceRequest {
    fn extensions_get_request_id(&self) -> RequestId {
        use actix_web::HttpMessage;
        self.extensions()
            .get::<RequestId>()
            .copied()
            .expect("TracingLogger runs first")
    }
}

/// What the response decoration needs from the request (read before the
/// request is handed on).
pub struct Pending {
    policy: Policy,
    origin: Option<String>,
}

pub fn pending(request: &ServiceRequest) -> Option<Pending> {
    Some(Pending {
        policy: policy(request.match_info().as_str())?,
        origin: origin_of(request),
    })
}

/// Adds the CORS headers the response may carry.
pub fn decorate<B>(pending: Pending, response: &mut ServiceResponse<B>) {
    let allowed = match (&pending.policy, &pending.origin) {
        (Policy::Public, _) => Some(HeaderValue::from_static("*")),
        (Policy::Registered(_), None) => None,
        (Policy::Registered(_), Some(origin)) => {
            let state = response
                .request()
                .app_data::<web::Data<AppState>>()
                .expect("AppState is registered")
                .clone();
            let clients = &state.token_endpoint.clients;
            let client = response
                .response()
                .extensions()
                .get::<CorsClient>()
                .cloned();
            let ok = match client {
                Some(CorsClient(id)) => clients.origin_allowed_for(&id, origin),
                None => clients.origin_registered(origin),
            };
            ok.then(|| HeaderValue::from_str(origin).ok()).flatten()
        }
    };
    let headers = response.headers_mut();
    if matches!(pending.policy, Policy::Registered(_)) {
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    if let Some(allowed) = allowed {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_api_documents_and_endpoints_have_a_policy() {
        assert_eq!(policy("/.well-known/jwks.json"), Some(Policy::Public));
        assert_eq!(policy("/token"), Some(Policy::Registered("POST")));
        assert_eq!(policy("/userinfo"), Some(Policy::Registered("GET, POST")));
        for page in [
            "/authorize",
            "/login",
            "/consent",
            "/logout",
            "/introspect",
            "/healthz",
        ] {
            assert_eq!(policy(page), None, "{page}");
        }
    }
}
