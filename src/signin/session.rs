//! Browser sessions and the CSRF tokens bound to them.
//!
//! The cookie holds 256 random bits; the database keeps only their keyed
//! digest, so a dump cannot be turned back into a cookie. The CSRF token of
//! a form is an HMAC of the cookie value under its own derived key: bound to
//! this browser's session, nothing to store, and useless to a site that
//! cannot read the cookie.
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use secrecy::{ExposeSecret, SecretString};

use crate::clock::Clock;
use crate::crypto::{Digester, random};
use crate::domain::{User, UserId};
use crate::oauth::Error;
use crate::store::{SessionRecord, Store};

/// How long a sign-in lasts before the user must sign in again.
pub const SESSION_TTL: Duration = Duration::hours(12);

/// A session cookie value. Redacted in `Debug`.
#[derive(Debug, Clone)]
pub struct CookieValue(SecretString);

impl CookieValue {
    pub fn new(value: &str) -> Self {
        Self(SecretString::from(value))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    fn generate() -> Self {
        Self::new(&random::secret_token())
    }
}

/// A browser, and the cookie that found it: a stored session once it has
/// signed in; before that an anonymous browser known by its cookie alone.
#[derive(Debug, Clone)]
pub struct Session {
    pub record: SessionRecord,
    pub cookie: CookieValue,
    /// The signed-in user, if any (enabled, still existing).
    pub user: Option<Arc<User>>,
    /// Whether a `browser_sessions` row holds it. An anonymous browser has
    /// none, and stores nothing: its pending request travels sealed to
    /// an id derived from its cookie (`signin::flow`).
    pub stored: bool,
}

impl Session {
    pub fn user_id(&self) -> Option<UserId> {
        self.user.as_ref().map(|u| u.id)
    }
}

pub struct Sessions {
    store: Arc<dyn Store>,
    cookie_digests: Digester,
    csrf: Digester,
    clock: Arc<dyn Clock>,
}

impl Sessions {
    pub fn new(
        store: Arc<dyn Store>,
        cookie_digests: Digester,
        csrf: Digester,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            cookie_digests,
            csrf,
            clock,
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The stored session this cookie belongs to, with its user when that
    /// user still exists and is enabled.
    pub async fn load(&self, cookie: Option<CookieValue>) -> Result<Option<Session>, Error> {
        let Some(cookie) = cookie else {
            return Ok(None);
        };
        let digest = self.cookie_digests.digest(cookie.expose().as_bytes());
        let Some(record) = self
            .store
            .find_session(&digest, self.clock.now())
            .await
            .map_err(Error::internal)?
        else {
            return Ok(None);
        };
        let user = match record.user_id {
            Some(id) => self
                .store
                .find_user(id)
                .await
                .map_err(Error::internal)?
                .filter(|user| !user.disabled)
                .map(Arc::new),
            None => None,
        };
        Ok(Some(Session {
            record,
            cookie,
            user,
            stored: true,
        }))
    }

    /// The browser behind this cookie: its stored session, or else the
    /// anonymous browser the cookie names.
    pub async fn browser(&self, cookie: Option<CookieValue>) -> Result<Option<Session>, Error> {
        let Some(cookie) = cookie else {
            return Ok(None);
        };
        if let Some(session) = self.load(Some(cookie.clone())).await? {
            return Ok(Some(session));
        }
        Ok(Some(self.anonymous(cookie)))
    }

    /// A new anonymous browser: a cookie, nothing stored.
    pub fn start(&self) -> Session {
        self.anonymous(CookieValue::generate())
    }

    fn anonymous(&self, cookie: CookieValue) -> Session {
        // Keyed, with its own prefix: the id reveals nothing about the
        // cookie, and is never the digest a stored session is found by.
        let mut input = b"authd anonymous browser\0".to_vec();
        input.extend_from_slice(cookie.expose().as_bytes());
        let id = format!(
            "anonymous:{}",
            URL_SAFE_NO_PAD.encode(self.cookie_digests.digest(&input))
        );
        Session {
            record: SessionRecord {
                id,
                user_id: None,
                auth_time: None,
                // Bounded by its pending requests' own expiry.
                expires_at: self.clock.now(),
                anonymous_id: None,
            },
            cookie,
            user: None,
            stored: false,
        }
    }

    /// A successful login. The browser gets a new cookie, so a cookie
    /// planted before login is worthless after it (session fixation). An
    /// anonymous browser gets its session row now, with a new random id
    /// (never the id derived from its old cookie), which remembers that
    /// old id for the browser's other tabs.
    pub async fn sign_in(&self, session: &Session, user: Arc<User>) -> Result<Session, Error> {
        let cookie = CookieValue::generate();
        let digest = self.cookie_digests.digest(cookie.expose().as_bytes());
        let now = self.clock.now();
        let expires_at = now + SESSION_TTL;
        let anonymous_id = if session.stored {
            session.record.anonymous_id.clone()
        } else {
            Some(session.record.id.clone())
        };
        let id = if session.stored {
            let updated = self
                .store
                .sign_in_session(&session.record.id, &digest, user.id, now, expires_at)
                .await
                .map_err(Error::internal)?;
            if !updated {
                return Err(Error::internal("the session disappeared during login"));
            }
            session.record.id.clone()
        } else {
            let id = uuid::Uuid::new_v4().to_string();
            self.store
                .insert_session(
                    &id,
                    &digest,
                    user.id,
                    now,
                    expires_at,
                    anonymous_id.as_deref(),
                )
                .await
                .map_err(Error::internal)?;
            id
        };
        Ok(Session {
            record: SessionRecord {
                id,
                user_id: Some(user.id),
                auth_time: Some(now),
                expires_at,
                anonymous_id,
            },
            cookie,
            user: Some(user),
            stored: true,
        })
    }

    pub async fn end(&self, session: &Session) -> Result<(), Error> {
        self.store
            .delete_session(&session.record.id)
            .await
            .map_err(Error::internal)
    }

    /// The CSRF token for forms shown to this session.
    pub fn csrf_token(&self, session: &Session) -> String {
        URL_SAFE_NO_PAD.encode(self.csrf.digest(session.cookie.expose().as_bytes()))
    }

    /// Whether `token` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, session: &Session, token: Option<&str>) -> bool {
        let Some(token) = token.and_then(|t| URL_SAFE_NO_PAD.decode(t).ok()) else {
            return false;
        };
        self.csrf.verify(session.cookie.expose().as_bytes(), &token)
    }
}
