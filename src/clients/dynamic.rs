//! Dynamic client registration (RFC 7591) and its management (RFC 7592):
//! a client's metadata in, a client registered through
//! `registration::register` (the CLI's rules, and then this module's), the
//! registered metadata out. `AUTHD_REGISTRATION` chooses who may register:
//! nobody, holders of an initial access token (`registration_tokens`), or
//! anyone (public clients only, within `AUTHD_REGISTRATION_SCOPES`).
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};

use super::registration::{self, ClientChanges, NewClient, RegistrationError};
use super::registration_tokens;
use crate::clock::Clock;
use crate::crypto::{Digester, random};
use crate::domain::{
    Client, ClientId, ClientKind, ClientMetadata, ClientName, DynamicRegistration, GrantType,
    RegisteredVia, Scope, SecretDigest,
};
use crate::limits::buckets::RateLimitSettings;
use crate::store::{self, Store};

/// `AUTHD_REGISTRATION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RegistrationMode {
    /// No `/register` (the default).
    #[default]
    Off,
    /// An initial access token is required (RFC 7591 §3).
    Token,
    /// Anyone may register a public client (an initial access token, when
    /// presented, is honoured as in `token` mode).
    Open,
}

impl FromStr for RegistrationMode {
    type Err = ();

    fn from_str(value: &str) -> Result<Self, ()> {
        match value {
            "off" => Ok(Self::Off),
            "token" => Ok(Self::Token),
            "open" => Ok(Self::Open),
            _ => Err(()),
        }
    }
}

/// Dynamic registration's settings.
#[derive(Debug, Clone)]
pub struct RegistrationSettings {
    pub mode: RegistrationMode,
    /// `AUTHD_REGISTRATION_SCOPES`: what an openly registered client may
    /// hold, and the scope of a client that registers without asking for
    /// one (unless its registration token limits it).
    pub scopes: Vec<String>,
    /// `AUTHD_REGISTRATION_UNUSED_TTL`: openly registered clients that
    /// redeemed no code within this are removed.
    pub unused_ttl: Duration,
}

