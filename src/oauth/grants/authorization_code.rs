//! RFC 6749 §4.1.3: the authorization code grant, with PKCE (RFC 7636 §4.5)
//! and OpenID Connect ID tokens (OIDC Core §3.1.3).
//!
//! Parameters: `grant_type` (checked by the endpoint), `code`,
//! `redirect_uri` (required when the authorization request had one),
//! `code_verifier`, RFC 8707 `resource` (repeatable, within the
//! authorization's); client authentication as for every grant (a public
//! client sends only `client_id`). The user's permissions are read again
//! (one query): a role lost since the consent is not granted.
use chrono::Duration;

use super::super::codes::{Codes, Grant, Redemption};
use crate::domain::{ApiCatalogue, Client, CodeVerifier, GrantType, Scope, User};
use crate::oauth::access::{self, AccessRequest, Holder};
use crate::oauth::refresh::RefreshTokens;
use crate::oauth::token::TokenResponse;
use crate::oauth::{Error, Params};
use crate::store::Store;
use crate::tokens::TokenIssuer;
use crate::tokens::access_token::MAX_ACCESS_TOKEN_TTL_SECONDS;

/// What the grant needs besides the issuer.
pub struct CodeGrant<'a> {
    pub tokens: &'a TokenIssuer,
    pub apis: &'a ApiCatalogue,
    pub codes: &'a Codes,
    pub refresh: &'a RefreshTokens,
    pub store: &'a dyn Store,
}

fn invalid_code() -> Error {
    // One description whatever the cause: unknown, expired, used, or
    // issued to another client (§5.2).
    Error::InvalidGrant(
        "the authorization code is invalid, expired, already used, or was issued to another client"
            .into(),
    )
}

impl CodeGrant<'_> {
    pub async fn exchange(&self, client: &Client, params: &Params) -> Result<TokenResponse, Error> {
        super::ensure_allowed(client, GrantType::AuthorizationCode)?;
        let code = params
            .get("code")
            .ok_or_else(|| Error::InvalidRequest("code is missing".into()))?;
        // What can be checked without the code, before it is spent.
        let resources = params.all("resource");
        access::targets(self.apis, client, resources, None, &Scope::default())?;
        let grant = self.redeem(client, code).await?;
        check_redirect_uri(&grant, params.get("redirect_uri"))?;
        check_pkce(&grant, params.get("code_verifier"))?;
        let user = self.user(&grant).await?;
        let response = self.issue(client, &grant, &user, resources).await?;
        if crate::clients::dynamic::records_use(client) {
            // An openly registered client that got tokens is in use: it is
            // not removed as never used. Failing to record that fails
            // nothing the client asked for.
            if let Err(error) = self
                .store
                .mark_client_used(&client.id, self.tokens.now())
                .await
            {
                tracing::warn!(%error, client_id = %client.id, "cannot record a registered client's first use");
            }
        }
        Ok(response)
    }

    /// Step 1: the code, redeemed once; the access token's `jti` is recorded
    /// with it so that a replay can revoke the token (§4.1.2).
    async fn redeem(&self, client: &Client, code: &str) -> Result<(Grant, String), Error> {
        let jti = uuid::Uuid::new_v4().to_string();
        // The record outlives the token whatever its API's lifetime.
        let expires_at = self.tokens.now() + Duration::seconds(MAX_ACCESS_TOKEN_TTL_SECONDS);
        match self
            .codes
            .redeem(code, &client.id, &jti, expires_at)
            .await?
        {
            Redemption::Won(redeemed) => Ok((redeemed.grant, jti)),
            Redemption::Refused { .. } => Err(invalid_code()),
        }
    }

    async fn user(&self, (grant, _): &(Grant, String)) -> Result<User, Error> {
        self.store
            .find_user(grant.user_id())
            .await
            .map_err(Error::internal)?
            .filter(|user| !user.disabled)
            .ok_or_else(|| Error::InvalidGrant("the user can no longer sign in".into()))
    }

    async fn issue(
        &self,
        client: &Client,
        (grant, jti): &(Grant, String),
        user: &User,
        resources: &[String],
    ) -> Result<TokenResponse, Error> {
        let granted: Scope = grant.scope.parse().unwrap_or_default();
        let rights = self
            .store
            .user_access_rights(user.id)
            .await
            .map_err(Error::internal)?;
        // Resources deleted since the authorization are dropped.
        let authorized = access::still_served(self.apis, client, &grant.resources);
        let gone = || {
            Error::InvalidGrant(
                "the user no longer holds any permission this authorization granted".into(),
            )
        };
        if !grant.resources.is_empty() && authorized.is_empty() {
            return Err(gone());
        }
        let decision = access::decide(
            self.apis,
            AccessRequest {
                client,
                scope: &granted,
                resources: if resources.is_empty() {
                    &authorized
                } else {
                    resources
                },
                authorized: Some(&authorized),
                holder: Holder::User(&rights),
            },
        )?;
        // As at /authorize: nothing left is no API scope and no openid.
        if !decision.api_scope_granted && !decision.scope.contains("openid") {
            return Err(gone());
        }
        let scope = &decision.scope;
        let mut response = super::user_token_response(
            self.tokens,
            super::UserTokens {
                user,
                client,
                decision: &decision,
                rights: &rights,
                jti: jti.clone(),
                auth_time: grant.auth_time,
                nonce: grant.nonce.as_deref(),
            },
        )
        .await?;
        // OIDC Core §11: a refresh token only for a client allowed the grant
        // and only when `offline_access` was requested and consented (the
        // code's scope is what the user allowed).
        // The family keeps what the user consented to and the resources
        // authorized: each refresh decides again from them.
        if client.allows_grant(GrantType::RefreshToken) && scope.contains("offline_access") {
            response.refresh_token = Some(
                self.refresh
                    .start_family(
                        client,
                        user.id,
                        &grant.scope,
                        &grant.resources,
                        grant.auth_time,
                        jti,
                    )
                    .await?,
            );
        }
        Ok(response)
    }
}

/// §4.1.3: `redirect_uri` is required if the authorization request had
/// one, and then must be identical.
fn check_redirect_uri((grant, _): &(Grant, String), presented: Option<&str>) -> Result<(), Error> {
    let matches = match presented {
        Some(uri) => uri == grant.redirect.uri,
        None => !grant.redirect.explicit,
    };
    if matches {
        Ok(())
    } else {
        Err(Error::InvalidGrant(
            "redirect_uri does not match the authorization request".into(),
        ))
    }
}

/// RFC 7636 §4.6: the verifier must hash to the stored challenge. Every
/// code carries a challenge (PKCE is required at `/authorize`), so a
/// missing or malformed verifier fails here too.
fn check_pkce((grant, _): &(Grant, String), verifier: Option<&str>) -> Result<(), Error> {
    let verified = verifier
        .and_then(CodeVerifier::parse)
        .is_some_and(|verifier| grant.code_challenge.is_satisfied_by(&verifier));
    if verified {
        Ok(())
    } else {
        Err(Error::InvalidGrant(
            "code_verifier is missing or does not match the code_challenge (RFC 7636 §4.6)".into(),
        ))
    }
}
