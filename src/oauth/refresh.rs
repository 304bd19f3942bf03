//! Refresh tokens (RFC 6749 §1.5, §6; RFC 9700 §4.14.2): 256 random bits,
//! opaque, 24 h, rotated on every use, grouped in families. The database
//! keeps the token's keyed digest and its grant sealed with the row id as
//! associated data, so a dump yields nothing `/token` accepts.
//!
//! Reuse of a consumed token revokes its whole family (every refresh token
//! and every access token issued from it), unless the optional grace window
//! recognises a retry after a lost response.
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Duration, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::Error;
use crate::clock::Clock;
use crate::crypto::{Digester, Sealer, random};
use crate::domain::{Client, ClientId, UserId};
use crate::store::{
    self, ConsumedRefresh, FamilyRecord, FamilyUser, RefreshTokenRecord, Store, StoredRefreshToken,
    Successor,
};

/// DESIGN: refresh tokens live 24 hours.
pub const DEFAULT_REFRESH_TOKEN_TTL_SECONDS: u64 = 24 * 60 * 60;
/// A family's absolute lifetime: 30 days. Each token lives a day and is
/// replaced on use, so an active user stays signed in for a month at most
/// before signing in again; a stolen family cannot be kept alive forever.
pub const DEFAULT_FAMILY_TTL_SECONDS: u64 = 30 * 24 * 60 * 60;
/// Upper bound of the reuse grace window.
pub const MAX_REUSE_GRACE_SECONDS: u64 = 60;

/// What a refresh token carries, sealed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshGrant {
    pub user_id: uuid::Uuid,
    pub client_id: String,
    /// The family's scope, as originally granted (never widened).
    pub scope: String,
    /// RFC 8707 resources the authorization named (none: the APIs of
    /// `scope`); a refresh may narrow to some of them.
    #[serde(default)]
    pub resources: Vec<String>,
    pub auth_time: DateTime<Utc>,
    pub family_id: String,
    pub parent_id: Option<String>,
}

impl RefreshGrant {
    pub fn user_id(&self) -> UserId {
        UserId(self.user_id)
    }
}

/// The settings of refresh tokens.
#[derive(Debug, Clone, Copy)]
pub struct RefreshSettings {
    pub token_ttl: Duration,
    pub family_ttl: Duration,
    /// Zero turns the grace window off.
    pub reuse_grace: Duration,
}

/// A rotation's result: the new token and the grant it carries.
pub struct Rotated {
    pub token: String,
    pub grant: RefreshGrant,
}

pub struct RefreshTokens {
    store: Arc<dyn Store>,
    digester: Digester,
    sealer: Sealer,
    settings: RefreshSettings,
    clock: Arc<dyn Clock>,
    reuse_detected: AtomicU64,
}

fn invalid_grant() -> Error {
    Error::InvalidGrant(
        "the refresh token is invalid, expired, revoked, or was issued to another client".into(),
    )
}

