use std::fmt;

use chrono::{DateTime, Utc};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(pub Uuid);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A login name: 1 to 64 characters, no whitespace or control characters.
/// Compared exactly (case-sensitive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(value: &str) -> Option<Self> {
        let length = value.chars().count();
        ((1..=64).contains(&length) && !value.chars().any(|c| c.is_whitespace() || c.is_control()))
            .then(|| Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub username: Username,
    /// argon2id PHC string keyed with a pepper; never shown.
    pub password_hash: String,
    /// The master-key version whose pepper keyed it (0: none, an old hash).
    pub password_key_version: u32,
    /// OIDC `name` (profile scope).
    pub name: Option<String>,
    /// OIDC `email` and `email_verified` (email scope).
    pub email: Option<String>,
    pub email_verified: bool,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

/// Whether `address` is plausibly an e-mail address: `local@domain`, the
/// domain dotted (not at either end), at most 254 characters, no
/// whitespace or control characters. (Only a message proves one; this
/// refuses what cannot be one.) Users' profiles and registered clients'
/// `contacts` are held to it.
pub fn plausible_email(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && address.len() <= 254
        && !address.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn username_rules() {
        assert!(Username::parse("alice").is_some());
        assert!(Username::parse("alice@example.com").is_some());
        assert!(Username::parse("").is_none());
        assert!(Username::parse("al ice").is_none());
        assert!(Username::parse(&"a".repeat(65)).is_none());
    }
}
