//! People's accounts as an operator manages them: create, list, disable,
//! set a password; list and withdraw a user's consents. The CLI calls these
//! functions, and so will the admin API. Uses store, crypto (password
//! hashing), domain, clock, audit.
pub mod accounts;
pub mod consents;

pub use accounts::AccountError;
