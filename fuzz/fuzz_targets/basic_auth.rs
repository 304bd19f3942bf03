//! Client authentication at the token endpoint:
//! `ClientCredentials::from_request(Authorization header bytes, body params)`.
//!
//! Input: one mode byte, then the header part and the body part separated by
//! the first NUL byte. Modes: 0 no header; 1 the header bytes as they are;
//! 2 `Basic ` + base64(header part), so the fuzzer works on the decoded
//! `id:secret`; 3 `Basic ` + base64(form-encode(id) ":" form-encode(secret))
//! with id and secret from the header part split at its first 0x01 byte.
//!
//! Asserts:
//! - never panics;
//! - accepted credentials name a non-empty client id;
//! - without a header: `client_secret_post` exactly when the body has both
//!   `client_id` and `client_secret`, a bare id when it has only the id
//!   (values as sent), `invalid_client` otherwise;
//! - with a header: only Basic credentials are accepted, never together with
//!   a body `client_secret` or a different body `client_id` (RFC 6749 §2.3:
//!   one method per request);
//! - RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic
//!   encoding, so accepted Basic credentials, encoded again that way, read
//!   back the same, and any id/secret so encoded reads back as itself;
//! - error descriptions stay within RFC 6749 §5.2's characters.
#![no_main]

use authd::oauth::Params;
use authd::oauth::client_auth::ClientCredentials;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use libfuzzer_sys::fuzz_target;
use secrecy::ExposeSecret;

/// RFC 6749 Appendix B: `application/x-www-form-urlencoded` of one value.
fn form_encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn basic_header(id: &str, secret: &str) -> Vec<u8> {
    let pair = format!("{}:{}", form_encode(id), form_encode(secret));
    format!("Basic {}", STANDARD.encode(pair)).into_bytes()
}

fn description_is_rfc_6749_charset(message: &str) -> bool {
    message
        .bytes()
        .all(|b| b == 0x20 || b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

fn check_basic(
    header: &[u8],
    params: &Params,
    result: &Result<ClientCredentials, authd::oauth::Error>,
) {
    match result {
        Ok(ClientCredentials::Basic { id, secret }) => {
            assert!(
                !params.contains("client_secret"),
                "Basic accepted together with client_secret in the body"
            );
            if let Some(body_id) = params.get("client_id") {
                assert_eq!(
                    body_id, id,
                    "Basic accepted with a different body client_id"
                );
            }
            // §2.3.1 round trip: what was read, encoded as the RFC says,
            // reads back the same.
            let again = basic_header(id, secret.expose_secret());
            match ClientCredentials::from_request(Some(&again), &Params::default()) {
                Ok(ClientCredentials::Basic {
                    id: id2,
                    secret: secret2,
                }) => {
                    assert_eq!(&id2, id);
                    assert_eq!(secret2.expose_secret(), secret.expose_secret());
                }
                other => panic!("re-encoded Basic credentials not read back: {other:?}"),
            }
        }
        Ok(other) => panic!(
            "with an Authorization header ({:?}) the credentials must be Basic, got {other:?}",
            String::from_utf8_lossy(header)
        ),
        Err(error) => {
            assert!(
                matches!(error.code(), "invalid_client" | "invalid_request"),
                "unexpected error code {}",
                error.code()
            );
            let scheme_is_basic = std::str::from_utf8(header).is_ok_and(|h| {
                h.trim()
                    .split_once(' ')
                    .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            });
            if !scheme_is_basic {
                assert_eq!(error.code(), "invalid_client");
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (header_part, body) = match rest.iter().position(|&b| b == 0) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let Ok(params) = Params::parse(body) else {
        return;
    };
    let mut expected_basic: Option<(String, String)> = None;
    let header: Option<Vec<u8>> = match mode % 4 {
        0 => None,
        1 => Some(header_part.to_vec()),
        2 => Some(format!("Basic {}", STANDARD.encode(header_part)).into_bytes()),
        _ => {
            let (id, secret) = match header_part.iter().position(|&b| b == 1) {
                Some(at) => (&header_part[..at], &header_part[at + 1..]),
                None => (header_part, &[][..]),
            };
            let id = String::from_utf8_lossy(id).into_owned();
            let secret = String::from_utf8_lossy(secret).into_owned();
            let header = basic_header(&id, &secret);
            expected_basic = Some((id, secret));
            Some(header)
        }
    };

    let result = ClientCredentials::from_request(header.as_deref(), &params);

    if let Ok(credentials) = &result {
        assert!(
            !credentials.client_id().is_empty(),
            "credentials with an empty client id were accepted: {credentials:?} from header {:?}",
            header.as_deref().map(String::from_utf8_lossy)
        );
    }
    if let Err(error) = &result {
        let message = error.to_string();
        assert!(
            description_is_rfc_6749_charset(&message),
            "error_description outside RFC 6749 §5.2's characters: {message:?}"
        );
    }

    match &header {
        None => match (
            params.get("client_id"),
            params.get("client_secret"),
            &result,
        ) {
            (Some(id), Some(secret), Ok(ClientCredentials::Post { id: got, secret: s })) => {
                assert_eq!(id, got);
                assert_eq!(secret, s.expose_secret());
            }
            (Some(id), None, Ok(ClientCredentials::IdOnly { id: got })) => assert_eq!(id, got),
            (None, _, Err(error)) => assert_eq!(error.code(), "invalid_client"),
            (id, secret, result) => panic!(
                "body client_id {id:?}, client_secret present {}: unexpected {result:?}",
                secret.is_some()
            ),
        },
        Some(header) => check_basic(header, &params, &result),
    }

    // Mode 3: any id and secret, encoded as RFC 6749 §2.3.1 says, read back
    // as themselves (when the request is otherwise acceptable).
    if let Some((id, secret)) = expected_basic {
        let conflicting = params.contains("client_secret")
            || params.get("client_id").is_some_and(|body_id| body_id != id);
        if !id.is_empty() && !conflicting {
            match &result {
                Ok(ClientCredentials::Basic {
                    id: got,
                    secret: got_secret,
                }) => {
                    assert_eq!(got, &id);
                    assert_eq!(got_secret.expose_secret(), secret);
                }
                other => panic!("form-encoded Basic credentials refused: {other:?}"),
            }
        }
    }
});
