use std::fmt;
use std::str::FromStr;

use super::client::UnknownValue;

/// Lifecycle of a signing key (DESIGN: "Signing keys"). Only `Active` signs;
/// `Active` and `Retired` are published. `Next` arrives with automatic
/// rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Active,
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Retired => "retired",
        }
    }
}

impl FromStr for KeyState {
    type Err = UnknownValue;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "active" => Ok(KeyState::Active),
            "retired" => Ok(KeyState::Retired),
            _ => Err(UnknownValue),
        }
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
