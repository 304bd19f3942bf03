//! Signing keys and their rotation schedule: `SigningKeyRepository` and its records.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::Result;
use crate::domain::{KeyState, Kid};

/// A signing key as stored: the public half in the clear, the private half
/// sealed under the master key with the kid as associated data.
#[derive(Clone)]
pub struct SigningKeyRecord {
    pub kid: Kid,
    pub alg: String,
    pub state: KeyState,
    /// base64url big-endian modulus and exponent, as in the JWK (RFC 7518 §6.3.1).
    pub public_n: String,
    pub public_e: String,
    pub private_key_sealed: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub activated_at: Option<DateTime<Utc>>,
    pub retired_at: Option<DateTime<Utc>>,
    /// A next key's planned activation.
    pub activates_at: Option<DateTime<Utc>>,
    pub removed_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

#[async_trait]
pub trait SigningKeyRepository {
    /// Inserts `key` as the active key unless one exists already (one
    /// statement; a unique index makes concurrent starts safe). Returns
    /// whether it was inserted.
    async fn insert_first_active_key(&self, key: &SigningKeyRecord) -> Result<bool>;
    async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>>;
    /// The rotation check every replica runs, as one locked transaction
    /// (PostgreSQL: an advisory lock; SQLite: `BEGIN IMMEDIATE`), so each
    /// transition happens exactly once: a next key that is due becomes
    /// active (the active one retired); retired keys past
    /// `schedule.retention` are removed (private half deleted); when no
    /// next key exists, `candidate` is inserted as next.
    async fn apply_key_schedule(
        &self,
        now: DateTime<Utc>,
        schedule: &KeySchedule,
        candidate: Option<&SigningKeyRecord>,
    ) -> Result<ScheduleOutcome>;
    /// `authd keys rotate`: the next key becomes active now and `candidate`
    /// the new next; without a next key, only with `force`: `candidate`
    /// becomes active at once.
    async fn rotate_keys_now(
        &self,
        now: DateTime<Utc>,
        schedule: &KeySchedule,
        candidate: &SigningKeyRecord,
        force: bool,
    ) -> Result<RotateOutcome>;
    /// `authd keys revoke`: the key leaves the JWKS at once; a revoked
    /// active key is replaced by the next key (or `candidate`), and
    /// `candidate` becomes the new next.
    async fn revoke_key(
        &self,
        kid: &Kid,
        now: DateTime<Utc>,
        schedule: &KeySchedule,
        candidate: &SigningKeyRecord,
    ) -> Result<RevokeOutcome>;
}

/// The signing-key schedule (DESIGN: "Signing keys").
#[derive(Debug, Clone, Copy)]
pub struct KeySchedule {
    /// How long a key signs before the next one takes over (30 days).
    pub rotation_period: chrono::Duration,
    /// The least time a next key is published before it signs (24 h).
    pub prepublish: chrono::Duration,
    /// How long a retired key stays published: the longest token lifetime
    /// plus clock skew.
    pub retention: chrono::Duration,
}

/// What one pass of the schedule did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduleOutcome {
    pub activated: Option<Kid>,
    pub retired: Option<Kid>,
    pub removed: Vec<Kid>,
    pub inserted_next: Option<Kid>,
    /// No next key exists and no candidate was given.
    pub needs_next: bool,
}

