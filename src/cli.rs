//! The operator CLI: `serve` (the default), `migrate`, `clients`, `users`,
//! `keys`. Results are JSON on stdout; messages and logs go to stderr.
use std::io::Read;

use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;
use serde::Serialize;
use serde_json::json;

use crate::clients::registration::{self, NewClient, RegistrationError};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::crypto::MasterKey;
use crate::crypto::password;
use crate::domain::{User, UserId, Username};
use crate::startup::{Application, Runtime, StartupError};
use crate::store;
use crate::tokens::{KeyError, keyring};

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
    /// Inspect and rotate signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Create, inspect and rotate the master key (docs/operations.md).
    #[command(subcommand, name = "master-key")]
    MasterKey(MasterKeyCommand),
}

#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// Do not apply pending migrations on start.
    #[arg(long)]
    pub no_migrate: bool,
}

#[derive(Debug, Subcommand)]
pub enum ClientsCommand {
    /// Register a client; prints its id and (for confidential clients) its secret, once.
    Create {
        #[arg(long)]
        name: String,
        /// A public client (no secret): browser and native apps.
        #[arg(long)]
        public: bool,
        #[arg(long = "redirect-uri", value_name = "URI")]
        redirect_uris: Vec<String>,
        /// authorization_code, client_credentials or refresh_token.
        #[arg(long = "grant-type", value_name = "GRANT")]
        grant_types: Vec<String>,
        /// A scope the client may request (repeatable).
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// The `aud` of its access tokens (repeatable; default: the issuer).
        #[arg(long = "audience", value_name = "AUD")]
        audiences: Vec<String>,
        /// Where RP-initiated logout may return the browser (repeatable).
        #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
        post_logout_redirect_uris: Vec<String>,
        /// Pre-consent a first-party confidential client: users are not asked.
        #[arg(long)]
        skip_consent: bool,
        /// A resource server: may introspect any token at /introspect.
        #[arg(long)]
        introspect: bool,
        /// Its /token rate-limit tier (AUTHD_RATE_TIERS; default: standard).
        #[arg(long, value_name = "TIER")]
        rate_tier: Option<String>,
        /// A browser origin (https://app.example) allowed to call /token,
        /// /userinfo and /revoke for this client (CORS; repeatable).
        #[arg(long = "allowed-origin", value_name = "ORIGIN")]
        allowed_origins: Vec<String>,
    },
    List,
    Show {
        id: String,
    },
    Delete {
        id: String,
    },
    /// Replace the secret; prints the new one, once.
    RotateSecret {
        id: String,
    },
}

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

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List signing keys and their schedule (public facts only).
    List,
    /// Make the pre-published next key active now (a new next key is
    /// published). Without a next key this is refused unless --force.
    Rotate {
        /// With no pre-published key: sign at once with a brand-new key that
        /// resource servers have never seen (they refetch their JWKS on an
        /// unknown kid, or reject its tokens until their cache expires).
        #[arg(long)]
        force: bool,
    },
    /// Emergency: withdraw a (compromised) key from the JWKS at once; if it
    /// was signing, the next key signs from now on.
    Revoke {
        /// Key ids are base64url and may start with '-'.
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum MasterKeyCommand {
    /// Write a new random master key to a new file (mode 0600).
    Generate {
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
    },
    /// The database's master key versions and which ones this
    /// configuration holds.
    Status,
    /// Re-seal every sealed value under a new master key version, online
    /// and in batches. Every running replica must already hold the new key
    /// (AUTHD_MASTER_KEY_EXTRA_FILES). Safe to run again if interrupted.
    Rotate {
        /// The new key (from `authd master-key generate`).
        #[arg(long, value_name = "FILE")]
        new_key_file: std::path::PathBuf,
        /// Wait this long after registering the new version before
        /// re-sealing, so every replica seals under it first (default:
        /// three cache refresh intervals, at least 3 s).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        propagation_delay: Option<std::time::Duration>,
        /// Rows per transaction.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        batch: u32,
        /// Rotate even though a replica seen in the last 90 s does not hold
        /// the new key (it stopped without saying so).
        #[arg(long)]
        force: bool,
    },
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

fn print_json(value: &impl Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("output serialises")
    );
}

pub async fn run(cli: Cli, config: Config) -> Result<(), CliError> {
    let clock = SystemClock;
    match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => {
            let drain = config.shutdown_drain;
            let app = Application::build(config, !args.no_migrate).await?;
            app.run_until_signalled(drain).await?;
        }
        Command::Migrate => {
            let runtime = Runtime::open(&config, true, &clock).await?;
            runtime.store.close().await;
            print_json(&json!({ "migrated": true }));
        }
        Command::Clients(command) => clients(command, &config, &clock).await?,
        Command::Users(command) => users(command, &config, &clock).await?,
        Command::Keys(command) => keys(command, &config, &clock).await?,
        Command::MasterKey(command) => master_key(command, &config, &clock).await?,
    }
    Ok(())
}

