//! Server metadata (RFC 8414 §2, OpenID Connect Discovery 1.0 §3), built from
//! the configuration and from what is implemented, never from wishes.
use std::collections::BTreeSet;

use serde::Serialize;

use super::authorize::OIDC_SCOPES;
use super::token::{AUTH_METHODS, SUPPORTED_GRANTS};
use crate::tokens::keyring::ALG;

#[derive(Debug, Serialize)]
pub struct ServerMetadata {
    /// Byte-equal to `AUTHD_ISSUER` (RFC 8414 §3.3).
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub userinfo_endpoint: String,
    pub end_session_endpoint: String,
    pub revocation_endpoint: String,
    pub introspection_endpoint: String,
    pub jwks_uri: String,
    pub grant_types_supported: Vec<&'static str>,
    pub token_endpoint_auth_methods_supported: Vec<&'static str>,
    /// RFC 8414 §2: a public client may revoke its own tokens with its id.
    pub revocation_endpoint_auth_methods_supported: Vec<&'static str>,
    /// Introspection needs a client secret (RFC 7662 §2.1).
    pub introspection_endpoint_auth_methods_supported: Vec<&'static str>,
    /// The OIDC scopes (and `groups`, `offline_access`) and every scope an
    /// API defines.
    pub scopes_supported: Vec<String>,
    pub response_types_supported: Vec<&'static str>,
    pub response_modes_supported: Vec<&'static str>,
    pub subject_types_supported: Vec<&'static str>,
    pub id_token_signing_alg_values_supported: Vec<&'static str>,
    pub code_challenge_methods_supported: Vec<&'static str>,
    pub claims_supported: Vec<&'static str>,
    pub prompt_values_supported: Vec<&'static str>,
    /// RFC 9207 §3: every authorization response carries `iss`.
    pub authorization_response_iss_parameter_supported: bool,
    /// OIDC Discovery §3 defaults `request_uri_parameter_supported` to
    /// true; say plainly that neither request objects nor URIs are taken.
    pub request_parameter_supported: bool,
    pub request_uri_parameter_supported: bool,
    /// RFC 8707 `resource` at /authorize and /token. No registered metadata
    /// name says so (RFC 8414 §2 lets servers add members, and clients
    /// ignore what they do not know); this one is plain about it.
    pub resource_indicators_supported: bool,
    /// RFC 7591 §3, with `AUTHD_REGISTRATION` token or open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
}

/// An endpoint URL under the issuer.
pub fn endpoint(issuer: &str, path: &str) -> String {
    format!("{}{path}", issuer.trim_end_matches('/'))
}

impl ServerMetadata {
    pub fn build(issuer: &str, scopes: BTreeSet<String>, registration: bool) -> Self {
        Self {
            issuer: issuer.to_owned(),
            authorization_endpoint: endpoint(issuer, "/authorize"),
            token_endpoint: endpoint(issuer, "/token"),
            userinfo_endpoint: endpoint(issuer, "/userinfo"),
            end_session_endpoint: endpoint(issuer, "/logout"),
            revocation_endpoint: endpoint(issuer, "/revoke"),
            introspection_endpoint: endpoint(issuer, "/introspect"),
            jwks_uri: endpoint(issuer, "/.well-known/jwks.json"),
            grant_types_supported: SUPPORTED_GRANTS.iter().map(|g| g.as_str()).collect(),
            token_endpoint_auth_methods_supported: AUTH_METHODS.to_vec(),
            revocation_endpoint_auth_methods_supported: AUTH_METHODS.to_vec(),
            introspection_endpoint_auth_methods_supported: vec![
                "client_secret_basic",
                "client_secret_post",
            ],
            scopes_supported: scopes
                .into_iter()
                .chain(OIDC_SCOPES.map(str::to_owned))
                .chain(["offline_access".to_owned()])
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            response_types_supported: vec!["code"],
            response_modes_supported: vec!["query"],
            subject_types_supported: vec!["public"],
            id_token_signing_alg_values_supported: vec![ALG],
            // RFC 7636 §4.2: only S256; `plain` is never accepted.
            code_challenge_methods_supported: vec!["S256"],
            claims_supported: vec![
                "iss",
                "sub",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "at_hash",
                "azp",
                "name",
                "preferred_username",
                "email",
                "email_verified",
                "groups",
            ],
            prompt_values_supported: vec!["none", "login", "consent"],
            authorization_response_iss_parameter_supported: true,
            request_parameter_supported: false,
            request_uri_parameter_supported: false,
            resource_indicators_supported: true,
            registration_endpoint: registration.then(|| endpoint(issuer, "/register")),
        }
    }
}
