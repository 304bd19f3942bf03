//! The UserInfo endpoint (OIDC Core §5.3): the signed-in user's claims, by
//! scope, for an access token authd issued to a user with `openid`.
use std::sync::Arc;

use serde::Serialize;

use super::Error;
use crate::domain::{Scope, UserId};
use crate::store::Store;
use crate::tokens::verify::{self, VerifyError};
use crate::tokens::{Keys, ProfileClaims};

#[derive(Serialize)]
pub struct UserInfoClaims {
    /// The client the token was issued to (decides CORS; not a claim).
    #[serde(skip)]
    pub client_id: String,
    pub sub: String,
    #[serde(flatten)]
    pub profile: ProfileClaimsOwned,
}

/// [`ProfileClaims`], owned for the response.
#[derive(Serialize)]
pub struct ProfileClaimsOwned {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

impl From<ProfileClaims<'_>> for ProfileClaimsOwned {
    fn from(claims: ProfileClaims<'_>) -> Self {
        Self {
            name: claims.name.map(str::to_owned),
            preferred_username: claims.preferred_username.map(str::to_owned),
            email: claims.email.map(str::to_owned),
            email_verified: claims.email_verified,
        }
    }
}

pub struct UserInfo {
    pub store: Arc<dyn Store>,
    pub keys: Arc<Keys>,
    pub issuer: String,
    pub clock: Arc<dyn crate::clock::Clock>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

fn invalid_token() -> Error {
    // One description for every cause: the log has the reason.
    Error::InvalidToken("the access token is invalid, expired or revoked".into())
}

impl UserInfo {
    #[tracing::instrument(level = "debug", name = "oauth.userinfo", skip_all)]
    pub async fn claims(&self, token: &str) -> Result<UserInfoClaims, Error> {
        let claims = verify::verify_access_token_reloading(
            &self.keys,
            &self.issuer,
            token,
            self.clock.as_ref(),
        )
        .await
        .map_err(|reason: VerifyError| {
            self.metrics
                .jwt_validation_failures
                .with_label_values(&[reason.reason()])
                .inc();
            tracing::info!(%reason, "userinfo: token refused");
            invalid_token()
        })?;
        // Issued for a user (never client credentials, whose sub is the
        // client) and recorded, so that revocation is seen.
        let record = self
            .store
            .find_access_token(&claims.jti)
            .await
            .map_err(Error::internal)?;
        let Some(record) = record.filter(|r| !r.revoked && r.client_id == claims.client_id) else {
            self.metrics
                .jwt_validation_failures
                .with_label_values(&["revoked"])
                .inc();
            tracing::info!(jti = %claims.jti, "userinfo: token not on record or revoked");
            return Err(invalid_token());
        };
        let user_id = claims
            .sub
            .parse()
            .map(UserId)
            .map_err(|_| invalid_token())?;
        let scope: Scope = claims
            .scope
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or_default();
        if !scope.contains("openid") {
            return Err(Error::InsufficientScope(
                "the access token was not issued with the openid scope".into(),
            ));
        }
        let user = self
            .store
            .find_user(user_id)
            .await
            .map_err(Error::internal)?
            .filter(|user| !user.disabled)
            .ok_or_else(|| {
                tracing::info!(jti = %record.jti, "userinfo: user gone or disabled");
                invalid_token()
            })?;
        Ok(UserInfoClaims {
            client_id: claims.client_id.clone(),
            sub: user.id.to_string(),
            profile: ProfileClaims::for_scope(&user, &scope).into(),
        })
    }
}
