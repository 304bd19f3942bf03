//! `GET /consent` (the consent page of a pending request) and
//! `POST /consent` (Allow / Deny).
use actix_web::{HttpRequest, HttpResponse, web};
use tracing_actix_web::RequestId;

use super::AppState;
use super::form::read_form;
use super::login::PageQuery;

const BODY_LIMIT: usize = 8 * 1024;

pub async fn consent_page(
    request: HttpRequest,
    query: web::Query<PageQuery>,
    state: web::Data<AppState>,
    request_id: RequestId,
) -> HttpResponse {
    let cookie = super::session_cookie(&request, &state.pages);
    match state
        .flow
        .consent_page(cookie, query.request.as_deref())
        .await
    {
        Ok(step) => state.pages.answer(step.into(), request_id),
        Err(error) => state.pages.internal_error(&error, request_id),
    }
}

pub async fn consent(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    request_id: RequestId,
) -> HttpResponse {
    let form = match read_form(&request, body, BODY_LIMIT).await {
        Ok(form) => form,
        Err(error) => {
            return state
                .pages
                .form_error("Sign-in cannot continue", &error, request_id);
        }
    };
    let cookie = super::session_cookie(&request, &state.pages);
    match state.flow.consent(cookie, &form).await {
        Ok(step) => state.pages.answer(step.into(), request_id),
        Err(error) => state.pages.internal_error(&error, request_id),
    }
}
