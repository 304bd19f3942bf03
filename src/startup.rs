//! Builds the application once, for the binary and the tests alike.
use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, Service};
use actix_web::http::header::{self, HeaderValue};
use actix_web::{App, HttpMessage, HttpServer, middleware, web};
use arc_swap::ArcSwap;
use bytes::Bytes;
use tracing_actix_web::{RequestId, TracingLogger};

use crate::clients::ClientRegistry;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigError};
use crate::crypto::{Digester, Purpose, Sealer};
use crate::http::pages::Pages;
use crate::http::{self, AppState};
use crate::listener::AcceptGate;
use crate::oauth::bearer::BearerTokens;
use crate::oauth::codes::Codes;
use crate::oauth::metadata::ServerMetadata;
use crate::oauth::refresh::{RefreshSettings, RefreshTokens};
use crate::oauth::token::TokenEndpoint;
use crate::oauth::userinfo::UserInfo;
use crate::secrets::Secrets;
use crate::signin::flow::AuthorizationFlow;
use crate::signin::password::Authenticator;
use crate::signin::session::Sessions;
use crate::store::{self, CacheEpochs, PoolSettings, Store};
use crate::tokens::{KeyError, Keys, SigningPool, TokenIssuer};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("DATABASE_URL: {0}")]
    Database(#[from] store::Error),
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretsError),
    #[error("signing keys: {0}")]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Pages(#[from] crate::http::pages::PagesError),
    #[error("sign-in could not be prepared: {0}")]
    SignIn(crate::oauth::Error),
    #[error("AUTHD_BIND: cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
}

/// The database and the master keys, opened and checked against each
/// other. Shared by `serve` and every CLI command.
pub struct Runtime {
    pub store: Arc<dyn Store>,
    pub secrets: Secrets,
}

impl Runtime {
    /// Connects, applies pending migrations when `migrate`, and refuses
    /// master keys that are not the database's (`Secrets::open`).
    pub async fn open(
        config: &Config,
        migrate: bool,
        clock: &dyn Clock,
    ) -> Result<Self, StartupError> {
        Self::open_with(config, migrate, clock, Vec::new()).await
    }

    /// As [`Runtime::open`], holding `more` keys besides the configured
    /// ones (`master-key rotate` resuming with its `--new-key-file`).
    pub async fn open_with(
        config: &Config,
        migrate: bool,
        clock: &dyn Clock,
        more: Vec<crate::crypto::MasterKey>,
    ) -> Result<Self, StartupError> {
        let mut master_keys = config.load_master_keys()?;
        master_keys.extend(more);
        let store = store::connect(
            &config.database_url,
            PoolSettings {
                max_connections: config.database_max_connections,
                // A database that is down answers 503 after this long
                // rather than holding the request (docs/operations.md).
                acquire_timeout: std::time::Duration::from_secs(3),
            },
        )
        .await?;
        if migrate {
            store.migrate().await?;
        }
        match Secrets::open(store.as_ref(), master_keys, clock).await {
            Ok(secrets) => Ok(Self { store, secrets }),
            Err(error) => {
                store.close().await;
                Err(error.into())
            }
        }
    }

    pub fn signing_key_sealer(&self) -> Arc<Sealer> {
        Arc::new(self.secrets.sealer(Purpose::SigningKeySealing))
    }

    pub fn client_secret_digester(&self) -> Digester {
        self.secrets.digester(Purpose::ClientSecretDigest)
    }

    pub fn digester(&self, purpose: Purpose) -> Digester {
        self.secrets.digester(purpose)
    }

    pub fn sealer(&self, purpose: Purpose) -> Sealer {
        self.secrets.sealer(purpose)
    }
}

pub struct Application {
    port: u16,
    issuer: String,
    server: Server,
    /// The listener again, to close it without resetting queued
    /// connections (`listener.rs`). Taken by `run_until_signalled`; dropped
    /// before the server stops, so that this second handle never keeps the
    /// socket listening after actix closes its own.
    gate: Option<AcceptGate>,
    state: web::Data<AppState>,
    refresher: tokio::task::JoinHandle<()>,
    housekeeping: tokio::task::JoinHandle<()>,
    key_schedule: tokio::task::JoinHandle<()>,
    /// Records which master keys this replica holds (`master_key_holders`).
    announcer: tokio::task::JoinHandle<()>,
    replica: String,
    limits_gc: tokio::task::JoinHandle<()>,
    /// The `/metrics` server and its port, when `AUTHD_METRICS_BIND` is set.
    metrics_server: Option<(Server, u16)>,
}

