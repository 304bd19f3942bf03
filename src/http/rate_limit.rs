//! The per-IP rate limits every route passes through, the client address
//! (behind trusted proxies only), and the `X-RateLimit-*` headers.
//!
//! Headers (draft-ietf-httpapi-ratelimit-headers, in the widely deployed
//! `X-` form): `X-RateLimit-Limit` (the bucket's size), `-Remaining`,
//! `-Reset` (seconds until the bucket is full again). Refusals are `429`
//! with `Retry-After` (RFC 6585 §4, RFC 9110 §10.2.3): JSON on API routes,
//! the error page on the sign-in pages.

use actix_web::HttpMessage;
use actix_web::dev::ServiceRequest;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpResponse, web};
use tracing_actix_web::RequestId;

use super::AppState;
use super::error::json_error;
use crate::limits::buckets::{Decision, IpBucket};
use crate::limits::client_ip::{ClientIp, ClientIpSettings, client_ip};

const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// [`client_ip`] over this request's headers: every line of the named
/// header, in order.
fn believe(
    peer: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    settings: &ClientIpSettings,
) -> Option<ClientIp> {
    client_ip(
        peer,
        |name| headers.get_all(name).map(HeaderValue::as_bytes),
        settings,
    )
}

/// Which per-IP buckets a request draws from, besides the general one.
fn buckets(method: &Method, path: &str) -> Option<(IpBucket, Option<IpBucket>)> {
    match path {
        // Probes of load balancers and orchestrators are never limited.
        "/healthz" | "/readyz" => None,
        p if p.starts_with("/.well-known/") => Some((IpBucket::WellKnown, None)),
        "/login" if method == Method::POST => Some((IpBucket::Every, Some(IpBucket::Login))),
        "/introspect" => Some((IpBucket::Every, Some(IpBucket::Introspect))),
        // Registrations, and the changes that reload every replica's
        // client cache (RFC 7592 PUT and DELETE).
        "/register" if method == Method::POST => Some((IpBucket::Every, Some(IpBucket::Register))),
        p if p.starts_with("/register/") && (method == Method::PUT || method == Method::DELETE) => {
            Some((IpBucket::Every, Some(IpBucket::Register)))
        }
        _ => Some((IpBucket::Every, None)),
    }
}

/// The sign-in pages answer people: an HTML page rather than JSON.
fn is_page(path: &str) -> bool {
    matches!(
        path,
        "/authorize" | "/login" | "/consent" | "/logout" | "/assets/authd.css" | "/assets/logo.svg"
    )
}

/// The believed client address of a request (set by [`admit`]).
pub fn client_ip_of(request: &actix_web::HttpRequest) -> Option<ClientIp> {
    request.extensions().get::<ClientIp>().copied()
}

/// Sets the `X-RateLimit-*` headers (unless a handler set tighter ones).
pub fn add_headers(headers: &mut HeaderMap, decision: &Decision) {
    if headers.contains_key(LIMIT) {
        return;
    }
    headers.insert(LIMIT, HeaderValue::from(decision.limit));
    headers.insert(REMAINING, HeaderValue::from(decision.remaining));
    headers.insert(RESET, HeaderValue::from(decision.reset));
    if let Some(wait) = decision.retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(wait));
    }
}

/// The 429 answer for a request refused by `decision`.
pub fn too_many_requests(
    state: &AppState,
    path: &str,
    decision: &Decision,
    request_id: RequestId,
) -> HttpResponse {
    let wait = decision.retry_after.unwrap_or(1);
    let mut response = if is_page(path) {
        state.pages.error(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests",
            &format!(
                "Too many requests came from your network. Wait {}, then try again.",
                super::pages::how_long(wait)
            ),
            request_id,
        )
    } else {
        json_error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            &format!("rate limit exceeded; retry after {wait} seconds"),
            request_id,
        )
    };
    add_headers(response.headers_mut(), decision);
    response
}

