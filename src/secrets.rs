//! The master keys against the database: which version each configured key
//! is, the digest keys, and master-key rotation (docs/operations.md
//! "Rotating the master key"). authd's own procedure, so hand-written; the
//! cryptography is `crypto` (HKDF, XChaCha20-Poly1305, HMAC crates).
//!
//! Rotation to version N+1, run once by `authd master-key rotate`:
//! 1. register N+1's fingerprint (`resealed_at` NULL) and bump the
//!    `master_keys` epoch: every replica holding the new key seals under it
//!    within `AUTHD_CACHE_REFRESH_MS`;
//! 2. wait a propagation delay, so no replica still seals under N;
//! 3. re-seal every sealed column in id-ordered batches, each batch one
//!    transaction of conditional updates (a row changed meanwhile is simply
//!    read again by the next pass), until a pass finds nothing to re-seal;
//! 4. set `resealed_at`: from then on the old key may be dropped.
//!
//! Interrupted at any point, running it again with the same key resumes.
//! Keyed digests are not re-computed (they cannot be without their secret):
//! their keys live in `digest_keys`, sealed, and are re-sealed in step 3.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretBox};
use serde::Serialize;

use crate::clock::Clock;
use crate::crypto::master_key::{KEY_LEN, short_id};
use crate::crypto::password::Peppers;
use crate::crypto::{
    DIGEST_PURPOSES, Digester, MasterKey, MasterKeys, MasterKeysError, Purpose, RegisteredVersion,
    SealError, Sealer,
};
use crate::store::{self, MasterKeyVersion, Resealed, SEALED_COLUMNS, SealedColumn, Store};

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error(
        "AUTHD_MASTER_KEY / AUTHD_MASTER_KEY_FILE: not the master key of this database: its current \
         master key is version {current} (id {id}), and none of the configured keys is it; start with \
         that key (a different key cannot open the stored secrets)"
    )]
    WrongMasterKey { current: u32, id: String },
    #[error(
        "the master-key rotation to version {version} has not finished, and the version {previous} key \
         is not configured: add it to AUTHD_MASTER_KEY_EXTRA_FILES and run `authd master-key rotate` \
         again with the version {version} key"
    )]
    RotationUnfinished { version: u32, previous: u32 },
    #[error(
        "the stored digest keys are missing and the version 1 master key is not configured to \
         recreate them"
    )]
    DigestKeysMissing,
    #[error("stored {table} {id} does not open: {error}")]
    Unreadable {
        table: &'static str,
        id: String,
        error: SealError,
    },
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// The keys a process works with once the database has confirmed them.
pub struct Secrets {
    pub master_keys: Arc<MasterKeys>,
    /// The password peppers, one per master-key version.
    pub peppers: Arc<Peppers>,
    digest_keys: Vec<(Purpose, SecretBox<[u8; KEY_LEN]>)>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("master_keys", &self.master_keys)
            .finish_non_exhaustive()
    }
}

fn registered(versions: &[MasterKeyVersion]) -> Vec<RegisteredVersion> {
    versions
        .iter()
        .map(|v| RegisteredVersion {
            version: v.version,
            fingerprint: v.fingerprint.clone(),
        })
        .collect()
}

impl Secrets {
    /// Matches `keys` (the configured key first) to the database's versions,
    /// refuses to start without the current one (or, while a rotation is
    /// unfinished, without the previous one), and loads the digest keys,
    /// creating them on a new database.
    pub async fn open(
        store: &dyn Store,
        keys: Vec<MasterKey>,
        clock: &dyn Clock,
    ) -> Result<Self, SecretsError> {
        let primary = keys.first().map(MasterKey::fingerprint).unwrap_or_default();
        let master_keys = Arc::new(MasterKeys::new(keys));
        let mut versions = store.master_key_versions().await?;
        if versions.is_empty() {
            // A new database: the configured key becomes version 1 (insert
            // if absent, so of two replicas starting together one decides).
            store
                .claim_master_key_fingerprint(MasterKey::FIRST_VERSION, &primary, clock.now())
                .await?;
            versions = store.master_key_versions().await?;
        }
        master_keys.assign(&registered(&versions)).map_err(
            |MasterKeysError::CurrentNotHeld(current)| {
                let id = versions
                    .iter()
                    .find(|v| v.version == current)
                    .map(|v| short_id(&v.fingerprint))
                    .unwrap_or_default();
                SecretsError::WrongMasterKey { current, id }
            },
        )?;
        let current = versions.last().expect("at least version 1");
        if current.resealed_at.is_none() && !master_keys.holds(current.version - 1) {
            return Err(SecretsError::RotationUnfinished {
                version: current.version,
                previous: current.version - 1,
            });
        }
        let digest_keys = load_digest_keys(store, &master_keys, clock).await?;
        let peppers = Arc::new(Peppers::new(master_keys.clone()));
        sync_peppers(store, &master_keys, &peppers, clock).await?;
        wrap_unpeppered_hashes(store, &peppers).await?;
        let secrets = Self {
            master_keys,
            peppers,
            digest_keys,
        };
        crate::audit::set_username_key(secrets.digester(Purpose::AuditUsername));
        Ok(secrets)
    }

