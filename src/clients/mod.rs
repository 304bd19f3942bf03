//! Clients: the in-memory registry every endpoint reads; registration
//! (create, list, show, delete, rotate a secret), the functions the CLI and
//! the admin API call; dynamic registration (RFC 7591/7592, `dynamic.rs`)
//! over the same functions, and its initial access tokens. Uses limits (tier
//! names), store, crypto, domain, audit.
pub mod dynamic;
pub mod registration;
pub mod registration_tokens;
pub mod registry;

pub use registry::ClientRegistry;
