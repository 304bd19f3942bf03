//! `/admin/v1/apis`, `/roles`, `/groups` and users' roles: what `authd
//! apis|roles|groups …` do, over HTTP, through the same functions
//! (`access`). APIs are named by id (an identifier is a URI); roles and
//! groups by name.
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, put, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::problem::ProblemBody;
use super::state;
use super::{
    ApisRead, ApisWrite, Authorized, Caller, PageQuery, Problem, check_if_match, etag_of, page_of,
};
use crate::access::AccessError;
use crate::access::apis::{self, ApiChanges, ApiInput, ApiView};
use crate::access::groups::{self, GroupChange, GroupView};
use crate::access::roles::{self, PermissionsView, RoleView, UserRoleChange};

/// A scope an API defines, with what it lets an application do (the
/// consent page shows it; a default is written when absent).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeInput {
    /// An RFC 6749 §3.3 scope token, without `=`.
    #[schema(pattern = "^[\\x21\\x23-\\x3c\\x3e-\\x5b\\x5d-\\x7e]+$")]
    pub scope: String,
    pub description: Option<String>,
}

/// The CLI's `SCOPE[=DESCRIPTION]` arguments the service parses (a scope
/// with `=` would be cut there: refused).
fn scope_args(scopes: Vec<ScopeInput>) -> Result<Vec<String>, Problem> {
    scopes
        .into_iter()
        .map(|s| {
            if s.scope.contains('=') {
                return Err(Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_value",
                    format!("scopes: {} is not a scope token without '='", s.scope),
                ));
            }
            Ok(match s.description {
                Some(description) => format!("{}={description}", s.scope),
                None => s.scope,
            })
        })
        .collect()
}

/// An API (resource server) to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiCreate {
    /// RFC 8707: an absolute URI without a fragment; the `aud` of its tokens.
    pub identifier: String,
    /// Shown on the consent page.
    pub name: String,
    pub scopes: Vec<ScopeInput>,
    /// `roles` (default: users need a role holding the scope) or `any`.
    pub user_access: Option<String>,
    /// Any of `roles`, `groups`, `permissions` (RFC 9068 §2.2.3.1).
    pub token_claims: Option<Vec<String>>,
    /// Seconds, 60 to 3600 (default 900).
    #[serde(default, deserialize_with = "super::whole_u32")]
    #[schema(minimum = 60, maximum = 3600)]
    pub access_token_ttl: Option<u32>,
}

/// Changes to an API: what is absent stays. `scopes` replaces the list.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiPatch {
    pub name: Option<String>,
    pub scopes: Option<Vec<ScopeInput>>,
    pub user_access: Option<String>,
    pub token_claims: Option<Vec<String>>,
    #[serde(default, deserialize_with = "super::whole_u32")]
    #[schema(minimum = 60, maximum = 3600)]
    pub access_token_ttl: Option<u32>,
    /// Remove scopes that clients or roles hold (they lose them).
    #[serde(default)]
    pub force: bool,
}

/// A role to create, or its new scopes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleInput {
    /// 1 to 64 letters, digits, `.`, `_`, `-` or `:`.
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,64}$")]
    pub name: String,
    /// API scopes.
    pub scopes: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolePatch {
    /// Replaces the role's scopes; its holders' next tokens follow.
    pub scopes: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupInput {
    /// 1 to 64 letters, digits, `.`, `_`, `-` or `:`.
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,64}$")]
    pub name: String,
}

