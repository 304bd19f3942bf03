//! One file per grant type, each a list of named steps.
pub mod client_credentials;
