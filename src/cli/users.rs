//! `authd users …`: create, list, disable users, set passwords, list and
//! withdraw consents.
use clap::Subcommand;
use serde_json::json;

use super::{CliError, print_json};
use crate::clock::Clock;
use crate::config::Config;
use crate::startup::Runtime;
use secrecy::SecretString;
use serde::Serialize;

use super::read_password_from_stdin;
use crate::crypto::password;
use crate::domain::{User, UserId, Username};
use crate::store;

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user; the password is read from standard input.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long, required = true)]
        password_stdin: bool,
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
    /// List the clients a user consented to; `--revoke CLIENT_ID` removes one.
    Consents {
        id: String,
        #[arg(long, value_name = "CLIENT_ID")]
        revoke: Option<String>,
    },
}

#[derive(Serialize)]
struct UserView {
    id: String,
    username: String,
    name: Option<String>,
    email: Option<String>,
    email_verified: bool,
    disabled: bool,
    /// The master-key version whose pepper keyed the password hash (0: a
    /// hash from before peppers; re-keyed at the next sign-in).
    password_key_version: u32,
    created_at: chrono::DateTime<chrono::Utc>,
}

pub(super) async fn users(
    command: UsersCommand,
    config: &Config,
    clock: &dyn Clock,
) -> Result<(), CliError> {
    let runtime = Runtime::open(config, true, clock).await?;
    let store = runtime.store.as_ref();
    match command {
        UsersCommand::Create {
            username,
            name,
            email,
            email_verified,
            ..
        } => {
            let username = Username::parse(&username).ok_or_else(|| {
                CliError::Invalid("--username must be 1 to 64 characters without spaces".into())
            })?;
            let name = name.map(|n| profile_value("--name", n)).transpose()?;
            let email = email.map(|e| profile_value("--email", e)).transpose()?;
            let plausible = |e: &str| {
                e.split_once('@').is_some_and(|(local, domain)| {
                    !local.is_empty() && domain.contains('.') && !e.contains(char::is_whitespace)
                })
            };
            if email.as_deref().is_some_and(|e| !plausible(e)) {
                return Err(CliError::Invalid("--email must be an email address".into()));
            }
            let hashed = hash_password(&runtime, read_password_from_stdin()?).await?;
            let user = User {
                id: UserId(uuid::Uuid::new_v4()),
                username,
                password_hash: hashed.phc,
                password_key_version: hashed.key_version,
                name,
                email,
                email_verified,
                disabled: false,
                created_at: clock.now(),
            };
            store.insert_user(&user).await.map_err(|e| match e {
                store::Error::Conflict(_) => {
                    CliError::Invalid(format!("username {} is taken", user.username.as_str()))
                }
                other => other.into(),
            })?;
            crate::audit::record(crate::audit::Event::UserCreated {
                user_id: &user.id.to_string(),
            });
            print_json(&json!({ "id": user.id.to_string() }));
        }
        UsersCommand::SetPassword { id, .. } => {
            let user_id = parse_user_id(&id)?;
            let hashed = hash_password(&runtime, read_password_from_stdin()?).await?;
            if !store
                .set_password(user_id, &hashed.phc, hashed.key_version, clock.now())
                .await?
            {
                return Err(CliError::Invalid(format!("no user with id {id}")));
            }
            crate::audit::record(crate::audit::Event::PasswordChanged { user_id: &id });
            print_json(&json!({ "password_changed": id }));
        }
        UsersCommand::Consents { id, revoke } => {
            let user_id = parse_user_id(&id)?;
            if store.find_user(user_id).await?.is_none() {
                return Err(CliError::Invalid(format!("no user with id {id}")));
            }
            if let Some(client) = revoke {
                let client_id = crate::domain::ClientId::parse(&client)
                    .ok_or_else(|| CliError::Invalid(format!("no consent for client {client}")))?;
                // The tokens granted under that consent end with it.
                if !store
                    .revoke_consent(user_id, &client_id, clock.now())
                    .await?
                {
                    return Err(CliError::Invalid(format!("no consent for client {client}")));
                }
                crate::audit::record(crate::audit::Event::ConsentRevoked {
                    user_id: &user_id.to_string(),
                    client_id: client_id.as_str(),
                });
                eprintln!(
                    "Consent revoked: the user will be asked again on the next sign-in, and the \
                     client's access and refresh tokens for this user no longer work."
                );
            }
            let consents: Vec<_> = store
                .list_consents(user_id)
                .await?
                .into_iter()
                .map(|c| {
                    json!({
                        "client_id": c.client_id.to_string(),
                        "scope": c.scope,
                        "granted_at": c.granted_at,
                        "updated_at": c.updated_at,
                    })
                })
                .collect();
            print_json(&consents);
        }
        UsersCommand::List => {
            let users: Vec<UserView> = store
                .list_users()
                .await?
                .into_iter()
                .map(|u| UserView {
                    id: u.id.to_string(),
                    username: u.username.as_str().to_owned(),
                    name: u.name,
                    email: u.email,
                    email_verified: u.email_verified,
                    disabled: u.disabled,
                    password_key_version: u.password_key_version,
                    created_at: u.created_at,
                })
                .collect();
            print_json(&users);
        }
        UsersCommand::Disable { id } => {
            let user_id = parse_user_id(&id)?;
            if !store.disable_user(user_id, clock.now()).await? {
                return Err(CliError::Invalid(format!("no user with id {id}")));
            }
            crate::audit::record(crate::audit::Event::UserDisabled { user_id: &id });
            print_json(&json!({ "disabled": id }));
        }
    }
    runtime.store.close().await;
    Ok(())
}

fn parse_user_id(id: &str) -> Result<UserId, CliError> {
    id.parse()
        .map(UserId)
        .map_err(|_| CliError::Invalid(format!("no user with id {id}")))
}

/// A profile value: 1 to 200 characters, no control characters.
fn profile_value(flag: &str, value: String) -> Result<String, CliError> {
    let value = value.trim().to_owned();
    let length = value.chars().count();
    if (1..=200).contains(&length) && !value.chars().any(char::is_control) {
        Ok(value)
    } else {
        Err(CliError::Invalid(format!(
            "{flag} must be 1 to 200 characters without control characters"
        )))
    }
}

/// argon2id keyed with the current master key's pepper.
async fn hash_password(
    runtime: &Runtime,
    password: SecretString,
) -> Result<password::HashedPassword, CliError> {
    let pepper = runtime
        .secrets
        .peppers
        .current()
        .map_err(|e| CliError::Invalid(e.to_string()))?;
    tokio::task::spawn_blocking(move || password::hash(&password, &pepper))
        .await
        .map_err(|e| CliError::Invalid(e.to_string()))?
        .map_err(|e| CliError::Invalid(e.to_string()))
}
