//! Request parameters as RFC 6749 defines them.
use std::collections::HashMap;

use super::Error;

/// Form or query parameters, checked once at the edge:
/// - RFC 6749 §3.1 / §3.2: "Request and response parameters MUST NOT be
///   included more than once" → a repeat is `invalid_request`;
/// - "Parameters sent without a value MUST be treated as if they were
///   omitted" → empty values are dropped.
#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

impl Params {
    /// Parses `application/x-www-form-urlencoded` bytes.
    pub fn parse(encoded: &[u8]) -> Result<Self, Error> {
        let mut params = HashMap::new();
        for (name, value) in form_urlencoded::parse(encoded) {
            if params.contains_key(name.as_ref()) {
                return Err(Error::InvalidRequest(
                    format!("parameter '{}' is repeated", printable(&name)).into(),
                ));
            }
            params.insert(name.into_owned(), value.into_owned());
        }
        params.retain(|_, value| !value.is_empty());
        Ok(Self(params))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

/// A parameter name fit to echo in an error: short and printable.
fn printable(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_graphic())
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
    }

    #[test]
    fn empty_value_counts_as_omitted() {
        let params = Params::parse(b"grant_type=client_credentials&scope=").unwrap();
        assert_eq!(params.get("grant_type"), Some("client_credentials"));
        assert!(!params.contains("scope"));
    }

    #[test]
    fn values_are_form_decoded() {
        let params = Params::parse(b"scope=a+b%3Ac").unwrap();
        assert_eq!(params.get("scope"), Some("a b:c"));
    }
}
