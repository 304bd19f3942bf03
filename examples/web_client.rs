//! A sample web application (an OpenID Connect relying party) that signs a
//! person in through authd with the authorization code flow and PKCE
//! (RFC 6749 §4.1, RFC 7636), verifies the ID token and shows what it learnt.
//!
//! Run authd, register this app as a client, create a user, start the example:
//!
//! ```sh
//! cargo run --release                  # authd on http://127.0.0.1:8080
//! authd clients create --name "Example web app" \
//!     --redirect-uri http://127.0.0.1:8081/callback \
//!     --post-logout-redirect-uri http://127.0.0.1:8081/ \
//!     --scope openid --scope profile --scope email
//! printf '%s\n' 'correct horse battery' | authd users create --username alice --password-stdin
//! CLIENT_ID=... CLIENT_SECRET=... cargo run --example web_client
//! ```
//!
//! then open http://127.0.0.1:8081 and sign in as alice.
//!
//! Environment: `AUTHD_URL` (the issuer, default http://127.0.0.1:8080),
//! `CLIENT_ID` (required), `CLIENT_SECRET` (omit it for a public client),
//! `WEB_CLIENT_BIND` (default 127.0.0.1:8081).
//!
//! Without cookies (actix-web is built without them here) there is no session:
//! a successful callback renders its result directly, and the home page only
//! offers to sign in.
use std::collections::HashMap;
use std::error::Error;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::http::{StatusCode, header};
use actix_web::{App, HttpResponse, HttpServer, get, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use minijinja::{Environment, Value, context};
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use rand::RngCore;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A login that was started but has not come back yet is forgotten after this.
const PENDING_TTL: Duration = Duration::from_secs(600);
const SCOPES: [&str; 3] = ["openid", "profile", "email"];

/// The token response of OpenID Connect carries an `id_token` next to the
/// OAuth fields; oauth2 exposes it through these extra fields.
#[derive(Deserialize, Serialize, Debug, Clone)]
struct IdTokenFields {
    id_token: Option<String>,
}
impl ExtraTokenFields for IdTokenFields {}

type OidcTokenResponse = StandardTokenResponse<IdTokenFields, BasicTokenType>;
/// Authorization and token endpoints set; device, introspection, revocation not.
type OidcClient = oauth2::Client<
    BasicErrorResponse,
    OidcTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// The parts of the discovery document (OpenID Connect Discovery 1.0 §3) we use.
#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    userinfo_endpoint: String,
    end_session_endpoint: String,
}

struct PendingLogin {
    verifier: PkceCodeVerifier,
    nonce: String,
    started: Instant,
}

struct AppState {
    oauth: OidcClient,
    http: reqwest::Client,
    meta: Discovery,
    client_id: String,
    home_url: String,
    /// Keyed by `state`: the only thing that ties a callback to its login.
    pending: Mutex<HashMap<String, PendingLogin>>,
    templates: Environment<'static>,
}

const BASE_HTML: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Example web app</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 48rem; margin: 2rem auto; padding: 0 1rem">
<h1 style="font-size: 1.4rem">Example web app</h1>
{% block body %}{% endblock %}
</body></html>"#;
const HOME_HTML: &str = r#"{% extends "base.html" %}{% block body %}
<p>This app knows nothing about you until you sign in at {{ issuer }}.</p>
<p><a href="/login" style="padding: .5rem 1rem; background: #1d4ed8; color: white; border-radius: .3rem; text-decoration: none">Sign in with authd</a></p>
{% endblock %}"#;
const SIGNED_IN_HTML: &str = r#"{% extends "base.html" %}{% block body %}
<p>Signed in as <strong>{{ name }}</strong> (<code>sub</code> {{ subject }}). Granted scope: <code>{{ scope }}</code></p>
<h2 style="font-size: 1.1rem">ID token claims (verified)</h2>
<pre style="background: #f3f4f6; padding: 1rem; overflow-x: auto">{{ claims }}</pre>
<h2 style="font-size: 1.1rem">UserInfo</h2>
<pre style="background: #f3f4f6; padding: 1rem; overflow-x: auto">{{ userinfo }}</pre>
<p><a href="{{ logout_url }}">Sign out</a> · <a href="/">Home</a></p>
{% endblock %}"#;
const ERROR_HTML: &str = r#"{% extends "base.html" %}{% block body %}
<h2 style="font-size: 1.1rem; color: #b91c1c">{{ title }}</h2>
<p>{{ detail }}</p>
<p><a href="/">Home</a></p>
{% endblock %}"#;

