//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0 §2–§3): the
//! checks on `id_token_hint`, `client_id`, `post_logout_redirect_uri` and
//! `state`. Where to send the browser afterwards is decided here; ending
//! the session is the caller's.
use std::borrow::Cow;
use std::sync::Arc;

use super::Params;
use super::authorize::response_location;
use crate::clients::ClientRegistry;
use crate::domain::{Client, ClientId, VerifiedRedirect};
use crate::tokens::Keys;
use crate::tokens::verify::verify_id_token_hint;

/// A checked logout request.
#[derive(Debug)]
pub struct LogoutRequest {
    pub client: Option<Arc<Client>>,
    /// A registered post-logout redirect URI, if one was asked for.
    pub redirect: Option<VerifiedRedirect>,
    pub state: Option<String>,
    /// `sub` of a valid `id_token_hint`: the RP vouches for this sign-out.
    pub hinted_subject: Option<String>,
}

impl LogoutRequest {
    /// Where the browser goes once signed out: the redirect URI with
    /// `state` (§3), or `None` for authd's own signed-out page.
    pub fn location(&self) -> Option<String> {
        let redirect = self.redirect.as_ref()?;
        let pairs: Vec<(&str, &str)> = self.state.iter().map(|s| ("state", s.as_str())).collect();
        Some(if pairs.is_empty() {
            redirect.uri.clone()
        } else {
            response_location(redirect, &pairs)
        })
    }
}

fn refuse(message: &'static str) -> Cow<'static, str> {
    message.into()
}

/// Checks the parameters. An error is shown to the user; authd never
/// redirects to an unverified URI.
pub async fn check(
    clients: &ClientRegistry,
    keys: &Keys,
    issuer: &str,
    params: &Params,
) -> Result<LogoutRequest, Cow<'static, str>> {
    let hint = match params.get("id_token_hint") {
        Some(token) => Some(verify_id_token_hint(keys, issuer, token).map_err(|reason| {
            tracing::info!(%reason, "logout: id_token_hint refused");
            refuse("The sign-out request carries a sign-in token this server did not issue.")
        })?),
        None => None,
    };
    let client_id = match (
        params.get("client_id"),
        hint.as_ref().map(|h| h.aud.as_str()),
    ) {
        (Some(a), Some(b)) if a != b => {
            return Err(refuse(
                "The sign-out request names two different applications.",
            ));
        }
        (Some(id), _) | (None, Some(id)) => Some(id),
        (None, None) => None,
    };
    let client = match client_id {
        Some(id) => {
            let id =
                ClientId::parse(id).ok_or_else(|| refuse("The application is not registered."))?;
            Some(
                clients
                    .find(&id)
                    .await
                    .map_err(|_| refuse("The server could not look up the application."))?
                    .ok_or_else(|| refuse("The application is not registered."))?,
            )
        }
        None => None,
    };
    // A dynamically registered client's address is its own claim (RFC 9700
    // §4.11.2): without an ID token it was issued, nothing shows the
    // request is its own (OIDC RP-Initiated Logout §3), so the person is
    // signed out and stays on authd's page. (Decided before the address
    // is looked at: the answer says nothing about what is registered.)
    let unvouched_dynamic =
        client.as_ref().is_some_and(|c| !c.operator_vouched()) && hint.is_none();
    let redirect = match params.get("post_logout_redirect_uri") {
        None => None,
        Some(_) if unvouched_dynamic => None,
        Some(uri) => {
            let client = client.as_ref().ok_or_else(|| {
                refuse("The sign-out request does not say which application it comes from.")
            })?;
            let registered = client
                .post_logout_redirect_uris
                .iter()
                .any(|registered| registered.matches(uri));
            if !registered {
                return Err(refuse(
                    "The application asked to send you to an address it has not registered.",
                ));
            }
            Some(VerifiedRedirect {
                uri: uri.to_owned(),
                explicit: true,
            })
        }
    };
    Ok(LogoutRequest {
        client,
        redirect,
        state: params
            .get("state")
            .filter(|s| s.len() <= super::authorize::MAX_STATE_LEN)
            .map(str::to_owned),
        hinted_subject: hint.map(|h| h.sub),
    })
}
