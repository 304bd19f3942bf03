//! `GET /healthz`: the process answers. `GET /readyz`: it can serve tokens
//! (the database answers; a signing key is always loaded once authd has
//! started, since start-up fails without one).
use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;

const DATABASE_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({ "status": "ok" }))
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.draining.load(std::sync::atomic::Ordering::SeqCst) {
        return HttpResponse::ServiceUnavailable()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(json!({ "status": "unavailable", "reason": "shutting down" }));
    }
    let database = tokio::time::timeout(DATABASE_TIMEOUT, state.store.ping()).await;
    let reason = match database {
        Err(_) => Some("database did not answer within 2 s"),
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness check: database unreachable");
            Some("database unreachable")
        }
        Ok(Ok(())) => None,
    };
    let response = match reason {
        None => HttpResponse::Ok().json(json!({ "status": "ready" })),
        Some(reason) => HttpResponse::ServiceUnavailable()
            .json(json!({ "status": "unavailable", "reason": reason })),
    };
    let mut response = response;
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}