/// `?force=true`: delete what is in use anyway.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Force {
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiPage {
    pub items: Vec<ApiView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RolePage {
    pub items: Vec<RoleView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupPage {
    pub items: Vec<GroupView>,
    pub next_cursor: Option<String>,
}

pub(super) fn problem(error: AccessError) -> Problem {
    match error {
        AccessError::NoSuchApi(what) => Problem::not_found(format!("no API {what}")),
        AccessError::NoSuchRole(what) => Problem::not_found(format!("no role named {what}")),
        AccessError::NoSuchGroup(what) => Problem::not_found(format!("no group named {what}")),
        AccessError::NoSuchUser(what) => {
            Problem::not_found(format!("no user with id or username {what}"))
        }
        AccessError::Taken(what) => Problem::conflict(what),
        AccessError::InUse(what) => {
            Problem::conflict(format!("{what}; pass force=true to do it anyway"))
        }
        AccessError::BuiltIn(what) => Problem::new(StatusCode::FORBIDDEN, "built_in", what),
        AccessError::Changed => Problem::precondition_failed(),
        AccessError::Store(error) => Problem::internal(error),
        AccessError::Invalid { flag, problem } => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_value",
            format!(
                "{}: {problem}",
                flag.trim_start_matches("--").replace('-', "_")
            ),
        ),
    }
}

/// The version an API's or role's `ETag` stands for.
fn version_tag(id: &str, updated_at: &chrono::DateTime<chrono::Utc>) -> String {
    etag_of(&(id, updated_at))
}

fn api_response(status: StatusCode, api: &ApiView) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::ETAG, version_tag(&api.id, &api.updated_at)))
        .json(api)
}

fn role_response(status: StatusCode, role: &RoleView) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::ETAG, version_tag(&role.id, &role.updated_at)))
        .json(role)
}

macro_rules! problems {
    ($scope:literal) => {
        concat!("The token lacks ", $scope)
    };
}

/// Lists APIs, by identifier.
#[utoipa::path(
    tag = "apis",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of APIs", body = ApiPage),
        (status = 400, description = "A bad limit or cursor", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = problems!("admin:apis:read"), body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin:apis:read"]))
)]
#[get("/apis")]
pub async fn list_apis(
    request: HttpRequest,
    caller: Caller<ApisRead>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, Problem> {
    let _ = caller;
    let run = async {
        let all = apis::list(state(&request).store.as_ref())
            .await
            .map_err(problem)?;
        let page = page_of(all, |api| api.identifier.clone(), &query)?;
        Ok::<_, Problem>(HttpResponse::Ok().json(page))
    };
    run.await.map_err(|p| p.in_request(&request))
}

/// Creates an API with its scopes.
#[utoipa::path(
    tag = "apis",
    request_body = ApiCreate,
    responses(
        (status = 201, description = "Created", body = ApiView, headers(("Location" = String), ("ETag" = String))),
        (status = 400, description = "Malformed JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = problems!("admin:apis:write"), body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The identifier or a scope is taken", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A value the rules refuse", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin:apis:write"]))
)]
#[post("/apis")]
pub async fn create_api(
    request: HttpRequest,
    Authorized(caller, input): Authorized<ApisWrite, ApiCreate>,
) -> Result<HttpResponse, Problem> {
    let state = state(&request);
    let run = async {
        let input = input.into_inner();
        let api = caller
            .acting(apis::create(
                state.store.as_ref(),
                state.clock.as_ref(),
                ApiInput {
                    identifier: input.identifier,
                    name: input.name,
                    scopes: scope_args(input.scopes)?,
                    user_access: input.user_access,
                    token_claims: input.token_claims,
                    access_token_ttl: input.access_token_ttl,
                },
            ))
            .await
            .map_err(problem)?;
        let mut response = api_response(StatusCode::CREATED, &api);
        if let Ok(location) = header::HeaderValue::from_str(&format!("/admin/v1/apis/{}", api.id)) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        Ok::<_, Problem>(response)
    };
    run.await.map_err(|p| p.in_request(&request))
}

/// One API, with the clients and roles that hold its scopes.
#[utoipa::path(
    tag = "apis",
    params(("id" = String, Path, description = "The API's id")),
    responses(
        (status = 200, description = "The API", body = ApiView, headers(("ETag" = String))),
        (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = problems!("admin:apis:read"), body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such API", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin:apis:read"]))
)]
#[get("/apis/{id}")]
pub async fn get_api(
    request: HttpRequest,
    caller: Caller<ApisRead>,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let _ = caller;
    let store = state(&request).store.as_ref();
    let run = async {
        let identifier = apis::identifier_of(store, &id).await.map_err(problem)?;
        let api = apis::show(store, &identifier).await.map_err(problem)?;
        Ok::<_, Problem>(api_response(StatusCode::OK, &api))
    };
    run.await.map_err(|p| p.in_request(&request))
}

