use std::fmt;
use std::str::FromStr;

use super::client::UnknownValue;

/// Lifecycle of a signing key (DESIGN: "Signing keys"): `Next` (published,
/// not signing) → `Active` (signing) → `Retired` (published until every
/// token it signed has expired) → `Removed` (gone from the JWKS, private
/// half deleted). `Revoked` is the emergency exit from any state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Next,
    Active,
    Retired,
    Removed,
    Revoked,
}

impl KeyState {
    pub const ALL: [KeyState; 5] = [
        KeyState::Next,
        KeyState::Active,
        KeyState::Retired,
        KeyState::Removed,
        KeyState::Revoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Active => "active",
            KeyState::Retired => "retired",
            KeyState::Removed => "removed",
            KeyState::Revoked => "revoked",
        }
    }

    /// Whether resource servers see it in the JWKS.
    pub fn is_published(self) -> bool {
        matches!(self, KeyState::Next | KeyState::Active | KeyState::Retired)
    }
}

impl FromStr for KeyState {
    type Err = UnknownValue;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        KeyState::ALL
            .into_iter()
            .find(|state| state.as_str() == value)
            .ok_or(UnknownValue)
    }
}

/// A key id: the RFC 7638 JWK thumbprint of the public key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Kid(pub String);

impl fmt::Display for Kid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
