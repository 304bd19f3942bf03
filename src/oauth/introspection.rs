//! Token introspection (RFC 7662). The caller authenticates as a client. A
//! client registered with `--introspect` (a resource server) may ask about
//! any token; any other client only about tokens issued to itself. Anything
//! not active — expired, revoked, foreign, garbage, or a failure looking it
//! up — is exactly `{"active": false}` (§2.2), never an error status.
use serde::Serialize;
use serde_json::Value;

use super::bearer::Inactive;
use super::token::TokenEndpoint;
use super::{Error, Params};
use crate::domain::{Client, ClientKind};

/// RFC 7662 §2.2.
#[derive(Debug, Serialize, Default)]
pub struct Introspection {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

impl Introspection {
    fn inactive() -> Self {
        Self::default()
    }
}

fn may_see(caller: &Client, token_client: &str) -> bool {
    caller.can_introspect || caller.id.as_str() == token_client
}

impl TokenEndpoint {
    /// `POST /introspect` after the form is read. Errors only for a failed
    /// client authentication or a missing `token`.
    #[tracing::instrument(
        level = "debug",
        name = "oauth.introspect",
        skip_all,
        fields(client_id)
    )]
    pub async fn introspect(
        &self,
        authorization: Option<&[u8]>,
        params: &Params,
        ip: Option<crate::limits::client_ip::ClientIp>,
    ) -> Result<Introspection, Error> {
        let caller = self.authenticate(authorization, params, ip).await?;
        tracing::Span::current().record("client_id", caller.id.as_str());
        // §2.1: the endpoint is protected; a public client proves nothing.
        if caller.kind == ClientKind::Public {
            return Err(Error::InvalidClient(
                "introspection requires a confidential client".into(),
            ));
        }
        let token = params
            .get("token")
            .ok_or_else(|| Error::InvalidRequest("token is missing".into()))?;
        let refresh_first = params.get("token_type_hint") == Some("refresh_token");
        let answer = if refresh_first {
            match self.introspect_refresh(&caller, token).await {
                Ok(Some(answer)) => Ok(Some(answer)),
                _ => self.introspect_access(&caller, token).await,
            }
        } else {
            match self.introspect_access(&caller, token).await {
                Ok(Some(answer)) => Ok(Some(answer)),
                _ => self.introspect_refresh(&caller, token).await,
            }
        };
        Ok(match answer {
            Ok(Some(answer)) => answer,
            Ok(None) => Introspection::inactive(),
            Err(error) => {
                tracing::warn!(%error, "introspection lookup failed; answering inactive");
                Introspection::inactive()
            }
        })
    }

    /// `Some` when `token` is an access token authd issued (active or not).
    async fn introspect_access(
        &self,
        caller: &Client,
        token: &str,
    ) -> Result<Option<Introspection>, Error> {
        // Refresh tokens are opaque: only JWT-shaped tokens are judged (and
        // counted as failures) here.
        if token.split('.').count() != 3 {
            return Ok(None);
        }
        let active = match self.bearer.check(token).await? {
            Ok(active) => active,
            Err(Inactive::Unverified(_)) => return Ok(None),
            Err(_) => return Ok(Some(Introspection::inactive())),
        };
        let claims = active.claims;
        if !may_see(caller, &claims.client_id) {
            return Ok(Some(Introspection::inactive()));
        }
        Ok(Some(Introspection {
            active: true,
            scope: claims.scope,
            client_id: Some(claims.client_id),
            sub: Some(claims.sub),
            exp: Some(claims.exp),
            iat: Some(claims.iat),
            iss: Some(claims.iss),
            aud: Some(claims.aud),
            token_type: Some("Bearer"),
            jti: Some(claims.jti),
        }))
    }

    async fn introspect_refresh(
        &self,
        caller: &Client,
        token: &str,
    ) -> Result<Option<Introspection>, Error> {
        let Some((stored, grant)) = self.refresh.inspect(token).await? else {
            return Ok(None);
        };
        let now = self.refresh.now();
        let live = stored.consumed_at.is_none()
            && stored.revoked_at.is_none()
            && !stored.family_revoked
            && stored.expires_at > now
            && stored.family_expires_at > now;
        if !live || !may_see(caller, &stored.client_id) {
            return Ok(Some(Introspection::inactive()));
        }
        let enabled = self
            .store
            .find_user(grant.user_id())
            .await
            .map_err(Error::internal)?
            .is_some_and(|u| !u.disabled);
        if !enabled {
            return Ok(Some(Introspection::inactive()));
        }
        Ok(Some(Introspection {
            active: true,
            scope: Some(grant.scope),
            client_id: Some(stored.client_id.clone()),
            sub: Some(grant.user_id.to_string()),
            exp: Some(stored.expires_at.min(stored.family_expires_at).timestamp()),
            iat: Some(stored.created_at.timestamp()),
            iss: Some(self.tokens.issuer().to_owned()),
            aud: Some(Value::String(stored.client_id)),
            token_type: Some("refresh_token"),
            jti: Some(stored.id),
        }))
    }
}
