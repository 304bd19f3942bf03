//! APIs: create, list, show, update, delete.
use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::AccessError;
use crate::clock::Clock;
use crate::domain::api::{
    ADMIN_API, ADMIN_API_NAME, ADMIN_SCOPES, DEFAULT_ACCESS_TOKEN_TTL, MAX_ACCESS_TOKEN_TTL,
    MIN_ACCESS_TOKEN_TTL, default_scope_description, scope_description,
};
use crate::domain::scope::IDENTITY_SCOPES;
use crate::domain::{Api, ApiIdentifier, ApiName, ApiScope, Scope, TokenClaim, UserAccess};
use crate::store::{self, Store};

/// An API as the operator describes it (CLI flags, admin API fields).
#[derive(Debug, Clone, Default)]
pub struct ApiInput {
    pub identifier: String,
    pub name: String,
    /// `SCOPE` or `SCOPE=DESCRIPTION`.
    pub scopes: Vec<String>,
    /// `roles` (default) or `any`.
    pub user_access: Option<String>,
    /// Any of `roles`, `groups`, `permissions`; `none` for none (default).
    pub token_claims: Option<Vec<String>>,
    pub access_token_ttl: Option<u32>,
}

/// Changes to an API; what is `None` stays as it is.
#[derive(Debug, Clone, Default)]
pub struct ApiChanges {
    pub name: Option<String>,
    /// Replaces the API's scopes.
    pub scopes: Option<Vec<String>>,
    pub user_access: Option<String>,
    pub token_claims: Option<Vec<String>>,
    pub access_token_ttl: Option<u32>,
    /// Remove scopes that clients or roles hold.
    pub force: bool,
    /// Change only the version last modified then (the admin API's
    /// `If-Match`): `Changed` otherwise.
    pub expected: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScopeView {
    pub scope: String,
    pub description: String,
}

/// An API as the operator sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiView {
    pub id: String,
    pub identifier: String,
    pub name: String,
    pub scopes: Vec<ScopeView>,
    pub user_access: &'static str,
    pub token_claims: Vec<&'static str>,
    pub access_token_ttl: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// With `show` and `delete`: what holds its scopes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used_by: Option<ApiUsage>,
}

/// What holds an API's scopes: clients registered for them and roles.
#[derive(Debug, Default, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ApiUsage {
    pub clients: Vec<String>,
    pub roles: Vec<String>,
}

impl ApiUsage {
    fn is_empty(&self) -> bool {
        self.clients.is_empty() && self.roles.is_empty()
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.clients.is_empty() {
            parts.push(format!("clients {}", self.clients.join(", ")));
        }
        if !self.roles.is_empty() {
            parts.push(format!("roles {}", self.roles.join(", ")));
        }
        parts.join(" and ")
    }
}

impl ApiView {
    pub fn of(api: &Api, used_by: Option<ApiUsage>) -> Self {
        Self {
            id: api.id.to_string(),
            identifier: api.identifier.as_str().to_owned(),
            name: api.name.as_str().to_owned(),
            scopes: api
                .scopes
                .iter()
                .map(|s| ScopeView {
                    scope: s.name.clone(),
                    description: s.description.clone(),
                })
                .collect(),
            user_access: api.user_access.as_str(),
            token_claims: api.token_claims.iter().map(|c| c.as_str()).collect(),
            access_token_ttl: api.access_token_ttl,
            created_at: api.created_at,
            updated_at: api.updated_at,
            used_by,
        }
    }
}

