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
use std::sync::Arc;

use chrono::{DateTime, Utc};
use secrecy::SecretString;

use super::consent::scope_sections;
use super::password::{Authenticator, LoginFailure};
use super::pending::Pending;
use super::session::{CookieValue, Session, Sessions};
use super::step::{Answer, ConsentView, LoginView, Step};
use crate::clients::ClientRegistry;
use crate::clock::Clock;
use crate::crypto::Sealer;
use crate::domain::Scope;
use crate::limits::client_ip::ClientIp;
use crate::oauth::access::AccessDecision;
use crate::oauth::authorize::{self, AuthorizationRequest, Rejection};
use crate::oauth::codes::{Codes, Grant};
use crate::oauth::{Error, Params};
use crate::store::Store;
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

/// Where a redirect sends the person, as the consent page of an unverified
/// client names it: the host, or for a loopback address (a native app,
/// RFC 8252 §7.3: any program on the device may listen there) "an app on
/// this device".
fn returns_to(redirect_uri: &str) -> String {
    let url = url::Url::parse(redirect_uri).ok();
    match url.as_ref().and_then(url::Url::host) {
        Some(url::Host::Ipv4(ip)) if ip.is_loopback() => "an app on this device".into(),
        Some(url::Host::Ipv6(ip)) if ip.is_loopback() => "an app on this device".into(),
        Some(host) => host.to_string(),
        None => String::new(),
    }
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
        // Signed in: what this user may grant, decided now.
        let decision = match session.as_ref().and_then(|s| s.user.as_ref()) {
            Some(user) if !login_needed => match self.grantable(&client, &request, user.id).await {
                Ok(decision) => Some(decision),
                Err(error @ (Error::AccessDenied(_) | Error::InvalidTarget(_))) => {
                    return Ok(self.reject(&client, &request, &error).into());
                }
                Err(error) => return Err(error),
            },
            _ => None,
        };
        let consent_needed = match (session.as_ref().and_then(|s| s.user.as_ref()), &decision) {
            (Some(user), Some(decision)) => {
                self.consent_needed(&client, &request, &decision.scope, user.id)
                    .await?
            }
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
                return Ok(self.reject(&client, &request, &error).into());
            }
        }
        match (session, decision) {
            (Some(session), Some(decision)) if !login_needed && !consent_needed => {
                Ok(self.finish(&request, &session, &decision).await?.into())
            }
            (session, _) => {
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
        let step = match self
            .grantable(&pending.client, &pending.request, user.id)
            .await
        {
            Err(error @ (Error::AccessDenied(_) | Error::InvalidTarget(_))) => {
                self.refuse_pending(&pending, &session, &error).await?
            }
            Err(error) => return Err(error),
            Ok(decision)
                if self
                    .consent_needed(&pending.client, &pending.request, &decision.scope, user.id)
                    .await? =>
            {
                Step::Redirect(format!("/consent?request={}", pending.id))
            }
            Ok(decision) => self.finish_pending(&pending, &session, &decision).await?,
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
        self.consent_view_or_login(&session, &pending).await
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
            return self.consent_view_or_login(&session, &pending).await;
        };
        if needs_login(
            &pending.request,
            Some(&session),
            pending.logged_in_at,
            self.clock.now(),
        ) {
            return self.consent_view_or_login(&session, &pending).await;
        }
        match form.get("decision") {
            Some("allow") => {
                // Decided again: a role lost while the page was open is
                // not granted.
                // What the page showed (a hidden field; templates from
                // before it lack it and get today's decision).
                let shown = match form.get("shown_scope").map(str::parse::<Scope>) {
                    None => None,
                    Some(Ok(shown)) => Some(shown),
                    Some(Err(_)) => {
                        return Ok(Step::ErrorPage(
                            "The consent form was altered. Go back to the application and try \
                             again."
                                .into(),
                        ));
                    }
                };
                let decision = match self
                    .grantable_within(&pending.client, &pending.request, user.id, shown.as_ref())
                    .await
                {
                    Ok(decision) => decision,
                    Err(error @ (Error::AccessDenied(_) | Error::InvalidTarget(_))) => {
                        return self.refuse_pending(&pending, &session, &error).await;
                    }
                    Err(error) => return Err(error),
                };
                self.record_consent(user.id, &pending.client, &decision.scope)
                    .await?;
                self.finish_pending(&pending, &session, &decision).await
            }
            Some("deny") => {
                if !self.take(&pending, &session).await? {
                    return Ok(expired_request());
                }
                crate::audit::record(crate::audit::Event::ConsentDenied {
                    user_id: &user.id.to_string(),
                    client_id: pending.client.id.as_str(),
                });
                Ok(self.redirect_error(
                    &pending.request,
                    &Error::AccessDenied("the user denied the request".into()),
                ))
            }
            _ => Ok(Step::ErrorPage(
                "The consent form was incomplete. Go back to the application and try again.".into(),
            )),
        }
    }

    pub(super) fn login_view(
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

    async fn consent_view_or_login(
        &self,
        session: &Session,
        pending: &Pending,
    ) -> Result<Step, Error> {
        // A sealed request is stored by a login, never consented to as is.
        if pending.sealed_to.is_some() {
            return Ok(self.to_login(session, pending));
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
            _ => {
                return Ok(Step::Redirect(format!(
                    "/login?request={}",
                    pending.reference
                )));
            }
        };
        let decision = match self
            .grantable(&pending.client, &pending.request, user.id)
            .await
        {
            Ok(decision) => decision,
            Err(error @ (Error::AccessDenied(_) | Error::InvalidTarget(_))) => {
                return self.refuse_pending(pending, session, &error).await;
            }
            Err(error) => return Err(error),
        };
        Ok(Step::Consent(ConsentView {
            request_id: pending.reference.clone(),
            client_name: pending.client.name.as_str().to_owned(),
            unverified_redirect_host: (!pending.client.operator_vouched())
                .then(|| returns_to(&pending.request.redirect.uri)),
            username: user.username.as_str().to_owned(),
            sections: scope_sections(&decision, &self.clients.apis()),
            shown_scope: decision.scope.to_string(),
            csrf: self.sessions.csrf_token(session),
            redirect_origin: pending.request.redirect.origin(),
        }))
    }

    /// Ends a pending request with an error sent back to the client, once.
    async fn refuse_pending(
        &self,
        pending: &Pending,
        session: &Session,
        error: &Error,
    ) -> Result<Step, Error> {
        if !self.take(pending, session).await? {
            return Ok(expired_request());
        }
        Ok(self.reject(&pending.client, &pending.request, error))
    }

    /// Ends a pending request with a code, once: a form posted twice gets
    /// the "expired" page the second time.
    async fn finish_pending(
        &self,
        pending: &Pending,
        session: &Session,
        decision: &AccessDecision,
    ) -> Result<Step, Error> {
        if !self.take(pending, session).await? {
            return Ok(expired_request());
        }
        self.finish(&pending.request, session, decision).await
    }

    /// Issues the code and sends the browser back (RFC 6749 §4.1.2, RFC 9207).
    async fn finish(
        &self,
        request: &AuthorizationRequest,
        session: &Session,
        decision: &AccessDecision,
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
            // What the user may grant, never more than asked.
            scope: decision.scope.to_string(),
            nonce: request.nonce.clone(),
            auth_time,
            code_challenge: request.code_challenge.clone(),
            resources: request.resources.clone(),
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

    /// An error for the client: redirected to it, or for a client whose
    /// redirect URI nobody vouched for, a page (`authorize::unredirected`).
    fn reject(
        &self,
        client: &crate::domain::Client,
        request: &AuthorizationRequest,
        error: &Error,
    ) -> Step {
        match authorize::unredirected(client, error) {
            Some(page) => Step::ErrorPage(page.into()),
            None => self.redirect_error(request, error),
        }
    }

    /// The error redirect itself: also for Deny, which the person chose on
    /// authd's page, having read who the client is.
    fn redirect_error(&self, request: &AuthorizationRequest, error: &Error) -> Step {
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

#[cfg(test)]
mod tests {
    use super::returns_to;

    #[test]
    fn an_unverified_client_returns_to_its_host_or_this_device() {
        assert_eq!(returns_to("https://notes.example/cb"), "notes.example");
        assert_eq!(
            returns_to("http://127.0.0.1:7777/cb"),
            "an app on this device"
        );
        assert_eq!(returns_to("http://[::1]:7777/cb"), "an app on this device");
    }
}
