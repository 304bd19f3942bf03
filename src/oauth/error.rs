//! OAuth error codes, each with the rule it comes from. Only `http::error`
//! turns them into status codes, headers and bodies.
use std::borrow::Cow;

/// An OAuth error. Descriptions are fixed strings or built from values that
/// are not secret: never from a secret, token, code or password.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// RFC 6749 §5.2: malformed request, missing or repeated parameter.
    #[error("{0}")]
    InvalidRequest(Cow<'static, str>),
    /// RFC 6749 §5.2: client authentication failed. Always 401.
    #[error("{0}")]
    InvalidClient(Cow<'static, str>),
    /// RFC 6749 §5.2: the grant (code, refresh token) is invalid.
    #[error("{0}")]
    InvalidGrant(Cow<'static, str>),
    /// RFC 6749 §5.2: the client may not use this grant type.
    #[error("{0}")]
    UnauthorizedClient(Cow<'static, str>),
    /// RFC 6749 §5.2: the grant type is not supported by this server.
    #[error("{0}")]
    UnsupportedGrantType(Cow<'static, str>),
    /// RFC 6749 §5.2: the scope is malformed, unknown or not allowed.
    #[error("{0}")]
    InvalidScope(Cow<'static, str>),
    /// RFC 8707 §2: a `resource` is invalid, unknown, or not one the client
    /// or the authorization covers.
    #[error("{0}")]
    InvalidTarget(Cow<'static, str>),
    /// RFC 6749 §4.1.2.1: `response_type` is not `code`.
    #[error("{0}")]
    UnsupportedResponseType(Cow<'static, str>),
    /// RFC 6749 §4.1.2.1: the user (or the server) denied the request.
    #[error("{0}")]
    AccessDenied(Cow<'static, str>),
    /// OIDC Core §3.1.2.6: `prompt=none` but nobody is signed in.
    #[error("{0}")]
    LoginRequired(Cow<'static, str>),
    /// OIDC Core §3.1.2.6: `prompt=none` but consent is needed.
    #[error("{0}")]
    ConsentRequired(Cow<'static, str>),
    /// OIDC Core §3.1.2.6: the `request` parameter is not supported.
    #[error("request objects are not supported")]
    RequestNotSupported,
    /// OIDC Core §3.1.2.6: the `request_uri` parameter is not supported.
    #[error("request_uri is not supported")]
    RequestUriNotSupported,
    /// RFC 6750 §3.1: the access token is expired, revoked or malformed.
    #[error("{0}")]
    InvalidToken(Cow<'static, str>),
    /// RFC 6750 §3.1: the token lacks the scope the resource needs.
    #[error("{0}")]
    InsufficientScope(Cow<'static, str>),
    /// The request body did not arrive in time (RFC 9110 §15.5.9: 408).
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    /// The request body is over the endpoint's limit.
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// A rate limit refused the request (RFC 6585 §4: 429). Not an RFC 6749
    /// code; `too_many_requests` names it in the JSON body.
    #[error("rate limit exceeded; retry after {} seconds", .0.retry_after.unwrap_or(1))]
    RateLimited(crate::limits::buckets::Decision),
    /// The server is overloaded for a moment; retry shortly.
    #[error("{0}")]
    TemporarilyUnavailable(Cow<'static, str>),
    /// Anything else. The cause goes to the log, never to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The `error_description` of the response, in the character set the
    /// RFCs allow (see [`description_text`]). Every renderer (JSON body,
    /// `WWW-Authenticate` challenge, error redirect) takes it from here.
    pub fn description(&self) -> String {
        description_text(&self.to_string()).into_owned()
    }

    /// The `error` value of the response.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidRequest(_) | Error::PayloadTooLarge(_) | Error::RequestTimeout => {
                "invalid_request"
            }
            Error::InvalidClient(_) => "invalid_client",
            Error::InvalidGrant(_) => "invalid_grant",
            Error::UnauthorizedClient(_) => "unauthorized_client",
            Error::UnsupportedGrantType(_) => "unsupported_grant_type",
            Error::InvalidScope(_) => "invalid_scope",
            Error::InvalidTarget(_) => "invalid_target",
            Error::UnsupportedResponseType(_) => "unsupported_response_type",
            Error::AccessDenied(_) => "access_denied",
            Error::LoginRequired(_) => "login_required",
            Error::ConsentRequired(_) => "consent_required",
            Error::RequestNotSupported => "request_not_supported",
            Error::RequestUriNotSupported => "request_uri_not_supported",
            Error::InvalidToken(_) => "invalid_token",
            Error::InsufficientScope(_) => "insufficient_scope",
            Error::TemporarilyUnavailable(_) => "temporarily_unavailable",
            Error::RateLimited(_) => "too_many_requests",
            Error::Internal(_) => "server_error",
        }
    }

    /// An unexpected failure; its cause is logged, never shown. A database
    /// that cannot be reached (down, restarting, pool exhausted) is not a
    /// bug: it becomes `temporarily_unavailable` (503 + Retry-After), so
    /// clients retry and operators see a clear signal; so does a lock wait
    /// that ran out.
    pub fn internal<E: std::fmt::Display + 'static>(cause: E) -> Self {
        let any: &dyn std::any::Any = &cause;
        if let Some(store_error) = any.downcast_ref::<crate::store::Error>()
            && store_error.is_unavailable()
        {
            tracing::warn!(error = %store_error, "database unavailable");
            return Error::TemporarilyUnavailable(
                "the server cannot reach its database; retry shortly".into(),
            );
        }
        // A lock wait that ran out (SQLite's busy timeout under a long
        // write, a PostgreSQL deadlock victim): the statement's transaction
        // was rolled back, and a retry of the request is expected to
        // succeed.
        if let Some(store_error) = any.downcast_ref::<crate::store::Error>()
            && store_error.is_busy()
        {
            tracing::warn!(error = %store_error, "database busy");
            return Error::TemporarilyUnavailable("the server is busy; retry shortly".into());
        }
        Error::Internal(cause.to_string())
    }
}

/// Whether `c` may appear in an `error_description`: RFC 6749 §4.1.2.1 and
/// §5.2 (and RFC 6750 §3) allow only %x20-21 / %x23-5B / %x5D-7E, i.e.
/// printable ASCII without `"` and `\\`.
fn allowed_in_description(c: char) -> bool {
    matches!(c, '\x20'..='\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E')
}

/// `text` made fit for an `error_description`. Descriptions are written for
/// people and may cite "RFC 6749 §3.3" or quote with typographic marks; the
/// renderer, not each message, guarantees the RFCs' character set: common
/// marks get an ASCII spelling, `"` becomes `'`, `\\` becomes `/`, any other
/// character outside the set becomes `?`, and runs of spaces become one.
pub fn description_text(text: &str) -> Cow<'_, str> {
    if text.chars().all(allowed_in_description) && !text.contains("  ") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let replacement: &str = match c {
            c if allowed_in_description(c) => {
                out.push(c);
                continue;
            }
            '§' => "section ",
            '"' | '\u{2018}' | '\u{2019}' | '\u{201c}' | '\u{201d}' | '\u{ab}' | '\u{bb}' => "'",
            '\\' => "/",
            '\u{2026}' => "...",
            '\u{2010}'..='\u{2015}' | '\u{2212}' => "-",
            c if c.is_whitespace() || c.is_control() => " ",
            _ => "?",
        };
        out.push_str(replacement);
    }
    let mut collapsed = String::with_capacity(out.len());
    for c in out.trim().chars() {
        if c == ' ' && collapsed.ends_with(' ') {
            continue;
        }
        collapsed.push(c);
    }
    Cow::Owned(collapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One of each variant, built around `message` where it takes one. The
    /// match has no wildcard: a new variant does not compile until it is
    /// listed here, so the character-set test below covers it.
    fn every_variant(message: &str) -> Vec<Error> {
        let text = || Cow::Owned(message.to_owned());
        let all = vec![
            Error::InvalidRequest(text()),
            Error::InvalidClient(text()),
            Error::InvalidGrant(text()),
            Error::UnauthorizedClient(text()),
            Error::UnsupportedGrantType(text()),
            Error::InvalidScope(text()),
            Error::InvalidTarget(text()),
            Error::UnsupportedResponseType(text()),
            Error::AccessDenied(text()),
            Error::LoginRequired(text()),
            Error::ConsentRequired(text()),
            Error::RequestNotSupported,
            Error::RequestUriNotSupported,
            Error::InvalidToken(text()),
            Error::InsufficientScope(text()),
            Error::RequestTimeout,
            Error::PayloadTooLarge(16384),
            Error::RateLimited(crate::limits::buckets::Decision {
                limit: 1,
                remaining: 0,
                reset: 60,
                retry_after: Some(60),
            }),
            Error::TemporarilyUnavailable(text()),
            Error::Internal(message.to_owned()),
        ];
        for error in &all {
            match error {
                Error::InvalidRequest(_)
                | Error::InvalidClient(_)
                | Error::InvalidGrant(_)
                | Error::UnauthorizedClient(_)
                | Error::UnsupportedGrantType(_)
                | Error::InvalidScope(_)
                | Error::InvalidTarget(_)
                | Error::UnsupportedResponseType(_)
                | Error::AccessDenied(_)
                | Error::LoginRequired(_)
                | Error::ConsentRequired(_)
                | Error::RequestNotSupported
                | Error::RequestUriNotSupported
                | Error::InvalidToken(_)
                | Error::InsufficientScope(_)
                | Error::RequestTimeout
                | Error::PayloadTooLarge(_)
                | Error::RateLimited(_)
                | Error::TemporarilyUnavailable(_)
                | Error::Internal(_) => {}
            }
        }
        all
    }

    #[test]
    fn every_variant_describes_itself_in_the_rfc_character_set() {
        let hostile = "scope is malformed (RFC 6749 \u{a7}3.3) \u{201c}caf\u{e9}\u{201d} \"q\" back\\slash\ttab\n\u{0}nul \u{2026} \u{1F600}";
        for error in every_variant(hostile) {
            let description = error.description();
            assert!(
                description.chars().all(allowed_in_description),
                "{}: {description:?}",
                error.code()
            );
            assert!(!description.is_empty(), "{}", error.code());
        }
    }

    #[test]
    fn descriptions_keep_their_meaning_in_ascii() {
        assert_eq!(
            description_text("scope is malformed (RFC 6749 \u{a7}3.3)"),
            "scope is malformed (RFC 6749 section 3.3)"
        );
        assert_eq!(
            description_text("RFC 8252 \u{a7} 8.6: \u{201c}x\u{201d} \"y\" a\\b \u{2026}"),
            "RFC 8252 section 8.6: 'x' 'y' a/b ..."
        );
        assert_eq!(description_text("caf\u{e9}"), "caf?");
        // Already fine: borrowed, not copied.
        assert!(matches!(
            description_text("token is missing"),
            Cow::Borrowed("token is missing")
        ));
    }
}