/// `SCOPE[=DESCRIPTION]` values, checked: scope tokens (RFC 6749 §3.3),
/// not OpenID Connect's own, each once; at least one.
fn parse_scopes(values: &[String]) -> Result<Vec<ApiScope>, AccessError> {
    if values.is_empty() {
        return Err(AccessError::invalid(
            "--scope",
            "an API defines at least one scope",
        ));
    }
    let mut scopes: Vec<ApiScope> = Vec::with_capacity(values.len());
    for value in values {
        let (name, description) = match value.split_once('=') {
            Some((name, description)) => (name, Some(description)),
            None => (value.as_str(), None),
        };
        if Scope::from_tokens([name]).is_err() {
            return Err(AccessError::invalid(
                "--scope",
                format!("{name:?} is not a scope token (RFC 6749 §3.3)"),
            ));
        }
        if IDENTITY_SCOPES.contains(&name) {
            return Err(AccessError::invalid(
                "--scope",
                format!("{name} is OpenID Connect's own scope and cannot belong to an API"),
            ));
        }
        if scopes.iter().any(|s| s.name == name) {
            return Err(AccessError::invalid(
                "--scope",
                format!("{name} is given twice"),
            ));
        }
        let description = match description {
            Some(description) => scope_description(description).ok_or_else(|| {
                AccessError::invalid(
                    "--scope",
                    format!(
                        "the description of {name} must be 1 to 200 characters without control characters"
                    ),
                )
            })?,
            None => default_scope_description(name),
        };
        scopes.push(ApiScope {
            name: name.to_owned(),
            description,
        });
    }
    scopes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(scopes)
}

fn parse_user_access(value: &str) -> Result<UserAccess, AccessError> {
    value
        .parse()
        .map_err(|_| AccessError::invalid("--user-access", "must be roles or any"))
}

fn parse_token_claims(values: &[String]) -> Result<BTreeSet<TokenClaim>, AccessError> {
    if values.iter().all(|v| v == "none") {
        return Ok(BTreeSet::new());
    }
    if values.iter().any(|v| v == "none") {
        return Err(AccessError::invalid(
            "--token-claims",
            "none stands alone: it means no claim",
        ));
    }
    values
        .iter()
        .map(|value| {
            value.parse::<TokenClaim>().map_err(|_| {
                AccessError::invalid(
                    "--token-claims",
                    format!("{value:?} is not one of roles, groups, permissions, none"),
                )
            })
        })
        .collect()
}

fn check_ttl(ttl: u32) -> Result<u32, AccessError> {
    if (MIN_ACCESS_TOKEN_TTL..=MAX_ACCESS_TOKEN_TTL).contains(&ttl) {
        Ok(ttl)
    } else {
        Err(AccessError::invalid(
            "--access-token-ttl",
            format!("must be {MIN_ACCESS_TOKEN_TTL} to {MAX_ACCESS_TOKEN_TTL} seconds"),
        ))
    }
}

fn parse_name(value: &str) -> Result<ApiName, AccessError> {
    ApiName::parse(value).ok_or_else(|| {
        AccessError::invalid(
            "--name",
            "must be 1 to 100 characters without control characters",
        )
    })
}

/// Refuses scopes another API defines, naming it.
fn ensure_scopes_free(apis: &[Api], api: &Api) -> Result<(), AccessError> {
    for scope in &api.scopes {
        if let Some(owner) = apis
            .iter()
            .find(|other| other.id != api.id && other.defines(&scope.name))
        {
            return Err(AccessError::Taken(format!(
                "scope {} belongs to API {}",
                scope.name, owner.identifier
            )));
        }
    }
    Ok(())
}

fn map_conflict(error: store::Error, api: &Api) -> AccessError {
    match error {
        store::Error::Conflict("api") => {
            AccessError::Taken(format!("an API with identifier {} exists", api.identifier))
        }
        store::Error::Conflict("scope") => {
            AccessError::Taken("one of its scopes belongs to another API".into())
        }
        other => other.into(),
    }
}

/// Creates an API.
pub async fn create(
    store: &dyn Store,
    clock: &dyn Clock,
    input: ApiInput,
) -> Result<ApiView, AccessError> {
    let identifier = ApiIdentifier::parse(&input.identifier).ok_or_else(|| {
        AccessError::invalid(
            "--identifier",
            "must be an absolute URI without a fragment (RFC 8707 §2), at most 512 characters",
        )
    })?;
    let now = super::now(clock);
    let api = Api {
        id: uuid::Uuid::new_v4(),
        identifier,
        name: parse_name(&input.name)?,
        scopes: parse_scopes(&input.scopes)?,
        user_access: input
            .user_access
            .as_deref()
            .map(parse_user_access)
            .transpose()?
            .unwrap_or(UserAccess::Roles),
        token_claims: input
            .token_claims
            .as_deref()
            .map(parse_token_claims)
            .transpose()?
            .unwrap_or_default(),
        access_token_ttl: check_ttl(input.access_token_ttl.unwrap_or(DEFAULT_ACCESS_TOKEN_TTL))?,
        created_at: now,
        updated_at: now,
    };
    let apis = store.list_apis().await?;
    if apis.iter().any(|a| a.identifier == api.identifier) {
        return Err(AccessError::Taken(format!(
            "an API with identifier {} exists",
            api.identifier
        )));
    }
    ensure_scopes_free(&apis, &api)?;
    store
        .insert_api(&api)
        .await
        .map_err(|e| map_conflict(e, &api))?;
    crate::audit::record(crate::audit::Event::AccessChanged {
        change: "api_created",
        target: api.identifier.as_str(),
        user_id: None,
    });
    Ok(ApiView::of(&api, None))
}