/// Renders a template; `no-store` because these pages show personal data, and
/// `no-referrer` because the callback URL holds the authorization code.
fn page(app: &AppState, status: StatusCode, name: &str, ctx: Value) -> HttpResponse {
    match app.templates.get_template(name).and_then(|t| t.render(ctx)) {
        Ok(body) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::REFERRER_POLICY, "no-referrer"))
            .body(body),
        Err(e) => {
            eprintln!("rendering {name}: {e}");
            HttpResponse::InternalServerError().body("template error")
        }
    }
}

fn error_page(app: &AppState, status: StatusCode, title: &str, detail: &str) -> HttpResponse {
    eprintln!("{title}: {detail}");
    page(app, status, "error.html", context! { title, detail })
}

/// An error and its causes on one line: oauth2's errors keep the useful part
/// (e.g. "connection refused") in `source()`.
fn describe(err: &dyn Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[get("/")]
async fn home(app: web::Data<AppState>) -> HttpResponse {
    let ctx = context! { issuer => &app.meta.issuer };
    page(&app, StatusCode::OK, "home.html", ctx)
}

#[get("/login")]
async fn login(app: web::Data<AppState>) -> HttpResponse {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    // The nonce binds the ID token to this login (OpenID Connect Core §3.1.2.1).
    let nonce = random_token();
    let (url, state) = app
        .oauth
        .authorize_url(CsrfToken::new_random)
        .add_scopes(SCOPES.map(|s| Scope::new(s.to_owned())))
        .set_pkce_challenge(challenge)
        .add_extra_param("nonce", nonce.clone())
        .url();
    // A poisoned lock only means another request panicked; the map is still usable.
    let mut pending = app.pending.lock().unwrap_or_else(PoisonError::into_inner);
    pending.retain(|_, p| p.started.elapsed() < PENDING_TTL);
    let login = PendingLogin {
        verifier,
        nonce,
        started: Instant::now(),
    };
    pending.insert(state.secret().clone(), login);
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, url.as_str()))
        .finish()
}

