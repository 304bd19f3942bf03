//! The per-IP rate limits every route passes through, the client address
//! (behind trusted proxies only), and the `X-RateLimit-*` headers.
//!
//! Headers (draft-ietf-httpapi-ratelimit-headers, in the widely deployed
//! `X-` form): `X-RateLimit-Limit` (the bucket's size), `-Remaining`,
//! `-Reset` (seconds until the bucket is full again). Refusals are `429`
//! with `Retry-After` (RFC 6585 §4, RFC 9110 §10.2.3): JSON on API routes,
//! the error page on the sign-in pages.
use std::net::IpAddr;

use actix_web::HttpMessage;
use actix_web::dev::ServiceRequest;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpResponse, web};
use tracing_actix_web::RequestId;

use super::AppState;
use super::error::json_error;
use crate::limits::buckets::{ClientIp, ClientIpHeader, ClientIpSettings, Decision, IpBucket};

const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// The address of the client: the one function every consumer of a client
/// IP goes through (per-IP buckets, login throttle, client-authentication
/// failures, audit, CORS preflights, the request log), called once per
/// request by [`admit`].
///
/// The peer, unless the peer is a trusted proxy; then the one header the
/// operator named (`AUTHD_CLIENT_IP_HEADER`), read right to left, skipping
/// trusted proxies (RFC 7239 §8.1): the first address that is not a trusted
/// proxy is the client. Everything left of it was written by the client,
/// and so is any other forwarding header: a proxy appends to the header it
/// writes and passes the others through untouched.
pub fn client_ip(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    settings: &ClientIpSettings,
) -> Option<ClientIp> {
    let believe = |ip: IpAddr| ClientIp::new(ip, settings.ipv6_prefix);
    let peer = peer?.to_canonical();
    let is_trusted = |ip: &IpAddr| settings.trusted_proxies.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(believe(peer));
    }
    let mut nearest = peer;
    for hop in forwarded_chain(headers, settings.header).iter().rev() {
        match hop.map(|ip| ip.to_canonical()) {
            Some(ip) if is_trusted(&ip) => nearest = ip,
            Some(ip) => return Some(believe(ip)),
            // An obfuscated or unparsable hop: nothing left of it can be
            // believed; the last trusted hop stands for the client.
            None => return Some(believe(nearest)),
        }
    }
    Some(believe(nearest))
}

/// The hops the named header lists, in order (several header lines are one
/// list, RFC 9110 §5.3). Each hop is parsed on its own, so a hop the client
/// wrote in bytes that are not text spoils only itself, not the hops the
/// proxies appended on its right.
fn forwarded_chain(headers: &HeaderMap, header: ClientIpHeader) -> Vec<Option<IpAddr>> {
    let hops = headers
        .get_all(header.name())
        .flat_map(|line| line.as_bytes().split(|b| *b == b','))
        .map(|hop| std::str::from_utf8(hop).ok());
    match header {
        ClientIpHeader::Forwarded => hops
            .map(|element| {
                // RFC 7239 §4: `for=` among the element's pairs; an element
                // without one names no address.
                element?.split(';').find_map(|pair| {
                    let (name, value) = pair.split_once('=')?;
                    name.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| parse_node(value.trim().trim_matches('"')))
                })?
            })
            .collect(),
        ClientIpHeader::XForwardedFor | ClientIpHeader::XRealIp => {
            hops.map(|hop| parse_node(hop?.trim())).collect()
        }
    }
}

