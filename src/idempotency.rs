//! Idempotent creates (draft-ietf-httpapi-idempotency-key-header): the
//! first answer to a caller's request under an `Idempotency-Key` is kept
//! for a day, sealed (it may hold a client secret), so that a retry
//! answers the same and makes nothing twice. The admin API's creates use
//! it; the key is the caller's own (another caller's same key is another
//! record). Uses store, crypto, clock.
use std::sync::Arc;

use chrono::Duration;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::crypto::Sealer;
use crate::store::{self, IdempotencyClaim, Store};

/// How long an answer is kept for retries.
pub const KEEP_FOR: Duration = Duration::hours(24);
/// A first request that has not finished after this is taken to have
/// stopped (its process ended): a retry of the same request runs again,
/// with the resource id the first chose (so it cannot make a second).
pub const ABANDONED_AFTER: Duration = Duration::minutes(10);
/// Keys are 1 to 255 visible ASCII characters.
pub const MAX_KEY_LEN: usize = 255;

/// What a request under a key does.
#[derive(Debug)]
pub enum Begin {
    /// Run it, then [`Idempotency::finish`] (or [`Idempotency::release`]).
    Run(Claim),
    /// Answer what the first request answered.
    Replay { status: u16, body: Vec<u8> },
    /// The key was used for another request (another body or target): 422.
    Mismatch,
    /// The first request with this key is still running: 409.
    InProgress,
}

/// A key this request holds.
#[derive(Debug)]
pub struct Claim {
    id: String,
    token: String,
    /// The id the request's resource must get.
    pub resource_id: String,
    /// This runs again a first request that stopped without an answer: its
    /// resource may exist already.
    pub took_over: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    #[error("Idempotency-Key must be 1 to 255 visible ASCII characters")]
    InvalidKey,
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("a kept answer cannot be opened: {0}")]
    Unreadable(String),
}

pub struct Idempotency {
    store: Arc<dyn Store>,
    sealer: Sealer,
    clock: Arc<dyn Clock>,
}

impl Idempotency {
    pub fn new(store: Arc<dyn Store>, sealer: Sealer, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            sealer,
            clock,
        }
    }

    /// Claims `key` of `caller` for `request` (what identifies it: method,
    /// target and body), or says what the first request with it did.
    /// `resource_id`: the id a resource made by this request gets (unless
    /// a first run of it chose one already).
    pub async fn begin(
        &self,
        caller: &str,
        key: &str,
        request: &[&[u8]],
        resource_id: &str,
    ) -> Result<Begin, IdempotencyError> {
        if key.is_empty()
            || key.len() > MAX_KEY_LEN
            || !key.bytes().all(|b| (0x20..=0x7e).contains(&b))
        {
            return Err(IdempotencyError::InvalidKey);
        }
        // Record ids say nothing of the key in clear; a length prefix keeps
        // (caller, key) pairs apart.
        let id = hex(&Sha256::new()
            .chain_update((caller.len() as u64).to_be_bytes())
            .chain_update(caller)
            .chain_update(key)
            .finalize());
        let mut digest = Sha256::new();
        for part in request {
            digest.update((part.len() as u64).to_be_bytes());
            digest.update(part);
        }
        let request_digest = digest.finalize().to_vec();
        let now = self.clock.now();
        let token = crate::crypto::random::secret_token();
        let claim = self
            .store
            .claim_idempotency_key(
                &id,
                &request_digest,
                &token,
                resource_id,
                now,
                now + KEEP_FOR,
                now - ABANDONED_AFTER,
            )
            .await?;
        Ok(match claim {
            IdempotencyClaim::Claimed {
                resource_id,
                took_over,
            } => Begin::Run(Claim {
                id,
                token,
                resource_id,
                took_over,
            }),
            IdempotencyClaim::Retry => Begin::InProgress,
            IdempotencyClaim::Taken(record) if record.request_digest != request_digest => {
                Begin::Mismatch
            }
            IdempotencyClaim::Taken(record) => match (record.status, record.response_sealed) {
                (status, Some(sealed)) if status != 0 => {
                    let body = self
                        .sealer
                        .open(&id, &sealed)
                        .map_err(|e| IdempotencyError::Unreadable(e.to_string()))?;
                    Begin::Replay {
                        status,
                        body: body.expose_secret().to_vec(),
                    }
                }
                _ => Begin::InProgress,
            },
        })
    }

    /// Keeps the answer of the request that holds `claim`.
    pub async fn finish(
        &self,
        claim: Claim,
        status: u16,
        body: &[u8],
    ) -> Result<(), IdempotencyError> {
        let sealed = self.sealer.seal(&claim.id, body);
        self.store
            .finish_idempotency_key(&claim.id, &claim.token, status, &sealed)
            .await?;
        Ok(())
    }

    /// Gives the key up: the request failed, a retry runs again.
    pub async fn release(&self, claim: Claim) -> Result<(), IdempotencyError> {
        self.store
            .release_idempotency_key(&claim.id, &claim.token)
            .await?;
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
