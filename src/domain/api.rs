//! APIs (resource servers), their scopes, roles and groups: who may get
//! which scope. A scope belongs to exactly one API, so a role names its
//! scopes alone, a token's `aud` follows from its scopes, and the consent
//! page groups scopes by the API they open.
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use super::client::UnknownValue;
use super::{Scope, UserId};

/// RFC 8707 §2: a resource is an absolute URI without a fragment. It is
/// also the `aud` of the API's tokens (RFC 9068 §3), so it is kept exactly
/// as the operator wrote it (no normalisation: clients send it back byte
/// for byte).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApiIdentifier(String);

impl ApiIdentifier {
    pub const MAX_LEN: usize = 512;

    pub fn parse(value: &str) -> Option<Self> {
        if value.is_empty()
            || value.len() > Self::MAX_LEN
            || value.contains('#')
            || !value.bytes().all(|b| (0x21..=0x7e).contains(&b))
        {
            return None;
        }
        // An absolute URI has a scheme (RFC 3986 §4.3); `url` checks the
        // rest of its syntax.
        url::Url::parse(value).ok().map(|_| Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ApiIdentifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A name shown to people (an API's on the consent page) or used in
/// tokens (a role's or a group's, in the `roles` and `groups` claims).
fn display_name(value: &str) -> Option<String> {
    let value = value.trim();
    let length = value.chars().count();
    ((1..=100).contains(&length) && !value.chars().any(char::is_control)).then(|| value.to_owned())
}

/// An API's name as the consent page shows it: 1 to 100 characters, no
/// control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiName(String);

impl ApiName {
    pub fn parse(value: &str) -> Option<Self> {
        display_name(value).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A role's or group's name: 1 to 64 of letters, digits and `.`, `_`,
/// `-`, `:` (they travel in tokens' `roles` and `groups` claims and on
/// command lines, so nothing that needs quoting).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccessName(String);

impl AccessName {
    pub fn parse(value: &str) -> Option<Self> {
        let valid = (1..=64).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'));
        valid.then(|| Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccessName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who may get an API's scopes in a user's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserAccess {
    /// Only users holding the scope through a role (the default).
    Roles,
    /// Any signed-in user who consents (authd's behaviour before APIs).
    Any,
}

impl UserAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            UserAccess::Roles => "roles",
            UserAccess::Any => "any",
        }
    }
}

impl FromStr for UserAccess {
    type Err = UnknownValue;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "roles" => Ok(UserAccess::Roles),
            "any" => Ok(UserAccess::Any),
            _ => Err(UnknownValue),
        }
    }
}

/// RFC 9068 §2.2.3.1 authorization claims an API's tokens may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TokenClaim {
    Roles,
    Groups,
    Permissions,
}

impl TokenClaim {
    pub const ALL: [TokenClaim; 3] = [
        TokenClaim::Roles,
        TokenClaim::Groups,
        TokenClaim::Permissions,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TokenClaim::Roles => "roles",
            TokenClaim::Groups => "groups",
            TokenClaim::Permissions => "permissions",
        }
    }
}

impl FromStr for TokenClaim {
    type Err = UnknownValue;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        TokenClaim::ALL
            .into_iter()
            .find(|claim| claim.as_str() == value)
            .ok_or(UnknownValue)
    }
}

/// A scope an API defines, with what it lets an application do, in the
/// user's words (the consent page shows it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiScope {
    pub name: String,
    pub description: String,
}

/// A description: 1 to 200 characters, no control characters.
pub fn scope_description(value: &str) -> Option<String> {
    let value = value.trim();
    let length = value.chars().count();
    ((1..=200).contains(&length) && !value.chars().any(char::is_control)).then(|| value.to_owned())
}

/// DESIGN: access tokens live 15 minutes unless their API says otherwise,
/// and never more than an hour (RFC 9700 §4.14: short-lived tokens).
pub const DEFAULT_ACCESS_TOKEN_TTL: u32 = 900;
pub const MAX_ACCESS_TOKEN_TTL: u32 = 3_600;
pub const MIN_ACCESS_TOKEN_TTL: u32 = 60;

/// The built-in API that guards authd's own admin API (`/admin/v1`): its
/// identifier is the `aud` of the tokens that call it, and a machine client
/// holds some of its scopes to be allowed anything there. authd creates it
/// at start and nobody may change or delete it.
pub const ADMIN_API: &str = "urn:authd:admin";
pub const ADMIN_API_NAME: &str = "authd admin API";

/// Whether `scope` is one of the admin API's: held only by clients an
/// operator made, never by a role or a dynamically registered client.
pub fn is_admin_scope(scope: &str) -> bool {
    ADMIN_SCOPES.iter().any(|(admin, _)| *admin == scope)
}

/// The admin API's scopes, exactly these, each with what it allows.
pub const ADMIN_SCOPES: [(&str, &str); 9] = [
    ("admin:clients:read", "Read OAuth clients"),
    (
        "admin:clients:write",
        "Create, change and delete OAuth clients",
    ),
    (
        "admin:users:read",
        "Read users, their sessions and consents",
    ),
    (
        "admin:users:write",
        "Create and change users, end their sessions, withdraw consents",
    ),
    (
        "admin:apis:read",
        "Read APIs, roles, groups and memberships",
    ),
    (
        "admin:apis:write",
        "Change APIs, roles, groups and memberships",
    ),
    (
        "admin:keys:read",
        "Read signing keys and the master-key status",
    ),
    ("admin:keys:write", "Rotate and revoke signing keys"),
    (
        "admin:registration:write",
        "Create and revoke registration tokens (their holders register clients)",
    ),
];

