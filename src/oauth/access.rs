//! Who may get which scope, for which API: the one decision every grant
//! makes (client credentials, the authorization flow and its consent page,
//! the code exchange, every refresh).
//!
//! Granted scope = what is asked ∩ what the client registered ∩, for a
//! user and an API whose user access is `roles`, what the user's roles
//! give (RFC 6749 §3.3: the server may issue less than asked, and says so
//! in the token response's `scope`). RFC 8707 resources narrow it further
//! to the scopes of the APIs they name, and become the token's `aud`.
use std::collections::BTreeSet;
use std::sync::Arc;

use crate::domain::scope::IDENTITY_SCOPES;
use crate::domain::{
    Api, ApiCatalogue, ApiIdentifier, Client, Scope, TokenClaim, UserAccess, UserAccessRights,
};
use crate::tokens::AuthorizationClaims;

/// Most `resource` values one request may name (each is looked up and
/// carried in the grant).
pub const MAX_RESOURCES: usize = 10;

/// Whose permissions a token carries.
#[derive(Debug, Clone, Copy)]
pub enum Holder<'a> {
    /// Client credentials: the client's registered scopes are its
    /// permissions.
    Client,
    /// A user's grant: scopes of `roles` APIs need one of their roles.
    User(&'a UserAccessRights),
}

/// One decision's inputs.
#[derive(Debug, Clone, Copy)]
pub struct AccessRequest<'a> {
    pub client: &'a Client,
    /// What is asked for: a request's `scope` (already within what the
    /// client may request), or what an earlier authorization granted.
    pub scope: &'a Scope,
    /// RFC 8707 `resource` values of this request (none: every API the
    /// granted scopes belong to).
    pub resources: &'a [String],
    /// At the token endpoint after an authorization: the resources it
    /// named (RFC 8707 §2.2: a token request may only narrow them). Empty:
    /// it named none, so it covers the APIs of `scope`.
    pub authorized: Option<&'a [String]>,
    pub holder: Holder<'a>,
}

/// What a token may carry.
#[derive(Debug, Clone, Default)]
pub struct AccessDecision {
    /// The granted scope: identity scopes as asked, API scopes as allowed.
    pub scope: Scope,
    /// The token's `aud`: the resources asked for; else the client's
    /// registered audiences (clients registered before APIs existed); else
    /// the APIs of the granted scopes. Empty: the issuer.
    pub audience: Vec<String>,
    /// The APIs whose scopes were granted and that the token is for (its
    /// lifetime is the shortest of theirs).
    pub apis: Vec<Arc<Api>>,
    /// Whether any API scope was granted.
    pub api_scope_granted: bool,
    /// Whether any API scope was asked for.
    pub api_scope_asked: bool,
    /// RFC 9068 §2.2.3.1 claims the APIs opted in to.
    pub claims: AuthorizationClaims,
}

impl AccessDecision {
    /// The access token's lifetime: the shortest of its APIs'.
    pub fn token_lifetime(&self) -> u32 {
        self.apis
            .iter()
            .map(|api| api.access_token_ttl)
            .min()
            .unwrap_or(crate::domain::api::DEFAULT_ACCESS_TOKEN_TTL)
    }

    /// The API scopes granted, grouped by API (for the consent page), in
    /// the order of the APIs' names.
    pub fn by_api<'a>(&self, apis: &'a ApiCatalogue) -> Vec<(&'a Arc<Api>, Vec<&'a str>)> {
        let mut groups: Vec<(&Arc<Api>, Vec<&str>)> = Vec::new();
        for api in apis.iter() {
            let scopes: Vec<&str> = api
                .scopes
                .iter()
                .map(|s| s.name.as_str())
                .filter(|s| self.scope.contains(s))
                .collect();
            if !scopes.is_empty() {
                groups.push((api, scopes));
            }
        }
        groups.sort_by(|a, b| a.0.name.as_str().cmp(b.0.name.as_str()));
        groups
    }
}

