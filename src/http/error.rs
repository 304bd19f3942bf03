//! The one place errors become HTTP responses (RFC 6749 §5.2).
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;
use tracing_actix_web::RequestId;

use crate::oauth::Error;

/// RFC 6749 §5.2 error body, plus the request id so that a report can be
/// matched to a log line.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
    request_id: String,
}

/// An OAuth error on its way out, with the request it belongs to.
#[derive(Debug)]
pub struct ApiError {
    error: Error,
    request_id: RequestId,
}

impl ApiError {
    pub fn new(error: Error, request_id: RequestId) -> Self {
        Self { error, request_id }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.error.code())
    }
}

pub trait InRequest<T> {
    fn in_request(self, request_id: RequestId) -> Result<T, ApiError>;
}

impl<T> InRequest<T> for Result<T, Error> {
    fn in_request(self, request_id: RequestId) -> Result<T, ApiError> {
        self.map_err(|error| ApiError { error, request_id })
    }
}

/// The `WWW-Authenticate` challenge for client authentication (RFC 6749
/// §5.2, RFC 7617).
const BASIC_CHALLENGE: &str = r#"Basic realm="authd", charset="UTF-8""#;

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match &self.error {
            Error::InvalidClient(_) | Error::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Error::InsufficientScope(_) => StatusCode::FORBIDDEN,
            Error::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Error::TemporarilyUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let description = match &self.error {
            Error::Internal(cause) => {
                tracing::error!(request_id = %self.request_id, cause, "request failed");
                "the server could not complete the request; quote the request_id when reporting it"
                    .to_owned()
            }
            other => other.description(),
        };
        let mut response = json_error(
            self.status_code(),
            self.error.code(),
            &description,
            self.request_id,
        );
        let headers = response.headers_mut();
        match &self.error {
            Error::InvalidClient(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(BASIC_CHALLENGE),
                );
            }
            Error::TemporarilyUnavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Error::RateLimited(decision) => super::rate_limit::add_headers(headers, decision),
            _ => {}
        }
        response
    }
}

/// A JSON error response that no cache keeps (RFC 6749 §5.1 applies the
/// same headers to errors as to tokens). The description is put in the
/// RFC 6749 §5.2 character set here, whoever wrote it.
pub fn json_error(
    status: StatusCode,
    code: &str,
    description: &str,
    request_id: RequestId,
) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(ErrorBody {
            error: code,
            error_description: &crate::oauth::error::description_text(description),
            request_id: request_id.to_string(),
        })
}

fn method_not_allowed(allow: &'static str, request_id: RequestId) -> HttpResponse {
    let mut response = json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        &format!("this endpoint accepts {allow} only"),
        request_id,
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

pub async fn method_not_allowed_post(request_id: RequestId) -> HttpResponse {
    method_not_allowed("POST", request_id)
}

pub async fn method_not_allowed_get(request_id: RequestId) -> HttpResponse {
    method_not_allowed("GET, HEAD", request_id)
}

/// `/authorize` and `/logout`: their GET has effects (a pending request, a
/// sign-out prompt) that a HEAD, whose answer nobody sees, should not have.
pub async fn method_not_allowed_get_post(request_id: RequestId) -> HttpResponse {
    method_not_allowed("GET, POST", request_id)
}

/// The sign-in pages and `/userinfo`: HEAD is GET without the body (RFC
/// 9110 §9.3.2).
pub async fn method_not_allowed_get_head_post(request_id: RequestId) -> HttpResponse {
    method_not_allowed("GET, HEAD, POST", request_id)
}

/// RFC 7592's client configuration endpoint.
pub async fn method_not_allowed_get_put_delete(request_id: RequestId) -> HttpResponse {
    method_not_allowed("GET, PUT, DELETE", request_id)
}

pub async fn not_found(_request: HttpRequest, request_id: RequestId) -> HttpResponse {
    json_error(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint",
        request_id,
    )
}
