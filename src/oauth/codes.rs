//! Authorization codes (RFC 6749 §4.1.2, DESIGN "Secrets at rest"): 256
//! random bits, single use, short-lived. The database keeps the code's
//! keyed digest and the grant sealed with the row id as associated data.
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::Error;
use crate::clock::Clock;
use crate::crypto::{Digester, Sealer, random};
use crate::domain::{ClientId, CodeChallenge, UserId, VerifiedRedirect};
use crate::store::{CodeRecord, Store};

/// Default and upper bound of the code lifetime (RFC 6749 §4.1.2: "A
/// maximum authorization code lifetime of 10 minutes is RECOMMENDED").
pub const DEFAULT_CODE_TTL_SECONDS: u64 = 60;
pub const MAX_CODE_TTL_SECONDS: u64 = 600;

/// What a code carries, sealed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Grant {
    pub user_id: uuid::Uuid,
    pub client_id: String,
    pub redirect: VerifiedRedirect,
    pub scope: String,
    pub nonce: Option<String>,
    pub auth_time: DateTime<Utc>,
    pub code_challenge: CodeChallenge,
    /// RFC 8707 resources the authorization named (none: the APIs of
    /// `scope`).
    #[serde(default)]
    pub resources: Vec<String>,
}

impl Grant {
    pub fn user_id(&self) -> UserId {
        UserId(self.user_id)
    }
}

/// What a successful redemption yields.
pub struct Redeemed {
    pub grant: Grant,
}

/// The outcome of presenting a code.
pub enum Redemption {
    Won(Redeemed),
    /// Unknown, expired, another client's, or already used.
    Refused {
        replayed: bool,
    },
}

pub struct Codes {
    store: Arc<dyn Store>,
    digester: Digester,
    sealer: Sealer,
    ttl: Duration,
    clock: Arc<dyn Clock>,
}

impl Codes {
    pub fn new(
        store: Arc<dyn Store>,
        digester: Digester,
        sealer: Sealer,
        ttl_seconds: u64,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            digester,
            sealer,
            ttl: Duration::seconds(ttl_seconds as i64),
            clock,
        }
    }

    /// Mints a code for `grant` and stores its digest and sealed grant.
    #[tracing::instrument(level = "debug", name = "oauth.code.issue", skip_all, fields(client_id = %grant.client_id))]
    pub async fn issue(&self, grant: &Grant) -> Result<String, Error> {
        let code = random::secret_token();
        let id = uuid::Uuid::new_v4().to_string();
        let now = self.clock.now();
        let client_id = ClientId::parse(&grant.client_id)
            .ok_or_else(|| Error::internal("grant has a malformed client id"))?;
        let plaintext = serde_json::to_vec(grant).map_err(Error::internal)?;
        let record = CodeRecord {
            grant_sealed: self.sealer.seal(&id, &plaintext),
            id,
            code_digest: self.digester.digest(code.as_bytes()),
            key_version: self.digester.version(),
            client_id,
            user_id: crate::domain::UserId(grant.user_id),
            created_at: now,
            expires_at: now + self.ttl,
        };
        self.store
            .insert_code(&record)
            .await
            .map_err(Error::internal)?;
        Ok(code)
    }

    /// Redeems `code` for `client`, recording the `jti` of the access token
    /// about to be issued. On a second presentation the tokens issued from
    /// the code are revoked (RFC 6749 §4.1.2).
    #[tracing::instrument(level = "debug", name = "oauth.code.redeem", skip_all, fields(client_id = %client))]
    pub async fn redeem(
        &self,
        code: &str,
        client: &ClientId,
        jti: &str,
        token_expires_at: DateTime<Utc>,
    ) -> Result<Redemption, Error> {
        let digest = self.digester.digest(code.as_bytes());
        let now = self.clock.now();
        let won = self
            .store
            .redeem_code(&digest, client, now, jti, token_expires_at)
            .await
            .map_err(Error::internal)?;
        let Some(won) = won else {
            let replayed = self
                .store
                .revoke_replayed_code(&digest, client, now)
                .await
                .map_err(Error::internal)?;
            if replayed {
                tracing::warn!(
                    target: "security",
                    client_id = %client,
                    "authorization code presented again: tokens issued from it are revoked"
                );
            }
            return Ok(Redemption::Refused { replayed });
        };
        let plaintext = self
            .sealer
            .open(&won.id, &won.grant_sealed)
            .map_err(Error::internal)?;
        let grant: Grant =
            serde_json::from_slice(plaintext.expose_secret()).map_err(Error::internal)?;
        Ok(Redemption::Won(Redeemed { grant }))
    }
}