#[derive(Deserialize)]
struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Why a sign-in failed, for the error page: status, title, detail.
type Failure = (StatusCode, &'static str, String);

fn rejected(title: &'static str, detail: impl Into<String>) -> Failure {
    (StatusCode::BAD_REQUEST, title, detail.into())
}

fn upstream(title: &'static str, detail: impl Into<String>) -> Failure {
    (StatusCode::BAD_GATEWAY, title, detail.into())
}

#[get("/callback")]
async fn callback(app: web::Data<AppState>, query: web::Query<CallbackParams>) -> HttpResponse {
    match finish_sign_in(&app, query.into_inner()).await {
        Ok(ctx) => page(&app, StatusCode::OK, "signed_in.html", ctx),
        Err((status, title, detail)) => error_page(&app, status, title, &detail),
    }
}

async fn finish_sign_in(app: &AppState, params: CallbackParams) -> Result<Value, Failure> {
    if let Some(error) = params.error {
        let detail = match params.error_description {
            Some(description) => format!("{error}: {description}"),
            None => error,
        };
        return Err(rejected("authd refused the sign-in", detail));
    }
    let (Some(code), Some(state)) = (params.code, params.state) else {
        return Err(rejected("Bad callback", "code or state is missing."));
    };
    // Removing the entry makes each state single-use.
    let pending = app
        .pending
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&state)
        .filter(|p| p.started.elapsed() < PENDING_TTL)
        .ok_or_else(|| {
            let why = "This sign-in was not started here, was already used or has expired.";
            rejected("Unknown state", why)
        })?;
    // RFC 9207 §2.4: a response from another issuer (mix-up attack) is rejected.
    if params.iss.as_deref() != Some(app.meta.issuer.as_str()) {
        let got = params.iss.as_deref().unwrap_or("nothing");
        let why = format!("Expected iss {}, got {got}.", app.meta.issuer);
        return Err(rejected("Wrong issuer in the response", why));
    }

    let tokens = app
        .oauth
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(pending.verifier)
        .request_async(&app.http)
        .await
        .map_err(|e| upstream("Code exchange failed", describe(&e)))?;
    let id_token = tokens.extra_fields().id_token.as_deref();
    let id_token = id_token.ok_or_else(|| upstream("No ID token", "The response has none."))?;
    let claims = verify_id_token(app, id_token, &pending.nonce)
        .await
        .map_err(|e| upstream("The ID token is not valid", e))?;
    let request = app.http.get(&app.meta.userinfo_endpoint);
    let userinfo: serde_json::Value = get_json(request.bearer_auth(tokens.access_token().secret()))
        .await
        .map_err(|e| upstream("UserInfo request failed", e))?;
    // OpenID Connect Core §5.3.2: UserInfo must be about the same subject.
    let subject = claims["sub"].as_str().unwrap_or_default();
    if userinfo["sub"].as_str() != Some(subject) {
        return Err(upstream(
            "UserInfo mismatch",
            "Its sub differs from the ID token's.",
        ));
    }
    // RFC 6749 §5.1: no scope in the response means exactly the requested scope.
    let granted: Option<Vec<&str>> = tokens
        .scopes()
        .map(|s| s.iter().map(|s| s.as_str()).collect());
    let scope = granted.unwrap_or(SCOPES.to_vec()).join(" ");
    let mut logout_url = url::Url::parse(&app.meta.end_session_endpoint)
        .map_err(|e| upstream("Bad end_session_endpoint", e.to_string()))?;
    // `state` comes back on the redirect to `/`; with no session to restore
    // this app does not need it, it only shows the round trip.
    logout_url
        .query_pairs_mut()
        .append_pair("id_token_hint", id_token)
        .append_pair("post_logout_redirect_uri", &app.home_url)
        .append_pair("client_id", &app.client_id)
        .append_pair("state", &random_token());
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    // A name to greet with: the profile claims when granted, else the subject.
    let name = userinfo["preferred_username"].as_str().unwrap_or(subject);
    Ok(context! {
        subject, scope, name,
        logout_url => logout_url.as_str(),
        claims => pretty(&claims),
        userinfo => pretty(&userinfo),
    })
}

/// OpenID Connect Core §3.1.3.7: RS256 signature by a key from the JWKS,
/// `iss`, `aud` (and `azp`), `exp`, and the nonce sent with the login.
async fn verify_id_token(
    app: &AppState,
    id_token: &str,
    nonce: &str,
) -> Result<serde_json::Value, String> {
    let header = jsonwebtoken::decode_header(id_token).map_err(|e| e.to_string())?;
    if header.alg != Algorithm::RS256 {
        return Err(format!("alg is {:?}, only RS256 is accepted", header.alg));
    }
    let kid = header.kid.ok_or("the header has no kid")?;
    // Fetched per sign-in rather than cached so that a rotated key is picked
    // up; a real app would cache it and refetch on an unknown kid.
    let jwks: JwkSet = get_json(app.http.get(&app.meta.jwks_uri))
        .await
        .map_err(|e| format!("fetching the JWKS: {e}"))?;
    let jwk = jwks.find(&kid).ok_or("its kid is not in the JWKS")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;

    let mut validation = Validation::new(Algorithm::RS256);
    validation.leeway = 60;
    validation.set_issuer(&[&app.meta.issuer]);
    validation.set_audience(&[&app.client_id]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "sub", "aud"]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(id_token, &key, &validation)
        .map_err(|e| e.to_string())?
        .claims;
    if claims["nonce"].as_str() != Some(nonce) {
        return Err("its nonce does not match this sign-in".to_owned());
    }
    if claims["azp"]
        .as_str()
        .is_some_and(|azp| azp != app.client_id)
    {
        return Err("it was issued to another client (azp)".to_owned());
    }
    Ok(claims)
}

