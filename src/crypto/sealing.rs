//! Sealing with XChaCha20-Poly1305 (DESIGN: "Secrets at rest").
//!
//! Layout of a sealed value: `[format: u8][master key version: u32 BE]
//! [nonce: 24][ciphertext + tag]`. The associated data is the format, the
//! version and the id of the row the value belongs to, so a sealed value
//! copied to another row, or relabelled with another version, does not open.
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use std::sync::Arc;

use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretBox};

use super::{MasterKey, MasterKeys, Purpose};

const FORMAT: u8 = 1;
const HEADER_LEN: usize = 1 + 4;
const NONCE_LEN: usize = 24;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed value needs master key version {0}, which is not loaded")]
    UnknownKeyVersion(u32),
    #[error("sealed value does not open: wrong master key or moved to another row")]
    Unauthentic,
}

/// Seals and opens values for one purpose. Seals under the current master
/// key version; opens under any version the process holds.
#[derive(Clone)]
pub struct Sealer {
    keys: Arc<MasterKeys>,
    purpose: Purpose,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("purpose", &self.purpose)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// A sealer over a single key that is version 1 (tools and tests).
    pub fn new(master: &MasterKey, purpose: Purpose) -> Self {
        let copy = MasterKey::from_base64(&master.to_base64()).expect("a valid key");
        Self::with_keys(Arc::new(MasterKeys::single(copy)), purpose)
    }

    pub fn with_keys(keys: Arc<MasterKeys>, purpose: Purpose) -> Self {
        Self { keys, purpose }
    }