/// The resources of an earlier authorization this client can still be
/// served: APIs that still exist and of which it still holds a scope. A
/// resource deleted since is dropped, not refused (the client did not ask
/// for it now).
pub fn still_served(apis: &ApiCatalogue, client: &Client, resources: &[String]) -> Vec<String> {
    resources
        .iter()
        .filter(|r| {
            apis.find(r)
                .is_some_and(|api| api.scopes.iter().any(|s| client.scope.contains(&s.name)))
        })
        .cloned()
        .collect()
}

/// RFC 8707 §2: an error for a resource that cannot be served. The
/// description never echoes more than the resource itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidTarget(pub String);

impl From<InvalidTarget> for super::Error {
    fn from(target: InvalidTarget) -> Self {
        super::Error::InvalidTarget(target.0.into())
    }
}

/// A resource value, shortened and made printable for an
/// `error_description` (RFC 6749 §5.2's character set).
fn shown(resource: &str) -> String {
    let mut shown = super::params::printable(resource);
    if resource.len() > 40 {
        shown.push_str("...");
    }
    shown
}

/// The APIs `resources` name, each a known API this client holds a scope
/// of and, after an authorization, one it covered (`authorized`, as in
/// [`AccessRequest`], with `scope` the authorization's). Checked at
/// /authorize before anything else happens, and by every decision.
pub fn targets(
    apis: &ApiCatalogue,
    client: &Client,
    resources: &[String],
    authorized: Option<&[String]>,
    scope: &Scope,
) -> Result<Vec<Arc<Api>>, InvalidTarget> {
    let authorized: Option<BTreeSet<&str>> = authorized.map(|named| {
        if named.is_empty() {
            scope
                .iter()
                .filter_map(|s| apis.api_of(s))
                .map(|api| api.identifier.as_str())
                .collect()
        } else {
            named.iter().map(String::as_str).collect()
        }
    });
    if resources.len() > MAX_RESOURCES {
        return Err(InvalidTarget(format!(
            "at most {MAX_RESOURCES} resource values"
        )));
    }
    let mut targets: Vec<Arc<Api>> = Vec::new();
    for resource in resources {
        if ApiIdentifier::parse(resource).is_none() {
            return Err(InvalidTarget(format!(
                "resource {} is not an absolute URI without a fragment (RFC 8707 §2)",
                shown(resource)
            )));
        }
        let Some(api) = apis.find(resource) else {
            return Err(InvalidTarget(format!(
                "resource {} is not an API this server knows",
                shown(resource)
            )));
        };
        if !api.scopes.iter().any(|s| client.scope.contains(&s.name)) {
            return Err(InvalidTarget(format!(
                "this client may not request any scope of resource {}",
                shown(resource)
            )));
        }
        if let Some(authorized) = &authorized
            && !authorized.contains(resource.as_str())
        {
            return Err(InvalidTarget(format!(
                "resource {} was not part of the authorization",
                shown(resource)
            )));
        }
        if !targets.iter().any(|t| Arc::ptr_eq(t, api)) {
            targets.push(api.clone());
        }
    }
    Ok(targets)
}

