//! Client registration and administration, as the CLI (and the tests, through
//! the same functions) perform it.
use chrono::{DateTime, SubsecRound, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::clock::Clock;
use crate::crypto::{Digester, random};
use crate::domain::redirect_uri::InvalidRedirectUri;
use crate::domain::{
    Client, ClientId, ClientKind, ClientName, DynamicRegistration, GrantType, RedirectUri, Scope,
    SecretDigest,
};
use crate::limits::buckets::RateLimitSettings;
use crate::store::{self, Store};

/// A registration request, as given on the command line.
#[derive(Debug, Default, Clone)]
pub struct NewClient {
    /// The id to register under; `None`: a new random one. (The admin
    /// API's idempotent creates choose it before they run.)
    pub id: Option<ClientId>,
    pub name: String,
    pub public: bool,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// A first-party confidential client: users are not asked for consent.
    pub skip_consent: bool,
    /// A resource server that may introspect any token.
    pub can_introspect: bool,
    /// `--rate-tier`; `None` is the standard tier. The CLI checks the name
    /// against the configured tiers.
    pub rate_tier: Option<String>,
    /// `--allowed-origin`: browser origins allowed to call the API endpoints.
    pub allowed_origins: Vec<String>,
    /// A client registering itself (`clients::dynamic`, RFC 7591).
    pub registration: Option<DynamicRegistration>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("--name must be 1 to 100 characters without control characters")]
    InvalidName,
    #[error("--redirect-uri {uri}: {reason}")]
    InvalidRedirectUri {
        uri: String,
        reason: InvalidRedirectUri,
    },
    #[error(
        "--grant-type {0}: unknown; use authorization_code, client_credentials or refresh_token"
    )]
    UnknownGrantType(String),
    #[error("a public client cannot use client_credentials: it has no secret to authenticate with")]
    PublicClientCredentials,
    #[error("authorization_code needs at least one --redirect-uri")]
    MissingRedirectUri,
    #[error(
        "--redirect-uri is only used by authorization_code; add --grant-type authorization_code"
    )]
    UnusedRedirectUri,
    #[error(
        "refresh_token is only issued with authorization_code; add --grant-type authorization_code"
    )]
    RefreshWithoutCode,
    #[error(
        "--scope {0}: not a scope token (RFC 6749 §3.3: printable ASCII without space, \" or \\)"
    )]
    InvalidScope(String),
    #[error(
        "--scope {0}: no API defines this scope; define it first (authd apis create --identifier URI --name NAME --scope {0})"
    )]
    ScopeWithoutApi(String),
    #[error("--rate-tier {0}: tier names are letters, digits and '-'")]
    InvalidRateTier(String),
    #[error("--rate-tier {tier}: not a configured tier (AUTHD_RATE_TIERS: {known})")]
    UnknownRateTier { tier: String, known: String },
    #[error("not a position in the list of clients")]
    BadPosition,
    #[error("nothing to change: give at least one value")]
    NothingToChange,
    #[error("client {0} changed meanwhile")]
    Changed(String),
    #[error(
        "--allowed-origin {0}: expected an origin such as https://app.example or https://app.example:8443 \
         (no path; http only on localhost)"
    )]
    InvalidOrigin(String),
    #[error("--audience {0}: must be a non-empty value without whitespace")]
    InvalidAudience(String),
    #[error("--post-logout-redirect-uri {uri}: {reason}")]
    InvalidPostLogoutRedirectUri {
        uri: String,
        reason: InvalidRedirectUri,
    },
    #[error(
        "--post-logout-redirect-uri is only used by clients that sign users in (authorization_code)"
    )]
    UnusedPostLogoutRedirectUri,
    #[error(
        "--skip-consent is only for first-party confidential clients that sign users in: a public \
         client's identity cannot be verified, so its users are always asked (RFC 8252 §8.6)"
    )]
    SkipConsentNotAllowed,
    #[error(
        "a dynamically registered client is never pre-consented: the operator did not verify it"
    )]
    SkipConsentDynamic,
    #[error(
        "--introspect is for confidential clients (resource servers): introspection needs client authentication"
    )]
    IntrospectNeedsSecret,
    #[error("no client with id {0}")]
    NotFound(String),
    #[error("client {0} is public and has no secret")]
    NotConfidential(String),
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// What the operator sees once: the secret is never shown again.
#[derive(Serialize)]
pub struct Credentials {
    pub client_id: String,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "expose")]
    pub client_secret: Option<SecretString>,
    /// The client as registered (the admin API answers with it).
    #[serde(skip)]
    pub client: Option<ClientView>,
}

