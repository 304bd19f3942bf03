//! Secrets at rest (DESIGN: "Secrets at rest"): one master key, a sub-key per
//! purpose derived with HKDF-SHA256, XChaCha20-Poly1305 sealing bound to the
//! row, HMAC-SHA256 keyed digests, argon2id passwords. Uses nothing of ours.
pub mod digest;
pub mod master_key;
pub mod password;
pub mod random;
pub mod sealing;

pub use digest::Digester;
pub use master_key::{MasterKey, MasterKeyError, Purpose};
pub use sealing::{SealError, Sealer};
