//! Dynamic client registration: `POST /register` (RFC 7591 §3) and the
//! client configuration endpoint `GET|PUT|DELETE /register/{client_id}`
//! (RFC 7592 §2). With `AUTHD_REGISTRATION=off` (the default) both answer
//! 404, as an unknown path does, and discovery names no
//! `registration_endpoint`.
//!
//! Errors: RFC 7591 §3.2.2 JSON (`invalid_redirect_uri`,
//! `invalid_client_metadata`, 400); a missing or wrong bearer token is
//! RFC 6750 §3's challenge (401).
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use tracing_actix_web::RequestId;

use super::AppState;
use super::error::json_error;
use crate::clients::dynamic::{DynamicError, Registered, Registrar, RegistrationMode, response};
use crate::oauth::metadata::endpoint;

/// A registration is a few hundred bytes; 16 KiB is generous.
const MAX_BODY: usize = 16 * 1024;

fn registrar(state: &AppState) -> Registrar<'_> {
    Registrar {
        store: state.store.as_ref(),
        secrets: &state.token_endpoint.client_secrets,
        tokens: &state.registration_tokens,
        clock: state.clock.as_ref(),
        tiers: state.rate_limits.settings(),
        settings: &state.registration,
    }
}

fn client_uri(state: &AppState, client_id: &str) -> String {
    // Client ids are UUIDs for registered clients; an operator's may hold
    // other VSCHARs, so the path segment is percent-encoded.
    let segment: String =
        url::form_urlencoded::byte_serialize(client_id.as_bytes()).collect::<String>();
    endpoint(&state.flow.issuer, &format!("/register/{segment}"))
}

fn no_store(mut response: HttpResponse) -> HttpResponse {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn answer(state: &AppState, status: StatusCode, registered: &Registered) -> HttpResponse {
    let uri = client_uri(state, registered.client.id.as_str());
    no_store(HttpResponse::build(status).json(response(registered, &uri)))
}

/// The one rendering of a [`DynamicError`].
fn error(error: DynamicError, request_id: RequestId) -> Box<HttpResponse> {
    Box::new(render(error, request_id))
}

fn render(error: DynamicError, request_id: RequestId) -> HttpResponse {
    let description = error.to_string();
    match error {
        DynamicError::InvalidRedirectUri(_) => json_error(
            StatusCode::BAD_REQUEST,
            "invalid_redirect_uri",
            &description,
            request_id,
        ),
        DynamicError::InvalidClientMetadata(_) => json_error(
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
            &description,
            request_id,
        ),
        // RFC 6750 §3.1: no credentials → a bare challenge, no error code.
        DynamicError::TokenRequired => {
            let mut response = json_error(
                StatusCode::UNAUTHORIZED,
                "invalid_request",
                "a bearer token is required: Authorization: Bearer TOKEN",
                request_id,
            );
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="authd""#),
            );
            response
        }
        DynamicError::InvalidToken => {
            let mut response = json_error(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                &description,
                request_id,
            );
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    r#"Bearer realm="authd", error="invalid_token", error_description="the bearer token is unknown, expired or used up""#,
                ),
            );
            response
        }
        DynamicError::Changed => json_error(
            StatusCode::CONFLICT,
            "invalid_request",
            &description,
            request_id,
        ),
        DynamicError::Store(cause) => {
            tracing::error!(%request_id, error = %cause, "dynamic registration failed");
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "the server could not complete the request; quote the request_id when reporting it",
                request_id,
            )
        }
    }
}

/// The bearer token presented, `Ok(None)` for none.
fn presented(
    request: &HttpRequest,
    request_id: RequestId,
) -> Result<Option<String>, Box<HttpResponse>> {
    super::userinfo::bearer_from_header(request).map_err(|e| {
        Box::new(json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &e.description(),
            request_id,
        ))
    })
}

/// The metadata document of a `POST` or `PUT`: JSON within 16 KiB.
fn metadata(
    request: &HttpRequest,
    body: &web::Bytes,
    request_id: RequestId,
) -> Result<serde_json::Value, Box<HttpResponse>> {
    if body.len() > MAX_BODY {
        return Err(Box::new(json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            "the metadata may be at most 16 KiB",
            request_id,
        )));
    }
    let json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(Box::new(json_error(
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
            "the client metadata must be sent as Content-Type: application/json (RFC 7591 §3.1)",
            request_id,
        )));
    }
    serde_json::from_slice(body).map_err(|_| {
        Box::new(json_error(
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
            "the body is not valid JSON",
            request_id,
        ))
    })
}

/// What every request here checks first: registration is on (off, the
/// paths do not exist), and the bearer token it presents, if any.
fn begin(
    state: &AppState,
    request: &HttpRequest,
    request_id: RequestId,
) -> Result<Option<String>, Box<HttpResponse>> {
    if state.registration.mode == RegistrationMode::Off {
        return Err(Box::new(json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint",
            request_id,
        )));
    }
    presented(request, request_id)
}

/// `POST /register`.
pub async fn register(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Bytes,
    request_id: RequestId,
) -> HttpResponse {
    let run = async {
        let token = begin(&state, &request, request_id)?;
        let metadata = metadata(&request, &body, request_id)?;
        registrar(&state)
            .register(token.as_deref(), &metadata)
            .await
            .map(|registered| answer(&state, StatusCode::CREATED, &registered))
            .map_err(|e| error(e, request_id))
    };
    run.await
        .unwrap_or_else(|response: Box<HttpResponse>| *response)
}

/// `GET /register/{client_id}`.
pub async fn read(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    request_id: RequestId,
) -> HttpResponse {
    let run = async {
        let token = begin(&state, &request, request_id)?;
        let client = registrar(&state)
            .read(&path, token.as_deref())
            .await
            .map_err(|e| error(e, request_id))?;
        // RFC 7592 §3: the answer carries the registration access token;
        // authd keeps only its digest, so it echoes the one presented
        // (which has just been checked to be the current one).
        let registered = Registered {
            client,
            client_secret: None,
            access_token: token.map(secrecy::SecretString::from),
        };
        Ok(answer(&state, StatusCode::OK, &registered))
    };
    run.await
        .unwrap_or_else(|response: Box<HttpResponse>| *response)
}

/// `PUT /register/{client_id}`.
pub async fn replace(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    request_id: RequestId,
) -> HttpResponse {
    let run = async {
        let token = begin(&state, &request, request_id)?;
        let metadata = metadata(&request, &body, request_id)?;
        registrar(&state)
            .replace(&path, token.as_deref(), &metadata)
            .await
            .map(|registered| answer(&state, StatusCode::OK, &registered))
            .map_err(|e| error(e, request_id))
    };
    run.await
        .unwrap_or_else(|response: Box<HttpResponse>| *response)
}

/// `DELETE /register/{client_id}`.
pub async fn remove(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    request_id: RequestId,
) -> HttpResponse {
    let run = async {
        let token = begin(&state, &request, request_id)?;
        registrar(&state)
            .remove(&path, token.as_deref())
            .await
            .map_err(|e| error(e, request_id))?;
        Ok(no_store(HttpResponse::NoContent().finish()))
    };
    run.await
        .unwrap_or_else(|response: Box<HttpResponse>| *response)
}
