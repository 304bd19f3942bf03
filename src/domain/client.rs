use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use super::{RedirectUri, Scope};

/// RFC 6749 §2.2 / Appendix A.1: `client-id = *VSCHAR`. authd generates its
/// own ids (UUIDs); this type bounds what a request may present.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(String);

impl ClientId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(value: &str) -> Option<Self> {
        let valid = !value.is_empty()
            && value.len() <= Self::MAX_LEN
            && value.bytes().all(|b| (0x20..=0x7e).contains(&b));
        valid.then(|| Self(value.to_owned()))
    }

    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A human-readable client name shown to operators (and, later, on the
/// consent page): 1 to 100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientName(String);

impl ClientName {
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        let length = value.chars().count();
        ((1..=100).contains(&length) && !value.chars().any(char::is_control))
            .then(|| Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// RFC 6749 §2.1 client types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    Confidential,
    Public,
}

impl ClientKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::Confidential => "confidential",
            ClientKind::Public => "public",
        }
    }
}

impl FromStr for ClientKind {
    type Err = UnknownValue;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "confidential" => Ok(ClientKind::Confidential),
            "public" => Ok(ClientKind::Public),
            _ => Err(UnknownValue),
        }
    }
}

/// The grant types authd knows (RFC 6749 §4.1, §4.4, §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GrantType {
    AuthorizationCode,
    ClientCredentials,
    RefreshToken,
}

impl GrantType {
    pub const ALL: [GrantType; 3] = [
        GrantType::AuthorizationCode,
        GrantType::ClientCredentials,
        GrantType::RefreshToken,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::ClientCredentials => "client_credentials",
            GrantType::RefreshToken => "refresh_token",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownValue;

impl FromStr for GrantType {
    type Err = UnknownValue;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        GrantType::ALL
            .into_iter()
            .find(|grant| grant.as_str() == value)
            .ok_or(UnknownValue)
    }
}

/// A keyed digest of a client secret and the master key version it was made
/// under. The secret itself is never stored.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretDigest {
    pub digest: Vec<u8>,
    pub key_version: u32,
}

impl fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretDigest")
            .field("key_version", &self.key_version)
            .finish_non_exhaustive()
    }
}

/// A registered client.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: ClientId,
    pub name: ClientName,
    pub kind: ClientKind,
    /// `Some` exactly when the client is confidential.
    pub secret: Option<SecretDigest>,
    pub redirect_uris: Vec<RedirectUri>,
    pub grant_types: Vec<GrantType>,
    /// The scopes the client may request; may be empty.
    pub scope: Scope,
    /// `aud` of its access tokens; empty means the server's default.
    pub audiences: Vec<String>,
    /// Where RP-initiated logout may send the browser back to.
    pub post_logout_redirect_uris: Vec<RedirectUri>,
    /// A first-party confidential client the operator pre-consented:
    /// users are not asked (never for a public client, RFC 8252 §8.6).
    pub skip_consent: bool,
    /// A resource server allowed to introspect any token (RFC 7662 §2.1);
    /// other clients only learn about their own tokens.
    pub can_introspect: bool,
    /// Its `/token` rate-limit tier (`AUTHD_RATE_TIERS`).
    pub rate_tier: String,
    /// Browser origins (`scheme://host[:port]`) allowed to call `/token`,
    /// `/userinfo` and `/revoke` for it (CORS).
    pub allowed_origins: Vec<String>,
    /// `Some` for a client that registered itself (RFC 7591): never
    /// pre-consented, and the consent page says the operator did not
    /// verify it.
    pub dynamic: Option<DynamicRegistration>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// How a dynamically registered client registered (`AUTHD_REGISTRATION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisteredVia {
    /// With an initial access token an operator made.
    Token,
    /// Without one (open registration).
    Open,
}

impl RegisteredVia {
    pub fn as_str(self) -> &'static str {
        match self {
            RegisteredVia::Token => "token",
            RegisteredVia::Open => "open",
        }
    }
}

impl FromStr for RegisteredVia {
    type Err = UnknownValue;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "token" => Ok(RegisteredVia::Token),
            "open" => Ok(RegisteredVia::Open),
            _ => Err(UnknownValue),
        }
    }
}

/// What a dynamically registered client holds besides an operator's
/// client: RFC 7591 §2's display metadata and RFC 7592's registration
/// access token (as a keyed digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamicRegistration {
    pub via: RegisteredVia,
    /// The registration access token's digest (RFC 7592 §3).
    pub access_token: SecretDigest,
    pub metadata: ClientMetadata,
}

/// RFC 7591 §2 metadata a dynamic client registered beyond what every
/// client has (validated: https URLs, e-mail addresses), and what bounds
/// its later changes (RFC 7592 `PUT`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClientMetadata {
    /// As registered (`none`, `client_secret_basic` or
    /// `client_secret_post`; a confidential client may use either secret
    /// method).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    /// The scopes its registration token allowed (space-separated);
    /// `None`: any a client may be registered with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_limit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<String>,
}

impl Client {
    /// Whether an operator registered this client, vouching for where it
    /// sends people; a client that registered itself (RFC 7591) did not:
    /// authd never sends anyone to it unasked (RFC 9700 §4.11.2), and its
    /// consent page says it is unverified. The one test every such rule
    /// asks.
    pub fn operator_vouched(&self) -> bool {
        self.dynamic.is_none()
    }

    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// The registered redirect URI a request's `redirect_uri` names; with
    /// none named, the only one registered (RFC 6749 §3.1.2.3).
    pub fn verify_redirect_uri(&self, requested: Option<&str>) -> Option<VerifiedRedirect> {
        match requested {
            Some(requested) => self
                .redirect_uris
                .iter()
                .find(|registered| registered.matches(requested))
                .map(|_| VerifiedRedirect {
                    uri: requested.to_owned(),
                    explicit: true,
                }),
            None => match self.redirect_uris.as_slice() {
                [only] => Some(VerifiedRedirect {
                    uri: only.as_str().to_owned(),
                    explicit: false,
                }),
                _ => None,
            },
        }
    }
}

/// A redirect URI that matched a registration: the only kind authd ever
/// redirects a browser to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VerifiedRedirect {
    /// The URI as the request gave it (a loopback port may differ from the
    /// registered one).
    pub uri: String,
    /// Whether the request named it: RFC 6749 §4.1.3 then requires the same
    /// value at the token endpoint.
    pub explicit: bool,
}

impl VerifiedRedirect {
    /// The origin (`scheme://host[:port]`), for a page's
    /// `Content-Security-Policy: form-action`.
    pub fn origin(&self) -> String {
        url::Url::parse(&self.uri)
            .map(|url| url.origin().ascii_serialization())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_is_vschar_and_bounded() {
        assert!(ClientId::parse("abc-123").is_some());
        assert!(ClientId::parse("").is_none());
        assert!(ClientId::parse("tab\there").is_none());
        assert!(ClientId::parse("é").is_none());
        assert!(ClientId::parse(&"a".repeat(129)).is_none());
    }

    #[test]
    fn grant_types_round_trip() {
        for grant in GrantType::ALL {
            assert_eq!(grant.as_str().parse::<GrantType>(), Ok(grant));
        }
        assert!("password".parse::<GrantType>().is_err());
    }

    #[test]
    fn client_name_rejects_blank_and_control_characters() {
        assert_eq!(
            ClientName::parse("  Billing  ").unwrap().as_str(),
            "Billing"
        );
        assert!(ClientName::parse("   ").is_none());
        assert!(ClientName::parse("a\nb").is_none());
        assert!(ClientName::parse(&"x".repeat(101)).is_none());
    }
}
