use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hkdf::Hkdf;
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;

/// Length of the master key and of every derived sub-key.
pub const KEY_LEN: usize = 32;

/// What a derived sub-key is for. Each purpose gets its own key, so a key
/// leaked or misused in one place says nothing about another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Sealing signing private keys in the database.
    SigningKeySealing,
    /// Keyed digests of client secrets.
    ClientSecretDigest,
    /// The fingerprint the database keeps to recognise its master key.
    Fingerprint,
    /// Keyed digests of browser session cookies.
    SessionCookieDigest,
    /// CSRF tokens, derived from the session cookie.
    CsrfToken,
    /// Keyed digests of authorization codes.
    AuthorizationCodeDigest,
    /// Sealing the grant an authorization code carries.
    GrantSealing,
    /// Keyed digests of refresh tokens.
    RefreshTokenDigest,
    /// Sealing the grant a refresh token carries.
    RefreshTokenSealing,
    /// Sealing the digest keys themselves (see `DIGEST_PURPOSES`).
    DigestKeySealing,
    /// Keyed hashes of usernames in audit events.
    AuditUsername,
    /// argon2id's secret input for user passwords, one per master-key
    /// version (see `crypto::password::Peppers`).
    PasswordPepper,
    /// Sealing the authorization request an anonymous browser carries to
    /// the login page instead of the database storing it.
    PendingRequestSealing,
    /// Sealing the admin API's answers kept for `Idempotency-Key` retries
    /// (they may hold a client secret).
    IdempotentResponseSealing,
    /// Digests of dynamic registration's tokens: initial access tokens
    /// (RFC 7591 §3) and registration access tokens (RFC 7592 §3).
    RegistrationTokenDigest,
}

/// The purposes whose keys make keyed digests or MACs. A digest cannot be
/// recomputed without the secret it hides, so these keys are derived once
/// (from master key version 1), stored sealed, and carried forward by every
/// master-key rotation instead of being re-derived (docs/operations.md).
pub const DIGEST_PURPOSES: [Purpose; 7] = [
    Purpose::ClientSecretDigest,
    Purpose::SessionCookieDigest,
    Purpose::CsrfToken,
    Purpose::AuthorizationCodeDigest,
    Purpose::RefreshTokenDigest,
    Purpose::AuditUsername,
    Purpose::RegistrationTokenDigest,
];

impl Purpose {
    /// HKDF `info`: never change one, or every value under it is lost.
    fn info(self) -> &'static [u8] {
        match self {
            Purpose::SigningKeySealing => b"authd/v1/seal/signing-key",
            Purpose::ClientSecretDigest => b"authd/v1/digest/client-secret",
            Purpose::Fingerprint => b"authd/v1/fingerprint",
            Purpose::SessionCookieDigest => b"authd/v1/digest/session-cookie",
            Purpose::CsrfToken => b"authd/v1/mac/csrf",
            Purpose::AuthorizationCodeDigest => b"authd/v1/digest/authorization-code",
            Purpose::GrantSealing => b"authd/v1/seal/grant",
            Purpose::RefreshTokenDigest => b"authd/v1/digest/refresh-token",
            Purpose::RefreshTokenSealing => b"authd/v1/seal/refresh-token",
            Purpose::DigestKeySealing => b"authd/v1/seal/digest-key",
            Purpose::AuditUsername => b"authd/v1/digest/audit-username",
            Purpose::PasswordPepper => b"authd/v1/pepper/password",
            Purpose::PendingRequestSealing => b"authd/v1/seal/pending-request",
            Purpose::IdempotentResponseSealing => b"authd/v1/seal/idempotent-response",
            Purpose::RegistrationTokenDigest => b"authd/v1/digest/registration-token",
        }
    }

    /// The stable name a stored digest key is filed under.
    pub fn name(self) -> &'static str {
        std::str::from_utf8(self.info()).expect("ASCII")
    }

    pub fn from_name(name: &str) -> Option<Self> {
        DIGEST_PURPOSES.into_iter().find(|p| p.name() == name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("is not valid base64")]
    NotBase64,
    #[error("must decode to exactly 32 bytes (got {0})")]
    WrongLength(usize),
}

/// The 32-byte root secret. Its `Debug` never shows the bytes. Which
/// version a key is, the database says (by fingerprint): see `MasterKeys`.
pub struct MasterKey {
    key: SecretBox<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.short_id())
            .finish_non_exhaustive()
    }
}

impl MasterKey {
    /// The first master key a database sees is version 1.
    pub const FIRST_VERSION: u32 = 1;

    /// Parses the base64 of 32 bytes (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, MasterKeyError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| MasterKeyError::NotBase64)?;
        let key: [u8; KEY_LEN] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| MasterKeyError::WrongLength(bytes.len()))?;
        Ok(Self::from_bytes(key))
    }

    pub fn from_bytes(key: [u8; KEY_LEN]) -> Self {
        Self {
            key: SecretBox::new(Box::new(key)),
        }
    }

    /// A fresh key from the OS RNG.
    pub fn generate() -> Self {
        Self::from_bytes(super::random::bytes())
    }

    /// A copy of the bytes (to hand the same key to a second holder).
    pub fn to_bytes(&self) -> [u8; KEY_LEN] {
        *self.key.expose_secret()
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.key.expose_secret())
    }

    /// HKDF-SHA256 (RFC 5869) expand of the master key for one purpose.
    pub fn derive(&self, purpose: Purpose) -> SecretBox<[u8; KEY_LEN]> {
        let hkdf = Hkdf::<Sha256>::new(Some(b"authd"), self.key.expose_secret());
        let mut out = Box::new([0u8; KEY_LEN]);
        hkdf.expand(purpose.info(), out.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        SecretBox::new(out)
    }

    /// A value that identifies this key without revealing it: the database
    /// stores it, so a wrong master key is refused at start instead of
    /// failing later on the first sealed value.
    pub fn fingerprint(&self) -> Vec<u8> {
        self.derive(Purpose::Fingerprint).expose_secret().to_vec()
    }

    /// The first 8 bytes of the fingerprint in hex: enough for an operator
    /// to tell key files apart in `authd master-key status`.
    pub fn short_id(&self) -> String {
        short_id(&self.fingerprint())
    }
}

/// See [`MasterKey::short_id`].
pub fn short_id(fingerprint: &[u8]) -> String {
    fingerprint
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_must_hold_exactly_32_bytes() {
        assert!(matches!(
            MasterKey::from_base64("AAAA"),
            Err(MasterKeyError::WrongLength(3))
        ));
        assert!(matches!(
            MasterKey::from_base64("not base64!"),
            Err(MasterKeyError::NotBase64)
        ));
        let key = MasterKey::generate();
        let again = MasterKey::from_base64(&format!("{}\n", key.to_base64())).unwrap();
        assert_eq!(key.fingerprint(), again.fingerprint());
    }

    #[test]
    fn purposes_get_distinct_keys() {
        let key = MasterKey::generate();
        let a = key.derive(Purpose::SigningKeySealing);
        let b = key.derive(Purpose::ClientSecretDigest);
        assert_ne!(a.expose_secret(), b.expose_secret());
    }

    #[test]
    fn debug_hides_the_key() {
        let key = MasterKey::generate();
        let shown = format!("{key:?}");
        assert!(!shown.contains(&key.to_base64()));
        assert!(shown.starts_with("MasterKey"));
    }
}
