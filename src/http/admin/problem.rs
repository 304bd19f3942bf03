//! RFC 9457 problem details: how every admin API error is answered.
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;
use tracing_actix_web::RequestId;
use utoipa::ToSchema;

/// The body of every error (`application/problem+json`). `type` names the
/// kind of problem (`urn:authd:problem:KIND`, listed in docs/admin-api.md);
/// `detail` says what to change; `request_id` matches the log line.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemBody {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub request_id: Option<String>,
}

/// An admin API error on its way out.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    kind: &'static str,
    detail: String,
    request_id: Option<String>,
    /// `WWW-Authenticate` for 401 and 403 (RFC 6750 §3).
    challenge: Option<String>,
    /// `Allow` for 405.
    allow: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            detail: detail.into(),
            request_id: None,
            challenge: None,
            allow: None,
        }
    }

    /// 400: the request is malformed or a value is not acceptable.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail)
    }

    /// 405 with `Allow` (RFC 9110 §15.5.6).
    pub fn method_not_allowed(method: &str, allowed: &[String]) -> Self {
        Self {
            allow: Some(allowed.join(", ")),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!(
                    "{method} is not an operation here; use {}",
                    allowed.join(" or ")
                ),
            )
        }
    }

    /// 412: `If-Match` names a version that is not the current one.
    pub fn precondition_failed() -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            "the resource changed since the ETag given in If-Match: read it again, then retry",
        )
    }

    /// 401 (RFC 6750 §3.1): no token, or not one for the admin API.
    pub fn unauthorized(error: Option<&'static str>, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        let challenge = match error {
            None => r#"Bearer realm="authd-admin""#.to_owned(),
            Some(error) => format!(
                r#"Bearer realm="authd-admin", error="{error}", error_description="{}""#,
                // RFC 6750 §3: printable ASCII without `"` and `\`.
                detail
                    .chars()
                    .map(|c| match c {
                        '"' | '\\' => '\'',
                        ' '..='~' => c,
                        _ => '?',
                    })
                    .collect::<String>()
            ),
        };
        Self {
            challenge: Some(challenge),
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                error.unwrap_or("unauthorized"),
                detail,
            )
        }
    }

    /// 403 (RFC 6750 §3.1): the token lacks `scope`.
    pub fn insufficient_scope(scope: &str) -> Self {
        Self {
            challenge: Some(format!(
                r#"Bearer realm="authd-admin", error="insufficient_scope", scope="{scope}""#
            )),
            ..Self::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                format!("this operation needs the scope {scope}"),
            )
        }
    }

    /// 500: what failed goes to the log, never to the caller.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(cause = %cause, "admin API request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server could not complete the request; quote the request_id when reporting it",
        )
    }

    /// Names the request the problem belongs to.
    pub fn in_request(mut self, request: &HttpRequest) -> Self {
        self.request_id = request
            .extensions()
            .get::<RequestId>()
            .map(ToString::to_string);
        self
    }

    pub fn with_request_id(mut self, request_id: &RequestId) -> Self {
        self.request_id = Some(request_id.to_string());
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let body = ProblemBody {
            kind: format!("urn:authd:problem:{}", self.kind),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            request_id: self.request_id.clone(),
        };
        let mut response = HttpResponse::build(self.status)
            .content_type("application/problem+json")
            .json(body);
        if let Some(value) = self
            .challenge
            .as_deref()
            .and_then(|c| HeaderValue::from_str(c).ok())
        {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        if let Some(value) = self
            .allow
            .as_deref()
            .and_then(|a| HeaderValue::from_str(a).ok())
        {
            response.headers_mut().insert(header::ALLOW, value);
        }
        response
    }
}
