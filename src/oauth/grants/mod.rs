//! A module per grant type, each a list of named steps.
pub mod authorization_code;
pub mod client_credentials;
pub mod refresh_token;

use chrono::{DateTime, Utc};

use super::Error;
use super::access::AccessDecision;
use super::token::TokenResponse;
use crate::domain::{Client, GrantType, User, UserAccessRights};
use crate::tokens::{AccessTokenRequest, IdTokenRequest, TokenIssuer};

/// Whether the client is registered for the grant (RFC 6749 §5.2
/// `unauthorized_client` otherwise): the first step of every grant.
pub fn ensure_allowed(client: &Client, grant: GrantType) -> Result<(), Error> {
    if client.allows_grant(grant) {
        Ok(())
    } else {
        Err(Error::UnauthorizedClient(
            format!("this client may not use the {} grant", grant.as_str()).into(),
        ))
    }
}

/// The tokens of a user's grant (a code exchanged, a refresh rotated).
pub struct UserTokens<'a> {
    pub user: &'a User,
    pub client: &'a Client,
    /// What the tokens carry (`oauth::access::decide`).
    pub decision: &'a AccessDecision,
    /// The user's rights, for the ID token's `groups` (the `groups` scope).
    pub rights: &'a UserAccessRights,
    /// The access token's `jti`, recorded by the caller.
    pub jti: String,
    /// When the user signed in (the ID token's `auth_time`).
    pub auth_time: DateTime<Utc>,
    pub nonce: Option<&'a str>,
}

/// A user's access token and, when `openid` was granted, an ID token
/// beside it, bound to it by `at_hash` (OIDC Core §3.1.3.3; on a refresh,
/// §12.2: the original sign-in's `auth_time`, no nonce).
/// A user's grant left with nothing it was for: every API scope it asked
/// for is gone (the user lost the roles that gave them).
pub fn nothing_left(decision: &AccessDecision) -> bool {
    decision.api_scope_asked && !decision.api_scope_granted
}

pub async fn user_token_response(
    tokens: &TokenIssuer,
    request: UserTokens<'_>,
) -> Result<TokenResponse, Error> {
    let subject = request.user.id.to_string();
    let decision = request.decision;
    let issued = tokens
        .issue_access_token(AccessTokenRequest {
            subject: &subject,
            client: request.client,
            scope: &decision.scope,
            audience: &decision.audience,
            lifetime: decision.token_lifetime(),
            claims: &decision.claims,
            jti: Some(request.jti),
        })
        .await?;
    let groups: Vec<String> = request
        .rights
        .groups
        .iter()
        .map(ToString::to_string)
        .collect();
    let id_token = if decision.scope.contains("openid") {
        Some(
            tokens
                .issue_id_token(IdTokenRequest {
                    user: request.user,
                    client: request.client,
                    scope: &decision.scope,
                    auth_time: request.auth_time,
                    nonce: request.nonce,
                    access_token: &issued.token,
                    groups: Some(&groups),
                })
                .await?,
        )
    } else {
        None
    };
    let mut response = TokenResponse::bearer(issued, &decision.scope);
    response.id_token = id_token;
    Ok(response)
}
