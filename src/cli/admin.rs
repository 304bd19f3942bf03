//! `authd admin bootstrap`: the admin API's first client.
use clap::Subcommand;

use super::access::cli_error;
use super::{CliError, print_json};
use crate::clients::registration::{self, NewClient};
use crate::clock::Clock;
use crate::config::Config;
use crate::domain::api::ADMIN_SCOPES;
use crate::startup::Runtime;

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a machine client holding every admin scope (`urn:authd:admin`)
    /// and print its credentials, once. Run it once per deployment; make
    /// narrower clients with the admin API itself.
    Bootstrap {
        #[arg(long, default_value = "authd admin")]
        name: String,
    },
}

pub(super) async fn admin(
    command: AdminCommand,
    config: &Config,
    clock: &dyn Clock,
) -> Result<(), CliError> {
    let runtime = Runtime::open(config, true, clock).await?;
    let store = runtime.store.as_ref();
    match command {
        AdminCommand::Bootstrap { name } => {
            crate::access::apis::ensure_admin_api(store, clock)
                .await
                .map_err(cli_error)?;
            let new = NewClient {
                name,
                scopes: ADMIN_SCOPES.iter().map(|(s, _)| (*s).to_owned()).collect(),
                ..NewClient::default()
            };
            let credentials = registration::register(
                store,
                &runtime.client_secret_digester(),
                clock,
                &config.rate_limits,
                new,
            )
            .await?;
            print_json(&credentials);
            eprintln!(
                "Store the client_secret now: authd keeps only a digest and cannot show it again. \
                 Get a token with client credentials (scope: the admin:* scopes you need) and call \
                 the admin API on AUTHD_ADMIN_BIND."
            );
        }
    }
    runtime.store.close().await;
    Ok(())
}