    pub fn sealer(&self, purpose: Purpose) -> Sealer {
        Sealer::with_keys(self.master_keys.clone(), purpose)
    }

    /// The digester for one of `DIGEST_PURPOSES`.
    pub fn digester(&self, purpose: Purpose) -> Digester {
        let (_, key) = self
            .digest_keys
            .iter()
            .find(|(p, _)| *p == purpose)
            .unwrap_or_else(|| panic!("{purpose:?} is not a digest purpose"));
        Digester::from_key(key.expose_secret())
    }
}

/// Re-reads the registered versions after a `master_keys` epoch bump, so
/// this replica seals (and peppers new password hashes) under a version
/// another process registered.
pub async fn follow_rotation(
    store: &dyn Store,
    master_keys: &Arc<MasterKeys>,
    peppers: &Peppers,
    clock: &dyn Clock,
) -> Result<u32, SecretsError> {
    let versions = store.master_key_versions().await?;
    master_keys
        .assign(&registered(&versions))
        .map_err(|e| SecretsError::Refused(e.to_string()))?;
    sync_peppers(store, master_keys, peppers, clock).await?;
    Ok(master_keys.current_version())
}

/// Keys every password hash made before peppers (key version 0) with the
/// current pepper, without the password (`password::wrap_unpeppered`), so
/// that from the first start of this version on a database copy holds no
/// hash a guess can be checked against. Each is replaced conditionally on
/// the hash read: replicas starting together, or a password set meanwhile,
/// are harmless. The user's next sign-in makes it an ordinary hash.
async fn wrap_unpeppered_hashes(store: &dyn Store, peppers: &Peppers) -> Result<(), SecretsError> {
    let unpeppered = store.unpeppered_password_hashes().await?;
    if unpeppered.is_empty() {
        return Ok(());
    }
    let pepper = peppers
        .current()
        .map_err(|e| SecretsError::Refused(e.to_string()))?;
    let mut wrapped = 0;
    for (user, hash) in unpeppered {
        let Some(keyed) = crate::crypto::password::wrap_unpeppered(&hash, &pepper) else {
            tracing::warn!(user_id = %user, "a password hash from before peppers is not an argon2 hash authd made; left as it is");
            continue;
        };
        if store
            .rekey_password(user, &hash, &keyed, pepper.version)
            .await?
        {
            wrapped += 1;
        }
    }
    tracing::info!(
        wrapped,
        "password hashes from before peppers are now keyed with the master key's pepper"
    );
    Ok(())
}

/// The `digest_keys` name of a master-key version's password pepper.
fn pepper_name(version: u32) -> String {
    format!("{}/v{version}", Purpose::PasswordPepper.name())
}

/// Stores the password pepper of every registered version whose key this
/// process holds (sealed, like the digest keys, so master-key rotations
/// re-seal it), then loads every stored pepper. So a hash keyed under an
/// earlier version still verifies after that version's key is dropped, and
/// is re-keyed at the user's next sign-in (docs/operations.md).
async fn sync_peppers(
    store: &dyn Store,
    master_keys: &Arc<MasterKeys>,
    peppers: &Peppers,
    clock: &dyn Clock,
) -> Result<(), SecretsError> {
    let sealer = Sealer::with_keys(master_keys.clone(), Purpose::DigestKeySealing);
    let mut stored = store.digest_keys().await?;
    let mut inserted = false;
    for version in store.master_key_versions().await?.iter().map(|v| v.version) {
        let name = pepper_name(version);
        if stored.iter().any(|(n, _)| *n == name) {
            continue;
        }
        if let Some(pepper) = peppers.derive(version) {
            // Insert if absent: every holder derives the same bytes.
            store
                .insert_digest_key(&name, &sealer.seal(&name, &pepper), clock.now())
                .await?;
            inserted = true;
        }
    }
    if inserted {
        stored = store.digest_keys().await?;
    }
    let mut opened = std::collections::BTreeMap::new();
    for (name, sealed) in &stored {
        let Some(version) = name
            .strip_prefix(Purpose::PasswordPepper.name())
            .and_then(|rest| rest.strip_prefix("/v"))
            .and_then(|v| v.parse::<u32>().ok())
        else {
            continue;
        };
        let unreadable = |error| SecretsError::Unreadable {
            table: "digest_keys",
            id: name.clone(),
            error,
        };
        let bytes: [u8; KEY_LEN] = sealer
            .open(name, sealed)
            .map_err(unreadable)?
            .expose_secret()
            .try_into()
            .map_err(|_| unreadable(SealError::Malformed))?;
        opened.insert(version, bytes);
    }
    peppers.set_stored(opened);
    Ok(())
}

