//! The master keys one process holds, and which version each one is.
//!
//! A process may hold several keys: its configured key, plus the next key
//! before a rotation or the previous one until a rotation has finished
//! (`AUTHD_MASTER_KEY_EXTRA_FILES`). The database records each version's
//! fingerprint and which version is current (the highest); a replica learns
//! a new version through the cache epochs and seals under it from then on.
//! Values sealed under any held version still open.
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::MasterKey;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MasterKeysError {
    #[error(
        "the database's current master key is version {0}, and none of the configured keys is it"
    )]
    CurrentNotHeld(u32),
}

/// One registered version: its number and fingerprint.
#[derive(Debug, Clone)]
pub struct RegisteredVersion {
    pub version: u32,
    pub fingerprint: Vec<u8>,
}

struct HeldKey {
    /// `None` until the database registers this key's fingerprint.
    version: Option<u32>,
    key: Arc<MasterKey>,
}

struct Held {
    /// The version new values are sealed under; 0 until assigned.
    current: u32,
    keys: Vec<HeldKey>,
}

/// Shared by every `Sealer` of a process, so a new current version reaches
/// them all at once. Reads are lock-free (`ArcSwap`).
pub struct MasterKeys {
    held: ArcSwap<Held>,
}

impl std::fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self.held.load();
        f.debug_struct("MasterKeys")
            .field("current", &held.current)
            .field(
                "versions",
                &held.keys.iter().map(|k| k.version).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl MasterKeys {
    /// Keys whose versions are not known yet: call [`MasterKeys::assign`].
    pub fn new(keys: Vec<MasterKey>) -> Self {
        let keys = keys
            .into_iter()
            .map(|key| HeldKey {
                version: None,
                key: Arc::new(key),
            })
            .collect();
        Self {
            held: ArcSwap::from_pointee(Held { current: 0, keys }),
        }
    }

    /// One key that is version 1 and current (tools, benchmarks, tests).
    pub fn single(key: MasterKey) -> Self {
        let keys = Self::new(vec![key]);
        let fingerprint = keys.held.load().keys[0].key.fingerprint();
        keys.assign(&[RegisteredVersion {
            version: MasterKey::FIRST_VERSION,
            fingerprint,
        }])
        .expect("the key is registered");
        keys
    }

    /// Holds one more key (the CLI's `--new-key-file`); unassigned until the
    /// next [`MasterKeys::assign`].
    pub fn add(&self, key: MasterKey) {
        let held = self.held.load();
        let fingerprint = key.fingerprint();
        if held.keys.iter().any(|k| k.key.fingerprint() == fingerprint) {
            return;
        }
        let mut keys: Vec<HeldKey> = held
            .keys
            .iter()
            .map(|k| HeldKey {
                version: k.version,
                key: k.key.clone(),
            })
            .collect();
        keys.push(HeldKey {
            version: None,
            key: Arc::new(key),
        });
        self.held.store(Arc::new(Held {
            current: held.current,
            keys,
        }));
    }

    /// Matches the held keys to the database's versions by fingerprint. The
    /// highest registered version becomes current; if no held key is it,
    /// nothing changes and the error says which version is missing.
    pub fn assign(&self, registered: &[RegisteredVersion]) -> Result<(), MasterKeysError> {
        let held = self.held.load();
        let keys: Vec<HeldKey> = held
            .keys
            .iter()
            .map(|k| {
                let fingerprint = k.key.fingerprint();
                HeldKey {
                    version: registered
                        .iter()
                        .find(|r| r.fingerprint == fingerprint)
                        .map(|r| r.version),
                    key: k.key.clone(),
                }
            })
            .collect();
        let current = registered.iter().map(|r| r.version).max().unwrap_or(0);
        if !keys.iter().any(|k| k.version == Some(current)) {
            return Err(MasterKeysError::CurrentNotHeld(current));
        }
        self.held.store(Arc::new(Held { current, keys }));
        Ok(())
    }

    /// The version new values are sealed under.
    pub fn current_version(&self) -> u32 {
        self.held.load().current
    }

    pub fn holds(&self, version: u32) -> bool {
        self.held
            .load()
            .keys
            .iter()
            .any(|k| k.version == Some(version))
    }

    /// The current version and its key.
    pub(super) fn current(&self) -> (u32, Arc<MasterKey>) {
        let held = self.held.load();
        let key = held
            .keys
            .iter()
            .find(|k| k.version == Some(held.current))
            .expect("a current key is held once assigned (MasterKeys::assign)");
        (held.current, key.key.clone())
    }

    /// The key registered as `version`, else the keys whose version is not
    /// known yet (one of them may be a version registered a moment ago by
    /// another process: the sealed value's authentication tag decides).
    pub(super) fn candidates(&self, version: u32) -> Vec<Arc<MasterKey>> {
        let held = self.held.load();
        match held.keys.iter().find(|k| k.version == Some(version)) {
            Some(k) => vec![k.key.clone()],
            None => held
                .keys
                .iter()
                .filter(|k| k.version.is_none())
                .map(|k| k.key.clone())
                .collect(),
        }
    }

    /// The short ids of every held key (see `MasterKey::short_id`).
    pub fn key_ids(&self) -> Vec<String> {
        self.held
            .load()
            .keys
            .iter()
            .map(|k| k.key.short_id())
            .collect()
    }

    /// The key registered as `version`, if held.
    pub fn key(&self, version: u32) -> Option<Arc<MasterKey>> {
        let held = self.held.load();
        held.keys
            .iter()
            .find(|k| k.version == Some(version))
            .map(|k| k.key.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registered(version: u32, key: &MasterKey) -> RegisteredVersion {
        RegisteredVersion {
            version,
            fingerprint: key.fingerprint(),
        }
    }

    #[test]
    fn the_highest_registered_version_is_current_when_held() {
        let (one, two) = (MasterKey::generate(), MasterKey::generate());
        let (r1, r2) = (registered(1, &one), registered(2, &two));
        let keys = MasterKeys::new(vec![one, two]);
        keys.assign(std::slice::from_ref(&r1)).unwrap();
        assert_eq!(keys.current_version(), 1);
        assert!(!keys.holds(2));
        keys.assign(&[r1, r2]).unwrap();
        assert_eq!(keys.current_version(), 2);
        assert!(keys.holds(1) && keys.holds(2));
    }

    #[test]
    fn a_current_version_not_held_is_refused_and_changes_nothing() {
        let one = MasterKey::generate();
        let r1 = registered(1, &one);
        let keys = MasterKeys::new(vec![one]);
        keys.assign(std::slice::from_ref(&r1)).unwrap();
        let r2 = registered(2, &MasterKey::generate());
        assert_eq!(
            keys.assign(&[r1, r2]),
            Err(MasterKeysError::CurrentNotHeld(2))
        );
        assert_eq!(keys.current_version(), 1);
    }
}
