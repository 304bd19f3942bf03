//! RFC 6749 §6: refreshing an access token, with rotation (RFC 9700
//! §4.14.2). Parameters: `grant_type` (checked by the endpoint),
//! `refresh_token`, optional `scope` (may narrow, never widen).
use chrono::Duration;

use crate::domain::{Client, GrantType, Scope, User};
use crate::oauth::refresh::{RefreshGrant, RefreshTokens, Rotated};
use crate::oauth::token::TokenResponse;
use crate::oauth::{Error, Params};
use crate::store::Store;
use crate::tokens::TokenIssuer;
use crate::tokens::access_token::ACCESS_TOKEN_TTL_SECONDS;

pub struct RefreshGrantType<'a> {
    pub tokens: &'a TokenIssuer,
    pub refresh: &'a RefreshTokens,
    pub store: &'a dyn Store,
}

impl RefreshGrantType<'_> {
    pub async fn exchange(&self, client: &Client, params: &Params) -> Result<TokenResponse, Error> {
        super::ensure_allowed(client, GrantType::RefreshToken)?;
        let token = params
            .get("refresh_token")
            .ok_or_else(|| Error::InvalidRequest("refresh_token is missing".into()))?;
        let requested = requested_scope(params.get("scope"))?;
        let jti = uuid::Uuid::new_v4().to_string();
        let access_expires_at = self.tokens.now() + Duration::seconds(ACCESS_TOKEN_TTL_SECONDS);
        let check = |grant: &RefreshGrant| within_family_scope(requested.as_ref(), grant);
        let rotated = self
            .refresh
            .rotate(token, client, &jti, access_expires_at, &check)
            .await?;
        let user = self.still_allowed(client, &rotated.grant).await?;
        let scope = match requested {
            Some(narrowed) => narrowed,
            None => rotated.grant.scope.parse().unwrap_or_default(),
        };
        self.issue(client, &rotated, &user, &scope, jti).await
    }

    /// §4: a disabled user or a withdrawn consent ends the family.
    async fn still_allowed(&self, client: &Client, grant: &RefreshGrant) -> Result<User, Error> {
        let user = self
            .store
            .find_user(grant.user_id())
            .await
            .map_err(Error::internal)?
            .filter(|user| !user.disabled);
        // Every family was consented to (offline access always asks, OIDC
        // Core §11), so the consent must still be there.
        let consented = match &user {
            None => false,
            Some(user) => {
                let family: Scope = grant.scope.parse().unwrap_or_default();
                self.store
                    .find_consent(user.id, &client.id)
                    .await
                    .map_err(Error::internal)?
                    .and_then(|s| s.parse::<Scope>().ok())
                    .is_some_and(|consented| family.is_subset(&consented))
            }
        };
        match user {
            Some(user) if consented => Ok(user),
            _ => {
                self.refresh.revoke_family(&grant.family_id).await?;
                tracing::info!(family_id = %grant.family_id, "refresh family ended: user disabled or consent withdrawn");
                Err(Error::InvalidGrant(
                    "the user can no longer sign in to this client".into(),
                ))
            }
        }
    }

    async fn issue(
        &self,
        client: &Client,
        rotated: &Rotated,
        user: &User,
        scope: &Scope,
        jti: String,
    ) -> Result<TokenResponse, Error> {
        let mut response = super::user_token_response(
            self.tokens,
            super::UserTokens {
                user,
                client,
                scope,
                jti,
                auth_time: rotated.grant.auth_time,
                nonce: None,
            },
        )
        .await?;
        response.refresh_token = Some(rotated.token.clone());
        Ok(response)
    }
}

fn requested_scope(scope: Option<&str>) -> Result<Option<Scope>, Error> {
    scope
        .map(|s| {
            s.parse()
                .map_err(|_| Error::InvalidScope("scope is malformed (RFC 6749 §3.3)".into()))
        })
        .transpose()
}

/// §6: "The requested scope MUST NOT include any scope not originally
/// granted by the resource owner".
fn within_family_scope(
    requested: Option<&Scope>,
    grant: &RefreshGrant,
) -> Result<(), &'static str> {
    let family: Scope = grant.scope.parse().unwrap_or_default();
    match requested {
        Some(requested) if !requested.is_subset(&family) => Err("scope"),
        _ => Ok(()),
    }
}
