//! The token endpoint (RFC 6749 §3.2): checks common to every grant, then
//! the grant's own steps in `grants/`.
use std::sync::Arc;

use serde::Serialize;

use super::client_auth::{self, ClientCredentials};
use super::codes::Codes;
use super::grants;
use super::refresh::RefreshTokens;
use super::{Error, Params};
use crate::clients::ClientRegistry;
use crate::crypto::Digester;
use crate::domain::Client;
use crate::domain::{GrantType, Scope};
use crate::limits::buckets::Decision;
use crate::limits::client_ip::ClientIp;
use crate::limits::limiter::Limits;
use crate::store::Store;
use crate::tokens::{IssueError, IssuedAccessToken, TokenIssuer};

/// The grant types `/token` implements now; discovery advertises exactly
/// these.
pub const SUPPORTED_GRANTS: [GrantType; 3] = [
    GrantType::AuthorizationCode,
    GrantType::ClientCredentials,
    GrantType::RefreshToken,
];

/// The client authentication methods `/token` accepts (RFC 8414 §2;
/// `none` is a public client sending only its `client_id`).
pub const AUTH_METHODS: [&str; 3] = ["client_secret_basic", "client_secret_post", "none"];

/// RFC 6749 §5.1 successful response.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// OIDC Core §3.1.3.3: with the `openid` scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// RFC 6749 §5.1: with `offline_access`, and on every refresh (rotation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The access token's `sub` and `jti`, for the audit log.
    #[serde(skip)]
    pub audit: (String, String),
}

impl TokenResponse {
    pub fn bearer(issued: IssuedAccessToken, scope: &Scope) -> Self {
        Self {
            audit: (issued.sub, issued.jti),
            access_token: issued.token,
            token_type: "Bearer",
            expires_in: issued.expires_in,
            scope: (!scope.is_empty()).then(|| scope.to_string()),
            id_token: None,
            refresh_token: None,
        }
    }
}

impl From<IssueError> for Error {
    fn from(error: IssueError) -> Self {
        match error {
            IssueError::Overloaded => {
                Error::TemporarilyUnavailable("the server is busy; retry shortly".into())
            }
            IssueError::Failed => Error::internal(error),
        }
    }
}

/// What the token endpoint needs.
pub struct TokenEndpoint {
    pub clients: Arc<ClientRegistry>,
    pub client_secrets: Digester,
    pub tokens: Arc<TokenIssuer>,
    pub codes: Arc<Codes>,
    pub refresh: Arc<RefreshTokens>,
    pub store: Arc<dyn Store>,
    pub limits: Arc<Limits>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Whether an access token is active (`/introspect`).
    pub bearer: Arc<super::bearer::BearerTokens>,
}

impl TokenEndpoint {
    /// Runs a token request: `authorization` is the raw `Authorization`
    /// header, `params` the form body.
    #[tracing::instrument(
        level = "debug",
        name = "oauth.token",
        skip_all,
        fields(grant_type, client_id)
    )]
    pub async fn exchange(
        &self,
        authorization: Option<&[u8]>,
        params: &Params,
        ip: Option<ClientIp>,
    ) -> Result<(TokenResponse, Decision, Arc<Client>), Error> {
        let grant = requested_grant(params)?;
        tracing::Span::current().record("grant_type", grant.as_str());
        let client = self.authenticate(authorization, params, ip).await?;
        tracing::Span::current().record("client_id", client.id.as_str());
        // Tiered per-client limit (after authentication: a stranger cannot
        // spend a client's allowance).
        let decision = self
            .limits
            .check_tier(&client.rate_tier, client.id.as_str())
            .await;
        if !decision.allowed() {
            crate::audit::record(crate::audit::Event::RateLimited {
                limit: "token_tier",
                ip: ip.map(|ip| ip.addr),
                client_id: Some(client.id.as_str()),
            });
            return Err(Error::RateLimited(decision));
        }
        let response = match grant {
            GrantType::ClientCredentials => {
                let apis = self.clients.apis();
                grants::client_credentials::exchange(&self.tokens, &apis, &client, params).await
            }
            GrantType::AuthorizationCode => {
                grants::authorization_code::CodeGrant {
                    tokens: &self.tokens,
                    apis: &self.clients.apis(),
                    codes: &self.codes,
                    refresh: &self.refresh,
                    store: self.store.as_ref(),
                }
                .exchange(&client, params)
                .await
            }
            GrantType::RefreshToken => {
                grants::refresh_token::RefreshGrantType {
                    tokens: &self.tokens,
                    apis: &self.clients.apis(),
                    refresh: &self.refresh,
                }
                .exchange(&client, params)
                .await
            }
        }?;
        self.metrics
            .tokens_issued
            .with_label_values(&[grant.as_str()])
            .inc();
        crate::audit::record(crate::audit::Event::TokenIssued {
            client_id: client.id.as_str(),
            grant: grant.as_str(),
            sub: &response.audit.0,
            jti: &response.audit.1,
        });
        Ok((response, decision, client))
    }

    /// Client authentication (RFC 6749 §2.3.1) for `/token`, `/revoke` and
    /// `/introspect`, behind the failure limit per (client IP, client_id):
    /// once a pair has failed too often it is refused before its
    /// credentials are even checked.
    pub(super) async fn authenticate(
        &self,
        authorization: Option<&[u8]>,
        params: &Params,
        ip: Option<ClientIp>,
    ) -> Result<Arc<Client>, Error> {
        let credentials = ClientCredentials::from_request(authorization, params)?;
        // Bounded: the key must not grow with whatever a caller sends.
        let id: String = credentials.client_id().chars().take(64).collect();
        if let Some(ip) = ip
            && let Some(decision) = self.limits.client_auth_blocked(ip.key, &id).await
        {
            crate::audit::record(crate::audit::Event::RateLimited {
                limit: "client_auth_failures",
                ip: Some(ip.addr),
                client_id: Some(&id),
            });
            return Err(Error::RateLimited(decision));
        }
        let result =
            client_auth::authenticate(&self.clients, &self.client_secrets, &credentials).await;
        if let Err(Error::InvalidClient(_)) = &result {
            self.metrics.client_auth_failures.inc();
            // A pair another replica blocked meanwhile is told so (429),
            // as it would have been before its credentials were checked.
            if let Some(ip) = ip
                && let Some(decision) = self.limits.client_auth_failed(ip.key, &id).await
            {
                crate::audit::record(crate::audit::Event::RateLimited {
                    limit: "client_auth_failures",
                    ip: Some(ip.addr),
                    client_id: Some(&id),
                });
                return Err(Error::RateLimited(decision));
            }
        }
        result
    }
}

fn unsupported_grant() -> Error {
    Error::UnsupportedGrantType(
        "grant_type is not supported; see grant_types_supported in the server metadata".into(),
    )
}

/// RFC 6749 §4.4.2 / §5.2: a missing `grant_type` is `invalid_request`, one
/// this server does not implement is `unsupported_grant_type`.
fn requested_grant(params: &Params) -> Result<GrantType, Error> {
    let value = params
        .get("grant_type")
        .ok_or_else(|| Error::InvalidRequest("grant_type is missing".into()))?;
    value
        .parse::<GrantType>()
        .ok()
        .filter(|grant| SUPPORTED_GRANTS.contains(grant))
        .ok_or_else(unsupported_grant)
}
