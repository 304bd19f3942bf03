//! `authd keys …`: a thin layer over `tokens::keyring`.
use clap::Subcommand;

use super::{CliError, print_json};
use crate::clock::Clock;
use crate::config::Config;
use crate::startup::Runtime;
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
                keyring::RotateOutcome::Rotated { activated, next } => eprintln!(
                    "Key {activated} (published since its creation) signs now; {next} is the new \
                     next key. Running servers switch within {refresh} ms."
                ),
                keyring::RotateOutcome::Forced { activated } => eprintln!(
                    "Key {activated} signs now. It was never published before: resource servers \
                     that cache the JWKS reject its tokens until they refetch (authd's JWKS \
                     max-age is {} s).",
                    (schedule.prepublish.num_seconds() / 4).clamp(1, 3600)
                ),
                keyring::RotateOutcome::NoNextKey => {
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
                keyring::RevokeOutcome::Revoked { activated, next } => {
                    eprintln!("Key {kid} is revoked: it leaves the JWKS within {refresh} ms.");
                    if let Some(activated) = activated {
                        eprintln!("Key {activated} signs from now on.");
                    }
                    if let Some(next) = next {
                        eprintln!("Key {next} is the new next key.");
                    }
                }
                keyring::RevokeOutcome::NotFound => {
                    return Err(CliError::Invalid(format!("no signing key {kid}")));
                }
                keyring::RevokeOutcome::AlreadyGone => {
                    return Err(CliError::Invalid(format!(
                        "key {kid} is already removed or revoked"
                    )));
                }
            }
        }
    }
    let keys = keyring::list(store, &schedule).await?;
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
