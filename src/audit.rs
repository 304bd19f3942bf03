//! Audit events: what an operator or an incident responder needs to know
//! happened, as structured log events with the target `audit` (filter them
//! with `RUST_LOG=audit=info` or route the target to its own sink).
//!
//! Redaction happens here and only here: every event is a typed value whose
//! fields are identifiers (client ids, user ids, `jti`s, kids, addresses),
//! never a secret, token, code or password. The one personal value an event
//! may concern, a username typed at the login page, is written as a keyed
//! hash (HMAC-SHA256 under a key only this process holds, first 16 hex
//! digits): failures for the same name can be correlated, the name cannot
//! be read back.
use std::net::IpAddr;
use std::sync::OnceLock;

use crate::crypto::Digester;

/// The key usernames are hashed with; set once per process at start
/// (`Secrets::open`). Before that, usernames are written as `-`.
static USERNAME_KEY: OnceLock<Digester> = OnceLock::new();

pub fn set_username_key(digester: Digester) {
    let _ = USERNAME_KEY.set(digester);
}

fn username_hash(username: &str) -> String {
    match USERNAME_KEY.get() {
        // The same hash names a throttled username in Redis.
        Some(digester) => crate::limits::shared::short_hash(digester, username.as_bytes()),
        None => "-".into(),
    }
}

/// Every auditable event.
#[derive(Debug)]
pub enum Event<'a> {
    ClientCreated {
        client_id: &'a str,
    },
    ClientDeleted {
        client_id: &'a str,
    },
    ClientUpdated {
        client_id: &'a str,
    },
    ClientSecretRotated {
        client_id: &'a str,
    },
    RegistrationTokenCreated {
        token_id: &'a str,
    },
    RegistrationTokenRevoked {
        token_id: &'a str,
    },
    UserCreated {
        user_id: &'a str,
    },
    UserDisabled {
        user_id: &'a str,
    },
    UserEnabled {
        user_id: &'a str,
    },
    UserUpdated {
        user_id: &'a str,
    },
    UserSessionsEnded {
        user_id: &'a str,
    },
    PasswordChanged {
        user_id: &'a str,
    },
    LoginSucceeded {
        user_id: &'a str,
        client_id: &'a str,
        ip: Option<IpAddr>,
    },
    LoginFailed {
        username: &'a str,
        client_id: &'a str,
        ip: Option<IpAddr>,
    },
    ConsentGranted {
        user_id: &'a str,
        client_id: &'a str,
        scope: &'a str,
    },
    ConsentDenied {
        user_id: &'a str,
        client_id: &'a str,
    },
    ConsentRevoked {
        user_id: &'a str,
        client_id: &'a str,
    },
    TokenIssued {
        client_id: &'a str,
        grant: &'a str,
        sub: &'a str,
        jti: &'a str,
    },
    RefreshTokenReuse {
        client_id: &'a str,
        family_id: &'a str,
    },
    KeyRotated {
        activated: &'a str,
    },
    KeyRevoked {
        kid: &'a str,
    },
    /// An API, role or group was created, changed or deleted, or a user
    /// gained or lost a role or a group: `change` names which, `target`
    /// the API's identifier or the role's or group's name.
    AccessChanged {
        change: &'static str,
        target: &'a str,
        user_id: Option<&'a str>,
    },
    RateLimited {
        limit: &'a str,
        ip: Option<IpAddr>,
        client_id: Option<&'a str>,
    },
}

tokio::task_local! {
    /// Who is making the change the events of this task record.
    static ACTOR: String;
}

/// Runs `work` with its audit events naming `actor`: `cli` for the
/// command line, `client:ID` for the admin API's caller. Events recorded
/// outside any such scope (the server's own work, people signing in) name
/// `-`.
pub async fn acting_as<F: std::future::Future>(actor: String, work: F) -> F::Output {
    ACTOR.scope(actor, work).await
}

/// Writes `event` as one `audit` log event. (Every token issued records
/// one: the actor is borrowed, not copied.)
pub fn record(event: Event<'_>) {
    let mut event = Some(event);
    let _ = ACTOR.try_with(|actor| {
        if let Some(event) = event.take() {
            emit(event, actor);
        }
    });
    if let Some(event) = event {
        emit(event, "-");
    }
}