/// Creates the built-in admin API (`domain::api::ADMIN_API`) if it is
/// missing: at every start and before `admin bootstrap`. Users never get
/// its scopes (the admin API refuses users' tokens whatever they hold), so
/// its user access is `roles` and no role should name them. `Taken` when
/// another API already defines one of its scopes.
pub async fn ensure_admin_api(store: &dyn Store, clock: &dyn Clock) -> Result<bool, AccessError> {
    let apis = store.list_apis().await?;
    if apis.iter().any(|a| a.identifier.as_str() == ADMIN_API) {
        return Ok(false);
    }
    let now = super::now(clock);
    let api = Api {
        id: uuid::Uuid::new_v4(),
        identifier: ApiIdentifier::parse(ADMIN_API).expect("a valid identifier"),
        name: ApiName::parse(ADMIN_API_NAME).expect("a valid name"),
        scopes: ADMIN_SCOPES
            .iter()
            .map(|(name, description)| ApiScope {
                name: (*name).to_owned(),
                description: (*description).to_owned(),
            })
            .collect(),
        user_access: UserAccess::Roles,
        token_claims: BTreeSet::new(),
        access_token_ttl: DEFAULT_ACCESS_TOKEN_TTL,
        created_at: now,
        updated_at: now,
    };
    ensure_scopes_free(&apis, &api)?;
    match store.insert_api(&api).await {
        Ok(()) => {}
        // Another replica created it at the same moment.
        Err(crate::store::Error::Conflict(_)) => return Ok(false),
        Err(error) => return Err(map_conflict(error, &api)),
    }
    crate::audit::record(crate::audit::Event::AccessChanged {
        change: "api_created",
        target: api.identifier.as_str(),
        user_id: None,
    });
    Ok(true)
}

/// The built-in admin API is authd's: refused to `apis update` and
/// `apis delete`.
fn ensure_not_built_in(identifier: &str) -> Result<(), AccessError> {
    if identifier == ADMIN_API {
        return Err(AccessError::BuiltIn(format!(
            "{ADMIN_API} is built in: authd keeps its scopes as they are"
        )));
    }
    Ok(())
}

/// Every API, by identifier.
pub async fn list(store: &dyn Store) -> Result<Vec<ApiView>, AccessError> {
    Ok(store
        .list_apis()
        .await?
        .iter()
        .map(|api| ApiView::of(api, None))
        .collect())
}

/// The API with this identifier.
pub async fn find(store: &dyn Store, identifier: &str) -> Result<Api, AccessError> {
    store
        .list_apis()
        .await?
        .into_iter()
        .find(|api| api.identifier.as_str() == identifier)
        .ok_or_else(|| AccessError::NoSuchApi(identifier.to_owned()))
}

/// The identifier of the API with this id (the admin API names APIs by
/// id: an identifier is a URI, awkward in a path).
pub async fn identifier_of(store: &dyn Store, id: &str) -> Result<String, AccessError> {
    store
        .list_apis()
        .await?
        .into_iter()
        .find(|api| api.id.to_string() == id)
        .map(|api| api.identifier.as_str().to_owned())
        .ok_or_else(|| AccessError::NoSuchApi(id.to_owned()))
}

/// The clients and roles holding any of `scopes`.
async fn usage(store: &dyn Store, scopes: &BTreeSet<&str>) -> Result<ApiUsage, AccessError> {
    let held = |scope: &Scope| scope.iter().any(|s| scopes.contains(s));
    Ok(ApiUsage {
        clients: store
            .list_clients()
            .await?
            .into_iter()
            .filter(|client| held(&client.scope))
            .map(|client| client.id.to_string())
            .collect(),
        roles: store
            .list_roles()
            .await?
            .into_iter()
            .filter(|role| held(&role.scope))
            .map(|role| role.name.to_string())
            .collect(),
    })
}

