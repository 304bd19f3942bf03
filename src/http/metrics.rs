//! `GET /metrics` on `AUTHD_METRICS_BIND` (Prometheus text format). Gauges
//! and counters kept elsewhere are brought up to date at each scrape.
use std::time::Duration;

use actix_web::{HttpResponse, web};

use super::AppState;
use crate::domain::KeyState;
use crate::limits::limiter::Backend;

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let metrics = &state.metrics;
    let pool = state.store.pool_stats();
    metrics.db_connections.set(i64::from(pool.connections));
    metrics.db_connections_idle.set(i64::from(pool.idle));
    metrics.db_connections_max.set(i64::from(pool.max));
    // Counters owned by the code that detects the events: advance ours to
    // their totals.
    let catch_up = |counter: &prometheus::IntCounter, total: u64| {
        if let Some(delta) = total.checked_sub(counter.get()) {
            counter.inc_by(delta);
        }
    };
    catch_up(
        &metrics.refresh_token_reuse,
        state.token_endpoint.refresh.reuse_detected(),
    );
    catch_up(&metrics.login_failures, state.flow.authenticator.failures());
    catch_up(&metrics.login_busy, state.flow.authenticator.busy());
    let backend = state.rate_limits.backend();
    for each in [Backend::Redis, Backend::Local] {
        metrics
            .rate_limit_backend
            .with_label_values(&[each.as_str()])
            .set(i64::from(each == backend));
    }

    // Signing keys from the database (the source of truth across
    // replicas); a database that does not answer leaves the last values.
    let listed =
        tokio::time::timeout(Duration::from_secs(2), state.store.list_signing_keys()).await;
    if let Ok(Ok(keys)) = listed {
        let now = state.userinfo.bearer.clock.now();
        for key_state in [
            KeyState::Next,
            KeyState::Active,
            KeyState::Retired,
            KeyState::Removed,
            KeyState::Revoked,
        ] {
            let count = keys.iter().filter(|k| k.state == key_state).count();
            metrics
                .signing_keys
                .with_label_values(&[key_state.as_str()])
                .set(count as i64);
        }
        if let Some(active) = keys.iter().find(|k| k.state == KeyState::Active) {
            let since = active.activated_at.unwrap_or(active.created_at);
            metrics
                .signing_key_age
                .with_label_values(&["active"])
                .set((now - since).num_seconds());
        }
        if let Some(next) = keys.iter().find(|k| k.state == KeyState::Next) {
            metrics
                .signing_key_age
                .with_label_values(&["next"])
                .set((now - next.created_at).num_seconds());
        }
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .body(metrics.render())
}
