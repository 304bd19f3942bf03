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
    #[error("a username may not read as a user id (a UUID)")]
    UsernameLikeId,
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
    #[error("not a position in the list of users")]
    BadPosition,
    #[error("nothing to change: give at least one value")]
    NothingToChange,
    #[error("the user changed meanwhile")]
    Changed,
    #[error("email_verified needs an email")]
    VerifiedWithoutEmail,
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
        if email
            .as_deref()
            .is_some_and(|e| !crate::domain::user::plausible_email(e))
        {
            return Err(AccountError::Email);
        }
        if email.is_none() && email_verified {
            return Err(AccountError::VerifiedWithoutEmail);
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
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
    /// Whether the user has a password (a user created without one cannot
    /// sign in with a password until one is set).
    pub has_password: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id.to_string(),
            has_password: has_password(&u),
            username: u.username.as_str().to_owned(),
            name: u.name,
            email: u.email,
            email_verified: u.email_verified,
            disabled: u.disabled,
            password_key_version: u.password_key_version,
            created_at: u.created_at,
        }
    }
}

/// What a user without a password has in place of a hash: no password
/// matches it (the sign-in check compares against the decoy instead).
pub const NO_PASSWORD: &str = "";

pub fn has_password(user: &User) -> bool {
    user.password_hash != NO_PASSWORD
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

/// Creates the user with this password (or none: they cannot sign in
/// with a password until one is set); its id.
pub async fn create(
    store: &dyn Store,
    peppers: &Peppers,
    clock: &dyn Clock,
    new: NewUser,
    password: Option<SecretString>,
) -> Result<UserId, AccountError> {
    // Commands and the admin API name users by id or username: a username
    // that reads as an id would be taken for one.
    if uuid::Uuid::parse_str(new.username.as_str()).is_ok() {
        return Err(AccountError::UsernameLikeId);
    }
    let hashed = match password {
        Some(password) => hash_password(peppers, password).await?,
        None => HashedPassword {
            phc: NO_PASSWORD.to_owned(),
            key_version: peppers
                .current()
                .map_err(|e| AccountError::Password(e.to_string()))?
                .version,
        },
    };
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
        .map(UserView::from)
        .collect())
}

/// The user with this id.
pub async fn show(store: &dyn Store, id: &str) -> Result<UserView, AccountError> {
    let user = store
        .find_user(parse_user_id(id)?)
        .await?
        .ok_or_else(|| AccountError::NoSuchUser(id.to_owned()))?;
    Ok(UserView::from(user))
}

/// Where a page of users ends: what the list is ordered by.
pub type UserPosition = (chrono::DateTime<chrono::Utc>, String);

/// At most `limit` users after `after`, oldest first, whose username or
/// email contains `search` (any case), and the position of the last when
/// more follow.
pub async fn list_page(
    store: &dyn Store,
    search: Option<&str>,
    after: Option<UserPosition>,
    limit: u32,
) -> Result<(Vec<UserView>, Option<UserPosition>), AccountError> {
    let after = match after {
        Some((at, id)) => Some((
            at,
            id.parse()
                .map(UserId)
                .map_err(|_| AccountError::BadPosition)?,
        )),
        None => None,
    };
    let search = search.map(str::trim).filter(|s| !s.is_empty());
    let mut users = store.list_users_page(search, after, limit + 1).await?;
    let more = users.len() > limit as usize;
    users.truncate(limit as usize);
    let next = match users.last() {
        Some(last) if more => Some((last.created_at, last.id.to_string())),
        _ => None,
    };
    Ok((users.into_iter().map(UserView::from).collect(), next))
}

/// Changes to a profile: `None` leaves a value as it is; `Some(None)`
/// clears `name` or `email`.
#[derive(Debug, Default, Clone)]
pub struct ProfileChanges {
    pub name: Option<Option<String>>,
    pub email: Option<Option<String>>,
    pub email_verified: Option<bool>,
}

/// Changes the user's profile, checked as a new user's is; only while it
/// is still `expected` (the admin API's `If-Match`): `Changed` otherwise.
/// A changed email is unverified unless `email_verified` says otherwise.
pub async fn update_profile(
    store: &dyn Store,
    id: &str,
    changes: ProfileChanges,
    expected: Option<&UserView>,
) -> Result<UserView, AccountError> {
    if changes.name.is_none() && changes.email.is_none() && changes.email_verified.is_none() {
        return Err(AccountError::NothingToChange);
    }
    let user_id = parse_user_id(id)?;
    let current = store
        .find_user(user_id)
        .await?
        .ok_or_else(|| AccountError::NoSuchUser(id.to_owned()))?;
    if let Some(expected) = expected
        && (expected.name != current.name
            || expected.email != current.email
            || expected.email_verified != current.email_verified)
    {
        return Err(AccountError::Changed);
    }
    let old = store::Profile {
        name: current.name.clone(),
        email: current.email.clone(),
        email_verified: current.email_verified,
    };
    let name = changes.name.unwrap_or_else(|| current.name.clone());
    let email_changed = changes
        .email
        .as_ref()
        .is_some_and(|email| *email != current.email);
    let email = changes.email.unwrap_or_else(|| current.email.clone());
    let email_verified = changes
        .email_verified
        .unwrap_or(current.email_verified && !email_changed);
    // The rules of a new user's values.
    let checked = NewUser::parse(current.username.as_str(), name, email, email_verified)?;
    if checked.email.is_none() && checked.email_verified {
        return Err(AccountError::VerifiedWithoutEmail);
    }
    let new = store::Profile {
        name: checked.name,
        email: checked.email,
        email_verified: checked.email_verified,
    };
    if !store.update_user_profile(user_id, &old, &new).await? {
        return Err(AccountError::Changed);
    }
    crate::audit::record(crate::audit::Event::UserUpdated {
        user_id: &user_id.to_string(),
    });
    show(store, id).await
}

/// Enables a disabled user.
pub async fn enable(store: &dyn Store, user: UserId) -> Result<(), AccountError> {
    if !store.enable_user(user).await? {
        return Err(AccountError::NoSuchUser(user.to_string()));
    }
    crate::audit::record(crate::audit::Event::UserEnabled {
        user_id: &user.to_string(),
    });
    Ok(())
}

/// Signs the user out everywhere: their browser sessions end, and the
/// refresh and access tokens they granted stop working.
pub async fn end_sessions(
    store: &dyn Store,
    clock: &dyn Clock,
    user: UserId,
) -> Result<(), AccountError> {
    if !store.end_user_sessions(user, clock.now()).await? {
        return Err(AccountError::NoSuchUser(user.to_string()));
    }
    crate::audit::record(crate::audit::Event::UserSessionsEnded {
        user_id: &user.to_string(),
    });
    Ok(())
}
