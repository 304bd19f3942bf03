//! `/admin/v1/clients`: what `authd clients …` does, over HTTP, through
//! the same functions (`clients::registration`).
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::problem::ProblemBody;
use super::state;
use super::{
    Authorized, Caller, ClientsRead, ClientsWrite, Page, PageQuery, Problem, check_if_match,
    cursor_of, etag_of, with_etag,
};
use crate::clients::registration::{self, ClientChanges, ClientView, NewClient, RegistrationError};
use crate::domain::ClientId;
use crate::http::AppState;

/// What a new client is registered with (the flags of `authd clients
/// create`, as fields). Without `grant_types`, a confidential client with
/// no redirect URI is a machine client (client_credentials); anything else
/// signs users in (authorization_code).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientInput {
    /// 1 to 100 characters, shown on the consent page.
    pub name: String,
    /// A public client has no secret (browser and native apps).
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// `authorization_code`, `client_credentials`, `refresh_token`.
    #[serde(default)]
    pub grant_types: Vec<String>,
    /// Scopes the client may request; each belongs to an API (or is an
    /// OpenID Connect scope).
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub audiences: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// A first-party confidential client: users are not asked for consent.
    #[serde(default)]
    pub skip_consent: bool,
    /// A resource server that may introspect any token.
    #[serde(default)]
    pub can_introspect: bool,
    /// Its `/token` rate tier (`AUTHD_RATE_TIERS`; default `standard`).
    pub rate_tier: Option<String>,
    /// Browser origins allowed to call the token endpoints (CORS).
    #[serde(default)]
    pub allowed_origins: Vec<String>,
}

/// Changes to a client: what is absent stays as it is. Lists replace the
/// registered list. The type (public or confidential) cannot change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientPatch {
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
}

/// A client just registered: the client, and its secret, shown this once
/// (confidential clients only).
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedClient {
    #[serde(flatten)]
    pub client: ClientView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

/// A new secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewSecret {
    pub client_id: String,
    pub client_secret: String,
}

/// A page of clients.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientPage {
    pub items: Vec<ClientView>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// Where a page of clients ends, inside the opaque cursor.
#[derive(Serialize, Deserialize)]
struct Position(DateTime<Utc>, String);

/// A registration error as the admin API answers it: the CLI's message,
/// its flags named as this API's fields.
pub(super) fn problem(error: RegistrationError) -> Problem {
    const FIELDS: [(&str, &str); 11] = [
        ("--name", "name"),
        ("--redirect-uri", "redirect_uris"),
        ("--grant-type", "grant_types"),
        ("--scope", "scopes"),
        ("--rate-tier", "rate_tier"),
        ("--allowed-origin", "allowed_origins"),
        ("--audience", "audiences"),
        ("--post-logout-redirect-uri", "post_logout_redirect_uris"),
        ("--skip-consent", "skip_consent"),
        ("--introspect", "can_introspect"),
        ("add --grant-type", "add to grant_types"),
    ];
    match error {
        RegistrationError::NotFound(id) => Problem::not_found(format!("no client with id {id}")),
        RegistrationError::Changed(_) => Problem::precondition_failed(),
        RegistrationError::BadPosition => {
            Problem::invalid("cursor is not one this API gave: pass next_cursor as it came")
        }
        RegistrationError::NotConfidential(id) => {
            Problem::conflict(format!("client {id} is public and has no secret"))
        }
        RegistrationError::Store(crate::store::Error::Conflict(what)) => {
            Problem::conflict(format!("{what} already exists"))
        }
        RegistrationError::Store(error) => Problem::internal(error),
        other => {
            // Longest flags first, so `--redirect-uri` is not cut by a
            // shorter one it starts with.
            let mut detail = other.to_string();
            for (flag, field) in FIELDS.iter().rev() {
                detail = detail.replace(flag, field);
            }
            Problem::new(
                actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_client_metadata",
                detail,
            )
        }
    }
}