/// Changes an API. Removing scopes that clients or roles hold needs
/// `force`. The built-in `urn:authd:admin` cannot change (403).
#[utoipa::path(
    tag = "apis",
    params(
        ("id" = String, Path, description = "The API's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag the change is based on"),
    ),
    request_body = ApiPatch,
    responses(
        (status = 200, description = "The changed API", body = ApiView, headers(("ETag" = String))),
        (status = 400, description = "Malformed JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks admin:apis:write, or the API is built in", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such API", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "A scope is held (retry with force) or belongs to another API, or, without If-Match, the API changed while this request ran", body = ProblemBody, content_type = "application/problem+json"),
        (status = 412, description = "The API changed since the ETag in If-Match", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A value the rules refuse", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin:apis:write"]))
)]
#[patch("/apis/{id}")]
pub async fn update_api(
    request: HttpRequest,
    id: web::Path<String>,
    Authorized(caller, patch): Authorized<ApisWrite, ApiPatch>,
) -> Result<HttpResponse, Problem> {
    let state = state(&request);
    let run = async {
        let store = state.store.as_ref();
        let identifier = apis::identifier_of(store, &id).await.map_err(problem)?;
        let current = apis::show(store, &identifier).await.map_err(problem)?;
        check_if_match(&request, &version_tag(&current.id, &current.updated_at))?;
        let patch = patch.into_inner();
        let nothing = patch.name.is_none()
            && patch.scopes.is_none()
            && patch.user_access.is_none()
            && patch.token_claims.is_none()
            && patch.access_token_ttl.is_none();
        if nothing {
            // A patch that changes nothing changes nothing (RFC 7396).
            return Ok(api_response(StatusCode::OK, &current));
        }
        let changes = ApiChanges {
            name: patch.name,
            scopes: patch.scopes.map(scope_args).transpose()?,
            user_access: patch.user_access,
            token_claims: patch.token_claims,
            access_token_ttl: patch.access_token_ttl,
            force: patch.force,
            expected: Some(current.updated_at),
        };
        let api = caller
            .acting(apis::update(
                store,
                state.clock.as_ref(),
                &identifier,
                changes,
            ))
            .await
            .map_err(|error| match error {
                AccessError::Changed => super::lost_race(&request),
                other => problem(other),
            })?;
        Ok::<_, Problem>(api_response(StatusCode::OK, &api))
    };
    run.await.map_err(|p| p.in_request(&request))
}

/// Deletes an API; one whose scopes clients or roles hold needs `force`.
#[utoipa::path(
    tag = "apis",
    params(("id" = String, Path, description = "The API's id"), Force),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "force is not true or false", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks admin:apis:write, or the API is built in", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such API", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "In use (retry with force=true)", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin:apis:write"]))
)]
#[delete("/apis/{id}")]
pub async fn delete_api(
    request: HttpRequest,
    caller: Caller<ApisWrite>,
    id: web::Path<String>,
    force: web::Query<Force>,
) -> Result<HttpResponse, Problem> {
    let state = state(&request);
    let run = async {
        let store = state.store.as_ref();
        let identifier = apis::identifier_of(store, &id).await.map_err(problem)?;
        caller
            .acting(apis::delete(store, &identifier, force.force))
            .await
            .map_err(problem)?;
        Ok::<_, Problem>(HttpResponse::NoContent().finish())
    };
    run.await.map_err(|p| p.in_request(&request))
}

