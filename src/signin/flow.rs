//! The browser sign-in flow: `/authorize` → login → consent → back to the
//! client with a code (RFC 6749 §4.1, OIDC Core §3.1.2).
//!
//! A request that cannot finish at once waits for the user. A signed-in
//! session's is stored (`authorization_requests`), bound to the session,
//! and the pages refer to it by id. An anonymous browser's is not stored:
//! it travels sealed to that browser (`SealedRequest`), and is stored in
//! the new session when the user signs in, under the id it was sealed with,
//! so it is finished once. Only the browser that made a request can
//! continue it. Each step answers with a [`Step`]: a page to render or a
//! place to send the browser.
use std::borrow::Cow;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

pub use super::password::TryLater;
use super::password::{Authenticator, LoginFailure};
use super::session::{CookieValue, Session, Sessions};
use crate::clients::ClientRegistry;
use crate::clock::Clock;
use crate::crypto::Sealer;
use crate::domain::{Client, ClientId, ClientKind, Scope};
use crate::limits::buckets::ClientIp;
use crate::oauth::authorize::{self, AuthorizationRequest, Rejection};
use crate::oauth::codes::{Codes, Grant};
use crate::oauth::{Error, Params};
use crate::store::{PendingRequestRecord, Store};

/// How long a user has to finish login and consent.
pub const PENDING_REQUEST_TTL: Duration = Duration::minutes(10);
/// Pending requests one session may hold; a new one evicts the oldest.
/// Enough for the tabs a person opens at once (Keycloak, for one, keeps a
/// similar cap per browser); a script replaying `/authorize` with one
/// signed-in cookie gets no further than this. (An anonymous browser's
/// requests are not stored at all.)
pub const MAX_PENDING_PER_SESSION: u32 = 16;

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

/// What the consent page shows.
#[derive(Debug, Clone)]
pub struct ConsentView {
    pub request_id: String,
    pub client_name: String,
    pub username: String,
    pub scopes: Vec<ScopeView>,
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

/// A pending request, loaded for the browser continuing it.
struct Pending {
    /// Its id: the `authorization_requests` row it is (or will be).
    id: String,
    /// What the pages and forms carry: the id of a stored request, or the
    /// sealed request of an anonymous browser.
    reference: String,
    /// Not stored yet: an anonymous browser's, carried sealed to this
    /// anonymous id.
    sealed_to: Option<String>,
    request: AuthorizationRequest,
    client: Arc<Client>,
    logged_in_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

/// What an anonymous browser's pending request carries, sealed under the
/// master key with the browser's id (derived from its cookie) as
/// associated data: only that browser can present it, nobody can read or
/// change it, and the database holds nothing until the user has signed in.
#[derive(Debug, Serialize, Deserialize)]
struct SealedRequest {
    /// The row it becomes after login: one row per request, so a login
    /// form posted twice finishes once.
    id: String,
    client_id: String,
    request: AuthorizationRequest,
    created_at: i64,
    expires_at: i64,
}

/// Marks a sealed pending request in a URL or form (`s.` + base64url).
const SEALED_PREFIX: &str = "s.";
/// The longest sealed reference sent in a `Location` header (bytes). A
/// typical request seals to well under a kilobyte.
const MAX_REFERENCE_IN_URL: usize = 2000;

fn expired_request() -> Step {
    Step::ErrorPage(
        "This sign-in request has expired or was started in another browser. Go back to the \
         application and sign in again."
            .into(),
    )
}

pub struct AuthorizationFlow {
    pub clients: Arc<ClientRegistry>,
    pub sessions: Sessions,
    /// Seals an anonymous browser's pending request (`SealedRequest`).
    pub requests: Sealer,
    pub authenticator: Authenticator,
    pub codes: Arc<Codes>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub issuer: String,
}

impl AuthorizationFlow {
    /// `GET`/`POST /authorize`.
    #[tracing::instrument(level = "debug", name = "oauth.authorize", skip_all, fields(client_id))]
    pub async fn authorize(
        &self,
        params: &Params,
        repeated: &[String],
        cookie: Option<CookieValue>,
    ) -> Result<Answer, Error> {
        let (request, client) = match authorize::validate(&self.clients, params, repeated).await {
            Ok(valid) => valid,
            Err(Rejection::Page(message)) => return Ok(Step::ErrorPage(message).into()),
            Err(Rejection::Redirect {
                redirect,
                state,
                error,
            }) => {
                return Ok(Step::Redirect(authorize::error_location(
                    &redirect,
                    state.as_deref(),
                    &self.issuer,
                    &error,
                ))
                .into());
            }
        };
        tracing::Span::current().record("client_id", client.id.as_str());
        let session = self.sessions.browser(cookie).await?;
        let login_needed = needs_login(&request, session.as_ref(), None, self.clock.now());
        let consent_needed = match session.as_ref().and_then(|s| s.user.as_ref()) {
            Some(user) if !login_needed => self.consent_needed(&client, &request, user.id).await?,
            _ => true,
        };
        if request.prompt.none {
            // OIDC Core §3.1.2.6: never show a page for prompt=none.
            let error = if login_needed {
                Some(Error::LoginRequired("nobody is signed in".into()))
            } else if consent_needed {
                Some(Error::ConsentRequired("the user has not consented".into()))
            } else {
                None
            };
            if let Some(error) = error {
                return Ok(self.reject(&request, &error).into());
            }
        }
        match session {
            Some(session) if !login_needed && !consent_needed => {
                Ok(self.finish(&request, &session).await?.into())
            }
            session => {
                let (session, set_cookie) = match session {
                    Some(session) => (session, None),
                    None => {
                        let session = self.sessions.start();
                        let cookie = session.cookie.clone();
                        (session, Some(cookie))
                    }
                };
                // Signed in: stored, in the session. Anonymous (which
                // always needs a login first): carried sealed, nothing stored.
                if !session.stored {
                    let pending = self.seal_pending(request, client, &session)?;
                    return Ok(Answer {
                        step: self.to_login(&session, &pending),
                        set_cookie,
                    });
                }
                let id = self.save_pending(&request, &client, &session).await?;
                let page = if login_needed { "/login" } else { "/consent" };
                Ok(Answer {
                    step: Step::Redirect(format!("{page}?request={id}")),
                    set_cookie,
                })
            }
        }
    }

