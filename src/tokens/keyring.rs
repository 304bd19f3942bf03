//! Signing keys: generation (the `rsa` crate), sealing at rest, loading into
//! a pre-parsed aws-lc-rs key pair, and the published JWKS.
use std::sync::Arc;

use arc_swap::ArcSwap;
use aws_lc_rs::signature::RsaKeyPair;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::pkcs8::EncodePrivateKey;
use rsa::traits::PublicKeyParts;
use secrecy::ExposeSecret;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::crypto::{SealError, Sealer};
use crate::domain::{KeyState, Kid};
use crate::store::{self, KeySchedule, ScheduleOutcome, SigningKeyRecord, Store};
/// What `rotate_now` and `revoke` answer (decided in the store, under its lock).
pub use crate::store::{RevokeOutcome, RotateOutcome};
use crate::tokens::access_token::{ID_TOKEN_TTL_SECONDS, MAX_ACCESS_TOKEN_TTL_SECONDS};
use std::sync::atomic::{AtomicI64, Ordering};

/// The only JWS algorithm authd signs with (DESIGN: "Signing keys").
pub const ALG: &str = "RS256";
/// RSA modulus sizes an operator may choose.
pub const ALLOWED_BITS: [usize; 3] = [2048, 3072, 4096];

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(
        "the master key cannot open signing key {kid}: {source} \
         (AUTHD_MASTER_KEY / AUTHD_MASTER_KEY_FILE must be the key this database was created with)"
    )]
    Sealed { kid: Kid, source: SealError },
    #[error("signing key {kid} is not a valid RSA key")]
    Malformed { kid: Kid },
    #[error("no active signing key in the database")]
    NoActiveKey,
    #[error("RSA key generation failed: {0}")]
    Generation(String),
}

/// The key that signs, parsed once: re-parsing a key per signature costs
/// ~40% of token throughput (DESIGN).
pub struct ActiveKey {
    pub kid: Kid,
    pub pair: RsaKeyPair,
    /// base64url of the JOSE header `{"alg":"RS256","typ":"at+jwt","kid":…}`,
    /// which is the same for every access token this key signs.
    pub access_token_header: String,
    /// base64url of `{"alg":"RS256","typ":"JWT","kid":…}` for ID tokens.
    pub id_token_header: String,
}

/// A public key as published (RFC 7517 §4, RFC 7518 §6.3.1): no private
/// members can reach this type.
#[derive(Debug, Clone, Serialize)]
pub struct PublicJwk {
    pub kty: &'static str,
    #[serde(rename = "use")]
    pub use_: &'static str,
    pub alg: &'static str,
    pub kid: String,
    pub n: String,
    pub e: String,
}

/// A consistent snapshot of the keys: the signer and what the JWKS shows.
pub struct KeyRing {
    pub active: Arc<ActiveKey>,
    pub published: Vec<PublicJwk>,
    /// The JWKS document, serialised once per key-ring change.
    pub jwks: bytes::Bytes,
    /// Its `ETag`.
    pub etag: String,
    /// Verification keys by kid, for authd's own checks of its tokens.
    pub verifying: std::collections::HashMap<String, jsonwebtoken::DecodingKey>,
}

/// RFC 7638 thumbprint: SHA-256 over the required members in lexicographic
/// order, without whitespace.
fn thumbprint(n: &str, e: &str) -> Kid {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    Kid(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())))
}

/// Generates an RSA key of `bits` and seals its private half. CPU-heavy
/// (~250 ms for 2048 bits): runs on a blocking thread.
pub async fn generate(
    bits: usize,
    sealer: Arc<Sealer>,
    clock: &dyn Clock,
) -> Result<SigningKeyRecord, KeyError> {
    let now = clock.now();
    tokio::task::spawn_blocking(move || {
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits)
            .map_err(|e| KeyError::Generation(e.to_string()))?;
        let n = URL_SAFE_NO_PAD.encode(key.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(key.e().to_bytes_be());
        let kid = thumbprint(&n, &e);
        let der = key
            .to_pkcs8_der()
            .map_err(|e| KeyError::Generation(e.to_string()))?;
        let private_key_sealed = sealer.seal(&kid.0, der.as_bytes());
        Ok(SigningKeyRecord {
            kid,
            alg: ALG.to_owned(),
            state: KeyState::Active,
            public_n: n,
            public_e: e,
            private_key_sealed,
            created_at: now,
            activated_at: Some(now),
            retired_at: None,
            activates_at: None,
            removed_at: None,
            revoked_at: None,
        })
    })
    .await
    .map_err(|e| KeyError::Generation(e.to_string()))?
}

