//! Server metadata (RFC 8414 §2, OpenID Connect Discovery 1.0 §3), built from
//! the configuration and from what is implemented, never from wishes.
use std::collections::BTreeSet;

use serde::Serialize;

use super::token::{AUTH_METHODS, SUPPORTED_GRANTS};
use crate::tokens::keyring::ALG;

#[derive(Debug, Serialize)]
pub struct ServerMetadata {
    /// Byte-equal to `AUTHD_ISSUER` (RFC 8414 §3.3).
    pub issuer: String,
    pub jwks_uri: String,
    pub token_endpoint: String,
    pub grant_types_supported: Vec<&'static str>,
    pub token_endpoint_auth_methods_supported: Vec<&'static str>,
    /// Every scope some registered client may request.
    pub scopes_supported: Vec<String>,
    /// Empty until the authorization endpoint exists.
    pub response_types_supported: Vec<&'static str>,
    pub subject_types_supported: Vec<&'static str>,
    pub id_token_signing_alg_values_supported: Vec<&'static str>,
    pub code_challenge_methods_supported: Vec<&'static str>,
}

/// An endpoint URL under the issuer.
pub fn endpoint(issuer: &str, path: &str) -> String {
    format!("{}{path}", issuer.trim_end_matches('/'))
}

impl ServerMetadata {
    pub fn build(issuer: &str, scopes: BTreeSet<String>) -> Self {
        Self {
            issuer: issuer.to_owned(),
            jwks_uri: endpoint(issuer, "/.well-known/jwks.json"),
            token_endpoint: endpoint(issuer, "/token"),
            grant_types_supported: SUPPORTED_GRANTS.iter().map(|g| g.as_str()).collect(),
            token_endpoint_auth_methods_supported: AUTH_METHODS.to_vec(),
            scopes_supported: scopes.into_iter().collect(),
            response_types_supported: Vec::new(),
            subject_types_supported: vec!["public"],
            id_token_signing_alg_values_supported: vec![ALG],
            // RFC 7636 §4.2: only S256; `plain` is never accepted.
            code_challenge_methods_supported: vec!["S256"],
        }
    }
}
