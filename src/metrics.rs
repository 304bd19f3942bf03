//! Prometheus metrics (the `prometheus` crate), served on their own address
//! (`AUTHD_METRICS_BIND`) so they never face the internet with the OAuth
//! endpoints. One registry per `Application`, not a global one: tests run
//! several apps in one process and each must count only its own traffic.
//!
//! Counters are incremented where things happen; gauges (signing keys, the
//! database pool) and counters kept elsewhere (refresh reuse, rate-limit
//! buckets) are read when Prometheus scrapes.
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub http_duration: HistogramVec,
    pub tokens_issued: IntCounterVec,
    pub client_auth_failures: IntCounter,
    pub rate_limit_hits: IntCounterVec,
    pub jwt_validation_failures: IntCounterVec,
    pub refresh_token_reuse: IntCounter,
    pub login_failures: IntCounter,
    pub login_busy: IntCounter,
    pub signing_keys: IntGaugeVec,
    pub signing_key_age: IntGaugeVec,
    pub db_connections: IntGauge,
    pub db_connections_idle: IntGauge,
    pub db_connections_max: IntGauge,
    pub rate_limit_backend: IntGaugeVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        fn register<C: prometheus::core::Collector + Clone + 'static>(
            registry: &Registry,
            collector: C,
        ) -> C {
            registry
                .register(Box::new(collector.clone()))
                .expect("metric names are unique");
            collector
        }
        let counter = |name: &str, help: &str| {
            register(
                &registry,
                IntCounter::new(name, help).expect("valid metric"),
            )
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            register(
                &registry,
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let gauge = |name: &str, help: &str| {
            register(&registry, IntGauge::new(name, help).expect("valid metric"))
        };
        Self {
            http_duration: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "http_request_duration_seconds",
                        "Time to answer an HTTP request, by route pattern, method and status.",
                    )
                    .buckets(vec![
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                        2.5, 5.0,
                    ]),
                    &["route", "method", "status"],
                )
                .expect("valid metric"),
            ),
            tokens_issued: counter_vec(
                "tokens_issued_total",
                "Access tokens issued at /token, by grant type.",
                &["grant"],
            ),
            client_auth_failures: counter(
                "client_auth_failures_total",
                "Failed client authentications at /token, /revoke and /introspect.",
            ),
            rate_limit_hits: counter_vec(
                "rate_limit_hits_total",
                "Requests refused with 429, by route pattern.",
                &["route"],
            ),
            jwt_validation_failures: counter_vec(
                "jwt_validation_failures_total",
                "Access tokens refused at /userinfo and /introspect, by reason.",
                &["reason"],
            ),
            refresh_token_reuse: counter(
                "refresh_token_reuse_total",
                "Used refresh tokens presented again (the family was revoked).",
            ),
            login_failures: counter(
                "login_failures_total",
                "Failed sign-ins (unknown user, wrong password, disabled user).",
            ),
            login_busy: counter(
                "login_busy_total",
                "Logins answered 503: every password check was busy (AUTHD_PASSWORD_CHECKS).",
            ),
            signing_keys: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new("signing_keys", "Signing keys by state."),
                    &["state"],
                )
                .expect("valid metric"),
            ),
            signing_key_age: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new(
                        "signing_key_age_seconds",
                        "Age of the active signing key (since it became active) and of the next one (since it was created).",
                    ),
                    &["state"],
                )
                .expect("valid metric"),
            ),
            db_connections: gauge(
                "db_pool_connections",
                "Open database connections (in use and idle).",
            ),
            db_connections_idle: gauge("db_pool_connections_idle", "Idle database connections."),
            db_connections_max: gauge(
                "db_pool_connections_max",
                "The pool's limit (AUTHD_DATABASE_MAX_CONNECTIONS).",
            ),
            rate_limit_backend: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new(
                        "authd_rate_limit_backend",
                        "Where rate limits and the login throttle count now: 1 for the backend in use (redis: shared by every replica; local: this process).",
                    ),
                    &["backend"],
                )
                .expect("valid metric"),
            ),
            registry,
        }
    }

    /// The text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding cannot fail");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}
