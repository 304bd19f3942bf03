//! The UserInfo endpoint (OIDC Core §5.3): the signed-in user's claims, by
//! scope, for an access token authd issued to a user with `openid`.
use std::sync::Arc;

use serde::Serialize;

use super::Error;
use crate::domain::Scope;
use crate::tokens::ProfileClaims;

#[derive(Serialize)]
pub struct UserInfoClaims {
    /// The client the token was issued to (decides CORS; not a claim).
    #[serde(skip)]
    pub client_id: String,
    pub sub: String,
    #[serde(flatten)]
    pub profile: ProfileClaimsOwned,
    /// The names of the user's groups, with the `groups` scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
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
    pub bearer: Arc<super::bearer::BearerTokens>,
    pub store: Arc<dyn crate::store::Store>,
}

fn invalid_token() -> Error {
    // One description for every cause: the log has the reason.
    Error::InvalidToken("the access token is invalid, expired or revoked".into())
}

impl UserInfo {
    #[tracing::instrument(level = "debug", name = "oauth.userinfo", skip_all)]
    pub async fn claims(&self, token: &str) -> Result<UserInfoClaims, Error> {
        let active = self
            .bearer
            .check(token)
            .await?
            .map_err(|_| invalid_token())?;
        // Issued for a user, never by client credentials (whose sub is the
        // client).
        let Some(user) = active.user else {
            tracing::info!("userinfo: a client's own token has no user");
            return Err(invalid_token());
        };
        let scope: Scope = active
            .claims
            .scope
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or_default();
        if !scope.contains("openid") {
            return Err(Error::InsufficientScope(
                "the access token was not issued with the openid scope".into(),
            ));
        }
        let groups = if scope.contains("groups") {
            let rights = self
                .store
                .user_access_rights(user.id)
                .await
                .map_err(Error::internal)?;
            Some(rights.groups.iter().map(ToString::to_string).collect())
        } else {
            None
        };
        Ok(UserInfoClaims {
            client_id: active.claims.client_id,
            sub: user.id.to_string(),
            profile: ProfileClaims::for_scope(&user, &scope).into(),
            groups,
        })
    }
}