fn jwk(record: &SigningKeyRecord) -> PublicJwk {
    PublicJwk {
        kty: "RSA",
        use_: "sig",
        alg: ALG,
        kid: record.kid.0.clone(),
        n: record.public_n.clone(),
        e: record.public_e.clone(),
    }
}

fn open_active(record: &SigningKeyRecord, sealer: &Sealer) -> Result<ActiveKey, KeyError> {
    let der = sealer
        .open(&record.kid.0, &record.private_key_sealed)
        .map_err(|source| KeyError::Sealed {
            kid: record.kid.clone(),
            source,
        })?;
    let pair = RsaKeyPair::from_pkcs8(der.expose_secret()).map_err(|_| KeyError::Malformed {
        kid: record.kid.clone(),
    })?;
    let header = |typ: &str| {
        URL_SAFE_NO_PAD
            .encode(serde_json::json!({ "alg": ALG, "typ": typ, "kid": record.kid.0 }).to_string())
    };
    Ok(ActiveKey {
        kid: record.kid.clone(),
        pair,
        access_token_header: header("at+jwt"),
        id_token_header: header("JWT"),
    })
}

impl KeyRing {
    pub fn from_records(records: &[SigningKeyRecord], sealer: &Sealer) -> Result<Self, KeyError> {
        let active = records
            .iter()
            .find(|r| r.state == KeyState::Active)
            .ok_or(KeyError::NoActiveKey)?;
        let active = Arc::new(open_active(active, sealer)?);
        // The active key first (resource servers that try keys in order find
        // it at once), then the next key, then the retired ones still needed.
        let published: Vec<PublicJwk> = [KeyState::Active, KeyState::Next, KeyState::Retired]
            .into_iter()
            .flat_map(|state| records.iter().filter(move |r| r.state == state))
            .map(jwk)
            .collect();
        let jwks: bytes::Bytes = serde_json::to_vec(&serde_json::json!({ "keys": published }))
            .expect("JWKS serialises")
            .into();
        // A strong validator of the exact document (RFC 9110 §8.8.3).
        let etag = format!(
            "\"{}\"",
            URL_SAFE_NO_PAD.encode(&Sha256::digest(&jwks)[..16])
        );
        let verifying = published
            .iter()
            .filter_map(|jwk| {
                jsonwebtoken::DecodingKey::from_rsa_components(&jwk.n, &jwk.e)
                    .ok()
                    .map(|key| (jwk.kid.clone(), key))
            })
            .collect();
        Ok(Self {
            active,
            published,
            jwks,
            etag,
            verifying,
        })
    }
}

/// The live key ring plus what is needed to reload or extend it.
pub struct Keys {
    store: Arc<dyn Store>,
    sealer: Arc<Sealer>,
    ring: ArcSwap<KeyRing>,
    schedule: KeySchedule,
    bits: usize,
    /// Milliseconds since the epoch of the last reload caused by an unknown
    /// `kid` (at most one a second, so garbage kids cannot hammer the DB).
    last_kid_reload: AtomicI64,
}

/// A retired key stays published as long as a token it signed can live
/// (an API may give its access tokens up to an hour), plus the 60 s of
/// clock skew validators allow.
pub fn retention() -> chrono::Duration {
    chrono::Duration::seconds(
        MAX_ACCESS_TOKEN_TTL_SECONDS.max(ID_TOKEN_TTL_SECONDS)
            + crate::tokens::verify::LEEWAY_SECONDS as i64,
    )
}

impl Keys {
    /// Loads the ring, creating the first key when the database has none,
    /// and runs the schedule once (so a next key is published from the start).
    pub async fn load_or_create(
        store: Arc<dyn Store>,
        sealer: Arc<Sealer>,
        clock: &dyn Clock,
        bits: usize,
        schedule: KeySchedule,
    ) -> Result<Self, KeyError> {
        ensure_active_key(store.as_ref(), sealer.clone(), clock, bits).await?;
        let records = store.list_signing_keys().await?;
        let ring = KeyRing::from_records(&records, &sealer)?;
        let keys = Self {
            store,
            sealer,
            ring: ArcSwap::from_pointee(ring),
            schedule,
            bits,
            last_kid_reload: AtomicI64::new(0),
        };
        keys.run_schedule(clock).await?;
        Ok(keys)
    }