impl ScheduleOutcome {
    pub fn changed(&self) -> bool {
        self.activated.is_some() || !self.removed.is_empty() || self.inserted_next.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The pre-published key is active; `next` is the new next key.
    Rotated { activated: Kid, next: Kid },
    /// No next key existed; `activated` (never published before) signs now.
    Forced { activated: Kid },
    /// No next key and no `force`: nothing changed.
    NoNextKey,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// Revoked; when it was the active key, `activated` signs instead.
    Revoked {
        activated: Option<Kid>,
        next: Option<Kid>,
    },
    NotFound,
    /// Already removed or revoked.
    AlreadyGone,
}

/// Signing keys; each backend brings its own `begin_key_lock`.
macro_rules! impl_signing_key_repository {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::SigningKeyRepository for $store {
            #[tracing::instrument(level = "debug", name = "store.signing_key.insert_first", skip_all, fields(kid = %key.kid))]
            async fn insert_first_active_key(
                &self,
                key: &$crate::store::SigningKeyRecord,
            ) -> $crate::store::Result<bool> {
                let mut tx = self.pool.begin().await?;
                let sql = "INSERT INTO signing_keys (kid, alg, state, public_n, public_e, private_key_sealed, created_at, activated_at, retired_at, activates_at, removed_at, revoked_at) VALUES ($1, $2, 'active', $3, $4, $5, $6, $7, NULL, NULL, NULL, NULL) \
                     ON CONFLICT DO NOTHING";
                let inserted = sqlx::query(sql)
                    .bind(&key.kid.0)
                    .bind(&key.alg)
                    .bind(&key.public_n)
                    .bind(&key.public_e)
                    .bind(&key.private_key_sealed)
                    .bind(key.created_at)
                    .bind(key.activated_at)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
                if inserted {
                    sqlx::query($crate::store::BUMP_EPOCH)
                        .bind("signing_keys")
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(inserted)
            }

            #[tracing::instrument(level = "debug", name = "store.signing_key.list", skip_all)]
            async fn list_signing_keys(
                &self,
            ) -> $crate::store::Result<Vec<$crate::store::SigningKeyRecord>> {
                let sql = "SELECT kid, alg, state, public_n, public_e, private_key_sealed, created_at, activated_at, retired_at, activates_at, removed_at, revoked_at FROM signing_keys ORDER BY created_at, kid";
                sqlx::query_as::<_, $crate::store::rows::SigningKeyRow>(sql)
                    .fetch_all(&self.pool)
                    .await?
                    .into_iter()
                    .map(TryInto::try_into)
                    .collect()
            }

            #[tracing::instrument(level = "debug", name = "store.signing_key.schedule", skip_all)]
            async fn apply_key_schedule(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                schedule: &$crate::store::KeySchedule,
                candidate: Option<&$crate::store::SigningKeyRecord>,
            ) -> $crate::store::Result<$crate::store::ScheduleOutcome> {
                let mut tx = self.begin_key_lock().await?;
                let keys = Self::keys_in(&mut tx).await?;
                let mut outcome = $crate::store::ScheduleOutcome::default();
                let active = keys.iter().find(|k| k.state == $crate::domain::KeyState::Active);
                let next = keys.iter().find(|k| k.state == $crate::domain::KeyState::Next);
                let mut next_exists = next.is_some();
                let mut active_since = active.and_then(|k| k.activated_at);
                if let Some(next) = next.filter(|n| n.activates_at.is_some_and(|at| at <= now)) {
                    if let Some(active) = active {
                        Self::set_state(&mut tx, &active.kid, "retired", now).await?;
                        outcome.retired = Some(active.kid.clone());
                    }
                    Self::set_state(&mut tx, &next.kid, "active", now).await?;
                    outcome.activated = Some(next.kid.clone());
                    next_exists = false;
                    active_since = Some(now);
                }
                for retired in keys.iter().filter(|k| {
                    k.state == $crate::domain::KeyState::Retired
                        && k.retired_at.is_some_and(|at| at + schedule.retention <= now)
                }) {
                    Self::set_state(&mut tx, &retired.kid, "removed", now).await?;
                    outcome.removed.push(retired.kid.clone());
                }
                if !next_exists {
                    match candidate {
                        Some(candidate) => {
                            // Published at least `prepublish` before it signs.
                            let due = active_since.map_or(now, |since| since + schedule.rotation_period);
                            let activates_at = due.max(now + schedule.prepublish);
                            Self::insert_key(&mut tx, candidate, "next", None, Some(activates_at)).await?;
                            outcome.inserted_next = Some(candidate.kid.clone());
                        }
                        None => outcome.needs_next = true,
                    }
                }
                if outcome.changed() {
                    Self::bump_keys_epoch(&mut tx).await?;
                }
                tx.commit().await?;
                Ok(outcome)
            }

            #[tracing::instrument(level = "debug", name = "store.signing_key.rotate_now", skip_all)]
            async fn rotate_keys_now(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                schedule: &$crate::store::KeySchedule,
                candidate: &$crate::store::SigningKeyRecord,
                force: bool,
            ) -> $crate::store::Result<$crate::store::RotateOutcome> {
                let mut tx = self.begin_key_lock().await?;
                let keys = Self::keys_in(&mut tx).await?;
                let active = keys.iter().find(|k| k.state == $crate::domain::KeyState::Active);
                let next = keys.iter().find(|k| k.state == $crate::domain::KeyState::Next);
                if next.is_none() && !force {
                    return Ok($crate::store::RotateOutcome::NoNextKey);
                }
                if let Some(active) = active {
                    Self::set_state(&mut tx, &active.kid, "retired", now).await?;
                }
                let outcome = match next {
                    Some(next) => {
                        Self::set_state(&mut tx, &next.kid, "active", now).await?;
                        let activates_at = (now + schedule.rotation_period).max(now + schedule.prepublish);
                        Self::insert_key(&mut tx, candidate, "next", None, Some(activates_at)).await?;
                        $crate::store::RotateOutcome::Rotated {
                            activated: next.kid.clone(),
                            next: candidate.kid.clone(),
                        }
                    }
                    None => {
                        Self::insert_key(&mut tx, candidate, "active", Some(now), None).await?;
                        $crate::store::RotateOutcome::Forced { activated: candidate.kid.clone() }
                    }
                };
                Self::bump_keys_epoch(&mut tx).await?;
                tx.commit().await?;
                Ok(outcome)
            }

            #[tracing::instrument(level = "debug", name = "store.signing_key.revoke", skip_all, fields(kid = %kid))]
            async fn revoke_key(
                &self,
                kid: &$crate::domain::Kid,
                now: chrono::DateTime<chrono::Utc>,
                schedule: &$crate::store::KeySchedule,
                candidate: &$crate::store::SigningKeyRecord,
            ) -> $crate::store::Result<$crate::store::RevokeOutcome> {
                use $crate::domain::KeyState;
                let mut tx = self.begin_key_lock().await?;
                let keys = Self::keys_in(&mut tx).await?;
                let Some(target) = keys.iter().find(|k| &k.kid == kid) else {
                    return Ok($crate::store::RevokeOutcome::NotFound);
                };
                if matches!(target.state, KeyState::Removed | KeyState::Revoked) {
                    return Ok($crate::store::RevokeOutcome::AlreadyGone);
                }
                Self::set_state(&mut tx, &target.kid, "revoked", now).await?;
                let next = keys.iter().find(|k| k.state == KeyState::Next && &k.kid != kid);
                let (activated, new_next) = match (target.state, next) {
                    // The active key goes: the pre-published key signs now.
                    (KeyState::Active, Some(next)) => {
                        Self::set_state(&mut tx, &next.kid, "active", now).await?;
                        let activates_at = now + schedule.rotation_period.max(schedule.prepublish);
                        Self::insert_key(&mut tx, candidate, "next", None, Some(activates_at)).await?;
                        (Some(next.kid.clone()), Some(candidate.kid.clone()))
                    }
                    // No next key to fall back on: the candidate signs at once.
                    (KeyState::Active, None) => {
                        Self::insert_key(&mut tx, candidate, "active", Some(now), None).await?;
                        (Some(candidate.kid.clone()), None)
                    }
                    // The next key goes: the candidate replaces it on the same date.
                    (KeyState::Next, _) => {
                        let activates_at = target.activates_at.unwrap_or(now).max(now + schedule.prepublish);
                        Self::insert_key(&mut tx, candidate, "next", None, Some(activates_at)).await?;
                        (None, Some(candidate.kid.clone()))
                    }
                    _ => (None, None),
                };
                Self::bump_keys_epoch(&mut tx).await?;
                tx.commit().await?;
                Ok($crate::store::RevokeOutcome::Revoked { activated, next: new_next })
            }
        }

        impl $store {
            async fn keys_in(
                tx: &mut sqlx::Transaction<'_, <Self as $crate::store::HasDb>::Db>,
            ) -> $crate::store::Result<Vec<$crate::store::SigningKeyRecord>> {
                let sql = "SELECT kid, alg, state, public_n, public_e, private_key_sealed, created_at, activated_at, retired_at, activates_at, removed_at, revoked_at FROM signing_keys ORDER BY created_at, kid";
                sqlx::query_as::<_, $crate::store::rows::SigningKeyRow>(sql)
                    .fetch_all(&mut **tx)
                    .await?
                    .into_iter()
                    .map(TryInto::try_into)
                    .collect()
            }

            /// Moves a key to `state`, stamping the matching time; removed and
            /// revoked keys lose their private half.
            async fn set_state(
                tx: &mut sqlx::Transaction<'_, <Self as $crate::store::HasDb>::Db>,
                kid: &$crate::domain::Kid,
                state: &'static str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<()> {
                let sql = match state {
                    "active" => "UPDATE signing_keys SET state = 'active', activated_at = $1 WHERE kid = $2",
                    "retired" => "UPDATE signing_keys SET state = 'retired', retired_at = $1 WHERE kid = $2",
                    "removed" => "UPDATE signing_keys SET state = 'removed', removed_at = $1, private_key_sealed = $3 WHERE kid = $2",
                    _ => "UPDATE signing_keys SET state = 'revoked', revoked_at = $1, private_key_sealed = $3 WHERE kid = $2",
                };
                let query = sqlx::query(sql).bind(now).bind(&kid.0);
                let query = if matches!(state, "removed" | "revoked") {
                    query.bind(Vec::<u8>::new())
                } else {
                    query
                };
                query.execute(&mut **tx).await?;
                Ok(())
            }

            async fn insert_key(
                tx: &mut sqlx::Transaction<'_, <Self as $crate::store::HasDb>::Db>,
                key: &$crate::store::SigningKeyRecord,
                state: &'static str,
                activated_at: Option<chrono::DateTime<chrono::Utc>>,
                activates_at: Option<chrono::DateTime<chrono::Utc>>,
            ) -> $crate::store::Result<()> {
                let sql = "INSERT INTO signing_keys (kid, alg, state, public_n, public_e, private_key_sealed, created_at, activated_at, retired_at, activates_at, removed_at, revoked_at) \
                           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9, NULL, NULL)";
                sqlx::query(sql)
                    .bind(&key.kid.0)
                    .bind(&key.alg)
                    .bind(state)
                    .bind(&key.public_n)
                    .bind(&key.public_e)
                    .bind(&key.private_key_sealed)
                    .bind(key.created_at)
                    .bind(activated_at)
                    .bind(activates_at)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            async fn bump_keys_epoch(
                tx: &mut sqlx::Transaction<'_, <Self as $crate::store::HasDb>::Db>,
            ) -> $crate::store::Result<()> {
                sqlx::query($crate::store::BUMP_EPOCH)
                    .bind("signing_keys")
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }
        }
    };
}
pub(super) use impl_signing_key_repository;
