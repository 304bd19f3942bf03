//! Redirect URIs as registered. The raw string is kept unnormalised: requests
//! will be compared to it as exact strings (RFC 9700 §4.1.3).
use std::fmt;

use url::{Host, Url};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUri(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRedirectUri {
    #[error("is not an absolute URI")]
    NotAbsolute,
    #[error("must not contain a fragment (RFC 6749 §3.1.2)")]
    Fragment,
    #[error("must not contain wildcards")]
    Wildcard,
    #[error("must not contain user information")]
    UserInfo,
    #[error("must use https, or http on a loopback IP literal (127.0.0.1 or [::1], RFC 8252 §7.3)")]
    Scheme,
}

impl RedirectUri {
    /// Validates a URI for registration: absolute, no fragment, no wildcard,
    /// https — or plain http to a loopback IP literal for native apps
    /// (RFC 8252 §7.3; `localhost` is not accepted, §8.3). `javascript:`,
    /// `data:`, `file:` and every other scheme fail the scheme rule whatever
    /// their letter case, since the URL parser lower-cases schemes.
    pub fn parse(value: &str) -> Result<Self, InvalidRedirectUri> {
        if value.contains('#') {
            return Err(InvalidRedirectUri::Fragment);
        }
        if value.contains('*') {
            return Err(InvalidRedirectUri::Wildcard);
        }
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(InvalidRedirectUri::NotAbsolute);
        }
        let url = Url::parse(value).map_err(|_| InvalidRedirectUri::NotAbsolute)?;
        if url.cannot_be_a_base() {
            return Err(InvalidRedirectUri::Scheme);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(InvalidRedirectUri::UserInfo);
        }
        let allowed = match url.scheme() {
            "https" => url.host().is_some(),
            "http" => {
                matches!(url.host(), Some(Host::Ipv4(ip)) if ip.is_loopback() && ip.octets() == [127, 0, 0, 1])
                    || matches!(url.host(), Some(Host::Ipv6(ip)) if ip.is_loopback())
            }
            _ => false,
        };
        if !allowed {
            return Err(InvalidRedirectUri::Scheme);
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a redirect URI presented in a request matches this registered
    /// one: exact string comparison (RFC 9700 §4.1.3, RFC 6749 §3.1.2.3),
    /// except that the port of a loopback IP literal may differ (RFC 8252
    /// §7.3: native apps listen on an ephemeral port).
    pub fn matches(&self, requested: &str) -> bool {
        if self.0 == requested {
            return true;
        }
        match (
            without_loopback_port(&self.0),
            without_loopback_port(requested),
        ) {
            (Some(registered), Some(requested)) => registered == requested,
            _ => false,
        }
    }
}

/// `http://127.0.0.1:PORT/rest` → `http://127.0.0.1/rest` (and the same for
/// `[::1]`); `None` for anything that is not plain http to a loopback IP
/// literal. Works on the raw string so that no normalisation sneaks in.
fn without_loopback_port(uri: &str) -> Option<String> {
    let host = ["http://127.0.0.1", "http://[::1]"]
        .into_iter()
        .find(|prefix| uri.starts_with(prefix))?;
    let rest = &uri[host.len()..];
    let rest = match rest.strip_prefix(':') {
        Some(after_colon) => {
            let digits = after_colon.bytes().take_while(u8::is_ascii_digit).count();
            // A real port: 1 to 5 digits that fit in 16 bits (`:99999` was
            // accepted before; found by the redirect_uri fuzz target).
            if digits == 0 || after_colon[..digits].parse::<u16>().is_err() {
                return None;
            }
            &after_colon[digits..]
        }
        None => rest,
    };
    (rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'))
        .then(|| format!("{host}{rest}"))
}

impl fmt::Display for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loopback_port_must_be_a_port() {
        let registered = RedirectUri::parse("http://127.0.0.1/cb").unwrap();
        assert!(registered.matches("http://127.0.0.1:65535/cb"));
        assert!(!registered.matches("http://127.0.0.1:99999/cb"));
        assert!(!registered.matches("http://127.0.0.1:65536/cb"));
    }

    #[test]
    fn accepts_https_and_loopback_http() {
        for good in [
            "https://app.example.com/callback",
            "https://app.example.com:8443/cb?tenant=a",
            "http://127.0.0.1/cb",
            "http://127.0.0.1:5000/cb",
            "http://[::1]:8080/cb",
        ] {
            assert_eq!(RedirectUri::parse(good).unwrap().as_str(), good);
        }
    }

    #[test]
    fn requests_match_exactly_except_a_loopback_port() {
        let registered = RedirectUri::parse("https://a.com/cb").unwrap();
        assert!(registered.matches("https://a.com/cb"));
        for bad in [
            "https://A.com/cb",
            "https://a.com/CB",
            "https://a.com/cb/",
            "https://a.com/cb?x=1",
            "https://a.com/cb/extra",
            "https://a.com/cb/../cb",
            "https://a.com/%63b",
            "https://a.com/cb%2F..%2Fadmin",
            "https://a.com@evil.com/cb",
            "https://a.com.evil.com/cb",
            "https://a.com:443/cb",
            "http://a.com/cb",
        ] {
            assert!(!registered.matches(bad), "{bad}");
        }
        let loopback = RedirectUri::parse("http://127.0.0.1:8000/cb").unwrap();
        assert!(loopback.matches("http://127.0.0.1:53211/cb"));
        assert!(loopback.matches("http://127.0.0.1/cb"));
        for bad in [
            "http://127.0.0.1:53211/other",
            "http://127.0.0.1:53211/cb/",
            "http://127.0.0.1.evil.com/cb",
            "http://127.0.0.1:/cb",
            "http://127.0.0.1:123456/cb",
            "http://[::1]:8000/cb",
            "https://127.0.0.1:8000/cb",
        ] {
            assert!(!loopback.matches(bad), "{bad}");
        }
        let v6 = RedirectUri::parse("http://[::1]/cb").unwrap();
        assert!(v6.matches("http://[::1]:4000/cb"));
    }

    #[test]
    fn rejects_unsafe_uris() {
        use InvalidRedirectUri::*;
        let cases = [
            ("/relative", NotAbsolute),
            ("https://app.example.com/cb#frag", Fragment),
            ("https://*.example.com/cb", Wildcard),
            ("https://user:pw@app.example.com/cb", UserInfo),
            ("http://app.example.com/cb", Scheme),
            ("http://localhost/cb", Scheme),
            ("http://127.0.0.2/cb", Scheme),
            ("javascript:alert(1)", Scheme),
            ("JavaScript:alert(1)", Scheme),
            ("DATA:text/html,hi", Scheme),
            ("File:///etc/passwd", Scheme),
            ("ftp://example.com/", Scheme),
            ("https://app.example.com/ cb", NotAbsolute),
        ];
        for (uri, expected) in cases {
            assert_eq!(RedirectUri::parse(uri), Err(expected), "{uri}");
        }
    }
}