    /// Every key with its schedule (`list`, with this ring's schedule).
    pub async fn views(&self) -> Result<Vec<KeyView>, KeyError> {
        list(self.store.as_ref(), &self.schedule).await
    }

    /// [`rotate_now`] with this ring's settings; this replica's ring
    /// follows at once (others within their cache refresh interval).
    pub async fn rotate(&self, clock: &dyn Clock, force: bool) -> Result<RotateOutcome, KeyError> {
        let outcome = rotate_now(
            self.store.as_ref(),
            self.sealer.clone(),
            clock,
            self.bits,
            &self.schedule,
            force,
        )
        .await?;
        // Committed: a failed reload only delays this replica (the cache
        // refresher retries), and must not read as a failed rotation.
        if let Err(error) = self.reload().await {
            tracing::warn!(%error, "rotated, but this replica could not reload its keys yet");
        }
        Ok(outcome)
    }

    /// [`revoke`] with this ring's settings; this replica's ring follows
    /// at once.
    pub async fn revoke_key(
        &self,
        clock: &dyn Clock,
        kid: &Kid,
    ) -> Result<RevokeOutcome, KeyError> {
        let outcome = revoke(
            self.store.as_ref(),
            self.sealer.clone(),
            clock,
            self.bits,
            &self.schedule,
            kid,
        )
        .await?;
        if let Err(error) = self.reload().await {
            tracing::warn!(%error, "revoked, but this replica could not reload its keys yet");
        }
        Ok(outcome)
    }

    pub fn current(&self) -> arc_swap::Guard<Arc<KeyRing>> {
        self.ring.load()
    }

    /// `Cache-Control: max-age` of the JWKS: a quarter of the
    /// pre-publication time, at most an hour, so every cache has refetched
    /// several times before a published next key starts signing.
    pub fn jwks_max_age(&self) -> u64 {
        (self.schedule.prepublish.num_seconds() / 4).clamp(1, 3600) as u64
    }

    /// Re-reads the keys from the database (another replica or the CLI may
    /// have changed them).
    #[tracing::instrument(level = "debug", name = "keys.reload", skip_all)]
    pub async fn reload(&self) -> Result<(), KeyError> {
        let records = self.store.list_signing_keys().await?;
        let ring = KeyRing::from_records(&records, &self.sealer)?;
        tracing::info!(kid = %ring.active.kid, published = ring.published.len(), "key ring loaded");
        self.ring.store(Arc::new(ring));
        Ok(())
    }

    /// A token named a `kid` this replica does not know: another replica or
    /// the CLI may have changed the keys a moment ago. Reloads, at most once
    /// a second; returns whether it did.
    pub async fn reload_for_unknown_kid(&self, clock: &dyn Clock) -> bool {
        let now = clock.now().timestamp_millis();
        let last = self.last_kid_reload.load(Ordering::Relaxed);
        if now - last < 1000
            || self
                .last_kid_reload
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        match self.reload().await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%error, "cannot reload the key ring");
                false
            }
        }
    }

    /// One pass of the rotation schedule (every replica runs it on a timer;
    /// the database's lock makes each transition happen once). A new next
    /// key is generated only when the database says one is missing.
    pub async fn run_schedule(&self, clock: &dyn Clock) -> Result<ScheduleOutcome, KeyError> {
        let mut outcome = self
            .store
            .apply_key_schedule(clock.now(), &self.schedule, None)
            .await?;
        if outcome.needs_next {
            let candidate = generate(self.bits, self.sealer.clone(), clock).await?;
            let second = self
                .store
                .apply_key_schedule(clock.now(), &self.schedule, Some(&candidate))
                .await?;
            outcome.activated = outcome.activated.or(second.activated);
            outcome.retired = outcome.retired.or(second.retired);
            outcome.removed.extend(second.removed);
            outcome.inserted_next = second.inserted_next;
            outcome.needs_next = false;
        }
        if let Some(kid) = &outcome.activated {
            tracing::info!(%kid, retired = ?outcome.retired.as_ref().map(|k| &k.0), "signing key rotated: the pre-published key signs now");
            crate::audit::record(crate::audit::Event::KeyRotated { activated: &kid.0 });
        }
        for kid in &outcome.removed {
            tracing::info!(%kid, "retired signing key removed from the JWKS; its private half is deleted");
        }
        if let Some(kid) = &outcome.inserted_next {
            tracing::info!(%kid, "next signing key published");
        }
        if outcome.changed() {
            self.reload().await?;
        }
        Ok(outcome)
    }
}