fn expose<S: serde::Serializer>(secret: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => s.serialize_str(secret.expose_secret()),
        None => s.serialize_none(),
    }
}

/// A client as the CLI and the admin API show it: everything but the
/// secret digest.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClientView {
    pub client_id: String,
    pub name: String,
    /// `confidential` or `public`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<&'static str>,
    pub scope: String,
    pub audiences: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub skip_consent: bool,
    pub can_introspect: bool,
    pub rate_tier: String,
    pub allowed_origins: Vec<String>,
    /// How the client was registered: `operator` (the CLI or the admin
    /// API), or dynamically (RFC 7591) with a registration token
    /// (`token`) or openly (`open`).
    #[schema(value_type = String, example = "operator")]
    pub registered_via: &'static str,
    /// A dynamic client's own metadata (RFC 7591 §2), unverified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&Client> for ClientView {
    fn from(client: &Client) -> Self {
        Self {
            client_id: client.id.to_string(),
            name: client.name.as_str().to_owned(),
            kind: client.kind.as_str(),
            redirect_uris: client
                .redirect_uris
                .iter()
                .map(ToString::to_string)
                .collect(),
            grant_types: client.grant_types.iter().map(|g| g.as_str()).collect(),
            scope: client.scope.to_string(),
            audiences: client.audiences.clone(),
            post_logout_redirect_uris: client
                .post_logout_redirect_uris
                .iter()
                .map(ToString::to_string)
                .collect(),
            skip_consent: client.skip_consent,
            can_introspect: client.can_introspect,
            rate_tier: client.rate_tier.clone(),
            allowed_origins: client.allowed_origins.clone(),
            registered_via: client
                .dynamic
                .as_ref()
                .map_or("operator", |d| d.via.as_str()),
            client_uri: client
                .dynamic
                .as_ref()
                .and_then(|d| d.metadata.client_uri.clone()),
            logo_uri: client
                .dynamic
                .as_ref()
                .and_then(|d| d.metadata.logo_uri.clone()),
            contacts: client
                .dynamic
                .as_ref()
                .map(|d| d.metadata.contacts.clone())
                .unwrap_or_default(),
            created_at: client.created_at,
            updated_at: client.updated_at,
        }
    }
}

/// ≥ 256 bits from the OS RNG, and its keyed digest (DESIGN).
fn new_secret(digester: &Digester) -> (SecretString, SecretDigest) {
    let secret = SecretString::from(random::secret_token());
    let digest = SecretDigest {
        digest: digester.digest(secret.expose_secret().as_bytes()),
        key_version: digester.version(),
    };
    (secret, digest)
}

/// Without `--grant-type`: a confidential client with no redirect URI is a
/// machine client (client_credentials); anything else signs users in
/// (authorization_code).
fn grant_types(new: &NewClient) -> Result<Vec<GrantType>, RegistrationError> {
    let mut grants: Vec<GrantType> = if new.grant_types.is_empty() {
        if !new.public && new.redirect_uris.is_empty() {
            vec![GrantType::ClientCredentials]
        } else {
            vec![GrantType::AuthorizationCode]
        }
    } else {
        new.grant_types
            .iter()
            .map(|g| {
                g.parse()
                    .map_err(|_| RegistrationError::UnknownGrantType(g.clone()))
            })
            .collect::<Result<_, _>>()?
    };
    grants.sort();
    grants.dedup();
    let has = |grant| grants.contains(&grant);
    if new.public && has(GrantType::ClientCredentials) {
        return Err(RegistrationError::PublicClientCredentials);
    }
    if has(GrantType::RefreshToken) && !has(GrantType::AuthorizationCode) {
        return Err(RegistrationError::RefreshWithoutCode);
    }
    match (
        has(GrantType::AuthorizationCode),
        new.redirect_uris.is_empty(),
    ) {
        (true, true) => Err(RegistrationError::MissingRedirectUri),
        (false, false) => Err(RegistrationError::UnusedRedirectUri),
        _ => Ok(grants),
    }
}

