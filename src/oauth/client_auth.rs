//! Client authentication at the token endpoint (RFC 6749 §2.3.1):
//! `client_secret_basic` and `client_secret_post`, or a bare `client_id` for
//! public clients.
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};

use super::{Error, Params};
use crate::clients::ClientRegistry;
use crate::crypto::Digester;
use crate::domain::{Client, ClientId, ClientKind};

/// How a request says who the client is. The secret is redacted in `Debug`.
#[derive(Debug)]
pub enum ClientCredentials {
    /// `Authorization: Basic` (client_secret_basic).
    Basic { id: String, secret: SecretString },
    /// `client_id` and `client_secret` in the body (client_secret_post).
    Post { id: String, secret: SecretString },
    /// A `client_id` alone: only a public client may do this.
    IdOnly { id: String },
}

impl ClientCredentials {
    /// The client id the request names (not yet authenticated).
    pub fn client_id(&self) -> &str {
        match self {
            ClientCredentials::Basic { id, .. }
            | ClientCredentials::Post { id, .. }
            | ClientCredentials::IdOnly { id } => id,
        }
    }

    /// Reads the credentials from the `Authorization` header (raw bytes,
    /// if present) and the body parameters. RFC 6749 §2.3: "The client MUST
    /// NOT use more than one authentication method in each request."
    pub fn from_request(authorization: Option<&[u8]>, params: &Params) -> Result<Self, Error> {
        match authorization {
            Some(header) => {
                let (id, secret) = parse_basic(header)?;
                if params.contains("client_secret") {
                    return Err(Error::InvalidRequest(
                        "use one client authentication method: Basic or client_secret, not both"
                            .into(),
                    ));
                }
                if params.get("client_id").is_some_and(|body_id| body_id != id) {
                    return Err(Error::InvalidRequest(
                        "client_id in the body differs from the Basic credentials".into(),
                    ));
                }
                Ok(ClientCredentials::Basic { id, secret })
            }
            None => match (params.get("client_id"), params.get("client_secret")) {
                (Some(id), Some(secret)) => Ok(ClientCredentials::Post {
                    id: id.to_owned(),
                    secret: SecretString::from(secret),
                }),
                (Some(id), None) => Ok(ClientCredentials::IdOnly { id: id.to_owned() }),
                (None, Some(_)) => Err(Error::InvalidClient(
                    "client_secret was sent without client_id".into(),
                )),
                (None, None) => Err(Error::InvalidClient(
                    "client authentication required".into(),
                )),
            },
        }
    }
}

fn malformed_basic() -> Error {
    Error::InvalidClient("malformed Basic credentials".into())
}

/// RFC 7617 Basic, with id and secret each form-urlencoded first
/// (RFC 6749 §2.3.1 and Appendix B). Every malformation is `invalid_client`.
fn parse_basic(header: &[u8]) -> Result<(String, SecretString), Error> {
    let header = std::str::from_utf8(header).map_err(|_| malformed_basic())?;
    let (scheme, encoded) = header.trim().split_once(' ').ok_or_else(malformed_basic)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(Error::InvalidClient(
            "only the Basic authentication scheme is supported here".into(),
        ));
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .map_err(|_| malformed_basic())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed_basic())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed_basic)?;
    let id = form_decode(id).ok_or_else(malformed_basic)?;
    // An empty client id names no client (found by the basic_auth fuzz
    // target; it failed later anyway, now it fails here).
    if id.is_empty() {
        return Err(malformed_basic());
    }
    Ok((
        id,
        SecretString::from(form_decode(secret).ok_or_else(malformed_basic)?),
    ))
}

/// `application/x-www-form-urlencoded` decoding of one value; `None` when
/// the result is not UTF-8.
fn form_decode(value: &str) -> Option<String> {
    let plus_as_space = value.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8()
        .ok()
        .map(|decoded| decoded.into_owned())
}

fn failed() -> Error {
    // One message for unknown client and wrong secret: no oracle.
    Error::InvalidClient("client authentication failed".into())
}

/// Checks the credentials against the registered client.
#[tracing::instrument(level = "debug", name = "oauth.client_auth", skip_all)]
pub async fn authenticate(
    registry: &ClientRegistry,
    digester: &Digester,
    credentials: &ClientCredentials,
) -> Result<Arc<Client>, Error> {
    let (id, secret) = match credentials {
        ClientCredentials::Basic { id, secret } | ClientCredentials::Post { id, secret } => {
            (id, Some(secret))
        }
        ClientCredentials::IdOnly { id } => (id, None),
    };
    let client = match ClientId::parse(id) {
        Some(id) => registry.find(&id).await.map_err(Error::internal)?,
        None => None,
    };
    match (client, secret) {
        (Some(client), Some(secret)) => {
            let verified = client.secret.as_ref().is_some_and(|stored| {
                stored.key_version == digester.version()
                    && digester.verify(secret.expose_secret().as_bytes(), &stored.digest)
            });
            if verified { Ok(client) } else { Err(failed()) }
        }
        (Some(client), None) if client.kind == ClientKind::Public => Ok(client),
        (Some(_), None) => Err(Error::InvalidClient(
            "client authentication required".into(),
        )),
        (None, secret) => {
            // Spend the same HMAC as a known client would.
            if let Some(secret) = secret {
                let _ = digester.digest(secret.expose_secret().as_bytes());
            }
            Err(failed())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(raw: &str) -> String {
        format!("Basic {}", STANDARD.encode(raw))
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let (id, secret) = parse_basic(basic("my%20client:p%3Ass+word").as_bytes()).unwrap();
        assert_eq!(id, "my client");
        assert_eq!(secret.expose_secret(), "p:ss word");
    }

    #[test]
    fn malformed_basic_is_invalid_client() {
        for header in [
            "Basic !!!notbase64".to_owned(),
            basic("no-colon"),
            format!("Basic {}", STANDARD.encode([0xff, 0xfe, b':', b'x'])),
            basic("id:%ff"),
            "Bearer abc".to_owned(),
            "Basic".to_owned(),
        ] {
            let error = parse_basic(header.as_bytes()).unwrap_err();
            assert_eq!(error.code(), "invalid_client", "{header}");
        }
    }

    #[test]
    fn debug_redacts_the_secret() {
        let credentials = ClientCredentials::Post {
            id: "c".into(),
            secret: SecretString::from("hunter2-very-secret"),
        };
        assert!(!format!("{credentials:?}").contains("hunter2"));
    }

    #[test]
    fn two_methods_at_once_is_invalid_request() {
        let params = Params::parse(b"client_secret=x").unwrap();
        let error =
            ClientCredentials::from_request(Some(basic("a:b").as_bytes()), &params).unwrap_err();
        assert_eq!(error.code(), "invalid_request");
    }
}
