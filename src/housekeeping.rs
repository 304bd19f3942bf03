//! Housekeeping: removes expired sessions, pending requests, codes,
//! refresh tokens, families and `jti` records in small batches, so no
//! statement holds many locks and several replicas can run it at once on
//! one PostgreSQL (a batch another replica already deleted deletes nothing).
//! It also removes openly registered clients never used
//! (`clients::dynamic::remove_unused`).
use std::sync::Arc;

use chrono::Duration;

use crate::clock::Clock;
use crate::store::{self, PRUNABLE, Prunable, Store};

/// Rows per `DELETE`: each statement stays short and holds few locks; a
/// run repeats it until a table has no expired rows left, so a backlog
/// (after a flood, or a replica that was down) is drained in one run
/// instead of growing by whatever a fixed number of batches leaves.
pub const BATCH: u32 = 500;
/// How often each replica runs it.
pub const INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// How long past its expiry a row is kept. Redeemed codes stay an hour so
/// that a replay within the lifetime of the tokens issued from them is
/// still recognised (RFC 6749 §4.1.2); `jti` records stay a minute past
/// the token's expiry, so a replica whose clock runs a little behind still
/// finds the record of a token it has not yet judged expired; the rest goes
/// at expiry.
fn grace(what: Prunable) -> Duration {
    match what {
        Prunable::AuthorizationCodes => Duration::hours(1),
        // A sealed request's record outlives the sealed request by an
        // hour: a replica whose clock runs behind must not accept the
        // sealed request after another replica forgot that it was used.
        Prunable::SealedRequests => Duration::hours(1),
        Prunable::AccessTokens => Duration::seconds(crate::tokens::verify::LEEWAY_SECONDS as i64),
        _ => Duration::zero(),
    }
}

/// One pass over every kind of expired state; returns the rows removed.
pub async fn prune_once(store: &dyn Store, clock: &dyn Clock) -> Result<u64, store::Error> {
    let now = clock.now();
    let mut removed = 0;
    for what in PRUNABLE {
        let before = now - grace(what);
        loop {
            let deleted = store.prune_expired(what, before, BATCH).await?;
            removed += deleted;
            if deleted < u64::from(BATCH) {
                break;
            }
            // Let the requests this task shares a worker with run between
            // batches.
            tokio::task::yield_now().await;
        }
    }
    Ok(removed)
}

/// The background task: a pass every [`INTERVAL`], errors logged; openly
/// registered clients that redeemed no code within `unused_clients` are
/// removed too.
pub async fn run(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    unused_clients: std::time::Duration,
) {
    let mut ticker = tokio::time::interval(INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match prune_once(store.as_ref(), clock.as_ref()).await {
            Ok(0) => {}
            Ok(removed) => tracing::debug!(removed, "expired rows removed"),
            Err(error) => tracing::warn!(%error, "housekeeping failed; retrying later"),
        }
        let removed = crate::audit::acting_as(
            "housekeeping".to_owned(),
            crate::clients::dynamic::remove_unused(store.as_ref(), clock.as_ref(), unused_clients),
        )
        .await;
        match removed {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "unused registered clients removed"),
            Err(error) => tracing::warn!(%error, "cannot remove unused registered clients"),
        }
    }
}
