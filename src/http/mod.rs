//! HTTP: one module per endpoint. Handlers extract, call one `oauth`
//! function and render. Only this module and `startup` know actix.
pub mod discovery;
pub mod error;
pub mod form;
pub mod health;
pub mod jwks;
pub mod token;

use std::sync::Arc;

use actix_web::web;
use arc_swap::ArcSwap;
use bytes::Bytes;

use crate::oauth::token::TokenEndpoint;
use crate::store::Store;
use crate::tokens::Keys;

/// Everything the handlers share.
pub struct AppState {
    pub token_endpoint: TokenEndpoint,
    pub keys: Arc<Keys>,
    pub store: Arc<dyn Store>,
    /// The discovery document, serialised once per change.
    pub metadata: ArcSwap<Bytes>,
}

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(
            web::resource("/token")
                .route(web::post().to(token::token))
                .default_service(web::to(error::method_not_allowed_post)),
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
        .service(web::resource("/healthz").route(web::get().to(health::healthz)))
        .service(web::resource("/readyz").route(web::get().to(health::readyz)))
        .default_service(web::to(error::not_found));
}
