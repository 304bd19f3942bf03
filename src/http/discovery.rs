//! `GET /.well-known/openid-configuration` (OIDC Discovery §4) and
//! `GET /.well-known/oauth-authorization-server` (RFC 8414 §3): one document.
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use bytes::Bytes;

use super::AppState;

pub async fn metadata(state: web::Data<AppState>) -> HttpResponse {
    let body = Bytes::clone(&state.metadata.load());
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .body(body)
}