/// Digest keys are derived once from master key version 1 (the same bytes
/// authd used before they were stored, so existing digests stay valid) and
/// kept sealed under the current master key.
async fn load_digest_keys(
    store: &dyn Store,
    master_keys: &Arc<MasterKeys>,
    clock: &dyn Clock,
) -> Result<Vec<(Purpose, SecretBox<[u8; KEY_LEN]>)>, SecretsError> {
    let sealer = Sealer::with_keys(master_keys.clone(), Purpose::DigestKeySealing);
    let mut stored = store.digest_keys().await?;
    let missing: Vec<Purpose> = DIGEST_PURPOSES
        .into_iter()
        .filter(|p| !stored.iter().any(|(name, _)| name == p.name()))
        .collect();
    if !missing.is_empty() {
        // Derived from version 1 when it is held: the keys authd used before
        // they were stored. A purpose added after a rotation has no digests
        // yet, so a random key serves.
        let first = master_keys.key(MasterKey::FIRST_VERSION);
        for purpose in missing {
            let key: [u8; KEY_LEN] = match &first {
                Some(first) => *first.derive(purpose).expose_secret(),
                None => crate::crypto::random::bytes(),
            };
            let sealed = sealer.seal(purpose.name(), &key);
            store
                .insert_digest_key(purpose.name(), &sealed, clock.now())
                .await?;
        }
        stored = store.digest_keys().await?;
    }
    let mut keys = Vec::with_capacity(DIGEST_PURPOSES.len());
    for purpose in DIGEST_PURPOSES {
        let (name, sealed) = stored
            .iter()
            .find(|(name, _)| name == purpose.name())
            .ok_or(SecretsError::DigestKeysMissing)?;
        let unreadable = |error| SecretsError::Unreadable {
            table: "digest_keys",
            id: name.clone(),
            error,
        };
        let opened = sealer.open(name, sealed).map_err(unreadable)?;
        let bytes: [u8; KEY_LEN] = opened
            .expose_secret()
            .try_into()
            .map_err(|_| unreadable(SealError::Malformed))?;
        keys.push((purpose, SecretBox::new(Box::new(bytes))));
    }
    Ok(keys)
}

/// What `authd master-key rotate` did.
#[derive(Debug, Serialize)]
pub struct RotationReport {
    pub version: u32,
    pub key_id: String,
    pub previous_version: u32,
    /// Re-sealed values per table.
    pub resealed: BTreeMap<&'static str, u64>,
    pub passes: u32,
    pub seconds: f64,
    pub next_step: String,
}

/// How often each replica records the keys it holds, and how long a
/// record counts as a running replica.
pub const HOLDER_INTERVAL: Duration = Duration::from_secs(30);
pub const HOLDER_LIVENESS: Duration = Duration::from_secs(90);

/// A running replica's name in `master_key_holders`: host, process, and a
/// random suffix (two containers may both be pid 1 on one host name).
pub fn replica_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into());
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    format!("{host}/pid-{}/{suffix}", std::process::id())
}