/// Makes sure one key is active. Replicas starting together may each
/// generate one; the database keeps the first and the others are dropped.
pub async fn ensure_active_key(
    store: &dyn Store,
    sealer: Arc<Sealer>,
    clock: &dyn Clock,
    bits: usize,
) -> Result<(), KeyError> {
    let records = store.list_signing_keys().await?;
    if records.iter().any(|r| r.state == KeyState::Active) {
        return Ok(());
    }
    let record = generate(bits, sealer, clock).await?;
    if store.insert_first_active_key(&record).await? {
        tracing::info!(kid = %record.kid, bits, "created the first signing key");
    }
    Ok(())
}

/// `authd keys rotate`: the pre-published key signs now and a new next key
/// is published; without a next key only with `force`.
pub async fn rotate_now(
    store: &dyn Store,
    sealer: Arc<Sealer>,
    clock: &dyn Clock,
    bits: usize,
    schedule: &KeySchedule,
    force: bool,
) -> Result<RotateOutcome, KeyError> {
    ensure_active_key(store, sealer.clone(), clock, bits).await?;
    let candidate = generate(bits, sealer, clock).await?;
    let outcome = store
        .rotate_keys_now(clock.now(), schedule, &candidate, force)
        .await?;
    match &outcome {
        RotateOutcome::Rotated { activated, .. } | RotateOutcome::Forced { activated } => {
            crate::audit::record(crate::audit::Event::KeyRotated {
                activated: &activated.0,
            })
        }
        RotateOutcome::NoNextKey => {}
    }
    Ok(outcome)
}

/// `authd keys revoke KID`: the emergency path.
pub async fn revoke(
    store: &dyn Store,
    sealer: Arc<Sealer>,
    clock: &dyn Clock,
    bits: usize,
    schedule: &KeySchedule,
    kid: &Kid,
) -> Result<RevokeOutcome, KeyError> {
    let candidate = generate(bits, sealer, clock).await?;
    let outcome = store
        .revoke_key(kid, clock.now(), schedule, &candidate)
        .await?;
    if let RevokeOutcome::Revoked { .. } = &outcome {
        crate::audit::record(crate::audit::Event::KeyRevoked { kid: &kid.0 });
    }
    Ok(outcome)
}

/// A signing key as `keys list` shows it: its state and its schedule.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct KeyView {
    pub kid: String,
    pub state: &'static str,
    pub alg: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Next: when it will sign; active and retired: when it started.
    pub activates_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Active: when the next key takes over; retired: when it stopped.
    pub retires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Retired: when it leaves the JWKS; removed: when it left.
    pub removal_at: Option<chrono::DateTime<chrono::Utc>>,
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

fn key_views(records: Vec<SigningKeyRecord>, schedule: &KeySchedule) -> Vec<KeyView> {
    use crate::domain::KeyState;
    let next_at = records
        .iter()
        .find(|k| k.state == KeyState::Next)
        .and_then(|k| k.activates_at);
    records
        .into_iter()
        .map(|k| KeyView {
            state: k.state.as_str(),
            activates_at: match k.state {
                KeyState::Next => k.activates_at,
                _ => k.activated_at,
            },
            retires_at: match k.state {
                KeyState::Active => next_at,
                _ => k.retired_at,
            },
            removal_at: match k.state {
                KeyState::Retired => k.retired_at.map(|at| at + schedule.retention),
                KeyState::Removed => k.removed_at,
                _ => None,
            },
            revoked_at: k.revoked_at,
            kid: k.kid.0,
            alg: k.alg,
            created_at: k.created_at,
        })
        .collect()
}

/// Every signing key with its schedule, as `keys list` (and the admin API)
/// show them: public facts only.
pub async fn list(store: &dyn Store, schedule: &KeySchedule) -> Result<Vec<KeyView>, KeyError> {
    Ok(key_views(store.list_signing_keys().await?, schedule))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_matches_rfc_7638_example() {
        // RFC 7638 §3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            thumbprint(n, "AQAB").0,
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
