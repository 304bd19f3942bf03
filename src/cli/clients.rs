//! `authd clients …`: a thin layer over `clients::registration`.
use clap::Subcommand;
use serde_json::json;

use super::{CliError, print_json};
use crate::clients::registration::{self, NewClient};
use crate::clock::Clock;
use crate::config::Config;
use crate::startup::Runtime;

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
    /// Change a client, checked as `create` checks; each list given
    /// replaces the registered one. Its type (public or confidential) stays.
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long = "redirect-uri", value_name = "URI")]
        redirect_uris: Option<Vec<String>>,
        #[arg(long = "grant-type", value_name = "GRANT")]
        grant_types: Option<Vec<String>>,
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Option<Vec<String>>,
        #[arg(long = "audience", value_name = "AUD")]
        audiences: Option<Vec<String>>,
        #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
        post_logout_redirect_uris: Option<Vec<String>>,
        #[arg(long, value_name = "true|false")]
        skip_consent: Option<bool>,
        #[arg(long, value_name = "true|false")]
        introspect: Option<bool>,
        #[arg(long, value_name = "TIER")]
        rate_tier: Option<String>,
        #[arg(long = "allowed-origin", value_name = "ORIGIN")]
        allowed_origins: Option<Vec<String>>,
    },
    Delete {
        id: String,
    },
    /// Replace the secret; prints the new one, once.
    RotateSecret {
        id: String,
    },
}

pub(super) async fn clients(
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
            let new = NewClient {
                id: None,
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
                registration: None,
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
            if credentials.client_secret.is_some() {
                eprintln!(
                    "Store the client_secret now: authd keeps only a digest and cannot show it again."
                );
            }
        }
        ClientsCommand::List => print_json(&registration::list(store).await?),
        ClientsCommand::Show { id } => print_json(&registration::show(store, &id).await?),
        ClientsCommand::Update {
            id,
            name,
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
            let changes = registration::ClientChanges {
                name,
                redirect_uris,
                grant_types,
                scopes,
                audiences,
                post_logout_redirect_uris,
                skip_consent,
                can_introspect: introspect,
                rate_tier,
                allowed_origins,
                registration: None,
            };
            print_json(
                &registration::update(store, clock, &config.rate_limits, &id, changes, None)
                    .await?,
            );
        }
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
