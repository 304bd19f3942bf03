//! A module per grant type, each a list of named steps.
pub mod authorization_code;
pub mod client_credentials;
pub mod refresh_token;

use super::Error;
use crate::domain::{Client, GrantType};

/// Whether the client is registered for the grant (RFC 6749 §5.2
/// `unauthorized_client` otherwise): the first step of every grant.
pub fn ensure_allowed(client: &Client, grant: GrantType) -> Result<(), Error> {
    if client.allows_grant(grant) {
        Ok(())
    } else {
        Err(Error::UnauthorizedClient(
            format!("this client may not use the {} grant", grant.as_str()).into(),
        ))
    }
}