impl Default for RegistrationSettings {
    fn default() -> Self {
        Self {
            mode: RegistrationMode::Off,
            scopes: ["openid", "profile", "email", "offline_access"]
                .map(str::to_owned)
                .to_vec(),
            unused_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// What a registration request gets instead of a client. The first two are
/// RFC 7591 §3.2.2's error codes; the token errors are RFC 6750's.
#[derive(Debug, thiserror::Error)]
pub enum DynamicError {
    #[error("{0}")]
    InvalidRedirectUri(String),
    #[error("{0}")]
    InvalidClientMetadata(String),
    /// No initial access token (or registration access token) presented.
    #[error("this endpoint requires a bearer token")]
    TokenRequired,
    #[error("the bearer token is unknown, expired or used up")]
    InvalidToken,
    #[error("the registration changed while this request ran; read it and try again")]
    Changed,
    #[error(transparent)]
    Store(#[from] store::Error),
}

impl DynamicError {
    fn metadata(text: impl Into<String>) -> Self {
        Self::InvalidClientMetadata(text.into())
    }
}

/// The client-facing wording of a rule `registration` enforces, in
/// RFC 7591's metadata names rather than the CLI's flags.
impl From<RegistrationError> for DynamicError {
    fn from(error: RegistrationError) -> Self {
        use RegistrationError as E;
        match error {
            E::InvalidName => {
                Self::metadata("client_name must be 1 to 100 characters without control characters")
            }
            E::InvalidRedirectUri { uri, reason } => {
                Self::InvalidRedirectUri(format!("redirect_uris: {uri}: {reason}"))
            }
            E::MissingRedirectUri => Self::InvalidRedirectUri(
                "the authorization_code grant needs at least one redirect_uris entry".into(),
            ),
            E::UnknownGrantType(grant) => Self::metadata(format!(
                "grant_types: {grant} is not supported (authorization_code, refresh_token, client_credentials)"
            )),
            E::PublicClientCredentials => Self::metadata(
                "a public client (token_endpoint_auth_method none) cannot use client_credentials",
            ),
            E::UnusedRedirectUri => {
                Self::metadata("redirect_uris are only used with the authorization_code grant")
            }
            E::RefreshWithoutCode => {
                Self::metadata("refresh_token is only issued with the authorization_code grant")
            }
            E::InvalidScope(scope) => {
                Self::metadata(format!("scope: {scope:?} is not a scope token"))
            }
            E::ScopeWithoutApi(scope) => {
                Self::metadata(format!("scope: {scope} is not a scope this server knows"))
            }
            E::InvalidPostLogoutRedirectUri { uri, reason } => {
                Self::metadata(format!("post_logout_redirect_uris: {uri}: {reason}"))
            }
            E::UnusedPostLogoutRedirectUri => Self::metadata(
                "post_logout_redirect_uris are only used with the authorization_code grant",
            ),
            E::Changed(_) => Self::Changed,
            E::NotFound(_) => Self::InvalidToken,
            E::Store(error) => Self::Store(error),
            other => Self::metadata(other.to_string()),
        }
    }
}

/// A client as registration made or changed it, with what is shown once.
pub struct Registered {
    pub client: Client,
    pub client_secret: Option<SecretString>,
    /// A new registration access token (at registration and each `PUT`).
    pub access_token: Option<SecretString>,
}

/// The token endpoint authentication methods a registered client may
/// name (RFC 7591 §2): a public client's, and the secret methods.
const AUTH_METHODS: [&str; 3] = ["none", "client_secret_basic", "client_secret_post"];

/// What one request may register: how, and within which scopes.
struct Rules {
    via: RegisteredVia,
    /// `None`: any scope a client may be registered with.
    scope_limit: Option<Scope>,
    /// The initial access token to count a use of.
    token_id: Option<String>,
}

/// The metadata a request asks for, read but not yet judged.
struct Requested {
    redirect_uris: Vec<String>,
    post_logout_redirect_uris: Vec<String>,
    auth_method: String,
    grant_types: Vec<String>,
    client_name: Option<String>,
    scope: Option<Vec<String>>,
    metadata: ClientMetadata,
}

fn field<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    body.get(name).filter(|v| !v.is_null())
}

fn string(body: &Map<String, Value>, name: &str) -> Result<Option<String>, DynamicError> {
    match field(body, name) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(DynamicError::metadata(format!("{name} must be a string"))),
    }
}

fn strings(body: &Map<String, Value>, name: &str) -> Result<Option<Vec<String>>, DynamicError> {
    let wrong = || DynamicError::metadata(format!("{name} must be an array of strings"));
    match field(body, name) {
        None => Ok(None),
        Some(Value::Array(items)) if items.len() <= 100 => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned).ok_or_else(wrong))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(wrong()),
    }
}

/// `client_uri` and `logo_uri`: absolute https URLs without credentials.
fn https_url(body: &Map<String, Value>, name: &str) -> Result<Option<String>, DynamicError> {
    let Some(text) = string(body, name)? else {
        return Ok(None);
    };
    // What the URL parser would quietly drop or repair (whitespace,
    // backslashes) is refused, so what is stored and shown is the URL
    // the parser checked.
    let clean = !text
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '\\');
    let url = url::Url::parse(&text).ok().filter(|url| {
        clean
            && url.scheme() == "https"
            && url.host().is_some()
            && url.username().is_empty()
            && url.password().is_none()
            && text.len() <= 2000
    });
    match url {
        Some(_) => Ok(Some(text)),
        None => Err(DynamicError::metadata(format!(
            "{name} must be an https URL of at most 2000 characters"
        ))),
    }
}

/// RFC 7591 §2 `contacts`: e-mail addresses, here at most 10, each
/// plausible as users' are.
fn contacts(body: &Map<String, Value>) -> Result<Vec<String>, DynamicError> {
    let contacts = strings(body, "contacts")?.unwrap_or_default();
    match contacts
        .iter()
        .find(|c| !crate::domain::user::plausible_email(c))
    {
        _ if contacts.len() > 10 => Err(DynamicError::metadata("contacts: at most 10 addresses")),
        Some(bad) => Err(DynamicError::metadata(format!(
            "contacts: {bad:?} is not an e-mail address"
        ))),
        None => Ok(contacts),
    }
}

