//! Verifies an authd access token offline, the way a resource server does:
//! fetch the JWKS once, pick the key by `kid`, check the RS256 signature,
//! `typ: at+jwt` (RFC 9068 §4), `iss`, `aud` and `exp` (60 s leeway).
//!
//! `cargo run --example verify_token -- TOKEN [ISSUER] [AUDIENCE]`
//! ISSUER defaults to http://127.0.0.1:8080; AUDIENCE (the API's
//! identifier, which its tokens carry in `aud`) to the issuer, the `aud`
//! of tokens for no API.
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let token = args
        .next()
        .ok_or("usage: verify_token TOKEN [ISSUER] [AUDIENCE]")?;
    let issuer = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8080".to_owned());
    let audience = args.next().unwrap_or_else(|| issuer.clone());

    let header = jsonwebtoken::decode_header(&token)?;
    if header.typ.as_deref() != Some("at+jwt") {
        return Err("not an access token: typ must be at+jwt".into());
    }
    let kid = header.kid.ok_or("token has no kid")?;
    let jwks_uri = format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/'));
    let jwks: JwkSet = reqwest::get(&jwks_uri)
        .await?
        .error_for_status()?
        .json()
        .await?;
    let jwk = jwks.find(&kid).ok_or("kid is not in the JWKS")?;

    let mut validation = Validation::new(Algorithm::RS256);
    validation.leeway = 60;
    validation.set_issuer(&[&issuer]);
    validation.set_audience(&[&audience]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "sub", "aud"]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        &token,
        &DecodingKey::from_jwk(jwk)?,
        &validation,
    )?
    .claims;
    println!("valid token, signed by key {kid}");
    println!("{}", serde_json::to_string_pretty(&claims)?);
    Ok(())
}
