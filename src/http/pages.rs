//! HTML pages: templates (minijinja, auto-escaped) loaded once at start,
//! overridable from `AUTHD_TEMPLATES_DIR`; the security headers every page
//! carries; and the mapping from a sign-in [`Step`] to a response.
//!
//! minijinja rather than askama: askama compiles templates into the binary,
//! and operators must be able to re-brand the pages without recompiling.
use std::path::Path;

use actix_web::HttpResponse;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use bytes::Bytes;
use serde::Serialize;
use serde_json::json;
use tracing_actix_web::RequestId;

use crate::signin::session::CookieValue;
use crate::signin::step::{Answer, ConsentView, LoginView, Step, TryLater};

/// The built-in templates and assets, compiled in.
const TEMPLATES: [(&str, &str); 6] = [
    ("base.html", include_str!("../../templates/base.html")),
    ("login.html", include_str!("../../templates/login.html")),
    ("consent.html", include_str!("../../templates/consent.html")),
    ("error.html", include_str!("../../templates/error.html")),
    ("logout.html", include_str!("../../templates/logout.html")),
    (
        "signed_out.html",
        include_str!("../../templates/signed_out.html"),
    ),
];
const CSS: &str = include_str!("../../templates/authd.css");
const LOGO: &str = include_str!("../../templates/logo.svg");

const BRAND: &str = "authd";

#[derive(Debug, thiserror::Error)]
pub enum PagesError {
    #[error("AUTHD_TEMPLATES_DIR: cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("AUTHD_TEMPLATES_DIR: template {name} does not parse: {source}")]
    Template {
        name: &'static str,
        source: minijinja::Error,
    },
}

/// The pages, ready to render.
pub struct Pages {
    env: minijinja::Environment<'static>,
    pub css: Bytes,
    pub logo: Bytes,
    /// Whether the session cookie is `Secure` with the `__Host-` prefix.
    secure_cookie: bool,
}

/// A file from the override directory, or the built-in one.
fn read_override(dir: Option<&Path>, name: &str, built_in: &str) -> Result<String, PagesError> {
    let Some(path) = dir.map(|dir| dir.join(name)) else {
        return Ok(built_in.to_owned());
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(built_in.to_owned()),
        Err(source) => Err(PagesError::Read {
            path: path.display().to_string(),
            source,
        }),
    }
}

impl Pages {
    pub fn load(dir: Option<&Path>, secure_cookie: bool) -> Result<Self, PagesError> {
        let mut env = minijinja::Environment::new();
        // `.html` templates are auto-escaped (minijinja's default for that
        // extension): a value is HTML only if a template says `|safe`.
        for (name, built_in) in TEMPLATES {
            let source = read_override(dir, name, built_in)?;
            env.add_template_owned(name, source)
                .map_err(|source| PagesError::Template { name, source })?;
        }
        Ok(Self {
            env,
            css: read_override(dir, "authd.css", CSS)?.into(),
            logo: read_override(dir, "logo.svg", LOGO)?.into(),
            secure_cookie,
        })
    }