    /// `GET /login`.
    pub async fn login_page(
        &self,
        cookie: Option<CookieValue>,
        request_id: Option<&str>,
    ) -> Result<Step, Error> {
        let Some((session, pending)) = self.continue_pending(cookie, request_id).await? else {
            return Ok(expired_request());
        };
        Ok(Step::Login(self.login_view(&session, &pending, None)))
    }

    /// `POST /login`.
    #[tracing::instrument(level = "debug", name = "oauth.login_form", skip_all)]
    pub async fn login(
        &self,
        cookie: Option<CookieValue>,
        form: &Params,
        password: SecretString,
        ip: Option<ClientIp>,
    ) -> Result<Answer, Error> {
        let Some((session, pending)) = self.continue_pending(cookie, form.get("request")).await?
        else {
            return Ok(expired_request().into());
        };
        if !self.sessions.csrf_matches(&session, form.get("csrf")) {
            return Ok(Step::Forbidden.into());
        }
        let username = form.get("username").unwrap_or_default();
        let user = match self
            .authenticator
            .authenticate(username, password, ip)
            .await
        {
            Ok(user) => user,
            Err(LoginFailure::InvalidCredentials) => {
                crate::audit::record(crate::audit::Event::LoginFailed {
                    username,
                    client_id: pending.client.id.as_str(),
                    ip: ip.map(|ip| ip.addr),
                });
                let mut view = self.login_view(&session, &pending, None);
                view.login_hint = Some(username.chars().take(64).collect());
                view.error = Some("The username or password is not correct.");
                return Ok(Step::Login(view).into());
            }
            Err(LoginFailure::TryLater { why, retry_after }) => {
                let mut view = self.login_view(&session, &pending, None);
                view.login_hint = Some(username.chars().take(64).collect());
                return Ok(Step::TryLater {
                    why,
                    retry_after,
                    view,
                }
                .into());
            }
            Err(LoginFailure::Internal(error)) => return Err(error),
        };
        crate::audit::record(crate::audit::Event::LoginSucceeded {
            user_id: &user.id.to_string(),
            client_id: pending.client.id.as_str(),
            ip: ip.map(|ip| ip.addr),
        });
        let session = self.sessions.sign_in(&session, user.clone()).await?;
        let now = self.clock.now();
        let pending = Pending {
            logged_in_at: Some(now),
            ..pending
        };
        let pending = if let Some(anonymous_id) = pending.sealed_to.clone() {
            // The request is stored now, in the new session, under the id
            // it was sealed with: it is finished once, however often the
            // form is posted.
            let Some(stored) = self.store_sealed(pending, &session, &anonymous_id).await? else {
                return Ok(Answer {
                    step: expired_request(),
                    set_cookie: Some(session.cookie),
                });
            };
            stored
        } else {
            self.store
                .mark_pending_request_logged_in(&pending.id, now)
                .await
                .map_err(Error::internal)?;
            pending
        };
        let step = if self
            .consent_needed(&pending.client, &pending.request, user.id)
            .await?
        {
            Step::Redirect(format!("/consent?request={}", pending.id))
        } else {
            self.finish_pending(&pending, &session).await?
        };
        Ok(Answer {
            step,
            set_cookie: Some(session.cookie),
        })
    }

