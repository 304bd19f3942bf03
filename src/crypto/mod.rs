//! Secrets at rest (DESIGN: "Secrets at rest"): one master key, a sub-key per
//! purpose derived with HKDF-SHA256, XChaCha20-Poly1305 sealing bound to the
//! row, HMAC-SHA256 keyed digests, argon2id passwords. Uses nothing of ours.
pub mod digest;
pub mod master_key;
pub mod master_keys;
pub mod password;
pub mod random;
pub mod sealing;

pub use digest::Digester;
pub use master_key::{DIGEST_PURPOSES, MasterKey, MasterKeyError, Purpose};
pub use master_keys::{MasterKeys, MasterKeysError, RegisteredVersion};
pub use sealing::{SealError, Sealer};
