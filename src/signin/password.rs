//! Checking a username and password, and throttling failures.
//!
//! argon2id runs on tokio's blocking pool, never on an HTTP worker, and at
//! most `AUTHD_PASSWORD_CHECKS` at a time: each check holds 19 MiB, so an
//! unbounded burst of failed logins would take the process's memory (and
//! every core) with it. An attempt waits at most `AUTHD_PASSWORD_CHECK_WAIT`
//! for its turn, then gets `503` + `Retry-After`. An unknown username is
//! checked against a decoy hash made at start, in the same queue, so it
//! costs the same time as a wrong password, and every failure gets the
//! same message: no way to learn which usernames exist.
use std::sync::Arc;
use std::time::Duration as StdDuration;

use secrecy::SecretString;
use tokio::sync::Semaphore;

use crate::clock::Clock;
use crate::crypto::password::{self, HashedPassword, Peppers};
use crate::domain::{User, Username};
use crate::limits::client_ip::ClientIp;
use crate::limits::limiter::Limits;
use crate::oauth::Error;
use crate::store::Store;

/// Why a login did not succeed.
#[derive(Debug)]
pub enum LoginFailure {
    /// Unknown user, wrong password or disabled user: one answer for all.
    InvalidCredentials,
    /// Not checked now: try again after this many seconds.
    TryLater {
        why: TryLater,
        retry_after: u64,
    },
    Internal(Error),
}

/// Why a login was not checked now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryLater {
    /// Too many failures for this username or address (429).
    Throttled,
    /// Every password check is taken (503).
    Busy,
}

/// The bound on concurrent password checks (`AUTHD_PASSWORD_CHECKS`,
/// `AUTHD_PASSWORD_CHECK_WAIT`).
#[derive(Debug, Clone, Copy)]
pub struct PasswordChecks {
    /// How many argon2id evaluations may run at once.
    pub concurrent: usize,
    /// How long an attempt may wait for one before it is refused.
    pub wait: StdDuration,
}

pub struct Authenticator {
    store: Arc<dyn Store>,
    peppers: Arc<Peppers>,
    decoy: Arc<HashedPassword>,
    checks: Arc<Semaphore>,
    wait: StdDuration,
    /// The login failure throttle lives with the other limits.
    limits: Arc<Limits>,
    clock: Arc<dyn Clock>,
    failures: std::sync::atomic::AtomicU64,
    busy: std::sync::atomic::AtomicU64,
}

/// What one password check found.
struct Checked {
    verified: bool,
    /// The same password keyed under the current pepper, when the stored
    /// hash was keyed under an earlier one (re-keying at sign-in).
    rekeyed: Option<HashedPassword>,
}

