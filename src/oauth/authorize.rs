//! The authorization endpoint's checks, in the order they must run
//! (RFC 6749 §4.1.2.1, OIDC Core §3.1.2.2):
//!
//! 1. `client_id` known;
//! 2. `redirect_uri` registered (exact, loopback port excepted) — until
//!    both hold, an error is shown to the user and never redirected;
//! 3. everything else, with errors redirected to the verified URI.
use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::{Error, Params};
use crate::clients::ClientRegistry;
use crate::domain::{
    ApiCatalogue, Client, ClientId, CodeChallenge, GrantType, Scope, VerifiedRedirect,
};

pub use crate::domain::scope::OIDC_SCOPES;

/// Longest `state` and `nonce` accepted (bytes): enough for any real client,
/// small enough that the redirect back stays a sane URL and a pending
/// request stays a few kilobytes.
pub const MAX_STATE_LEN: usize = 2048;
pub const MAX_NONCE_LEN: usize = 512;
/// Longest `login_hint` kept (characters): a longer one cannot be a
/// username (`Username`), so it is dropped, not refused.
pub const MAX_LOGIN_HINT_CHARS: usize = 64;

/// OIDC Core §3.1.2.1 `prompt`, as a set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    pub none: bool,
    pub login: bool,
    pub consent: bool,
}

/// A request that passed every check: what the login and consent steps
/// work from, and what the code will carry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect: VerifiedRedirect,
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: CodeChallenge,
    pub prompt: Prompt,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    /// RFC 8707 `resource` values, each an API the client holds a scope of
    /// (pending requests stored before APIs existed have none).
    #[serde(default)]
    pub resources: Vec<String>,
}

impl AuthorizationRequest {
    pub fn scope(&self) -> Scope {
        self.scope.parse().unwrap_or_default()
    }
}

