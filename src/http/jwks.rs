//! `GET /.well-known/jwks.json` (RFC 7517 §5): the public keys — active,
//! next and still-needed retired ones — serialised once per key-ring change.
//! `Cache-Control: max-age` is derived from the key schedule (a quarter of
//! the pre-publication time, at most an hour), so every cache refetches
//! several times between a next key's publication and its first signature.
//! `ETag` / `If-None-Match` answer `304 Not Modified` (RFC 9110 §13.1.2).
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use super::AppState;

pub async fn jwks(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let ring = state.keys.current();
    let cache_control = format!("public, max-age={}", state.keys.jwks_max_age());
    let matches = request
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == ring.etag);
    let mut response = if matches {
        HttpResponse::NotModified().finish()
    } else {
        HttpResponse::Ok()
            .content_type("application/json")
            .body(ring.jwks.clone())
    };
    let headers = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&ring.etag) {
        headers.insert(header::ETAG, etag);
    }
    if let Ok(value) = HeaderValue::from_str(&cache_control) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}
