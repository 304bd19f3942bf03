//! User passwords: argon2id with the OWASP parameters (m = 19456 KiB, t = 2,
//! p = 1), keyed with a pepper (argon2's secret input, RFC 9106 §3.1 `K`)
//! derived from the master key. A database copy alone then yields hashes
//! nobody can test guesses against offline. Hashing is slow on purpose, so
//! callers on the async executor run it on a blocking thread.
//!
//! Each master-key version has its own pepper, and a hash records the
//! version it was keyed with (`users.password_key_version`; 0 for hashes
//! made before peppers existed). A master-key rotation leaves old hashes
//! valid: the pepper of an earlier version stays available (derived from a
//! held key, or stored sealed in `digest_keys`, see `secrets.rs`), and a
//! hash is re-keyed under the current version at the user's next
//! successful sign-in.
use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretBox, SecretString};

use super::master_key::KEY_LEN;
use super::{MasterKeys, Purpose};

/// NIST SP 800-63B §5.1.1.2: at least 8 characters; at most 1024 so a huge
/// input cannot be used to burn CPU.
pub const MIN_LEN: usize = 8;
pub const MAX_LEN: usize = 1024;

/// The key version of a hash made without a pepper (before peppers).
pub const UNPEPPERED: u32 = 0;

/// Marks a hash made before peppers whose output was then keyed with a
/// pepper without knowing the password: `$authd-hmac` + the original PHC
/// string with its hash replaced by HMAC-SHA256(pepper, hash). A database
/// copy then holds nothing a guess can be checked against; the user's next
/// sign-in replaces it with an ordinary peppered hash.
const WRAPPED: &str = "$authd-hmac";

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be {MIN_LEN} to {MAX_LEN} characters long")]
    Length,
    #[error("password hashing failed")]
    Hashing,
    #[error("the password pepper of master key version {0} is not available")]
    NoPepper(u32),
}

type Key = Arc<SecretBox<[u8; KEY_LEN]>>;

/// The pepper of one master-key version. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct Pepper {
    pub version: u32,
    /// `None` only for [`UNPEPPERED`].
    key: Option<Key>,
}

impl std::fmt::Debug for Pepper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pepper")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Pepper {
    fn argon2(&self) -> Result<Argon2<'_>, PasswordError> {
        let params = Params::new(19_456, 2, 1, None).map_err(|_| PasswordError::Hashing)?;
        match &self.key {
            Some(key) => Argon2::new_with_secret(
                key.expose_secret(),
                Algorithm::Argon2id,
                Version::V0x13,
                params,
            )
            .map_err(|_| PasswordError::Hashing),
            None => Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params)),
        }
    }
}

/// The peppers a process can use: the current master-key version's for
/// new hashes, any version's for checking. Shared by the sign-in flow and
/// the CLI.
pub struct Peppers {
    master_keys: Arc<MasterKeys>,
    /// Peppers of versions whose master key this process may not hold,
    /// opened from `digest_keys` (see `secrets::load_peppers`).
    stored: ArcSwap<BTreeMap<u32, Key>>,
}