/// An origin as browsers send it (RFC 6454 §6.1): `https://host[:port]`,
/// or `http://` on loopback; nothing after the authority. Returns its
/// serialisation (lower-case host, default port dropped).
pub fn parse_origin(text: &str) -> Option<String> {
    let url = url::Url::parse(text).ok()?;
    let bare = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
    let credentials = !url.username().is_empty() || url.password().is_some();
    // No wildcards (browsers never send one) and a real port.
    if !bare || credentials || text.contains('*') || url.port() == Some(0) {
        return None;
    }
    let loopback = matches!(
        url.host(),
        Some(url::Host::Ipv4(ip)) if ip.is_loopback()
    ) || matches!(url.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
        || url.host_str() == Some("localhost");
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return None,
    }
    Some(url.origin().ascii_serialization())
}

/// The registered values, validated.
struct Validated {
    name: ClientName,
    redirect_uris: Vec<RedirectUri>,
    post_logout_redirect_uris: Vec<RedirectUri>,
    scope: Scope,
    audiences: Vec<String>,
    rate_tier: String,
    allowed_origins: Vec<String>,
}

fn validate(
    new: &NewClient,
    grants: &[GrantType],
    tiers: &RateLimitSettings,
) -> Result<Validated, RegistrationError> {
    let name = ClientName::parse(&new.name).ok_or(RegistrationError::InvalidName)?;
    let signs_users_in = grants.contains(&GrantType::AuthorizationCode);
    if new.skip_consent && new.registration.is_some() {
        return Err(RegistrationError::SkipConsentDynamic);
    }
    if new.skip_consent && (new.public || !signs_users_in) {
        return Err(RegistrationError::SkipConsentNotAllowed);
    }
    if new.can_introspect && new.public {
        return Err(RegistrationError::IntrospectNeedsSecret);
    }
    if !new.post_logout_redirect_uris.is_empty() && !signs_users_in {
        return Err(RegistrationError::UnusedPostLogoutRedirectUri);
    }
    let mut post_logout_redirect_uris = Vec::new();
    for uri in &new.post_logout_redirect_uris {
        let parsed = RedirectUri::parse(uri).map_err(|reason| {
            RegistrationError::InvalidPostLogoutRedirectUri {
                uri: uri.clone(),
                reason,
            }
        })?;
        if !post_logout_redirect_uris.contains(&parsed) {
            post_logout_redirect_uris.push(parsed);
        }
    }
    let mut redirect_uris = Vec::new();
    for uri in &new.redirect_uris {
        let parsed =
            RedirectUri::parse(uri).map_err(|reason| RegistrationError::InvalidRedirectUri {
                uri: uri.clone(),
                reason,
            })?;
        if !redirect_uris.contains(&parsed) {
            redirect_uris.push(parsed);
        }
    }
    if let Some(bad) = new
        .scopes
        .iter()
        .find(|s| Scope::from_tokens([s.as_str()]).is_err())
    {
        return Err(RegistrationError::InvalidScope(bad.clone()));
    }
    let scope = Scope::from_tokens(&new.scopes)
        .map_err(|_| RegistrationError::InvalidScope(String::new()))?;
    if let Some(bad) = new
        .audiences
        .iter()
        .find(|a| a.is_empty() || a.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err(RegistrationError::InvalidAudience(bad.clone()));
    }
    let mut audiences = new.audiences.clone();
    audiences.dedup();
    let rate_tier = match &new.rate_tier {
        None => crate::limits::buckets::DEFAULT_TIER.to_owned(),
        Some(tier)
            if !tier.is_empty() && tier.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') =>
        {
            tier.clone()
        }
        Some(tier) => return Err(RegistrationError::InvalidRateTier(tier.clone())),
    };
    if !tiers.has_tier(&rate_tier) {
        return Err(RegistrationError::UnknownRateTier {
            tier: rate_tier,
            known: tiers.tier_names().join(", "),
        });
    }
    let mut allowed_origins = Vec::new();
    for origin in &new.allowed_origins {
        let parsed =
            parse_origin(origin).ok_or_else(|| RegistrationError::InvalidOrigin(origin.clone()))?;
        if !allowed_origins.contains(&parsed) {
            allowed_origins.push(parsed);
        }
    }
    Ok(Validated {
        name,
        redirect_uris,
        post_logout_redirect_uris,
        scope,
        audiences,
        rate_tier,
        allowed_origins,
    })
}

/// Every scope a client registers, except OpenID Connect's own, belongs to
/// an API: that is what decides its tokens' `aud` and who may get it.
pub(crate) async fn ensure_scopes_have_apis(
    store: &dyn Store,
    scope: &Scope,
) -> Result<(), RegistrationError> {
    let wanted: Vec<&str> = scope
        .iter()
        .filter(|s| !crate::domain::scope::IDENTITY_SCOPES.contains(s))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let apis = crate::domain::ApiCatalogue::new(store.list_apis().await?);
    match wanted.into_iter().find(|s| apis.api_of(s).is_none()) {
        Some(orphan) => Err(RegistrationError::ScopeWithoutApi(orphan.to_owned())),
        None => Ok(()),
    }
}