/// Lists clients, oldest first.
#[utoipa::path(
    tag = "clients",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of clients", body = ClientPage),
        (status = 400, description = "A bad limit or cursor", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks admin:clients:read", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin:clients:read"]))
)]
#[get("/clients")]
pub async fn list_clients(
    request: HttpRequest,
    caller: Caller<ClientsRead>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, Problem> {
    let _ = caller;
    let run = async {
        let limit = query.limit()?;
        let after = query.after::<Position>()?.map(|p| (p.0, p.1));
        let (items, next) = registration::list_page(state(&request).store.as_ref(), after, limit)
            .await
            .map_err(problem)?;
        Ok::<_, Problem>(HttpResponse::Ok().json(Page {
            items,
            next_cursor: next.map(|(at, id)| cursor_of(&Position(at, id))),
        }))
    };
    run.await.map_err(|p| p.in_request(&request))
}

/// Registers a client, validated as `authd clients create` validates. With
/// `Idempotency-Key`, a retried request answers what the first did.
#[utoipa::path(
    tag = "clients",
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]([ -~]*[!-~])?$",
             description = "1 to 255 visible ASCII characters: a retry with the same key and body answers what the first request did, for 24 hours")),
    request_body = ClientInput,
    responses(
        (status = 201, description = "Registered; the secret is shown this once", body = CreatedClient,
         headers(("Location" = String, description = "The client's URL"), ("ETag" = String),
                 ("Idempotent-Replayed" = String, description = "`true` on the answer to a retry"))),
        (status = 409, description = "The first request with this Idempotency-Key is still running", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = ProblemBody, content_type = "application/problem+json"),
        (status = 400, description = "Malformed JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks admin:clients:write, or an admin scope the client holds or would hold", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Metadata the rules refuse, or an Idempotency-Key used for another request", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin:clients:write"]))
)]
#[post("/clients")]
pub async fn create_client(
    request: HttpRequest,
    Authorized(caller, input): Authorized<ClientsWrite, ClientInput>,
) -> Result<HttpResponse, Problem> {
    let state = state(&request);
    let input = input.into_inner();
    let run = async {
        caller.ensure_holds_admin_scopes(input.scopes.iter().map(String::as_str))?;
        // A retried create answers what the first did (`Idempotency-Key`);
        // the id is chosen first, so that a retry of a first run whose
        // answer was lost collides with its client instead of making two.
        let identity = serde_json::to_vec(&input).map_err(Problem::internal)?;
        let fresh = ClientId::generate();
        let claim = match idempotent(
            &request,
            state,
            &caller.client_id,
            &identity,
            fresh.as_str(),
        )
        .await?
        {
            Idempotent::Run(claim) => claim,
            Idempotent::Replay(response) => return Ok(response),
        };
        let id = match &claim {
            Some(claim) => ClientId::parse(&claim.resource_id)
                .ok_or_else(|| Problem::internal("a kept resource id is not a client id"))?,
            None => fresh,
        };
        let took_over = claim.as_ref().is_some_and(|c| c.took_over);
        let new = NewClient {
            id: Some(id.clone()),
            name: input.name,
            public: input.public,
            redirect_uris: input.redirect_uris,
            grant_types: input.grant_types,
            scopes: input.scopes,
            audiences: input.audiences,
            post_logout_redirect_uris: input.post_logout_redirect_uris,
            skip_consent: input.skip_consent,
            can_introspect: input.can_introspect,
            rate_tier: input.rate_tier,
            allowed_origins: input.allowed_origins,
            registration: None,
        };
        let registered = caller
            .acting(registration::register(
                state.store.as_ref(),
                &state.token_endpoint.client_secrets,
                state.clock.as_ref(),
                state.rate_limits.settings(),
                new,
            ))
            .await;
        let credentials = match registered {
            Ok(credentials) => credentials,
            Err(RegistrationError::Store(crate::store::Error::Conflict(_))) if took_over => {
                // The first run made the client and stopped before its
                // answer was kept: there is one client, and no secret to
                // show again.
                return Err(Problem::conflict(format!(
                    "the first request with this Idempotency-Key created client {id} but its \
                     answer was lost: rotate its secret (POST /admin/v1/clients/{id}/secret)"
                )));
            }
            Err(error) => {
                release_if_refused(state, claim, &error).await;
                return Err(problem(error));
            }
        };
        let client = credentials
            .client
            .ok_or_else(|| Problem::internal("registration returned no client"))?;
        let kept = Kept {
            status: 201,
            location: Some(format!("/admin/v1/clients/{}", client.client_id)),
            etag: Some(etag_of(&client)),
            body: serde_json::to_string(&CreatedClient {
                client,
                client_secret: credentials
                    .client_secret
                    .map(|s| s.expose_secret().to_owned()),
            })
            .map_err(Problem::internal)?,
        };
        keep(state, claim, &kept).await;
        Ok(kept.respond(false))
    };
    run.await.map_err(|p| p.in_request(&request))
}

