//! RFC 6749 §4.4: the client credentials grant.
//!
//! Parameters (§4.4.2): `grant_type` (checked by the endpoint), optional
//! `scope`, and RFC 8707 `resource` (repeatable). No refresh token
//! (§4.4.3) and no ID token: there is no user. The client's registered
//! scopes are its permissions; everything is decided from memory.
use crate::domain::{ApiCatalogue, Client, GrantType, Scope};
use crate::oauth::access::{self, AccessRequest, Holder};
use crate::oauth::token::TokenResponse;
use crate::oauth::{Error, Params};
use crate::tokens::{AccessTokenRequest, TokenIssuer};

pub async fn exchange(
    tokens: &TokenIssuer,
    apis: &ApiCatalogue,
    client: &Client,
    params: &Params,
) -> Result<TokenResponse, Error> {
    super::ensure_allowed(client, GrantType::ClientCredentials)?;
    let scope = requested_scope(client, params.get("scope"))?;
    let decision = access::decide(
        apis,
        AccessRequest {
            client,
            scope: &scope,
            resources: params.all("resource"),
            authorized: None,
            holder: Holder::Client,
        },
    )?;
    // RFC 8707 §2: scopes of APIs other than the requested resources are
    // left out; only when nothing the client asked for is left is that an
    // error.
    if decision.api_scope_asked && !decision.api_scope_granted {
        return Err(Error::InvalidScope(
            "none of the requested scopes belongs to the requested resource, or to any API".into(),
        ));
    }
    let issued = tokens
        .issue_access_token(AccessTokenRequest {
            // DESIGN: for client credentials `sub` is the client id; user
            // subjects are UUIDs, client ids are too but from another table,
            // and `client_id == sub` marks a token that acts for no user.
            subject: client.id.as_str(),
            client,
            scope: &decision.scope,
            audience: &decision.audience,
            lifetime: decision.token_lifetime(),
            claims: &decision.claims,
            // No record: the client-credentials path writes nothing.
            jti: None,
        })
        .await?;
    Ok(TokenResponse::bearer(issued, &decision.scope))
}

/// §3.3: the requested scope must be within the client's allowed scope; an
/// absent scope means the whole allowed scope.
fn requested_scope(client: &Client, requested: Option<&str>) -> Result<Scope, Error> {
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