    /// `GET /consent`.
    pub async fn consent_page(
        &self,
        cookie: Option<CookieValue>,
        request_id: Option<&str>,
    ) -> Result<Step, Error> {
        let Some((session, pending)) = self.continue_pending(cookie, request_id).await? else {
            return Ok(expired_request());
        };
        Ok(self.consent_view_or_login(&session, &pending))
    }

    /// `POST /consent`: `decision=allow` or `decision=deny`.
    #[tracing::instrument(level = "debug", name = "oauth.consent_form", skip_all)]
    pub async fn consent(&self, cookie: Option<CookieValue>, form: &Params) -> Result<Step, Error> {
        let Some((session, pending)) = self.continue_pending(cookie, form.get("request")).await?
        else {
            return Ok(expired_request());
        };
        if !self.sessions.csrf_matches(&session, form.get("csrf")) {
            return Ok(Step::Forbidden);
        }
        let Some(user) = session.user.clone() else {
            return Ok(self.consent_view_or_login(&session, &pending));
        };
        if needs_login(
            &pending.request,
            Some(&session),
            pending.logged_in_at,
            self.clock.now(),
        ) {
            return Ok(self.consent_view_or_login(&session, &pending));
        }
        match form.get("decision") {
            Some("allow") => {
                let granted = pending.request.scope();
                let earlier: Scope = self
                    .store
                    .find_consent(user.id, &pending.client.id)
                    .await
                    .map_err(Error::internal)?
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_default();
                self.store
                    .save_consent(
                        user.id,
                        &pending.client.id,
                        &earlier.union(&granted).to_string(),
                        self.clock.now(),
                    )
                    .await
                    .map_err(Error::internal)?;
                crate::audit::record(crate::audit::Event::ConsentGranted {
                    user_id: &user.id.to_string(),
                    client_id: pending.client.id.as_str(),
                    scope: &granted.to_string(),
                });
                self.finish_pending(&pending, &session).await
            }
            Some("deny") => {
                if !self.take(&pending, &session).await? {
                    return Ok(expired_request());
                }
                crate::audit::record(crate::audit::Event::ConsentDenied {
                    user_id: &user.id.to_string(),
                    client_id: pending.client.id.as_str(),
                });
                Ok(self.reject(
                    &pending.request,
                    &Error::AccessDenied("the user denied the request".into()),
                ))
            }
            _ => Ok(Step::ErrorPage(
                "The consent form was incomplete. Go back to the application and try again.".into(),
            )),
        }
    }