impl RefreshTokens {
    pub fn new(
        store: Arc<dyn Store>,
        digester: Digester,
        sealer: Sealer,
        settings: RefreshSettings,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            digester,
            sealer,
            settings,
            clock,
            reuse_detected: AtomicU64::new(0),
        }
    }

    /// How many reuses were detected since start (for metrics).
    pub fn reuse_detected(&self) -> u64 {
        self.reuse_detected.load(Ordering::Relaxed)
    }

    fn record(
        &self,
        token: &str,
        grant: &RefreshGrant,
        client: &ClientId,
        now: DateTime<Utc>,
    ) -> store::Result<RefreshTokenRecord> {
        let id = uuid::Uuid::new_v4().to_string();
        let plaintext = serde_json::to_vec(grant).map_err(|_| store::Error::Refused("grant"))?;
        Ok(RefreshTokenRecord {
            grant_sealed: self.sealer.seal(&id, &plaintext),
            id,
            token_digest: self.digester.digest(token.as_bytes()),
            key_version: self.digester.version(),
            family_id: grant.family_id.clone(),
            parent_id: grant.parent_id.clone(),
            client_id: client.clone(),
            created_at: now,
            expires_at: now + self.settings.token_ttl,
        })
    }

    fn open(&self, id: &str, sealed: &[u8]) -> store::Result<RefreshGrant> {
        let plaintext = self
            .sealer
            .open(id, sealed)
            .map_err(|e| store::Error::Corrupt {
                entity: "refresh token",
                id: id.to_owned(),
                problem: e.to_string(),
            })?;
        serde_json::from_slice(plaintext.expose_secret()).map_err(|_| store::Error::Corrupt {
            entity: "refresh token",
            id: id.to_owned(),
            problem: "grant".into(),
        })
    }

    /// Starts a family for a fresh authorization; `jti` is the access token
    /// issued with it (already recorded by the code redemption).
    #[tracing::instrument(level = "debug", name = "oauth.refresh.start", skip_all, fields(client_id = %client.id))]
    pub async fn start_family(
        &self,
        client: &Client,
        user: UserId,
        scope: &str,
        resources: &[String],
        auth_time: DateTime<Utc>,
        jti: &str,
    ) -> Result<String, Error> {
        let now = self.clock.now();
        let family = FamilyRecord {
            id: uuid::Uuid::new_v4().to_string(),
            client_id: client.id.clone(),
            user_id: user,
            created_at: now,
            expires_at: now + self.settings.family_ttl,
        };
        let grant = RefreshGrant {
            user_id: user.0,
            client_id: client.id.to_string(),
            scope: scope.to_owned(),
            resources: resources.to_vec(),
            auth_time,
            family_id: family.id.clone(),
            parent_id: None,
        };
        let token = random::secret_token();
        let record = self
            .record(&token, &grant, &client.id, now)
            .map_err(Error::internal)?;
        let created = self
            .store
            .create_family(&family, &record, jti)
            .await
            .map_err(Error::internal)?;
        if !created {
            return Err(Error::InvalidGrant(
                "the authorization code was presented twice; its tokens are revoked".into(),
            ));
        }
        Ok(token)
    }

    /// RFC 6749 §6 with rotation: consumes `token` and returns its
    /// successor. `check` sees the family's grant and its user as they are
    /// now, inside the rotation, and may refuse it (a wider scope) without
    /// consuming anything; a refusal that says the grant is over
    /// (`PERMISSIONS_GONE`, `NO_LONGER_ALLOWED`) also ends the family. A
    /// consumed token presented again revokes the family (RFC 9700
    /// §4.14.2), except for a retry within the grace window while the
    /// successor is still unused.
    #[tracing::instrument(level = "debug", name = "oauth.refresh.rotate", skip_all, fields(client_id = %client.id))]
    pub async fn rotate(
        &self,
        token: &str,
        client: &Client,
        jti: &str,
        access_expires_at: DateTime<Utc>,
        check: &(dyn Fn(&RefreshGrant, &FamilyUser) -> Result<(), &'static str> + Send + Sync),
    ) -> Result<Rotated, Error> {
        let digest = self.digester.digest(token.as_bytes());
        let now = self.clock.now();
        let successor_token = random::secret_token();
        let opened: Mutex<Option<RefreshGrant>> = Mutex::new(None);
        // The family a check found over, and why: it ends.
        let ending: Mutex<Option<(String, &'static str)>> = Mutex::new(None);
        let build = |consumed: &ConsumedRefresh| -> store::Result<Successor> {
            let parent = self.open(&consumed.id, &consumed.grant_sealed)?;
            if let Err(why) = check(&parent, &consumed.user) {
                if ends_family(why) {
                    *ending.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some((parent.family_id.clone(), why));
                }
                return Err(store::Error::Refused(why));
            }
            let grant = RefreshGrant {
                parent_id: Some(consumed.id.clone()),
                ..parent
            };
            let record = self.record(&successor_token, &grant, &client.id, now)?;
            *opened.lock().unwrap_or_else(|p| p.into_inner()) = Some(grant);
            Ok(Successor {
                token: record,
                jti: jti.to_owned(),
                access_expires_at,
            })
        };
        let rotated = self
            .store
            .rotate_refresh_token(&digest, &client.id, now, &build)
            .await;
        let successor = match rotated {
            Ok(Some(successor)) => Some(successor),
            Ok(None) => match self.not_rotated(&digest, client, now, &build).await {
                Ok(successor) => successor,
                Err(error) => return Err(self.end_refused(&ending, error).await),
            },
            Err(store::Error::Refused(why)) => {
                return Err(self.end_refused(&ending, refused(why)).await);
            }
            Err(error) => return Err(Error::internal(error)),
        };
        let grant = opened.lock().unwrap_or_else(|p| p.into_inner()).take();
        match (successor, grant) {
            (Some(_), Some(grant)) => Ok(Rotated {
                token: successor_token,
                grant,
            }),
            _ => Err(invalid_grant()),
        }
    }

    /// A check refused the rotation because the grant is over (the user
    /// holds none of the family's permissions any more, is disabled, or
    /// withdrew the consent): the family ends (nothing was consumed, so
    /// this is the only change). Returns `error`.
    async fn end_refused(
        &self,
        ending: &Mutex<Option<(String, &'static str)>>,
        error: Error,
    ) -> Error {
        let ending = ending.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((family, why)) = ending {
            if let Err(revoke) = self.revoke_family(&family).await {
                return revoke;
            }
            if why == PERMISSIONS_GONE {
                tracing::info!(family_id = %family, "refresh family ended: the user lost every permission it granted");
            } else {
                tracing::info!(family_id = %family, "refresh family ended: user disabled or consent withdrawn");
            }
        }
        error
    }

    /// Nothing was consumed: unknown, expired, revoked, foreign — or reused.
    async fn not_rotated(
        &self,
        digest: &[u8],
        client: &Client,
        now: DateTime<Utc>,
        build: store::BuildSuccessor<'_>,
    ) -> Result<Option<Successor>, Error> {
        let stored = self
            .store
            .find_refresh_token(digest)
            .await
            .map_err(Error::internal)?;
        let Some(stored) = stored.filter(|s| s.client_id == client.id.as_str()) else {
            return Ok(None);
        };
        if stored.family_revoked {
            return Ok(None);
        }
        // A token revoked on its own while its family lives can only be a
        // successor the grace path replaced: whoever presents it now holds a
        // copy the server already gave away twice. That is reuse.
        if stored.revoked_at.is_some() {
            return self.reuse(&stored, client, now).await;
        }
        let Some(consumed_at) = stored.consumed_at else {
            return Ok(None);
        };
        if self.settings.reuse_grace > Duration::zero() {
            let since = now - self.settings.reuse_grace;
            if consumed_at > since {
                match self
                    .store
                    .replace_unused_successor(&stored.id, since, now, build)
                    .await
                {
                    Ok(Some(successor)) => {
                        tracing::warn!(
                            target: "security",
                            client_id = %client.id,
                            family_id = %stored.family_id,
                            "refresh token retried within the grace window: its unused successor was replaced"
                        );
                        return Ok(Some(successor));
                    }
                    Ok(None) => {}
                    Err(store::Error::Refused(why)) => return Err(refused(why)),
                    Err(error) => return Err(Error::internal(error)),
                }
            }
        }
        self.reuse(&stored, client, now).await
    }

    /// RFC 9700 §4.14.2: revoke the whole family and say so.
    async fn reuse(
        &self,
        stored: &StoredRefreshToken,
        client: &Client,
        now: DateTime<Utc>,
    ) -> Result<Option<Successor>, Error> {
        self.reuse_detected.fetch_add(1, Ordering::Relaxed);
        let revoked = self
            .store
            .revoke_family(&stored.family_id, now)
            .await
            .map_err(Error::internal)?;
        tracing::warn!(
            target: "security",
            client_id = %client.id,
            user_id = %stored.user_id,
            family_id = %stored.family_id,
            revoked,
            "refresh token reuse detected: the token family is revoked"
        );
        crate::audit::record(crate::audit::Event::RefreshTokenReuse {
            client_id: client.id.as_str(),
            family_id: &stored.family_id.to_string(),
        });
        Ok(None)
    }

    /// The stored refresh token `token` is, by its keyed digest.
    async fn find(&self, token: &str) -> Result<Option<StoredRefreshToken>, Error> {
        let digest = self.digester.digest(token.as_bytes());
        self.store
            .find_refresh_token(&digest)
            .await
            .map_err(Error::internal)
    }

    /// Revokes the family of `token` if it is `client`'s (RFC 7009 §2.1);
    /// returns whether it was a refresh token of this client.
    pub async fn revoke(&self, token: &str, client: &ClientId) -> Result<bool, Error> {
        let Some(stored) = self.find(token).await? else {
            return Ok(false);
        };
        if stored.client_id != client.as_str() {
            return Ok(false);
        }
        self.store
            .revoke_family(&stored.family_id, self.clock.now())
            .await
            .map_err(Error::internal)?;
        tracing::info!(client_id = %client, family_id = %stored.family_id, "refresh token family revoked");
        Ok(true)
    }

    /// Revokes the family a grant belongs to.
    async fn revoke_family(&self, family_id: &str) -> Result<(), Error> {
        self.store
            .revoke_family(family_id, self.clock.now())
            .await
            .map(|_| ())
            .map_err(Error::internal)
    }

    /// The token's state and grant, if it is a refresh token authd issued.
    pub async fn inspect(
        &self,
        token: &str,
    ) -> Result<Option<(StoredRefreshToken, RefreshGrant)>, Error> {
        let Some(stored) = self.find(token).await? else {
            return Ok(None);
        };
        let grant = self
            .open(&stored.id, &stored.grant_sealed)
            .map_err(Error::internal)?;
        Ok(Some((stored, grant)))
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}

/// What a rotation's check answers when the user holds none of the
/// family's API scopes any more: the family ends (`invalid_grant`).
pub const PERMISSIONS_GONE: &str = "permissions";
/// What a rotation's check answers when the user is disabled or their
/// consent no longer covers the family's scope: the family ends
/// (`invalid_grant`).
pub const NO_LONGER_ALLOWED: &str = "no longer allowed";
/// A `resource` the authorization does not cover (RFC 8707 §2.2).
pub const TARGET_REFUSED: &str = "target";
/// A narrowed request left with none of its API scopes (`invalid_scope`).
pub const NOTHING_LEFT: &str = "nothing left";

/// Whether a check's refusal ends the family (the grant is over) rather
/// than refusing this one request.
fn ends_family(why: &str) -> bool {
    why == PERMISSIONS_GONE || why == NO_LONGER_ALLOWED
}

fn refused(why: &'static str) -> Error {
    match why {
        "scope" => Error::InvalidScope(
            "scope may only narrow the scope originally granted (RFC 6749 §6)".into(),
        ),
        PERMISSIONS_GONE => {
            Error::InvalidGrant("the user no longer holds any permission this grant gave".into())
        }
        NO_LONGER_ALLOWED => {
            Error::InvalidGrant("the user can no longer sign in to this client".into())
        }
        TARGET_REFUSED => Error::InvalidTarget(
            "resource is not one this grant's authorization covered (RFC 8707 §2.2)".into(),
        ),
        NOTHING_LEFT => {
            Error::InvalidScope("none of the requested scopes is still granted to this user".into())
        }
        _ => invalid_grant(),
    }
}