#[tracing::instrument(level = "debug", name = "registration.register", skip_all)]
pub async fn register(
    store: &dyn Store,
    digester: &Digester,
    clock: &dyn Clock,
    tiers: &RateLimitSettings,
    new: NewClient,
) -> Result<Credentials, RegistrationError> {
    let grant_types = grant_types(&new)?;
    let Validated {
        name,
        redirect_uris,
        post_logout_redirect_uris,
        scope,
        audiences,
        rate_tier,
        allowed_origins,
    } = validate(&new, &grant_types, tiers)?;
    ensure_scopes_have_apis(store, &scope).await?;
    let (secret, digest) = if new.public {
        (None, None)
    } else {
        let (secret, digest) = new_secret(digester);
        (Some(secret), Some(digest))
    };
    // Microseconds, as both databases keep them: the client answered is
    // the client stored (its ETag too).
    let now = clock.now().trunc_subsecs(6);
    let client = Client {
        id: new.id.clone().unwrap_or_else(ClientId::generate),
        name,
        kind: if new.public {
            ClientKind::Public
        } else {
            ClientKind::Confidential
        },
        secret: digest,
        redirect_uris,
        grant_types,
        scope,
        audiences,
        post_logout_redirect_uris,
        skip_consent: new.skip_consent,
        can_introspect: new.can_introspect,
        rate_tier,
        allowed_origins,
        dynamic: new.registration,
        created_at: now,
        updated_at: now,
    };
    store.insert_client(&client).await?;
    crate::audit::record(crate::audit::Event::ClientCreated {
        client_id: client.id.as_str(),
    });
    Ok(Credentials {
        client_id: client.id.to_string(),
        client_secret: secret,
        client: Some(ClientView::from(&client)),
    })
}

fn parse_id(id: &str) -> Result<ClientId, RegistrationError> {
    ClientId::parse(id).ok_or_else(|| RegistrationError::NotFound(id.to_owned()))
}

pub async fn show(store: &dyn Store, id: &str) -> Result<ClientView, RegistrationError> {
    let client = store
        .find_client(&parse_id(id)?)
        .await?
        .ok_or_else(|| RegistrationError::NotFound(id.to_owned()))?;
    Ok(ClientView::from(&client))
}

pub async fn list(store: &dyn Store) -> Result<Vec<ClientView>, RegistrationError> {
    Ok(store
        .list_clients()
        .await?
        .iter()
        .map(ClientView::from)
        .collect())
}

/// Where a page of clients ends: what the list is ordered by.
pub type ClientPosition = (DateTime<Utc>, String);

/// At most `limit` clients after `after`, oldest first, and the position
/// of the last when more follow.
pub async fn list_page(
    store: &dyn Store,
    after: Option<ClientPosition>,
    limit: u32,
) -> Result<(Vec<ClientView>, Option<ClientPosition>), RegistrationError> {
    let after_id = match &after {
        Some((_, id)) => Some(ClientId::parse(id).ok_or(RegistrationError::BadPosition)?),
        None => None,
    };
    let position = after
        .as_ref()
        .zip(after_id.as_ref())
        .map(|((at, _), id)| (*at, id));
    let mut clients = store.list_clients_page(position, limit + 1).await?;
    let more = clients.len() > limit as usize;
    clients.truncate(limit as usize);
    let next = match clients.last() {
        Some(last) if more => Some((last.created_at, last.id.to_string())),
        _ => None,
    };
    Ok((clients.iter().map(ClientView::from).collect(), next))
}

/// Changes to a client's registration; what is `None` stays as it is. A
/// client's type (public or confidential) cannot change: register another.
#[derive(Debug, Default, Clone)]
pub struct ClientChanges {
    pub name: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub grant_types: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    pub audiences: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub skip_consent: Option<bool>,
    pub can_introspect: Option<bool>,
    pub rate_tier: Option<String>,
    pub allowed_origins: Option<Vec<String>>,
    /// A dynamic client's registration (RFC 7592 `PUT`: its metadata and
    /// a new registration access token).
    pub registration: Option<DynamicRegistration>,
}

