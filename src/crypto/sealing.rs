//! Sealing with XChaCha20-Poly1305 (DESIGN: "Secrets at rest").
//!
//! Layout of a sealed value: `[format: u8][master key version: u32 BE]
//! [nonce: 24][ciphertext + tag]`. The associated data is the format, the
//! version and the id of the row the value belongs to, so a sealed value
//! copied to another row, or relabelled with another version, does not open.
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretBox};

use super::{MasterKey, Purpose};

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

/// Seals and opens values for one purpose under one master key version.
pub struct Sealer {
    version: u32,
    cipher: XChaCha20Poly1305,
}

impl Sealer {
    pub fn new(master: &MasterKey, purpose: Purpose) -> Self {
        let key = master.derive(purpose);
        Self {
            version: master.version(),
            cipher: XChaCha20Poly1305::new(key.expose_secret().into()),
        }
    }

    fn associated_data(version: u32, row_id: &str) -> Vec<u8> {
        let mut aad = Vec::with_capacity(HEADER_LEN + row_id.len());
        aad.push(FORMAT);
        aad.extend_from_slice(&version.to_be_bytes());
        aad.extend_from_slice(row_id.as_bytes());
        aad
    }

    pub fn seal(&self, row_id: &str, plaintext: &[u8]) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let aad = Self::associated_data(self.version, row_id);
        let ciphertext = self
            .cipher
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
        if sealed.len() < HEADER_LEN + NONCE_LEN || sealed[0] != FORMAT {
            return Err(SealError::Malformed);
        }
        let version = u32::from_be_bytes(sealed[1..HEADER_LEN].try_into().expect("4 bytes"));
        if version != self.version {
            return Err(SealError::UnknownKeyVersion(version));
        }
        let nonce = XNonce::from_slice(&sealed[HEADER_LEN..HEADER_LEN + NONCE_LEN]);
        let aad = Self::associated_data(version, row_id);
        let plaintext = self
            .cipher
            .decrypt(
                nonce,
                Payload {
                    msg: &sealed[HEADER_LEN + NONCE_LEN..],
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Unauthentic)?;
        Ok(SecretBox::from(plaintext))
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
}