/// A resource server.
#[derive(Debug, Clone)]
pub struct Api {
    pub id: uuid::Uuid,
    pub identifier: ApiIdentifier,
    pub name: ApiName,
    /// Sorted by name; at least one.
    pub scopes: Vec<ApiScope>,
    pub user_access: UserAccess,
    /// The authorization claims its tokens carry; none by default.
    pub token_claims: BTreeSet<TokenClaim>,
    /// Seconds, within [`MIN_ACCESS_TOKEN_TTL`]..=[`MAX_ACCESS_TOKEN_TTL`].
    pub access_token_ttl: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Api {
    pub fn defines(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s.name == scope)
    }
}

/// A named set of API scopes.
#[derive(Debug, Clone)]
pub struct Role {
    pub id: uuid::Uuid,
    pub name: AccessName,
    pub scope: Scope,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Users who share roles.
#[derive(Debug, Clone)]
pub struct Group {
    pub id: uuid::Uuid,
    pub name: AccessName,
    pub roles: BTreeSet<AccessName>,
    pub members: BTreeSet<UserId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Where a user's permission comes from: a role held directly, or through
/// a group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grantor {
    pub role: AccessName,
    pub group: Option<AccessName>,
}

/// What a user holds right now: the scopes of their roles, direct or
/// through groups, and where each comes from; their roles and groups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserAccessRights {
    pub permissions: std::collections::BTreeMap<String, BTreeSet<Grantor>>,
    pub roles: BTreeSet<AccessName>,
    pub groups: BTreeSet<AccessName>,
}

impl UserAccessRights {
    pub fn holds(&self, scope: &str) -> bool {
        self.permissions.contains_key(scope)
    }
}

/// Every API, found by identifier or by one of its scopes: what the
/// client registry holds in memory beside the clients.
#[derive(Debug, Clone, Default)]
pub struct ApiCatalogue {
    apis: Vec<std::sync::Arc<Api>>,
    by_identifier: std::collections::HashMap<String, usize>,
    by_scope: std::collections::HashMap<String, usize>,
}

impl ApiCatalogue {
    pub fn new(apis: Vec<Api>) -> Self {
        let mut catalogue = Self::default();
        for api in apis {
            let index = catalogue.apis.len();
            catalogue
                .by_identifier
                .insert(api.identifier.as_str().to_owned(), index);
            for scope in &api.scopes {
                catalogue.by_scope.insert(scope.name.clone(), index);
            }
            catalogue.apis.push(std::sync::Arc::new(api));
        }
        catalogue
    }

    /// The API this identifier (an RFC 8707 `resource`) names.
    pub fn find(&self, identifier: &str) -> Option<&std::sync::Arc<Api>> {
        self.by_identifier.get(identifier).map(|&i| &self.apis[i])
    }

    /// The API that defines `scope`.
    pub fn api_of(&self, scope: &str) -> Option<&std::sync::Arc<Api>> {
        self.by_scope.get(scope).map(|&i| &self.apis[i])
    }

    /// Every API, by identifier.
    pub fn iter(&self) -> impl Iterator<Item = &std::sync::Arc<Api>> {
        self.apis.iter()
    }
}

/// What a scope lets an application do, in the user's words, when its API
/// gave no description: `invoices:read` → "Read access to invoices".
pub fn default_scope_description(scope: &str) -> String {
    match scope.split_once(':') {
        Some((resource, action)) if !resource.is_empty() && !action.is_empty() => {
            let mut action = action.to_owned();
            if let Some(first) = action.get_mut(..1) {
                first.make_ascii_uppercase();
            }
            format!("{action} access to {resource}")
        }
        _ => format!("Access \u{201c}{scope}\u{201d}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_absolute_uris_without_fragments() {
        assert!(ApiIdentifier::parse("https://api.example.com/invoices").is_some());
        assert!(ApiIdentifier::parse("urn:authd:admin").is_some());
        for bad in [
            "",
            "invoices",
            "/invoices",
            "https://api.example.com/#x",
            "https://api.example.com/ x",
            "https://api.example.com/\u{e9}",
        ] {
            assert!(ApiIdentifier::parse(bad).is_none(), "{bad:?}");
        }
        assert!(ApiIdentifier::parse(&format!("https://a/{}", "x".repeat(510))).is_none());
    }

    #[test]
    fn access_names_are_plain_tokens() {
        assert!(AccessName::parse("finance").is_some());
        assert!(AccessName::parse("invoices:writer.v2_x-y").is_some());
        for bad in ["", "two words", "a\"b", "\u{e9}", &"x".repeat(65)] {
            assert!(AccessName::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn settings_round_trip() {
        for access in [UserAccess::Roles, UserAccess::Any] {
            assert_eq!(access.as_str().parse::<UserAccess>(), Ok(access));
        }
        for claim in TokenClaim::ALL {
            assert_eq!(claim.as_str().parse::<TokenClaim>(), Ok(claim));
        }
        assert!("scopes".parse::<TokenClaim>().is_err());
    }
}
