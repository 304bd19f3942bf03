//! Clients: the in-memory registry every endpoint reads, and registration
//! (create, list, show, delete, rotate a secret), the functions the CLI calls
//! and the admin API and dynamic registration will call. Uses limits (tier
//! names), store, crypto, domain, audit.
pub mod registration;
pub mod registry;

pub use registry::ClientRegistry;