    /// The session from the cookie and the pending request it made.
    async fn continue_pending(
        &self,
        cookie: Option<CookieValue>,
        request_id: Option<&str>,
    ) -> Result<Option<(Session, Pending)>, Error> {
        let (Some(session), Some(request_id)) = (self.sessions.browser(cookie).await?, request_id)
        else {
            return Ok(None);
        };
        if let Some(sealed) = request_id.strip_prefix(SEALED_PREFIX) {
            return Ok(self
                .open_sealed(sealed, &session)
                .await?
                .map(|pending| (session, pending)));
        }
        let Some(record) = self
            .store
            .find_pending_request(request_id, &session.record.id, self.clock.now())
            .await
            .map_err(Error::internal)?
        else {
            return Ok(None);
        };
        let Ok(request) = serde_json::from_str::<AuthorizationRequest>(&record.request) else {
            return Ok(None);
        };
        // The client may have been deleted since: then the request is void.
        let Some(client) = self.clients.find(&record.client_id).await? else {
            return Ok(None);
        };
        Ok(Some((
            session,
            Pending {
                reference: record.id.clone(),
                id: record.id,
                sealed_to: None,
                request,
                client,
                logged_in_at: record.logged_in_at,
                created_at: record.created_at,
                expires_at: record.expires_at,
            },
        )))
    }

    /// An anonymous browser's sealed request, if it is this browser's (its
    /// anonymous id now, or the one it had before its session's login:
    /// another tab), not expired, and its client still exists.
    async fn open_sealed(&self, sealed: &str, session: &Session) -> Result<Option<Pending>, Error> {
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(sealed) else {
            return Ok(None);
        };
        let bound_to = if session.stored {
            session.record.anonymous_id.as_deref()
        } else {
            Some(session.record.id.as_str())
        };
        // Another browser's id does not open it.
        let Some(bound_to) = bound_to else {
            return Ok(None);
        };
        let Ok(plaintext) = self.requests.open(bound_to, &bytes) else {
            return Ok(None);
        };
        let Ok(carried) = serde_json::from_slice::<SealedRequest>(plaintext.expose_secret()) else {
            return Ok(None);
        };
        let (Some(created_at), Some(expires_at)) = (
            DateTime::from_timestamp(carried.created_at, 0),
            DateTime::from_timestamp(carried.expires_at, 0),
        ) else {
            return Ok(None);
        };
        if expires_at <= self.clock.now() {
            return Ok(None);
        }
        let Some(client) = ClientId::parse(&carried.client_id) else {
            return Ok(None);
        };
        let Some(client) = self.clients.find(&client).await? else {
            return Ok(None);
        };
        Ok(Some(Pending {
            id: carried.id,
            reference: format!("{SEALED_PREFIX}{sealed}"),
            sealed_to: Some(bound_to.to_owned()),
            request: carried.request,
            client,
            logged_in_at: None,
            created_at,
            expires_at,
        }))
    }

    fn login_view(
        &self,
        session: &Session,
        pending: &Pending,
        error: Option<&'static str>,
    ) -> LoginView {
        LoginView {
            request_id: pending.reference.clone(),
            client_name: pending.client.name.as_str().to_owned(),
            login_hint: pending.request.login_hint.clone(),
            csrf: self.sessions.csrf_token(session),
            error,
            redirect_origin: pending.request.redirect.origin(),
        }
    }

    fn consent_view_or_login(&self, session: &Session, pending: &Pending) -> Step {
        // A sealed request is stored by a login, never consented to as is.
        if pending.sealed_to.is_some() {
            return self.to_login(session, pending);
        }
        let user = match &session.user {
            Some(user)
                if !needs_login(
                    &pending.request,
                    Some(session),
                    pending.logged_in_at,
                    self.clock.now(),
                ) =>
            {
                user
            }
            _ => return Step::Redirect(format!("/login?request={}", pending.reference)),
        };
        Step::Consent(ConsentView {
            request_id: pending.reference.clone(),
            client_name: pending.client.name.as_str().to_owned(),
            username: user.username.as_str().to_owned(),
            scopes: scope_views(&pending.request.scope()),
            csrf: self.sessions.csrf_token(session),
            redirect_origin: pending.request.redirect.origin(),
        })
    }

