//! RFC 6749 §6: refreshing an access token, with rotation (RFC 9700
//! §4.14.2). Parameters: `grant_type` (checked by the endpoint),
//! `refresh_token`, optional `scope` (may narrow, never widen), RFC 8707
//! `resource` (repeatable; may narrow to resources the authorization
//! covered, §2.2).
//!
//! Every refresh checks the family's user again, as read inside the
//! rotation (RFC 6749 §10.4: a refresh token outlives nothing it was
//! granted from): a disabled user or a withdrawn consent ends the family;
//! the scope is decided again from the user's roles now: a lost role's
//! scopes are left out, and a user left with none of the family's API
//! scopes ends the family.
use std::sync::Mutex;

use chrono::Duration;

use crate::domain::{ApiCatalogue, Client, GrantType, Scope, User, UserAccessRights};
use crate::oauth::access::{self, AccessDecision, AccessRequest, Holder};
use crate::oauth::refresh::{
    NO_LONGER_ALLOWED, NOTHING_LEFT, PERMISSIONS_GONE, RefreshGrant, RefreshTokens, Rotated,
    TARGET_REFUSED,
};
use crate::oauth::token::TokenResponse;
use crate::oauth::{Error, Params};
use crate::store::FamilyUser;
use crate::tokens::TokenIssuer;
use crate::tokens::access_token::MAX_ACCESS_TOKEN_TTL_SECONDS;

/// Why a refresh's decision refused the rotation (nothing is consumed).
enum Refusal {
    Target(access::InvalidTarget),
    PermissionsGone,
    NothingLeft,
}

pub struct RefreshGrantType<'a> {
    pub tokens: &'a TokenIssuer,
    pub apis: &'a ApiCatalogue,
    pub refresh: &'a RefreshTokens,
}

impl RefreshGrantType<'_> {
    pub async fn exchange(&self, client: &Client, params: &Params) -> Result<TokenResponse, Error> {
        super::ensure_allowed(client, GrantType::RefreshToken)?;
        let token = params
            .get("refresh_token")
            .ok_or_else(|| Error::InvalidRequest("refresh_token is missing".into()))?;
        let requested = requested_scope(params.get("scope"))?;
        let resources = params.all("resource");
        let jti = uuid::Uuid::new_v4().to_string();
        // The record outlives the token whatever its API's lifetime.
        let access_expires_at = self.tokens.now() + Duration::seconds(MAX_ACCESS_TOKEN_TTL_SECONDS);
        let decided: Mutex<Option<(AccessDecision, UserAccessRights, User)>> = Mutex::new(None);
        let target: Mutex<Option<Error>> = Mutex::new(None);
        let check = |grant: &RefreshGrant, user: &FamilyUser| {
            still_allowed(grant, user)?;
            within_family_scope(requested.as_ref(), grant)?;
            let decision = self
                .decide(client, grant, requested.as_ref(), resources, &user.rights)
                .map_err(|refusal| match refusal {
                    Refusal::Target(error) => {
                        *target.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.into());
                        TARGET_REFUSED
                    }
                    Refusal::PermissionsGone => PERMISSIONS_GONE,
                    Refusal::NothingLeft => NOTHING_LEFT,
                })?;
            *decided.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((decision, user.rights.clone(), user.account.clone()));
            Ok(())
        };
        let rotated = match self
            .refresh
            .rotate(token, client, &jti, access_expires_at, &check)
            .await
        {
            Ok(rotated) => rotated,
            Err(Error::InvalidTarget(_)) => {
                // The check's own description says which resource and why.
                let detail = target.lock().unwrap_or_else(|p| p.into_inner()).take();
                return Err(detail.unwrap_or_else(|| {
                    Error::InvalidTarget("resource is not valid for this grant".into())
                }));
            }
            Err(error) => return Err(error),
        };
        let Some((decision, rights, user)) =
            decided.lock().unwrap_or_else(|p| p.into_inner()).take()
        else {
            return Err(Error::internal("a rotation without its decision"));
        };
        self.issue(client, &rotated, &user, &decision, &rights, jti)
            .await
    }

    /// The scope and `aud` of the refreshed token, from the family's grant
    /// and the user's rights now. Refuses (nothing consumed) a resource the
    /// authorization did not cover, a narrowed request left with nothing,
    /// and a user left with none of the family's API scopes (the family
    /// then ends).
    fn decide(
        &self,
        client: &Client,
        grant: &RefreshGrant,
        requested: Option<&Scope>,
        resources: &[String],
        rights: &UserAccessRights,
    ) -> Result<AccessDecision, Refusal> {
        let family: Scope = grant.scope.parse().unwrap_or_default();
        // The authorization's resources that still exist for this client
        // (one deleted since is dropped; none left ends the family).
        let authorized = access::still_served(self.apis, client, &grant.resources);
        if !grant.resources.is_empty() && authorized.is_empty() {
            return Err(Refusal::PermissionsGone);
        }
        let whole = access::decide(
            self.apis,
            AccessRequest {
                client,
                scope: &family,
                resources: &authorized,
                authorized: Some(&authorized),
                holder: Holder::User(rights),
            },
        )
        .map_err(Refusal::Target)?;
        if super::nothing_left(&whole) {
            return Err(Refusal::PermissionsGone);
        }
        if requested.is_none() && resources.is_empty() {
            return Ok(whole);
        }
        let narrowed = access::decide(
            self.apis,
            AccessRequest {
                client,
                scope: requested.unwrap_or(&family),
                resources: if resources.is_empty() {
                    &authorized
                } else {
                    resources
                },
                authorized: Some(&authorized),
                holder: Holder::User(rights),
            },
        )
        .map_err(Refusal::Target)?;
        if super::nothing_left(&narrowed) {
            return Err(Refusal::NothingLeft);
        }
        Ok(narrowed)
    }

    async fn issue(
        &self,
        client: &Client,
        rotated: &Rotated,
        user: &User,
        decision: &AccessDecision,
        rights: &UserAccessRights,
        jti: String,
    ) -> Result<TokenResponse, Error> {
        let mut response = super::user_token_response(
            self.tokens,
            super::UserTokens {
                user,
                client,
                decision,
                rights,
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

/// RFC 6749 §10.4 (a refresh token outlives nothing it was granted from):
/// the family's user is still enabled and their consent still covers the
/// family's scope. Every family was consented to (offline access always
/// asks, OIDC Core §11), so the consent must still be there. Otherwise the
/// family ends.
fn still_allowed(grant: &RefreshGrant, user: &FamilyUser) -> Result<(), &'static str> {
    let family: Scope = grant.scope.parse().unwrap_or_default();
    let consented = user
        .consent
        .as_deref()
        .and_then(|s| s.parse::<Scope>().ok())
        .is_some_and(|consented| family.is_subset(&consented));
    if user.account.id == grant.user_id() && !user.account.disabled && consented {
        Ok(())
    } else {
        Err(NO_LONGER_ALLOWED)
    }
}
