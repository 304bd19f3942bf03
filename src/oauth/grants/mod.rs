//! A module per grant type, each a list of named steps.
pub mod authorization_code;
pub mod client_credentials;
pub mod refresh_token;

use chrono::{DateTime, Utc};

use super::Error;
use super::token::TokenResponse;
use crate::domain::{Client, GrantType, Scope, User};
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
    pub scope: &'a Scope,
    /// The access token's `jti`, recorded by the caller.
    pub jti: String,
    /// When the user signed in (the ID token's `auth_time`).
    pub auth_time: DateTime<Utc>,
    pub nonce: Option<&'a str>,
}

/// A user's access token and, when `openid` was granted, an ID token
/// beside it, bound to it by `at_hash` (OIDC Core §3.1.3.3; on a refresh,
/// §12.2: the original sign-in's `auth_time`, no nonce).
pub async fn user_token_response(
    tokens: &TokenIssuer,
    request: UserTokens<'_>,
) -> Result<TokenResponse, Error> {
    let subject = request.user.id.to_string();
    let issued = tokens
        .issue_access_token(AccessTokenRequest {
            subject: &subject,
            client: request.client,
            scope: request.scope,
            jti: Some(request.jti),
        })
        .await?;
    let id_token = if request.scope.contains("openid") {
        Some(
            tokens
                .issue_id_token(IdTokenRequest {
                    user: request.user,
                    client: request.client,
                    scope: request.scope,
                    auth_time: request.auth_time,
                    nonce: request.nonce,
                    access_token: &issued.token,
                })
                .await?,
        )
    } else {
        None
    };
    let mut response = TokenResponse::bearer(issued, request.scope);
    response.id_token = id_token;
    Ok(response)
}
