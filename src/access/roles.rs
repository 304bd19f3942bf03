//! Roles: create, list, show, update, delete; giving them to users and
//! taking them away; a user's effective permissions.
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{AccessError, access_name, find_role, find_user};
use crate::clock::Clock;
use crate::domain::{Role, Scope, UserAccessRights};
use crate::store::Store;

/// A role as the operator sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RoleView {
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// With `show` and `delete`: the groups and users holding it directly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_by: Option<RoleHoldersView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RoleHoldersView {
    pub groups: Vec<String>,
    pub users: Vec<String>,
}

impl RoleView {
    fn of(role: &Role, held_by: Option<RoleHoldersView>) -> Self {
        Self {
            id: role.id.to_string(),
            name: role.name.to_string(),
            scopes: role.scope.iter().map(str::to_owned).collect(),
            created_at: role.created_at,
            updated_at: role.updated_at,
            held_by,
        }
    }
}

/// Scopes some API defines, each named; at least one.
async fn api_scopes(store: &dyn Store, values: &[String]) -> Result<Scope, AccessError> {
    if values.is_empty() {
        return Err(AccessError::invalid(
            "--scope",
            "a role holds at least one scope",
        ));
    }
    let scope = Scope::from_tokens(values)
        .map_err(|_| AccessError::invalid("--scope", "must be scope tokens (RFC 6749 §3.3)"))?;
    if let Some(identity) = scope
        .iter()
        .find(|s| crate::domain::scope::IDENTITY_SCOPES.contains(s))
    {
        return Err(AccessError::invalid(
            "--scope",
            format!("{identity} is OpenID Connect's own scope: roles hold API scopes"),
        ));
    }
    if let Some(admin) = scope.iter().find(|s| crate::domain::api::is_admin_scope(s)) {
        return Err(AccessError::invalid(
            "--scope",
            format!("{admin} is a scope of the admin API: only machine clients hold admin scopes"),
        ));
    }
    let apis = store.list_apis().await?;
    if let Some(orphan) = scope
        .iter()
        .find(|s| !apis.iter().any(|api| api.defines(s)))
    {
        return Err(AccessError::invalid(
            "--scope",
            format!("no API defines {orphan} (authd apis create … --scope {orphan})"),
        ));
    }
    Ok(scope)
}

fn refused_scope(error: crate::store::Error) -> AccessError {
    match error {
        // An API lost the scope between the check and the write.
        crate::store::Error::Refused(_) => {
            AccessError::invalid("--scope", "a scope no API defines any more")
        }
        other => other.into(),
    }
}

pub async fn create(
    store: &dyn Store,
    clock: &dyn Clock,
    name: &str,
    scopes: &[String],
) -> Result<RoleView, AccessError> {
    let now = super::now(clock);
    let role = Role {
        id: uuid::Uuid::new_v4(),
        name: access_name("--name", name)?,
        scope: api_scopes(store, scopes).await?,
        created_at: now,
        updated_at: now,
    };
    store.insert_role(&role).await.map_err(|e| match e {
        crate::store::Error::Conflict(_) => {
            AccessError::Taken(format!("a role named {} exists", role.name))
        }
        other => refused_scope(other),
    })?;
    crate::audit::record(crate::audit::Event::AccessChanged {
        change: "role_created",
        target: role.name.as_str(),
        user_id: None,
    });
    Ok(RoleView::of(&role, None))
}

pub async fn list(store: &dyn Store) -> Result<Vec<RoleView>, AccessError> {
    Ok(store
        .list_roles()
        .await?
        .iter()
        .map(|role| RoleView::of(role, None))
        .collect())
}

async fn holders(store: &dyn Store, role: &Role) -> Result<RoleHoldersView, AccessError> {
    let holders = store.role_holders(role.id).await?;
    Ok(RoleHoldersView {
        groups: holders.groups.iter().map(ToString::to_string).collect(),
        users: holders.users.iter().map(ToString::to_string).collect(),
    })
}

pub async fn show(store: &dyn Store, name: &str) -> Result<RoleView, AccessError> {
    let role = find_role(store, name).await?;
    let held_by = holders(store, &role).await?;
    Ok(RoleView::of(&role, Some(held_by)))
}

