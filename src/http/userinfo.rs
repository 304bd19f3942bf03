//! `GET`/`POST /userinfo` (OIDC Core §5.3) with RFC 6750 bearer tokens:
//! from the `Authorization` header (§2.1) or a form body (§2.2), never
//! both; errors in `WWW-Authenticate` (§3).
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use tracing_actix_web::RequestId;

use super::AppState;
use super::error::json_error;
use super::form::read_form;
use crate::oauth::Error;

const BODY_LIMIT: usize = 16 * 1024;

pub async fn userinfo_get(
    request: HttpRequest,
    state: web::Data<AppState>,
    request_id: RequestId,
) -> HttpResponse {
    let token = bearer_from_header(&request).and_then(|header| {
        if query_has_token(&request) {
            Err(in_query())
        } else {
            Ok(header)
        }
    });
    respond(&state, token, request_id).await
}

pub async fn userinfo_post(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    request_id: RequestId,
) -> HttpResponse {
    let from_header = match bearer_from_header(&request) {
        Ok(token) => token,
        Err(error) => return challenge(&error, request_id),
    };
    let has_body = request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes()
                .starts_with(b"application/x-www-form-urlencoded")
        });
    let from_body = if has_body {
        match read_form(&request, body, BODY_LIMIT).await {
            Ok(mut form) => form.take("access_token"),
            Err(error) => return challenge(&error, request_id),
        }
    } else {
        None
    };
    let token = match (from_header, from_body) {
        (Some(_), Some(_)) => Err(two_methods()),
        _ if query_has_token(&request) => Err(in_query()),
        (header, body) => Ok(header.or(body)),
    };
    respond(&state, token, request_id).await
}

fn two_methods() -> Error {
    // RFC 6750 §2: "Clients MUST NOT use more than one method".
    Error::InvalidRequest("send the access token one way only".into())
}

fn in_query() -> Error {
    Error::InvalidRequest("send the access token in the Authorization header, not the URL".into())
}

/// A token in the URL leaks into logs and history (RFC 6750 §2.3 says
/// SHOULD NOT); authd does not accept it.
fn query_has_token(request: &HttpRequest) -> bool {
    form_urlencoded::parse(request.query_string().as_bytes())
        .any(|(name, _)| name == "access_token")
}

/// The token of `Authorization: Bearer …` (scheme case-insensitive), if
/// any. Another scheme is no bearer token: RFC 6750 §3.1 answers it with a
/// bare challenge, without an error code.
pub(crate) fn bearer_from_header(request: &HttpRequest) -> Result<Option<String>, Error> {
    let mut values = request.headers().get_all(header::AUTHORIZATION);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Error::InvalidRequest(
            "more than one Authorization header".into(),
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| Error::InvalidRequest("malformed Authorization header".into()))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    match token.trim() {
        "" => Err(Error::InvalidRequest(
            "the Bearer scheme needs a token".into(),
        )),
        token => Ok(Some(token.to_owned())),
    }
}

async fn respond(
    state: &AppState,
    token: Result<Option<String>, Error>,
    request_id: RequestId,
) -> HttpResponse {
    let token = match token {
        Ok(Some(token)) => token,
        Ok(None) => {
            // RFC 6750 §3.1: no credentials → a bare challenge, no error code.
            let mut response = HttpResponse::Unauthorized()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="authd""#),
            );
            return response;
        }
        Err(error) => return challenge(&error, request_id),
    };
    match state.userinfo.claims(&token).await {
        Ok(claims) => {
            let mut response = HttpResponse::Ok()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .insert_header((header::PRAGMA, "no-cache"))
                .json(&claims);
            response
                .extensions_mut()
                .insert(super::cors::CorsClient(claims.client_id));
            response
        }
        Err(error) => challenge(&error, request_id),
    }
}

/// RFC 6750 §3: the error in `WWW-Authenticate` and in a JSON body.
fn challenge(error: &Error, request_id: RequestId) -> HttpResponse {
    let status = match error {
        Error::InvalidToken(_) => StatusCode::UNAUTHORIZED,
        Error::InsufficientScope(_) => StatusCode::FORBIDDEN,
        Error::Internal(cause) => {
            tracing::error!(%request_id, cause, "userinfo failed");
            return json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "the server could not complete the request; quote the request_id when reporting it",
                request_id,
            );
        }
        // Not about the token: the common error path (status, Retry-After,
        // rate-limit headers) and no challenge.
        Error::PayloadTooLarge(_)
        | Error::RequestTimeout
        | Error::RateLimited(_)
        | Error::TemporarilyUnavailable(_) => {
            use actix_web::ResponseError;
            return super::error::ApiError::new(error.clone(), request_id).error_response();
        }
        _ => StatusCode::BAD_REQUEST,
    };
    // RFC 6750 §3: the same character set as RFC 6749 §5.2 (no `"`).
    let description = error.description();
    let mut value = format!(
        r#"Bearer realm="authd", error="{}", error_description="{description}""#,
        error.code(),
    );
    if matches!(error, Error::InsufficientScope(_)) {
        value.push_str(r#", scope="openid""#);
    }
    let mut response = json_error(status, error.code(), &description, request_id);
    if let Ok(value) = HeaderValue::from_str(&value) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}
