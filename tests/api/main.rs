//! Integration tests: a real authd per test on a random port, over real
//! HTTP, on SQLite and on PostgreSQL (the same body runs on both).
mod authorization_code;
mod authorize;
mod browser;
mod cli;
mod client_credentials;
mod db_faults;
mod hardening;
mod helpers;
mod housekeeping;
mod input_limits;
mod keys;
mod logout;
mod logs;
mod master_key;
mod metrics;
mod rate_limits;
mod refresh;
mod resource_server;
mod revocation;
mod shutdown;
mod sign_in_state;
mod startup;
mod store_contract;
mod userinfo;
mod well_known;
