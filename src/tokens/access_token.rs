//! JWT access tokens per RFC 9068.
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use super::Keys;
use super::signer::{SignError, SigningPool};
use crate::clock::Clock;
use crate::domain::{Client, Scope, User};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// DESIGN: access tokens live 15 minutes unless their API says otherwise
/// (`apis create --access-token-ttl`, at most an hour).
pub const ACCESS_TOKEN_TTL_SECONDS: i64 = crate::domain::api::DEFAULT_ACCESS_TOKEN_TTL as i64;
/// The longest an access token can live: what a recorded `jti` must outlast.
pub const MAX_ACCESS_TOKEN_TTL_SECONDS: i64 = crate::domain::api::MAX_ACCESS_TOKEN_TTL as i64;

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

/// RFC 9068 §2.2 claims. Minimal on purpose: no personal data; the
/// authorization claims only for APIs that opted in.
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
    #[serde(flatten)]
    authorization: &'a AuthorizationClaims,
}

/// RFC 9068 §2.2.3.1: `roles`, `groups` and `permissions`, each present only
/// when an API in the token's audience opted in to it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuthorizationClaims {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    /// The audience APIs' scopes the subject holds: possibly more than the
    /// token's `scope` (what this client asked for and was given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
}

/// What an access token is issued for.
pub struct AccessTokenRequest<'a> {
    /// The client id for client credentials; the user id for user grants.
    pub subject: &'a str,
    pub client: &'a Client,
    pub scope: &'a Scope,
    /// The `aud`: the APIs the token is for. Empty: this issuer (a token
    /// for `/userinfo` only).
    pub audience: &'a [String],
    /// Seconds.
    pub lifetime: u32,
    pub claims: &'a AuthorizationClaims,
    /// A `jti` chosen (and recorded) by the caller; `None` mints one.
    pub jti: Option<String>,
}

pub struct IssuedAccessToken {
    pub token: String,
    pub expires_in: i64,
    /// For the audit log (never the token itself).
    pub sub: String,
    pub jti: String,
}

/// What an ID token is issued for (OIDC Core §2, §3.1.3.6).
pub struct IdTokenRequest<'a> {
    pub user: &'a User,
    pub client: &'a Client,
    pub scope: &'a Scope,
    pub auth_time: DateTime<Utc>,
    pub nonce: Option<&'a str>,
    /// The access token issued alongside, for `at_hash`.
    pub access_token: &'a str,
    /// The user's groups, released with the `groups` scope.
    pub groups: Option<&'a [String]>,
}

/// OIDC Core §2 ID token claims, plus profile/email claims only when the
/// scope asks for them (§5.4).
#[derive(Serialize)]
struct IdTokenClaims<'a> {
    iss: &'a str,
    sub: String,
    aud: &'a str,
    exp: i64,
    iat: i64,
    auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    at_hash: String,
    azp: &'a str,
    #[serde(flatten)]
    profile: ProfileClaims<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    groups: Option<&'a [String]>,
}

/// Standard claims released by scope (OIDC Core §5.4): `profile` →
/// `name`, `preferred_username`; `email` → `email`, `email_verified`.
#[derive(Serialize, Default)]
pub struct ProfileClaims<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

impl<'a> ProfileClaims<'a> {
    pub fn for_scope(user: &'a User, scope: &Scope) -> Self {
        let profile = scope.contains("profile");
        let email = scope.contains("email") && user.email.is_some();
        Self {
            name: user.name.as_deref().filter(|_| profile),
            preferred_username: profile.then(|| user.username.as_str()),
            email: user.email.as_deref().filter(|_| email),
            email_verified: email.then_some(user.email_verified),
        }
    }
}

/// DESIGN: ID tokens are proof of a sign-in for the client, read once;
/// they live as long as the access token issued with them.
pub const ID_TOKEN_TTL_SECONDS: i64 = ACCESS_TOKEN_TTL_SECONDS;

/// OIDC Core §3.1.3.6: the base64url of the left half of SHA-256 of the
/// access token (RS256 uses SHA-256).
fn at_hash(access_token: &str) -> String {
    let digest = Sha256::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
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
            // A token for no API is for this issuer's own resources
            // (`/userinfo`; README "Access tokens").
            aud: match request.audience {
                [] => Audience::One(&self.issuer),
                [one] => Audience::One(one),
                many => Audience::Many(many),
            },
            exp: iat + i64::from(request.lifetime),
            iat,
            jti: request
                .jti
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            client_id: request.client.id.as_str(),
            scope: (!request.scope.is_empty()).then(|| request.scope.to_string()),
            authorization: request.claims,
        };
        let payload = serde_json::to_vec(&claims).expect("claims serialise");
        let (sub, jti) = (claims.sub.to_owned(), claims.jti.clone());
        let header = key.access_token_header.clone();
        let token = self.sign(key, &header, &payload).await?;
        Ok(IssuedAccessToken {
            token,
            expires_in: i64::from(request.lifetime),
            sub,
            jti,
        })
    }

    /// Builds and signs an ID token (OIDC Core §2, §3.1.3.6).
    pub async fn issue_id_token(&self, request: IdTokenRequest<'_>) -> Result<String, IssueError> {
        let key = self.keys.current().active.clone();
        let iat = self.clock.now().timestamp();
        let claims = IdTokenClaims {
            iss: &self.issuer,
            sub: request.user.id.to_string(),
            aud: request.client.id.as_str(),
            exp: iat + ID_TOKEN_TTL_SECONDS,
            iat,
            auth_time: request.auth_time.timestamp(),
            nonce: request.nonce,
            at_hash: at_hash(request.access_token),
            azp: request.client.id.as_str(),
            profile: ProfileClaims::for_scope(request.user, request.scope),
            groups: request.groups.filter(|_| request.scope.contains("groups")),
        };
        let payload = serde_json::to_vec(&claims).expect("claims serialise");
        let header = key.id_token_header.clone();
        self.sign(key, &header, &payload).await
    }

    /// `header.payload`, signed by the signing pool.
    async fn sign(
        &self,
        key: Arc<super::keyring::ActiveKey>,
        header: &str,
        payload: &[u8],
    ) -> Result<String, IssueError> {
        let mut signing_input = String::with_capacity(header.len() + payload.len() * 4 / 3 + 350);
        signing_input.push_str(header);
        signing_input.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut signing_input);
        Ok(self.signer.sign(key, signing_input).await?)
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_matches_oidc_core_example() {
        // OIDC Core Appendix A.3 (RS256).
        assert_eq!(
            at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
    }
}
