//! Tokens: access-token claims (RFC 9068), JWT assembly and signing, the key
//! ring and its keys. Uses store, crypto and domain.
pub mod access_token;
pub mod keyring;
pub mod signer;
pub mod verify;

pub use access_token::{
    AccessTokenRequest, AuthorizationClaims, IdTokenRequest, IssueError, IssuedAccessToken,
    ProfileClaims, TokenIssuer,
};
pub use keyring::{KeyError, KeyRing, Keys};
pub use signer::SigningPool;