fn emit(event: Event<'_>, actor: &str) {
    let ip = |ip: Option<IpAddr>| ip.map(|ip| ip.to_string()).unwrap_or_else(|| "-".into());
    match event {
        Event::ClientCreated { client_id } => {
            tracing::info!(target: "audit", actor, event = "client_created", client_id)
        }
        Event::ClientDeleted { client_id } => {
            tracing::info!(target: "audit", actor, event = "client_deleted", client_id)
        }
        Event::ClientUpdated { client_id } => {
            tracing::info!(target: "audit", actor, event = "client_updated", client_id)
        }
        Event::RegistrationTokenCreated { token_id } => {
            tracing::info!(target: "audit", actor, event = "registration_token_created", token_id)
        }
        Event::RegistrationTokenRevoked { token_id } => {
            tracing::info!(target: "audit", actor, event = "registration_token_revoked", token_id)
        }
        Event::ClientSecretRotated { client_id } => {
            tracing::info!(target: "audit", actor, event = "client_secret_rotated", client_id)
        }
        Event::UserCreated { user_id } => {
            tracing::info!(target: "audit", actor, event = "user_created", user_id)
        }
        Event::UserEnabled { user_id } => {
            tracing::info!(target: "audit", actor, event = "user_enabled", user_id)
        }
        Event::UserUpdated { user_id } => {
            tracing::info!(target: "audit", actor, event = "user_updated", user_id)
        }
        Event::UserSessionsEnded { user_id } => {
            tracing::warn!(target: "audit", actor, event = "user_sessions_ended", user_id)
        }
        Event::UserDisabled { user_id } => {
            tracing::info!(target: "audit", actor, event = "user_disabled", user_id)
        }
        Event::PasswordChanged { user_id } => {
            tracing::info!(target: "audit", actor, event = "password_changed", user_id)
        }
        Event::LoginSucceeded {
            user_id,
            client_id,
            ip: address,
        } => tracing::info!(
            target: "audit", actor,
            event = "login_succeeded",
            user_id,
            client_id,
            ip = %ip(address)
        ),
        Event::LoginFailed {
            username,
            client_id,
            ip: address,
        } => tracing::info!(
            target: "audit", actor,
            event = "login_failed",
            username_hash = %username_hash(username),
            client_id,
            ip = %ip(address)
        ),
        Event::ConsentGranted {
            user_id,
            client_id,
            scope,
        } => {
            tracing::info!(target: "audit", actor, event = "consent_granted", user_id, client_id, scope)
        }
        Event::ConsentDenied { user_id, client_id } => {
            tracing::info!(target: "audit", actor, event = "consent_denied", user_id, client_id)
        }
        Event::ConsentRevoked { user_id, client_id } => {
            tracing::info!(target: "audit", actor, event = "consent_revoked", user_id, client_id)
        }
        Event::TokenIssued {
            client_id,
            grant,
            sub,
            jti,
        } => {
            tracing::info!(target: "audit", actor, event = "token_issued", client_id, grant, sub, jti)
        }
        Event::RefreshTokenReuse {
            client_id,
            family_id,
        } => {
            tracing::warn!(target: "audit", actor, event = "refresh_token_reuse", client_id, family_id)
        }
        Event::KeyRotated { activated } => {
            tracing::info!(target: "audit", actor, event = "key_rotated", kid = activated)
        }
        Event::KeyRevoked { kid } => {
            tracing::warn!(target: "audit", actor, event = "key_revoked", kid)
        }
        Event::AccessChanged {
            change,
            target,
            user_id,
        } => tracing::info!(
            target: "audit", actor,
            event = change,
            target_name = target,
            user_id = user_id.unwrap_or("-")
        ),
        Event::RateLimited {
            limit,
            ip: address,
            client_id,
        } => tracing::warn!(
            target: "audit", actor,
            event = "rate_limited",
            limit,
            ip = %ip(address),
            client_id = client_id.unwrap_or("-")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_hashed_not_written() {
        let key = crate::crypto::MasterKey::generate();
        set_username_key(Digester::new(&key, crate::crypto::Purpose::AuditUsername));
        let hash = username_hash("alice");
        assert_eq!(hash.len(), 16);
        assert!(!hash.contains("alice"));
        assert_eq!(hash, username_hash("alice"));
        assert_ne!(hash, username_hash("alicf"));
    }
}