impl Application {
    pub async fn build(config: Config, migrate: bool) -> Result<Self, StartupError> {
        Self::build_with_clock(config, migrate, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(
        config: Config,
        migrate: bool,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        let listener = TcpListener::bind(config.bind).map_err(|source| StartupError::Bind {
            address: config.bind.to_string(),
            source,
        })?;
        let address = listener.local_addr().map_err(|source| StartupError::Bind {
            address: config.bind.to_string(),
            source,
        })?;
        let issuer = config
            .issuer
            .clone()
            .unwrap_or_else(|| format!("http://{address}"));
        if config.issuer.is_none() && address.ip().is_unspecified() {
            tracing::warn!(
                %issuer,
                "AUTHD_ISSUER is not set: tokens name an issuer clients cannot reach; set the public URL"
            );
        }

        let runtime = Runtime::open(&config, migrate, clock.as_ref()).await?;
        let store = runtime.store.clone();
        // Read before loading, so a change made while loading is seen later.
        let epochs = store.cache_epochs().await?;
        let keys = Arc::new(
            Keys::load_or_create(
                store.clone(),
                runtime.signing_key_sealer(),
                clock.as_ref(),
                config.signing_key_bits,
                config.key_schedule(),
            )
            .await?,
        );
        let clients = Arc::new(ClientRegistry::load(store.clone()).await?);
        let metadata = metadata_document(&issuer, &clients);
        let pages = Pages::load(
            config.templates_dir.as_deref(),
            issuer.starts_with("https://"),
        )?;
        let tokens = Arc::new(TokenIssuer::new(
            issuer.clone(),
            keys.clone(),
            SigningPool::start(config.workers),
            clock.clone(),
        ));
        let codes = Arc::new(Codes::new(
            store.clone(),
            runtime.digester(Purpose::AuthorizationCodeDigest),
            runtime.sealer(Purpose::GrantSealing),
            config.authorization_code_ttl,
            clock.clone(),
        ));
        let refresh = Arc::new(RefreshTokens::new(
            store.clone(),
            runtime.digester(Purpose::RefreshTokenDigest),
            runtime.sealer(Purpose::RefreshTokenSealing),
            RefreshSettings {
                token_ttl: chrono::Duration::seconds(config.refresh_token_ttl as i64),
                family_ttl: chrono::Duration::seconds(config.refresh_family_ttl as i64),
                reuse_grace: chrono::Duration::seconds(config.refresh_reuse_grace as i64),
            },
            clock.clone(),
        ));
        let flow = AuthorizationFlow {
            clients: clients.clone(),
            requests: runtime.sealer(Purpose::PendingRequestSealing),
            sessions: Sessions::new(
                store.clone(),
                runtime.digester(Purpose::SessionCookieDigest),
                runtime.digester(Purpose::CsrfToken),
                clock.clone(),
            ),
            authenticator: Authenticator::new(
                store.clone(),
                runtime.secrets.peppers.clone(),
                config.password_checks,
                clock.clone(),
            )
            .await
            .map_err(StartupError::SignIn)?,
            codes: codes.clone(),
            store: store.clone(),
            clock: clock.clone(),
            issuer: issuer.clone(),
        };
        let rate_limits = Arc::new(crate::limits::buckets::RateLimits::new(&config.rate_limits));
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let bearer = Arc::new(BearerTokens {
            store: store.clone(),
            clients: clients.clone(),
            keys: keys.clone(),
            issuer: issuer.clone(),
            clock: clock.clone(),
            metrics: metrics.clone(),
        });
        let state = web::Data::new(AppState {
            token_endpoint: TokenEndpoint {
                clients,
                client_secrets: runtime.client_secret_digester(),
                tokens,
                codes,
                refresh,
                store: store.clone(),
                limits: rate_limits.clone(),
                metrics: metrics.clone(),
                bearer: bearer.clone(),
            },
            userinfo: UserInfo { bearer },
            keys,
            master_keys: runtime.secrets.master_keys.clone(),
            peppers: runtime.secrets.peppers.clone(),
            store: store.clone(),
            metadata: ArcSwap::from_pointee(metadata),
            flow,
            pages,
            rate_limits: rate_limits.clone(),
            client_ip: config.client_ip(),
            draining: std::sync::atomic::AtomicBool::new(false),
            metrics,
        });
        let housekeeping = tokio::spawn(crate::housekeeping::run(store.clone(), clock.clone()));
        let key_schedule = tokio::spawn(run_key_schedule(
            state.keys.clone(),
            clock.clone(),
            config.key_check_interval,
        ));
        // Rate-limit state of addresses that went quiet is dropped every minute.
        let limits_gc = {
            let limits = rate_limits.clone();
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(std::time::Duration::from_secs(60));
                loop {
                    ticker.tick().await;
                    limits.forget_idle();
                }
            })
        };
        let replica = crate::secrets::replica_name();
        let announcer = tokio::spawn(crate::secrets::announce_keys(
            store.clone(),
            runtime.secrets.master_keys.clone(),
            replica.clone(),
            clock.clone(),
        ));
        let refresher = tokio::spawn(refresh_caches(
            state.clone(),
            issuer.clone(),
            epochs,
            config.cache_refresh,
        ));
        let https = issuer.starts_with("https://");
        let gate = AcceptGate::new(&listener).map_err(|source| StartupError::Bind {
            address: address.to_string(),
            source,
        })?;
        let server = serve(
            listener,
            state.clone(),
            config.workers,
            https,
            config.shutdown_timeout,
        )
        .map_err(|source| StartupError::Bind {
            address: address.to_string(),
            source,
        })?;
        let metrics_server = match config.metrics_bind {
            None => None,
            Some(bind) => {
                let listener = TcpListener::bind(bind).map_err(|source| StartupError::Bind {
                    address: bind.to_string(),
                    source,
                })?;
                let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
                let metrics_state = state.clone();
                let server = HttpServer::new(move || {
                    App::new().app_data(metrics_state.clone()).service(
                        web::resource("/metrics").route(web::get().to(http::metrics::metrics)),
                    )
                })
                .workers(1)
                .disable_signals()
                .listen(listener)
                .map_err(|source| StartupError::Bind {
                    address: bind.to_string(),
                    source,
                })?
                .run();
                tracing::info!(address = %bind, "metrics on /metrics");
                Some((server, port))
            }
        };
        tracing::info!(%address, %issuer, backend = ?store.backend(), "authd is listening");
        Ok(Self {
            port: address.port(),
            issuer,
            server,
            gate: Some(gate),
            state,
            refresher,
            housekeeping,
            key_schedule,
            announcer,
            replica,
            limits_gc,
            metrics_server,
        })
    }

