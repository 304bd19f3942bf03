//! Roles, the roles users hold directly, and a user's access rights (the
//! one query every grant makes): `RoleRepository`.

use async_trait::async_trait;

use super::Result;
use crate::domain::{AccessName, Role, UserAccessRights, UserId};

/// Who holds a role.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleHolders {
    pub groups: Vec<AccessName>,
    pub users: Vec<UserId>,
}

#[async_trait]
pub trait RoleRepository {
    /// `Error::Conflict("role")` when the name is taken; a scope no API
    /// defines (any more) is refused by the database.
    async fn insert_role(&self, role: &Role) -> Result<()>;
    /// Every role with its scopes, by name.
    async fn list_roles(&self) -> Result<Vec<Role>>;
    /// Replaces the role's scopes. Returns whether the role exists.
    /// Replaces the role's scopes if its `updated_at` is still `expected`;
    /// `false` when it changed meanwhile or is gone.
    async fn update_role(
        &self,
        role: &Role,
        expected: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool>;
    /// Deletes the role; users and groups holding it lose it. Returns
    /// whether a role was deleted.
    async fn delete_role(&self, id: uuid::Uuid) -> Result<bool>;
    /// The groups and users that hold the role directly.
    async fn role_holders(&self, id: uuid::Uuid) -> Result<RoleHolders>;
    /// Gives the user the role; returns whether they did not hold it yet.
    async fn grant_user_role(&self, user: UserId, role: uuid::Uuid) -> Result<bool>;
    /// Takes the role from the user; returns whether they held it.
    async fn revoke_user_role(&self, user: UserId, role: uuid::Uuid) -> Result<bool>;
    /// The user's permissions (the scopes of their roles, direct or through
    /// groups, each with where it comes from), roles and groups: one query,
    /// by the indexes on `user_roles`, `group_members` and `group_roles`.
    async fn user_access_rights(&self, user: UserId) -> Result<UserAccessRights>;
}

/// The rights query for the user `$user` (an SQL expression: a
/// placeholder, or a column of an enclosing query): `(scope, role, group)`
/// rows. A role held directly has no group; a group with no role gives a
/// row of its name alone; a role with no scope gives a row without scope.
/// A macro so that the one query can be written into a larger statement
/// (the PostgreSQL refresh rotation, `store/refresh_tokens.rs`).
macro_rules! user_access_rights_sql {
    ($user:literal) => {
        concat!(
            "SELECT rs.scope, r.name, CAST(NULL AS TEXT) FROM user_roles ur \
               JOIN roles r ON r.id = ur.role_id \
               LEFT JOIN role_scopes rs ON rs.role_id = r.id \
               WHERE ur.user_id = ",
            $user,
            " UNION ALL \
             SELECT rs.scope, r.name, g.name FROM group_members gm \
               JOIN user_groups g ON g.id = gm.group_id \
               LEFT JOIN group_roles gr ON gr.group_id = g.id \
               LEFT JOIN roles r ON r.id = gr.role_id \
               LEFT JOIN role_scopes rs ON rs.role_id = r.id \
               WHERE gm.user_id = ",
            $user
        )
    };
}
pub(super) use user_access_rights_sql;

/// The rights query of the user bound as `$1`.
pub(super) const USER_ACCESS_RIGHTS: &str = user_access_rights_sql!("$1");

/// Assembles the rights query's columns, each an array of its values
/// (PostgreSQL's `array_agg`, in one row: the rotation's statement).
pub(super) fn rights_from_columns(
    scopes: Vec<Option<String>>,
    roles: Vec<Option<String>>,
    groups: Vec<Option<String>>,
) -> Result<UserAccessRights> {
    if scopes.len() != roles.len() || roles.len() != groups.len() {
        return Err(super::rows::corrupt(
            "access rights",
            "",
            "columns of different lengths",
        ));
    }
    let rows = scopes
        .into_iter()
        .zip(roles)
        .zip(groups)
        .map(|((scope, role), group)| (scope, role, group))
        .collect();
    rights_from_rows(rows)
}

/// Assembles the rights query's rows.
pub(super) fn rights_from_rows(
    rows: Vec<(Option<String>, Option<String>, Option<String>)>,
) -> Result<UserAccessRights> {
    let mut rights = UserAccessRights::default();
    for (scope, role, group) in rows {
        let group = group
            .map(|g| super::rows::access_name("group", &g))
            .transpose()?;
        let role = role
            .map(|r| super::rows::access_name("role", &r))
            .transpose()?;
        if let Some(group) = &group {
            rights.groups.insert(group.clone());
        }
        let Some(role) = role else { continue };
        rights.roles.insert(role.clone());
        if let Some(scope) = scope {
            rights
                .permissions
                .entry(scope)
                .or_default()
                .insert(crate::domain::Grantor { role, group });
        }
    }
    Ok(rights)
}

/// Roles, stamped onto each backend's store.
macro_rules! impl_role_repository {
    ($store:ty) => {
        impl $store {
            /// The role's scopes, replaced in `tx`.
            async fn write_role_scopes(
                tx: &mut sqlx::Transaction<'static, <Self as $crate::store::HasDb>::Db>,
                role: &$crate::domain::Role,
            ) -> $crate::store::Result<()> {
                let id = role.id.to_string();
                sqlx::query("DELETE FROM role_scopes WHERE role_id = $1")
                    .bind(&id)
                    .execute(&mut **tx)
                    .await?;
                for scope in role.scope.iter() {
                    let inserted = sqlx::query("INSERT INTO role_scopes (role_id, scope) VALUES ($1, $2)")
                        .bind(&id)
                        .bind(scope)
                        .execute(&mut **tx)
                        .await;
                    if let Err(sqlx::Error::Database(e)) = &inserted {
                        if e.is_foreign_key_violation() {
                            return Err($crate::store::Error::Refused("a scope no API defines"));
                        }
                    }
                    inserted?;
                }
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::RoleRepository for $store {
            #[tracing::instrument(level = "debug", name = "store.role.insert", skip_all)]
            async fn insert_role(&self, role: &$crate::domain::Role) -> $crate::store::Result<()> {
                let mut tx = self.pool.begin().await?;
                let inserted = sqlx::query(
                    "INSERT INTO roles (id, name, created_at, updated_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(role.id.to_string())
                .bind(role.name.as_str())
                .bind(role.created_at)
                .bind(role.updated_at)
                .execute(&mut *tx)
                .await;
                if let Err(sqlx::Error::Database(e)) = &inserted {
                    if e.is_unique_violation() {
                        return Err($crate::store::Error::Conflict("role"));
                    }
                }
                inserted?;
                Self::write_role_scopes(&mut tx, role).await?;
                tx.commit().await?;
                Ok(())
            }

            #[tracing::instrument(level = "debug", name = "store.role.list", skip_all)]
            async fn list_roles(&self) -> $crate::store::Result<Vec<$crate::domain::Role>> {
                let mut tx = self.pool.begin().await?;
                let roles: Vec<(String, String, chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> =
                    sqlx::query_as("SELECT id, name, created_at, updated_at FROM roles ORDER BY name")
                        .fetch_all(&mut *tx)
                        .await?;
                let scopes: Vec<(String, String)> =
                    sqlx::query_as("SELECT role_id, scope FROM role_scopes")
                        .fetch_all(&mut *tx)
                        .await?;
                tx.commit().await?;
                let mut by_role: std::collections::HashMap<String, Vec<String>> = Default::default();
                for (role, scope) in scopes {
                    by_role.entry(role).or_default().push(scope);
                }
                roles
                    .into_iter()
                    .map(|row| {
                        let scopes = by_role.remove(&row.0).unwrap_or_default();
                        $crate::store::rows::role_from_row(row, scopes)
                    })
                    .collect()
            }

            #[tracing::instrument(level = "debug", name = "store.role.update", skip_all)]
            async fn update_role(
                &self,
                role: &$crate::domain::Role,
                expected: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::Result<bool> {
                let mut tx = self.pool.begin().await?;
                let updated = sqlx::query("UPDATE roles SET updated_at = $1 WHERE id = $2 AND updated_at = $3")
                    .bind(role.updated_at)
                    .bind(role.id.to_string())
                    .bind(expected)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if updated == 0 {
                    return Ok(false);
                }
                Self::write_role_scopes(&mut tx, role).await?;
                tx.commit().await?;
                Ok(true)
            }

            #[tracing::instrument(level = "debug", name = "store.role.delete", skip_all)]
            async fn delete_role(&self, id: uuid::Uuid) -> $crate::store::Result<bool> {
                let deleted = sqlx::query("DELETE FROM roles WHERE id = $1")
                    .bind(id.to_string())
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(deleted == 1)
            }

            #[tracing::instrument(level = "debug", name = "store.role.holders", skip_all)]
            async fn role_holders(&self, id: uuid::Uuid) -> $crate::store::Result<$crate::store::RoleHolders> {
                let id = id.to_string();
                let mut tx = self.pool.begin().await?;
                let groups: Vec<(String,)> = sqlx::query_as(
                    "SELECT g.name FROM group_roles gr JOIN user_groups g ON g.id = gr.group_id \
                     WHERE gr.role_id = $1 ORDER BY g.name",
                )
                .bind(&id)
                .fetch_all(&mut *tx)
                .await?;
                let users: Vec<(String,)> =
                    sqlx::query_as("SELECT user_id FROM user_roles WHERE role_id = $1 ORDER BY user_id")
                        .bind(&id)
                        .fetch_all(&mut *tx)
                        .await?;
                tx.commit().await?;
                Ok($crate::store::RoleHolders {
                    groups: groups
                        .iter()
                        .map(|(g,)| $crate::store::rows::access_name("group", g))
                        .collect::<$crate::store::Result<_>>()?,
                    users: users
                        .iter()
                        .map(|(u,)| $crate::store::rows::user_id("user role", u))
                        .collect::<$crate::store::Result<_>>()?,
                })
            }

            #[tracing::instrument(level = "debug", name = "store.role.grant_user", skip_all)]
            async fn grant_user_role(
                &self,
                user: $crate::domain::UserId,
                role: uuid::Uuid,
            ) -> $crate::store::Result<bool> {
                Ok(sqlx::query(
                    "INSERT INTO user_roles (user_id, role_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .bind(user.to_string())
                .bind(role.to_string())
                .execute(&self.pool)
                .await?
                .rows_affected()
                    == 1)
            }

            #[tracing::instrument(level = "debug", name = "store.role.revoke_user", skip_all)]
            async fn revoke_user_role(
                &self,
                user: $crate::domain::UserId,
                role: uuid::Uuid,
            ) -> $crate::store::Result<bool> {
                Ok(sqlx::query("DELETE FROM user_roles WHERE user_id = $1 AND role_id = $2")
                    .bind(user.to_string())
                    .bind(role.to_string())
                    .execute(&self.pool)
                    .await?
                    .rows_affected()
                    == 1)
            }

            #[tracing::instrument(level = "debug", name = "store.role.user_rights", skip_all)]
            async fn user_access_rights(
                &self,
                user: $crate::domain::UserId,
            ) -> $crate::store::Result<$crate::domain::UserAccessRights> {
                let rows: Vec<(Option<String>, Option<String>, Option<String>)> =
                    sqlx::query_as($crate::store::roles::USER_ACCESS_RIGHTS)
                        .bind(user.to_string())
                        .fetch_all(&self.pool)
                        .await?;
                $crate::store::roles::rights_from_rows(rows)
            }
        }
    };
}
pub(super) use impl_role_repository;
