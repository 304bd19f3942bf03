//! OAuth 2.0 logic: client authentication, the token endpoint and its grants,
//! client registration, server metadata. Knows nothing of HTTP frameworks.
//! Uses tokens, store, crypto and domain.
pub mod client_auth;
pub mod client_registry;
pub mod error;
pub mod grants;
pub mod metadata;
pub mod params;
pub mod registration;
pub mod token;

pub use client_registry::ClientRegistry;
pub use error::Error;
pub use params::Params;
