//! Builds the application once, for the binary and the tests alike:
//! `Runtime` (database, migrations, master keys; shared with the CLI) and
//! `Application` (state, routes, background tasks). `server.rs` wires the
//! HTTP server and its middleware; `tasks.rs` holds the background tasks.
//! Wires everything together; used only by `main.rs`, `cli` and the tests.
mod server;
mod tasks;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use arc_swap::ArcSwap;
use bytes::Bytes;

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
use crate::store::{self, PoolSettings, Store};
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
    #[error("AUTHD_ADMIN_BIND: the admin API needs the built-in API urn:authd:admin: {0}")]
    AdminApi(String),
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
            // Only with the issuer named: a CLI command without
            // AUTHD_ISSUER cannot know the `aud` those clients' tokens
            // carried, and leaves the seed to the server's start.
            if let Some(issuer) = &config.issuer {
                seed_legacy_api(store.as_ref(), issuer, clock).await?;
            }
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

/// Once per database, after the migration that added APIs: the scopes
/// clients registered before become one API named by the issuer, open to
/// any user (`any`), so that their tokens keep their scope and `aud`.
/// A no-op after its first run (`pending_seeds`), so every start calls it.
async fn seed_legacy_api(
    store: &dyn store::Store,
    issuer: &str,
    clock: &dyn Clock,
) -> Result<(), StartupError> {
    let seeded = store
        .seed_legacy_api(store::LegacyApiSeed {
            identifier: issuer,
            name: "Default API",
            identity_scopes: &crate::domain::scope::IDENTITY_SCOPES,
            describe: crate::domain::api::default_scope_description,
            ttl: crate::domain::api::DEFAULT_ACCESS_TOKEN_TTL,
            now: clock.now(),
        })
        .await?;
    if let Some(api) = seeded {
        tracing::info!(
            identifier = %api.identifier,
            scopes = api.scopes.len(),
            "clients' scopes now belong to the API named by the issuer (user access: any)"
        );
        crate::audit::record(crate::audit::Event::AccessChanged {
            change: "api_created",
            target: api.identifier.as_str(),
            user_id: None,
        });
    }
    Ok(())
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
    limits_watch: tokio::task::JoinHandle<()>,
    /// The `/metrics` server and its port, when `AUTHD_METRICS_BIND` is set.
    metrics_server: Option<(Server, u16)>,
    /// The admin API's server and its port, when `AUTHD_ADMIN_BIND` is set.
    admin_server: Option<(Server, u16)>,
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
        // The issuer is known for certain now (the bound port resolved).
        seed_legacy_api(store.as_ref(), &issuer, clock.as_ref()).await?;
        // The built-in API that admin tokens are issued for: made when the
        // admin API is served (or by `authd admin bootstrap`), so that a
        // deployment without it has no such API.
        if config.admin_bind.is_some() {
            crate::access::apis::ensure_admin_api(store.as_ref(), clock.as_ref())
                .await
                .map_err(|error| StartupError::AdminApi(error.to_string()))?;
        }
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
        let metadata = metadata_document(&issuer, &clients, config.registration.mode);
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
        let rate_limits = Arc::new(crate::limits::limiter::Limits::new(
            &config.rate_limits,
            config.redis.as_ref(),
            runtime.digester(Purpose::AuditUsername),
        ));
        rate_limits.connect().await;
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
                rate_limits.clone(),
                clock.clone(),
            )
            .await
            .map_err(StartupError::SignIn)?,
            codes: codes.clone(),
            store: store.clone(),
            clock: clock.clone(),
            issuer: issuer.clone(),
        };
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
            userinfo: UserInfo {
                bearer,
                store: store.clone(),
            },
            keys,
            master_keys: runtime.secrets.master_keys.clone(),
            peppers: runtime.secrets.peppers.clone(),
            store: store.clone(),
            metadata: ArcSwap::from_pointee(metadata),
            flow,
            pages,
            rate_limits: rate_limits.clone(),
            client_ip: config.client_ip(),
            registration: config.registration.clone(),
            registration_tokens: runtime.digester(Purpose::RegistrationTokenDigest),
            draining: std::sync::atomic::AtomicBool::new(false),
            metrics,
            idempotency: Arc::new(crate::idempotency::Idempotency::new(
                store.clone(),
                runtime.sealer(Purpose::IdempotentResponseSealing),
                clock.clone(),
            )),
            clock: clock.clone(),
        });
        // Openly registered clients are removed when unused even after
        // registration is turned off (they registered under its rules).
        let housekeeping = tokio::spawn(crate::housekeeping::run(
            store.clone(),
            clock.clone(),
            config.registration.unused_ttl,
        ));
        let key_schedule = tokio::spawn(tasks::run_key_schedule(
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
        // With Redis: connects, falls back and returns, and keeps the
        // fallback share equal to the replicas the heartbeat table lists.
        let limits_watch = {
            let store = store.clone();
            let clock = clock.clone();
            tokio::spawn(rate_limits.clone().watch(move || {
                let store = store.clone();
                let since = clock.now()
                    - chrono::Duration::from_std(crate::secrets::HOLDER_LIVENESS)
                        .expect("a short duration");
                async move {
                    let holders = store.master_key_holders(since).await.ok()?;
                    Some(u32::try_from(holders.len()).unwrap_or(u32::MAX))
                }
            }))
        };
        let replica = crate::secrets::replica_name();
        let announcer = tokio::spawn(crate::secrets::announce_keys(
            store.clone(),
            runtime.secrets.master_keys.clone(),
            replica.clone(),
            clock.clone(),
        ));
        let refresher = tokio::spawn(tasks::refresh_caches(
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
        let server = server::serve(
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
        let admin_server = match config.admin_bind {
            None => None,
            Some(bind) => {
                let listener = TcpListener::bind(bind).map_err(|source| StartupError::Bind {
                    address: bind.to_string(),
                    source,
                })?;
                let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
                let server =
                    server::serve_admin(listener, state.clone(), https).map_err(|source| {
                        StartupError::Bind {
                            address: bind.to_string(),
                            source,
                        }
                    })?;
                tracing::info!(address = %bind, port, "admin API on /admin/v1");
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
            limits_watch,
            metrics_server,
            admin_server,
        })
    }

    /// The port the admin API listens on, when it is served.
    pub fn admin_port(&self) -> Option<u16> {
        self.admin_server.as_ref().map(|(_, port)| *port)
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
        let admin = self.admin_server.map(|(server, _)| {
            let handle = server.handle();
            tokio::spawn(server);
            handle
        });
        let result = self.server.await;
        if let Some(metrics) = metrics {
            metrics.stop(false).await;
        }
        if let Some(admin) = admin {
            admin.stop(true).await;
        }
        self.refresher.abort();
        self.housekeeping.abort();
        self.key_schedule.abort();
        self.announcer.abort();
        self.limits_gc.abort();
        self.limits_watch.abort();
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

pub(super) fn metadata_document(
    issuer: &str,
    clients: &ClientRegistry,
    registration: crate::clients::dynamic::RegistrationMode,
) -> Bytes {
    let registration = registration != crate::clients::dynamic::RegistrationMode::Off;
    serde_json::to_vec(&ServerMetadata::build(
        issuer,
        clients.known_scopes(),
        registration,
    ))
    .expect("metadata serialises")
    .into()
}