    /// The session cookie's name: `__Host-` needs `Secure` (RFC 6265bis §4.1.3.2).
    pub fn cookie_name(&self) -> &'static str {
        if self.secure_cookie {
            "__Host-authd_session"
        } else {
            "authd_session"
        }
    }

    fn session_cookie(&self, value: &CookieValue) -> Cookie<'static> {
        Cookie::build(self.cookie_name(), value.expose().to_owned())
            .path("/")
            .http_only(true)
            .secure(self.secure_cookie)
            .same_site(SameSite::Lax)
            .finish()
    }

    /// A cookie that removes the session cookie.
    pub fn expired_session_cookie(&self) -> Cookie<'static> {
        let mut cookie = Cookie::build(self.cookie_name(), "")
            .path("/")
            .http_only(true)
            .secure(self.secure_cookie)
            .same_site(SameSite::Lax)
            .finish();
        cookie.make_removal();
        cookie
    }

    fn render(&self, name: &str, context: minijinja::Value) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(context)
    }

    /// A page response with the security headers. `form_action` names the
    /// extra origin the page's forms may end up at (the client, after a
    /// redirect), for CSP `form-action`.
    pub fn page(
        &self,
        status: StatusCode,
        template: &str,
        title: &str,
        values: impl Serialize,
        form_action: Option<&str>,
        request_id: RequestId,
    ) -> HttpResponse {
        let mut context = json!({
            "brand": BRAND,
            "title": title,
            "request_id": request_id.to_string(),
        });
        if let (Some(context), serde_json::Value::Object(values)) = (
            context.as_object_mut(),
            serde_json::to_value(values).unwrap_or_default(),
        ) {
            context.extend(values);
        }
        match self.render(
            template,
            minijinja::Value::from(minijinja::value::Serde(&context)),
        ) {
            Ok(html) => html_response(status, html, form_action),
            Err(error) => {
                tracing::error!(%error, template, "page could not be rendered");
                html_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!(
                        "<!doctype html><title>Error</title><p>The page could not be shown. \
                         Request id: {request_id}</p>"
                    ),
                    None,
                )
            }
        }
    }

    /// The error page.
    pub fn error(
        &self,
        status: StatusCode,
        heading: &str,
        message: &str,
        request_id: RequestId,
    ) -> HttpResponse {
        self.page(
            status,
            "error.html",
            heading,
            json!({ "heading": heading, "message": message }),
            None,
            request_id,
        )
    }

    /// A posted form that could not be read: 413 over the size limit, 408
    /// when it did not arrive in time, 400 otherwise; the page says why.
    pub fn form_error(
        &self,
        heading: &str,
        error: &crate::oauth::Error,
        request_id: RequestId,
    ) -> HttpResponse {
        let status = match error {
            crate::oauth::Error::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            crate::oauth::Error::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            _ => StatusCode::BAD_REQUEST,
        };
        self.error(
            status,
            heading,
            &format!("The form could not be read: {error}."),
            request_id,
        )
    }

    /// A 500 page: the cause is logged, the user gets the request id.
    pub fn internal_error(
        &self,
        cause: &crate::oauth::Error,
        request_id: RequestId,
    ) -> HttpResponse {
        if let crate::oauth::Error::TemporarilyUnavailable(_) = cause {
            let mut response = self.error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                "The server cannot complete this step right now. Please try again in a moment.",
                request_id,
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return response;
        }
        tracing::error!(%request_id, cause = %cause, "request failed");
        self.error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "The server could not complete this step. Please try again in a moment.",
            request_id,
        )
    }

    /// The login page; `error` is the message above the form.
    fn login(
        &self,
        status: StatusCode,
        view: &LoginView,
        error: Option<&str>,
        request_id: RequestId,
    ) -> HttpResponse {
        self.page(
            status,
            "login.html",
            "Sign in",
            json!({
                "client_name": view.client_name,
                "login_hint": view.login_hint,
                "error": error,
                "csrf": view.csrf,
                "request_id_param": view.request_id,
            }),
            Some(&view.redirect_origin),
            request_id,
        )
    }

    fn consent(&self, view: &ConsentView, request_id: RequestId) -> HttpResponse {
        let scope = |s: &crate::signin::step::ScopeView| json!({ "name": s.name, "description": s.description });
        // `scopes` (flat, in order) stays for templates written before
        // APIs grouped them.
        let scopes: Vec<_> = view
            .sections
            .iter()
            .flat_map(|section| section.scopes.iter().map(scope))
            .collect();
        let sections: Vec<_> = view
            .sections
            .iter()
            .map(|section| {
                json!({
                    "title": section.title,
                    "identifier": section.identifier,
                    "scopes": section.scopes.iter().map(scope).collect::<Vec<_>>(),
                })
            })
            .collect();
        self.page(
            StatusCode::OK,
            "consent.html",
            "Allow access",
            json!({
                "client_name": view.client_name,
                "unverified_redirect_host": view.unverified_redirect_host,
                "username": view.username,
                "scopes": scopes,
                "sections": sections,
                "shown_scope": view.shown_scope,
                "csrf": view.csrf,
                "request_id_param": view.request_id,
            }),
            Some(&view.redirect_origin),
            request_id,
        )
    }

    /// Renders a step of the sign-in flow.
    pub fn answer(&self, answer: Answer, request_id: RequestId) -> HttpResponse {
        let mut response = match answer.step {
            Step::Redirect(location) => see_other(&location),
            Step::Login(view) => self.login(StatusCode::OK, &view, view.error, request_id),
            Step::Consent(view) => self.consent(&view, request_id),
            Step::ErrorPage(message) => self.error(
                StatusCode::BAD_REQUEST,
                "Sign-in cannot continue",
                &message,
                request_id,
            ),
            Step::Forbidden => self.error(
                StatusCode::FORBIDDEN,
                "This form has expired",
                "The form was not accepted because it did not come from this sign-in page or \
                 has expired. Go back to the application and try again.",
                request_id,
            ),
            Step::TryLater {
                why,
                retry_after,
                view,
            } => {
                let (status, message) = match why {
                    TryLater::Throttled => (
                        StatusCode::TOO_MANY_REQUESTS,
                        format!(
                            "Too many failed sign-in attempts. Wait {}, then try again.",
                            how_long(retry_after)
                        ),
                    ),
                    TryLater::Busy => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!(
                            "Too many people are signing in right now. Wait {}, then try again.",
                            how_long(retry_after)
                        ),
                    ),
                };
                let mut response = self.login(status, &view, Some(&message), request_id);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
                response
            }
        };
        if let Some(cookie) = answer.set_cookie {
            let _ = response.add_cookie(&self.session_cookie(&cookie));
        }
        response
    }
}