/// Lists roles, by name.
#[utoipa::path(
    tag = "apis",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of roles", body = RolePage),
        (status = 400, description = "A bad limit or cursor", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = problems!("admin:apis:read"), body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin:apis:read"]))
)]
#[get("/roles")]
pub async fn list_roles(
    request: HttpRequest,
    caller: Caller<ApisRead>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, Problem> {
    let _ = caller;
    let run = async {
        let all = roles::list(state(&request).store.as_ref())
            .await
            .map_err(problem)?;
        let page = page_of(all, |role| role.name.clone(), &query)?;
        Ok::<_, Problem>(HttpResponse::Ok().json(page))
    };
    run.await.map_err(|p| p.in_request(&request))
}

/// Creates a role: a named set of API scopes.
#[utoipa::path(
    tag = "apis",
    request_body = RoleInput,
    responses(
        (status = 201, description = "Created", body = RoleView, headers(("Location" = String), ("ETag" = String))),
        (status = 400, description = "Malformed JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = problems!("admin:apis:write"), body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A value the rules refuse", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin:apis:write"]))
)]
#[post("/roles")]
pub async fn create_role(
    request: HttpRequest,
    Authorized(caller, input): Authorized<ApisWrite, RoleInput>,
) -> Result<HttpResponse, Problem> {
    let state = state(&request);
    let run = async {
        let role = caller
            .acting(roles::create(
                state.store.as_ref(),
                state.clock.as_ref(),
                &input.name,
                &input.scopes,
            ))
            .await
            .map_err(problem)?;
        let mut response = role_response(StatusCode::CREATED, &role);
        if let Ok(location) =
            header::HeaderValue::from_str(&format!("/admin/v1/roles/{}", role.name))
        {
            response.headers_mut().insert(header::LOCATION, location);
        }
        Ok::<_, Problem>(response)
    };
    run.await.map_err(|p| p.in_request(&request))
}

/// One role, with the groups and users holding it.
#[utoipa::path(
    tag = "apis",
    params(("name" = String, Path, description = "The role's name")),
    responses(
        (status = 200, description = "The role", body = RoleView, headers(("ETag" = String))),
        (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = problems!("admin:apis:read"), body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such role", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin:apis:read"]))
)]
#[get("/roles/{name}")]
pub async fn get_role(
    request: HttpRequest,
    caller: Caller<ApisRead>,
    name: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let _ = caller;
    let role = roles::show(state(&request).store.as_ref(), &name)
        .await
        .map_err(|e| problem(e).in_request(&request))?;
    Ok(role_response(StatusCode::OK, &role))
}

/// Replaces a role's scopes; its holders' next tokens follow.
#[utoipa::path(
    tag = "apis",
    params(
        ("name" = String, Path, description = "The role's name"),
        ("If-Match" = Option<String>, Header, description = "The ETag the change is based on"),
    ),
    request_body = RolePatch,
    responses(
        (status = 200, description = "The changed role", body = RoleView, headers(("ETag" = String))),
        (status = 400, description = "Malformed JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = problems!("admin:apis:write"), body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such role", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Without If-Match: the role changed while this request ran (read it again)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 412, description = "The role changed since the ETag in If-Match", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A value the rules refuse", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin:apis:write"]))
)]
#[patch("/roles/{name}")]
pub async fn update_role(
    request: HttpRequest,
    name: web::Path<String>,
    Authorized(caller, patch): Authorized<ApisWrite, RolePatch>,
) -> Result<HttpResponse, Problem> {
    let state = state(&request);
    let run = async {
        let store = state.store.as_ref();
        let current = roles::show(store, &name).await.map_err(problem)?;
        check_if_match(&request, &version_tag(&current.id, &current.updated_at))?;
        let role = caller
            .acting(roles::update(
                store,
                state.clock.as_ref(),
                &name,
                &patch.scopes,
                Some(current.updated_at),
            ))
            .await
            .map_err(|error| match error {
                AccessError::Changed => super::lost_race(&request),
                other => problem(other),
            })?;
        Ok::<_, Problem>(role_response(StatusCode::OK, &role))
    };
    run.await.map_err(|p| p.in_request(&request))
}

