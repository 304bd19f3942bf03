//! Creating, listing and disabling users, and setting their passwords.
use secrecy::SecretString;
use serde::Serialize;

use crate::clock::Clock;
use crate::crypto::password::{self, HashedPassword, Peppers};
use crate::domain::{User, UserId, Username};
use crate::store::{self, Store};

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("a username is 1 to 64 characters without spaces")]
    Username,
    /// A profile value (`name`, `email`) is not 1 to 200 characters without
    /// control characters.
    #[error("{0} must be 1 to 200 characters without control characters")]
    ProfileValue(&'static str),
    #[error("not an email address")]
    Email,
    #[error("username {0} is taken")]
    UsernameTaken(String),
    #[error("no user with id {0}")]
    NoSuchUser(String),
    #[error("no consent for client {0}")]
    NoConsent(String),
    /// The password could not be hashed (no current pepper, a task failed).
    #[error("{0}")]
    Password(String),
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// A user to create, checked; the password comes separately.
#[derive(Debug, Clone)]
pub struct NewUser {
    username: Username,
    name: Option<String>,
    email: Option<String>,
    email_verified: bool,
}

impl NewUser {
    /// Checks the username and the profile values (each 1 to 200
    /// characters, trimmed, no control characters; the email plausible).
    pub fn parse(
        username: &str,
        name: Option<String>,
        email: Option<String>,
        email_verified: bool,
    ) -> Result<Self, AccountError> {
        let username = Username::parse(username).ok_or(AccountError::Username)?;
        let name = name.map(|n| profile_value("name", n)).transpose()?;
        let email = email.map(|e| profile_value("email", e)).transpose()?;
        let plausible = |e: &str| {
            e.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && domain.contains('.') && !e.contains(char::is_whitespace)
            })
        };
        if email.as_deref().is_some_and(|e| !plausible(e)) {
            return Err(AccountError::Email);
        }
        Ok(Self {
            username,
            name,
            email,
            email_verified,
        })
    }
}

/// A user as an operator sees it (never the password hash).
#[derive(Debug, Serialize)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub email_verified: bool,
    pub disabled: bool,
    /// The master-key version whose pepper keyed the password hash (0: a
    /// hash from before peppers; re-keyed at the next sign-in).
    pub password_key_version: u32,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// The id as users are named outside: a UUID; anything else names nobody.
pub fn parse_user_id(id: &str) -> Result<UserId, AccountError> {
    id.parse()
        .map(UserId)
        .map_err(|_| AccountError::NoSuchUser(id.to_owned()))
}

/// A profile value: 1 to 200 characters, no control characters.
fn profile_value(field: &'static str, value: String) -> Result<String, AccountError> {
    let value = value.trim().to_owned();
    let length = value.chars().count();
    if (1..=200).contains(&length) && !value.chars().any(char::is_control) {
        Ok(value)
    } else {
        Err(AccountError::ProfileValue(field))
    }
}

/// argon2id keyed with the current master key's pepper, off the executor.
async fn hash_password(
    peppers: &Peppers,
    password: SecretString,
) -> Result<HashedPassword, AccountError> {
    let pepper = peppers
        .current()
        .map_err(|e| AccountError::Password(e.to_string()))?;
    tokio::task::spawn_blocking(move || password::hash(&password, &pepper))
        .await
        .map_err(|e| AccountError::Password(e.to_string()))?
        .map_err(|e| AccountError::Password(e.to_string()))
}

/// Creates the user with this password; its id.
pub async fn create(
    store: &dyn Store,
    peppers: &Peppers,
    clock: &dyn Clock,
    new: NewUser,
    password: SecretString,
) -> Result<UserId, AccountError> {
    let hashed = hash_password(peppers, password).await?;
    let user = User {
        id: UserId(uuid::Uuid::new_v4()),
        username: new.username,
        password_hash: hashed.phc,
        password_key_version: hashed.key_version,
        name: new.name,
        email: new.email,
        email_verified: new.email_verified,
        disabled: false,
        created_at: clock.now(),
    };
    store.insert_user(&user).await.map_err(|e| match e {
        store::Error::Conflict(_) => AccountError::UsernameTaken(user.username.as_str().to_owned()),
        other => other.into(),
    })?;
    crate::audit::record(crate::audit::Event::UserCreated {
        user_id: &user.id.to_string(),
    });
    Ok(user.id)
}

/// Sets a user's password (the store ends their sessions and tokens).
pub async fn set_password(
    store: &dyn Store,
    peppers: &Peppers,
    clock: &dyn Clock,
    user: UserId,
    password: SecretString,
) -> Result<(), AccountError> {
    let hashed = hash_password(peppers, password).await?;
    if !store
        .set_password(user, &hashed.phc, hashed.key_version, clock.now())
        .await?
    {
        return Err(AccountError::NoSuchUser(user.to_string()));
    }
    crate::audit::record(crate::audit::Event::PasswordChanged {
        user_id: &user.to_string(),
    });
    Ok(())
}

/// Disables a user (the store ends their sessions and tokens).
pub async fn disable(
    store: &dyn Store,
    clock: &dyn Clock,
    user: UserId,
) -> Result<(), AccountError> {
    if !store.disable_user(user, clock.now()).await? {
        return Err(AccountError::NoSuchUser(user.to_string()));
    }
    crate::audit::record(crate::audit::Event::UserDisabled {
        user_id: &user.to_string(),
    });
    Ok(())
}

/// Every user, oldest first.
pub async fn list(store: &dyn Store) -> Result<Vec<UserView>, AccountError> {
    Ok(store
        .list_users()
        .await?
        .into_iter()
        .map(|u| UserView {
            id: u.id.to_string(),
            username: u.username.as_str().to_owned(),
            name: u.name,
            email: u.email,
            email_verified: u.email_verified,
            disabled: u.disabled,
            password_key_version: u.password_key_version,
            created_at: u.created_at,
        })
        .collect())
}