    /// The HKDF expansion costs about a microsecond; it is redone per call
    /// so a new master key version takes effect without rebuilding sealers.
    fn cipher(&self, master: &MasterKey) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(master.derive(self.purpose).expose_secret().into())
    }

    fn associated_data(version: u32, row_id: &str) -> Vec<u8> {
        let mut aad = Vec::with_capacity(HEADER_LEN + row_id.len());
        aad.push(FORMAT);
        aad.extend_from_slice(&version.to_be_bytes());
        aad.extend_from_slice(row_id.as_bytes());
        aad
    }

    /// The master key version a sealed value was made under.
    pub fn version_of(sealed: &[u8]) -> Option<u32> {
        if sealed.len() < HEADER_LEN + NONCE_LEN || sealed[0] != FORMAT {
            return None;
        }
        Some(u32::from_be_bytes(
            sealed[1..HEADER_LEN].try_into().expect("4 bytes"),
        ))
    }

    /// The master key version new values are sealed under.
    pub fn current_version(&self) -> u32 {
        self.keys.current_version()
    }

    pub fn seal(&self, row_id: &str, plaintext: &[u8]) -> Vec<u8> {
        let (version, master) = self.keys.current();
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let aad = Self::associated_data(version, row_id);
        let ciphertext = self
            .cipher(&master)
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
        let mut sealed = Vec::with_capacity(HEADER_LEN + NONCE_LEN + ciphertext.len());
        sealed.extend_from_slice(&aad[..HEADER_LEN]);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    pub fn open(&self, row_id: &str, sealed: &[u8]) -> Result<SecretBox<[u8]>, SealError> {
        let version = Self::version_of(sealed).ok_or(SealError::Malformed)?;
        let candidates = self.keys.candidates(version);
        if candidates.is_empty() {
            return Err(SealError::UnknownKeyVersion(version));
        }
        let nonce = XNonce::from_slice(&sealed[HEADER_LEN..HEADER_LEN + NONCE_LEN]);
        let aad = Self::associated_data(version, row_id);
        for master in &candidates {
            let opened = self.cipher(master).decrypt(
                nonce,
                Payload {
                    msg: &sealed[HEADER_LEN + NONCE_LEN..],
                    aad: &aad,
                },
            );
            if let Ok(plaintext) = opened {
                return Ok(SecretBox::from(plaintext));
            }
        }
        if self.keys.key(version).is_none() {
            return Err(SealError::UnknownKeyVersion(version));
        }
        Err(SealError::Unauthentic)
    }

    /// Opens a value sealed under another version and seals it again under
    /// the current one; `None` when it already is under the current one.
    pub fn reseal(&self, row_id: &str, sealed: &[u8]) -> Result<Option<Vec<u8>>, SealError> {
        let version = Self::version_of(sealed).ok_or(SealError::Malformed)?;
        if version == self.current_version() {
            return Ok(None);
        }
        let plaintext = self.open(row_id, sealed)?;
        Ok(Some(self.seal(row_id, plaintext.expose_secret())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(master: &MasterKey) -> Sealer {
        Sealer::new(master, Purpose::SigningKeySealing)
    }

    #[test]
    fn sealed_value_opens_on_its_own_row() {
        let master = MasterKey::generate();
        let sealed = sealer(&master).seal("row-1", b"private");
        let opened = sealer(&master).open("row-1", &sealed).unwrap();
        assert_eq!(opened.expose_secret(), b"private");
        assert!(!sealed.windows(7).any(|w| w == b"private"));
    }

    #[test]
    fn sealed_value_moved_to_another_row_does_not_open() {
        let master = MasterKey::generate();
        let sealed = sealer(&master).seal("row-1", b"private");
        assert_eq!(
            sealer(&master).open("row-2", &sealed).err(),
            Some(SealError::Unauthentic)
        );
    }

    #[test]
    fn sealed_value_does_not_open_under_another_master_key() {
        let sealed = sealer(&MasterKey::generate()).seal("row-1", b"private");
        assert_eq!(
            sealer(&MasterKey::generate()).open("row-1", &sealed).err(),
            Some(SealError::Unauthentic)
        );
    }

    #[test]
    fn sealed_value_does_not_open_under_another_purpose() {
        let master = MasterKey::generate();
        let sealed = sealer(&master).seal("row-1", b"private");
        let other = Sealer::new(&master, Purpose::ClientSecretDigest);
        assert_eq!(
            other.open("row-1", &sealed).err(),
            Some(SealError::Unauthentic)
        );
    }

    #[test]
    fn tampering_and_truncation_are_detected() {
        let master = MasterKey::generate();
        let mut sealed = sealer(&master).seal("row-1", b"private");
        assert_eq!(
            sealer(&master).open("row-1", &sealed[..10]).err(),
            Some(SealError::Malformed)
        );
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(
            sealer(&master).open("row-1", &sealed).err(),
            Some(SealError::Unauthentic)
        );
        sealed[1..5].copy_from_slice(&7u32.to_be_bytes());
        assert_eq!(
            sealer(&master).open("row-1", &sealed).err(),
            Some(SealError::UnknownKeyVersion(7))
        );
    }

    fn copy(key: &MasterKey) -> MasterKey {
        MasterKey::from_base64(&key.to_base64()).unwrap()
    }

    fn registered(pairs: &[(u32, &MasterKey)]) -> Vec<super::super::RegisteredVersion> {
        pairs
            .iter()
            .map(|(version, key)| super::super::RegisteredVersion {
                version: *version,
                fingerprint: key.fingerprint(),
            })
            .collect()
    }

    #[test]
    fn a_new_current_version_seals_and_old_values_still_open_and_reseal() {
        let (one, two) = (MasterKey::generate(), MasterKey::generate());
        let keys = Arc::new(MasterKeys::new(vec![copy(&one), copy(&two)]));
        keys.assign(&registered(&[(1, &one)])).unwrap();
        let sealer = Sealer::with_keys(keys.clone(), Purpose::GrantSealing);
        let old = sealer.seal("row", b"grant");
        assert_eq!(Sealer::version_of(&old), Some(1));
        assert_eq!(sealer.reseal("row", &old).unwrap(), None, "already current");

        keys.assign(&registered(&[(1, &one), (2, &two)])).unwrap();
        let new = sealer.seal("row", b"grant");
        assert_eq!(Sealer::version_of(&new), Some(2));
        assert_eq!(sealer.open("row", &old).unwrap().expose_secret(), b"grant");
        let resealed = sealer.reseal("row", &old).unwrap().expect("re-sealed");
        assert_eq!(Sealer::version_of(&resealed), Some(2));
        assert_eq!(
            sealer.open("row", &resealed).unwrap().expose_secret(),
            b"grant"
        );
        // Only the new key held: the re-sealed value opens, the old does not.
        let only_new = Arc::new(MasterKeys::new(vec![copy(&two)]));
        only_new
            .assign(&registered(&[(1, &one), (2, &two)]))
            .unwrap();
        let later = Sealer::with_keys(only_new, Purpose::GrantSealing);
        assert_eq!(
            later.open("row", &resealed).unwrap().expose_secret(),
            b"grant"
        );
        assert_eq!(
            later.open("row", &old).err(),
            Some(SealError::UnknownKeyVersion(1))
        );
    }

    #[test]
    fn a_version_registered_elsewhere_opens_with_a_held_unassigned_key() {
        let (one, two) = (MasterKey::generate(), MasterKey::generate());
        // Another process already seals under version 2 ...
        let ahead = Arc::new(MasterKeys::new(vec![copy(&one), copy(&two)]));
        ahead.assign(&registered(&[(1, &one), (2, &two)])).unwrap();
        let sealed = Sealer::with_keys(ahead, Purpose::GrantSealing).seal("row", b"grant");
        // ... this one holds the key but has not seen the registration yet.
        let behind = Arc::new(MasterKeys::new(vec![copy(&one), copy(&two)]));
        behind.assign(&registered(&[(1, &one)])).unwrap();
        let sealer = Sealer::with_keys(behind, Purpose::GrantSealing);
        assert_eq!(
            sealer.open("row", &sealed).unwrap().expose_secret(),
            b"grant"
        );
        assert_eq!(
            sealer.open("other-row", &sealed).err(),
            Some(SealError::UnknownKeyVersion(2)),
            "no held key authenticates it"
        );
    }
}
