//! User passwords: argon2id with the OWASP parameters (m = 19456 KiB, t = 2,
//! p = 1). Hashing is slow on purpose, so callers on the async executor run
//! it on a blocking thread.
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};

/// NIST SP 800-63B §5.1.1.2: at least 8 characters; at most 1024 so a huge
/// input cannot be used to burn CPU.
pub const MIN_LEN: usize = 8;
pub const MAX_LEN: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be {MIN_LEN} to {MAX_LEN} characters long")]
    Length,
    #[error("password hashing failed")]
    Hashing,
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(19_456, 2, 1, None).expect("OWASP argon2id parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
pub fn hash(password: &SecretString) -> Result<String, PasswordError> {
    let length = password.expose_secret().chars().count();
    if !(MIN_LEN..=MAX_LEN).contains(&length) {
        return Err(PasswordError::Length);
    }
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|_| PasswordError::Hashing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHash, PasswordVerifier};

    #[test]
    fn hash_is_argon2id_with_owasp_parameters_and_verifies() {
        let password = SecretString::from("correct horse battery");
        let phc = hash(&password).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(
            argon2()
                .verify_password(b"correct horse battery", &parsed)
                .is_ok()
        );
        assert!(argon2().verify_password(b"wrong", &parsed).is_err());
    }

    #[test]
    fn too_short_password_is_refused() {
        assert!(matches!(
            hash(&SecretString::from("short")),
            Err(PasswordError::Length)
        ));
    }
}
