//! `GET /login` (the login page of a pending request) and `POST /login`
//! (its form).
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::SecretString;
use tracing_actix_web::RequestId;

use super::AppState;
use super::form::read_form;

/// The login form: a sealed pending request (under 12 KB with every field
/// of the request at its limit, see `signin::flow` and
/// tests/api/sign_in_state.rs), the CSRF token, a username and a password
/// of up to 1024 characters (up to 12 KB percent-encoded): 24 KiB holds the
/// largest honest form.
const BODY_LIMIT: usize = 24 * 1024;

#[derive(serde::Deserialize)]
pub struct PageQuery {
    pub request: Option<String>,
}

pub async fn login_page(
    request: HttpRequest,
    query: web::Query<PageQuery>,
    state: web::Data<AppState>,
    request_id: RequestId,
) -> HttpResponse {
    let cookie = super::session_cookie(&request, &state.pages);
    match state
        .flow
        .login_page(cookie, query.request.as_deref())
        .await
    {
        Ok(step) => state.pages.answer(step.into(), request_id),
        Err(error) => state.pages.internal_error(&error, request_id),
    }
}

pub async fn login(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    request_id: RequestId,
) -> HttpResponse {
    let mut form = match read_form(&request, body, BODY_LIMIT).await {
        Ok(form) => form,
        Err(error) => {
            return state
                .pages
                .form_error("Sign-in cannot continue", &error, request_id);
        }
    };
    let password = SecretString::from(form.take("password").unwrap_or_default());
    let cookie = super::session_cookie(&request, &state.pages);
    let ip = super::rate_limit::client_ip_of(&request);
    match state.flow.login(cookie, &form, password, ip).await {
        Ok(answer) => state.pages.answer(answer, request_id),
        Err(error) => state.pages.internal_error(&error, request_id),
    }
}
