//! The pages' stylesheet and logo, served by authd itself (no third-party
//! resources; CSP `default-src 'self'`).
use actix_web::http::header;
use actix_web::{HttpResponse, web};

use super::AppState;

const CACHE: &str = "public, max-age=3600";

pub async fn stylesheet(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, CACHE))
        .body(state.pages.css.clone())
}

pub async fn logo(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("image/svg+xml")
        .insert_header((header::CACHE_CONTROL, CACHE))
        // An SVG opened directly must not run anything.
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'",
        ))
        .body(state.pages.logo.clone())
}
