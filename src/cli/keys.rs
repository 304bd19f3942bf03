//! `authd keys …`: a thin layer over `tokens::keyring`.
use clap::Subcommand;

use super::{CliError, print_json};
use crate::clock::Clock;
use crate::config::Config;
use crate::startup::Runtime;
use serde::Serialize;

use crate::store;
use crate::tokens::keyring;

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

pub(super) async fn keys(
    command: KeysCommand,
    config: &Config,
    clock: &dyn Clock,
) -> Result<(), CliError> {
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
    use crate::cli::{Cli, Command};
    use clap::Parser;

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
