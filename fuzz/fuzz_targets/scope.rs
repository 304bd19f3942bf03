//! Scopes (RFC 6749 §3.3): `Scope::from_str` for request parameters and
//! `Scope::from_tokens` for registration.
//!
//! Asserts, for any string:
//! - never panics;
//! - parse(to_string(parse(x))) == parse(x);
//! - every token of an accepted scope is a scope-token:
//!   1*( %x21 / %x23-5B / %x5D-7E ), so none holds a space, '"' or '\';
//! - parsing is strict: an accepted string is its tokens joined by single
//!   spaces, and `from_tokens` over the same tokens agrees with `from_str`;
//! - set operations: both operands are subsets of their union.
#![no_main]

use authd::domain::Scope;
use libfuzzer_sys::fuzz_target;

fn is_scope_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

fn check_accepted(scope: &Scope) {
    for token in scope.iter() {
        assert!(
            is_scope_token(token),
            "token {token:?} is not a scope-token"
        );
        assert!(!token.contains([' ', '"', '\\']), "{token:?}");
        assert!(scope.contains(token));
    }
    let text = scope.to_string();
    if !scope.is_empty() {
        let again: Scope = text.parse().expect("a scope's own text parses");
        assert_eq!(&again, scope, "parse(to_string(parse(x))) != parse(x)");
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = text.parse::<Scope>();

    // The grammar, independently: single spaces between scope-tokens.
    let grammatical = text.split(' ').all(is_scope_token);
    assert_eq!(
        parsed.is_ok(),
        grammatical,
        "from_str disagrees with RFC 6749 §3.3 on {text:?}"
    );
    assert_eq!(
        Scope::from_tokens(text.split(' ')).ok(),
        parsed.clone().ok(),
        "from_tokens and from_str disagree on {text:?}"
    );

    if let Ok(scope) = &parsed {
        check_accepted(scope);
        for token in text.split(' ') {
            assert!(scope.contains(token), "{token:?} lost");
        }
        assert_eq!(scope.iter().count(), {
            let mut tokens: Vec<&str> = text.split(' ').collect();
            tokens.sort_unstable();
            tokens.dedup();
            tokens.len()
        });
    }

    // Registration passes tokens one by one: split on any byte the fuzzer
    // likes (here newlines), so tokens with spaces or quotes reach it.
    let tokens: Vec<&str> = text.split('\n').collect();
    match Scope::from_tokens(&tokens) {
        Ok(scope) => {
            assert!(tokens.iter().all(|t| is_scope_token(t)));
            check_accepted(&scope);
            if let Ok(other) = &parsed {
                let union = scope.union(other);
                assert!(scope.is_subset(&union) && other.is_subset(&union));
                check_accepted(&union);
            }
        }
        Err(_) => assert!(!tokens.iter().all(|t| is_scope_token(t))),
    }
});
