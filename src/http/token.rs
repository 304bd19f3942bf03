//! `POST /token` (RFC 6749 §3.2).
use actix_web::http::header;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use tracing_actix_web::RequestId;

use super::AppState;
use super::error::{ApiError, InRequest};
use super::form::read_form;
use crate::oauth::{Error, Params};

/// Token requests are small; 16 KiB leaves room for long scopes.
const BODY_LIMIT: usize = 16 * 1024;

pub async fn token(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    request_id: RequestId,
) -> Result<HttpResponse, ApiError> {
    let params = read_client_request(&request, body, request_id).await?;
    let authorization = single_authorization(&request).in_request(request_id)?;
    let ip = super::rate_limit::client_ip_of(&request);
    let (response, tier, client) = state
        .token_endpoint
        .exchange(authorization, &params, ip)
        .await
        .in_request(request_id)?;
    // RFC 6749 §5.1: tokens must not be cached.
    let mut response = HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(response);
    response
        .extensions_mut()
        .insert(super::cors::CorsClient(client.id.to_string()));
    // The per-client tier is reported when it is tighter than the per-IP
    // bucket the middleware adds.
    if let Some(ip_decision) = request
        .extensions()
        .get::<crate::limits::buckets::Decision>()
        .copied()
        && tier.tighter(ip_decision) == tier
    {
        super::rate_limit::add_headers(response.headers_mut(), &tier);
    }
    Ok(response)
}

/// The form of a request a client authenticates (`/token`, `/revoke`,
/// `/introspect`): no credentials in the URL, at most one `Authorization`
/// header (read again by the caller with [`single_authorization`]), a form
/// body within the limit without repeated parameters.
pub(super) async fn read_client_request(
    request: &HttpRequest,
    body: web::Payload,
    request_id: RequestId,
) -> Result<Params, ApiError> {
    reject_credentials_in_query(request).in_request(request_id)?;
    single_authorization(request).in_request(request_id)?;
    read_form(request, body, BODY_LIMIT)
        .await
        .in_request(request_id)
}

/// RFC 6749 §2.3.1: client credentials "MUST NOT be included in the request URI".
fn reject_credentials_in_query(request: &HttpRequest) -> Result<(), Error> {
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
