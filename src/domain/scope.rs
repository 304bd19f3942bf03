//! RFC 6749 §3.3: `scope = scope-token *( SP scope-token )`,
//! `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`. Order does not matter and
//! duplicates mean nothing, so a scope is a set.
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// Scopes of OpenID Connect itself, which every client that signs users in
/// may request without registering them (OIDC Core §3.1.2.1, §5.4), and
/// `groups` (the names of the user's groups, in the ID token and at
/// `/userinfo`).
pub const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "email", "groups"];

/// Scopes no API may define: OpenID Connect's, and `offline_access`
/// (OIDC Core §11: a refresh token).
pub const IDENTITY_SCOPES: [&str; 5] = ["openid", "profile", "email", "groups", "offline_access"];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope(BTreeSet<String>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scope is not a space-separated list of scope tokens (RFC 6749 §3.3)")]
pub struct InvalidScope;

fn is_scope_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

impl FromStr for Scope {
    type Err = InvalidScope;

    /// Strict: exactly one space between tokens, none leading or trailing.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        value
            .split(' ')
            .map(|token| {
                is_scope_token(token)
                    .then(|| token.to_owned())
                    .ok_or(InvalidScope)
            })
            .collect::<Result<_, _>>()
            .map(Scope)
    }
}

impl Scope {
    pub fn from_tokens<I, S>(tokens: I) -> Result<Self, InvalidScope>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        tokens
            .into_iter()
            .map(|token| {
                let token = token.as_ref();
                is_scope_token(token)
                    .then(|| token.to_owned())
                    .ok_or(InvalidScope)
            })
            .collect::<Result<_, _>>()
            .map(Scope)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, token: &str) -> bool {
        self.0.contains(token)
    }

    /// The tokens in either scope.
    pub fn union(&self, other: &Scope) -> Scope {
        Scope(self.0.union(&other.0).cloned().collect())
    }

    /// The tokens in both scopes.
    pub fn intersection(&self, other: &Scope) -> Scope {
        Scope(self.0.intersection(&other.0).cloned().collect())
    }

    pub fn is_subset(&self, other: &Scope) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, token) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(token)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_space_separated_tokens_as_a_set() {
        let scope: Scope = "write read read".parse().unwrap();
        assert_eq!(scope.to_string(), "read write");
        assert!("read".parse::<Scope>().unwrap().is_subset(&scope));
    }

    #[test]
    fn rejects_what_the_grammar_forbids() {
        for bad in [
            "",
            " read",
            "read ",
            "read  write",
            "a\"b",
            "a\\b",
            "é",
            "a\tb",
        ] {
            assert_eq!(bad.parse::<Scope>(), Err(InvalidScope), "{bad:?}");
        }
        assert!("orders:read https://api.example/x".parse::<Scope>().is_ok());
    }
}