/// Gives the key up when the rules refused the request (it made
/// nothing: a retry runs again). After a database error the change may
/// have been made (a commit whose answer was lost): the claim stays, so a
/// retry waits, then collides with the id chosen.
async fn release_if_refused(
    state: &AppState,
    claim: Option<crate::idempotency::Claim>,
    error: &RegistrationError,
) {
    if let (Some(claim), false) = (claim, matches!(error, RegistrationError::Store(_))) {
        let _ = state.idempotency.release(claim).await;
    }
}

/// The client `id` if the caller may act on it: it holds no admin scope
/// the caller lacks (403 otherwise).
async fn client_in_reach<S>(
    state: &AppState,
    caller: &Caller<S>,
    id: &str,
) -> Result<ClientView, Problem> {
    let current = registration::show(state.store.as_ref(), id)
        .await
        .map_err(problem)?;
    caller.ensure_holds_admin_scopes(current.scope.split(' '))?;
    Ok(current)
}

/// Keeps `kept` for retries under `claim`, if the request has one. A
/// failure only loses the replay: a retry then answers 409 (in progress),
/// and after `idempotency::ABANDONED_AFTER` collides with what was made.
async fn keep(state: &AppState, claim: Option<crate::idempotency::Claim>, kept: &Kept) {
    let Some(claim) = claim else {
        return;
    };
    let stored = match serde_json::to_vec(kept) {
        Ok(bytes) => state.idempotency.finish(claim, kept.status, &bytes).await,
        Err(error) => {
            tracing::warn!(%error, "cannot serialise the answer for Idempotency-Key retries");
            return;
        }
    };
    if let Err(error) = stored {
        tracing::warn!(%error, "cannot keep the answer for Idempotency-Key retries");
    }
}

/// An answer as kept for retries: its status, headers and body.
#[derive(Serialize, Deserialize)]
struct Kept {
    status: u16,
    location: Option<String>,
    etag: Option<String>,
    /// The JSON text, as first sent.
    body: String,
}

impl Kept {
    fn respond(self, replayed: bool) -> HttpResponse {
        let status = actix_web::http::StatusCode::from_u16(self.status)
            .unwrap_or(actix_web::http::StatusCode::OK);
        let mut response = HttpResponse::build(status);
        if let Some(location) = self.location {
            response.insert_header((header::LOCATION, location));
        }
        if let Some(etag) = self.etag {
            response.insert_header((header::ETAG, etag));
        }
        if replayed {
            response.insert_header(("idempotent-replayed", "true"));
        }
        response.content_type("application/json").body(self.body)
    }
}

enum Idempotent {
    Run(Option<crate::idempotency::Claim>),
    Replay(HttpResponse),
}

/// The `Idempotency-Key` of a create, if any: claimed for this request,
/// or the first request's answer.
async fn idempotent(
    request: &HttpRequest,
    state: &AppState,
    caller: &str,
    identity: &[u8],
    resource_id: &str,
) -> Result<Idempotent, Problem> {
    use crate::idempotency::{Begin, IdempotencyError};
    let mut values = request.headers().get_all("idempotency-key");
    let Some(value) = values.next() else {
        return Ok(Idempotent::Run(None));
    };
    let invalid = || {
        Problem::invalid("Idempotency-Key must be one header of 1 to 255 visible ASCII characters")
    };
    if values.next().is_some() {
        return Err(invalid());
    }
    let key = value.to_str().map_err(|_| invalid())?;
    let target = format!("{} {}", request.method(), request.path());
    match state
        .idempotency
        .begin(caller, key, &[target.as_bytes(), identity], resource_id)
        .await
    {
        Ok(Begin::Run(claim)) => Ok(Idempotent::Run(Some(claim))),
        Ok(Begin::Replay { body, .. }) => {
            let kept: Kept = serde_json::from_slice(&body).map_err(Problem::internal)?;
            Ok(Idempotent::Replay(kept.respond(true)))
        }
        Ok(Begin::Mismatch) => Err(Problem::new(
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "this Idempotency-Key was used for another request: use a new key for a new request",
        )),
        Ok(Begin::InProgress) => Err(Problem::conflict(
            "the first request with this Idempotency-Key is still running: retry in a moment",
        )),
        Err(IdempotencyError::InvalidKey) => Err(invalid()),
        Err(error) => Err(Problem::internal(error)),
    }
}

