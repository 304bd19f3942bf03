//! RFC 6749 §4.4: the client credentials grant.
//!
//! Parameters (§4.4.2): `grant_type` (checked by the endpoint) and optional
//! `scope`. No refresh token (§4.4.3) and no ID token: there is no user.
use crate::domain::{Client, GrantType, Scope};
use crate::oauth::token::TokenResponse;
use crate::oauth::{Error, Params};
use crate::tokens::{AccessTokenRequest, TokenIssuer};

pub async fn exchange(
    tokens: &TokenIssuer,
    client: &Client,
    params: &Params,
) -> Result<TokenResponse, Error> {
    super::ensure_allowed(client, GrantType::ClientCredentials)?;
    let scope = granted_scope(client, params.get("scope"))?;
    let issued = tokens
        .issue_access_token(AccessTokenRequest {
            // DESIGN: for client credentials `sub` is the client id; user
            // subjects are UUIDs, client ids are too but from another table,
            // and `client_id == sub` marks a token that acts for no user.
            subject: client.id.as_str(),
            client,
            scope: &scope,
            // No record: the client-credentials path writes nothing.
            jti: None,
        })
        .await?;
    Ok(TokenResponse::bearer(issued, &scope))
}

/// §3.3: the requested scope must be within the client's allowed scope; an
/// absent scope means the whole allowed scope.
fn granted_scope(client: &Client, requested: Option<&str>) -> Result<Scope, Error> {
    let Some(requested) = requested else {
        return Ok(client.scope.clone());
    };
    let requested: Scope = requested
        .parse()
        .map_err(|_| Error::InvalidScope("scope is malformed (RFC 6749 §3.3)".into()))?;
    if requested.is_subset(&client.scope) {
        Ok(requested)
    } else {
        Err(Error::InvalidScope(
            "scope includes values this client may not request".into(),
        ))
    }
}
