//! Request parameters as RFC 6749 defines them.
use std::collections::HashMap;

use super::Error;

/// Form or query parameters, checked once at the edge:
/// - RFC 6749 §3.1 / §3.2: "Request and response parameters MUST NOT be
///   included more than once" → a repeat is `invalid_request`;
/// - "Parameters sent without a value MUST be treated as if they were
///   omitted" → empty values are dropped.
/// - RFC 8707 §2 makes `resource` the exception: it may be repeated, and
///   every value counts ([`Params::all`]).
#[derive(Default)]
pub struct Params(HashMap<String, String>, HashMap<String, Vec<String>>);

/// Parameters a request may repeat (RFC 8707 §2: `resource`).
const REPEATABLE: [&str; 1] = ["resource"];

/// Names only: values may be passwords, secrets or codes.
impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.0.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_tuple("Params").field(&names).finish()
    }
}

impl Params {
    /// Parses `application/x-www-form-urlencoded` bytes; a repeated
    /// parameter is `invalid_request`.
    pub fn parse(encoded: &[u8]) -> Result<Self, Error> {
        let (params, repeated) = Self::parse_keeping_repeats(encoded);
        match repeated.first() {
            Some(name) => Err(Error::InvalidRequest(
                format!("parameter '{}' is repeated", printable(name)).into(),
            )),
            None => Ok(params),
        }
    }

    /// Parses, and names the repeated parameters instead of failing: the
    /// authorization endpoint answers a repeat differently depending on
    /// which parameter it is. Empty values are dropped before counting, so
    /// `scope=&scope=a` is one `scope`.
    pub fn parse_keeping_repeats(encoded: &[u8]) -> (Self, Vec<String>) {
        let mut params = HashMap::new();
        let mut multi: HashMap<String, Vec<String>> = HashMap::new();
        let mut repeated = Vec::new();
        for (name, value) in form_urlencoded::parse(encoded) {
            if value.is_empty() {
                continue;
            }
            if REPEATABLE.contains(&name.as_ref()) {
                let values = multi.entry(name.clone().into_owned()).or_default();
                if !values.iter().any(|v| v == value.as_ref()) {
                    values.push(value.clone().into_owned());
                }
                params
                    .entry(name.into_owned())
                    .or_insert_with(|| value.into_owned());
                continue;
            }
            if params.contains_key(name.as_ref()) {
                if !repeated.iter().any(|r| r == name.as_ref()) {
                    repeated.push(name.into_owned());
                }
                continue;
            }
            params.insert(name.into_owned(), value.into_owned());
        }
        (Self(params, multi), repeated)
    }

    /// Every value of a repeatable parameter, in order, each once.
    pub fn all(&self, name: &str) -> &[String] {
        self.1.get(name).map(Vec::as_slice).unwrap_or_default()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Removes and returns a value (a password, so it lives in one place).
    pub fn take(&mut self, name: &str) -> Option<String> {
        self.1.remove(name);
        self.0.remove(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

/// A parameter name fit to echo in an error: short and printable.
/// A parameter name as it may appear in an `error_description`: RFC 6749
/// §5.2 allows only %x20-21 / %x23-5B / %x5D-7E (no `"` and no `\`).
/// Found by the form fuzz target.
pub fn printable(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\')
        .take(40)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameter_is_invalid_request() {
        let error = Params::parse(b"grant_type=a&scope=x&scope=y").unwrap_err();
        assert_eq!(error.code(), "invalid_request");
        assert_eq!(error.to_string(), "parameter 'scope' is repeated");
        // RFC 6749 §5.2's character set: no quote and no backslash.
        let error = Params::parse(b"e%22e%5Co=1&e%22e%5Co=2").unwrap_err();
        assert_eq!(error.to_string(), "parameter 'eeo' is repeated");
    }

    #[test]
    fn empty_value_counts_as_omitted() {
        let params = Params::parse(b"grant_type=client_credentials&scope=").unwrap();
        assert_eq!(params.get("grant_type"), Some("client_credentials"));
        assert!(!params.contains("scope"));
    }

    #[test]
    fn empty_values_do_not_count_as_repeats() {
        let params = Params::parse(b"scope=&scope=a&state=").unwrap();
        assert_eq!(params.get("scope"), Some("a"));
        let (_, repeated) = Params::parse_keeping_repeats(b"a=1&b=2&a=3&a=4&b=5");
        assert_eq!(repeated, ["a", "b"]);
    }

    #[test]
    fn resource_may_repeat() {
        let params = Params::parse(
            b"resource=https%3A%2F%2Fa&resource=https%3A%2F%2Fb&resource=https%3A%2F%2Fa",
        )
        .unwrap();
        assert_eq!(params.all("resource"), ["https://a", "https://b"]);
        assert_eq!(params.get("resource"), Some("https://a"));
        assert!(params.all("scope").is_empty());
    }

    #[test]
    fn values_are_form_decoded() {
        let params = Params::parse(b"scope=a+b%3Ac").unwrap();
        assert_eq!(params.get("scope"), Some("a b:c"));
    }
}
