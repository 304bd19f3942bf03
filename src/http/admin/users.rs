//! `/admin/v1/users`: what `authd users …` does, over HTTP, through the
//! same functions (`users::accounts`, `users::consents`).
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, put, web};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::problem::ProblemBody;
use super::state;
use super::{
    Authorized, Caller, Page, PageQuery, Problem, UsersRead, UsersWrite, check_if_match, cursor_of,
    etag_of, with_etag,
};
use crate::users::accounts::{self, NewUser, ProfileChanges, UserView};
use crate::users::{AccountError, consents};

/// A user to create. Without `password` the user cannot sign in with a
/// password until one is set.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    /// 1 to 64 characters without spaces; unique.
    #[schema(min_length = 1, max_length = 64, pattern = "^[^\\s\\x00-\\x1f\\x7f]+$")]
    pub username: String,
    /// 8 to 1024 characters. Never logged, never shown again.
    #[schema(value_type = Option<String>, format = Password, min_length = 8, max_length = 1024)]
    pub password: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    #[serde(default)]
    pub email_verified: bool,
}

/// Changes to a profile: what is absent stays; `null` clears `name` or
/// `email`. A changed email is unverified unless `email_verified` says so.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    pub email_verified: Option<bool>,
}

/// A field that is present, `null` or not: `Some(None)` for `null`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// A new password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordInput {
    /// 8 to 1024 characters. The user's sessions and tokens end.
    #[schema(format = Password, min_length = 8, max_length = 1024)]
    pub password: String,
}

/// A page of users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    pub items: Vec<UserView>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// `?search=`: users whose username or email contains it (any case).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserSearch {
    pub search: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Position(DateTime<Utc>, String);

pub(super) fn problem(error: AccountError) -> Problem {
    match error {
        AccountError::NoSuchUser(id) => Problem::not_found(format!("no user with id {id}")),
        AccountError::NoConsent(client) => {
            Problem::not_found(format!("the user has no consent for client {client}"))
        }
        AccountError::UsernameTaken(name) => Problem::conflict(format!("username {name} is taken")),
        AccountError::Changed => Problem::precondition_failed(),
        AccountError::BadPosition => {
            Problem::invalid("cursor is not one this API gave: pass next_cursor as it came")
        }
        AccountError::NothingToChange => Problem::invalid("nothing to change"),
        AccountError::Store(error) => Problem::internal(error),
        // The password's length rule says why; nothing of the password.
        other => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_user",
            other.to_string(),
        ),
    }
}

fn user_id(id: &str) -> Result<crate::domain::UserId, Problem> {
    accounts::parse_user_id(id).map_err(problem)
}

/// Lists users, oldest first; `search` narrows to a username or email.
#[utoipa::path(
    tag = "users",
    params(PageQuery, UserSearch),
    responses(
        (status = 200, description = "A page of users", body = UserPage),
        (status = 400, description = "A bad limit or cursor", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks admin:users:read", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin:users:read"]))
)]
#[get("/users")]
pub async fn list_users(
    request: HttpRequest,
    caller: Caller<UsersRead>,
    query: web::Query<PageQuery>,
    search: web::Query<UserSearch>,
) -> Result<HttpResponse, Problem> {
    let _ = caller;
    let run = async {
        let limit = query.limit()?;
        let after = query.after::<Position>()?.map(|p| (p.0, p.1));
        let (items, next) = accounts::list_page(
            state(&request).store.as_ref(),
            search.search.as_deref(),
            after,
            limit,
        )
        .await
        .map_err(problem)?;
        Ok::<_, Problem>(HttpResponse::Ok().json(Page {
            items,
            next_cursor: next.map(|(at, id)| cursor_of(&Position(at, id))),
        }))
    };
    run.await.map_err(|p| p.in_request(&request))
}