/// Records the keys this replica holds now and every `HOLDER_INTERVAL`
/// (runs until aborted).
pub async fn announce_keys(
    store: Arc<dyn Store>,
    master_keys: Arc<MasterKeys>,
    replica: String,
    clock: Arc<dyn Clock>,
) {
    let mut ticker = tokio::time::interval(HOLDER_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let ids = master_keys.key_ids().join(" ");
        if let Err(error) = store
            .record_master_key_holder(&replica, &ids, clock.now())
            .await
        {
            tracing::warn!(%error, "cannot record which master keys this replica holds");
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct RotationOptions {
    /// How long to wait after registering the new version before
    /// re-sealing: at least the replicas' cache refresh interval.
    pub propagation_delay: Duration,
    pub batch: u32,
    /// Rotate even though a replica seen lately lacks the new key.
    pub force: bool,
}

fn purpose_of(column: SealedColumn) -> Purpose {
    match column {
        SealedColumn::DigestKeys => Purpose::DigestKeySealing,
        SealedColumn::SigningKeys => Purpose::SigningKeySealing,
        SealedColumn::AuthorizationCodes => Purpose::GrantSealing,
        SealedColumn::RefreshTokens => Purpose::RefreshTokenSealing,
        SealedColumn::IdempotentResponses => Purpose::IdempotentResponseSealing,
    }
}

/// Rotates to `new_key` (or resumes a rotation to it). `master_keys` must
/// hold the current version (the CLI opened the database with it).
pub async fn rotate(
    store: &dyn Store,
    master_keys: &Arc<MasterKeys>,
    new_key: MasterKey,
    clock: &dyn Clock,
    options: RotationOptions,
) -> Result<RotationReport, SecretsError> {
    let started = Instant::now();
    let fingerprint = new_key.fingerprint();
    let key_id = new_key.short_id();
    let versions = store.master_key_versions().await?;
    let current = versions.last().expect("opened databases have version 1");
    let version = match versions.iter().find(|v| v.fingerprint == fingerprint) {
        Some(known) if known.version != current.version => {
            return Err(SecretsError::Refused(format!(
                "this key is master key version {}, which version {} replaced; generate a new key \
                 with `authd master-key generate`",
                known.version, current.version
            )));
        }
        // Resume (or re-check) the rotation to this key.
        Some(known) => {
            master_keys.add(new_key);
            known.version
        }
        None => {
            if current.resealed_at.is_none() {
                return Err(SecretsError::Refused(format!(
                    "the rotation to version {} has not finished: run `authd master-key rotate` \
                     with that key's file first",
                    current.version
                )));
            }
            refuse_if_a_replica_lacks(store, &key_id, clock, options.force).await?;
            master_keys.add(new_key);
            let version = current.version + 1;
            if !store
                .register_master_key(version, &fingerprint, clock.now())
                .await?
            {
                return Err(SecretsError::Refused(format!(
                    "another rotation registered master key version {version} just now"
                )));
            }
            tracing::info!(version, key_id, "master key version registered");
            version
        }
    };
    let versions = store.master_key_versions().await?;
    master_keys
        .assign(&registered(&versions))
        .map_err(|e| SecretsError::Refused(e.to_string()))?;
    // The new version's pepper (and the old one's, if a database from
    // before peppers never stored it) are stored before anything else:
    // once the old key is dropped, only storage holds the old pepper.
    sync_peppers(
        store,
        master_keys,
        &Peppers::new(master_keys.clone()),
        clock,
    )
    .await?;
    tokio::time::sleep(options.propagation_delay).await;

    let mut resealed: BTreeMap<&'static str, u64> =
        SEALED_COLUMNS.iter().map(|c| (c.as_str(), 0)).collect();
    let mut passes = 0;
    loop {
        passes += 1;
        let mut changed = 0;
        for column in SEALED_COLUMNS {
            let n = reseal_column(store, master_keys, column, options.batch).await?;
            *resealed.get_mut(column.as_str()).expect("every column") += n;
            changed += n;
        }
        tracing::info!(version, pass = passes, changed, "master key re-seal pass");
        // A pass that found nothing sealed under another version ends it;
        // values re-sealed in this pass were read before the last changes.
        if changed == 0 {
            break;
        }
        if passes >= 10 {
            return Err(SecretsError::Refused(format!(
                "values sealed under an earlier master key keep appearing after {passes} passes: \
                 is a replica running without the version {version} key? Run again once every \
                 replica holds it"
            )));
        }
    }
    store
        .finish_master_key_rotation(version, clock.now())
        .await?;
    Ok(RotationReport {
        version,
        key_id,
        previous_version: version - 1,
        resealed,
        passes,
        seconds: started.elapsed().as_secs_f64(),
        next_step: format!(
            "make the version {version} key every replica's AUTHD_MASTER_KEY(_FILE), drop the old key \
             from AUTHD_MASTER_KEY_EXTRA_FILES, and restart them one at a time; keep the old key \
             offline as long as backups taken before this rotation are kept"
        ),
    })
}

/// Step 2 of the procedure, checked: every replica seen in the last
/// `HOLDER_LIVENESS` must hold the new key.
async fn refuse_if_a_replica_lacks(
    store: &dyn Store,
    key_id: &str,
    clock: &dyn Clock,
    force: bool,
) -> Result<(), SecretsError> {
    let since = clock.now() - chrono::Duration::from_std(HOLDER_LIVENESS).expect("small");
    let lacking: Vec<String> = store
        .master_key_holders(since)
        .await?
        .into_iter()
        .filter(|(_, ids)| !ids.split(' ').any(|id| id == key_id))
        .map(|(replica, _)| replica)
        .collect();
    if lacking.is_empty() || force {
        return Ok(());
    }
    Err(SecretsError::Refused(format!(
        "{} running replica(s) do not hold the new key {key_id}: {}. Give every replica the key \
         (AUTHD_MASTER_KEY_EXTRA_FILES) and restart it first, or they could not open what is \
         re-sealed; if those replicas are gone, wait {} s or add --force",
        lacking.len(),
        lacking.join(", "),
        HOLDER_LIVENESS.as_secs()
    )))
}

/// One pass over a column; returns how many values it re-sealed.
async fn reseal_column(
    store: &dyn Store,
    master_keys: &Arc<MasterKeys>,
    column: SealedColumn,
    batch: u32,
) -> Result<u64, SecretsError> {
    let sealer = Sealer::with_keys(master_keys.clone(), purpose_of(column));
    let mut after = String::new();
    let mut total = 0;
    loop {
        let rows = store.sealed_values(column, &after, batch).await?;
        let Some((last, _)) = rows.last() else {
            return Ok(total);
        };
        after = last.clone();
        let mut changes = Vec::new();
        for (id, sealed) in rows {
            // Removed and revoked signing keys keep an empty value.
            if sealed.is_empty() {
                continue;
            }
            let resealed =
                sealer
                    .reseal(&id, &sealed)
                    .map_err(|error| SecretsError::Unreadable {
                        table: column.as_str(),
                        id: id.clone(),
                        error,
                    })?;
            if let Some(new) = resealed {
                changes.push(Resealed {
                    id,
                    old: sealed,
                    new,
                });
            }
        }
        if !changes.is_empty() {
            total += replace_with_retries(store, column, &changes).await?;
        }
    }
}

/// How often a batch that lost a lock race is tried again, and the first
/// pause (doubled each time: 50 ms … 6.4 s, 12.75 s in all).
const BUSY_RETRIES: u32 = 8;
const BUSY_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// One batch, tried again while the database is busy (on SQLite a write
/// lock held by serving replicas can outlast the busy timeout). Safe to
/// repeat: every replacement is conditional on the value that was read.
async fn replace_with_retries(
    store: &dyn Store,
    column: SealedColumn,
    changes: &[Resealed],
) -> Result<u64, SecretsError> {
    let mut pause = BUSY_PAUSE;
    let mut attempt = 0;
    loop {
        match store.replace_sealed_values(column, changes).await {
            Ok(replaced) => return Ok(replaced),
            Err(error) if error.is_busy() && attempt < BUSY_RETRIES => {
                attempt += 1;
                tracing::info!(
                    table = column.as_str(),
                    attempt,
                    "the database is busy; retrying this batch"
                );
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// One line of `authd master-key status` (and the admin API's): facts
/// about each version, never key material.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VersionStatus {
    pub version: u32,
    pub key_id: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub resealed_at: Option<chrono::DateTime<chrono::Utc>>,
    pub current: bool,
    /// Whether this process was given the key.
    pub configured: bool,
    /// Password hashes keyed with this version's pepper. Those under an
    /// earlier version are re-keyed at each user's next sign-in.
    pub password_hashes: u64,
}

pub async fn status(
    store: &dyn Store,
    master_keys: &MasterKeys,
) -> Result<Vec<VersionStatus>, SecretsError> {
    let versions = store.master_key_versions().await?;
    let current = versions.last().map(|v| v.version);
    let hashes = store.password_key_versions().await?;
    let hashes_of = |version: u32| {
        hashes
            .iter()
            .find(|(v, _)| *v == version)
            .map_or(0, |(_, count)| *count)
    };
    Ok(versions
        .iter()
        .map(|v| VersionStatus {
            version: v.version,
            key_id: short_id(&v.fingerprint),
            created_at: v.created_at,
            resealed_at: v.resealed_at,
            current: Some(v.version) == current,
            configured: master_keys.holds(v.version),
            password_hashes: hashes_of(v.version),
        })
        .collect())
}