    /// Whether the user must be asked (again) before `client` gets `request`'s scope.
    async fn consent_needed(
        &self,
        client: &Client,
        request: &AuthorizationRequest,
        user: crate::domain::UserId,
    ) -> Result<bool, Error> {
        if request.prompt.consent {
            return Ok(true);
        }
        // OIDC Core §11: offline access always needs the user's consent,
        // even for a pre-consented first-party client.
        let offline = request.scope().contains("offline_access");
        if client.skip_consent && client.kind == ClientKind::Confidential && !offline {
            return Ok(false);
        }
        // RFC 8252 §8.6: a public client's identity is only as good as its
        // redirect URI. Any local app can listen on a loopback port, so a
        // remembered consent is not enough there: ask every time.
        if client.kind == ClientKind::Public && !request.redirect.uri.starts_with("https://") {
            return Ok(true);
        }
        let granted: Option<Scope> = self
            .store
            .find_consent(user, &client.id)
            .await
            .map_err(Error::internal)?
            .and_then(|scope| scope.parse().ok());
        Ok(!granted.is_some_and(|granted| request.scope().is_subset(&granted)))
    }

    async fn save_pending(
        &self,
        request: &AuthorizationRequest,
        client: &Client,
        session: &Session,
    ) -> Result<String, Error> {
        let now = self.clock.now();
        let record = PendingRequestRecord {
            id: uuid::Uuid::new_v4().to_string(),
            session_id: session.record.id.clone(),
            client_id: client.id.clone(),
            request: serde_json::to_string(request).map_err(Error::internal)?,
            logged_in_at: None,
            created_at: now,
            expires_at: now + PENDING_REQUEST_TTL,
        };
        if !self
            .store
            .insert_pending_request(&record, MAX_PENDING_PER_SESSION)
            .await
            .map_err(Error::internal)?
        {
            return Err(Error::internal("a new pending request id was taken"));
        }
        Ok(record.id)
    }

    /// An anonymous browser's request, sealed to it, as pages carry it.
    fn seal_pending(
        &self,
        request: AuthorizationRequest,
        client: Arc<Client>,
        session: &Session,
    ) -> Result<Pending, Error> {
        let now = self.clock.now();
        let expires_at = now + PENDING_REQUEST_TTL;
        let carried = SealedRequest {
            id: uuid::Uuid::new_v4().to_string(),
            client_id: client.id.to_string(),
            request,
            created_at: now.timestamp(),
            expires_at: expires_at.timestamp(),
        };
        let plaintext = serde_json::to_vec(&carried).map_err(Error::internal)?;
        let sealed = self.requests.seal(&session.record.id, &plaintext);
        Ok(Pending {
            id: carried.id,
            reference: format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(sealed)),
            sealed_to: Some(session.record.id.clone()),
            request: carried.request,
            client,
            logged_in_at: None,
            created_at: now,
            expires_at,
        })
    }

    /// Sends an anonymous browser to the login page of its sealed request:
    /// a 303 to `/login?request=…` while the reference is short; a longer
    /// one (a large `state` or `nonce`) is answered with the login page
    /// itself, the reference only in its form, because a long `Location`
    /// header overflows proxies' response-header buffers (nginx: 4 KiB).
    fn to_login(&self, session: &Session, pending: &Pending) -> Step {
        if pending.reference.len() <= MAX_REFERENCE_IN_URL {
            Step::Redirect(format!("/login?request={}", pending.reference))
        } else {
            Step::Login(self.login_view(session, pending, None))
        }
    }

    /// Stores a sealed request after its login, in the (new) session.
    /// `None` when a request with its id was finished already, or belongs
    /// to another browser's session (`Store::adopt_sealed_request`).
    async fn store_sealed(
        &self,
        pending: Pending,
        session: &Session,
        anonymous_id: &str,
    ) -> Result<Option<Pending>, Error> {
        let record = PendingRequestRecord {
            id: pending.id.clone(),
            session_id: session.record.id.clone(),
            client_id: pending.client.id.clone(),
            request: serde_json::to_string(&pending.request).map_err(Error::internal)?,
            logged_in_at: pending.logged_in_at,
            created_at: pending.created_at,
            expires_at: pending.expires_at,
        };
        let stored = self
            .store
            .adopt_sealed_request(&record, anonymous_id, MAX_PENDING_PER_SESSION)
            .await
            .map_err(Error::internal)?;
        Ok(stored.then(|| Pending {
            reference: pending.id.clone(),
            sealed_to: None,
            ..pending
        }))
    }

