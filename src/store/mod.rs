//! Storage: a repository trait per entity, implemented once for PostgreSQL
//! and once for SQLite, picked from `DATABASE_URL` by [`connect`]. Business
//! logic holds an `Arc<dyn Store>` and never knows which backend it talks to.
//! Only this module knows sqlx. Backends hold SQL and row mapping only;
//! digests, sealing and state rules live above the trait.
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::{Client, ClientId, KeyState, Kid, SecretDigest, User, UserId, Username};

mod postgres;
pub(crate) mod rows;
mod sql;
mod sqlite;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0} already exists")]
    Conflict(&'static str),
    #[error("stored {entity} {id} is unreadable: {problem}")]
    Corrupt {
        entity: &'static str,
        id: String,
        problem: String,
    },
    /// A check made inside a transaction refused the row; nothing changed.
    #[error("refused: {0}")]
    Refused(&'static str),
    #[error("must start with postgres://, postgresql:// or sqlite:")]
    UnsupportedUrl,
    #[error("cannot create the SQLite database or its directory {path}: {source}")]
    SqliteDirectory {
        path: String,
        source: std::io::Error,
    },
}

/// Which database a store talks to (for logs and `/readyz` only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

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

impl Error {
    /// The database cannot be reached right now (as opposed to a bug or a
    /// refused row): the connection failed or was cut, the pool timed out
    /// or was closed, or the server is shutting down (SQLSTATE class 08
    /// connection exception, 57P01–57P03 operator intervention).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Database(error) => match error {
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed => true,
                sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                    code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03")
                }),
                _ => false,
            },
            _ => false,
        }
    }

    /// The statement lost a lock race and can be retried as it is: SQLite
    /// `SQLITE_BUSY`/`SQLITE_LOCKED` (5/6, with their extended codes) once
    /// its busy timeout ran out; PostgreSQL serialization failure, deadlock
    /// or `lock_not_available` (40001, 40P01, 55P03).
    pub fn is_busy(&self) -> bool {
        let Error::Database(sqlx::Error::Database(db)) = self else {
            return false;
        };
        let Some(code) = db.code() else {
            return false;
        };
        if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
            // The extended result code; the primary code is its low byte.
            return code
                .parse::<u32>()
                .is_ok_and(|code| matches!(code & 0xff, 5 | 6));
        }
        // PostgreSQL SQLSTATEs (also all digits at times: 42501 is not
        // busy, hence the check of the driver above).
        db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
            .is_some()
            && matches!(code.as_ref(), "40001" | "40P01" | "55P03")
    }
}

/// The connection pool right now (for `/metrics`).
#[derive(Debug, Clone, Copy)]
pub struct PoolStats {
    pub connections: u32,
    pub idle: u32,
    pub max: u32,
}

/// Counters bumped with every change to a cached table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheEpochs {
    pub clients: i64,
    pub signing_keys: i64,
    pub master_keys: i64,
}

#[async_trait]
pub trait ClientRepository {
    async fn insert_client(&self, client: &Client) -> Result<()>;
    async fn find_client(&self, id: &ClientId) -> Result<Option<Client>>;
    async fn list_clients(&self) -> Result<Vec<Client>>;
    /// Deletes the client and, in the same transaction, everything it
    /// holds: codes, refresh-token families, consents, pending requests;
    /// its recorded access tokens are revoked. Returns whether a client
    /// was deleted.
    async fn delete_client(&self, id: &ClientId, now: DateTime<Utc>) -> Result<bool>;
    /// Returns whether the client exists and is confidential.
    async fn replace_client_secret(
        &self,
        id: &ClientId,
        secret: &SecretDigest,
        now: DateTime<Utc>,
    ) -> Result<bool>;
}

