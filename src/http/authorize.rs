//! `GET` and `POST /authorize` (RFC 6749 §3.1, OIDC Core §3.1.2.1: both
//! methods must be supported). The checks and the flow live in
//! `oauth::authorization`; this handler reads the parameters and the
//! session cookie and renders the step.
use actix_web::{HttpRequest, HttpResponse, web};
use tracing_actix_web::RequestId;

use super::AppState;
use super::form::read_body;
use crate::oauth::Params;

/// Authorization requests are URLs in practice; 16 KiB is generous.
const BODY_LIMIT: usize = 16 * 1024;

pub async fn authorize_get(
    request: HttpRequest,
    state: web::Data<AppState>,
    request_id: RequestId,
) -> HttpResponse {
    let query = request.query_string().as_bytes().to_vec();
    authorize(&request, &state, &query, request_id).await
}

pub async fn authorize_post(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    request_id: RequestId,
) -> HttpResponse {
    match read_body(&request, body, BODY_LIMIT).await {
        Ok(bytes) => authorize(&request, &state, &bytes, request_id).await,
        Err(error) => state.pages.error(
            actix_web::http::StatusCode::BAD_REQUEST,
            "Sign-in cannot continue",
            &error.to_string(),
            request_id,
        ),
    }
}

async fn authorize(
    request: &HttpRequest,
    state: &AppState,
    encoded: &[u8],
    request_id: RequestId,
) -> HttpResponse {
    let (params, repeated) = Params::parse_keeping_repeats(encoded);
    let cookie = super::session_cookie(request, &state.pages);
    match state.flow.authorize(&params, &repeated, cookie).await {
        Ok(answer) => state.pages.answer(answer, request_id),
        Err(error) => state.pages.internal_error(&error, request_id),
    }
}
