//! `POST /revoke` (RFC 7009 §2) and `POST /introspect` (RFC 7662 §2):
//! form bodies with client authentication, read as at `/token`.
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use tracing_actix_web::RequestId;

use super::AppState;
use super::error::{ApiError, InRequest};
use super::token::{read_client_request, single_authorization};

/// RFC 7009 §2.2: 200 whether or not the token was valid or known.
pub async fn revoke(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    request_id: RequestId,
) -> Result<HttpResponse, ApiError> {
    let params = read_client_request(&request, body, request_id).await?;
    let authorization = single_authorization(&request).in_request(request_id)?;
    let client = state
        .token_endpoint
        .revoke(
            authorization,
            &params,
            super::rate_limit::client_ip_of(&request),
        )
        .await
        .in_request(request_id)?;
    let mut response = HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish();
    response
        .extensions_mut()
        .insert(super::cors::CorsClient(client.to_string()));
    Ok(response)
}

/// RFC 7662 §2.2: the token's state as JSON; never cached.
pub async fn introspect(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    request_id: RequestId,
) -> Result<HttpResponse, ApiError> {
    let params = read_client_request(&request, body, request_id).await?;
    let authorization = single_authorization(&request).in_request(request_id)?;
    let answer = state
        .token_endpoint
        .introspect(
            authorization,
            &params,
            super::rate_limit::client_ip_of(&request),
        )
        .await
        .in_request(request_id)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(answer))
}