/// The decision. Pure: the caller brings the user's rights (one query)
/// and the catalogue (memory).
pub fn decide(
    apis: &ApiCatalogue,
    request: AccessRequest<'_>,
) -> Result<AccessDecision, InvalidTarget> {
    let client = request.client;
    let targets = targets(
        apis,
        client,
        request.resources,
        request.authorized,
        request.scope,
    )?;

    let mut granted: Vec<&str> = Vec::new();
    let mut granted_apis: Vec<Arc<Api>> = Vec::new();
    let mut api_scope_asked = false;
    for scope in request.scope.iter() {
        if IDENTITY_SCOPES.contains(&scope) {
            granted.push(scope);
            continue;
        }
        api_scope_asked = true;
        // A scope no API defines (its API was deleted with --force) is
        // never granted.
        let Some(api) = apis.api_of(scope) else {
            continue;
        };
        let allowed = client.scope.contains(scope)
            && (targets.is_empty() || targets.iter().any(|t| Arc::ptr_eq(t, api)))
            && match (request.holder, api.user_access) {
                (Holder::Client, _) | (Holder::User(_), UserAccess::Any) => true,
                (Holder::User(rights), UserAccess::Roles) => rights.holds(scope),
            };
        if allowed {
            granted.push(scope);
            if !granted_apis.iter().any(|g| Arc::ptr_eq(g, api)) {
                granted_apis.push(api.clone());
            }
        }
    }
    let scope = Scope::from_tokens(granted).expect("tokens of a scope");
    let api_scope_granted = !granted_apis.is_empty();

    // Only APIs something was granted for are audiences, and only they
    // speak in the claims (RFC 8707 §2, RFC 9068 §2.2.3.1): naming a
    // resource without being granted any of its scopes yields a token
    // that is not for it.
    granted_apis.sort_by(|a, b| a.identifier.cmp(&b.identifier));
    let (audience, audience_apis, lifetime_apis) = if !targets.is_empty() {
        let served: Vec<Arc<Api>> = targets
            .into_iter()
            .filter(|t| granted_apis.iter().any(|g| Arc::ptr_eq(g, t)))
            .collect();
        let names = served.iter().map(|t| t.identifier.to_string()).collect();
        (names, served.clone(), served)
    } else if !client.audiences.is_empty() {
        // Clients registered before APIs keep their audience; the
        // lifetime is still their granted APIs'.
        let named = granted_apis
            .iter()
            .filter(|g| client.audiences.iter().any(|a| a == g.identifier.as_str()))
            .cloned()
            .collect();
        (client.audiences.clone(), named, granted_apis)
    } else {
        let names = granted_apis
            .iter()
            .map(|api| api.identifier.to_string())
            .collect();
        (names, granted_apis.clone(), granted_apis)
    };
    let claims = claims(&audience_apis, client, request.holder);
    Ok(AccessDecision {
        scope,
        audience,
        apis: lifetime_apis,
        api_scope_granted,
        api_scope_asked,
        claims,
    })
}

