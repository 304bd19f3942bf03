//! `/admin/v1/keys` and `/admin/v1/master-key`: what `authd keys …` and
//! `authd master-key status` do, over HTTP, through the same functions
//! (`tokens::keyring`, `secrets::status`). Master keys are read-only here:
//! rotating one needs the new key, which only the operator's CLI holds.
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::problem::ProblemBody;
use super::state;
use super::{Caller, KeysRead, KeysWrite, Problem};
use crate::domain::Kid;
use crate::secrets::VersionStatus;
use crate::tokens::keyring::{KeyView, RevokeOutcome, RotateOutcome};

/// A rotation.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateInput {
    /// Rotate even without a pre-published next key: its tokens are
    /// refused by resource servers until their JWKS cache refreshes.
    #[serde(default)]
    pub force: bool,
}

/// What a rotation or a revocation did, and the keys now.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyChange {
    /// The key that signs from now on, if it changed.
    pub activated: Option<String>,
    /// The new pre-published key, if one was made.
    pub next: Option<String>,
    pub keys: Vec<KeyView>,
}

/// Signing keys with their schedule (public facts only).
#[utoipa::path(
    tag = "keys",
    responses(
        (status = 200, description = "Every signing key", body = Vec<KeyView>),
        (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks admin:keys:read", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin:keys:read"]))
)]
#[get("/keys")]
pub async fn list_keys(
    request: HttpRequest,
    caller: Caller<KeysRead>,
) -> Result<HttpResponse, Problem> {
    let _ = caller;
    let keys = state(&request)
        .keys
        .views()
        .await
        .map_err(|e| Problem::internal(e).in_request(&request))?;
    Ok(HttpResponse::Ok().json(keys))
}

/// Rotates now: the pre-published key signs and a new next key is
/// published. Without a next key only with `force`.
#[utoipa::path(
    tag = "keys",
    request_body(content = Option<RotateInput>, description = "Optional; `{}` or no body rotates without force"),
    responses(
        (status = 200, description = "Rotated", body = KeyChange),
        (status = 400, description = "Malformed JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks admin:keys:write", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "No pre-published next key (retry with force)", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin:keys:write"]))
)]
#[post("/keys/rotate")]
pub async fn rotate_keys(
    request: HttpRequest,
    caller: Caller<KeysWrite>,
    body: web::Bytes,
) -> Result<HttpResponse, Problem> {
    let state = state(&request);
    let run = async {
        // No body rotates without force; a body must be the JSON above.
        // No body (or JSON `null`) rotates without force.
        let input: RotateInput = if body.is_empty() {
            RotateInput::default()
        } else {
            serde_json::from_slice::<Option<RotateInput>>(&body)
                .map_err(|e| Problem::invalid(format!("the JSON body is not acceptable: {e}")))?
                .unwrap_or_default()
        };
        let force = input.force;
        let outcome = caller
            .acting(state.keys.rotate(state.clock.as_ref(), force))
            .await
            .map_err(Problem::internal)?;
        let (activated, next) = match outcome {
            RotateOutcome::Rotated { activated, next } => (Some(activated.0), Some(next.0)),
            RotateOutcome::Forced { activated } => (Some(activated.0), None),
            RotateOutcome::NoNextKey => {
                return Err(Problem::conflict(
                    "there is no pre-published next key (a running authd publishes one within a \
                     minute): rotating now would sign with a key no resource server has seen; \
                     send {\"force\": true} to do it anyway",
                ));
            }
        };
        let keys = state.keys.views().await.map_err(Problem::internal)?;
        Ok(HttpResponse::Ok().json(KeyChange {
            activated,
            next,
            keys,
        }))
    };
    run.await.map_err(|p| p.in_request(&request))
}

/// Revokes a key at once (the emergency path): it leaves the JWKS, and if
/// it was signing, the next key (or a new one) signs instead.
#[utoipa::path(
    tag = "keys",
    params(("kid" = String, Path, description = "The key id")),
    responses(
        (status = 200, description = "Revoked", body = KeyChange),
        (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks admin:keys:write", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Already removed or revoked", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin:keys:write"]))
)]
#[post("/keys/{kid}/revoke")]
pub async fn revoke_key(
    request: HttpRequest,
    caller: Caller<KeysWrite>,
    kid: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let state = state(&request);
    let run = async {
        let kid = Kid(kid.into_inner());
        let outcome = caller
            .acting(state.keys.revoke_key(state.clock.as_ref(), &kid))
            .await
            .map_err(Problem::internal)?;
        let (activated, next) = match outcome {
            RevokeOutcome::Revoked { activated, next } => {
                (activated.map(|k| k.0), next.map(|k| k.0))
            }
            RevokeOutcome::NotFound => {
                return Err(Problem::not_found(format!("no signing key {}", kid.0)));
            }
            RevokeOutcome::AlreadyGone => {
                return Err(Problem::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    format!("key {} is already removed or revoked", kid.0),
                ));
            }
        };
        let keys = state.keys.views().await.map_err(Problem::internal)?;
        Ok(HttpResponse::Ok().json(KeyChange {
            activated,
            next,
            keys,
        }))
    };
    run.await.map_err(|p| p.in_request(&request))
}

/// The master-key versions the database knows, and whether each is held
/// and re-sealed (facts, never key material).
#[utoipa::path(
    tag = "keys",
    responses(
        (status = 200, description = "Every master-key version", body = Vec<VersionStatus>),
        (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks admin:keys:read", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin:keys:read"]))
)]
#[get("/master-key")]
pub async fn master_key_status(
    request: HttpRequest,
    caller: Caller<KeysRead>,
) -> Result<HttpResponse, Problem> {
    let _ = caller;
    let state = state(&request);
    let status = crate::secrets::status(state.store.as_ref(), &state.master_keys)
        .await
        .map_err(|e| Problem::internal(e).in_request(&request))?;
    Ok(HttpResponse::Ok().json(status))
}

pub fn routes(config: &mut utoipa_actix_web::service_config::ServiceConfig) {
    config
        .service(list_keys)
        .service(rotate_keys)
        .service(revoke_key)
        .service(master_key_status);
}