/// One client.
#[utoipa::path(
    tag = "clients",
    params(("id" = String, Path, description = "The client_id")),
    responses(
        (status = 200, description = "The client", body = ClientView, headers(("ETag" = String))),
        (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks admin:clients:read", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such client", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin:clients:read"]))
)]
#[get("/clients/{id}")]
pub async fn get_client(
    request: HttpRequest,
    caller: Caller<ClientsRead>,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let _ = caller;
    let client = registration::show(state(&request).store.as_ref(), &id)
        .await
        .map_err(|e| problem(e).in_request(&request))?;
    Ok(with_etag(&client))
}

/// Changes a client, validated as a registration is. `If-Match` with the
/// client's `ETag` makes the change only if nobody changed it since.
#[utoipa::path(
    tag = "clients",
    params(
        ("id" = String, Path, description = "The client_id"),
        ("If-Match" = Option<String>, Header, description = "The ETag the change is based on"),
    ),
    request_body = ClientPatch,
    responses(
        (status = 200, description = "The changed client", body = ClientView, headers(("ETag" = String))),
        (status = 400, description = "Malformed JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks admin:clients:write, or an admin scope the client holds or would hold", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such client", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "An admin scope added to an existing client (create a new one), or, without If-Match, the client changed while this request ran", body = ProblemBody, content_type = "application/problem+json"),
        (status = 412, description = "The client changed since the ETag in If-Match", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Metadata the rules refuse", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin:clients:write"]))
)]
#[patch("/clients/{id}")]
pub async fn update_client(
    request: HttpRequest,
    id: web::Path<String>,
    Authorized(caller, patch): Authorized<ClientsWrite, ClientPatch>,
) -> Result<HttpResponse, Problem> {
    let state = state(&request);
    let run = async {
        // Neither the client as it is nor as it would be may hold an admin
        // scope the caller lacks.
        let current = client_in_reach(state, &caller, &id).await?;
        check_if_match(&request, &etag_of(&current))?;
        let patch = patch.into_inner();
        if let Some(scopes) = &patch.scopes {
            caller.ensure_holds_admin_scopes(scopes.iter().map(String::as_str))?;
            // Its secret may be known to whoever made or rotated it with
            // fewer scopes: admin scopes go to a new client only.
            let held: Vec<&str> = current.scope.split(' ').collect();
            if let Some(added) = scopes
                .iter()
                .find(|s| s.starts_with(super::ADMIN_SCOPE_PREFIX) && !held.contains(&s.as_str()))
            {
                return Err(Problem::conflict(format!(
                    "{added} cannot be added to an existing client (its secret may be known to \
                     callers with fewer scopes): register a new client with it"
                )));
            }
        }
        let changes = ClientChanges {
            name: patch.name,
            redirect_uris: patch.redirect_uris,
            grant_types: patch.grant_types,
            scopes: patch.scopes,
            audiences: patch.audiences,
            post_logout_redirect_uris: patch.post_logout_redirect_uris,
            skip_consent: patch.skip_consent,
            can_introspect: patch.can_introspect,
            rate_tier: patch.rate_tier,
            allowed_origins: patch.allowed_origins,
            registration: None,
        };
        let updated = caller
            .acting(registration::update(
                state.store.as_ref(),
                state.clock.as_ref(),
                state.rate_limits.settings(),
                &id,
                changes,
                Some(current.updated_at),
            ))
            .await;
        // A patch that changes nothing changes nothing (RFC 7396).
        let updated = match updated {
            Err(RegistrationError::NothingToChange) => current,
            Err(RegistrationError::Changed(_)) => return Err(super::lost_race(&request)),
            other => other.map_err(problem)?,
        };
        Ok::<_, Problem>(with_etag(&updated))
    };
    run.await.map_err(|p| p.in_request(&request))
}

