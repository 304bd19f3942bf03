//! Initial access tokens for dynamic registration (RFC 7591 §3), as an
//! operator makes them (`authd registration-tokens`, the admin API) and as
//! `POST /register` checks and uses them. Stored as keyed digests: the token
//! is shown once.
use chrono::{DateTime, SubsecRound, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::clock::Clock;
use crate::crypto::{Digester, random};
use crate::domain::Scope;
use crate::store::{self, RegistrationTokenRecord, Store};

/// The most uses a token may allow.
pub const MAX_USES_LIMIT: u32 = 1_000_000;
/// The longest a token may live: 10 years, in seconds.
pub const MAX_EXPIRES_IN_SECS: u64 = 10 * 365 * 24 * 3600;

/// What a new token allows.
#[derive(Debug, Default, Clone)]
pub struct NewRegistrationToken {
    /// `None`: it never expires.
    pub expires_in: Option<std::time::Duration>,
    /// `None`: any number of registrations.
    pub max_uses: Option<u32>,
    /// The scopes a client registered with it may hold; empty: any scope a
    /// client may be registered with.
    pub scopes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistrationTokenError {
    #[error(
        "--scope {0}: not a scope token (RFC 6749 §3.3: printable ASCII without space, \" or \\)"
    )]
    InvalidScope(String),
    #[error("--scope {0}: the admin API's scopes are never given to a registered client")]
    AdminScope(String),
    #[error(
        "--scope {0}: no API defines this scope; define it first (authd apis create --identifier URI --name NAME --scope {0})"
    )]
    ScopeWithoutApi(String),
    #[error("--max-uses must be 1 to 1000000")]
    InvalidMaxUses,
    #[error("--expires-in must be more than zero and at most 10 years")]
    InvalidExpiry,
    #[error("no registration token with id {0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// A token as operators see it (never the token or its digest).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RegistrationTokenView {
    pub id: String,
    /// Space-separated scopes its clients may hold; absent: any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u32>,
    pub uses: u32,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<&RegistrationTokenRecord> for RegistrationTokenView {
    fn from(record: &RegistrationTokenRecord) -> Self {
        Self {
            id: record.id.clone(),
            scope: record.scope.clone(),
            max_uses: record.max_uses.and_then(|n| u32::try_from(n).ok()),
            uses: u32::try_from(record.uses).unwrap_or(0),
            created_at: record.created_at,
            expires_at: record.expires_at,
        }
    }
}

/// What the operator sees once.
#[derive(Serialize)]
pub struct IssuedRegistrationToken {
    #[serde(serialize_with = "expose")]
    pub token: SecretString,
    #[serde(flatten)]
    pub view: RegistrationTokenView,
}

fn expose<S: serde::Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose_secret())
}

/// The scopes a registration may be limited to: scope tokens, never the
/// admin API's, each defined by an API (or one of OpenID Connect's).
pub(crate) async fn check_scopes(
    store: &dyn Store,
    scopes: &[String],
) -> Result<Option<Scope>, RegistrationTokenError> {
    if scopes.is_empty() {
        return Ok(None);
    }
    if let Some(bad) = scopes
        .iter()
        .find(|s| Scope::from_tokens([s.as_str()]).is_err())
    {
        return Err(RegistrationTokenError::InvalidScope(bad.clone()));
    }
    if let Some(admin) = scopes
        .iter()
        .find(|s| crate::domain::api::is_admin_scope(s))
    {
        return Err(RegistrationTokenError::AdminScope(admin.clone()));
    }
    let scope = Scope::from_tokens(scopes)
        .map_err(|_| RegistrationTokenError::InvalidScope(String::new()))?;
    super::registration::ensure_scopes_have_apis(store, &scope)
        .await
        .map_err(|e| match e {
            super::registration::RegistrationError::ScopeWithoutApi(s) => {
                RegistrationTokenError::ScopeWithoutApi(s)
            }
            super::registration::RegistrationError::Store(e) => RegistrationTokenError::Store(e),
            other => RegistrationTokenError::InvalidScope(other.to_string()),
        })?;
    Ok(Some(scope))
}

pub async fn create(
    store: &dyn Store,
    digester: &Digester,
    clock: &dyn Clock,
    new: NewRegistrationToken,
) -> Result<IssuedRegistrationToken, RegistrationTokenError> {
    if new
        .max_uses
        .is_some_and(|n| !(1..=MAX_USES_LIMIT).contains(&n))
    {
        return Err(RegistrationTokenError::InvalidMaxUses);
    }
    if new
        .expires_in
        .is_some_and(|d| d.as_secs() == 0 || d.as_secs() > MAX_EXPIRES_IN_SECS)
    {
        return Err(RegistrationTokenError::InvalidExpiry);
    }
    let scope = check_scopes(store, &new.scopes).await?;
    let now = clock.now().trunc_subsecs(6);
    let expires_at = match new.expires_in {
        None => None,
        Some(d) => Some(
            chrono::Duration::from_std(d)
                .ok()
                .and_then(|d| now.checked_add_signed(d))
                .ok_or(RegistrationTokenError::InvalidExpiry)?,
        ),
    };
    let token = SecretString::from(random::secret_token());
    let record = RegistrationTokenRecord {
        id: uuid::Uuid::new_v4().to_string(),
        digest: digester.digest(token.expose_secret().as_bytes()),
        key_version: digester.version() as i32,
        scope: scope.map(|s| s.to_string()),
        max_uses: new.max_uses.map(|n| n as i32),
        uses: 0,
        created_at: now,
        expires_at,
    };
    store.insert_registration_token(&record).await?;
    crate::audit::record(crate::audit::Event::RegistrationTokenCreated {
        token_id: &record.id,
    });
    Ok(IssuedRegistrationToken {
        token,
        view: RegistrationTokenView::from(&record),
    })
}

pub async fn list(store: &dyn Store) -> Result<Vec<RegistrationTokenView>, RegistrationTokenError> {
    Ok(store
        .list_registration_tokens()
        .await?
        .iter()
        .map(RegistrationTokenView::from)
        .collect())
}

pub async fn revoke(store: &dyn Store, id: &str) -> Result<(), RegistrationTokenError> {
    if !store.delete_registration_token(id).await? {
        return Err(RegistrationTokenError::NotFound(id.to_owned()));
    }
    crate::audit::record(crate::audit::Event::RegistrationTokenRevoked { token_id: id });
    Ok(())
}

/// The stored token `presented` is, if it can still be used at `now`.
pub(crate) async fn usable(
    store: &dyn Store,
    digester: &Digester,
    now: DateTime<Utc>,
    presented: &str,
) -> Result<Option<RegistrationTokenRecord>, store::Error> {
    // A lookup by keyed digest: the digest is the index, so the
    // comparison is the database's equality on 32 bytes an attacker cannot
    // choose (they do not hold the key).
    let Some(record) = store
        .find_registration_token(&digester.digest(presented.as_bytes()))
        .await?
    else {
        return Ok(None);
    };
    let expired = record.expires_at.is_some_and(|at| at <= now);
    let used_up = record.max_uses.is_some_and(|max| record.uses >= max);
    Ok((!expired && !used_up).then_some(record))
}