/// Creates a user, with a password or without one.
#[utoipa::path(
    tag = "users",
    request_body = UserInput,
    responses(
        (status = 201, description = "Created", body = UserView,
         headers(("Location" = String, description = "The user's URL"), ("ETag" = String))),
        (status = 400, description = "Malformed JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks admin:users:write", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The username is taken", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A value the rules refuse", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin:users:write"]))
)]
#[post("/users")]
pub async fn create_user(
    request: HttpRequest,
    Authorized(caller, input): Authorized<UsersWrite, UserInput>,
) -> Result<HttpResponse, Problem> {
    let state = state(&request);
    let run = async {
        let input = input.into_inner();
        let new = NewUser::parse(
            &input.username,
            input.name,
            input.email,
            input.email_verified,
        )
        .map_err(problem)?;
        let id = caller
            .acting(accounts::create(
                state.store.as_ref(),
                &state.peppers,
                state.clock.as_ref(),
                new,
                input.password.map(SecretString::from),
            ))
            .await
            .map_err(problem)?;
        let user = accounts::show(state.store.as_ref(), &id.to_string())
            .await
            .map_err(problem)?;
        Ok::<_, Problem>(
            HttpResponse::Created()
                .insert_header((header::LOCATION, format!("/admin/v1/users/{id}")))
                .insert_header((header::ETAG, etag_of(&user)))
                .json(user),
        )
    };
    run.await.map_err(|p| p.in_request(&request))
}

/// One user.
#[utoipa::path(
    tag = "users",
    params(("id" = String, Path, description = "The user's id")),
    responses(
        (status = 200, description = "The user", body = UserView, headers(("ETag" = String))),
        (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks admin:users:read", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin:users:read"]))
)]
#[get("/users/{id}")]
pub async fn get_user(
    request: HttpRequest,
    caller: Caller<UsersRead>,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let _ = caller;
    let user = accounts::show(state(&request).store.as_ref(), &id)
        .await
        .map_err(|e| problem(e).in_request(&request))?;
    Ok(with_etag(&user))
}

/// Changes a user's profile. `If-Match` with the user's `ETag` makes the
/// change only if nobody changed the user since.
#[utoipa::path(
    tag = "users",
    params(
        ("id" = String, Path, description = "The user's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag the change is based on"),
    ),
    request_body = UserPatch,
    responses(
        (status = 200, description = "The changed user", body = UserView, headers(("ETag" = String))),
        (status = 400, description = "Malformed JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks admin:users:write", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Without If-Match: the user changed while this request ran (read it again)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 412, description = "The user changed since the ETag in If-Match", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A value the rules refuse", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin:users:write"]))
)]
#[patch("/users/{id}")]
pub async fn update_user(
    request: HttpRequest,
    id: web::Path<String>,
    Authorized(caller, patch): Authorized<UsersWrite, UserPatch>,
) -> Result<HttpResponse, Problem> {
    let state = state(&request);
    let run = async {
        let current = accounts::show(state.store.as_ref(), &id)
            .await
            .map_err(problem)?;
        check_if_match(&request, &etag_of(&current))?;
        let patch = patch.into_inner();
        let changes = ProfileChanges {
            name: patch.name,
            email: patch.email,
            email_verified: patch.email_verified,
        };
        let updated = caller
            .acting(accounts::update_profile(
                state.store.as_ref(),
                &id,
                changes,
                Some(&current),
            ))
            .await;
        // A patch that changes nothing changes nothing (RFC 7396).
        let updated = match updated {
            Err(AccountError::NothingToChange) => current,
            Err(AccountError::Changed) => return Err(super::lost_race(&request)),
            other => other.map_err(problem)?,
        };
        Ok::<_, Problem>(with_etag(&updated))
    };
    run.await.map_err(|p| p.in_request(&request))
}

macro_rules! user_action {
    ($name:ident, $method:ident, $path:literal, $summary:literal, |$state:ident, $user:ident| $call:expr) => {
        #[doc = $summary]
        #[utoipa::path(
            tag = "users",
            params(("id" = String, Path, description = "The user's id")),
            responses(
                (status = 204, description = "Done"),
                (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
                (status = 403, description = "The token lacks admin:users:write", body = ProblemBody, content_type = "application/problem+json"),
                (status = 404, description = "No such user", body = ProblemBody, content_type = "application/problem+json"),
            ),
            security(("bearer" = ["admin:users:write"]))
        )]
        #[$method($path)]
        pub async fn $name(
            request: HttpRequest,
            caller: Caller<UsersWrite>,
            id: web::Path<String>,
        ) -> Result<HttpResponse, Problem> {
            let $state = state(&request);
            let run = async {
                let $user = user_id(&id)?;
                caller
                    .acting($call)
                    .await
                    .map_err(problem)?;
                Ok::<_, Problem>(HttpResponse::NoContent().finish())
            };
            run.await.map_err(|p| p.in_request(&request))
        }
    };
}