/// `192.0.2.1`, `192.0.2.1:443`, `[2001:db8::1]`, `[2001:db8::1]:443`,
/// `2001:db8::1`; anything else (`unknown`, `_hidden`) is `None`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (host, _port) = node.rsplit_once(':')?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// Which per-IP buckets a request draws from, besides the general one.
fn buckets(method: &Method, path: &str) -> Option<(IpBucket, Option<IpBucket>)> {
    match path {
        // Probes of load balancers and orchestrators are never limited.
        "/healthz" | "/readyz" => None,
        p if p.starts_with("/.well-known/") => Some((IpBucket::WellKnown, None)),
        "/login" if method == Method::POST => Some((IpBucket::Every, Some(IpBucket::Login))),
        "/introspect" => Some((IpBucket::Every, Some(IpBucket::Introspect))),
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
pub fn admit(request: &ServiceRequest) -> Result<Option<Decision>, Box<HttpResponse>> {
    let state = request
        .app_data::<web::Data<AppState>>()
        .expect("AppState is registered");
    let peer = request.peer_addr().map(|a| a.ip());
    let ip = client_ip(peer, request.headers(), &state.client_ip);
    if let Some(ip) = ip {
        request.extensions_mut().insert(ip);
    }
    let (Some(ip), Some((first, second))) =
        (ip, buckets(request.method(), request.match_info().as_str()))
    else {
        return Ok(None);
    };
    let limits = &state.rate_limits;
    let mut decision = limits.check_ip(first, ip.key);
    let mut refused_by = first;
    if decision.allowed()
        && let Some(second) = second
    {
        let other = limits.check_ip(second, ip.key);
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
        state,
        request.match_info().as_str(),
        &decision,
        request_id,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn settings(trusted: &[&str], header: ClientIpHeader) -> ClientIpSettings {
        ClientIpSettings {
            trusted_proxies: trusted.iter().map(|t| t.parse().unwrap()).collect(),
            header,
            ipv6_prefix: 64,
        }
    }

    fn believed(peer: &str, headers: &HeaderMap, settings: &ClientIpSettings) -> IpAddr {
        client_ip(Some(ip(peer)), headers, settings).unwrap().addr
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let trusted = settings(&["10.0.0.0/8"], ClientIpHeader::XForwardedFor);
        let spoof = headers(&[("x-forwarded-for", "1.2.3.4")]);
        // An untrusted peer's headers are ignored.
        assert_eq!(believed("203.0.113.7", &spoof, &trusted), ip("203.0.113.7"));
        // No trusted proxies configured (the default): never believed.
        let nobody = settings(&[], ClientIpHeader::XForwardedFor);
        assert_eq!(believed("10.0.0.1", &spoof, &nobody), ip("10.0.0.1"));
        // Behind a trusted proxy: the rightmost untrusted hop, whatever
        // the client wrote on the left.
        let chain = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.2, 10.0.0.9")]);
        assert_eq!(believed("10.0.0.1", &chain, &trusted), ip("198.51.100.2"));
        // Several header lines form one list.
        let lines = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.3"),
        ]);
        assert_eq!(believed("10.0.0.1", &lines, &trusted), ip("198.51.100.3"));
        // A trusted peer with no header is the client.
        assert_eq!(
            believed("10.0.0.1", &HeaderMap::new(), &trusted),
            ip("10.0.0.1")
        );
    }

    /// Security review finding 1: nginx, HAProxy and Envoy append to
    /// X-Forwarded-For and pass a client's own `Forwarded` through. Only
    /// the header the operator named is read.
    #[test]
    fn only_the_named_header_is_read() {
        let xff = settings(&["10.0.0.0/8"], ClientIpHeader::XForwardedFor);
        let spoofed = headers(&[
            ("forwarded", "for=198.51.100.66"),
            ("x-real-ip", "198.51.100.67"),
            ("x-forwarded-for", "203.0.113.5"),
        ]);
        assert_eq!(believed("10.0.0.1", &spoofed, &xff), ip("203.0.113.5"));
        // Without the named header the proxy itself stands for the client,
        // never the client's own `Forwarded`.
        let only_forwarded = headers(&[("forwarded", "for=198.51.100.66")]);
        assert_eq!(believed("10.0.0.1", &only_forwarded, &xff), ip("10.0.0.1"));

        let rfc7239 = settings(&["10.0.0.0/8"], ClientIpHeader::Forwarded);
        let forwarded = headers(&[
            (
                "forwarded",
                r#"for=6.6.6.6, for="[2001:db8::7]:4711";proto=https"#,
            ),
            ("x-forwarded-for", "198.51.100.9"),
        ]);
        assert_eq!(
            believed("10.0.0.1", &forwarded, &rfc7239),
            ip("2001:db8::7")
        );
        let port = headers(&[("forwarded", "for=192.0.2.60:8080")]);
        assert_eq!(believed("10.0.0.1", &port, &rfc7239), ip("192.0.2.60"));
        // An obfuscated hop: the last trusted hop stands for the client.
        let hidden = headers(&[("forwarded", "for=_hidden, for=10.0.0.5")]);
        assert_eq!(believed("10.0.0.1", &hidden, &rfc7239), ip("10.0.0.5"));
        // X-Forwarded-For is the client's own when the proxy writes Forwarded.
        let xff_only = headers(&[("x-forwarded-for", "198.51.100.9")]);
        assert_eq!(believed("10.0.0.1", &xff_only, &rfc7239), ip("10.0.0.1"));

        let real_ip = settings(&["10.0.0.0/8"], ClientIpHeader::XRealIp);
        assert_eq!(
            believed("10.0.0.1", &spoofed, &real_ip),
            ip("198.51.100.67")
        );
    }

    #[test]
    fn a_hop_that_is_not_text_spoils_only_itself() {
        let trusted = settings(&["10.0.0.0/8"], ClientIpHeader::XForwardedFor);
        let mut map = HeaderMap::new();
        map.append(
            HeaderName::from_static("x-forwarded-for"),
            HeaderValue::from_bytes(b"\xff\xfe, 198.51.100.4").unwrap(),
        );
        assert_eq!(believed("10.0.0.1", &map, &trusted), ip("198.51.100.4"));
    }

    #[test]
    fn ipv4_mapped_peers_and_hops_are_ipv4() {
        let trusted = settings(&["10.0.0.0/8"], ClientIpHeader::XForwardedFor);
        let chain = headers(&[("x-forwarded-for", "::ffff:198.51.100.8")]);
        assert_eq!(
            believed("::ffff:10.0.0.1", &chain, &trusted),
            ip("198.51.100.8")
        );
        let believed_v6 = client_ip(Some(ip("2001:db8::1")), &HeaderMap::new(), &trusted).unwrap();
        assert_eq!(
            believed_v6.key,
            crate::limits::buckets::IpKey::new(ip("2001:db8::ffff"), 64)
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