impl std::fmt::Debug for Peppers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peppers")
            .field(
                "stored_versions",
                &self.stored.load().keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Peppers {
    pub fn new(master_keys: Arc<MasterKeys>) -> Self {
        Self {
            master_keys,
            stored: ArcSwap::from_pointee(BTreeMap::new()),
        }
    }

    /// Peppers read from the database, by master-key version.
    pub fn set_stored(&self, stored: BTreeMap<u32, [u8; KEY_LEN]>) {
        self.stored.store(Arc::new(
            stored
                .into_iter()
                .map(|(version, key)| (version, Arc::new(SecretBox::new(Box::new(key)))))
                .collect(),
        ));
    }

    /// The pepper of `version`, derived from a held master key of that
    /// version; `None` when that key is not held.
    pub fn derive(&self, version: u32) -> Option<[u8; KEY_LEN]> {
        let key = self.master_keys.key(version)?;
        Some(*key.derive(Purpose::PasswordPepper).expose_secret())
    }

    /// The pepper new hashes are keyed with: the current master key's.
    pub fn current(&self) -> Result<Pepper, PasswordError> {
        let version = self.master_keys.current_version();
        self.get(version).ok_or(PasswordError::NoPepper(version))
    }

    /// The pepper a hash of `version` was keyed with.
    pub fn get(&self, version: u32) -> Option<Pepper> {
        if version == UNPEPPERED {
            return Some(Pepper { version, key: None });
        }
        let key = match self.stored.load().get(&version) {
            Some(key) => key.clone(),
            None => Arc::new(SecretBox::new(Box::new(self.derive(version)?))),
        };
        Some(Pepper {
            version,
            key: Some(key),
        })
    }
}

/// A new hash and the key version it records.
#[derive(Debug, Clone)]
pub struct HashedPassword {
    /// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
    pub phc: String,
    pub key_version: u32,
}

/// Hashes a password under `pepper`.
pub fn hash(password: &SecretString, pepper: &Pepper) -> Result<HashedPassword, PasswordError> {
    let length = password.expose_secret().chars().count();
    if !(MIN_LEN..=MAX_LEN).contains(&length) {
        return Err(PasswordError::Length);
    }
    let salt = SaltString::generate(&mut OsRng);
    let phc = pepper
        .argon2()?
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map_err(|_| PasswordError::Hashing)?
        .to_string();
    Ok(HashedPassword {
        phc,
        key_version: pepper.version,
    })
}

/// Whether `password` matches `phc`, a hash keyed with `pepper` (or a
/// wrapped one, see [`wrap_unpeppered`]). Runs in the time of one argon2id
/// evaluation with the hash's own parameters.
pub fn verify(password: &SecretString, phc: &str, pepper: &Pepper) -> bool {
    if password.expose_secret().len() > MAX_LEN * 4 {
        return false;
    }
    if let Some(inner) = phc.strip_prefix(WRAPPED) {
        return verify_wrapped(password, inner, pepper);
    }
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let Ok(argon2) = pepper.argon2() else {
        return false;
    };
    argon2
        .verify_password(password.expose_secret().as_bytes(), &hash)
        .is_ok()
}

/// Whether `phc` is a wrapped hash from before peppers (re-keyed at the
/// next sign-in).
pub fn is_wrapped(phc: &str) -> bool {
    phc.starts_with(WRAPPED)
}

/// Keys an unpeppered hash with `pepper` without the password: its output
/// becomes HMAC-SHA256(pepper, output). `None` for a hash that is not an
/// argon2 hash with a 32-byte output (authd never made another kind).
pub fn wrap_unpeppered(phc: &str, pepper: &Pepper) -> Option<String> {
    let hash = PasswordHash::new(phc).ok()?;
    let output = hash.hash?;
    if output.len() != 32 || is_wrapped(phc) {
        return None;
    }
    let mac = hmac_output(pepper, output.as_bytes())?;
    let mut wrapped = hash.clone();
    wrapped.hash = Some(argon2::password_hash::Output::new(&mac).ok()?);
    Some(format!("{WRAPPED}{wrapped}"))
}

fn hmac_output(pepper: &Pepper, output: &[u8]) -> Option<[u8; 32]> {
    use hmac::Mac;
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(pepper.key.as_ref()?.expose_secret()).ok()?;
    mac.update(output);
    Some(mac.finalize().into_bytes().into())
}

fn verify_wrapped(password: &SecretString, inner: &str, pepper: &Pepper) -> bool {
    use subtle::ConstantTimeEq;
    let Ok(hash) = PasswordHash::new(inner) else {
        return false;
    };
    let (Some(salt), Some(stored)) = (hash.salt, hash.hash) else {
        return false;
    };
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    // The original, unpeppered evaluation with the hash's own parameters.
    let unpeppered = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let Ok(recomputed) = unpeppered.hash_password_customized(
        password.expose_secret().as_bytes(),
        Some(hash.algorithm),
        hash.version,
        params,
        salt,
    ) else {
        return false;
    };
    let Some(output) = recomputed.hash else {
        return false;
    };
    match hmac_output(pepper, output.as_bytes()) {
        Some(expected) => expected.ct_eq(stored.as_bytes()).into(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{MasterKey, RegisteredVersion};

    fn peppers(keys: Vec<MasterKey>) -> Peppers {
        let registered: Vec<RegisteredVersion> = keys
            .iter()
            .enumerate()
            .map(|(i, key)| RegisteredVersion {
                version: i as u32 + 1,
                fingerprint: key.fingerprint(),
            })
            .collect();
        let master_keys = Arc::new(MasterKeys::new(keys));
        master_keys.assign(&registered).unwrap();
        Peppers::new(master_keys)
    }

    #[test]
    fn hash_is_argon2id_with_owasp_parameters_and_needs_the_pepper() {
        let peppers = peppers(vec![MasterKey::generate()]);
        let pepper = peppers.current().unwrap();
        assert_eq!(pepper.version, 1);
        let password = SecretString::from("correct horse battery");
        let hashed = hash(&password, &pepper).unwrap();
        assert!(
            hashed.phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{}",
            hashed.phc
        );
        assert_eq!(hashed.key_version, 1);
        assert!(verify(&password, &hashed.phc, &pepper));
        assert!(!verify(&"wrong".to_owned().into(), &hashed.phc, &pepper));
        // Without the pepper (a database copy alone) the right password
        // does not verify: guesses cannot be tested offline.
        let none = peppers.get(UNPEPPERED).unwrap();
        assert!(!verify(&password, &hashed.phc, &none));
        let other = self::peppers(vec![MasterKey::generate()])
            .current()
            .unwrap();
        assert!(!verify(&password, &hashed.phc, &other));
    }

    #[test]
    fn an_earlier_versions_pepper_comes_from_its_key_or_from_storage() {
        let (one, two) = (MasterKey::generate(), MasterKey::generate());
        let registered = [
            RegisteredVersion {
                version: 1,
                fingerprint: one.fingerprint(),
            },
            RegisteredVersion {
                version: 2,
                fingerprint: two.fingerprint(),
            },
        ];
        let two_bytes = two.to_bytes();
        let both = peppers(vec![one, two]);
        assert_eq!(both.current().unwrap().version, 2);
        let password = SecretString::from("correct horse battery");
        let hashed = hash(&password, &both.get(1).unwrap()).unwrap();
        assert_eq!(hashed.key_version, 1);
        // After the rotation a process holds only version 2: version 1's
        // pepper comes from storage.
        let master_keys = Arc::new(MasterKeys::new(vec![MasterKey::from_bytes(two_bytes)]));
        master_keys.assign(&registered).unwrap();
        let later = Peppers::new(master_keys);
        assert!(later.get(1).is_none(), "neither held nor stored");
        later.set_stored(BTreeMap::from([(1, both.derive(1).unwrap())]));
        assert!(verify(&password, &hashed.phc, &later.get(1).unwrap()));
        assert_eq!(later.current().unwrap().version, 2);
    }

    #[test]
    fn an_unpeppered_hash_is_wrapped_without_the_password() {
        let peppers = peppers(vec![MasterKey::generate()]);
        let password = SecretString::from("correct horse battery");
        let legacy = hash(&password, &peppers.get(UNPEPPERED).unwrap()).unwrap();
        let pepper = peppers.current().unwrap();
        let wrapped = wrap_unpeppered(&legacy.phc, &pepper).unwrap();
        assert!(is_wrapped(&wrapped));
        assert!(wrapped.starts_with("$authd-hmac$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify(&password, &wrapped, &pepper));
        assert!(!verify(
            &"wrong password".to_owned().into(),
            &wrapped,
            &pepper
        ));
        // Without the pepper nothing verifies: neither the wrapped string
        // nor its inner PHC string.
        let none = peppers.get(UNPEPPERED).unwrap();
        assert!(!verify(&password, &wrapped, &none));
        assert!(!verify(&password, &wrapped["$authd-hmac".len()..], &none));
        let other = self::peppers(vec![MasterKey::generate()])
            .current()
            .unwrap();
        assert!(!verify(&password, &wrapped, &other));
        // Wrapping is done once.
        assert!(wrap_unpeppered(&wrapped, &pepper).is_none());
    }

    #[test]
    fn too_short_password_is_refused() {
        let pepper = peppers(vec![MasterKey::generate()]).current().unwrap();
        assert!(matches!(
            hash(&SecretString::from("short"), &pepper),
            Err(PasswordError::Length)
        ));
    }
}