user_action!(
    disable_user,
    post,
    "/users/{id}/disable",
    "Disables a user: their sessions end and their tokens stop working.",
    |state, user| accounts::disable(state.store.as_ref(), state.clock.as_ref(), user)
);
user_action!(
    enable_user,
    post,
    "/users/{id}/enable",
    "Enables a disabled user (they sign in again; nothing ended comes back).",
    |state, user| accounts::enable(state.store.as_ref(), user)
);
user_action!(
    end_user_sessions,
    delete,
    "/users/{id}/sessions",
    "Signs a user out everywhere: browser sessions end, refresh and access tokens stop working.",
    |state, user| accounts::end_sessions(state.store.as_ref(), state.clock.as_ref(), user)
);

/// Sets a user's password; their sessions and tokens end.
#[utoipa::path(
    tag = "users",
    params(("id" = String, Path, description = "The user's id")),
    request_body = PasswordInput,
    responses(
        (status = 204, description = "Set"),
        (status = 400, description = "Malformed JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks admin:users:write", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A password the rules refuse", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin:users:write"]))
)]
#[put("/users/{id}/password")]
pub async fn set_user_password(
    request: HttpRequest,
    id: web::Path<String>,
    Authorized(caller, input): Authorized<UsersWrite, PasswordInput>,
) -> Result<HttpResponse, Problem> {
    let state = state(&request);
    let run = async {
        let user = user_id(&id)?;
        let password = SecretString::from(input.into_inner().password);
        caller
            .acting(accounts::set_password(
                state.store.as_ref(),
                &state.peppers,
                state.clock.as_ref(),
                user,
                password,
            ))
            .await
            .map_err(problem)?;
        Ok::<_, Problem>(HttpResponse::NoContent().finish())
    };
    run.await.map_err(|p| p.in_request(&request))
}

/// The apps a user consented to, with the scopes.
#[utoipa::path(
    tag = "users",
    params(("id" = String, Path, description = "The user's id")),
    responses(
        (status = 200, description = "The user's consents", body = Vec<consents::ConsentView>),
        (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks admin:users:read", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin:users:read"]))
)]
#[get("/users/{id}/consents")]
pub async fn list_user_consents(
    request: HttpRequest,
    caller: Caller<UsersRead>,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let _ = caller;
    let run = async {
        let user = user_id(&id)?;
        let list = consents::list(state(&request).store.as_ref(), user)
            .await
            .map_err(problem)?;
        Ok::<_, Problem>(HttpResponse::Ok().json(list))
    };
    run.await.map_err(|p| p.in_request(&request))
}

/// Withdraws a user's consent to a client: they are asked again, and the
/// tokens granted under it stop working.
#[utoipa::path(
    tag = "users",
    params(
        ("id" = String, Path, description = "The user's id"),
        ("client_id" = String, Path, description = "The client"),
    ),
    responses(
        (status = 204, description = "Withdrawn"),
        (status = 401, description = "No valid token for urn:authd:admin", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks admin:users:write", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such user or consent", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin:users:write"]))
)]
#[delete("/users/{id}/consents/{client_id}")]
pub async fn revoke_user_consent(
    request: HttpRequest,
    caller: Caller<UsersWrite>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Problem> {
    let state = state(&request);
    let run = async {
        let (id, client) = path.into_inner();
        let user = user_id(&id)?;
        caller
            .acting(consents::withdraw(
                state.store.as_ref(),
                state.clock.as_ref(),
                user,
                &client,
            ))
            .await
            .map_err(problem)?;
        Ok::<_, Problem>(HttpResponse::NoContent().finish())
    };
    run.await.map_err(|p| p.in_request(&request))
}

pub fn routes(config: &mut utoipa_actix_web::service_config::ServiceConfig) {
    config
        .service(list_users)
        .service(create_user)
        .service(get_user)
        .service(update_user)
        .service(disable_user)
        .service(enable_user)
        .service(end_user_sessions)
        .service(set_user_password)
        .service(list_user_consents)
        .service(revoke_user_consent);
}