/// Characters that change how a self-chosen name reads without being seen
/// (Unicode format characters: zero-width, bidirectional overrides and
/// isolates, the BOM): a name shown on the consent page must read as it
/// is.
fn invisible(c: char) -> bool {
    // Unicode's Default_Ignorable_Code_Point ranges (DerivedCoreProperties),
    // which hold the format characters.
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}'..='\u{1160}' | '\u{17B4}'..='\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFB}' | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// Reads RFC 7591 §2 metadata; what authd does not know is ignored.
/// `default_method`: the auth method when none is named.
fn read(body: &Value, default_method: &str) -> Result<Requested, DynamicError> {
    let Value::Object(body) = body else {
        return Err(DynamicError::metadata(
            "the request body must be a JSON object of client metadata",
        ));
    };
    let auth_method =
        string(body, "token_endpoint_auth_method")?.unwrap_or_else(|| default_method.to_owned());
    if !AUTH_METHODS.contains(&auth_method.as_str()) {
        return Err(DynamicError::metadata(format!(
            "token_endpoint_auth_method {auth_method:?} is not supported: use none, client_secret_basic or client_secret_post"
        )));
    }
    let response_types = strings(body, "response_types")?;
    if let Some(bad) = response_types.iter().flatten().find(|t| *t != "code") {
        return Err(DynamicError::metadata(format!(
            "response_types: {bad:?} is not supported (only code)"
        )));
    }
    let grant_types = strings(body, "grant_types")?;
    // RFC 7591 §2.1: the two must agree. Either defaults from the other
    // (RFC 7591 §2: response_types code, grant_types authorization_code).
    let grant_types = match (grant_types, response_types) {
        (None, None) => vec!["authorization_code".to_owned()],
        (None, Some(responses)) if responses.is_empty() => {
            return Err(DynamicError::metadata(
                "grant_types: name at least one grant when response_types is empty",
            ));
        }
        (None, Some(_)) => vec!["authorization_code".to_owned()],
        (Some(grants), responses) => {
            let code_grant = grants.iter().any(|g| g == "authorization_code");
            let code_response = match responses {
                Some(responses) => responses.iter().any(|r| r == "code"),
                None => code_grant,
            };
            if code_grant != code_response {
                return Err(DynamicError::metadata(
                    "response_types code and grant_types authorization_code go together (RFC 7591 §2.1)",
                ));
            }
            if grants.is_empty() {
                return Err(DynamicError::metadata("grant_types must not be empty"));
            }
            grants
        }
    };
    let scope = string(body, "scope")?.map(|scope| {
        scope
            .split_ascii_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    });
    let client_name = string(body, "client_name")?;
    if client_name
        .as_deref()
        .is_some_and(|name| name.chars().any(invisible))
    {
        return Err(DynamicError::metadata(
            "client_name must not hold invisible or direction-changing characters",
        ));
    }
    Ok(Requested {
        redirect_uris: strings(body, "redirect_uris")?.unwrap_or_default(),
        post_logout_redirect_uris: strings(body, "post_logout_redirect_uris")?.unwrap_or_default(),
        client_name,
        scope,
        metadata: ClientMetadata {
            token_endpoint_auth_method: Some(auth_method.clone()),
            scope_limit: None,
            client_uri: https_url(body, "client_uri")?,
            logo_uri: https_url(body, "logo_uri")?,
            contacts: contacts(body)?,
        },
        auth_method,
        grant_types,
    })
}

/// Registration, management and removal, over the same store and keys as
/// the rest of authd.
pub struct Registrar<'a> {
    pub store: &'a dyn Store,
    /// Client secrets' digests.
    pub secrets: &'a Digester,
    /// Initial and registration access tokens' digests.
    pub tokens: &'a Digester,
    pub clock: &'a dyn Clock,
    pub tiers: &'a RateLimitSettings,
    pub settings: &'a RegistrationSettings,
}