/// `303 See Other`: after a POST the browser follows with a GET, never
/// re-posting the form (307 would re-send the password to the client).
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .finish()
}

/// The headers of every HTML response.
fn html_response(status: StatusCode, html: String, form_action: Option<&str>) -> HttpResponse {
    let form_action = match form_action.filter(|origin| is_origin(origin)) {
        Some(origin) => format!("'self' {origin}"),
        None => "'self'".to_owned(),
    };
    let csp = format!(
        "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; \
         frame-ancestors 'none'; form-action {form_action}"
    );
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, csp))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .body(html)
}

/// An origin fit to put in a CSP source list: `scheme://host[:port]` with
/// no characters that could end the directive.
fn is_origin(value: &str) -> bool {
    (value.starts_with("https://") || value.starts_with("http://"))
        && !value
            .bytes()
            .any(|b| b.is_ascii_whitespace() || matches!(b, b';' | b',' | b'\'' | b'"'))
}

/// A wait as a person reads it: "1 second", "40 seconds", "2 minutes"
/// (rounded up, so the page never promises less than `Retry-After`).
pub fn how_long(seconds: u64) -> String {
    match seconds {
        0 | 1 => "1 second".to_owned(),
        2..=90 => format!("{seconds} seconds"),
        _ => format!("{} minutes", seconds.div_ceil(60)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_read_as_people_say_them() {
        assert_eq!(how_long(1), "1 second");
        assert_eq!(how_long(2), "2 seconds");
        assert_eq!(how_long(90), "90 seconds");
        assert_eq!(how_long(91), "2 minutes");
        assert_eq!(how_long(900), "15 minutes");
    }

    #[test]
    fn built_in_templates_parse_and_escape() {
        let pages = Pages::load(None, false).unwrap();
        let html = pages
            .render(
                "error.html",
                minijinja::Value::from(minijinja::value::Serde(json!({
                    "brand": BRAND, "title": "t", "request_id": "r",
                    "heading": "<b>", "message": "\"><script>alert(1)</script>",
                }))),
            )
            .unwrap();
        assert!(html.contains("&quot;&gt;&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>"));
    }

    #[test]
    fn an_override_replaces_one_file_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("authd.css"), "body{color:red}").unwrap();
        let pages = Pages::load(Some(dir.path()), false).unwrap();
        assert_eq!(&pages.css[..], b"body{color:red}");
        assert_eq!(&pages.logo[..], LOGO.as_bytes());
        std::fs::write(dir.path().join("login.html"), "{% if %}").unwrap();
        assert!(matches!(
            Pages::load(Some(dir.path()), false),
            Err(PagesError::Template {
                name: "login.html",
                ..
            })
        ));
    }
}
