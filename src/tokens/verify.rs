//! authd's own checks of the access tokens it issued (for `/userinfo` and
//! `/introspect`): signature by a published key, `typ: at+jwt` (RFC 9068
//! §4), `iss`, `exp` by authd's own clock without leeway. jsonwebtoken does
//! the JOSE work; which algorithm and which keys are acceptable is decided
//! here, never by the token.
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use super::Keys;

/// DESIGN: the clock skew *other parties* may tolerate when they validate
/// authd's tokens (resource servers; see `examples/resource_server.rs`).
/// Retired keys stay published that much longer. authd itself judges its
/// own tokens by its own clock, without it (RFC 7662 §2.2: an expired token
/// is inactive).
pub const LEEWAY_SECONDS: u64 = 60;

/// The claims authd reads back from its access tokens.
#[derive(Debug, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    pub sub: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    #[serde(default)]
    pub scope: Option<String>,
    /// A string or an array (RFC 9068 §2.2), passed through as is.
    #[serde(default)]
    pub aud: serde_json::Value,
}

/// Why a token was refused; the caller says only `invalid_token`, the
/// reason goes to the log.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("not a JWT")]
    Malformed,
    #[error("algorithm is not RS256")]
    Algorithm,
    #[error("typ is not at+jwt")]
    Type,
    #[error("unknown kid")]
    UnknownKey,
    #[error("signature, issuer or expiry check failed: {0}")]
    Invalid(String),
}

impl VerifyError {
    /// A short label for `jwt_validation_failures_total{reason}`.
    pub fn reason(&self) -> &'static str {
        match self {
            VerifyError::Malformed => "malformed",
            VerifyError::Algorithm => "algorithm",
            VerifyError::Type => "type",
            VerifyError::UnknownKey => "unknown_kid",
            VerifyError::Invalid(kind) => match kind.as_str() {
                "InvalidSignature" => "signature",
                "ExpiredSignature" => "expired",
                "InvalidIssuer" => "issuer",
                _ => "claims",
            },
        }
    }
}

/// Verifies `token` against the published keys, with expiry judged by
/// `clock` (injected, so tests that move time see tokens expire).
pub fn verify_access_token(
    keys: &Keys,
    issuer: &str,
    token: &str,
    clock: &dyn crate::clock::Clock,
) -> Result<AccessTokenClaims, VerifyError> {
    // RFC 9068 §4: reject anything not typed as an access token (ID tokens
    // carry `typ: JWT`).
    let is_access_token = |typ: &str| {
        typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt")
    };
    let claims: AccessTokenClaims = decode_own(
        keys,
        issuer,
        token,
        is_access_token,
        &["exp", "iat", "iss", "sub"],
    )?;
    // The issuer's own clock decides, with no leeway: leeway is for other
    // parties' clocks (RFC 7519 §4.1.4: expired once now >= exp).
    if claims.exp <= clock.now().timestamp() {
        return Err(VerifyError::Invalid("ExpiredSignature".into()));
    }
    Ok(claims)
}

/// [`verify_access_token`], reloading the key ring once (rate-limited) when
/// the token names a `kid` this replica does not know yet: another replica
/// or the CLI may have just rotated or published a key.
pub async fn verify_access_token_reloading(
    keys: &Keys,
    issuer: &str,
    token: &str,
    clock: &dyn crate::clock::Clock,
) -> Result<AccessTokenClaims, VerifyError> {
    match verify_access_token(keys, issuer, token, clock) {
        Err(VerifyError::UnknownKey) if keys.reload_for_unknown_kid(clock).await => {
            verify_access_token(keys, issuer, token, clock)
        }
        other => other,
    }
}

/// What authd reads from an `id_token_hint` (OIDC RP-Initiated Logout §2).
#[derive(Debug, Deserialize)]
pub struct IdTokenHint {
    pub sub: String,
    pub aud: String,
}

/// Verifies an ID token authd issued, for use as a logout hint. An expired
/// token is still a good hint (RP-Initiated Logout §2: "the OP need not
/// check the exp"); signature, `typ: JWT` and `iss` must hold.
pub fn verify_id_token_hint(
    keys: &Keys,
    issuer: &str,
    token: &str,
) -> Result<IdTokenHint, VerifyError> {
    decode_own(
        keys,
        issuer,
        token,
        |typ| typ == "JWT",
        &["iss", "sub", "aud"],
    )
}

/// Decodes a token authd signed: RS256 only (`none` and HS256-with-the-
/// public-key never get this far), a `typ` the caller accepts, a `kid` in
/// the key ring, the signature, `iss` and the required claims, in that
/// order. Expiry and audience are the caller's to judge.
fn decode_own<T: serde::de::DeserializeOwned>(
    keys: &Keys,
    issuer: &str,
    token: &str,
    typ_accepted: impl Fn(&str) -> bool,
    required_claims: &[&str],
) -> Result<T, VerifyError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
    if header.alg != Algorithm::RS256 {
        return Err(VerifyError::Algorithm);
    }
    if !header.typ.as_deref().is_some_and(typ_accepted) {
        return Err(VerifyError::Type);
    }
    let kid = header.kid.ok_or(VerifyError::UnknownKey)?;
    let ring = keys.current();
    let key = ring.verifying.get(&kid).ok_or(VerifyError::UnknownKey)?;
    let mut validation = Validation::new(Algorithm::RS256);
    // Expiry is the caller's (against the injected clock, or not at all).
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(required_claims);
    jsonwebtoken::decode::<T>(token, key, &validation)
        .map(|data| data.claims)
        .map_err(|e| VerifyError::Invalid(format!("{:?}", e.kind())))
}
