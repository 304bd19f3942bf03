//! Consent decisions: what the user may grant (`oauth::access::decide`
//! with their roles), whether they must be asked before a client gets it,
//! and how it is described to them, grouped by API.
use super::flow::AuthorizationFlow;
use super::step::{ScopeSection, ScopeView};
use crate::domain::{ApiCatalogue, Client, ClientKind, Scope, UserAccessRights, UserId};
use crate::oauth::Error;
use crate::oauth::access::{self, AccessDecision, AccessRequest, Holder};
use crate::oauth::authorize::AuthorizationRequest;

impl AuthorizationFlow {
    /// What `user` may grant `client` for `request` now: the request's
    /// scope within their roles and its resources. `access_denied` when
    /// that leaves no API scope and no OpenID scope (nothing to sign in to).
    pub(super) async fn grantable(
        &self,
        client: &Client,
        request: &AuthorizationRequest,
        user: UserId,
    ) -> Result<AccessDecision, Error> {
        self.grantable_within(client, request, user, None).await
    }

    /// As [`Self::grantable`], within `shown` (what the consent page
    /// listed): an Allow never grants what the user was not shown, even if
    /// a role arrived while the page was open.
    pub(super) async fn grantable_within(
        &self,
        client: &Client,
        request: &AuthorizationRequest,
        user: UserId,
        shown: Option<&Scope>,
    ) -> Result<AccessDecision, Error> {
        let rights: UserAccessRights = self
            .store
            .user_access_rights(user)
            .await
            .map_err(Error::internal)?;
        let decision = access::decide(
            &self.clients.apis(),
            AccessRequest {
                client,
                scope: &match shown {
                    Some(shown) => request.scope().intersection(shown),
                    None => request.scope(),
                },
                resources: &request.resources,
                authorized: None,
                holder: Holder::User(&rights),
            },
        )?;
        if !decision.api_scope_granted && !decision.scope.contains("openid") {
            return Err(Error::AccessDenied(if decision.api_scope_asked {
                "the user holds none of the permissions this request asks for".into()
            } else {
                "the request asks for no API scope and not for openid: there is nothing to grant"
                    .into()
            }));
        }
        Ok(decision)
    }

    /// Whether the user must be asked (again) before `client` gets
    /// `granted` (what [`Self::grantable`] decided) for `request`.
    pub(super) async fn consent_needed(
        &self,
        client: &Client,
        request: &AuthorizationRequest,
        granted: &Scope,
        user: UserId,
    ) -> Result<bool, Error> {
        if request.prompt.consent {
            return Ok(true);
        }
        // OIDC Core §11: offline access always needs the user's consent,
        // even for a pre-consented first-party client.
        let offline = granted.contains("offline_access");
        if client.skip_consent && client.kind == ClientKind::Confidential && !offline {
            return Ok(false);
        }
        // RFC 8252 §8.6: a public client's identity is only as good as its
        // redirect URI. Any local app can listen on a loopback port, so a
        // remembered consent is not enough there: ask every time.
        if client.kind == ClientKind::Public && !request.redirect.uri.starts_with("https://") {
            return Ok(true);
        }
        let remembered: Option<Scope> = self
            .store
            .find_consent(user, &client.id)
            .await
            .map_err(Error::internal)?
            .and_then(|scope| scope.parse().ok());
        Ok(!remembered.is_some_and(|remembered| granted.is_subset(&remembered)))
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

/// What the consent page lists: who you are first (openid, profile,
/// email, groups, offline access), then each API by name with its scopes
/// as the API describes them. Only what can be granted is listed.
pub(super) fn scope_sections(decision: &AccessDecision, apis: &ApiCatalogue) -> Vec<ScopeSection> {
    let identity: Vec<ScopeView> = crate::domain::scope::IDENTITY_SCOPES
        .iter()
        .filter(|name| decision.scope.contains(name))
        .map(|name| ScopeView {
            name: (*name).to_owned(),
            description: describe_identity_scope(name).to_owned(),
        })
        .collect();
    let mut sections = Vec::new();
    if !identity.is_empty() {
        sections.push(ScopeSection {
            title: "Your account".to_owned(),
            identifier: None,
            scopes: identity,
        });
    }
    for (api, names) in decision.by_api(apis) {
        sections.push(ScopeSection {
            title: api.name.as_str().to_owned(),
            identifier: Some(api.identifier.to_string()),
            scopes: api
                .scopes
                .iter()
                .filter(|s| names.contains(&s.name.as_str()))
                .map(|s| ScopeView {
                    name: s.name.clone(),
                    description: s.description.clone(),
                })
                .collect(),
        });
    }
    sections
}

/// What an identity scope lets the application do, in the user's words.
fn describe_identity_scope(scope: &str) -> &'static str {
    match scope {
        "openid" => "Confirm who you are (your account identifier)",
        "profile" => "See your name and username",
        "email" => "See your email address",
        "groups" => "See the groups you belong to",
        "offline_access" => "Stay signed in while you are away",
        _ => "Use your account",
    }
}
