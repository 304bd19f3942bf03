//! Background tasks every replica runs: the signing-key schedule and the
//! cache refresher.
use std::sync::Arc;

use actix_web::web;

use super::metadata_document;
use crate::clock::Clock;
use crate::http::AppState;
use crate::store::CacheEpochs;
use crate::tokens::Keys;

/// Every replica runs the key schedule on a timer; the database's lock
/// makes each transition happen once across replicas.
pub(super) async fn run_key_schedule(
    keys: Arc<Keys>,
    clock: Arc<dyn Clock>,
    every: std::time::Duration,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        if let Err(error) = keys.run_schedule(clock.as_ref()).await {
            tracing::error!(%error, "signing key schedule failed; retrying at the next check");
        }
    }
}

/// Polls the change counters and reloads what changed: how a CLI change or
/// another replica's change reaches this process.
pub(super) async fn refresh_caches(
    state: web::Data<AppState>,
    issuer: String,
    mut seen: CacheEpochs,
    every: std::time::Duration,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let epochs: CacheEpochs = match state.store.cache_epochs().await {
            Ok(epochs) => epochs,
            Err(error) => {
                tracing::warn!(%error, "cannot check for configuration changes");
                continue;
            }
        };
        if epochs.clients != seen.clients {
            let clients = &state.token_endpoint.clients;
            match clients.reload().await {
                Ok(()) => {
                    state.metadata.store(Arc::new(metadata_document(
                        &issuer,
                        clients,
                        state.registration.mode,
                    )));
                    seen.clients = epochs.clients;
                }
                Err(error) => tracing::warn!(%error, "cannot reload clients"),
            }
        }
        if epochs.master_keys != seen.master_keys {
            // A master-key rotation registered or finished a version. Keys
            // are read at start only, so a missing key is reported once.
            match crate::secrets::follow_rotation(
                state.store.as_ref(),
                &state.master_keys,
                &state.peppers,
                state.flow.clock.as_ref(),
            )
            .await
            {
                Ok(version) => {
                    tracing::info!(version, "sealing under master key version");
                    seen.master_keys = epochs.master_keys;
                }
                Err(crate::secrets::SecretsError::Store(error)) => {
                    tracing::warn!(%error, "cannot check the master key versions");
                }
                Err(error) => {
                    seen.master_keys = epochs.master_keys;
                    tracing::error!(
                    %error,
                    "cannot follow the master-key rotation: new values stay sealed under the \
                     previous version; give this replica the new key (AUTHD_MASTER_KEY_EXTRA_FILES) \
                     and restart it"
                    );
                }
            }
        }
        if epochs.signing_keys != seen.signing_keys {
            match state.keys.reload().await {
                Ok(()) => seen.signing_keys = epochs.signing_keys,
                Err(error) => tracing::error!(%error, "cannot reload signing keys"),
            }
        }
    }
}
