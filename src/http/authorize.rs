//! `GET` and `POST /authorize` (RFC 6749 §3.1, OIDC Core §3.1.2.1: both
//! methods must be supported). The checks and the flow live in
//! `signin::flow`; this handler reads the parameters and the
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
        // A cross-site form post does not carry the SameSite=Lax session
        // cookie: answering it here would start a new session and replace
        // the cookie of a signed-in user. The same request as a top-level
        // GET does carry it (OIDC Core §3.1.2.1 allows both methods).
        Ok(bytes) if super::session_cookie(&request, &state.pages).is_none() => {
            // Re-encoded, so nothing in the body reaches the header raw.
            let query: String = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form_urlencoded::parse(&bytes))
                .finish();
            super::pages::see_other(&format!("/authorize?{query}"))
        }
        Ok(bytes) => authorize(&request, &state, &bytes, request_id).await,
        Err(error) => state
            .pages
            .form_error("Sign-in cannot continue", &error, request_id),
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
