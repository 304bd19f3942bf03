//! Whether an access token authd issued is active now: the one judgement
//! that `/userinfo` (OIDC Core §5.3) and `/introspect` (RFC 7662 §2.2)
//! share, so a rule added for one holds for the other.
//!
//! Active means: signed by a published key, `typ: at+jwt`, right `iss`,
//! not expired by authd's own clock (no leeway), issued to a client that
//! still exists (within the cache refresh interval on other replicas), not
//! revoked, and, for a user's token, on record and its user still enabled.
use std::sync::Arc;

use super::Error;
use crate::clients::ClientRegistry;
use crate::clock::Clock;
use crate::domain::{ClientId, User, UserId};
use crate::store::Store;
use crate::tokens::Keys;
use crate::tokens::verify::{self, AccessTokenClaims, VerifyError};

/// An active access token and, for a user's token, its user.
#[derive(Debug)]
pub struct ActiveToken {
    pub claims: AccessTokenClaims,
    /// `None` for a client-credentials token (its `sub` is the client).
    pub user: Option<Arc<User>>,
}

/// Why a token is not active; callers answer only `invalid_token` or
/// `{"active": false}`, the reason goes to the log and the metrics.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Inactive {
    #[error("{0}")]
    Unverified(VerifyError),
    #[error("the client it was issued to no longer exists")]
    ClientGone,
    #[error("not on record")]
    NotOnRecord,
    #[error("revoked")]
    Revoked,
    #[error("its user no longer exists or is disabled")]
    UserGone,
}

impl Inactive {
    /// A short label for `jwt_validation_failures_total{reason}`.
    fn reason(&self) -> &'static str {
        match self {
            Inactive::Unverified(error) => error.reason(),
            Inactive::ClientGone => "client_gone",
            Inactive::NotOnRecord | Inactive::Revoked => "revoked",
            Inactive::UserGone => "user_gone",
        }
    }
}

pub struct BearerTokens {
    pub store: Arc<dyn Store>,
    pub clients: Arc<ClientRegistry>,
    pub keys: Arc<Keys>,
    pub issuer: String,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl BearerTokens {
    /// Judges `token`. `Err` only when the database fails.
    #[tracing::instrument(level = "debug", name = "oauth.bearer.check", skip_all)]
    pub async fn check(&self, token: &str) -> Result<Result<ActiveToken, Inactive>, Error> {
        let verdict = self.judge(token).await?;
        if let Err(inactive) = &verdict {
            self.metrics
                .jwt_validation_failures
                .with_label_values(&[inactive.reason()])
                .inc();
            tracing::info!(reason = %inactive, "access token refused");
        }
        Ok(verdict)
    }

    async fn judge(&self, token: &str) -> Result<Result<ActiveToken, Inactive>, Error> {
        let claims = match verify::verify_access_token_reloading(
            &self.keys,
            &self.issuer,
            token,
            self.clock.as_ref(),
        )
        .await
        {
            Ok(claims) => claims,
            Err(error) => return Ok(Err(Inactive::Unverified(error))),
        };
        // A deleted client's tokens end with it, whoever holds them.
        let client = match ClientId::parse(&claims.client_id) {
            Some(id) => self.clients.find(&id).await.map_err(Error::internal)?,
            None => None,
        };
        if client.is_none() {
            return Ok(Err(Inactive::ClientGone));
        }
        let record = self
            .store
            .find_access_token(&claims.jti)
            .await
            .map_err(Error::internal)?;
        // A client-credentials token (`sub` is the client) is recorded only
        // once revoked; a user's token is recorded when issued.
        let for_user = claims.sub != claims.client_id;
        match record {
            Some(record) if record.revoked || record.client_id != claims.client_id => {
                return Ok(Err(Inactive::Revoked));
            }
            None if for_user => return Ok(Err(Inactive::NotOnRecord)),
            _ => {}
        }
        if !for_user {
            return Ok(Ok(ActiveToken { claims, user: None }));
        }
        let Ok(user_id) = claims.sub.parse().map(UserId) else {
            return Ok(Err(Inactive::UserGone));
        };
        let user = self
            .store
            .find_user(user_id)
            .await
            .map_err(Error::internal)?
            .filter(|user| !user.disabled);
        Ok(match user {
            Some(user) => Ok(ActiveToken {
                claims,
                user: Some(Arc::new(user)),
            }),
            None => Err(Inactive::UserGone),
        })
    }
}
