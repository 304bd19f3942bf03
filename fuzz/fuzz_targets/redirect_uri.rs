//! Redirect URIs: `RedirectUri::parse` (registration) and the matching
//! /authorize does (`RedirectUri::matches`, through
//! `Client::verify_redirect_uri`).
//!
//! Input: the registered candidate and the requested URI, separated by the
//! first NUL byte (no NUL: the input is both).
//!
//! Asserts:
//! - never panics;
//! - a URI accepted for registration is kept verbatim, is absolute, has no
//!   fragment, wildcard or user information, and is https or http to a
//!   loopback IP literal (RFC 8252 §7.3, §8.3);
//! - a registered URI always matches itself;
//! - matching is exact string comparison (RFC 9700 §4.1.3, RFC 6749
//!   §3.1.2.3) except the RFC 8252 §7.3 rule: two distinct strings match
//!   only when both are http to the same loopback IP literal and differ only
//!   in the port, and the port a request names is a real port (0-65535), so
//!   the URI authd redirects to is one it would accept for registration;
//! - `Client::verify_redirect_uri` agrees with `matches` and redirects only
//!   to the string the request named (or, with none named, the only one
//!   registered).
#![no_main]

use authd::domain::{Client, ClientId, ClientKind, ClientName, RedirectUri, Scope};
use libfuzzer_sys::fuzz_target;
use url::{Host, Url};

/// `(host prefix, port text, rest)` of `http://127.0.0.1[:port]rest` or
/// `http://[::1][:port]rest`, where rest is empty or starts the path or
/// query: the only shape the loopback rule may relax.
fn loopback_parts(uri: &str) -> Option<(&'static str, &str, &str)> {
    let prefix = ["http://127.0.0.1", "http://[::1]"]
        .into_iter()
        .find(|prefix| uri.starts_with(prefix))?;
    let after = &uri[prefix.len()..];
    let (port, rest) = match after.strip_prefix(':') {
        Some(port_and_rest) => {
            let digits = port_and_rest.bytes().take_while(u8::is_ascii_digit).count();
            (&port_and_rest[..digits], &port_and_rest[digits..])
        }
        None => ("", after),
    };
    (rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'))
        .then_some((prefix, port, rest))
}

fn client(redirect_uris: Vec<RedirectUri>) -> Client {
    let now = chrono::DateTime::from_timestamp(1_900_000_000, 0).expect("a time");
    Client {
        id: ClientId::parse("fuzz-client").expect("client id"),
        name: ClientName::parse("fuzz client").expect("client name"),
        kind: ClientKind::Public,
        secret: None,
        redirect_uris,
        grant_types: Vec::new(),
        scope: Scope::default(),
        audiences: Vec::new(),
        post_logout_redirect_uris: Vec::new(),
        skip_consent: false,
        can_introspect: false,
        rate_tier: "default".into(),
        allowed_origins: Vec::new(),
        created_at: now,
        updated_at: now,
    }
}

fn check_registered(value: &str, uri: &RedirectUri) {
    assert_eq!(uri.as_str(), value, "kept verbatim");
    assert_eq!(uri.to_string(), value);
    assert!(!value.contains('#'), "fragment accepted (RFC 6749 §3.1.2)");
    assert!(!value.contains('*'), "wildcard accepted");
    assert!(
        !value.chars().any(|c| c.is_whitespace() || c.is_control()),
        "whitespace or control character accepted"
    );
    let url = Url::parse(value).expect("a registered URI is absolute");
    assert!(url.username().is_empty() && url.password().is_none());
    match url.scheme() {
        "https" => assert!(url.host().is_some()),
        "http" => assert!(
            matches!(url.host(), Some(Host::Ipv4(ip)) if ip.octets() == [127, 0, 0, 1])
                || matches!(url.host(), Some(Host::Ipv6(ip)) if ip.is_loopback()),
            "http to something other than a loopback IP literal: {value:?}"
        ),
        scheme => panic!("scheme {scheme:?} accepted"),
    }
    assert!(uri.matches(value), "a registered URI must match itself");
}

fn check_match(registered: &RedirectUri, requested: &str) {
    let matched = registered.matches(requested);
    if matched && registered.as_str() != requested {
        let (Some((prefix_r, port_r, rest_r)), Some((prefix_q, port_q, rest_q))) = (
            loopback_parts(registered.as_str()),
            loopback_parts(requested),
        ) else {
            panic!(
                "distinct strings matched outside the loopback rule: {:?} ~ {requested:?}",
                registered.as_str()
            );
        };
        assert_eq!(prefix_r, prefix_q, "different loopback hosts matched");
        assert_eq!(
            rest_r, rest_q,
            "loopback URIs differing beyond the port matched"
        );
        assert_ne!(port_r, port_q);
        // RFC 8252 §7.3 lets the port vary: it must still be a port.
        assert!(
            port_q.is_empty() || port_q.parse::<u16>().is_ok(),
            "requested loopback port {port_q:?} is not a port (0-65535): {requested:?} matched {:?}",
            registered.as_str()
        );
        assert!(
            RedirectUri::parse(requested).is_ok(),
            "matched {requested:?} is not itself a valid redirect URI"
        );
    }
    let only = client(vec![registered.clone()]);
    match only.verify_redirect_uri(Some(requested)) {
        Some(verified) => {
            assert!(matched, "verify_redirect_uri looser than matches");
            assert_eq!(verified.uri, requested);
            assert!(verified.explicit);
        }
        None => assert!(!matched, "verify_redirect_uri stricter than matches"),
    }
    let implicit = only.verify_redirect_uri(None).expect("one registered URI");
    assert_eq!(implicit.uri, registered.as_str());
    assert!(!implicit.explicit);
}

fuzz_target!(|data: &[u8]| {
    let (first, second) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, data),
    };
    let first = String::from_utf8_lossy(first);
    let second = String::from_utf8_lossy(second);

    let registered = RedirectUri::parse(&first);
    let _ = RedirectUri::parse(&second);
    if let Ok(uri) = &registered {
        check_registered(&first, uri);
        check_match(uri, &second);
        // With two registered, a request without redirect_uri is refused
        // (RFC 6749 §3.1.2.3).
        if let Ok(other) = RedirectUri::parse(&second) {
            check_registered(&second, &other);
            check_match(&other, &first);
            let both = client(vec![uri.clone(), other]);
            assert!(both.verify_redirect_uri(None).is_none());
        }
    }
});
