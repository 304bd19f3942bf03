//! The OAuth 2.0 / OpenID Connect protocol: who may get which scope for
//! which API (`access.rs`), the token endpoint and its
//! grants, client authentication, /authorize request validation, codes,
//! refresh-token families, revocation, introspection, userinfo, logout
//! checks, metadata, parameters and errors. Knows nothing of HTTP
//! frameworks or of the person signing in (that is `signin`). Uses
//! clients, limits, tokens, store, crypto, domain, audit, metrics.
pub mod access;
pub mod authorize;
pub mod bearer;
pub mod client_auth;
pub mod codes;
pub mod error;
pub mod grants;
pub mod introspection;
pub mod logout;
pub mod metadata;
pub mod params;
pub mod refresh;
pub mod revocation;
pub mod token;
pub mod userinfo;

pub use error::Error;
pub use params::Params;
