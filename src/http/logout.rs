//! `end_session_endpoint`: `GET`/`POST /logout` (OpenID Connect
//! RP-Initiated Logout 1.0). With a valid `id_token_hint` for the signed-in
//! user the session ends at once; otherwise the user confirms with a form
//! (CSRF-protected), so a link on another site cannot sign people out.
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;
use tracing_actix_web::RequestId;

use super::AppState;
use super::form::read_body;
use super::pages::see_other;
use crate::oauth::Params;
use crate::oauth::logout::{self, LogoutRequest};
use crate::signin::session::Session;

const BODY_LIMIT: usize = 16 * 1024;

pub async fn logout_get(
    request: HttpRequest,
    state: web::Data<AppState>,
    request_id: RequestId,
) -> HttpResponse {
    let params = Params::parse(request.query_string().as_bytes());
    logout(&request, &state, params, false, request_id).await
}

pub async fn logout_post(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    request_id: RequestId,
) -> HttpResponse {
    let params = match read_body(&request, body, BODY_LIMIT).await {
        Ok(bytes) => Params::parse(&bytes),
        Err(error) => {
            return state
                .pages
                .form_error("Sign-out cannot continue", &error, request_id);
        }
    };
    logout(&request, &state, params, true, request_id).await
}

async fn logout(
    request: &HttpRequest,
    state: &AppState,
    params: Result<Params, crate::oauth::Error>,
    posted: bool,
    request_id: RequestId,
) -> HttpResponse {
    let refuse = |message: &str| {
        state.pages.error(
            StatusCode::BAD_REQUEST,
            "Sign-out cannot continue",
            message,
            request_id,
        )
    };
    let params = match params {
        Ok(params) => params,
        Err(error) => return refuse(&format!("The sign-out request is malformed: {error}.")),
    };
    let checked = match logout::check(
        &state.flow.clients,
        &state.keys,
        &state.flow.issuer,
        &params,
    )
    .await
    {
        Ok(checked) => checked,
        Err(message) => return refuse(&message),
    };
    let cookie = super::session_cookie(request, &state.pages);
    let session = match state.flow.sessions.load(cookie).await {
        Ok(session) => session,
        Err(error) => return state.pages.internal_error(&error, request_id),
    };
    // A dynamically registered client is returned to only when this
    // request ended the session of the user its ID token names, or the
    // person confirmed on authd's page: an old ID token must not make
    // authd redirect anyone who comes along (RFC 9700 §4.11.2).
    let dynamic = checked
        .client
        .as_ref()
        .is_some_and(|c| !c.operator_vouched());
    let Some(session) = session else {
        // Nobody is signed in here: nothing to confirm.
        return signed_out(state, &checked, !dynamic, request_id);
    };
    let vouched = checked
        .hinted_subject
        .as_deref()
        .is_some_and(|sub| session.user_id().is_none_or(|user| user.to_string() == sub));
    let confirmed = posted
        && state
            .flow
            .sessions
            .csrf_matches(&session, params.get("csrf"));
    if vouched || confirmed {
        if let Err(error) = state.flow.sessions.end(&session).await {
            return state.pages.internal_error(&error, request_id);
        }
        let user_id = session.user_id().map(|id| id.to_string());
        tracing::info!(user_id = user_id.as_deref().unwrap_or("-"), "signed out");
        let hinted_user_ended =
            user_id.is_some() && user_id.as_deref() == checked.hinted_subject.as_deref();
        let returns = !dynamic || confirmed || hinted_user_ended;
        return signed_out(state, &checked, returns, request_id);
    }
    confirm_page(state, &session, &checked, request_id)
}

fn confirm_page(
    state: &AppState,
    session: &Session,
    checked: &LogoutRequest,
    request_id: RequestId,
) -> HttpResponse {
    let redirect_origin = checked.redirect.as_ref().map(|r| r.origin());
    state.pages.page(
        StatusCode::OK,
        "logout.html",
        "Sign out",
        json!({
            "client_name": checked.client.as_ref().map(|c| c.name.as_str().to_owned()),
            "client_id": checked.client.as_ref().map(|c| c.id.to_string()),
            "post_logout_redirect_uri": checked.redirect.as_ref().map(|r| r.uri.clone()),
            "state": checked.state,
            "csrf": state.flow.sessions.csrf_token(session),
        }),
        redirect_origin.as_deref(),
        request_id,
    )
}

/// The session is gone: clear the cookie, then go back to the client (if
/// it `returns` there) or show the signed-out page.
fn signed_out(
    state: &AppState,
    checked: &LogoutRequest,
    returns: bool,
    request_id: RequestId,
) -> HttpResponse {
    let mut response = match checked.location().filter(|_| returns) {
        Some(location) => see_other(&location),
        None => state.pages.page(
            StatusCode::OK,
            "signed_out.html",
            "Signed out",
            json!({}),
            None,
            request_id,
        ),
    };
    let _ = response.add_cookie(&state.pages.expired_session_cookie());
    response
}