/// Deletes a role; one that groups or users hold needs `force`.
#[utoipa::path(
    tag = "apis",
    params(("name" = String, Path, description = "The role's name"), Force),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "force is not true or false", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = problems!("admin:apis:write"), body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such role", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Held (retry with force=true)", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin:apis:write"]))
)]
#[delete("/roles/{name}")]
pub async fn delete_role(
    request: HttpRequest,
    caller: Caller<ApisWrite>,
    name: web::Path<String>,
    force: web::Query<Force>,
) -> Result<HttpResponse, Problem> {
    let state = state(&request);
    caller
        .acting(roles::delete(state.store.as_ref(), &name, force.force))
        .await
        .map_err(|e| problem(e).in_request(&request))?;
    Ok(HttpResponse::NoContent().finish())
}

/// Lists groups, by name.
#[utoipa::path(
    tag = "apis",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of groups", body = GroupPage),
        (status = 400, description = "A bad limit or cursor", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = problems!("admin:apis:read"), body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin:apis:read"]))
)]
#[get("/groups")]
pub async fn list_groups(
    request: HttpRequest,
    caller: Caller<ApisRead>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, Problem> {
    let _ = caller;
    let run = async {
        let all = groups::list(state(&request).store.as_ref())
            .await
            .map_err(problem)?;
        let page = page_of(all, |group| group.name.clone(), &query)?;
        Ok::<_, Problem>(HttpResponse::Ok().json(page))
    };
    run.await.map_err(|p| p.in_request(&request))
}

/// Creates a group.
#[utoipa::path(
    tag = "apis",
    request_body = GroupInput,
    responses(
        (status = 201, description = "Created", body = GroupView, headers(("Location" = String))),
        (status = 400, description = "Malformed JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = problems!("admin:apis:write"), body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A value the rules refuse", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin:apis:write"]))
)]
#[post("/groups")]
pub async fn create_group(
    request: HttpRequest,
    Authorized(caller, input): Authorized<ApisWrite, GroupInput>,
) -> Result<HttpResponse, Problem> {
    let state = state(&request);
    let group = caller
        .acting(groups::create(
            state.store.as_ref(),
            state.clock.as_ref(),
            &input.name,
        ))
        .await
        .map_err(|e| problem(e).in_request(&request))?;
    let mut response = HttpResponse::Created().json(&group);
    if let Ok(location) = header::HeaderValue::from_str(&format!("/admin/v1/groups/{}", group.name))
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// One group, with its roles and members.
#[utoipa::path(
    tag = "apis",
    params(("name" = String, Path, description = "The group's name")),
    responses(
        (status = 200, description = "The group", body = GroupView),
        (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = problems!("admin:apis:read"), body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such group", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin:apis:read"]))
)]
#[get("/groups/{name}")]
pub async fn get_group(
    request: HttpRequest,
    caller: Caller<ApisRead>,
    name: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let _ = caller;
    let group = groups::show(state(&request).store.as_ref(), &name)
        .await
        .map_err(|e| problem(e).in_request(&request))?;
    Ok(HttpResponse::Ok().json(group))
}

/// Deletes a group; one with members or roles needs `force`.
#[utoipa::path(
    tag = "apis",
    params(("name" = String, Path, description = "The group's name"), Force),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "force is not true or false", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = problems!("admin:apis:write"), body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such group", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Not empty (retry with force=true)", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin:apis:write"]))
)]
#[delete("/groups/{name}")]
pub async fn delete_group(
    request: HttpRequest,
    caller: Caller<ApisWrite>,
    name: web::Path<String>,
    force: web::Query<Force>,
) -> Result<HttpResponse, Problem> {
    let state = state(&request);
    caller
        .acting(groups::delete(state.store.as_ref(), &name, force.force))
        .await
        .map_err(|e| problem(e).in_request(&request))?;
    Ok(HttpResponse::NoContent().finish())
}

