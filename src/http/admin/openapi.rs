//! The admin API's OpenAPI 3.1 document, generated from the handlers'
//! `#[utoipa::path]` descriptions as they are registered
//! (`utoipa_actix_web`): a route cannot be served without being described.
use actix_web::dev::{ServiceFactory, ServiceRequest};
use actix_web::{App, HttpResponse, get, web};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;

use super::problem::ProblemBody;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "authd admin API",
        version = "1",
        description = "Manage authd over HTTP: clients, users, APIs, roles, groups, signing keys, registration tokens. \
            Call it with an access token for `urn:authd:admin` (client credentials) holding the \
            `admin:*` scope each operation names. Errors are RFC 9457 problem details."
    ),
    components(schemas(ProblemBody)),
    modifiers(&BearerAuth),
    tags(
        (name = "clients", description = "OAuth clients"),
        (name = "users", description = "Users, their sessions and consents"),
        (name = "apis", description = "APIs, roles, groups and memberships"),
        (name = "keys", description = "Signing keys; the master-key status (read-only)"),
        (name = "registration", description = "Initial access tokens for dynamic client registration (RFC 7591)"),
        (name = "meta", description = "This document"),
    )
)]
struct Base;

/// The `bearer` security scheme every operation names.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".into());
        scheme.description = Some(
            "An access token authd issued to a client for urn:authd:admin (client credentials)"
                .into(),
        );
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The document, serialised once per server.
pub struct Document(pub bytes::Bytes);

/// Mounts the admin API on `app` and returns it with its document.
pub fn mount<T>(app: App<T>) -> (App<T>, utoipa::openapi::OpenApi)
where
    T: ServiceFactory<ServiceRequest, Config = (), Error = actix_web::Error, InitError = ()>,
{
    app.into_utoipa_app()
        .openapi(Base::openapi())
        .service(utoipa_actix_web::scope("/admin/v1").configure(super::configure))
        .split_for_parts()
}

/// The document alone (the tests compare the served one with it).
pub fn document() -> utoipa::openapi::OpenApi {
    mount(App::new()).1
}

/// This document.
#[utoipa::path(
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json", body = Object))
)]
#[get("/openapi.json")]
pub async fn openapi_json(document: web::Data<Document>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document.0.clone())
}