/// Deletes a client and ends everything it holds (codes, refresh tokens,
/// consents; its access tokens stop being active).
#[utoipa::path(
    tag = "clients",
    params(
        ("id" = String, Path, description = "The client_id"),
        ("If-Match" = Option<String>, Header, description = "The ETag the deletion is based on"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks admin:clients:write, or an admin scope the client holds or would hold", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such client", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Without If-Match: the client changed while this request ran (read it again)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 412, description = "The client changed since the ETag in If-Match", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin:clients:write"]))
)]
#[delete("/clients/{id}")]
pub async fn delete_client(
    request: HttpRequest,
    caller: Caller<ClientsWrite>,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let state = state(&request);
    let run = async {
        let current = client_in_reach(state, &caller, &id).await?;
        check_if_match(&request, &etag_of(&current))?;
        // Deleted only while still the version whose scopes were checked.
        caller
            .acting(registration::delete_if(
                state.store.as_ref(),
                state.clock.as_ref(),
                &id,
                Some(current.updated_at),
            ))
            .await
            .map_err(|error| match error {
                RegistrationError::Changed(_) => super::lost_race(&request),
                other => problem(other),
            })?;
        Ok::<_, Problem>(HttpResponse::NoContent().finish())
    };
    run.await.map_err(|p| p.in_request(&request))
}

/// Replaces a confidential client's secret; the old one stops working
/// within the cache refresh interval on every replica.
#[utoipa::path(
    tag = "clients",
    params(
        ("id" = String, Path, description = "The client_id"),
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]([ -~]*[!-~])?$",
         description = "A retry with the same key answers the secret the first request made, for 24 hours"),
    ),
    responses(
        (status = 200, description = "The new secret, shown this once", body = NewSecret),
        (status = 400, description = "An Idempotency-Key that is empty, too long, repeated or not visible ASCII", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks admin:clients:write, or an admin scope the client holds or would hold", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such client", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "A public client has no secret, the first request with this Idempotency-Key is still running, or the client changed while this request ran", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "An Idempotency-Key used for another request", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin:clients:write"]))
)]
#[post("/clients/{id}/secret")]
pub async fn rotate_client_secret(
    request: HttpRequest,
    caller: Caller<ClientsWrite>,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let state = state(&request);
    let run = async {
        // A client holding admin scopes the caller lacks is not its to
        // take over.
        let current = client_in_reach(state, &caller, &id).await?;
        // A retried rotation answers the secret the first made, not a
        // third one (`Idempotency-Key`).
        let claim = match idempotent(&request, state, &caller.client_id, b"", &id).await? {
            Idempotent::Run(claim) => claim,
            Idempotent::Replay(response) => return Ok(response),
        };
        // Only while still the version whose scopes were checked.
        let rotated = caller
            .acting(registration::rotate_secret_if(
                state.store.as_ref(),
                &state.token_endpoint.client_secrets,
                state.clock.as_ref(),
                &id,
                Some(current.updated_at),
            ))
            .await;
        let credentials = match rotated {
            Ok(credentials) => credentials,
            Err(error) => {
                release_if_refused(state, claim, &error).await;
                // No If-Match here: the version is the one whose scopes
                // were checked, so a lost race is a conflict, not a 412.
                return Err(match error {
                    RegistrationError::Changed(_) => Problem::conflict(
                        "the client changed while this request ran: read it again, then retry",
                    ),
                    other => problem(other),
                });
            }
        };
        let secret = credentials
            .client_secret
            .map(|s| s.expose_secret().to_owned())
            .ok_or_else(|| Problem::internal("rotation returned no secret"))?;
        let kept = Kept {
            status: 200,
            location: None,
            etag: None,
            body: serde_json::to_string(&NewSecret {
                client_id: credentials.client_id,
                client_secret: secret,
            })
            .map_err(Problem::internal)?,
        };
        keep(state, claim, &kept).await;
        Ok(kept.respond(false))
    };
    run.await.map_err(|p| p.in_request(&request))
}

pub fn routes(config: &mut utoipa_actix_web::service_config::ServiceConfig) {
    config
        .service(list_clients)
        .service(create_client)
        .service(get_client)
        .service(update_client)
        .service(delete_client)
        .service(rotate_client_secret);
}