async fn get_json<T: DeserializeOwned>(request: reqwest::RequestBuilder) -> Result<T, String> {
    let result = async { request.send().await?.error_for_status()?.json().await }.await;
    result.map_err(|e| describe(&e))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let authd_url = env("AUTHD_URL").unwrap_or_else(|| "http://127.0.0.1:8080".to_owned());
    let bind: SocketAddr = env("WEB_CLIENT_BIND")
        .unwrap_or_else(|| "127.0.0.1:8081".to_owned())
        .parse()
        .expect("WEB_CLIENT_BIND must be an address like 127.0.0.1:8081");
    let home_url = format!("http://127.0.0.1:{}/", bind.port());
    let redirect_uri = format!("{home_url}callback");
    let Some(client_id) = env("CLIENT_ID") else {
        eprintln!(
            "CLIENT_ID is not set. Register this app with authd first:\n\n  \
             authd clients create --name \"Example web app\" --redirect-uri {redirect_uri} \
             --post-logout-redirect-uri {home_url} --scope openid --scope profile --scope email\n\n\
             then run it with the printed credentials:\n\n  \
             CLIENT_ID=... CLIENT_SECRET=... cargo run --example web_client"
        );
        std::process::exit(2);
    };

    // oauth2 recommends not following redirects, so a token request cannot be
    // bounced somewhere else (SSRF).
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("building the HTTP client");
    let discovery_url = format!(
        "{}/.well-known/openid-configuration",
        authd_url.trim_end_matches('/')
    );
    let document: serde_json::Value =
        get_json(http.get(&discovery_url))
            .await
            .unwrap_or_else(|e| {
                eprintln!("Cannot read {discovery_url}: {e}\nIs authd running at {authd_url}?");
                std::process::exit(1);
            });
    // An authd without browser sign-in publishes no authorization_endpoint.
    let meta: Discovery = serde_json::from_value(document).unwrap_or_else(|e| {
        eprintln!("{discovery_url} lacks what sign-in needs: {e}");
        std::process::exit(1);
    });
    // OpenID Connect Discovery §4.3: the document must be about the issuer we asked.
    if meta.issuer.trim_end_matches('/') != authd_url.trim_end_matches('/') {
        eprintln!(
            "{discovery_url} names issuer {}; set AUTHD_URL to exactly that.",
            meta.issuer
        );
        std::process::exit(1);
    }

    let mut oauth: OidcClient = oauth2::Client::new(ClientId::new(client_id.clone()))
        .set_auth_uri(
            AuthUrl::new(meta.authorization_endpoint.clone())
                .expect("authorization_endpoint is not a URL"),
        )
        .set_token_uri(
            TokenUrl::new(meta.token_endpoint.clone()).expect("token_endpoint is not a URL"),
        )
        .set_redirect_uri(RedirectUrl::new(redirect_uri).expect("redirect URI"));
    // With a secret oauth2 uses client_secret_basic; without, it sends only client_id.
    if let Some(secret) = env("CLIENT_SECRET") {
        oauth = oauth.set_client_secret(ClientSecret::new(secret));
    }

    let mut templates = Environment::new();
    for (name, source) in [
        ("base.html", BASE_HTML),
        ("home.html", HOME_HTML),
        ("signed_in.html", SIGNED_IN_HTML),
        ("error.html", ERROR_HTML),
    ] {
        templates
            .add_template(name, source)
            .expect("template syntax");
    }
    let state = web::Data::new(AppState {
        oauth,
        http,
        meta,
        client_id,
        home_url,
        pending: Mutex::new(HashMap::new()),
        templates,
    });

    println!("Example web app on http://{bind} (signing in through {authd_url})");
    HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .service(home)
            .service(login)
            .service(callback)
    })
    .bind(bind)?
    .run()
    .await
}