impl Registrar<'_> {
    /// The rules for a `POST /register` presenting `presented`.
    async fn rules(&self, presented: Option<&str>) -> Result<Rules, DynamicError> {
        match (presented, self.settings.mode) {
            (_, RegistrationMode::Off) => Err(DynamicError::InvalidToken),
            (Some(token), _) => {
                let record =
                    registration_tokens::usable(self.store, self.tokens, self.clock.now(), token)
                        .await?
                        .ok_or(DynamicError::InvalidToken)?;
                let scope_limit = match &record.scope {
                    None => None,
                    Some(scope) => Some(scope.parse().map_err(|_| store::Error::Corrupt {
                        entity: "registration token",
                        id: record.id.clone(),
                        problem: "scope".into(),
                    })?),
                };
                Ok(Rules {
                    via: RegisteredVia::Token,
                    scope_limit,
                    token_id: Some(record.id),
                })
            }
            (None, RegistrationMode::Token) => Err(DynamicError::TokenRequired),
            (None, RegistrationMode::Open) => Ok(Rules {
                via: RegisteredVia::Open,
                scope_limit: Some(self.open_scopes()),
                token_id: None,
            }),
        }
    }

    fn open_scopes(&self) -> Scope {
        Scope::from_tokens(&self.settings.scopes).unwrap_or_default()
    }

    /// The scope a request gets: what it asked for, within the limit (the
    /// admin API's scopes never), or by default the limit or the
    /// configured scopes.
    fn scope(
        &self,
        requested: Option<Vec<String>>,
        rules: &Rules,
    ) -> Result<Vec<String>, DynamicError> {
        let Some(requested) = requested else {
            let default = rules
                .scope_limit
                .clone()
                .unwrap_or_else(|| self.open_scopes());
            return Ok(default.iter().map(str::to_owned).collect());
        };
        if let Some(admin) = requested
            .iter()
            .find(|s| crate::domain::api::is_admin_scope(s))
        {
            return Err(DynamicError::metadata(format!(
                "scope: {admin} is never given to a registered client"
            )));
        }
        if let Some(limit) = &rules.scope_limit
            && let Some(outside) = requested.iter().find(|s| !limit.contains(s))
        {
            return Err(DynamicError::metadata(format!(
                "scope: {outside} may not be registered here (allowed: {limit})"
            )));
        }
        Ok(requested)
    }

    /// A new registration access token and its digest.
    fn access_token(&self) -> (SecretString, SecretDigest) {
        let token = SecretString::from(random::secret_token());
        let digest = SecretDigest {
            digest: self.tokens.digest(token.expose_secret().as_bytes()),
            key_version: self.tokens.version(),
        };
        (token, digest)
    }

    /// `POST /register` (RFC 7591 §3).
    pub async fn register(
        &self,
        presented: Option<&str>,
        body: &Value,
    ) -> Result<Registered, DynamicError> {
        let rules = self.rules(presented).await?;
        let default_method = match rules.via {
            RegisteredVia::Open => "none",
            RegisteredVia::Token => "client_secret_basic",
        };
        let requested = read(body, default_method)?;
        if rules.via == RegisteredVia::Open && requested.auth_method != "none" {
            return Err(DynamicError::metadata(
                "open registration registers public clients only: token_endpoint_auth_method must be none",
            ));
        }
        let scopes = self.scope(requested.scope, &rules)?;
        let id = ClientId::generate();
        let name = requested
            .client_name
            .unwrap_or_else(|| default_name(&requested.redirect_uris, &id));
        let (access_token, digest) = self.access_token();
        let mut metadata = requested.metadata;
        metadata.scope_limit = rules.scope_limit.as_ref().map(ToString::to_string);
        let new = NewClient {
            id: Some(id.clone()),
            name,
            public: requested.auth_method == "none",
            redirect_uris: requested.redirect_uris,
            grant_types: requested.grant_types,
            scopes,
            post_logout_redirect_uris: requested.post_logout_redirect_uris,
            registration: Some(DynamicRegistration {
                via: rules.via,
                access_token: digest,
                metadata,
            }),
            ..NewClient::default()
        };
        let actor = match &rules.token_id {
            Some(token_id) => format!("registration-token:{token_id}"),
            None => "registration:open".to_owned(),
        };
        let credentials = crate::audit::acting_as(
            actor,
            registration::register(self.store, self.secrets, self.clock, self.tiers, new),
        )
        .await?;
        // A use of the initial access token is counted once the client
        // exists (a refused request costs none); of concurrent last uses,
        // the loser's client is removed again.
        if let Some(token_id) = &rules.token_id
            && !self
                .store
                .use_registration_token(token_id, self.clock.now())
                .await?
        {
            crate::audit::acting_as(
                "registration:lost-race".to_owned(),
                registration::delete(self.store, self.clock, id.as_str()),
            )
            .await?;
            return Err(DynamicError::InvalidToken);
        }
        let client = self
            .store
            .find_client(&id)
            .await?
            .ok_or(DynamicError::Changed)?;
        Ok(Registered {
            client,
            client_secret: credentials.client_secret,
            access_token: Some(access_token),
        })
    }

    /// The client `id` if `presented` is its registration access token
    /// (RFC 7592 §2: an unknown client answers as a wrong token does).
    async fn authenticate(
        &self,
        id: &str,
        presented: Option<&str>,
    ) -> Result<Client, DynamicError> {
        let presented = presented.ok_or(DynamicError::TokenRequired)?;
        let Some(client_id) = ClientId::parse(id) else {
            return Err(DynamicError::InvalidToken);
        };
        let client = self
            .store
            .find_client(&client_id)
            .await?
            .ok_or(DynamicError::InvalidToken)?;
        match &client.dynamic {
            Some(dynamic)
                if self
                    .tokens
                    .verify(presented.as_bytes(), &dynamic.access_token.digest) =>
            {
                Ok(client)
            }
            _ => Err(DynamicError::InvalidToken),
        }
    }

    /// `GET /register/{id}` (RFC 7592 §2.1).
    pub async fn read(&self, id: &str, presented: Option<&str>) -> Result<Client, DynamicError> {
        self.authenticate(id, presented).await
    }

    /// `PUT /register/{id}` (RFC 7592 §2.2): the body replaces the
    /// metadata (omitted values take their defaults); the registration
    /// access token is replaced; the client's type and secret stay.
    pub async fn replace(
        &self,
        id: &str,
        presented: Option<&str>,
        body: &Value,
    ) -> Result<Registered, DynamicError> {
        let current = self.authenticate(id, presented).await?;
        let dynamic = current.dynamic.clone().ok_or(DynamicError::InvalidToken)?;
        let Value::Object(fields) = body else {
            return Err(DynamicError::metadata(
                "the request body must be a JSON object of client metadata",
            ));
        };
        if string(fields, "client_id")?.as_deref() != Some(id) {
            return Err(DynamicError::metadata(
                "client_id must be given and be this client's (RFC 7592 §2.2)",
            ));
        }
        if let Some(secret) = string(fields, "client_secret")? {
            let matches = current
                .secret
                .as_ref()
                .is_some_and(|s| self.secrets.verify(secret.as_bytes(), &s.digest));
            if !matches {
                return Err(DynamicError::metadata(
                    "client_secret does not match this client's: a secret cannot be chosen",
                ));
            }
        }
        let current_method = dynamic
            .metadata
            .token_endpoint_auth_method
            .clone()
            .unwrap_or_else(|| match current.kind {
                ClientKind::Public => "none".into(),
                ClientKind::Confidential => "client_secret_basic".into(),
            });
        let requested = read(body, &current_method)?;
        if (requested.auth_method == "none") != (current.kind == ClientKind::Public) {
            return Err(DynamicError::metadata(
                "token_endpoint_auth_method cannot change between none and a secret method: register a new client",
            ));
        }
        let rules = Rules {
            via: dynamic.via,
            scope_limit: match dynamic.via {
                RegisteredVia::Open => Some(self.open_scopes()),
                // A stored limit that does not read is corrupt, never
                // "no limit".
                RegisteredVia::Token => match dynamic.metadata.scope_limit.as_deref() {
                    None => None,
                    Some(limit) => Some(limit.parse().map_err(|_| store::Error::Corrupt {
                        entity: "client",
                        id: current.id.to_string(),
                        problem: "registration scope limit".into(),
                    })?),
                },
            },
            token_id: None,
        };
        let scopes = self.scope(requested.scope, &rules)?;
        let name = requested
            .client_name
            .unwrap_or_else(|| default_name(&requested.redirect_uris, &current.id));
        let (access_token, digest) = self.access_token();
        let mut metadata = requested.metadata;
        metadata.scope_limit = dynamic.metadata.scope_limit.clone();
        let changes = ClientChanges {
            name: Some(name),
            redirect_uris: Some(requested.redirect_uris),
            grant_types: Some(requested.grant_types),
            scopes: Some(scopes),
            post_logout_redirect_uris: Some(requested.post_logout_redirect_uris),
            registration: Some(DynamicRegistration {
                via: dynamic.via,
                access_token: digest,
                metadata,
            }),
            ..ClientChanges::default()
        };
        crate::audit::acting_as(
            format!("client:{id}"),
            registration::update(
                self.store,
                self.clock,
                self.tiers,
                id,
                changes,
                Some(current.updated_at),
            ),
        )
        .await?;
        let client = self
            .store
            .find_client(&current.id)
            .await?
            .ok_or(DynamicError::InvalidToken)?;
        Ok(Registered {
            client,
            client_secret: None,
            access_token: Some(access_token),
        })
    }

    /// `DELETE /register/{id}` (RFC 7592 §2.3): the client and everything
    /// it holds.
    pub async fn remove(&self, id: &str, presented: Option<&str>) -> Result<(), DynamicError> {
        let current = self.authenticate(id, presented).await?;
        crate::audit::acting_as(
            format!("client:{id}"),
            registration::delete_if(self.store, self.clock, id, Some(current.updated_at)),
        )
        .await?;
        Ok(())
    }
}