/// Runs before the handler: believes an address, takes from its buckets,
/// and either refuses or lets the request on with the decision attached.
pub async fn admit(request: &ServiceRequest) -> Result<Option<Decision>, Box<HttpResponse>> {
    let state = request
        .app_data::<web::Data<AppState>>()
        .expect("AppState is registered")
        .clone();
    let peer = request.peer_addr().map(|a| a.ip());
    let ip = believe(peer, request.headers(), &state.client_ip);
    if let Some(ip) = ip {
        request.extensions_mut().insert(ip);
    }
    let (Some(ip), Some((first, second))) =
        (ip, buckets(request.method(), request.match_info().as_str()))
    else {
        return Ok(None);
    };
    let limits = &state.rate_limits;
    let mut decision = limits.check_ip(first, ip.key).await;
    let mut refused_by = first;
    if decision.allowed()
        && let Some(second) = second
    {
        let other = limits.check_ip(second, ip.key).await;
        if !other.allowed() {
            refused_by = second;
        }
        decision = decision.tighter(other);
    }
    if decision.allowed() {
        request.extensions_mut().insert(decision);
        return Ok(Some(decision));
    }
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .copied()
        .expect("TracingLogger runs first");
    crate::audit::record(crate::audit::Event::RateLimited {
        limit: refused_by.as_str(),
        ip: Some(ip.addr),
        client_id: None,
    });
    Err(Box::new(too_many_requests(
        &state,
        request.match_info().as_str(),
        &decision,
        request_id,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the middleware passes to `client_ip`: every line of the
    /// header, so a line the client sent first cannot stand for it, and a
    /// hop that is not text spoils only itself.
    #[test]
    fn every_line_of_the_header_is_read() {
        use crate::limits::client_ip::ClientIpHeader;
        let settings = ClientIpSettings {
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
            header: ClientIpHeader::XForwardedFor,
            ipv6_prefix: 64,
        };
        let mut headers = HeaderMap::new();
        let name = HeaderName::from_static("x-forwarded-for");
        headers.append(name.clone(), HeaderValue::from_static("6.6.6.6"));
        headers.append(
            name.clone(),
            HeaderValue::from_bytes(b"\xff\xfe, 198.51.100.4").unwrap(),
        );
        let peer = Some("10.0.0.1".parse().unwrap());
        let believed = believe(peer, &headers, &settings).unwrap();
        assert_eq!(
            believed.addr,
            "198.51.100.4".parse::<std::net::IpAddr>().unwrap()
        );
        // The last line names only a trusted proxy: the hop left of it, on
        // the line before, is the client.
        headers.append(name, HeaderValue::from_static("10.0.0.7"));
        let believed = believe(peer, &headers, &settings).unwrap();
        assert_eq!(
            believed.addr,
            "198.51.100.4".parse::<std::net::IpAddr>().unwrap()
        );
        // Another forwarding header is the client's own and ignored.
        let mut only_forwarded = HeaderMap::new();
        only_forwarded.append(
            HeaderName::from_static("forwarded"),
            HeaderValue::from_static("for=198.51.100.66"),
        );
        let believed = believe(peer, &only_forwarded, &settings).unwrap();
        assert_eq!(
            believed.addr,
            "10.0.0.1".parse::<std::net::IpAddr>().unwrap()
        );
    }

    #[test]
    fn probes_are_not_limited_and_well_known_has_its_own_bucket() {
        assert_eq!(buckets(&Method::GET, "/healthz"), None);
        assert_eq!(
            buckets(&Method::GET, "/.well-known/jwks.json"),
            Some((IpBucket::WellKnown, None))
        );
        assert_eq!(
            buckets(&Method::POST, "/login"),
            Some((IpBucket::Every, Some(IpBucket::Login)))
        );
        assert_eq!(
            buckets(&Method::GET, "/login"),
            Some((IpBucket::Every, None))
        );
        assert_eq!(
            buckets(&Method::POST, "/introspect"),
            Some((IpBucket::Every, Some(IpBucket::Introspect)))
        );
    }
}
