//! A user's consents: what each client may do for them, and withdrawing it.
use serde::Serialize;

use super::AccountError;
use crate::clock::Clock;
use crate::domain::{ClientId, UserId};
use crate::store::Store;

/// One consent as an operator sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConsentView {
    pub client_id: String,
    pub granted_at: chrono::DateTime<chrono::Utc>,
    pub scope: String,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// The user's consents; `NoSuchUser` for an unknown user.
pub async fn list(store: &dyn Store, user: UserId) -> Result<Vec<ConsentView>, AccountError> {
    require_user(store, user).await?;
    Ok(store
        .list_consents(user)
        .await?
        .into_iter()
        .map(|c| ConsentView {
            client_id: c.client_id.to_string(),
            scope: c.scope,
            granted_at: c.granted_at,
            updated_at: c.updated_at,
        })
        .collect())
}

/// `NoSuchUser` unless the user exists.
async fn require_user(store: &dyn Store, user: UserId) -> Result<(), AccountError> {
    match store.find_user(user).await? {
        Some(_) => Ok(()),
        None => Err(AccountError::NoSuchUser(user.to_string())),
    }
}

/// Withdraws the user's consent to `client`: they are asked again at the
/// next sign-in, and the tokens granted under it end with it.
/// `NoSuchUser` for an unknown user, `NoConsent` when there is none.
pub async fn withdraw(
    store: &dyn Store,
    clock: &dyn Clock,
    user: UserId,
    client: &str,
) -> Result<(), AccountError> {
    require_user(store, user).await?;
    let client_id =
        ClientId::parse(client).ok_or_else(|| AccountError::NoConsent(client.to_owned()))?;
    if !store.revoke_consent(user, &client_id, clock.now()).await? {
        return Err(AccountError::NoConsent(client.to_owned()));
    }
    crate::audit::record(crate::audit::Event::ConsentRevoked {
        user_id: &user.to_string(),
        client_id: client_id.as_str(),
    });
    Ok(())
}
