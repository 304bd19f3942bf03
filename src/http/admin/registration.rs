//! `/admin/v1/registration-tokens`: what `authd registration-tokens …`
//! does, over HTTP, through the same functions
//! (`clients::registration_tokens`). All of it needs
//! `admin:registration:write`: a list shows which tokens can still register
//! clients, which is for those who may make them.
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::problem::ProblemBody;
use super::state;
use super::{Authorized, Caller, Problem, RegistrationWrite};
use crate::clients::registration_tokens::{
    self, NewRegistrationToken, RegistrationTokenError, RegistrationTokenView,
};
use secrecy::ExposeSecret;

/// A registration token to make.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistrationTokenInput {
    /// Seconds it may be used (at most 10 years: `MAX_EXPIRES_IN_SECS`);
    /// absent: until revoked.
    #[serde(default, deserialize_with = "super::whole_u32")]
    #[schema(minimum = 1, maximum = 315360000)]
    pub expires_in: Option<u32>,
    /// How many clients it may register; absent: any number.
    #[serde(default, deserialize_with = "super::whole_u32")]
    #[schema(minimum = 1, maximum = 1000000)]
    pub max_uses: Option<u32>,
    /// The scopes the clients it registers may hold (RFC 6749 §3.3
    /// tokens; never the admin API's); absent or empty: any.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// A new token, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedToken {
    /// The initial access token (RFC 7591 §3): clients send it as
    /// `Authorization: Bearer` to `POST /register`.
    pub token: String,
    #[serde(flatten)]
    pub view: RegistrationTokenView,
}

fn problem(error: RegistrationTokenError) -> Problem {
    match error {
        RegistrationTokenError::NotFound(id) => {
            Problem::not_found(format!("no registration token {id}"))
        }
        RegistrationTokenError::Store(error) => Problem::internal(error),
        other => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_value",
            other
                .to_string()
                .replace("--scope", "scopes")
                .replace("--max-uses", "max_uses")
                .replace("--expires-in", "expires_in"),
        ),
    }
}

/// Makes an initial access token for `POST /register`.
#[utoipa::path(
    tag = "registration",
    request_body = RegistrationTokenInput,
    responses(
        (status = 201, description = "Made; the token is shown this once", body = IssuedToken),
        (status = 400, description = "Malformed JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks admin:registration:write", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A value the rules refuse", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin:registration:write"]))
)]
#[post("/registration-tokens")]
pub async fn create_registration_token(
    request: HttpRequest,
    Authorized(caller, input): Authorized<RegistrationWrite, RegistrationTokenInput>,
) -> Result<HttpResponse, Problem> {
    let state = state(&request);
    let input = input.into_inner();
    let issued = caller
        .acting(registration_tokens::create(
            state.store.as_ref(),
            &state.registration_tokens,
            state.clock.as_ref(),
            NewRegistrationToken {
                expires_in: input
                    .expires_in
                    .map(|s| std::time::Duration::from_secs(u64::from(s))),
                max_uses: input.max_uses,
                scopes: input.scopes,
            },
        ))
        .await
        .map_err(|e| problem(e).in_request(&request))?;
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(IssuedToken {
            token: issued.token.expose_secret().to_owned(),
            view: issued.view,
        }))
}

/// Every registration token (never the tokens): limits and uses.
#[utoipa::path(
    tag = "registration",
    responses(
        (status = 200, description = "Every registration token, oldest first", body = Vec<RegistrationTokenView>),
        (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks admin:registration:write", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin:registration:write"]))
)]
#[get("/registration-tokens")]
pub async fn list_registration_tokens(
    request: HttpRequest,
    caller: Caller<RegistrationWrite>,
) -> Result<HttpResponse, Problem> {
    let _ = caller;
    let tokens = registration_tokens::list(state(&request).store.as_ref())
        .await
        .map_err(|e| problem(e).in_request(&request))?;
    Ok(HttpResponse::Ok().json(tokens))
}

/// Deletes a registration token: it registers nothing more (the clients
/// it registered stay).
#[utoipa::path(
    tag = "registration",
    params(("id" = String, Path, description = "The token's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks admin:registration:write", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such token", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin:registration:write"]))
)]
#[delete("/registration-tokens/{id}")]
pub async fn revoke_registration_token(
    request: HttpRequest,
    caller: Caller<RegistrationWrite>,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let state = state(&request);
    caller
        .acting(registration_tokens::revoke(state.store.as_ref(), &id))
        .await
        .map_err(|e| problem(e).in_request(&request))?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn routes(config: &mut utoipa_actix_web::service_config::ServiceConfig) {
    config
        .service(create_registration_token)
        .service(list_registration_tokens)
        .service(revoke_registration_token);
}