/// Changes a client, validated as a registration is. With `expected`, only
/// while its `updated_at` is that (`Changed` otherwise): the admin API's
/// `If-Match`. Running replicas see the change within their cache refresh
/// interval.
pub async fn update(
    store: &dyn Store,
    clock: &dyn Clock,
    tiers: &RateLimitSettings,
    id: &str,
    changes: ClientChanges,
    expected: Option<DateTime<Utc>>,
) -> Result<ClientView, RegistrationError> {
    let ClientChanges {
        name,
        redirect_uris,
        grant_types: grants,
        scopes,
        audiences,
        post_logout_redirect_uris,
        skip_consent,
        can_introspect,
        rate_tier,
        allowed_origins,
        registration,
    } = changes;
    let nothing = name.is_none()
        && redirect_uris.is_none()
        && grants.is_none()
        && scopes.is_none()
        && audiences.is_none()
        && post_logout_redirect_uris.is_none()
        && skip_consent.is_none()
        && can_introspect.is_none()
        && rate_tier.is_none()
        && allowed_origins.is_none()
        && registration.is_none();
    if nothing {
        return Err(RegistrationError::NothingToChange);
    }
    let client_id = parse_id(id)?;
    let current = store
        .find_client(&client_id)
        .await?
        .ok_or_else(|| RegistrationError::NotFound(id.to_owned()))?;
    if expected.is_some_and(|expected| expected != current.updated_at) {
        return Err(RegistrationError::Changed(id.to_owned()));
    }
    let view = ClientView::from(&current);
    // The registration it would be, checked by the rules a new one meets.
    let new = NewClient {
        id: None,
        name: name.unwrap_or(view.name),
        public: current.kind == ClientKind::Public,
        redirect_uris: redirect_uris.unwrap_or(view.redirect_uris),
        grant_types: grants
            .unwrap_or_else(|| view.grant_types.iter().map(|g| (*g).to_owned()).collect()),
        scopes: scopes.unwrap_or_else(|| current.scope.iter().map(str::to_owned).collect()),
        audiences: audiences.unwrap_or(view.audiences),
        post_logout_redirect_uris: post_logout_redirect_uris
            .unwrap_or(view.post_logout_redirect_uris),
        skip_consent: skip_consent.unwrap_or(view.skip_consent),
        can_introspect: can_introspect.unwrap_or(view.can_introspect),
        rate_tier: Some(rate_tier.unwrap_or(view.rate_tier)),
        allowed_origins: allowed_origins.unwrap_or(view.allowed_origins),
        registration: registration.or_else(|| current.dynamic.clone()),
    };
    let grant_types = grant_types(&new)?;
    let valid = validate(&new, &grant_types, tiers)?;
    ensure_scopes_have_apis(store, &valid.scope).await?;
    // Strictly later than the version replaced, so that every change has
    // its own `updated_at`.
    let now = clock
        .now()
        .trunc_subsecs(6)
        .max(current.updated_at + chrono::Duration::microseconds(1));
    let client = Client {
        name: valid.name,
        redirect_uris: valid.redirect_uris,
        grant_types,
        scope: valid.scope,
        audiences: valid.audiences,
        post_logout_redirect_uris: valid.post_logout_redirect_uris,
        skip_consent: new.skip_consent,
        can_introspect: new.can_introspect,
        rate_tier: valid.rate_tier,
        allowed_origins: valid.allowed_origins,
        dynamic: new.registration.clone(),
        updated_at: now,
        ..current.clone()
    };
    // A dynamic client's users consented to a client that sent them back
    // to the address they were shown: when its redirect URIs change (by
    // RFC 7592, the admin API or the CLI), they are asked again. A leaked
    // registration access token must not turn remembered consents into
    // silent codes for another host. Forgotten first: if the change then
    // fails, people are only asked once more.
    let same_redirects = client.redirect_uris.len() == current.redirect_uris.len()
        && client
            .redirect_uris
            .iter()
            .all(|uri| current.redirect_uris.contains(uri));
    if client.dynamic.is_some() && !same_redirects {
        store.forget_consents_of_client(&client.id).await?;
    }
    if !store.update_client(&client, current.updated_at).await? {
        return Err(RegistrationError::Changed(id.to_owned()));
    }
    crate::audit::record(crate::audit::Event::ClientUpdated {
        client_id: client.id.as_str(),
    });
    // As stored (PostgreSQL keeps microseconds).
    store
        .find_client(&client_id)
        .await?
        .map(|c| ClientView::from(&c))
        .ok_or_else(|| RegistrationError::NotFound(id.to_owned()))
}