    /// The port `/metrics` listens on, when it is served.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_server.as_ref().map(|(_, port)| *port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Serves until the server is stopped (SIGINT/SIGTERM or a handle).
    pub async fn run_until_stopped(mut self) -> std::io::Result<()> {
        // Only the signal path closes through the gate (it has taken it).
        drop(self.gate.take());
        let metrics = self.metrics_server.map(|(server, _)| {
            let handle = server.handle();
            tokio::spawn(server);
            handle
        });
        let result = self.server.await;
        if let Some(metrics) = metrics {
            metrics.stop(false).await;
        }
        self.refresher.abort();
        self.housekeeping.abort();
        self.key_schedule.abort();
        self.announcer.abort();
        self.limits_gc.abort();
        // A replica that stops says so, so a rotation need not wait for
        // its record to age out.
        if let Err(error) = self
            .state
            .store
            .forget_master_key_holder(&self.replica)
            .await
        {
            tracing::warn!(%error, "cannot remove this replica's master-key record");
        }
        self.state.store.close().await;
        result
    }

    /// Serves until SIGTERM or SIGINT, then shuts down gracefully: `/readyz`
    /// answers 503 at once, requests are still served for the drain delay
    /// (load balancers notice and stop sending), then the listener closes,
    /// in-flight requests get up to `AUTHD_SHUTDOWN_TIMEOUT`, the pool
    /// closes. Returns when all is done (the binary exits 0).
    pub async fn run_until_signalled(mut self, drain: std::time::Duration) -> std::io::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let handle = self.server.handle();
        let gate = self.gate.take();
        let state = self.state.clone();
        let replica = self.replica.clone();
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let watcher = tokio::spawn(async move {
            let name = tokio::select! {
                _ = terminate.recv() => "SIGTERM",
                _ = interrupt.recv() => "SIGINT",
            };
            state
                .draining
                .store(true, std::sync::atomic::Ordering::SeqCst);
            tracing::info!(
                signal = name,
                drain_ms = drain.as_millis() as u64,
                "shutting down: /readyz answers 503; still serving for the drain delay"
            );
            tokio::time::sleep(drain).await;
            // While the workers (and their database connections) still
            // run: a rotation need not wait for this record to age out.
            if let Err(error) = state.store.forget_master_key_holder(&replica).await {
                tracing::warn!(%error, "cannot remove this replica's master-key record");
            }
            // New connections are refused before the listener closes, so
            // no connection the kernel already completed is reset.
            if let Some(gate) = gate {
                let closing = gate.close().await;
                tracing::info!(
                    filtered = closing.filtered,
                    queued = closing.queued_at_start,
                    waited_ms = closing.waited.as_millis() as u64,
                    "no longer accepting connections; finishing in-flight requests"
                );
                // Our handle first: the socket then closes when actix
                // drops its own, and later SYNs are refused, not dropped.
                drop(gate);
            }
            handle.stop(true).await;
        });
        let result = self.run_until_stopped().await;
        // Stopped some other way (a handle): the watcher, and the gate's
        // handle on the socket with it, must not outlive the server.
        watcher.abort();
        result?;
        tracing::info!("stopped");
        Ok(())
    }

    /// A handle that can stop the server (tests restart apps with it).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }
}

