//! Domain types that can only be built valid. Pure: uses nothing of ours.
pub mod api;
pub mod client;
pub mod pkce;
pub mod redirect_uri;
pub mod scope;
pub mod signing_key;
pub mod user;

pub use api::{
    AccessName, Api, ApiCatalogue, ApiIdentifier, ApiName, ApiScope, Grantor, Group, Role,
    TokenClaim, UserAccess, UserAccessRights,
};
pub use client::{
    Client, ClientId, ClientKind, ClientMetadata, ClientName, DynamicRegistration, GrantType,
    RegisteredVia, SecretDigest, VerifiedRedirect,
};
pub use pkce::{CodeChallenge, CodeVerifier};
pub use redirect_uri::RedirectUri;
pub use scope::Scope;
pub use signing_key::{KeyState, Kid};
pub use user::{User, UserId, Username};
