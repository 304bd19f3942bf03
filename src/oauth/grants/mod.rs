//! A module per grant type, each a list of named steps.
pub mod authorization_code;
pub mod client_credentials;
pub mod refresh_token;