fn metadata_document(issuer: &str, clients: &ClientRegistry) -> Bytes {
    serde_json::to_vec(&ServerMetadata::build(issuer, clients.known_scopes()))
        .expect("metadata serialises")
        .into()
}

/// `nosniff` everywhere; `no-store` unless the handler chose caching;
/// HSTS when the issuer is https (RFC 6797; no includeSubDomains: the
/// operator's other hosts are not authd's to decide).
fn security_headers(https: bool) -> middleware::DefaultHeaders {
    let headers = middleware::DefaultHeaders::new()
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::CACHE_CONTROL, "no-store"));
    if https {
        headers.add((header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"))
    } else {
        headers
    }
}

fn serve(
    listener: TcpListener,
    state: web::Data<AppState>,
    workers: usize,
    https: bool,
    shutdown_timeout: std::time::Duration,
) -> std::io::Result<Server> {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            // Per-IP rate limits (innermost: refusals get the headers below).
            .wrap_fn(|request, service| {
                let call = match http::rate_limit::admit(&request) {
                    Ok(decision) => Ok((service.call(request), decision)),
                    Err(refusal) => Err(request.into_response(*refusal).map_into_right_body()),
                };
                async move {
                    match call {
                        Ok((response, decision)) => {
                            let mut response = response.await?;
                            if let Some(decision) = decision {
                                http::rate_limit::add_headers(response.headers_mut(), &decision);
                            }
                            Ok(response.map_into_left_body())
                        }
                        Err(refusal) => Ok(refusal),
                    }
                }
            })
            // Preflights are answered before routing, after taking from
            // the same per-IP buckets as any request (an OPTIONS flood is
            // limited too; a refused preflight is a 429 without CORS
            // headers, which a browser treats as a failed preflight);
            // other responses of the CORS routes get their headers on the
            // way out.
            .wrap_fn(|request, service| {
                let answer = match http::cors::preflight(&request) {
                    Some(mut preflight) => {
                        let response = match http::rate_limit::admit(&request) {
                            Ok(decision) => {
                                if let Some(decision) = decision {
                                    http::rate_limit::add_headers(
                                        preflight.headers_mut(),
                                        &decision,
                                    );
                                }
                                preflight
                            }
                            Err(refusal) => *refusal,
                        };
                        Err(request.into_response(response).map_into_right_body())
                    }
                    None => Ok((http::cors::pending(&request), service.call(request))),
                };
                async move {
                    match answer {
                        Ok((pending, response)) => {
                            let mut response = response.await?;
                            if let Some(pending) = pending {
                                http::cors::decorate(pending, &mut response);
                            }
                            Ok(response.map_into_left_body())
                        }
                        Err(preflight) => Ok(preflight),
                    }
                }
            })
            // Every response (handlers set their own Cache-Control where
            // something may be cached).
            .wrap(security_headers(https))
            // Every response names its request id (X-Request-Id); error
            // bodies carry it too.
            // Duration by route pattern (bounded label values), method and
            // status; 429s also count as rate-limit hits.
            .wrap_fn(|request, service| {
                let started = std::time::Instant::now();
                let response = service.call(request);
                async move {
                    let response = response.await?;
                    let route = response
                        .request()
                        .match_pattern()
                        .unwrap_or_else(|| "unmatched".to_owned());
                    let status = response.status();
                    if let Some(state) = response.request().app_data::<web::Data<AppState>>() {
                        let metrics = &state.metrics;
                        metrics
                            .http_duration
                            .with_label_values(&[
                                route.as_str(),
                                response.request().method().as_str(),
                                status.as_str(),
                            ])
                            .observe(started.elapsed().as_secs_f64());
                        if status == actix_web::http::StatusCode::TOO_MANY_REQUESTS {
                            metrics
                                .rate_limit_hits
                                .with_label_values(&[route.as_str()])
                                .inc();
                        }
                    }
                    Ok(response)
                }
            })
            .wrap_fn(|request, service| {
                let request_id = request.extensions().get::<RequestId>().copied();
                // While draining for shutdown, keep-alive connections are
                // retired after their current response, so no client writes
                // a next request on a connection the server is closing.
                let draining = request
                    .app_data::<web::Data<AppState>>()
                    .is_some_and(|s| s.draining.load(std::sync::atomic::Ordering::SeqCst));
                let response = service.call(request);
                async move {
                    let mut response = response.await?;
                    if draining {
                        response
                            .response_mut()
                            .head_mut()
                            .set_connection_type(actix_web::http::ConnectionType::Close);
                    }
                    if let Some(value) =
                        request_id.and_then(|id| HeaderValue::from_str(&id.to_string()).ok())
                    {
                        response
                            .headers_mut()
                            .insert(header::HeaderName::from_static("x-request-id"), value);
                    }
                    Ok(response)
                }
            })
            .wrap(TracingLogger::<crate::telemetry::RequestLog>::new())
            .configure(http::routes)
    })
    .workers(workers)
    // Slow clients: the request head must arrive within 5 s (else 408),
    // idle keep-alive connections close after 15 s. Header size is
    // bounded by actix-http (at most 96 headers; an oversized head is
    // refused with 431 before any handler runs); bodies by each endpoint.
    .client_request_timeout(std::time::Duration::from_secs(5))
    .client_disconnect_timeout(std::time::Duration::from_secs(1))
    .keep_alive(std::time::Duration::from_secs(15))
    // Signals are authd's (see `run_until_signalled`): readiness must turn
    // before the listener closes.
    .disable_signals()
    .shutdown_timeout((shutdown_timeout.as_secs_f64().ceil() as u64).max(1))
    .listen(listener)?
    .run();
    Ok(server)
}

/// Every replica runs the key schedule on a timer; the database's lock
/// makes each transition happen once across replicas.
async fn run_key_schedule(keys: Arc<Keys>, clock: Arc<dyn Clock>, every: std::time::Duration) {
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
async fn refresh_caches(
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
                    state
                        .metadata
                        .store(Arc::new(metadata_document(&issuer, clients)));
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
