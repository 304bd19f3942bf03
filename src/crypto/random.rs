//! Secret values come from the OS RNG, never from a seeded or user-space one.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRngCore;
use rand::rngs::OsRng;

/// `N` bytes from the operating system's RNG.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    OsRng
        .try_fill_bytes(&mut out)
        .expect("the operating system RNG failed");
    out
}

/// A 256-bit random secret as unpadded base64url (43 characters).
pub fn secret_token() -> String {
    URL_SAFE_NO_PAD.encode(bytes::<32>())
}
