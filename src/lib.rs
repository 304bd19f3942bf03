//! authd: an OAuth 2.0 / OpenID Connect authorization server.
//!
//! Layers, outermost first (ARCHITECTURE.md): `http`/`cli` → `signin` →
//! `oauth` → `clients`, `users`, `tokens` → `limits`, `store` → `domain`;
//! `crypto` and `clock` are used by all and use nothing.
pub mod access;
pub mod audit;
pub mod cli;
pub mod clients;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod housekeeping;
pub mod http;
pub mod idempotency;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod oauth;
pub mod secrets;
pub mod signin;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tokens;
pub mod users;
