//! `GET /.well-known/jwks.json` (RFC 7517 §5): the public keys, serialised
//! once per key-ring change.
use actix_web::http::header;
use actix_web::{HttpResponse, web};

use super::AppState;

/// Short for now; the rotation issue derives it from the key schedule.
pub const JWKS_MAX_AGE: &str = "public, max-age=300";

pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    let body = state.keys.current().jwks.clone();
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, JWKS_MAX_AGE))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .body(body)
}
