//! Pending authorization requests: a signed-in session's, stored
//! (`authorization_requests`, at most 16 per session); an anonymous
//! browser's, sealed to it and stored in its new session at login under the
//! id it was sealed with, so it is finished once.
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::flow::AuthorizationFlow;
use super::session::CookieValue;
use super::session::Session;
use super::step::Step;
use crate::domain::{Client, ClientId};
use crate::oauth::Error;
use crate::oauth::authorize::AuthorizationRequest;
use crate::store::PendingRequestRecord;

/// How long a user has to finish login and consent.
pub const PENDING_REQUEST_TTL: Duration = Duration::minutes(10);
/// Pending requests one session may hold; a new one evicts the oldest.
/// Enough for the tabs a person opens at once (Keycloak, for one, keeps a
/// similar cap per browser); a script replaying `/authorize` with one
/// signed-in cookie gets no further than this. (An anonymous browser's
/// requests are not stored at all.)
pub const MAX_PENDING_PER_SESSION: u32 = 16;

/// A pending request, loaded for the browser continuing it.
pub(super) struct Pending {
    /// Its id: the `authorization_requests` row it is (or will be).
    pub(super) id: String,
    /// What the pages and forms carry: the id of a stored request, or the
    /// sealed request of an anonymous browser.
    pub(super) reference: String,
    /// Not stored yet: an anonymous browser's, carried sealed to this
    /// anonymous id.
    pub(super) sealed_to: Option<String>,
    pub(super) request: AuthorizationRequest,
    pub(super) client: Arc<Client>,
    pub(super) logged_in_at: Option<DateTime<Utc>>,
    pub(super) created_at: DateTime<Utc>,
    pub(super) expires_at: DateTime<Utc>,
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

impl AuthorizationFlow {
    /// The session from the cookie and the pending request it made.
    pub(super) async fn continue_pending(
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
        // The client may have been deleted since, or no longer send people
        // where this request would: then the request is void.
        let Some(client) = self
            .clients
            .find(&record.client_id)
            .await
            .map_err(Error::internal)?
            .filter(|client| still_registered(client, &request))
        else {
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
    pub(super) async fn open_sealed(
        &self,
        sealed: &str,
        session: &Session,
    ) -> Result<Option<Pending>, Error> {
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
        let Some(client) = self
            .clients
            .find(&client)
            .await
            .map_err(Error::internal)?
            .filter(|client| still_registered(client, &carried.request))
        else {
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

    pub(super) async fn save_pending(
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
    pub(super) fn seal_pending(
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
    pub(super) fn to_login(&self, session: &Session, pending: &Pending) -> Step {
        if pending.reference.len() <= MAX_REFERENCE_IN_URL {
            Step::Redirect(format!("/login?request={}", pending.reference))
        } else {
            Step::Login(self.login_view(session, pending, None))
        }
    }

    /// Stores a sealed request after its login, in the (new) session.
    /// `None` when a request with its id was finished already, or belongs
    /// to another browser's session (`Store::adopt_sealed_request`).
    pub(super) async fn store_sealed(
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

    pub(super) async fn take(&self, pending: &Pending, session: &Session) -> Result<bool, Error> {
        self.store
            .take_pending_request(&pending.id, &session.record.id)
            .await
            .map_err(Error::internal)
    }
}

/// Whether `request`'s redirect URI is still one `client` registered: a
/// registration changed while the request was pending (RFC 7592 `PUT`, an
/// operator) must not send its code where the person was not shown.
fn still_registered(client: &crate::domain::Client, request: &AuthorizationRequest) -> bool {
    client
        .verify_redirect_uri(Some(&request.redirect.uri))
        .is_some()
}