    async fn take(&self, pending: &Pending, session: &Session) -> Result<bool, Error> {
        self.store
            .take_pending_request(&pending.id, &session.record.id)
            .await
            .map_err(Error::internal)
    }

    /// Ends a pending request with a code, once: a form posted twice gets
    /// the "expired" page the second time.
    async fn finish_pending(&self, pending: &Pending, session: &Session) -> Result<Step, Error> {
        if !self.take(pending, session).await? {
            return Ok(expired_request());
        }
        self.finish(&pending.request, session).await
    }

    /// Issues the code and sends the browser back (RFC 6749 §4.1.2, RFC 9207).
    async fn finish(
        &self,
        request: &AuthorizationRequest,
        session: &Session,
    ) -> Result<Step, Error> {
        let (Some(user), Some(auth_time)) = (&session.user, session.record.auth_time) else {
            return Err(Error::internal(
                "finishing a request without a signed-in user",
            ));
        };
        let grant = Grant {
            user_id: user.id.0,
            client_id: request.client_id.clone(),
            redirect: request.redirect.clone(),
            scope: request.scope.clone(),
            nonce: request.nonce.clone(),
            auth_time,
            code_challenge: request.code_challenge.clone(),
        };
        let code = self.codes.issue(&grant).await?;
        let mut pairs = vec![("code", code.as_str())];
        if let Some(state) = &request.state {
            pairs.push(("state", state.as_str()));
        }
        pairs.push(("iss", self.issuer.as_str()));
        Ok(Step::Redirect(authorize::response_location(
            &request.redirect,
            &pairs,
        )))
    }

    fn reject(&self, request: &AuthorizationRequest, error: &Error) -> Step {
        Step::Redirect(authorize::error_location(
            &request.redirect,
            request.state.as_deref(),
            &self.issuer,
            error,
        ))
    }
}

/// Whether the user must sign in (again) for `request`: nobody is signed
/// in, or `prompt=login` / `max_age` ask for a fresh login that has not yet
/// happened for this request (OIDC Core §3.1.2.1).
fn needs_login(
    request: &AuthorizationRequest,
    session: Option<&Session>,
    logged_in_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    let Some(session) = session.filter(|s| s.user.is_some()) else {
        return true;
    };
    if logged_in_at.is_some() {
        return false;
    }
    if request.prompt.login {
        return true;
    }
    match (request.max_age, session.record.auth_time) {
        (Some(max_age), Some(auth_time)) => (now - auth_time).num_seconds() >= max_age,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// The requested scopes as the consent page lists them: who you are
/// first (openid, profile, email), then the APIs in alphabetical order.
fn scope_views(scope: &Scope) -> Vec<ScopeView> {
    let rank = |name: &str| {
        crate::oauth::authorize::OIDC_SCOPES
            .iter()
            .position(|oidc| *oidc == name)
            .unwrap_or(usize::MAX)
    };
    let mut names: Vec<&str> = scope.iter().collect();
    names.sort_by_key(|name| (rank(name), name.to_owned()));
    names
        .into_iter()
        .map(|name| ScopeView {
            name: name.to_owned(),
            description: describe_scope(name),
        })
        .collect()
}

/// What a scope lets the application do, in the user's words.
fn describe_scope(scope: &str) -> String {
    match scope {
        "openid" => "Confirm who you are (your account identifier)".to_owned(),
        "profile" => "See your name and username".to_owned(),
        "email" => "See your email address".to_owned(),
        "offline_access" => "Stay signed in while you are away".to_owned(),
        other => match other.split_once(':') {
            Some((resource, action)) => {
                let mut action = action.to_owned();
                if let Some(first) = action.get_mut(..1) {
                    first.make_ascii_uppercase();
                }
                format!("{action} access to {resource}")
            }
            None => format!("Access \u{201c}{other}\u{201d}"),
        },
    }
}
