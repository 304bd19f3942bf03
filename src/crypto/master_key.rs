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
}

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
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("is not valid base64")]
    NotBase64,
    #[error("must decode to exactly 32 bytes (got {0})")]
    WrongLength(usize),
}

/// The 32-byte root secret. Its `Debug` never shows the bytes.
pub struct MasterKey {
    version: u32,
    key: SecretBox<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl MasterKey {
    /// Version 1 is the first master key; rotation (a later issue) adds more.
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
            version: Self::FIRST_VERSION,
            key: SecretBox::new(Box::new(key)),
        }
    }

    /// A fresh key from the OS RNG.
    pub fn generate() -> Self {
        Self::from_bytes(super::random::bytes())
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.key.expose_secret())
    }

    pub fn version(&self) -> u32 {
        self.version
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