async fn clients(
    command: ClientsCommand,
    config: &Config,
    clock: &dyn Clock,
) -> Result<(), CliError> {
    let runtime = Runtime::open(config, true, clock).await?;
    let store = runtime.store.as_ref();
    match command {
        ClientsCommand::Create {
            name,
            public,
            redirect_uris,
            grant_types,
            scopes,
            audiences,
            post_logout_redirect_uris,
            skip_consent,
            introspect,
            rate_tier,
            allowed_origins,
        } => {
            if let Some(tier) = &rate_tier
                && !config.rate_limits.has_tier(tier)
            {
                return Err(CliError::Invalid(format!(
                    "--rate-tier {tier}: not a configured tier (AUTHD_RATE_TIERS: {})",
                    config.rate_limits.tier_names().join(", ")
                )));
            }
            let new = NewClient {
                name,
                public,
                redirect_uris,
                grant_types,
                scopes,
                audiences,
                post_logout_redirect_uris,
                skip_consent,
                can_introspect: introspect,
                rate_tier,
                allowed_origins,
            };
            let credentials =
                registration::register(store, &runtime.client_secret_digester(), clock, new)
                    .await?;
            print_json(&credentials);
            if credentials.client_secret.is_some() {
                eprintln!(
                    "Store the client_secret now: authd keeps only a digest and cannot show it again."
                );
            }
        }
        ClientsCommand::List => print_json(&registration::list(store).await?),
        ClientsCommand::Show { id } => print_json(&registration::show(store, &id).await?),
        ClientsCommand::Delete { id } => {
            registration::delete(store, clock, &id).await?;
            print_json(&json!({ "deleted": id }));
        }
        ClientsCommand::RotateSecret { id } => {
            let credentials =
                registration::rotate_secret(store, &runtime.client_secret_digester(), clock, &id)
                    .await?;
            print_json(&credentials);
            eprintln!("The previous secret stops working within a second on every running authd.");
        }
    }
    runtime.store.close().await;
    Ok(())
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

async fn users(command: UsersCommand, config: &Config, clock: &dyn Clock) -> Result<(), CliError> {
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

/// Reads one line from stdin (the trailing newline is not part of it).
fn read_password_from_stdin() -> Result<SecretString, CliError> {
    let mut input = String::new();
    std::io::stdin()
        .take(password::MAX_LEN as u64 * 4 + 2)
        .read_to_string(&mut input)?;
    let line = input.lines().next().unwrap_or_default().to_owned();
    Ok(SecretString::from(line))
}

/// A signing key as `keys list` shows it: its state and its schedule.
#[derive(Serialize)]
struct KeyView {
    kid: String,
    state: &'static str,
    alg: String,
    created_at: chrono::DateTime<chrono::Utc>,
    /// Next: when it will sign; active and retired: when it started.
    activates_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Active: when the next key takes over; retired: when it stopped.
    retires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Retired: when it leaves the JWKS; removed: when it left.
    removal_at: Option<chrono::DateTime<chrono::Utc>>,
    revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

fn key_views(records: Vec<store::SigningKeyRecord>, schedule: &store::KeySchedule) -> Vec<KeyView> {
    use crate::domain::KeyState;
    let next_at = records
        .iter()
        .find(|k| k.state == KeyState::Next)
        .and_then(|k| k.activates_at);
    records
        .into_iter()
        .map(|k| KeyView {
            state: k.state.as_str(),
            activates_at: match k.state {
                KeyState::Next => k.activates_at,
                _ => k.activated_at,
            },
            retires_at: match k.state {
                KeyState::Active => next_at,
                _ => k.retired_at,
            },
            removal_at: match k.state {
                KeyState::Retired => k.retired_at.map(|at| at + schedule.retention),
                KeyState::Removed => k.removed_at,
                _ => None,
            },
            revoked_at: k.revoked_at,
            kid: k.kid.0,
            alg: k.alg,
            created_at: k.created_at,
        })
        .collect()
}

async fn master_key(
    command: MasterKeyCommand,
    config: &Config,
    clock: &dyn Clock,
) -> Result<(), CliError> {
    use crate::secrets;
    if let MasterKeyCommand::Generate { out } = &command {
        let key = crate::config::create_master_key_file(out)?;
        print_json(&json!({ "file": out, "key_id": key.short_id() }));
        eprintln!(
            "Wrote a new master key to {} (mode 0600). Back it up where the current key is kept.",
            out.display()
        );
        return Ok(());
    }
    // The new key is held from the start, so an interrupted rotation can
    // be resumed with the same command.
    let new_key = match &command {
        MasterKeyCommand::Rotate { new_key_file, .. } => Some(crate::config::read_master_key_file(
            "--new-key-file",
            new_key_file,
        )?),
        _ => None,
    };
    let more = new_key
        .as_ref()
        .map(|k| vec![MasterKey::from_bytes(k.to_bytes())])
        .unwrap_or_default();
    let runtime = Runtime::open_with(config, true, clock, more).await?;
    let store = runtime.store.as_ref();
    let result = match (command, new_key) {
        (
            MasterKeyCommand::Rotate {
                propagation_delay,
                batch,
                force,
                ..
            },
            Some(new_key),
        ) => {
            let propagation_delay = propagation_delay.unwrap_or_else(|| {
                (config.cache_refresh * 3).max(std::time::Duration::from_secs(3))
            });
            eprintln!(
                "Rotating to master key {} (propagation delay {} ms, batches of {batch}).",
                new_key.short_id(),
                propagation_delay.as_millis()
            );
            let options = secrets::RotationOptions {
                propagation_delay,
                batch,
                force,
            };
            secrets::rotate(store, &runtime.secrets.master_keys, new_key, clock, options)
                .await
                .map(|report| {
                    eprintln!("Done. Next: {}.", report.next_step);
                    print_json(&report);
                })
        }
        _ => secrets::status(store, &runtime.secrets.master_keys)
            .await
            .map(|versions| print_json(&versions)),
    };
    runtime.store.close().await;
    Ok(result?)
}

async fn keys(command: KeysCommand, config: &Config, clock: &dyn Clock) -> Result<(), CliError> {
    let runtime = Runtime::open(config, true, clock).await?;
    let store = runtime.store.as_ref();
    let schedule = config.key_schedule();
    let bits = config.signing_key_bits;
    let refresh = config.cache_refresh.as_millis();
    match command {
        KeysCommand::List => {}
        KeysCommand::Rotate { force } => {
            let sealer = runtime.signing_key_sealer();
            match keyring::rotate_now(store, sealer, clock, bits, &schedule, force).await? {
                store::RotateOutcome::Rotated { activated, next } => eprintln!(
                    "Key {activated} (published since its creation) signs now; {next} is the new \
                     next key. Running servers switch within {refresh} ms."
                ),
                store::RotateOutcome::Forced { activated } => eprintln!(
                    "Key {activated} signs now. It was never published before: resource servers \
                     that cache the JWKS reject its tokens until they refetch (authd's JWKS \
                     max-age is {} s).",
                    (schedule.prepublish.num_seconds() / 4).clamp(1, 3600)
                ),
                store::RotateOutcome::NoNextKey => {
                    return Err(CliError::Invalid(
                        "there is no pre-published next key (a running authd publishes one \
                         within a minute). Rotating now would sign with a key no resource \
                         server has seen, and caches may reject its tokens for up to the JWKS \
                         max-age; add --force to do it anyway"
                            .into(),
                    ));
                }
            }
        }
        KeysCommand::Revoke { kid } => {
            let sealer = runtime.signing_key_sealer();
            let kid = crate::domain::Kid(kid);
            match keyring::revoke(store, sealer, clock, bits, &schedule, &kid).await? {
                store::RevokeOutcome::Revoked { activated, next } => {
                    eprintln!("Key {kid} is revoked: it leaves the JWKS within {refresh} ms.");
                    if let Some(activated) = activated {
                        eprintln!("Key {activated} signs from now on.");
                    }
                    if let Some(next) = next {
                        eprintln!("Key {next} is the new next key.");
                    }
                }
                store::RevokeOutcome::NotFound => {
                    return Err(CliError::Invalid(format!("no signing key {kid}")));
                }
                store::RevokeOutcome::AlreadyGone => {
                    return Err(CliError::Invalid(format!(
                        "key {kid} is already removed or revoked"
                    )));
                }
            }
        }
    }
    let keys = key_views(store.list_signing_keys().await?, &schedule);
    print_json(&keys);
    runtime.store.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kids are base64url: about one in 64 starts with '-', which a CLI
    /// parser would take for an option.
    #[test]
    fn a_kid_starting_with_a_dash_is_an_argument() {
        let cli = Cli::try_parse_from(["authd", "keys", "revoke", "-OH7ueWS"]).unwrap();
        match cli.command {
            Some(Command::Keys(KeysCommand::Revoke { kid })) => assert_eq!(kid, "-OH7ueWS"),
            other => panic!("{other:?}"),
        }
    }
}