/// A client that gives no `client_name` is named by where it sends people
/// back to (the host of its first redirect URI), or by its id.
fn default_name(redirect_uris: &[String], id: &ClientId) -> String {
    redirect_uris
        .first()
        .and_then(|uri| url::Url::parse(uri).ok())
        .and_then(|url| url.host_str().map(str::to_owned))
        .filter(|host| ClientName::parse(host).is_some())
        .unwrap_or_else(|| id.to_string())
}

/// The registered metadata as RFC 7591 §3.2.1 / RFC 7592 §3 answer it;
/// `registered`'s secrets are shown when it has them (once).
pub fn response(registered: &Registered, registration_client_uri: &str) -> Value {
    let client = &registered.client;
    let dynamic = client.dynamic.as_ref();
    let auth_method = dynamic
        .and_then(|d| d.metadata.token_endpoint_auth_method.clone())
        .unwrap_or_else(|| match client.kind {
            ClientKind::Public => "none".into(),
            ClientKind::Confidential => "client_secret_basic".into(),
        });
    let signs_users_in = client.allows_grant(GrantType::AuthorizationCode);
    let mut body = json!({
        "client_id": client.id.as_str(),
        "client_id_issued_at": client.created_at.timestamp(),
        "client_name": client.name.as_str(),
        "redirect_uris": client.redirect_uris.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
        "grant_types": client.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "response_types": if signs_users_in { vec!["code"] } else { vec![] },
        "token_endpoint_auth_method": auth_method,
        "scope": client.scope.to_string(),
        "registration_client_uri": registration_client_uri,
    });
    let object = body.as_object_mut().expect("an object");
    if !client.post_logout_redirect_uris.is_empty() {
        object.insert(
            "post_logout_redirect_uris".into(),
            json!(
                client
                    .post_logout_redirect_uris
                    .iter()
                    .map(|u| u.as_str())
                    .collect::<Vec<_>>()
            ),
        );
    }
    if let Some(metadata) = dynamic.map(|d| &d.metadata) {
        if let Some(uri) = &metadata.client_uri {
            object.insert("client_uri".into(), json!(uri));
        }
        if let Some(uri) = &metadata.logo_uri {
            object.insert("logo_uri".into(), json!(uri));
        }
        if !metadata.contacts.is_empty() {
            object.insert("contacts".into(), json!(metadata.contacts));
        }
    }
    if client.kind == ClientKind::Confidential {
        // RFC 7591 §3.2.1: 0, the secret does not expire. authd keeps
        // only its digest, so it is shown at registration alone.
        object.insert("client_secret_expires_at".into(), json!(0));
    }
    if let Some(secret) = &registered.client_secret {
        object.insert("client_secret".into(), json!(secret.expose_secret()));
    }
    if let Some(token) = &registered.access_token {
        object.insert(
            "registration_access_token".into(),
            json!(token.expose_secret()),
        );
    }
    body
}

/// Whether an openly registered client's use should be recorded: the first
/// code it redeems keeps it from [`remove_unused`].
pub fn records_use(client: &Client) -> bool {
    client
        .dynamic
        .as_ref()
        .is_some_and(|d| d.via == RegisteredVia::Open)
}

/// Removes openly registered clients that redeemed no code within
/// `unused_ttl` of registering, a batch at a time; returns how many.
pub async fn remove_unused(
    store: &dyn Store,
    clock: &dyn Clock,
    unused_ttl: Duration,
) -> Result<u64, store::Error> {
    let Some(cutoff) = chrono::Duration::from_std(unused_ttl)
        .ok()
        .and_then(|ttl| clock.now().checked_sub_signed(ttl))
    else {
        return Ok(0);
    };
    let mut removed = 0;
    loop {
        let batch = store.delete_unused_open_clients(cutoff, 100).await?;
        for id in &batch {
            crate::audit::record(crate::audit::Event::ClientDeleted {
                client_id: id.as_str(),
            });
        }
        removed += batch.len() as u64;
        if batch.len() < 100 {
            return Ok(removed);
        }
    }
}