/// Deletes a client and ends everything it holds (`Store::delete_client`);
/// running replicas refuse its tokens within their cache refresh interval.
pub async fn delete(
    store: &dyn Store,
    clock: &dyn Clock,
    id: &str,
) -> Result<(), RegistrationError> {
    delete_if(store, clock, id, None).await
}

/// [`delete`], with `expected` only while the client's `updated_at` is
/// that (`Changed` otherwise): the admin API's `If-Match`.
pub async fn delete_if(
    store: &dyn Store,
    clock: &dyn Clock,
    id: &str,
    expected: Option<DateTime<Utc>>,
) -> Result<(), RegistrationError> {
    let client_id = parse_id(id)?;
    if store
        .delete_client(&client_id, clock.now(), expected)
        .await?
    {
        crate::audit::record(crate::audit::Event::ClientDeleted { client_id: id });
        return Ok(());
    }
    match (expected, store.find_client(&client_id).await?) {
        (Some(_), Some(_)) => Err(RegistrationError::Changed(id.to_owned())),
        _ => Err(RegistrationError::NotFound(id.to_owned())),
    }
}

/// Replaces the secret; the old one stops working once replicas reload.
pub async fn rotate_secret(
    store: &dyn Store,
    digester: &Digester,
    clock: &dyn Clock,
    id: &str,
) -> Result<Credentials, RegistrationError> {
    rotate_secret_if(store, digester, clock, id, None).await
}

/// [`rotate_secret`], with `expected` only while the client's
/// `updated_at` is that (`Changed` otherwise): the admin API checks who
/// may rotate from the version it read.
pub async fn rotate_secret_if(
    store: &dyn Store,
    digester: &Digester,
    clock: &dyn Clock,
    id: &str,
    expected: Option<DateTime<Utc>>,
) -> Result<Credentials, RegistrationError> {
    let client_id = parse_id(id)?;
    let client = store
        .find_client(&client_id)
        .await?
        .ok_or_else(|| RegistrationError::NotFound(id.to_owned()))?;
    if client.kind == ClientKind::Public {
        return Err(RegistrationError::NotConfidential(id.to_owned()));
    }
    let (secret, digest) = new_secret(digester);
    let now = clock
        .now()
        .trunc_subsecs(6)
        .max(client.updated_at + chrono::Duration::microseconds(1));
    if !store
        .replace_client_secret(&client_id, &digest, now, expected)
        .await?
    {
        return Err(match expected {
            Some(_) => RegistrationError::Changed(id.to_owned()),
            None => RegistrationError::NotFound(id.to_owned()),
        });
    }
    crate::audit::record(crate::audit::Event::ClientSecretRotated {
        client_id: client_id.as_str(),
    });
    Ok(Credentials {
        client_id: client_id.to_string(),
        client_secret: Some(secret),
        client: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(public: bool, redirects: &[&str], grants: &[&str]) -> NewClient {
        NewClient {
            name: "app".into(),
            public,
            redirect_uris: redirects.iter().map(|s| s.to_string()).collect(),
            grant_types: grants.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn default_grants_follow_the_client_shape() {
        assert_eq!(
            grant_types(&new(false, &[], &[])).unwrap(),
            vec![GrantType::ClientCredentials]
        );
        assert_eq!(
            grant_types(&new(true, &["https://a.example/cb"], &[])).unwrap(),
            vec![GrantType::AuthorizationCode]
        );
    }

    #[test]
    fn inconsistent_grants_are_refused() {
        assert!(matches!(
            grant_types(&new(true, &[], &["client_credentials"])),
            Err(RegistrationError::PublicClientCredentials)
        ));
        assert!(matches!(
            grant_types(&new(false, &[], &["authorization_code"])),
            Err(RegistrationError::MissingRedirectUri)
        ));
        assert!(matches!(
            grant_types(&new(false, &[], &["refresh_token", "client_credentials"])),
            Err(RegistrationError::RefreshWithoutCode)
        ));
        assert!(matches!(
            grant_types(&new(false, &[], &["password"])),
            Err(RegistrationError::UnknownGrantType(_))
        ));
    }

    #[test]
    fn credentials_json_shows_the_secret_once() {
        let credentials = Credentials {
            client_id: "id".into(),
            client_secret: Some(SecretString::from("s3cret")),
            client: None,
        };
        assert_eq!(
            serde_json::to_string(&credentials).unwrap(),
            r#"{"client_id":"id","client_secret":"s3cret"}"#
        );
    }
}