/// The API with this identifier and what uses it.
pub async fn show(store: &dyn Store, identifier: &str) -> Result<ApiView, AccessError> {
    let api = find(store, identifier).await?;
    let scopes = api.scopes.iter().map(|s| s.name.as_str()).collect();
    let used_by = usage(store, &scopes).await?;
    Ok(ApiView::of(&api, Some(used_by)))
}

/// Changes an API. Removing scopes that clients or roles hold is refused
/// unless `force`: roles then lose them, and clients keep them in their
/// registration but are never granted them (no API defines them).
pub async fn update(
    store: &dyn Store,
    clock: &dyn Clock,
    identifier: &str,
    changes: ApiChanges,
) -> Result<ApiView, AccessError> {
    let nothing = changes.name.is_none()
        && changes.scopes.is_none()
        && changes.user_access.is_none()
        && changes.token_claims.is_none()
        && changes.access_token_ttl.is_none();
    if nothing {
        return Err(AccessError::invalid(
            "apis update",
            "nothing to change: give --name, --scope, --user-access, --token-claims or --access-token-ttl",
        ));
    }
    ensure_not_built_in(identifier)?;
    let mut api = find(store, identifier).await?;
    let version = api.updated_at;
    if changes.expected.is_some_and(|expected| expected != version) {
        return Err(AccessError::Changed);
    }
    if let Some(name) = &changes.name {
        api.name = parse_name(name)?;
    }
    if let Some(access) = &changes.user_access {
        api.user_access = parse_user_access(access)?;
    }
    if let Some(claims) = &changes.token_claims {
        api.token_claims = parse_token_claims(claims)?;
    }
    if let Some(ttl) = changes.access_token_ttl {
        api.access_token_ttl = check_ttl(ttl)?;
    }
    if let Some(scopes) = &changes.scopes {
        let scopes = parse_scopes(scopes)?;
        let removed: BTreeSet<&str> = api
            .scopes
            .iter()
            .filter(|old| !scopes.iter().any(|new| new.name == old.name))
            .map(|old| old.name.as_str())
            .collect();
        if !removed.is_empty() && !changes.force {
            let used_by = usage(store, &removed).await?;
            if !used_by.is_empty() {
                return Err(AccessError::InUse(format!(
                    "scopes {} are held by {}",
                    removed.iter().copied().collect::<Vec<_>>().join(", "),
                    used_by.describe()
                )));
            }
        }
        api.scopes = scopes;
        ensure_scopes_free(&store.list_apis().await?, &api)?;
    }
    api.updated_at = super::now(clock).max(version + chrono::Duration::microseconds(1));
    if !store
        .update_api(&api, version)
        .await
        .map_err(|e| map_conflict(e, &api))?
    {
        return Err(AccessError::Changed);
    }
    crate::audit::record(crate::audit::Event::AccessChanged {
        change: "api_updated",
        target: api.identifier.as_str(),
        user_id: None,
    });
    Ok(ApiView::of(&api, None))
}

/// Deletes an API. One whose scopes clients or roles hold is refused
/// unless `force` (see [`update`] for what then happens to them).
pub async fn delete(
    store: &dyn Store,
    identifier: &str,
    force: bool,
) -> Result<ApiView, AccessError> {
    ensure_not_built_in(identifier)?;
    let api = find(store, identifier).await?;
    let scopes = api.scopes.iter().map(|s| s.name.as_str()).collect();
    let used_by = usage(store, &scopes).await?;
    if !used_by.is_empty() && !force {
        return Err(AccessError::InUse(format!(
            "API {} is in use by {}",
            api.identifier,
            used_by.describe()
        )));
    }
    if !store.delete_api(api.id).await? {
        return Err(AccessError::NoSuchApi(identifier.to_owned()));
    }
    crate::audit::record(crate::audit::Event::AccessChanged {
        change: "api_deleted",
        target: api.identifier.as_str(),
        user_id: None,
    });
    Ok(ApiView::of(&api, Some(used_by)))
}
