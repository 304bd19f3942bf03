//! Consent decisions: whether the user must be asked before a client gets
//! a scope, and how the requested scopes are described to them.
use super::flow::AuthorizationFlow;
use super::step::ScopeView;
use crate::domain::{Client, ClientKind, Scope, UserId};
use crate::oauth::Error;
use crate::oauth::authorize::AuthorizationRequest;

impl AuthorizationFlow {
    /// Whether the user must be asked (again) before `client` gets `request`'s scope.
    pub(super) async fn consent_needed(
        &self,
        client: &Client,
        request: &AuthorizationRequest,
        user: UserId,
    ) -> Result<bool, Error> {
        if request.prompt.consent {
            return Ok(true);
        }
        // OIDC Core §11: offline access always needs the user's consent,
        // even for a pre-consented first-party client.
        let offline = request.scope().contains("offline_access");
        if client.skip_consent && client.kind == ClientKind::Confidential && !offline {
            return Ok(false);
        }
        // RFC 8252 §8.6: a public client's identity is only as good as its
        // redirect URI. Any local app can listen on a loopback port, so a
        // remembered consent is not enough there: ask every time.
        if client.kind == ClientKind::Public && !request.redirect.uri.starts_with("https://") {
            return Ok(true);
        }
        let granted: Option<Scope> = self
            .store
            .find_consent(user, &client.id)
            .await
            .map_err(Error::internal)?
            .and_then(|scope| scope.parse().ok());
        Ok(!granted.is_some_and(|granted| request.scope().is_subset(&granted)))
    }

    /// The user allowed `granted`: what they consented to before, and this
    /// (consents only grow, until withdrawn).
    pub(super) async fn record_consent(
        &self,
        user: UserId,
        client: &Client,
        granted: &Scope,
    ) -> Result<(), Error> {
        let earlier: Scope = self
            .store
            .find_consent(user, &client.id)
            .await
            .map_err(Error::internal)?
            .and_then(|s| s.parse().ok())
            .unwrap_or_default();
        self.store
            .save_consent(
                user,
                &client.id,
                &earlier.union(granted).to_string(),
                self.clock.now(),
            )
            .await
            .map_err(Error::internal)?;
        crate::audit::record(crate::audit::Event::ConsentGranted {
            user_id: &user.to_string(),
            client_id: client.id.as_str(),
            scope: &granted.to_string(),
        });
        Ok(())
    }
}

/// The requested scopes as the consent page lists them: who you are
/// first (openid, profile, email), then the APIs in alphabetical order.
pub(super) fn scope_views(scope: &Scope) -> Vec<ScopeView> {
    let rank = |name: &str| {
        crate::oauth::authorize::OIDC_SCOPES
            .iter()
            .position(|oidc| *oidc == name)
            .unwrap_or(usize::MAX)
    };
    let mut names: Vec<&str> = scope.iter().collect();
    names.sort_by_key(|name| (rank(name), name.to_owned()));
    names
        .into_iter()
        .map(|name| ScopeView {
            name: name.to_owned(),
            description: describe_scope(name),
        })
        .collect()
}

/// What a scope lets the application do, in the user's words.
fn describe_scope(scope: &str) -> String {
    match scope {
        "openid" => "Confirm who you are (your account identifier)".to_owned(),
        "profile" => "See your name and username".to_owned(),
        "email" => "See your email address".to_owned(),
        "offline_access" => "Stay signed in while you are away".to_owned(),
        other => match other.split_once(':') {
            Some((resource, action)) => {
                let mut action = action.to_owned();
                if let Some(first) = action.get_mut(..1) {
                    first.make_ascii_uppercase();
                }
                format!("{action} access to {resource}")
            }
            None => format!("Access \u{201c}{other}\u{201d}"),
        },
    }
}