/// Why a request was refused, and where the answer goes.
#[derive(Debug)]
pub enum Rejection {
    /// The client or its redirect URI could not be verified: tell the user,
    /// never redirect (RFC 6749 §4.1.2.1, RFC 9700 §4.1.3).
    Page(Cow<'static, str>),
    /// Anything after that: back to the client.
    Redirect {
        redirect: VerifiedRedirect,
        state: Option<String>,
        error: Error,
    },
}

/// Runs the checks on the query (GET) or form (POST) of a request.
pub async fn validate(
    clients: &ClientRegistry,
    params: &Params,
    repeated: &[String],
) -> Result<(AuthorizationRequest, std::sync::Arc<Client>), Rejection> {
    let client = verify_client(clients, params, repeated).await?;
    let redirect = verify_redirect(&client, params, repeated)?;
    // From here on errors go back to the client, with its `state` when
    // that parameter itself is usable.
    let state = params
        .get("state")
        .filter(|s| valid_echo(s, MAX_STATE_LEN) && !repeated.iter().any(|r| r == "state"))
        .map(str::to_owned);
    let reject = |error: Error| Rejection::Redirect {
        redirect: redirect.clone(),
        state: state.clone(),
        error,
    };
    let apis = clients.apis();
    let request = check_rest(
        &client,
        &apis,
        params,
        repeated,
        redirect.clone(),
        state.clone(),
    )
    .map_err(|error| match unredirected(&client, &error) {
        Some(page) => Rejection::Page(page.into()),
        None => reject(error),
    })?;
    Ok((request, client))
}

/// RFC 9700 §4.11.2: a dynamically registered client's redirect URI is
/// only its own claim, so an error is never sent there without the person
/// having seen a page of authd's first (else any registered URI would make
/// authd an open redirector). `Some(message)`: show this page instead. An
/// operator's client gets its errors by redirect (RFC 6749 §4.1.2.1).
/// `signin::flow` asks it too.
pub fn unredirected(client: &Client, error: &Error) -> Option<String> {
    (!client.operator_vouched()).then(|| {
        let description = error.description();
        let end = if description.ends_with('.') { "" } else { "." };
        format!(
            "The application's request cannot be completed: {description}{end} This application \
             registered itself, so authd does not send you back to it with an error."
        )
    })
}

async fn verify_client(
    clients: &ClientRegistry,
    params: &Params,
    repeated: &[String],
) -> Result<std::sync::Arc<Client>, Rejection> {
    let unknown = || {
        Rejection::Page(
            "The application that sent you here is not registered with this server, so you \
             cannot sign in to it from here."
                .into(),
        )
    };
    if repeated.iter().any(|r| r == "client_id") {
        return Err(Rejection::Page(
            "The sign-in request names the application more than once.".into(),
        ));
    }
    let id = params.get("client_id").ok_or_else(|| {
        Rejection::Page("The sign-in request does not say which application it is for.".into())
    })?;
    let id = ClientId::parse(id).ok_or_else(unknown)?;
    clients
        .find(&id)
        .await
        .map_err(|_| Rejection::Page("The server could not look up the application.".into()))?
        .ok_or_else(unknown)
}

fn verify_redirect(
    client: &Client,
    params: &Params,
    repeated: &[String],
) -> Result<VerifiedRedirect, Rejection> {
    if repeated.iter().any(|r| r == "redirect_uri") {
        return Err(Rejection::Page(
            "The sign-in request names more than one return address.".into(),
        ));
    }
    client
        .verify_redirect_uri(params.get("redirect_uri"))
        .ok_or_else(|| {
            Rejection::Page(
                "The application asked to send you back to an address it has not registered. \
                 For your safety you are not being sent there."
                    .into(),
            )
        })
}

fn invalid(description: &'static str) -> Error {
    Error::InvalidRequest(description.into())
}

/// Every check after the client and redirect URI, in the order of
/// OIDC Core §3.1.2.2.
fn check_rest(
    client: &Client,
    apis: &ApiCatalogue,
    params: &Params,
    repeated: &[String],
    redirect: VerifiedRedirect,
    state: Option<String>,
) -> Result<AuthorizationRequest, Error> {
    // RFC 6749 §3.1: "Request and response parameters MUST NOT be included
    // more than once."
    if let Some(name) = repeated.first() {
        let name = super::params::printable(name);
        return Err(Error::InvalidRequest(
            format!("parameter '{name}' is repeated").into(),
        ));
    }
    // OIDC Core §6: request objects are not supported.
    if params.contains("request") {
        return Err(Error::RequestNotSupported);
    }
    if params.contains("request_uri") {
        return Err(Error::RequestUriNotSupported);
    }
    match params.get("response_mode") {
        None | Some("query") => {}
        Some(_) => return Err(invalid("response_mode must be query")),
    }
    match params.get("response_type") {
        None => return Err(invalid("response_type is missing")),
        Some("code") => {}
        Some(_) => {
            return Err(Error::UnsupportedResponseType(
                "only response_type=code is supported".into(),
            ));
        }
    }
    if !client.allows_grant(GrantType::AuthorizationCode) {
        return Err(Error::UnauthorizedClient(
            "this client may not use the authorization code grant".into(),
        ));
    }
    if params.get("state").is_some() && state.is_none() {
        return Err(invalid(
            "state must be 1 to 2048 printable ASCII characters (RFC 6749 A.5)",
        ));
    }
    let scope = requested_scope(client, params.get("scope"))?;
    let resources = params.all("resource");
    super::access::targets(apis, client, resources, None, &scope)?;
    let code_challenge = pkce(params)?;
    let prompt = prompt(params.get("prompt"))?;
    let max_age = match params.get("max_age") {
        None => None,
        Some(value) => Some(
            value
                .parse::<u32>()
                .map_err(|_| invalid("max_age must be a whole number of seconds"))?,
        ),
    };
    let nonce = params.get("nonce");
    // OIDC Core §3.1.2.1 does not restrict `nonce`'s characters; control
    // characters have no place in it, and would grow sixfold in JSON.
    if nonce.is_some_and(|n| n.len() > MAX_NONCE_LEN || n.chars().any(char::is_control)) {
        return Err(invalid(
            "nonce must be at most 512 bytes without control characters",
        ));
    }
    Ok(AuthorizationRequest {
        client_id: client.id.to_string(),
        redirect,
        scope: scope.to_string(),
        state,
        nonce: nonce.map(str::to_owned),
        code_challenge,
        prompt,
        max_age: max_age.map(i64::from),
        // A hint only: shown pre-filled, never trusted; silently dropped
        // when it could not be a username.
        login_hint: params
            .get("login_hint")
            .filter(|hint| {
                hint.chars().count() <= MAX_LOGIN_HINT_CHARS && !hint.chars().any(char::is_control)
            })
            .map(str::to_owned),
        resources: resources.to_vec(),
    })
}

/// A `state` authd can echo: RFC 6749 A.5 `state = 1*VSCHAR` (%x20-7E), at
/// most `max` bytes.
fn valid_echo(value: &str, max: usize) -> bool {
    !value.is_empty() && value.len() <= max && value.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

/// RFC 6749 §3.3: a scope is required here (no default is assumed); every
/// token must be registered for the client or be an OIDC scope.
fn requested_scope(client: &Client, scope: Option<&str>) -> Result<Scope, Error> {
    let scope: Scope = scope
        .ok_or_else(|| Error::InvalidScope("scope is required".into()))?
        .parse()
        .map_err(|_| Error::InvalidScope("scope is malformed (RFC 6749 §3.3)".into()))?;
    let mut allowed = client
        .scope
        .union(&Scope::from_tokens(OIDC_SCOPES).expect("OIDC scopes are scope tokens"));
    // OIDC Core §11: offline access, for clients allowed refresh tokens.
    if client.allows_grant(GrantType::RefreshToken) {
        allowed = allowed.union(&Scope::from_tokens(["offline_access"]).expect("a scope token"));
    }
    if scope.is_subset(&allowed) {
        Ok(scope)
    } else {
        Err(Error::InvalidScope(
            "scope includes values this client may not request".into(),
        ))
    }
}

/// RFC 7636 §4.3 with RFC 9700 §2.1.1: a challenge is required from every
/// client and the method must be S256 (an omitted method means `plain`).
fn pkce(params: &Params) -> Result<CodeChallenge, Error> {
    let challenge = params
        .get("code_challenge")
        .ok_or_else(|| invalid("code_challenge is required (PKCE, RFC 7636)"))?;
    if params.get("code_challenge_method") != Some("S256") {
        return Err(invalid("code_challenge_method must be S256"));
    }
    CodeChallenge::parse(challenge)
        .ok_or_else(|| invalid("code_challenge must be 43 to 128 unreserved characters"))
}

/// OIDC Core §3.1.2.1: `none` must stand alone; `select_account` and
/// unknown values are refused rather than ignored.
fn prompt(value: Option<&str>) -> Result<Prompt, Error> {
    let mut prompt = Prompt::default();
    let Some(value) = value else {
        return Ok(prompt);
    };
    for token in value.split(' ').filter(|t| !t.is_empty()) {
        match token {
            "none" => prompt.none = true,
            "login" => prompt.login = true,
            "consent" => prompt.consent = true,
            _ => return Err(invalid("prompt may be none, login or consent")),
        }
    }
    if prompt.none && (prompt.login || prompt.consent) {
        return Err(invalid("prompt=none cannot be combined with other values"));
    }
    Ok(prompt)
}

/// The URI the browser is sent back to: the verified redirect URI with the
/// response parameters appended to any query it already has (RFC 6749
/// §4.1.2), always with `iss` (RFC 9207 §2). Built on the string so the
/// registered URI is not re-normalised.
pub fn response_location(redirect: &VerifiedRedirect, pairs: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        query.append_pair(name, value);
    }
    let separator = if redirect.uri.contains('?') { '&' } else { '?' };
    format!("{}{separator}{}", redirect.uri, query.finish())
}

/// The error redirect for `error` (RFC 6749 §4.1.2.1).
pub fn error_location(
    redirect: &VerifiedRedirect,
    state: Option<&str>,
    issuer: &str,
    error: &Error,
) -> String {
    let description = error.description();
    let mut pairs = vec![
        ("error", error.code()),
        ("error_description", description.as_str()),
    ];
    if let Some(state) = state {
        pairs.push(("state", state));
    }
    pairs.push(("iss", issuer));
    response_location(redirect, &pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_none_stands_alone() {
        assert_eq!(
            prompt(Some("login consent")).unwrap(),
            Prompt {
                none: false,
                login: true,
                consent: true
            }
        );
        assert!(prompt(Some("none")).unwrap().none);
        for bad in ["none login", "consent none", "select_account", "bogus"] {
            assert_eq!(prompt(Some(bad)).unwrap_err().code(), "invalid_request");
        }
    }

    #[test]
    fn response_parameters_are_appended_to_an_existing_query() {
        let redirect = VerifiedRedirect {
            uri: "https://app.example/cb?tenant=a".into(),
            explicit: true,
        };
        assert_eq!(
            response_location(&redirect, &[("code", "x y"), ("iss", "https://id")]),
            "https://app.example/cb?tenant=a&code=x+y&iss=https%3A%2F%2Fid"
        );
    }
}