/// The claims the audience's APIs opted in to (RFC 9068 §2.2.3.1).
fn claims(apis: &[Arc<Api>], client: &Client, holder: Holder<'_>) -> AuthorizationClaims {
    let wants = |claim: TokenClaim| apis.iter().any(|api| api.token_claims.contains(&claim));
    let permissions = wants(TokenClaim::Permissions).then(|| {
        let opted: Vec<&Arc<Api>> = apis
            .iter()
            .filter(|api| api.token_claims.contains(&TokenClaim::Permissions))
            .collect();
        let held = |scope: &str| match holder {
            Holder::Client => client.scope.contains(scope),
            Holder::User(rights) => rights.holds(scope),
        };
        opted
            .iter()
            .flat_map(|api| api.scopes.iter().map(|s| s.name.as_str()))
            .filter(|s| held(s))
            .map(str::to_owned)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    });
    match holder {
        Holder::Client => AuthorizationClaims {
            roles: None,
            groups: None,
            permissions,
        },
        Holder::User(rights) => AuthorizationClaims {
            // The roles that give a scope of the APIs that opted in: not
            // the user's roles at other APIs.
            roles: wants(TokenClaim::Roles).then(|| {
                apis.iter()
                    .filter(|api| api.token_claims.contains(&TokenClaim::Roles))
                    .flat_map(|api| api.scopes.iter())
                    .filter_map(|s| rights.permissions.get(&s.name))
                    .flatten()
                    .map(|grantor| grantor.role.to_string())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect()
            }),
            groups: wants(TokenClaim::Groups)
                .then(|| rights.groups.iter().map(ToString::to_string).collect()),
            permissions,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use chrono::Utc;

    use super::*;
    use crate::domain::{
        AccessName, ApiName, ApiScope, ClientId, ClientKind, ClientName, Grantor, TokenClaim,
    };

    fn api(identifier: &str, scopes: &[&str], access: UserAccess, claims: &[TokenClaim]) -> Api {
        Api {
            id: uuid::Uuid::new_v4(),
            identifier: ApiIdentifier::parse(identifier).unwrap(),
            name: ApiName::parse(identifier).unwrap(),
            scopes: scopes
                .iter()
                .map(|s| ApiScope {
                    name: (*s).to_owned(),
                    description: format!("{s} described"),
                })
                .collect(),
            user_access: access,
            token_claims: claims.iter().copied().collect(),
            access_token_ttl: 900,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn catalogue() -> ApiCatalogue {
        ApiCatalogue::new(vec![
            api(
                "https://invoices.example",
                &["invoices:read", "invoices:write"],
                UserAccess::Roles,
                &[TokenClaim::Permissions, TokenClaim::Roles],
            ),
            api(
                "https://orders.example",
                &["orders:read"],
                UserAccess::Any,
                &[],
            ),
        ])
    }

    fn client(scope: &str) -> Client {
        Client {
            id: ClientId::generate(),
            name: ClientName::parse("c").unwrap(),
            kind: ClientKind::Confidential,
            secret: None,
            redirect_uris: Vec::new(),
            grant_types: Vec::new(),
            scope: scope.parse().unwrap(),
            audiences: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            skip_consent: false,
            can_introspect: false,
            rate_tier: "standard".into(),
            allowed_origins: Vec::new(),
            dynamic: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn rights(scopes: &[&str]) -> UserAccessRights {
        let role = AccessName::parse("reader").unwrap();
        UserAccessRights {
            permissions: scopes
                .iter()
                .map(|s| {
                    let grantors: BTreeSet<Grantor> = [Grantor {
                        role: role.clone(),
                        group: None,
                    }]
                    .into();
                    ((*s).to_owned(), grantors)
                })
                .collect(),
            roles: [role].into(),
            groups: BTreeSet::new(),
        }
    }

    fn decide_for(
        client: &Client,
        scope: &str,
        resources: &[&str],
        authorized: Option<&[String]>,
        holder: Holder<'_>,
    ) -> Result<AccessDecision, InvalidTarget> {
        let resources: Vec<String> = resources.iter().map(|r| (*r).to_owned()).collect();
        decide(
            &catalogue(),
            AccessRequest {
                client,
                scope: &scope.parse().unwrap(),
                resources: &resources,
                authorized,
                holder,
            },
        )
    }

    const ALL: &str = "openid invoices:read invoices:write orders:read";

    #[test]
    fn a_user_gets_a_roles_api_scope_only_through_a_role() {
        let client = client("invoices:read invoices:write orders:read");
        let reader = rights(&["invoices:read"]);
        let decision = decide_for(&client, ALL, &[], None, Holder::User(&reader)).unwrap();
        assert_eq!(
            decision.scope.to_string(),
            "invoices:read openid orders:read"
        );
        assert_eq!(
            decision.audience,
            ["https://invoices.example", "https://orders.example"]
        );
        // Nobody: the `any` API only, and the identity scope.
        let nobody = rights(&[]);
        let decision = decide_for(&client, ALL, &[], None, Holder::User(&nobody)).unwrap();
        assert_eq!(decision.scope.to_string(), "openid orders:read");
        assert_eq!(decision.audience, ["https://orders.example"]);
        assert!(decision.api_scope_granted);
    }

    #[test]
    fn a_client_holds_its_registered_scopes() {
        let client = client("invoices:write orders:read");
        let decision = decide_for(
            &client,
            "invoices:write orders:read",
            &[],
            None,
            Holder::Client,
        )
        .unwrap();
        assert_eq!(decision.scope.to_string(), "invoices:write orders:read");
        // Not registered: never granted, whatever is asked.
        let decision = decide_for(&client, "invoices:read", &[], None, Holder::Client).unwrap();
        assert!(decision.api_scope_asked && !decision.api_scope_granted);
        // Permissions claim: the client's registered scopes of the opted-in API.
        let decision = decide_for(
            &client,
            "invoices:write orders:read",
            &["https://invoices.example"],
            None,
            Holder::Client,
        )
        .unwrap();
        assert_eq!(decision.scope.to_string(), "invoices:write");
        assert_eq!(
            decision.claims.permissions.as_deref(),
            Some(&["invoices:write".to_owned()][..])
        );
        assert_eq!(decision.claims.roles, None);
        // Naming a resource without being granted any of its scopes: the
        // token is not for it, and carries none of its claims.
        let decision = decide_for(
            &client,
            "orders:read",
            &["https://invoices.example"],
            None,
            Holder::Client,
        )
        .unwrap();
        assert!(!decision.api_scope_granted);
        assert!(decision.audience.is_empty());
        assert_eq!(decision.claims, AuthorizationClaims::default());
    }

    #[test]
    fn resources_select_the_audience_and_narrow_the_scope() {
        let client = client("invoices:read invoices:write orders:read");
        let reader = rights(&["invoices:read", "invoices:write"]);
        let decision = decide_for(
            &client,
            ALL,
            &["https://orders.example"],
            None,
            Holder::User(&reader),
        )
        .unwrap();
        assert_eq!(decision.scope.to_string(), "openid orders:read");
        assert_eq!(decision.audience, ["https://orders.example"]);
        assert_eq!(decision.claims, AuthorizationClaims::default());
        let decision = decide_for(
            &client,
            ALL,
            &["https://invoices.example"],
            None,
            Holder::User(&reader),
        )
        .unwrap();
        assert_eq!(decision.audience, ["https://invoices.example"]);
        assert_eq!(
            decision.claims.roles.as_deref(),
            Some(&["reader".to_owned()][..])
        );
        assert_eq!(
            decision.claims.permissions.as_deref(),
            Some(&["invoices:read".to_owned(), "invoices:write".to_owned()][..])
        );
    }

    #[test]
    fn every_invalid_target_is_refused() {
        let client = client("orders:read");
        let refused = |resources: &[&str], authorized: Option<&[String]>| {
            decide_for(
                &client,
                "orders:read",
                resources,
                authorized,
                Holder::Client,
            )
            .unwrap_err()
            .0
        };
        assert!(refused(&["orders"], None).contains("absolute URI"));
        assert!(refused(&["https://orders.example#x"], None).contains("absolute URI"));
        assert!(refused(&["https://unknown.example"], None).contains("not an API"));
        assert!(refused(&["https://invoices.example"], None).contains("may not request"));
        let eleven: Vec<String> = (0..11).map(|i| format!("https://{i}.example")).collect();
        let eleven: Vec<&str> = eleven.iter().map(String::as_str).collect();
        assert!(refused(&eleven, None).contains("at most 10"));
        // Authorized for invoices only: orders is not covered.
        let authorized = ["https://invoices.example".to_owned()];
        assert!(refused(&["https://orders.example"], Some(&authorized)).contains("not part"));
        // Authorized with no resource: the APIs of the scope are covered.
        assert!(
            decide_for(
                &client,
                "orders:read",
                &["https://orders.example"],
                Some(&[]),
                Holder::Client
            )
            .is_ok()
        );
    }

    #[test]
    fn registered_audiences_stay_the_aud_without_a_resource() {
        let mut client = client("orders:read");
        client.audiences = vec!["legacy-audience".into()];
        let decision = decide_for(&client, "orders:read", &[], None, Holder::Client).unwrap();
        assert_eq!(decision.audience, ["legacy-audience"]);
        let decision = decide_for(
            &client,
            "orders:read",
            &["https://orders.example"],
            None,
            Holder::Client,
        )
        .unwrap();
        assert_eq!(decision.audience, ["https://orders.example"]);
    }

    #[test]
    fn the_shortest_lifetime_of_the_audience_wins() {
        let mut invoices = api("https://a.example", &["a"], UserAccess::Any, &[]);
        invoices.access_token_ttl = 120;
        let orders = api("https://b.example", &["b"], UserAccess::Any, &[]);
        let apis = ApiCatalogue::new(vec![invoices, orders]);
        let client = client("a b");
        let decision = decide(
            &apis,
            AccessRequest {
                client: &client,
                scope: &"a b".parse().unwrap(),
                resources: &[],
                authorized: None,
                holder: Holder::Client,
            },
        )
        .unwrap();
        assert_eq!(decision.token_lifetime(), 120);
        let none = AccessDecision::default();
        assert_eq!(none.token_lifetime(), 900);
    }
}