#[async_trait]
pub trait UserRepository {
    /// `Error::Conflict` when the username is taken.
    async fn insert_user(&self, user: &User) -> Result<()>;
    async fn list_users(&self) -> Result<Vec<User>>;
    async fn find_user(&self, id: UserId) -> Result<Option<User>>;
    async fn find_user_by_username(&self, username: &Username) -> Result<Option<User>>;
    /// Returns whether the user exists.
    /// Also ends the user's browser sessions and refresh-token families: a
    /// password reset after a compromise must lock the intruder out.
    async fn set_password(
        &self,
        id: UserId,
        password_hash: &str,
        key_version: u32,
        now: DateTime<Utc>,
    ) -> Result<bool>;
    /// Replaces a hash with the same password keyed under another pepper
    /// version, unless the hash changed meanwhile (a new password wins).
    /// Sessions are not touched: the password is the same. Returns whether
    /// it was replaced.
    async fn rekey_password(
        &self,
        id: UserId,
        old_hash: &str,
        new_hash: &str,
        key_version: u32,
    ) -> Result<bool>;
    /// How many users' hashes each pepper version keyed, by version.
    async fn password_key_versions(&self) -> Result<Vec<(u32, u64)>>;
    /// The users whose hash was made before peppers (key version 0).
    async fn unpeppered_password_hashes(&self) -> Result<Vec<(UserId, String)>>;
    /// Disables the user, ends their browser sessions and revokes their
    /// refresh-token families. Returns whether a user was found.
    async fn disable_user(&self, id: UserId, now: DateTime<Utc>) -> Result<bool>;
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

/// A browser session as stored (found by the keyed digest of its cookie).
/// Only a browser that signed in has one; before that a browser is known by
/// its cookie alone and stores nothing (`oauth::session`).
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub id: String,
    pub user_id: Option<UserId>,
    pub auth_time: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
    /// The anonymous id its browser had before this session's first login
    /// (its other tabs' sealed requests are bound to it).
    pub anonymous_id: Option<String>,
}

