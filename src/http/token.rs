//! `POST /token` (RFC 6749 §3.2).
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use tracing_actix_web::RequestId;

use super::AppState;
use super::error::{ApiError, InRequest};
use super::form::read_form;
use crate::oauth::Error;

/// Token requests are small; 16 KiB leaves room for long scopes.
const BODY_LIMIT: usize = 16 * 1024;

pub async fn token(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    request_id: RequestId,
) -> Result<HttpResponse, ApiError> {
    reject_credentials_in_query(&request).in_request(request_id)?;
    let authorization = single_authorization(&request).in_request(request_id)?;
    let params = read_form(&request, body, BODY_LIMIT)
        .await
        .in_request(request_id)?;
    let response = state
        .token_endpoint
        .exchange(authorization, &params)
        .await
        .in_request(request_id)?;
    // RFC 6749 §5.1: tokens must not be cached.
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(response))
}

/// RFC 6749 §2.3.1: client credentials "MUST NOT be included in the request URI".
pub(super) fn reject_credentials_in_query(request: &HttpRequest) -> Result<(), Error> {
    // Every pair, repeats included: a repeated name must not slip past.
    let in_query = form_urlencoded::parse(request.query_string().as_bytes())
        .any(|(name, _)| name == "client_secret" || name == "client_id");
    if in_query {
        return Err(Error::InvalidRequest(
            "client credentials must not be sent in the URL (RFC 6749 §2.3.1)".into(),
        ));
    }
    Ok(())
}

pub(super) fn single_authorization(request: &HttpRequest) -> Result<Option<&[u8]>, Error> {
    let mut values = request.headers().get_all(header::AUTHORIZATION);
    let first = values.next();
    if values.next().is_some() {
        return Err(Error::InvalidRequest(
            "more than one Authorization header".into(),
        ));
    }
    Ok(first.map(|value| value.as_bytes()))
}
