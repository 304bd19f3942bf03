//! `authd apis …`, `authd roles …`, `authd groups …`: thin layers over
//! `access::{apis, roles, groups}`.
use clap::Subcommand;

use super::{CliError, print_json};
use crate::access::{AccessError, apis, groups, roles};
use crate::clock::Clock;
use crate::config::Config;
use crate::startup::Runtime;

#[derive(Debug, Subcommand)]
pub enum ApisCommand {
    /// Define an API (a resource server) and its scopes.
    Create {
        /// An absolute URI: its tokens' `aud` and the RFC 8707 `resource`
        /// naming it (https://api.example.com/invoices).
        #[arg(long)]
        identifier: String,
        /// Shown on the consent page.
        #[arg(long)]
        name: String,
        /// A scope it defines, with what it lets an application do
        /// (repeatable): `invoices:read="Read your invoices"`.
        #[arg(long = "scope", value_name = "SCOPE[=DESCRIPTION]", required = true)]
        scopes: Vec<String>,
        /// `roles` (default: a user gets a scope only through a role) or
        /// `any` (any signed-in user may consent to it).
        #[arg(long, value_name = "roles|any")]
        user_access: Option<String>,
        /// Authorization claims its tokens carry: roles, groups,
        /// permissions (comma-separated; default none).
        #[arg(long, value_name = "CLAIMS", value_delimiter = ',')]
        token_claims: Option<Vec<String>>,
        /// Its access tokens' lifetime, 60 to 3600 seconds (default 900).
        #[arg(long, value_name = "SECS")]
        access_token_ttl: Option<u32>,
    },
    List,
    Show {
        identifier: String,
    },
    /// Change an API; `--scope` replaces its scopes.
    Update {
        identifier: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long = "scope", value_name = "SCOPE[=DESCRIPTION]")]
        scopes: Vec<String>,
        #[arg(long, value_name = "roles|any")]
        user_access: Option<String>,
        /// roles, groups, permissions (comma-separated), or none.
        #[arg(long, value_name = "CLAIMS", value_delimiter = ',')]
        token_claims: Option<Vec<String>>,
        #[arg(long, value_name = "SECS")]
        access_token_ttl: Option<u32>,
        /// Remove scopes even if clients or roles hold them.
        #[arg(long)]
        force: bool,
    },
    /// Delete an API; refused while clients or roles hold its scopes,
    /// unless `--force`.
    Delete {
        identifier: String,
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RolesCommand {
    /// Define a role: a set of API scopes.
    Create {
        #[arg(long)]
        name: String,
        /// An API scope the role gives (repeatable).
        #[arg(long = "scope", value_name = "SCOPE", required = true)]
        scopes: Vec<String>,
    },
    List,
    Show {
        name: String,
    },
    /// Replace a role's scopes.
    Update {
        name: String,
        #[arg(long = "scope", value_name = "SCOPE", required = true)]
        scopes: Vec<String>,
    },
    /// Delete a role; refused while groups or users hold it, unless `--force`.
    Delete {
        name: String,
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupsCommand {
    Create {
        #[arg(long)]
        name: String,
    },
    List,
    Show {
        name: String,
    },
    /// Delete a group; refused while it has members or roles, unless `--force`.
    Delete {
        name: String,
        #[arg(long)]
        force: bool,
    },
    /// Add a user (by id or username) to a group.
    AddMember {
        group: String,
        user: String,
    },
    RemoveMember {
        group: String,
        user: String,
    },
    /// Give a group's members a role.
    AddRole {
        group: String,
        role: String,
    },
    RemoveRole {
        group: String,
        role: String,
    },
}

pub(super) async fn apis(
    command: ApisCommand,
    config: &Config,
    clock: &dyn Clock,
) -> Result<(), CliError> {
    let runtime = Runtime::open(config, true, clock).await?;
    let store = runtime.store.as_ref();
    match command {
        ApisCommand::Create {
            identifier,
            name,
            scopes,
            user_access,
            token_claims,
            access_token_ttl,
        } => {
            let input = apis::ApiInput {
                identifier,
                name,
                scopes,
                user_access,
                token_claims,
                access_token_ttl,
            };
            print_json(&apis::create(store, clock, input).await.map_err(cli_error)?);
        }
        ApisCommand::List => print_json(&apis::list(store).await.map_err(cli_error)?),
        ApisCommand::Show { identifier } => {
            print_json(&apis::show(store, &identifier).await.map_err(cli_error)?)
        }
        ApisCommand::Update {
            identifier,
            name,
            scopes,
            user_access,
            token_claims,
            access_token_ttl,
            force,
        } => {
            let changes = apis::ApiChanges {
                name,
                scopes: (!scopes.is_empty()).then_some(scopes),
                user_access,
                token_claims,
                access_token_ttl,
                force,
                expected: None,
            };
            print_json(
                &apis::update(store, clock, &identifier, changes)
                    .await
                    .map_err(cli_error)?,
            );
        }
        ApisCommand::Delete { identifier, force } => {
            let deleted = apis::delete(store, &identifier, force)
                .await
                .map_err(cli_error)?;
            print_json(&serde_json::json!({ "deleted": deleted }));
        }
    }
    runtime.store.close().await;
    Ok(())
}

pub(super) async fn roles(
    command: RolesCommand,
    config: &Config,
    clock: &dyn Clock,
) -> Result<(), CliError> {
    let runtime = Runtime::open(config, true, clock).await?;
    let store = runtime.store.as_ref();
    match command {
        RolesCommand::Create { name, scopes } => print_json(
            &roles::create(store, clock, &name, &scopes)
                .await
                .map_err(cli_error)?,
        ),
        RolesCommand::List => print_json(&roles::list(store).await.map_err(cli_error)?),
        RolesCommand::Show { name } => {
            print_json(&roles::show(store, &name).await.map_err(cli_error)?)
        }
        RolesCommand::Update { name, scopes } => print_json(
            &roles::update(store, clock, &name, &scopes, None)
                .await
                .map_err(cli_error)?,
        ),
        RolesCommand::Delete { name, force } => {
            let deleted = roles::delete(store, &name, force)
                .await
                .map_err(cli_error)?;
            print_json(&serde_json::json!({ "deleted": deleted }));
        }
    }
    runtime.store.close().await;
    Ok(())
}

pub(super) async fn groups(
    command: GroupsCommand,
    config: &Config,
    clock: &dyn Clock,
) -> Result<(), CliError> {
    let runtime = Runtime::open(config, true, clock).await?;
    let store = runtime.store.as_ref();
    match command {
        GroupsCommand::Create { name } => print_json(
            &groups::create(store, clock, &name)
                .await
                .map_err(cli_error)?,
        ),
        GroupsCommand::List => print_json(&groups::list(store).await.map_err(cli_error)?),
        GroupsCommand::Show { name } => {
            print_json(&groups::show(store, &name).await.map_err(cli_error)?)
        }
        GroupsCommand::Delete { name, force } => {
            let deleted = groups::delete(store, &name, force)
                .await
                .map_err(cli_error)?;
            print_json(&serde_json::json!({ "deleted": deleted }));
        }
        GroupsCommand::AddMember { group, user } => print_json(
            &groups::set_member(store, &group, &user, true)
                .await
                .map_err(cli_error)?,
        ),
        GroupsCommand::RemoveMember { group, user } => print_json(
            &groups::set_member(store, &group, &user, false)
                .await
                .map_err(cli_error)?,
        ),
        GroupsCommand::AddRole { group, role } => print_json(
            &groups::set_role(store, &group, &role, true)
                .await
                .map_err(cli_error)?,
        ),
        GroupsCommand::RemoveRole { group, role } => print_json(
            &groups::set_role(store, &group, &role, false)
                .await
                .map_err(cli_error)?,
        ),
    }
    runtime.store.close().await;
    Ok(())
}

/// An access error as the CLI says it (the message names the flag or the
/// thing not found).
pub(super) fn cli_error(error: AccessError) -> CliError {
    match error {
        AccessError::Store(e) => e.into(),
        other => CliError::Invalid(other.to_string()),
    }
}

/// `authd users add-role|remove-role|permissions`.
pub(super) async fn user_role(
    store: &dyn crate::store::Store,
    user: &str,
    role: &str,
    add: bool,
) -> Result<(), CliError> {
    let change = roles::set_user_role(store, user, role, add).await;
    print_json(&change.map_err(cli_error)?);
    Ok(())
}

pub(super) async fn user_permissions(
    store: &dyn crate::store::Store,
    user: &str,
) -> Result<(), CliError> {
    print_json(&roles::permissions(store, user).await.map_err(cli_error)?);
    Ok(())
}
