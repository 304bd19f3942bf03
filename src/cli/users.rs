//! `authd users …`: create, list, disable users, set passwords, list and
//! withdraw consents; give and take roles (`access::roles`).
use clap::Subcommand;
use serde_json::json;

use super::read_password_from_stdin;
use super::{CliError, print_json};
use crate::clock::Clock;
use crate::config::Config;
use crate::startup::Runtime;
use crate::users::accounts::{self, NewUser};
use crate::users::{AccountError, consents};

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user; the password is read from standard input (or, with
    /// `--no-password`, the user has none until one is set).
    Create {
        #[arg(long)]
        username: String,
        #[arg(
            long,
            required_unless_present = "no_password",
            conflicts_with = "no_password"
        )]
        password_stdin: bool,
        /// No password: the user cannot sign in with one until it is set.
        #[arg(long)]
        no_password: bool,
        /// Full name (the `name` claim, profile scope).
        #[arg(long)]
        name: Option<String>,
        /// Email address (the `email` claim, email scope).
        #[arg(long)]
        email: Option<String>,
        /// The email address was verified by the operator (`email_verified: true`).
        #[arg(long, requires = "email")]
        email_verified: bool,
    },
    List,
    /// One user.
    Show {
        id: String,
    },
    /// Enable a disabled user.
    Enable {
        id: String,
    },
    /// Sign a user out everywhere: sessions end, refresh and access tokens stop.
    EndSessions {
        id: String,
    },
    /// Disable a user: they cannot sign in and their sessions end.
    Disable {
        id: String,
    },
    /// Replace a user's password; the new one is read from standard input.
    SetPassword {
        id: String,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Give a user (by id or username) a role.
    AddRole {
        user: String,
        role: String,
    },
    /// Take a role from a user: their next token and refresh lose its scopes.
    RemoveRole {
        user: String,
        role: String,
    },
    /// A user's effective permissions, and the role (and group) each comes from.
    Permissions {
        user: String,
    },
    /// List the clients a user consented to; `--revoke CLIENT_ID` removes one.
    Consents {
        id: String,
        #[arg(long, value_name = "CLIENT_ID")]
        revoke: Option<String>,
    },
}

pub(super) async fn users(
    command: UsersCommand,
    config: &Config,
    clock: &dyn Clock,
) -> Result<(), CliError> {
    let runtime = Runtime::open(config, true, clock).await?;
    let store = runtime.store.as_ref();
    let peppers = &runtime.secrets.peppers;
    match command {
        UsersCommand::Create {
            username,
            name,
            email,
            email_verified,
            no_password,
            ..
        } => {
            let new = NewUser::parse(&username, name, email, email_verified).map_err(invalid)?;
            let password = if no_password {
                None
            } else {
                Some(read_password_from_stdin()?)
            };
            let id = accounts::create(store, peppers, clock, new, password)
                .await
                .map_err(invalid)?;
            print_json(&json!({ "id": id.to_string() }));
        }
        UsersCommand::SetPassword { id, .. } => {
            let user = accounts::parse_user_id(&id).map_err(|e| no_user(e, &id))?;
            let password = read_password_from_stdin()?;
            accounts::set_password(store, peppers, clock, user, password)
                .await
                .map_err(|e| no_user(e, &id))?;
            print_json(&json!({ "password_changed": id }));
        }
        UsersCommand::Consents { id, revoke } => {
            let user = accounts::parse_user_id(&id).map_err(|e| no_user(e, &id))?;
            if let Some(client) = revoke {
                consents::withdraw(store, clock, user, &client)
                    .await
                    .map_err(|e| no_user(e, &id))?;
                eprintln!(
                    "Consent revoked: the user will be asked again on the next sign-in, and the \
                     client's access and refresh tokens for this user no longer work."
                );
            }
            let consents = consents::list(store, user)
                .await
                .map_err(|e| no_user(e, &id))?;
            print_json(&consents);
        }
        UsersCommand::AddRole { user, role } => {
            super::access::user_role(store, &user, &role, true).await?
        }
        UsersCommand::RemoveRole { user, role } => {
            super::access::user_role(store, &user, &role, false).await?
        }
        UsersCommand::Permissions { user } => super::access::user_permissions(store, &user).await?,
        UsersCommand::List => print_json(&accounts::list(store).await.map_err(invalid)?),
        UsersCommand::Show { id } => print_json(
            &accounts::show(store, &id)
                .await
                .map_err(|e| no_user(e, &id))?,
        ),
        UsersCommand::Enable { id } => {
            let user = accounts::parse_user_id(&id).map_err(|e| no_user(e, &id))?;
            accounts::enable(store, user)
                .await
                .map_err(|e| no_user(e, &id))?;
            print_json(&json!({ "enabled": id }));
        }
        UsersCommand::EndSessions { id } => {
            let user = accounts::parse_user_id(&id).map_err(|e| no_user(e, &id))?;
            accounts::end_sessions(store, clock, user)
                .await
                .map_err(|e| no_user(e, &id))?;
            print_json(&json!({ "signed_out": id }));
        }
        UsersCommand::Disable { id } => {
            let user = accounts::parse_user_id(&id).map_err(|e| no_user(e, &id))?;
            accounts::disable(store, clock, user)
                .await
                .map_err(|e| no_user(e, &id))?;
            print_json(&json!({ "disabled": id }));
        }
    }
    runtime.store.close().await;
    Ok(())
}

/// An account error as the CLI says it, naming the flag at fault.
fn invalid(error: AccountError) -> CliError {
    match error {
        AccountError::Username => {
            CliError::Invalid("--username must be 1 to 64 characters without spaces".into())
        }
        AccountError::ProfileValue(field) => CliError::Invalid(format!(
            "--{field} must be 1 to 200 characters without control characters"
        )),
        AccountError::Email => CliError::Invalid("--email must be an email address".into()),
        AccountError::Store(e) => e.into(),
        other => CliError::Invalid(other.to_string()),
    }
}

/// As [`invalid`], naming the user as the operator wrote the id.
fn no_user(error: AccountError, id: &str) -> CliError {
    match error {
        AccountError::NoSuchUser(_) => CliError::Invalid(format!("no user with id {id}")),
        other => invalid(other),
    }
}
