//! HTTP: one module per endpoint or page. Handlers extract, call one
//! function of `oauth` or `signin` and render. Only this module, `startup`
//! and `telemetry` know actix. Uses every module below it.
pub mod admin;
pub mod assets;
pub mod authorize;
pub mod consent;
pub mod cors;
pub mod discovery;
pub mod error;
pub mod form;
pub mod health;
pub mod jwks;
pub mod login;
pub mod logout;
pub mod metrics;
pub mod pages;
pub mod rate_limit;
pub mod register;
pub mod revocation;
pub mod token;
pub mod userinfo;

use std::sync::Arc;

use actix_web::web;
use arc_swap::ArcSwap;
use bytes::Bytes;

use crate::oauth::token::TokenEndpoint;
use crate::oauth::userinfo::UserInfo;
use crate::signin::flow::AuthorizationFlow;
use crate::signin::session::CookieValue;
use crate::store::Store;
use crate::tokens::Keys;

/// Everything the handlers share.
pub struct AppState {
    pub token_endpoint: TokenEndpoint,
    pub keys: Arc<Keys>,
    /// Shared with every sealer; follows master-key rotations.
    pub master_keys: Arc<crate::crypto::MasterKeys>,
    /// The password peppers; follow master-key rotations too.
    pub peppers: Arc<crate::crypto::password::Peppers>,
    pub store: Arc<dyn Store>,
    /// The discovery document, serialised once per change.
    pub metadata: ArcSwap<Bytes>,
    pub flow: AuthorizationFlow,
    pub userinfo: UserInfo,
    pub pages: pages::Pages,
    pub rate_limits: Arc<crate::limits::limiter::Limits>,
    /// `AUTHD_TRUSTED_PROXIES`, `AUTHD_CLIENT_IP_HEADER`, `AUTHD_IPV6_PREFIX`
    pub client_ip: crate::limits::client_ip::ClientIpSettings,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The admin API's kept answers for `Idempotency-Key` retries.
    pub idempotency: Arc<crate::idempotency::Idempotency>,
    /// The one clock (tests move it).
    pub clock: Arc<dyn crate::clock::Clock>,
    /// `AUTHD_REGISTRATION*`: dynamic client registration.
    pub registration: crate::clients::dynamic::RegistrationSettings,
    /// Digests of registration tokens (initial and registration access).
    pub registration_tokens: crate::crypto::Digester,
    /// Set on SIGTERM: `/readyz` answers 503 while in-flight work drains.
    pub draining: std::sync::atomic::AtomicBool,
}

/// The session cookie of the request, if it sent one.
pub fn session_cookie(
    request: &actix_web::HttpRequest,
    pages: &pages::Pages,
) -> Option<CookieValue> {
    request
        .cookie(pages.cookie_name())
        .map(|cookie| CookieValue::new(cookie.value()))
        .filter(|cookie| !cookie.expose().is_empty())
}

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(
            web::resource("/token")
                .route(web::post().to(token::token))
                .default_service(web::to(error::method_not_allowed_post)),
        )
        .service(
            web::resource("/register")
                .route(web::post().to(register::register))
                .default_service(web::to(error::method_not_allowed_post)),
        )
        .service(
            web::resource("/register/{client_id}")
                .route(web::get().to(register::read))
                .route(web::put().to(register::replace))
                .route(web::delete().to(register::remove))
                .default_service(web::to(error::method_not_allowed_get_put_delete)),
        )
        .service(
            web::resource("/.well-known/jwks.json")
                .route(web::get().to(jwks::jwks))
                .route(web::head().to(jwks::jwks))
                .default_service(web::to(error::method_not_allowed_get)),
        )
        .service(
            web::resource("/.well-known/openid-configuration")
                .route(web::get().to(discovery::metadata))
                .route(web::head().to(discovery::metadata))
                .default_service(web::to(error::method_not_allowed_get)),
        )
        .service(
            web::resource("/.well-known/oauth-authorization-server")
                .route(web::get().to(discovery::metadata))
                .route(web::head().to(discovery::metadata))
                .default_service(web::to(error::method_not_allowed_get)),
        )
        .service(
            web::resource("/revoke")
                .route(web::post().to(revocation::revoke))
                .default_service(web::to(error::method_not_allowed_post)),
        )
        .service(
            web::resource("/introspect")
                .route(web::post().to(revocation::introspect))
                .default_service(web::to(error::method_not_allowed_post)),
        )
        .service(
            web::resource("/authorize")
                .route(web::get().to(authorize::authorize_get))
                .route(web::post().to(authorize::authorize_post))
                .default_service(web::to(error::method_not_allowed_get_post)),
        )
        .service(
            web::resource("/login")
                .route(web::get().to(login::login_page))
                .route(web::head().to(login::login_page))
                .route(web::post().to(login::login))
                .default_service(web::to(error::method_not_allowed_get_head_post)),
        )
        .service(
            web::resource("/consent")
                .route(web::get().to(consent::consent_page))
                .route(web::head().to(consent::consent_page))
                .route(web::post().to(consent::consent))
                .default_service(web::to(error::method_not_allowed_get_head_post)),
        )
        .service(
            web::resource("/logout")
                .route(web::get().to(logout::logout_get))
                .route(web::post().to(logout::logout_post))
                .default_service(web::to(error::method_not_allowed_get_post)),
        )
        .service(
            web::resource("/userinfo")
                .route(web::get().to(userinfo::userinfo_get))
                .route(web::head().to(userinfo::userinfo_get))
                .route(web::post().to(userinfo::userinfo_post))
                .default_service(web::to(error::method_not_allowed_get_head_post)),
        )
        .service(
            web::resource("/assets/authd.css")
                .route(web::get().to(assets::stylesheet))
                .route(web::head().to(assets::stylesheet))
                .default_service(web::to(error::method_not_allowed_get)),
        )
        .service(
            web::resource("/assets/logo.svg")
                .route(web::get().to(assets::logo))
                .route(web::head().to(assets::logo))
                .default_service(web::to(error::method_not_allowed_get)),
        )
        .service(
            web::resource("/healthz")
                .route(web::get().to(health::healthz))
                .route(web::head().to(health::healthz))
                .default_service(web::to(error::method_not_allowed_get)),
        )
        .service(
            web::resource("/readyz")
                .route(web::get().to(health::readyz))
                .route(web::head().to(health::readyz))
                .default_service(web::to(error::method_not_allowed_get)),
        )
        .default_service(web::to(error::not_found));
}
