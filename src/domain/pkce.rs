//! PKCE (RFC 7636). authd accepts only `S256` (RFC 9700 §2.1.1) and requires
//! it from every client, public and confidential.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// RFC 7636 §4.1: `43*128unreserved`, unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~".
fn is_pkce_string(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The `code_challenge` of an authorization request (method `S256`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct CodeChallenge(String);

impl CodeChallenge {
    /// RFC 7636 §4.3 / §4.2: the challenge uses the same character set and
    /// length bounds as the verifier.
    pub fn parse(value: &str) -> Option<Self> {
        is_pkce_string(value).then(|| Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// RFC 7636 §4.6: `BASE64URL(SHA256(ASCII(code_verifier))) == code_challenge`,
    /// compared in constant time.
    pub fn is_satisfied_by(&self, verifier: &CodeVerifier) -> bool {
        let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.0.as_bytes()));
        computed.as_bytes().ct_eq(self.0.as_bytes()).into()
    }
}

/// The `code_verifier` of a token request.
pub struct CodeVerifier(String);

impl CodeVerifier {
    pub fn parse(value: &str) -> Option<Self> {
        is_pkce_string(value).then(|| Self(value.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_7636_appendix_b_example() {
        let verifier = CodeVerifier::parse("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").unwrap();
        let challenge =
            CodeChallenge::parse("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM").unwrap();
        assert!(challenge.is_satisfied_by(&verifier));
        let other = CodeVerifier::parse(&"a".repeat(43)).unwrap();
        assert!(!challenge.is_satisfied_by(&other));
    }

    #[test]
    fn length_and_characters_are_bounded() {
        assert!(CodeVerifier::parse(&"a".repeat(42)).is_none());
        assert!(CodeVerifier::parse(&"a".repeat(43)).is_some());
        assert!(CodeVerifier::parse(&"a".repeat(128)).is_some());
        assert!(CodeVerifier::parse(&"a".repeat(129)).is_none());
        assert!(CodeChallenge::parse(&format!("{}+", "a".repeat(43))).is_none());
        assert!(CodeChallenge::parse(&format!("{}=", "a".repeat(43))).is_none());
        assert!(CodeChallenge::parse(&format!("{}~._-", "a".repeat(43))).is_some());
    }
}
