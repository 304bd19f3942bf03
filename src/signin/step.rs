//! What each sign-in step answers: a page to render (with what it shows)
//! or a place to send the browser, and the cookie to set.
use std::borrow::Cow;

pub use super::password::TryLater;
use super::session::CookieValue;

/// What the login page shows.
#[derive(Debug, Clone)]
pub struct LoginView {
    pub request_id: String,
    pub client_name: String,
    pub login_hint: Option<String>,
    pub csrf: String,
    pub error: Option<&'static str>,
    /// Where the form's answer may redirect to (CSP `form-action`).
    pub redirect_origin: String,
}

/// One requested scope, with what it means for the user.
#[derive(Debug, Clone)]
pub struct ScopeView {
    pub name: String,
    pub description: String,
}

/// The scopes of one API (or of the user's account) on the consent page.
#[derive(Debug, Clone)]
pub struct ScopeSection {
    /// The API's name, or "Your account".
    pub title: String,
    /// The API's identifier (none for the account's own scopes).
    pub identifier: Option<String>,
    pub scopes: Vec<ScopeView>,
}

/// What the consent page shows.
#[derive(Debug, Clone)]
pub struct ConsentView {
    pub request_id: String,
    pub client_name: String,
    /// `Some` for a client that registered itself (RFC 7591): the page
    /// says the operator did not verify it, and names where it sends the
    /// user back to (the one fact about it authd checked): the host, or
    /// "an app on this device" for a loopback redirect.
    pub unverified_redirect_host: Option<String>,
    pub username: String,
    /// What can be granted, grouped: the account's scopes, then each API.
    pub sections: Vec<ScopeSection>,
    /// The same as one scope string, posted back with the decision: an
    /// Allow grants at most this.
    pub shown_scope: String,
    pub csrf: String,
    pub redirect_origin: String,
}

/// What the browser gets next.
#[derive(Debug)]
pub enum Step {
    /// 303 to this URL (the client, or the next page).
    Redirect(String),
    Login(LoginView),
    Consent(ConsentView),
    /// 400 page: the request cannot continue and must not be redirected.
    ErrorPage(Cow<'static, str>),
    /// 403 page: the form's CSRF token is missing or wrong.
    Forbidden,
    /// The login page again, refused for now: too many failed logins (429)
    /// or every password check busy (503).
    TryLater {
        why: TryLater,
        retry_after: u64,
        view: LoginView,
    },
}

/// A step, and the session cookie to set when it changed.
#[derive(Debug)]
pub struct Answer {
    pub step: Step,
    pub set_cookie: Option<CookieValue>,
}

impl From<Step> for Answer {
    fn from(step: Step) -> Self {
        Self {
            step,
            set_cookie: None,
        }
    }
}
