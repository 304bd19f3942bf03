//! The form parsing behind /token, /revoke and /introspect
//! (`src/http/form.rs` reads the body, `Params::parse` turns its bytes into
//! parameters; the authorization endpoint uses `Params::parse_keeping_repeats`).
//!
//! Asserts, for any bytes:
//! - neither function panics;
//! - RFC 6749 §3.1 / §3.2: a parameter sent twice (with non-empty values) is
//!   always rejected by `parse` and always named, once, by
//!   `parse_keeping_repeats`;
//! - a parameter sent without a value counts as omitted (§3.1);
//! - a successful parse holds exactly the form-decoded values that were sent,
//!   and those values, form-encoded again, parse back to the same;
//! - the error message, which becomes the response's `error_description`,
//!   stays within RFC 6749 §5.2's character set (%x20-21 / %x23-5B /
//!   %x5D-7E), whatever the repeated name was.
#![no_main]

use std::collections::HashMap;

use authd::oauth::Params;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The reference reading: every name with its non-empty values, in order.
    let mut order: Vec<String> = Vec::new();
    let mut values: HashMap<String, Vec<String>> = HashMap::new();
    let mut empty_only: Vec<String> = Vec::new();
    for (name, value) in form_urlencoded::parse(data) {
        if value.is_empty() {
            empty_only.push(name.into_owned());
            continue;
        }
        let entry = values.entry(name.to_string()).or_default();
        if entry.is_empty() {
            order.push(name.into_owned());
        }
        entry.push(value.into_owned());
    }
    // Names repeated, in the order their second occurrence appears.
    let mut expected_repeats: Vec<String> = Vec::new();
    {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (name, value) in form_urlencoded::parse(data) {
            if value.is_empty() {
                continue;
            }
            let count = seen.entry(name.to_string()).or_default();
            *count += 1;
            if *count == 2 {
                expected_repeats.push(name.into_owned());
            }
        }
    }

    let (kept, repeated) = Params::parse_keeping_repeats(data);
    assert_eq!(repeated, expected_repeats, "repeated names");
    for name in &order {
        // The first value wins in the lenient reading.
        assert_eq!(kept.get(name), Some(values[name][0].as_str()), "{name:?}");
    }

    match Params::parse(data) {
        Ok(params) => {
            assert!(
                expected_repeats.is_empty(),
                "a repeated parameter was accepted: {expected_repeats:?}"
            );
            let mut reencoded = form_urlencoded::Serializer::new(String::new());
            for name in &order {
                let value = params.get(name).expect("a sent parameter is held");
                assert_eq!(value, values[name][0], "{name:?}");
                assert!(!value.is_empty());
                reencoded.append_pair(name, value);
            }
            for name in &empty_only {
                if !values.contains_key(name) {
                    assert!(!params.contains(name), "an empty {name:?} is held");
                }
            }
            let reencoded = reencoded.finish();
            let again = Params::parse(reencoded.as_bytes()).expect("re-encoded form parses");
            for name in &order {
                assert_eq!(again.get(name), params.get(name), "{name:?} round trip");
            }
            // `take` hands the value over once.
            let mut params = params;
            if let Some(name) = order.first() {
                assert_eq!(params.take(name).as_deref(), Some(values[name][0].as_str()));
                assert!(!params.contains(name));
            }
        }
        Err(error) => {
            assert!(
                !expected_repeats.is_empty(),
                "rejected without a repeat: {error}"
            );
            assert_eq!(error.code(), "invalid_request");
            let message = error.to_string();
            // RFC 6749 §5.2: error_description "MUST NOT include characters
            // outside the set %x20-21 / %x23-5B / %x5D-7E".
            assert!(
                message.bytes().all(|b| b == 0x20
                    || b == 0x21
                    || (0x23..=0x5b).contains(&b)
                    || (0x5d..=0x7e).contains(&b)),
                "error_description outside RFC 6749 §5.2's characters: {message:?}"
            );
        }
    }
});