impl Authenticator {
    /// Hashes a random decoy password once (a few tens of milliseconds).
    pub async fn new(
        store: Arc<dyn Store>,
        peppers: Arc<Peppers>,
        checks: PasswordChecks,
        limits: Arc<Limits>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, Error> {
        let decoy = SecretString::from(crate::crypto::random::secret_token());
        let pepper = peppers.current().map_err(Error::internal)?;
        let decoy = tokio::task::spawn_blocking(move || password::hash(&decoy, &pepper))
            .await
            .map_err(Error::internal)?
            .map_err(Error::internal)?;
        Ok(Self {
            store,
            peppers,
            decoy: Arc::new(decoy),
            checks: Arc::new(Semaphore::new(checks.concurrent.max(1))),
            wait: checks.wait,
            limits,
            clock,
            failures: std::sync::atomic::AtomicU64::new(0),
            busy: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Checks the credentials of a login form post from `ip`.
    #[tracing::instrument(level = "debug", name = "oauth.login", skip_all)]
    pub async fn authenticate(
        &self,
        username: &str,
        password: SecretString,
        ip: Option<ClientIp>,
    ) -> Result<Arc<User>, LoginFailure> {
        // A throttled attempt is refused before it waits for a check.
        if let Some(retry_after) = self
            .limits
            .login_blocked(username, ip, self.clock.now())
            .await
        {
            return Err(LoginFailure::TryLater {
                why: TryLater::Throttled,
                retry_after,
            });
        }
        let user = match Username::parse(username) {
            Some(username) => self
                .store
                .find_user_by_username(&username)
                .await
                .map_err(|e| LoginFailure::Internal(Error::internal(e)))?,
            None => None,
        };
        let Ok(Ok(permit)) =
            tokio::time::timeout(self.wait, self.checks.clone().acquire_owned()).await
        else {
            // Counted (`login_busy_total`), not logged at warn: a storm
            // would write a line per refused attempt.
            self.busy.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::debug!("every password check is busy; login refused with 503");
            return Err(LoginFailure::TryLater {
                why: TryLater::Busy,
                retry_after: self.wait.as_secs().max(1),
            });
        };
        // Counted as a failure before the password is checked and taken
        // back on success: parallel guesses cannot all slip past the check.
        if let Err(retry_after) = self
            .limits
            .login_reserve(username, ip, self.clock.now())
            .await
        {
            return Err(LoginFailure::TryLater {
                why: TryLater::Throttled,
                retry_after,
            });
        }
        let checked = self.check(user.as_ref(), password, permit).await?;
        match user {
            Some(user) if checked.verified && !user.disabled => {
                self.limits.login_succeeded(username, ip).await;
                Ok(Arc::new(self.rekey(user, checked.rekeyed).await))
            }
            _ => {
                self.failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Err(LoginFailure::InvalidCredentials)
            }
        }
    }

    /// One argon2id check (plus, for a hash under an earlier pepper that
    /// matched, one hash under the current pepper) on the blocking pool,
    /// holding `permit` until it is done.
    async fn check(
        &self,
        user: Option<&User>,
        password: SecretString,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> Result<Checked, LoginFailure> {
        // A user without a password is checked against the decoy, as an
        // unknown username is (same time), and never matches.
        let has_password = user.is_some_and(crate::users::accounts::has_password);
        let (hash, version) = match user {
            Some(user) if has_password => (user.password_hash.clone(), user.password_key_version),
            _ => (self.decoy.phc.clone(), self.decoy.key_version),
        };
        let pepper = self.peppers.get(version);
        let current = self.peppers.current().ok();
        // Only a user who may sign in is re-keyed: the extra hash would
        // otherwise tell a right password of a disabled user by its time.
        let may_sign_in = user.is_some_and(|u| !u.disabled);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let Some(pepper) = pepper else {
                tracing::error!(
                    version,
                    "a password hash needs the pepper of a master key version this process \
                     cannot open; the user cannot sign in"
                );
                return Checked {
                    verified: false,
                    rekeyed: None,
                };
            };
            let verified = password::verify(&password, &hash, &pepper) && has_password;
            let rekeyed = match current {
                Some(current)
                    if verified
                        && may_sign_in
                        && (current.version != version || password::is_wrapped(&hash)) =>
                {
                    password::hash(&password, &current).ok()
                }
                _ => None,
            };
            Checked { verified, rekeyed }
        })
        .await
        .map_err(|e| LoginFailure::Internal(Error::internal(e)))
    }

    /// Stores the re-keyed hash, unless the password changed meanwhile. A
    /// failure only delays the re-keying to the next sign-in.
    async fn rekey(&self, mut user: User, rekeyed: Option<HashedPassword>) -> User {
        let Some(new) = rekeyed else {
            return user;
        };
        match self
            .store
            .rekey_password(user.id, &user.password_hash, &new.phc, new.key_version)
            .await
        {
            Ok(true) => {
                tracing::info!(
                    user_id = %user.id,
                    from = user.password_key_version,
                    to = new.key_version,
                    "password hash re-keyed under the current master key"
                );
                user.password_hash = new.phc;
                user.password_key_version = new.key_version;
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "could not re-key a password hash"),
        }
        user
    }

    /// Failed sign-ins since start (for `/metrics`).
    pub fn failures(&self) -> u64 {
        self.failures.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Logins refused with 503 since start, every check busy (`/metrics`).
    pub fn busy(&self) -> u64 {
        self.busy.load(std::sync::atomic::Ordering::Relaxed)
    }
}
