//! Groups: create, list, show, delete; members and roles.
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{AccessError, access_name, find_role, find_user};
use crate::clock::Clock;
use crate::domain::Group;
use crate::store::Store;

/// A group as the operator sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GroupView {
    pub id: String,
    pub name: String,
    pub roles: Vec<String>,
    /// User ids.
    pub members: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl GroupView {
    fn of(group: &Group) -> Self {
        Self {
            id: group.id.to_string(),
            name: group.name.to_string(),
            roles: group.roles.iter().map(ToString::to_string).collect(),
            members: group.members.iter().map(ToString::to_string).collect(),
            created_at: group.created_at,
            updated_at: group.updated_at,
        }
    }
}

async fn find_group(store: &dyn Store, name: &str) -> Result<Group, AccessError> {
    store
        .list_groups()
        .await?
        .into_iter()
        .find(|group| group.name.as_str() == name)
        .ok_or_else(|| AccessError::NoSuchGroup(name.to_owned()))
}

pub async fn create(
    store: &dyn Store,
    clock: &dyn Clock,
    name: &str,
) -> Result<GroupView, AccessError> {
    let now = super::now(clock);
    let group = Group {
        id: uuid::Uuid::new_v4(),
        name: access_name("--name", name)?,
        roles: Default::default(),
        members: Default::default(),
        created_at: now,
        updated_at: now,
    };
    store.insert_group(&group).await.map_err(|e| match e {
        crate::store::Error::Conflict(_) => {
            AccessError::Taken(format!("a group named {} exists", group.name))
        }
        other => other.into(),
    })?;
    crate::audit::record(crate::audit::Event::AccessChanged {
        change: "group_created",
        target: group.name.as_str(),
        user_id: None,
    });
    Ok(GroupView::of(&group))
}

pub async fn list(store: &dyn Store) -> Result<Vec<GroupView>, AccessError> {
    Ok(store
        .list_groups()
        .await?
        .iter()
        .map(GroupView::of)
        .collect())
}

pub async fn show(store: &dyn Store, name: &str) -> Result<GroupView, AccessError> {
    Ok(GroupView::of(&find_group(store, name).await?))
}

/// Deletes a group; one with members or roles is refused unless `force`
/// (its members lose the roles it gave).
pub async fn delete(store: &dyn Store, name: &str, force: bool) -> Result<GroupView, AccessError> {
    let group = find_group(store, name).await?;
    let unused = group.members.is_empty() && group.roles.is_empty();
    if !force && !unused {
        return Err(AccessError::InUse(format!(
            "group {} has {} member(s) and {} role(s)",
            group.name,
            group.members.len(),
            group.roles.len()
        )));
    }
    if !store.delete_group(group.id).await? {
        return Err(AccessError::NoSuchGroup(name.to_owned()));
    }
    crate::audit::record(crate::audit::Event::AccessChanged {
        change: "group_deleted",
        target: group.name.as_str(),
        user_id: None,
    });
    Ok(GroupView::of(&group))
}

/// What a membership or role change did, for the operator.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GroupChange {
    pub group: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// `false` when there was nothing to change.
    pub changed: bool,
}

/// Adds (`add`) or removes a member, a user named by id or username.
pub async fn set_member(
    store: &dyn Store,
    group: &str,
    user: &str,
    add: bool,
) -> Result<GroupChange, AccessError> {
    let group = find_group(store, group).await?;
    let user = find_user(store, user).await?;
    let changed = if add {
        store.add_group_member(group.id, user.id).await?
    } else {
        store.remove_group_member(group.id, user.id).await?
    };
    if changed {
        crate::audit::record(crate::audit::Event::AccessChanged {
            change: if add {
                "group_member_added"
            } else {
                "group_member_removed"
            },
            target: group.name.as_str(),
            user_id: Some(&user.id.to_string()),
        });
    }
    Ok(GroupChange {
        group: group.name.to_string(),
        user_id: Some(user.id.to_string()),
        role: None,
        changed,
    })
}

/// Gives (`add`) the group a role, or takes it away.
pub async fn set_role(
    store: &dyn Store,
    group: &str,
    role: &str,
    add: bool,
) -> Result<GroupChange, AccessError> {
    let group = find_group(store, group).await?;
    let role = find_role(store, role).await?;
    let changed = if add {
        store.add_group_role(group.id, role.id).await?
    } else {
        store.remove_group_role(group.id, role.id).await?
    };
    if changed {
        crate::audit::record(crate::audit::Event::AccessChanged {
            change: if add {
                "group_role_added"
            } else {
                "group_role_removed"
            },
            target: group.name.as_str(),
            user_id: None,
        });
    }
    Ok(GroupChange {
        group: group.name.to_string(),
        user_id: None,
        role: Some(role.name.to_string()),
        changed,
    })
}
