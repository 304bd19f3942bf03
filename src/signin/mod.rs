//! The person's side of signing in: the authorization flow (pending
//! requests, stored or sealed, and finishing with a code), login and the
//! password check, browser sessions and CSRF, consent decisions. Passkeys,
//! TOTP and the account page belong here too. Knows nothing of HTTP
//! frameworks. Uses oauth (validated requests, codes, errors), clients,
//! limits, store, crypto, domain, audit.
pub mod consent;
pub mod flow;
pub mod password;
pub mod pending;
pub mod session;
pub mod step;