/// Replaces the role's scopes; its holders' next tokens follow.
pub async fn update(
    store: &dyn Store,
    clock: &dyn Clock,
    name: &str,
    scopes: &[String],
    expected: Option<DateTime<Utc>>,
) -> Result<RoleView, AccessError> {
    let mut role = find_role(store, name).await?;
    let version = role.updated_at;
    if expected.is_some_and(|expected| expected != version) {
        return Err(AccessError::Changed);
    }
    role.scope = api_scopes(store, scopes).await?;
    role.updated_at = super::now(clock).max(version + chrono::Duration::microseconds(1));
    if !store
        .update_role(&role, version)
        .await
        .map_err(refused_scope)?
    {
        return Err(AccessError::Changed);
    }
    crate::audit::record(crate::audit::Event::AccessChanged {
        change: "role_updated",
        target: role.name.as_str(),
        user_id: None,
    });
    Ok(RoleView::of(&role, None))
}

/// Deletes a role; one that groups or users hold is refused unless `force`.
pub async fn delete(store: &dyn Store, name: &str, force: bool) -> Result<RoleView, AccessError> {
    let role = find_role(store, name).await?;
    let held_by = holders(store, &role).await?;
    let unheld = held_by.groups.is_empty() && held_by.users.is_empty();
    if !force && !unheld {
        let mut parts = Vec::new();
        if !held_by.groups.is_empty() {
            parts.push(format!("groups {}", held_by.groups.join(", ")));
        }
        if !held_by.users.is_empty() {
            parts.push(format!("users {}", held_by.users.join(", ")));
        }
        return Err(AccessError::InUse(format!(
            "role {} is held by {}",
            role.name,
            parts.join(" and ")
        )));
    }
    if !store.delete_role(role.id).await? {
        return Err(AccessError::NoSuchRole(name.to_owned()));
    }
    crate::audit::record(crate::audit::Event::AccessChanged {
        change: "role_deleted",
        target: role.name.as_str(),
        user_id: None,
    });
    Ok(RoleView::of(&role, Some(held_by)))
}

/// Whether a user's role changed, for the operator.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserRoleChange {
    pub user_id: String,
    pub role: String,
    /// `false` when the user already held (or did not hold) the role.
    pub changed: bool,
}

/// Gives (`add`) a user (by id or username) a role (by name), or takes it
/// away: their next authorization, code exchange and refresh follow.
pub async fn set_user_role(
    store: &dyn Store,
    user: &str,
    role: &str,
    add: bool,
) -> Result<UserRoleChange, AccessError> {
    let user = find_user(store, user).await?;
    let role = find_role(store, role).await?;
    let changed = if add {
        store.grant_user_role(user.id, role.id).await?
    } else {
        store.revoke_user_role(user.id, role.id).await?
    };
    if changed {
        crate::audit::record(crate::audit::Event::AccessChanged {
            change: if add {
                "user_role_granted"
            } else {
                "user_role_revoked"
            },
            target: role.name.as_str(),
            user_id: Some(&user.id.to_string()),
        });
    }
    Ok(UserRoleChange {
        user_id: user.id.to_string(),
        role: role.name.to_string(),
        changed,
    })
}

/// A user's effective permissions and where each comes from.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PermissionsView {
    pub user_id: String,
    pub username: String,
    pub permissions: Vec<PermissionView>,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PermissionView {
    pub scope: String,
    /// The API defining it (none if it was deleted with `--force`).
    pub api: Option<String>,
    /// Each role giving it, and the group it comes through (`null`: held
    /// directly).
    pub granted_by: Vec<GrantorView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GrantorView {
    pub role: String,
    pub group: Option<String>,
}

pub async fn permissions(store: &dyn Store, user: &str) -> Result<PermissionsView, AccessError> {
    let user = find_user(store, user).await?;
    let rights: UserAccessRights = store.user_access_rights(user.id).await?;
    let apis = crate::domain::ApiCatalogue::new(store.list_apis().await?);
    Ok(PermissionsView {
        user_id: user.id.to_string(),
        username: user.username.as_str().to_owned(),
        permissions: rights
            .permissions
            .iter()
            .map(|(scope, grantors)| PermissionView {
                scope: scope.clone(),
                api: apis.api_of(scope).map(|api| api.identifier.to_string()),
                granted_by: grantors
                    .iter()
                    .map(|g| GrantorView {
                        role: g.role.to_string(),
                        group: g.group.as_ref().map(ToString::to_string),
                    })
                    .collect(),
            })
            .collect(),
        roles: rights.roles.iter().map(ToString::to_string).collect(),
        groups: rights.groups.iter().map(ToString::to_string).collect(),
    })
}
