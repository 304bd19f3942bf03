//! JWT access tokens per RFC 9068.
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use super::Keys;
use super::signer::{SignError, SigningPool};
use crate::clock::Clock;
use crate::domain::{Client, Scope};

/// DESIGN: access tokens live 15 minutes.
pub const ACCESS_TOKEN_TTL_SECONDS: i64 = 900;

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("the signing queue is full")]
    Overloaded,
    #[error("signing failed")]
    Failed,
}

impl From<SignError> for IssueError {
    fn from(error: SignError) -> Self {
        match error {
            SignError::Overloaded => IssueError::Overloaded,
            SignError::Failed => IssueError::Failed,
        }
    }
}

/// RFC 9068 §2.2: `aud` is one string or an array of strings.
#[derive(Serialize)]
#[serde(untagged)]
enum Audience<'a> {
    One(&'a str),
    Many(&'a [String]),
}

/// RFC 9068 §2.2 claims. Minimal on purpose: no personal data.
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: Audience<'a>,
    exp: i64,
    iat: i64,
    jti: String,
    client_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

/// What an access token is issued for.
pub struct AccessTokenRequest<'a> {
    /// The client id for client credentials; the user id for user grants.
    pub subject: &'a str,
    pub client: &'a Client,
    pub scope: &'a Scope,
}

pub struct IssuedAccessToken {
    pub token: String,
    pub expires_in: i64,
}

pub struct TokenIssuer {
    issuer: String,
    keys: Arc<Keys>,
    signer: SigningPool,
    clock: Arc<dyn Clock>,
}

impl TokenIssuer {
    pub fn new(
        issuer: String,
        keys: Arc<Keys>,
        signer: SigningPool,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            issuer,
            keys,
            signer,
            clock,
        }
    }

    /// Builds and signs an access token. Writes nothing to the database.
    pub async fn issue_access_token(
        &self,
        request: AccessTokenRequest<'_>,
    ) -> Result<IssuedAccessToken, IssueError> {
        let key = self.keys.current().active.clone();
        let iat = self.clock.now().timestamp();
        let claims = Claims {
            iss: &self.issuer,
            sub: request.subject,
            // Without a registered audience the token is for this issuer's
            // own resources (documented in README "Access tokens").
            aud: match request.client.audiences.as_slice() {
                [] => Audience::One(&self.issuer),
                [one] => Audience::One(one),
                many => Audience::Many(many),
            },
            exp: iat + ACCESS_TOKEN_TTL_SECONDS,
            iat,
            jti: uuid::Uuid::new_v4().to_string(),
            client_id: request.client.id.as_str(),
            scope: (!request.scope.is_empty()).then(|| request.scope.to_string()),
        };
        let payload = serde_json::to_vec(&claims).expect("claims serialise");
        let mut signing_input =
            String::with_capacity(key.access_token_header.len() + payload.len() * 4 / 3 + 350);
        signing_input.push_str(&key.access_token_header);
        signing_input.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut signing_input);
        let token = self.signer.sign(key, signing_input).await?;
        Ok(IssuedAccessToken {
            token,
            expires_in: ACCESS_TOKEN_TTL_SECONDS,
        })
    }
}
