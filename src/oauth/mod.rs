//! OAuth 2.0 logic: client authentication, the token endpoint and its grants,
//! client registration, server metadata. Knows nothing of HTTP frameworks.
//! Uses tokens, store, crypto and domain.
pub mod authorization;
pub mod authorize;
pub mod bearer;
pub mod client_auth;
pub mod client_registry;
pub mod codes;
pub mod error;
pub mod grants;
pub mod housekeeping;
pub mod introspection;
pub mod login;
pub mod logout;
pub mod metadata;
pub mod params;
pub mod rate_limit;
pub mod refresh;
pub mod registration;
pub mod revocation;
pub mod session;
pub mod token;
pub mod userinfo;

pub use client_registry::ClientRegistry;
pub use error::Error;
pub use params::Params;
