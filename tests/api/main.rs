//! Integration tests: a real authd per test on a random port, over real
//! HTTP, on SQLite and on PostgreSQL (the same body runs on both).
mod cli;
mod client_credentials;
mod helpers;
mod logs;
mod startup;
mod store_contract;
mod well_known;
