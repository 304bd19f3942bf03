//! Who may do what, as an operator manages it: APIs (resource servers and
//! their scopes), roles (sets of API scopes), groups (users sharing roles),
//! and the roles users hold. The CLI calls these functions, and so will
//! the admin API. The decision a grant makes from them is
//! `oauth::access::decide`. Uses store, domain, clock, audit.
pub mod apis;
pub mod groups;
pub mod roles;

use crate::domain::{AccessName, Role, User};
use crate::store::{self, Store};

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// A value given for this flag is not acceptable; the message says why.
    #[error("{flag}: {problem}")]
    Invalid { flag: &'static str, problem: String },
    #[error("no API with identifier {0}")]
    NoSuchApi(String),
    #[error("no role named {0}")]
    NoSuchRole(String),
    #[error("no group named {0}")]
    NoSuchGroup(String),
    #[error("no user with id or username {0}")]
    NoSuchUser(String),
    #[error("{0}")]
    Taken(String),
    /// It changed since the version the change was based on.
    #[error("it changed meanwhile: read it again, then retry")]
    Changed,
    /// authd's own (the admin API): not for the operator to change.
    #[error("{0}")]
    BuiltIn(String),
    /// Deleting (or narrowing) would take something in use; `--force` does it anyway.
    #[error("{0}; pass --force to do it anyway")]
    InUse(String),
    #[error(transparent)]
    Store(#[from] store::Error),
}

impl AccessError {
    fn invalid(flag: &'static str, problem: impl Into<String>) -> Self {
        AccessError::Invalid {
            flag,
            problem: problem.into(),
        }
    }
}

/// The user a reference names: their id (a UUID) or their username.
pub async fn find_user(store: &dyn Store, reference: &str) -> Result<User, AccessError> {
    if let Ok(id) = reference.parse::<uuid::Uuid>()
        && let Some(user) = store.find_user(crate::domain::UserId(id)).await?
    {
        return Ok(user);
    }
    let Some(username) = crate::domain::Username::parse(reference) else {
        return Err(AccessError::NoSuchUser(reference.to_owned()));
    };
    store
        .find_user_by_username(&username)
        .await?
        .ok_or_else(|| AccessError::NoSuchUser(reference.to_owned()))
}

/// The role with this name.
pub async fn find_role(store: &dyn Store, name: &str) -> Result<Role, AccessError> {
    store
        .list_roles()
        .await?
        .into_iter()
        .find(|role| role.name.as_str() == name)
        .ok_or_else(|| AccessError::NoSuchRole(name.to_owned()))
}

/// Now, to the microsecond: what both databases keep, so that what a
/// create prints is what a later show reads back.
fn now(clock: &dyn crate::clock::Clock) -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    clock.now().trunc_subsecs(6)
}

/// A role's or group's name, checked.
fn access_name(flag: &'static str, value: &str) -> Result<AccessName, AccessError> {
    AccessName::parse(value).ok_or_else(|| {
        AccessError::invalid(
            flag,
            "must be 1 to 64 letters, digits, '.', '_', '-' or ':'",
        )
    })
}