/// The answer of a membership change: 200 with what changed (`changed`
/// false when there was nothing to do).
macro_rules! membership {
    ($name:ident, $method:ident, $path:literal, $n1:literal = $p1:literal, $n2:literal = $p2:literal, $summary:literal, $body:ty,
     |$store:ident, $a:ident, $b:ident| $call:expr) => {
        #[doc = $summary]
        #[utoipa::path(
            tag = "apis",
            params(($n1 = String, Path, description = $p1), ($n2 = String, Path, description = $p2)),
            responses(
                (status = 200, description = "Done (changed: false when nothing was to do)", body = $body),
                (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
                (status = 403, description = problems!("admin:apis:write"), body = ProblemBody, content_type = "application/problem+json"),
                (status = 404, description = "No such group, role or user", body = ProblemBody, content_type = "application/problem+json"),
            ),
            security(("bearer" = ["admin:apis:write"]))
        )]
        #[$method($path)]
        pub async fn $name(
            request: HttpRequest,
            caller: Caller<ApisWrite>,
            path: web::Path<(String, String)>,
        ) -> Result<HttpResponse, Problem> {
            let (first, second) = path.into_inner();
            let $store = state(&request).store.as_ref();
            let ($a, $b) = (first.as_str(), second.as_str());
            let change = caller
                .acting($call)
                .await
                .map_err(|e| problem(e).in_request(&request))?;
            Ok(HttpResponse::Ok().json(change))
        }
    };
}

membership!(
    add_group_member,
    put,
    "/groups/{group}/members/{user}",
    "group" = "The group's name",
    "user" = "The user's id or username",
    "Adds a user to a group.",
    GroupChange,
    |store, group, user| groups::set_member(store, group, user, true)
);
membership!(
    remove_group_member,
    delete,
    "/groups/{group}/members/{user}",
    "group" = "The group's name",
    "user" = "The user's id or username",
    "Removes a user from a group.",
    GroupChange,
    |store, group, user| groups::set_member(store, group, user, false)
);
membership!(
    add_group_role,
    put,
    "/groups/{group}/roles/{role}",
    "group" = "The group's name",
    "role" = "The role's name",
    "Gives a group a role.",
    GroupChange,
    |store, group, role| groups::set_role(store, group, role, true)
);
membership!(
    remove_group_role,
    delete,
    "/groups/{group}/roles/{role}",
    "group" = "The group's name",
    "role" = "The role's name",
    "Takes a role from a group.",
    GroupChange,
    |store, group, role| groups::set_role(store, group, role, false)
);
membership!(
    add_user_role,
    put,
    "/users/{user}/roles/{role}",
    "user" = "The user's id or username",
    "role" = "The role's name",
    "Gives a user a role directly.",
    UserRoleChange,
    |store, user, role| roles::set_user_role(store, user, role, true)
);
membership!(
    remove_user_role,
    delete,
    "/users/{user}/roles/{role}",
    "user" = "The user's id or username",
    "role" = "The role's name",
    "Takes a role held directly from a user.",
    UserRoleChange,
    |store, user, role| roles::set_user_role(store, user, role, false)
);

/// A user's effective permissions and where each comes from.
#[utoipa::path(
    tag = "apis",
    params(("id" = String, Path, description = "The user's id or username")),
    responses(
        (status = 200, description = "The permissions", body = PermissionsView),
        (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = problems!("admin:apis:read"), body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin:apis:read"]))
)]
#[get("/users/{id}/permissions")]
pub async fn user_permissions(
    request: HttpRequest,
    caller: Caller<ApisRead>,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let _ = caller;
    let view = roles::permissions(state(&request).store.as_ref(), &id)
        .await
        .map_err(|e| problem(e).in_request(&request))?;
    Ok(HttpResponse::Ok().json(view))
}

pub fn routes(config: &mut utoipa_actix_web::service_config::ServiceConfig) {
    config
        .service(list_apis)
        .service(create_api)
        .service(get_api)
        .service(update_api)
        .service(delete_api)
        .service(list_roles)
        .service(create_role)
        .service(get_role)
        .service(update_role)
        .service(delete_role)
        .service(list_groups)
        .service(create_group)
        .service(get_group)
        .service(delete_group)
        .service(add_group_member)
        .service(remove_group_member)
        .service(add_group_role)
        .service(remove_group_role)
        .service(add_user_role)
        .service(remove_user_role)
        .service(user_permissions);
}