#[async_trait]
pub trait SessionRepository {
    /// The first login of a browser: its session, with a new cookie's
    /// digest, the user, the time of authentication and the anonymous id
    /// the browser had until now.
    async fn insert_session(
        &self,
        id: &str,
        cookie_digest: &[u8],
        user_id: UserId,
        auth_time: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        anonymous_id: Option<&str>,
    ) -> Result<()>;
    /// The unexpired session whose cookie has this digest.
    async fn find_session(
        &self,
        cookie_digest: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Option<SessionRecord>>;
    /// A login in a session that exists: it gets a new cookie (no
    /// fixation), the user and the time of authentication. Returns whether
    /// it still exists.
    async fn sign_in_session(
        &self,
        id: &str,
        new_cookie_digest: &[u8],
        user_id: UserId,
        auth_time: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<bool>;
    /// Ends the session (and its pending requests).
    async fn delete_session(&self, id: &str) -> Result<()>;
}

/// An `/authorize` request waiting for login or consent, in a session.
#[derive(Debug, Clone)]
pub struct PendingRequestRecord {
    pub id: String,
    pub session_id: String,
    pub client_id: ClientId,
    /// The validated request, serialised by the layer above.
    pub request: String,
    /// When the user signed in for this request (prompt=login, max_age).
    pub logged_in_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[async_trait]
pub trait PendingRequestRepository {
    /// Inserts `record` unless its id exists (then `false`: a request is
    /// stored once) and, in the same transaction, deletes the oldest
    /// pending requests of its session beyond the newest `keep`.
    async fn insert_pending_request(
        &self,
        record: &PendingRequestRecord,
        keep: u32,
    ) -> Result<bool>;
    /// The unexpired request `id` of session `session_id`'s browser: in
    /// that session, or a sealed request of the anonymous browser this
    /// session came from (a login form posted twice at once makes two
    /// sessions of one browser).
    async fn find_pending_request(
        &self,
        id: &str,
        session_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<PendingRequestRecord>>;
    async fn mark_pending_request_logged_in(&self, id: &str, at: DateTime<Utc>) -> Result<()>;
    /// Removes the request of session `session_id`'s browser (as in
    /// `find_pending_request`); only the caller that gets `true` may finish
    /// it (a form submitted twice yields one code).
    async fn take_pending_request(&self, id: &str, session_id: &str) -> Result<bool>;
    /// Stores an anonymous browser's sealed request at its login, in the
    /// new session `record.session_id`, and records its id
    /// (`sealed_requests`) until it expires. A sealed request stored before
    /// is only moved to the new session, while it is pending and if it was
    /// sealed to the same `anonymous_id` (a login form posted twice, another
    /// tab); once finished or otherwise gone, it is never stored again.
    /// Returns whether the request is now the session's; the cap applies as
    /// on insert, never evicting this request.
    async fn adopt_sealed_request(
        &self,
        record: &PendingRequestRecord,
        anonymous_id: &str,
        keep: u32,
    ) -> Result<bool>;
}

/// Scopes a user granted a client.
#[derive(Debug, Clone)]
pub struct ConsentRecord {
    pub client_id: ClientId,
    pub scope: String,
    pub granted_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[async_trait]
pub trait ConsentRepository {
    async fn find_consent(&self, user: UserId, client: &ClientId) -> Result<Option<String>>;
    /// Records `scope` (already merged with any earlier grant by the caller).
    async fn save_consent(
        &self,
        user: UserId,
        client: &ClientId,
        scope: &str,
        now: DateTime<Utc>,
    ) -> Result<()>;
    async fn list_consents(&self, user: UserId) -> Result<Vec<ConsentRecord>>;
    /// Returns whether a consent was removed.
    /// Removes the consent and, in the same transaction, ends what it
    /// granted: the user's refresh-token families at the client (families
    /// first, the lock order of every family change), their tokens, and the
    /// user's access tokens for the client. Returns whether a consent was
    /// removed.
    async fn revoke_consent(
        &self,
        user: UserId,
        client: &ClientId,
        now: DateTime<Utc>,
    ) -> Result<bool>;
}

/// A new authorization code: its digest and the sealed grant.
#[derive(Debug, Clone)]
pub struct CodeRecord {
    pub id: String,
    pub code_digest: Vec<u8>,
    pub key_version: u32,
    pub client_id: ClientId,
    /// The user it signs in (also inside the sealed grant): the access
    /// token recorded at redemption names it, so a withdrawn consent or a
    /// password reset can revoke it.
    pub user_id: UserId,
    pub grant_sealed: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What winning a code redemption yields.
#[derive(Debug, Clone)]
pub struct RedeemedCode {
    pub id: String,
    pub grant_sealed: Vec<u8>,
}

/// An access token issued for a user, as recorded for revocation.
#[derive(Debug, Clone)]
pub struct AccessTokenRecord {
    pub jti: String,
    pub client_id: String,
    pub expires_at: DateTime<Utc>,
    pub revoked: bool,
}

#[async_trait]
pub trait CodeRepository {
    async fn insert_code(&self, record: &CodeRecord) -> Result<()>;
    /// One atomic statement marks the code redeemed if it is unredeemed,
    /// unexpired and belongs to `client`; in the same transaction the access
    /// token `jti` about to be issued from it is recorded. Of concurrent
    /// callers exactly one gets `Some`.
    async fn redeem_code(
        &self,
        code_digest: &[u8],
        client: &ClientId,
        now: DateTime<Utc>,
        jti: &str,
        token_expires_at: DateTime<Utc>,
    ) -> Result<Option<RedeemedCode>>;
    /// RFC 6749 §4.1.2: a code presented again. Revokes every access token
    /// issued from it and every refresh-token family started from it;
    /// returns whether the code had been redeemed.
    async fn revoke_replayed_code(
        &self,
        code_digest: &[u8],
        client: &ClientId,
        now: DateTime<Utc>,
    ) -> Result<bool>;
    async fn find_access_token(&self, jti: &str) -> Result<Option<AccessTokenRecord>>;
}

/// A refresh token family: everything issued from one authorization.
#[derive(Debug, Clone)]
pub struct FamilyRecord {
    pub id: String,
    pub client_id: ClientId,
    pub user_id: UserId,
    pub created_at: DateTime<Utc>,
    /// The family's absolute end.
    pub expires_at: DateTime<Utc>,
}

/// A new refresh token: its digest and sealed grant.
#[derive(Debug, Clone)]
pub struct RefreshTokenRecord {
    pub id: String,
    pub token_digest: Vec<u8>,
    pub key_version: u32,
    pub family_id: String,
    pub parent_id: Option<String>,
    pub client_id: ClientId,
    pub grant_sealed: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A successor token and the access token issued with it.
#[derive(Debug, Clone)]
pub struct Successor {
    pub token: RefreshTokenRecord,
    pub jti: String,
    pub access_expires_at: DateTime<Utc>,
}

/// The token a rotation consumed (or the parent a grace retry re-uses).
#[derive(Debug, Clone)]
pub struct ConsumedRefresh {
    pub id: String,
    pub family_id: String,
    pub grant_sealed: Vec<u8>,
}

/// Builds the successor of a consumed token inside the rotation's
/// transaction (opening and sealing grants is above the store).
pub type BuildSuccessor<'a> = &'a (dyn Fn(&ConsumedRefresh) -> Result<Successor> + Send + Sync);

/// A refresh token found by digest, whatever its state.
#[derive(Debug, Clone)]
pub struct StoredRefreshToken {
    pub id: String,
    pub family_id: String,
    pub client_id: String,
    pub user_id: String,
    pub grant_sealed: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub consumed_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub family_expires_at: DateTime<Utc>,
    pub family_revoked: bool,
}

#[async_trait]
pub trait RefreshTokenRepository {
    /// Creates a family with its first token, and tags the access token
    /// issued with it (`jti`, already recorded by the code redemption).
    /// `false` (nothing created) when that access token is already revoked:
    /// the code was replayed meanwhile.
    async fn create_family(
        &self,
        family: &FamilyRecord,
        token: &RefreshTokenRecord,
        jti: &str,
    ) -> Result<bool>;
    /// One locked transaction: consumes the token with this digest if it is
    /// `client`'s, unconsumed, unrevoked, unexpired and its family alive
    /// (one conditional `UPDATE … RETURNING`: of concurrent callers exactly
    /// one gets a row), then inserts the successor `build` makes and records
    /// its access token. `None` when nothing was consumed.
    async fn rotate_refresh_token(
        &self,
        token_digest: &[u8],
        client: &ClientId,
        now: DateTime<Utc>,
        build: BuildSuccessor<'_>,
    ) -> Result<Option<Successor>>;
    /// The grace path, once per parent: if `parent_id` was consumed after
    /// `consumed_since` and its only successor is still unused, revokes that
    /// successor (and its access token) and inserts a new one from `build`,
    /// in one transaction.
    async fn replace_unused_successor(
        &self,
        parent_id: &str,
        consumed_since: DateTime<Utc>,
        now: DateTime<Utc>,
        build: BuildSuccessor<'_>,
    ) -> Result<Option<Successor>>;
    async fn find_refresh_token(&self, token_digest: &[u8]) -> Result<Option<StoredRefreshToken>>;
    /// Revokes the family, every refresh token in it and every access token
    /// issued from it. Returns whether the family was alive.
    async fn revoke_family(&self, family_id: &str, now: DateTime<Utc>) -> Result<bool>;
    /// RFC 7009: denies an access token until it expires, recording its
    /// `jti` when it was not recorded.
    async fn revoke_access_token(
        &self,
        jti: &str,
        client: &ClientId,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()>;
}

/// One master key version as the database records it.
#[derive(Debug, Clone)]
pub struct MasterKeyVersion {
    pub version: u32,
    pub fingerprint: Vec<u8>,
    pub created_at: DateTime<Utc>,
    /// When every value sealed under an earlier version was re-sealed under
    /// this one; `None` while a rotation to it is under way.
    pub resealed_at: Option<DateTime<Utc>>,
}

/// A column of sealed values that a master-key rotation re-seals. Each row
/// is keyed by a text id, which is also the sealed value's associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedColumn {
    DigestKeys,
    SigningKeys,
    AuthorizationCodes,
    RefreshTokens,
}

pub const SEALED_COLUMNS: [SealedColumn; 4] = [
    SealedColumn::DigestKeys,
    SealedColumn::SigningKeys,
    SealedColumn::AuthorizationCodes,
    SealedColumn::RefreshTokens,
];

impl SealedColumn {
    pub fn as_str(self) -> &'static str {
        match self {
            SealedColumn::DigestKeys => "digest_keys",
            SealedColumn::SigningKeys => "signing_keys",
            SealedColumn::AuthorizationCodes => "authorization_codes",
            SealedColumn::RefreshTokens => "refresh_tokens",
        }
    }

    /// A page of rows after `$1` in id order, at most `$2`: fixed names only.
    pub(crate) fn select_statement(self) -> &'static str {
        match self {
            SealedColumn::DigestKeys => {
                "SELECT purpose, key_sealed FROM digest_keys WHERE purpose > $1 ORDER BY purpose LIMIT $2"
            }
            SealedColumn::SigningKeys => {
                "SELECT kid, private_key_sealed FROM signing_keys WHERE kid > $1 ORDER BY kid LIMIT $2"
            }
            SealedColumn::AuthorizationCodes => {
                "SELECT id, grant_sealed FROM authorization_codes WHERE id > $1 ORDER BY id LIMIT $2"
            }
            SealedColumn::RefreshTokens => {
                "SELECT id, grant_sealed FROM refresh_tokens WHERE id > $1 ORDER BY id LIMIT $2"
            }
        }
    }

    /// Replaces one value only if it is still the one that was read, so a
    /// row changed meanwhile (a key removed, say) is left to the next pass.
    pub(crate) fn update_statement(self) -> &'static str {
        match self {
            SealedColumn::DigestKeys => {
                "UPDATE digest_keys SET key_sealed = $1 WHERE purpose = $2 AND key_sealed = $3"
            }
            SealedColumn::SigningKeys => {
                "UPDATE signing_keys SET private_key_sealed = $1 WHERE kid = $2 AND private_key_sealed = $3"
            }
            SealedColumn::AuthorizationCodes => {
                "UPDATE authorization_codes SET grant_sealed = $1 WHERE id = $2 AND grant_sealed = $3"
            }
            SealedColumn::RefreshTokens => {
                "UPDATE refresh_tokens SET grant_sealed = $1 WHERE id = $2 AND grant_sealed = $3"
            }
        }
    }
}

/// A re-sealed value: row id, the value read, its replacement.
#[derive(Debug, Clone)]
pub struct Resealed {
    pub id: String,
    pub old: Vec<u8>,
    pub new: Vec<u8>,
}

#[async_trait]
pub trait MasterKeyRepository {
    /// Every registered version, oldest first.
    async fn master_key_versions(&self) -> Result<Vec<MasterKeyVersion>>;
    /// Registers `version` (not yet re-sealed) and bumps the `master_keys`
    /// epoch; `false` if that version exists (another rotation won).
    async fn register_master_key(
        &self,
        version: u32,
        fingerprint: &[u8],
        now: DateTime<Utc>,
    ) -> Result<bool>;
    /// Records that nothing sealed under an earlier version remains.
    async fn finish_master_key_rotation(&self, version: u32, now: DateTime<Utc>) -> Result<()>;
    /// `(purpose, sealed key)` of every stored digest key.
    async fn digest_keys(&self) -> Result<Vec<(String, Vec<u8>)>>;
    /// Stores a digest key unless one is stored for `purpose`.
    async fn insert_digest_key(
        &self,
        purpose: &str,
        sealed: &[u8],
        now: DateTime<Utc>,
    ) -> Result<()>;
    /// Up to `limit` `(id, sealed)` rows with ids after `after`, in id order.
    async fn sealed_values(
        &self,
        column: SealedColumn,
        after: &str,
        limit: u32,
    ) -> Result<Vec<(String, Vec<u8>)>>;
    /// Records (or refreshes) the key ids `replica` holds, and deletes the
    /// records of replicas not seen for a day.
    async fn record_master_key_holder(
        &self,
        replica: &str,
        key_ids: &str,
        now: DateTime<Utc>,
    ) -> Result<()>;
    /// Forgets `replica` (it is stopping).
    async fn forget_master_key_holder(&self, replica: &str) -> Result<()>;
    /// `(replica, key ids)` of every replica seen since `since` (reads
    /// only).
    async fn master_key_holders(&self, since: DateTime<Utc>) -> Result<Vec<(String, String)>>;
    /// Applies the replacements in one transaction; returns how many rows
    /// still held the value that was read.
    async fn replace_sealed_values(&self, column: SealedColumn, values: &[Resealed])
    -> Result<u64>;
}

#[async_trait]
pub trait Store:
    ClientRepository
    + UserRepository
    + SigningKeyRepository
    + SessionRepository
    + PendingRequestRepository
    + ConsentRepository
    + CodeRepository
    + RefreshTokenRepository
    + MasterKeyRepository
    + Send
    + Sync
{
    fn backend(&self) -> Backend;
    fn pool_stats(&self) -> PoolStats;
    /// Applies pending migrations (safe to run from several processes).
    async fn migrate(&self) -> Result<()>;
    async fn ping(&self) -> Result<()>;
    async fn cache_epochs(&self) -> Result<CacheEpochs>;
    /// Records `fingerprint` for `version` unless one is recorded; returns the
    /// fingerprint now on record.
    async fn claim_master_key_fingerprint(
        &self,
        version: u32,
        fingerprint: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Vec<u8>>;
    async fn close(&self);
    /// Deletes up to `batch` rows of one kind of expired state (see
    /// [`PRUNABLE`]); returns how many went. Safe to run from several
    /// replicas at once: each batch is one `DELETE`.
    async fn prune_expired(&self, what: Prunable, before: DateTime<Utc>, batch: u32)
    -> Result<u64>;
}

/// Expired state the housekeeping task removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prunable {
    BrowserSessions,
    AuthorizationRequests,
    SealedRequests,
    AuthorizationCodes,
    AccessTokens,
    RefreshTokens,
    RefreshTokenFamilies,
}

pub const PRUNABLE: [Prunable; 7] = [
    Prunable::AuthorizationRequests,
    Prunable::SealedRequests,
    Prunable::BrowserSessions,
    Prunable::AuthorizationCodes,
    Prunable::AccessTokens,
    Prunable::RefreshTokens,
    Prunable::RefreshTokenFamilies,
];

impl Prunable {
    pub fn as_str(self) -> &'static str {
        match self {
            Prunable::BrowserSessions => "browser_sessions",
            Prunable::AuthorizationRequests => "authorization_requests",
            Prunable::SealedRequests => "sealed_requests",
            Prunable::AuthorizationCodes => "authorization_codes",
            Prunable::AccessTokens => "access_tokens",
            Prunable::RefreshTokens => "refresh_tokens",
            Prunable::RefreshTokenFamilies => "refresh_token_families",
        }
    }

    /// One batch: the statement names only fixed tables and columns.
    pub(crate) fn delete_statement(self) -> &'static str {
        match self {
            Prunable::BrowserSessions => {
                "DELETE FROM browser_sessions WHERE id IN (SELECT id FROM browser_sessions WHERE expires_at < $1 LIMIT $2)"
            }
            Prunable::AuthorizationRequests => {
                "DELETE FROM authorization_requests WHERE id IN (SELECT id FROM authorization_requests WHERE expires_at < $1 LIMIT $2)"
            }
            Prunable::SealedRequests => {
                "DELETE FROM sealed_requests WHERE id IN (SELECT id FROM sealed_requests WHERE expires_at < $1 LIMIT $2)"
            }
            Prunable::AuthorizationCodes => {
                "DELETE FROM authorization_codes WHERE id IN (SELECT id FROM authorization_codes WHERE expires_at < $1 LIMIT $2)"
            }
            Prunable::AccessTokens => {
                "DELETE FROM access_tokens WHERE jti IN (SELECT jti FROM access_tokens WHERE expires_at < $1 LIMIT $2)"
            }
            Prunable::RefreshTokens => {
                "DELETE FROM refresh_tokens WHERE id IN (SELECT id FROM refresh_tokens WHERE expires_at < $1 LIMIT $2)"
            }
            Prunable::RefreshTokenFamilies => {
                "DELETE FROM refresh_token_families WHERE id IN (SELECT id FROM refresh_token_families WHERE expires_at < $1 LIMIT $2)"
            }
        }
    }
}

/// Connection settings that do not come from the URL.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: std::time::Duration,
}

/// Opens the database named by `url`: `postgres://…` / `postgresql://…` or
/// `sqlite:…` (the SQLite file and its directory are created if missing).
pub async fn connect(url: &str, settings: PoolSettings) -> Result<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgStore::connect(url, settings).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::connect(url, settings).await?))
    } else {
        Err(Error::UnsupportedUrl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

    /// A second writer on a locked SQLite file (busy timeout 0) gets
    /// SQLITE_BUSY: a lock race to retry, not an outage.
    #[tokio::test]
    async fn a_lost_sqlite_lock_race_is_busy_and_not_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("busy.db"))
            .create_if_missing(true)
            .busy_timeout(std::time::Duration::ZERO);
        let mut first = SqliteConnection::connect_with(&options).await.unwrap();
        let mut second = SqliteConnection::connect_with(&options).await.unwrap();
        sqlx::query("CREATE TABLE t (x INTEGER)")
            .execute(&mut first)
            .await
            .unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut first)
            .await
            .unwrap();
        let error: Error = sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut second)
            .await
            .expect_err("the write lock is held")
            .into();
        assert!(error.is_busy(), "{error}");
        assert!(!error.is_unavailable(), "{error}");
        assert!(!Error::Refused("x").is_busy());
        assert!(!Error::Database(sqlx::Error::PoolTimedOut).is_busy());
    }
}
