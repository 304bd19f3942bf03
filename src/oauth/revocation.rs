//! Token revocation (RFC 7009): a client revokes a refresh token (its whole
//! family goes) or an access token (its `jti` is denied until it expires).
//! Unknown, invalid or another client's tokens get the same 200 (§2.2), and
//! another client's token keeps working.
use super::token::TokenEndpoint;
use super::{Error, Params};
use crate::tokens::verify;

impl TokenEndpoint {
    /// `POST /revoke` after the form is read.
    #[tracing::instrument(level = "debug", name = "oauth.revoke", skip_all, fields(client_id))]
    pub async fn revoke(
        &self,
        authorization: Option<&[u8]>,
        params: &Params,
        ip: Option<crate::limits::client_ip::ClientIp>,
    ) -> Result<crate::domain::ClientId, Error> {
        let client = self.authenticate(authorization, params, ip).await?;
        tracing::Span::current().record("client_id", client.id.as_str());
        let token = params
            .get("token")
            .ok_or_else(|| Error::InvalidRequest("token is missing".into()))?;
        // §2.1: the hint only orders the lookups; an unknown hint is ignored.
        let access_first = params.get("token_type_hint") == Some("access_token");
        if access_first && self.revoke_access_token(token, &client.id).await? {
            return Ok(client.id.clone());
        }
        if self.refresh.revoke(token, &client.id).await? {
            return Ok(client.id.clone());
        }
        if !access_first {
            self.revoke_access_token(token, &client.id).await?;
        }
        Ok(client.id.clone())
    }

    /// Denies an access token of this client until it expires; returns
    /// whether `token` was one.
    async fn revoke_access_token(
        &self,
        token: &str,
        client: &crate::domain::ClientId,
    ) -> Result<bool, Error> {
        let Ok(claims) = verify::verify_access_token(
            self.tokens.keys(),
            self.tokens.issuer(),
            token,
            self.tokens.clock(),
        ) else {
            return Ok(false);
        };
        if claims.client_id != client.as_str() {
            return Ok(false);
        }
        let expires_at = chrono::DateTime::from_timestamp(claims.exp, 0)
            .ok_or_else(|| Error::internal("token exp out of range"))?;
        self.store
            .revoke_access_token(&claims.jti, client, expires_at, self.tokens.now())
            .await
            .map_err(Error::internal)?;
        tracing::info!(client_id = %client, jti = %claims.jti, "access token revoked");
        Ok(true)
    }
}
