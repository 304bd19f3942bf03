//! Groups, their members and their roles: `GroupRepository`.

use async_trait::async_trait;

use super::Result;
use crate::domain::{Group, UserId};

#[async_trait]
pub trait GroupRepository {
    /// `Error::Conflict("group")` when the name is taken. Members and roles
    /// are added one by one.
    async fn insert_group(&self, group: &Group) -> Result<()>;
    /// Every group with its roles and members, by name.
    async fn list_groups(&self) -> Result<Vec<Group>>;
    /// Deletes the group; its members lose the roles it gave. Returns
    /// whether a group was deleted.
    async fn delete_group(&self, id: uuid::Uuid) -> Result<bool>;
    /// Returns whether the user was not a member yet.
    async fn add_group_member(&self, group: uuid::Uuid, user: UserId) -> Result<bool>;
    /// Returns whether the user was a member.
    async fn remove_group_member(&self, group: uuid::Uuid, user: UserId) -> Result<bool>;
    /// Returns whether the group did not hold the role yet.
    async fn add_group_role(&self, group: uuid::Uuid, role: uuid::Uuid) -> Result<bool>;
    /// Returns whether the group held the role.
    async fn remove_group_role(&self, group: uuid::Uuid, role: uuid::Uuid) -> Result<bool>;
}

/// Groups, stamped onto each backend's store.
macro_rules! impl_group_repository {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::GroupRepository for $store {
            #[tracing::instrument(level = "debug", name = "store.group.insert", skip_all)]
            async fn insert_group(&self, group: &$crate::domain::Group) -> $crate::store::Result<()> {
                let inserted = sqlx::query(
                    "INSERT INTO user_groups (id, name, created_at, updated_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(group.id.to_string())
                .bind(group.name.as_str())
                .bind(group.created_at)
                .bind(group.updated_at)
                .execute(&self.pool)
                .await;
                if let Err(sqlx::Error::Database(e)) = &inserted {
                    if e.is_unique_violation() {
                        return Err($crate::store::Error::Conflict("group"));
                    }
                }
                inserted?;
                Ok(())
            }

            #[tracing::instrument(level = "debug", name = "store.group.list", skip_all)]
            async fn list_groups(&self) -> $crate::store::Result<Vec<$crate::domain::Group>> {
                let mut tx = self.pool.begin().await?;
                let groups: Vec<(String, String, chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> =
                    sqlx::query_as("SELECT id, name, created_at, updated_at FROM user_groups ORDER BY name")
                        .fetch_all(&mut *tx)
                        .await?;
                let roles: Vec<(String, String)> = sqlx::query_as(
                    "SELECT gr.group_id, r.name FROM group_roles gr JOIN roles r ON r.id = gr.role_id",
                )
                .fetch_all(&mut *tx)
                .await?;
                let members: Vec<(String, String)> =
                    sqlx::query_as("SELECT group_id, user_id FROM group_members")
                        .fetch_all(&mut *tx)
                        .await?;
                tx.commit().await?;
                let mut found: Vec<$crate::domain::Group> = Vec::with_capacity(groups.len());
                let mut index: std::collections::HashMap<String, usize> = Default::default();
                for (id, name, created_at, updated_at) in groups {
                    let bad = |problem: &str| $crate::store::rows::corrupt("group", &id, problem);
                    index.insert(id.clone(), found.len());
                    found.push($crate::domain::Group {
                        id: id.parse().map_err(|_| bad("id"))?,
                        name: $crate::store::rows::access_name("group", &name)?,
                        roles: Default::default(),
                        members: Default::default(),
                        created_at,
                        updated_at,
                    });
                }
                for (group, role) in roles {
                    if let Some(&i) = index.get(&group) {
                        found[i].roles.insert($crate::store::rows::access_name("role", &role)?);
                    }
                }
                for (group, user) in members {
                    if let Some(&i) = index.get(&group) {
                        found[i].members.insert($crate::store::rows::user_id("group member", &user)?);
                    }
                }
                Ok(found)
            }

            #[tracing::instrument(level = "debug", name = "store.group.delete", skip_all)]
            async fn delete_group(&self, id: uuid::Uuid) -> $crate::store::Result<bool> {
                Ok(sqlx::query("DELETE FROM user_groups WHERE id = $1")
                    .bind(id.to_string())
                    .execute(&self.pool)
                    .await?
                    .rows_affected()
                    == 1)
            }

            #[tracing::instrument(level = "debug", name = "store.group.add_member", skip_all)]
            async fn add_group_member(
                &self,
                group: uuid::Uuid,
                user: $crate::domain::UserId,
            ) -> $crate::store::Result<bool> {
                Ok(sqlx::query(
                    "INSERT INTO group_members (group_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .bind(group.to_string())
                .bind(user.to_string())
                .execute(&self.pool)
                .await?
                .rows_affected()
                    == 1)
            }

            #[tracing::instrument(level = "debug", name = "store.group.remove_member", skip_all)]
            async fn remove_group_member(
                &self,
                group: uuid::Uuid,
                user: $crate::domain::UserId,
            ) -> $crate::store::Result<bool> {
                Ok(sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2")
                    .bind(group.to_string())
                    .bind(user.to_string())
                    .execute(&self.pool)
                    .await?
                    .rows_affected()
                    == 1)
            }

            #[tracing::instrument(level = "debug", name = "store.group.add_role", skip_all)]
            async fn add_group_role(
                &self,
                group: uuid::Uuid,
                role: uuid::Uuid,
            ) -> $crate::store::Result<bool> {
                Ok(sqlx::query(
                    "INSERT INTO group_roles (group_id, role_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .bind(group.to_string())
                .bind(role.to_string())
                .execute(&self.pool)
                .await?
                .rows_affected()
                    == 1)
            }

            #[tracing::instrument(level = "debug", name = "store.group.remove_role", skip_all)]
            async fn remove_group_role(
                &self,
                group: uuid::Uuid,
                role: uuid::Uuid,
            ) -> $crate::store::Result<bool> {
                Ok(sqlx::query("DELETE FROM group_roles WHERE group_id = $1 AND role_id = $2")
                    .bind(group.to_string())
                    .bind(role.to_string())
                    .execute(&self.pool)
                    .await?
                    .rows_affected()
                    == 1)
            }
        }
    };
}
pub(super) use impl_group_repository;
