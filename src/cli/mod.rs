//! The operator CLI: `serve` (the default), `migrate`, and a file per command
//! group (`clients`, `users`, `keys`, `master-key`, `registration-tokens`;
//! `apis`, `roles` and `groups` in `access.rs`). Results are JSON on
//! stdout; messages and logs go to stderr. Each group parses its flags and
//! calls the service functions (clients::registration, users, access,
//! tokens::keyring, secrets); uses startup, config, crypto, domain, clock.
mod access;
mod admin;
mod clients;
mod keys;
mod master_key;
mod registration_tokens;
mod users;

pub use access::{ApisCommand, GroupsCommand, RolesCommand};
pub use admin::AdminCommand;
pub use clients::ClientsCommand;
pub use keys::KeysCommand;
pub use master_key::MasterKeyCommand;
pub use registration_tokens::RegistrationTokensCommand;
pub use users::UsersCommand;

use std::io::Read;

use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;
use serde::Serialize;
use serde_json::json;

use crate::clients::registration::RegistrationError;
use crate::clock::SystemClock;
use crate::config::Config;
use crate::crypto::password;
use crate::startup::{Application, Runtime, StartupError};
use crate::store;
use crate::tokens::KeyError;

#[derive(Debug, Parser)]
#[command(
    name = "authd",
    version,
    about = "An OAuth 2.0 / OpenID Connect authorization server"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve HTTP (the default).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage OAuth clients.
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Manage users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Manage APIs (resource servers) and their scopes.
    #[command(subcommand)]
    Apis(ApisCommand),
    /// Manage roles: sets of API scopes given to users and groups.
    #[command(subcommand)]
    Roles(RolesCommand),
    /// Manage groups: users who share roles.
    #[command(subcommand)]
    Groups(GroupsCommand),
    /// Inspect and rotate signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Create, inspect and rotate the master key (docs/operations.md).
    #[command(subcommand, name = "master-key")]
    MasterKey(MasterKeyCommand),
    /// The admin HTTP API: its first client (docs/admin-api.md).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Initial access tokens for dynamic client registration
    /// (AUTHD_REGISTRATION=token; docs/registration.md).
    #[command(subcommand, name = "registration-tokens")]
    RegistrationTokens(RegistrationTokensCommand),
}

#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// Do not apply pending migrations on start.
    #[arg(long)]
    pub no_migrate: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error(transparent)]
    Registration(#[from] RegistrationError),
    #[error("{0}")]
    Store(#[from] store::Error),
    #[error("{0}")]
    Keys(#[from] KeyError),
    #[error("{0}")]
    Secrets(#[from] crate::secrets::SecretsError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    Invalid(String),

    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

pub(super) fn print_json(value: &impl Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("output serialises")
    );
}

pub async fn run(cli: Cli, config: Config) -> Result<(), CliError> {
    match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => {
            let drain = config.shutdown_drain;
            let app = Application::build(config, !args.no_migrate).await?;
            app.run_until_signalled(drain).await?;
            Ok(())
        }
        // What an operator changes from the command line, the audit log
        // says the CLI did.
        command => crate::audit::acting_as("cli".into(), operate(command, &config)).await,
    }
}

async fn operate(command: Command, config: &Config) -> Result<(), CliError> {
    let clock = SystemClock;
    match command {
        Command::Serve(_) => unreachable!("served by run"),
        Command::Migrate => {
            let runtime = Runtime::open(config, true, &clock).await?;
            runtime.store.close().await;
            print_json(&json!({ "migrated": true }));
        }
        Command::Clients(command) => clients::clients(command, config, &clock).await?,
        Command::Users(command) => users::users(command, config, &clock).await?,
        Command::Apis(command) => access::apis(command, config, &clock).await?,
        Command::Roles(command) => access::roles(command, config, &clock).await?,
        Command::Groups(command) => access::groups(command, config, &clock).await?,
        Command::Keys(command) => keys::keys(command, config, &clock).await?,
        Command::MasterKey(command) => master_key::master_key(command, config, &clock).await?,
        Command::Admin(command) => admin::admin(command, config, &clock).await?,
        Command::RegistrationTokens(command) => {
            registration_tokens::registration_tokens(command, config, &clock).await?
        }
    }
    Ok(())
}

/// Reads one line from stdin (the trailing newline is not part of it).
pub(super) fn read_password_from_stdin() -> Result<SecretString, CliError> {
    let mut input = String::new();
    std::io::stdin()
        .take(password::MAX_LEN as u64 * 4 + 2)
        .read_to_string(&mut input)?;
    let line = input.lines().next().unwrap_or_default().to_owned();
    Ok(SecretString::from(line))
}
