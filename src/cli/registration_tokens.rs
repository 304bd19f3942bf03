//! `authd registration-tokens`: initial access tokens for dynamic client
//! registration (`AUTHD_REGISTRATION=token`, RFC 7591 §3).
use clap::Subcommand;
use serde_json::json;

use super::{CliError, print_json};
use crate::clients::registration_tokens::{self, NewRegistrationToken, RegistrationTokenError};
use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::Purpose;
use crate::startup::Runtime;

#[derive(Debug, Subcommand)]
pub enum RegistrationTokensCommand {
    /// Make a token a client presents to `POST /register`, and print it,
    /// once (authd keeps only a digest).
    Create {
        /// How long it may be used (e.g. 1h, 7days); without: until revoked.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        expires_in: Option<std::time::Duration>,
        /// How many clients it may register; without: any number.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        max_uses: Option<u32>,
        /// A scope the clients it registers may hold (repeat the flag);
        /// without: any scope a client may be registered with.
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
    },
    /// List tokens (never the tokens themselves): limits and uses.
    List,
    /// Delete a token: it registers nothing more (clients it registered
    /// stay).
    Revoke { id: String },
}

fn cli_error(error: RegistrationTokenError) -> CliError {
    match error {
        RegistrationTokenError::Store(e) => e.into(),
        other => CliError::Invalid(other.to_string()),
    }
}

pub(super) async fn registration_tokens(
    command: RegistrationTokensCommand,
    config: &Config,
    clock: &dyn Clock,
) -> Result<(), CliError> {
    let runtime = Runtime::open(config, true, clock).await?;
    let store = runtime.store.as_ref();
    match command {
        RegistrationTokensCommand::Create {
            expires_in,
            max_uses,
            scopes,
        } => {
            let issued = registration_tokens::create(
                store,
                &runtime.digester(Purpose::RegistrationTokenDigest),
                clock,
                NewRegistrationToken {
                    expires_in,
                    max_uses,
                    scopes,
                },
            )
            .await
            .map_err(cli_error)?;
            print_json(&issued);
            eprintln!(
                "Store the token now: authd keeps only a digest and cannot show it again. \
                 Clients send it as Authorization: Bearer TOKEN to POST /register \
                 (AUTHD_REGISTRATION=token or open)."
            );
        }
        RegistrationTokensCommand::List => {
            print_json(&registration_tokens::list(store).await.map_err(cli_error)?)
        }
        RegistrationTokensCommand::Revoke { id } => {
            registration_tokens::revoke(store, &id)
                .await
                .map_err(cli_error)?;
            print_json(&json!({ "revoked": id }));
        }
    }
    runtime.store.close().await;
    Ok(())
}
