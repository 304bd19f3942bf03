//! Row types shared by both backends and their mapping to domain types,
//! written once.
use chrono::{DateTime, Utc};

use super::{Error, SigningKeyRecord};
use crate::domain::{
    AccessName, Api, ApiIdentifier, ApiName, ApiScope, Client, ClientId, ClientKind,
    ClientMetadata, ClientName, DynamicRegistration, GrantType, KeyState, Kid, RedirectUri, Role,
    Scope, SecretDigest, TokenClaim, User, UserAccess, UserId, Username,
};

pub(super) fn corrupt(entity: &'static str, id: &str, problem: impl ToString) -> Error {
    Error::Corrupt {
        entity,
        id: id.to_owned(),
        problem: problem.to_string(),
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ClientRow {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub secret_digest: Option<Vec<u8>>,
    pub secret_key_version: Option<i32>,
    pub redirect_uris: String,
    pub grant_types: String,
    pub scope: String,
    pub audiences: String,
    pub post_logout_redirect_uris: String,
    pub skip_consent: bool,
    pub can_introspect: bool,
    pub rate_tier: String,
    pub allowed_origins: String,
    pub registered_via: Option<String>,
    pub registration_metadata: Option<String>,
    pub registration_token_digest: Option<Vec<u8>>,
    pub registration_token_key_version: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn uri_list(uris: &[RedirectUri]) -> String {
    let uris: Vec<&str> = uris.iter().map(|u| u.as_str()).collect();
    serde_json::to_string(&uris).expect("strings serialise")
}

fn parse_uri_list(json: &str) -> Option<Vec<RedirectUri>> {
    let uris: Vec<String> = serde_json::from_str(json).ok()?;
    uris.iter()
        .map(|uri| RedirectUri::parse(uri).ok())
        .collect()
}

impl ClientRow {
    pub fn from_client(client: &Client) -> Self {
        let grant_types: Vec<&str> = client.grant_types.iter().map(|g| g.as_str()).collect();
        Self {
            id: client.id.to_string(),
            name: client.name.as_str().to_owned(),
            kind: client.kind.as_str().to_owned(),
            secret_digest: client.secret.as_ref().map(|s| s.digest.clone()),
            secret_key_version: client.secret.as_ref().map(|s| s.key_version as i32),
            redirect_uris: uri_list(&client.redirect_uris),
            grant_types: grant_types.join(" "),
            scope: client.scope.to_string(),
            audiences: serde_json::to_string(&client.audiences).expect("strings serialise"),
            post_logout_redirect_uris: uri_list(&client.post_logout_redirect_uris),
            skip_consent: client.skip_consent,
            can_introspect: client.can_introspect,
            rate_tier: client.rate_tier.clone(),
            allowed_origins: serde_json::to_string(&client.allowed_origins)
                .expect("strings serialise"),
            registered_via: client.dynamic.as_ref().map(|d| d.via.as_str().to_owned()),
            registration_metadata: client
                .dynamic
                .as_ref()
                .map(|d| serde_json::to_string(&d.metadata).expect("metadata serialises")),
            registration_token_digest: client
                .dynamic
                .as_ref()
                .map(|d| d.access_token.digest.clone()),
            registration_token_key_version: client
                .dynamic
                .as_ref()
                .map(|d| d.access_token.key_version as i32),
            created_at: client.created_at,
            updated_at: client.updated_at,
        }
    }
}

impl TryFrom<ClientRow> for Client {
    type Error = Error;

    fn try_from(row: ClientRow) -> Result<Self, Error> {
        let bad = |problem: &str| corrupt("client", &row.id, problem);
        let audiences: Vec<String> =
            serde_json::from_str(&row.audiences).map_err(|_| bad("audiences"))?;
        let secret = match (row.secret_digest, row.secret_key_version) {
            (Some(digest), Some(version)) => Some(SecretDigest {
                digest,
                key_version: u32::try_from(version).map_err(|_| bad("secret_key_version"))?,
            }),
            _ => None,
        };
        let dynamic = match (
            row.registered_via.as_deref(),
            row.registration_token_digest,
            row.registration_token_key_version,
        ) {
            (None, _, _) => None,
            (Some(via), Some(digest), Some(version)) => Some(DynamicRegistration {
                via: via.parse().map_err(|_| bad("registered_via"))?,
                access_token: SecretDigest {
                    digest,
                    key_version: u32::try_from(version)
                        .map_err(|_| bad("registration_token_key_version"))?,
                },
                metadata: match &row.registration_metadata {
                    Some(json) => {
                        serde_json::from_str(json).map_err(|_| bad("registration_metadata"))?
                    }
                    None => ClientMetadata::default(),
                },
            }),
            (Some(_), _, _) => return Err(bad("registration_token_digest")),
        };
        Ok(Client {
            id: ClientId::parse(&row.id).ok_or_else(|| bad("id"))?,
            dynamic,
            name: ClientName::parse(&row.name).ok_or_else(|| bad("name"))?,
            kind: row.kind.parse::<ClientKind>().map_err(|_| bad("kind"))?,
            secret,
            redirect_uris: parse_uri_list(&row.redirect_uris)
                .ok_or_else(|| bad("redirect_uris"))?,
            post_logout_redirect_uris: parse_uri_list(&row.post_logout_redirect_uris)
                .ok_or_else(|| bad("post_logout_redirect_uris"))?,
            skip_consent: row.skip_consent,
            can_introspect: row.can_introspect,
            rate_tier: row.rate_tier.clone(),
            allowed_origins: serde_json::from_str(&row.allowed_origins)
                .map_err(|_| bad("allowed_origins"))?,
            grant_types: row
                .grant_types
                .split_whitespace()
                .map(str::parse::<GrantType>)
                .collect::<Result<_, _>>()
                .map_err(|_| bad("grant_types"))?,
            scope: if row.scope.is_empty() {
                Scope::default()
            } else {
                row.scope.parse().map_err(|_| bad("scope"))?
            },
            audiences,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub password_key_version: i32,
    pub name: Option<String>,
    pub email: Option<String>,
    pub email_verified: bool,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

/// A user and their consent for one client (the family's user, read in a
/// refresh rotation).
#[derive(sqlx::FromRow)]
pub(super) struct UserConsentRow {
    #[sqlx(flatten)]
    pub user: UserRow,
    pub consent: Option<String>,
}

impl TryFrom<UserRow> for User {
    type Error = Error;

    fn try_from(row: UserRow) -> Result<Self, Error> {
        Ok(User {
            id: UserId(row.id.parse().map_err(|_| corrupt("user", &row.id, "id"))?),
            username: Username::parse(&row.username)
                .ok_or_else(|| corrupt("user", &row.id, "username"))?,
            password_hash: row.password_hash,
            password_key_version: u32::try_from(row.password_key_version)
                .map_err(|_| corrupt("user", &row.id, "password_key_version"))?,
            name: row.name,
            email: row.email,
            email_verified: row.email_verified,
            disabled: row.disabled,
            created_at: row.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct SigningKeyRow {
    pub kid: String,
    pub alg: String,
    pub state: String,
    pub public_n: String,
    pub public_e: String,
    pub private_key_sealed: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub activated_at: Option<DateTime<Utc>>,
    pub retired_at: Option<DateTime<Utc>>,
    pub activates_at: Option<DateTime<Utc>>,
    pub removed_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl TryFrom<SigningKeyRow> for SigningKeyRecord {
    type Error = Error;

    fn try_from(row: SigningKeyRow) -> Result<Self, Error> {
        Ok(SigningKeyRecord {
            state: row
                .state
                .parse::<KeyState>()
                .map_err(|_| corrupt("signing key", &row.kid, "state"))?,
            kid: Kid(row.kid),
            alg: row.alg,
            public_n: row.public_n,
            public_e: row.public_e,
            private_key_sealed: row.private_key_sealed,
            created_at: row.created_at,
            activated_at: row.activated_at,
            retired_at: row.retired_at,
            activates_at: row.activates_at,
            removed_at: row.removed_at,
            revoked_at: row.revoked_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ApiRow {
    pub id: String,
    pub identifier: String,
    pub name: String,
    pub user_access: String,
    pub token_claims: String,
    pub access_token_ttl: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ApiRow {
    pub fn from_api(api: &Api) -> Self {
        let claims: Vec<&str> = api.token_claims.iter().map(|c| c.as_str()).collect();
        Self {
            id: api.id.to_string(),
            identifier: api.identifier.as_str().to_owned(),
            name: api.name.as_str().to_owned(),
            user_access: api.user_access.as_str().to_owned(),
            token_claims: claims.join(" "),
            access_token_ttl: i32::try_from(api.access_token_ttl).unwrap_or(i32::MAX),
            created_at: api.created_at,
            updated_at: api.updated_at,
        }
    }
}

/// APIs from their rows and their scopes' rows `(api_id, scope,
/// description)`.
pub(super) fn apis_from_rows(
    rows: Vec<ApiRow>,
    scopes: Vec<(String, String, String)>,
) -> Result<Vec<Api>, Error> {
    let mut by_api: std::collections::HashMap<String, Vec<ApiScope>> = Default::default();
    for (api_id, name, description) in scopes {
        if Scope::from_tokens([&name]).is_err() {
            return Err(corrupt("api scope", &api_id, "scope"));
        }
        by_api
            .entry(api_id)
            .or_default()
            .push(ApiScope { name, description });
    }
    rows.into_iter()
        .map(|row| {
            let bad = |problem: &str| corrupt("api", &row.id, problem);
            let mut scopes = by_api.remove(&row.id).unwrap_or_default();
            scopes.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(Api {
                id: row.id.parse().map_err(|_| bad("id"))?,
                identifier: ApiIdentifier::parse(&row.identifier)
                    .ok_or_else(|| bad("identifier"))?,
                name: ApiName::parse(&row.name).ok_or_else(|| bad("name"))?,
                scopes,
                user_access: row.user_access.parse().map_err(|_| bad("user_access"))?,
                token_claims: row
                    .token_claims
                    .split_whitespace()
                    .map(str::parse::<TokenClaim>)
                    .collect::<Result<_, _>>()
                    .map_err(|_| bad("token_claims"))?,
                access_token_ttl: u32::try_from(row.access_token_ttl)
                    .map_err(|_| bad("access_token_ttl"))?,
                created_at: row.created_at,
                updated_at: row.updated_at,
            })
        })
        .collect()
}

/// The API that keeps clients' earlier scopes working as they did: none
/// when no client registered an API scope.
pub(super) fn legacy_api(
    seed: &super::LegacyApiSeed<'_>,
    scopes: std::collections::BTreeSet<String>,
) -> Result<Option<Api>, Error> {
    if scopes.is_empty() {
        return Ok(None);
    }
    let bad = |problem: &str| corrupt("issuer", seed.identifier, problem);
    Ok(Some(Api {
        id: uuid::Uuid::new_v4(),
        identifier: ApiIdentifier::parse(seed.identifier).ok_or_else(|| bad("identifier"))?,
        name: ApiName::parse(seed.name).ok_or_else(|| bad("name"))?,
        scopes: scopes
            .into_iter()
            .map(|name| ApiScope {
                description: (seed.describe)(&name),
                name,
            })
            .collect(),
        user_access: UserAccess::Any,
        token_claims: Default::default(),
        access_token_ttl: seed.ttl,
        created_at: seed.now,
        updated_at: seed.now,
    }))
}

/// A role from its row and its scopes.
pub(super) fn role_from_row(
    (id, name, created_at, updated_at): (String, String, DateTime<Utc>, DateTime<Utc>),
    scopes: Vec<String>,
) -> Result<Role, Error> {
    let bad = |problem: &str| corrupt("role", &id, problem);
    Ok(Role {
        id: id.parse().map_err(|_| bad("id"))?,
        name: AccessName::parse(&name).ok_or_else(|| bad("name"))?,
        scope: Scope::from_tokens(scopes).map_err(|_| bad("scope"))?,
        created_at,
        updated_at,
    })
}

pub(super) fn user_id(entity: &'static str, value: &str) -> Result<UserId, Error> {
    value
        .parse()
        .map(UserId)
        .map_err(|_| corrupt(entity, value, "user_id"))
}

pub(super) fn access_name(entity: &'static str, value: &str) -> Result<AccessName, Error> {
    AccessName::parse(value).ok_or_else(|| corrupt(entity, value, "name"))
}
