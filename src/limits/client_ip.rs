//! The client's address: the peer, or behind trusted proxies the one
//! header the operator named; and what every per-address limit counts
//! against (`IpKey`: IPv4 address or IPv6 prefix).
use std::net::IpAddr;
use std::str::FromStr;

/// The one header authd reads a client's address from, when the peer is a
/// trusted proxy (`AUTHD_CLIENT_IP_HEADER`): the one the operator's proxy
/// writes. Any other forwarding header is the client's own and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientIpHeader {
    /// `X-Forwarded-For`, which nginx, HAProxy, Envoy and cloud load
    /// balancers append to.
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=…`.
    Forwarded,
    /// `X-Real-IP`, set (not appended) by the proxy.
    XRealIp,
}

impl FromStr for ClientIpHeader {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(Self::XForwardedFor),
            "forwarded" => Ok(Self::Forwarded),
            "x-real-ip" => Ok(Self::XRealIp),
            _ => Err(format!(
                "expected x-forwarded-for, forwarded or x-real-ip, got {text:?}"
            )),
        }
    }
}

impl ClientIpHeader {
    pub fn name(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
            Self::XRealIp => "x-real-ip",
        }
    }
}

/// How authd finds a client's address: `AUTHD_TRUSTED_PROXIES`,
/// `AUTHD_CLIENT_IP_HEADER`, `AUTHD_IPV6_PREFIX`.
#[derive(Debug, Clone)]
pub struct ClientIpSettings {
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub header: ClientIpHeader,
    /// IPv6 clients are counted by this prefix (one /64 is one subscriber).
    pub ipv6_prefix: u8,
}

pub const DEFAULT_IPV6_PREFIX: u8 = 64;
/// Shorter prefixes would lump whole providers into one bucket.
pub const IPV6_PREFIXES: std::ops::RangeInclusive<u8> = 32..=128;

impl Default for ClientIpSettings {
    fn default() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            header: ClientIpHeader::default(),
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
        }
    }
}

/// What a per-address limit counts against: an IPv4 address, or an IPv6
/// address cut to its prefix, since one subscriber holds a whole /64 (2^64
/// addresses; RFC 6177) and would otherwise get as many fresh buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpKey(IpAddr);

impl IpKey {
    /// The key as 16 bytes (IPv4 mapped into IPv6), to hash for Redis.
    pub fn to_bytes(self) -> [u8; 16] {
        match self.0 {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        }
    }

    pub fn new(ip: IpAddr, ipv6_prefix: u8) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => {
                let prefix = u32::from(ipv6_prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
                Self(IpAddr::V6((u128::from(v6) & mask).into()))
            }
        }
    }
}

/// A client's address as authd believes it: `addr` for the audit log and
/// the request log, `key` for every limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp {
    pub addr: IpAddr,
    pub key: IpKey,
}

impl ClientIp {
    pub fn new(addr: IpAddr, ipv6_prefix: u8) -> Self {
        let addr = addr.to_canonical();
        Self {
            addr,
            key: IpKey::new(addr, ipv6_prefix),
        }
    }
}

/// The address of the client: the one function every consumer of a client
/// IP goes through (per-IP buckets, login throttle, client-authentication
/// failures, audit, CORS preflights, the request log), called once per
/// request by `http::rate_limit::admit`.
///
/// The peer, unless the peer is a trusted proxy; then the one header the
/// operator named (`AUTHD_CLIENT_IP_HEADER`), read right to left, skipping
/// trusted proxies (RFC 7239 §8.1): the first address that is not a trusted
/// proxy is the client. Everything left of it was written by the client,
/// and so is any other forwarding header: a proxy appends to the header it
/// writes and passes the others through untouched.
///
/// `header_lines` gives the lines of the request's header of a name (the
/// caller's HTTP framework stays out of this module).
pub fn client_ip<'a, L>(
    peer: Option<IpAddr>,
    header_lines: impl FnOnce(&'static str) -> L,
    settings: &ClientIpSettings,
) -> Option<ClientIp>
where
    L: IntoIterator<Item = &'a [u8]>,
{
    let believe = |ip: IpAddr| ClientIp::new(ip, settings.ipv6_prefix);
    let peer = peer?.to_canonical();
    let is_trusted = |ip: &IpAddr| settings.trusted_proxies.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(believe(peer));
    }
    let mut nearest = peer;
    let lines = header_lines(settings.header.name());
    for hop in forwarded_chain(lines, settings.header).iter().rev() {
        match hop.map(|ip| ip.to_canonical()) {
            Some(ip) if is_trusted(&ip) => nearest = ip,
            Some(ip) => return Some(believe(ip)),
            // An obfuscated or unparsable hop: nothing left of it can be
            // believed; the last trusted hop stands for the client.
            None => return Some(believe(nearest)),
        }
    }
    Some(believe(nearest))
}

/// The hops the named header lists, in order (several header lines are one
/// list, RFC 9110 §5.3). Each hop is parsed on its own, so a hop the client
/// wrote in bytes that are not text spoils only itself, not the hops the
/// proxies appended on its right.
fn forwarded_chain<'a>(
    lines: impl IntoIterator<Item = &'a [u8]>,
    header: ClientIpHeader,
) -> Vec<Option<IpAddr>> {
    let hops = lines
        .into_iter()
        .flat_map(|line| line.split(|b| *b == b','))
        .map(|hop| std::str::from_utf8(hop).ok());
    match header {
        ClientIpHeader::Forwarded => hops
            .map(|element| {
                // RFC 7239 §4: `for=` among the element's pairs; an element
                // without one names no address.
                element?.split(';').find_map(|pair| {
                    let (name, value) = pair.split_once('=')?;
                    name.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| parse_node(value.trim().trim_matches('"')))
                })?
            })
            .collect(),
        ClientIpHeader::XForwardedFor | ClientIpHeader::XRealIp => {
            hops.map(|hop| parse_node(hop?.trim())).collect()
        }
    }
}

/// `192.0.2.1`, `192.0.2.1:443`, `[2001:db8::1]`, `[2001:db8::1]:443`,
/// `2001:db8::1`; anything else (`unknown`, `_hidden`) is `None`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (host, _port) = node.rsplit_once(':')?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request's header lines, by name.
    type Headers = Vec<(&'static str, Vec<u8>)>;

    fn headers(pairs: &[(&'static str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(name, value)| (*name, value.as_bytes().to_vec()))
            .collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn settings(trusted: &[&str], header: ClientIpHeader) -> ClientIpSettings {
        ClientIpSettings {
            trusted_proxies: trusted.iter().map(|t| t.parse().unwrap()).collect(),
            header,
            ipv6_prefix: 64,
        }
    }

    fn believe(peer: &str, headers: &Headers, settings: &ClientIpSettings) -> Option<ClientIp> {
        let lines = |name: &'static str| {
            headers
                .iter()
                .filter(move |(line, _)| line.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.as_slice())
        };
        client_ip(Some(ip(peer)), lines, settings)
    }

    fn believed(peer: &str, headers: &Headers, settings: &ClientIpSettings) -> IpAddr {
        believe(peer, headers, settings).unwrap().addr
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let trusted = settings(&["10.0.0.0/8"], ClientIpHeader::XForwardedFor);
        let spoof = headers(&[("x-forwarded-for", "1.2.3.4")]);
        // An untrusted peer's headers are ignored.
        assert_eq!(believed("203.0.113.7", &spoof, &trusted), ip("203.0.113.7"));
        // No trusted proxies configured (the default): never believed.
        let nobody = settings(&[], ClientIpHeader::XForwardedFor);
        assert_eq!(believed("10.0.0.1", &spoof, &nobody), ip("10.0.0.1"));
        // Behind a trusted proxy: the rightmost untrusted hop, whatever
        // the client wrote on the left.
        let chain = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.2, 10.0.0.9")]);
        assert_eq!(believed("10.0.0.1", &chain, &trusted), ip("198.51.100.2"));
        // Several header lines form one list.
        let lines = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.3"),
        ]);
        assert_eq!(believed("10.0.0.1", &lines, &trusted), ip("198.51.100.3"));
        // A trusted peer with no header is the client.
        assert_eq!(
            believed("10.0.0.1", &Headers::new(), &trusted),
            ip("10.0.0.1")
        );
    }

    /// Security review finding 1: nginx, HAProxy and Envoy append to
    /// X-Forwarded-For and pass a client's own `Forwarded` through. Only
    /// the header the operator named is read.
    #[test]
    fn only_the_named_header_is_read() {
        let xff = settings(&["10.0.0.0/8"], ClientIpHeader::XForwardedFor);
        let spoofed = headers(&[
            ("forwarded", "for=198.51.100.66"),
            ("x-real-ip", "198.51.100.67"),
            ("x-forwarded-for", "203.0.113.5"),
        ]);
        assert_eq!(believed("10.0.0.1", &spoofed, &xff), ip("203.0.113.5"));
        // Without the named header the proxy itself stands for the client,
        // never the client's own `Forwarded`.
        let only_forwarded = headers(&[("forwarded", "for=198.51.100.66")]);
        assert_eq!(believed("10.0.0.1", &only_forwarded, &xff), ip("10.0.0.1"));

        let rfc7239 = settings(&["10.0.0.0/8"], ClientIpHeader::Forwarded);
        let forwarded = headers(&[
            (
                "forwarded",
                r#"for=6.6.6.6, for="[2001:db8::7]:4711";proto=https"#,
            ),
            ("x-forwarded-for", "198.51.100.9"),
        ]);
        assert_eq!(
            believed("10.0.0.1", &forwarded, &rfc7239),
            ip("2001:db8::7")
        );
        let port = headers(&[("forwarded", "for=192.0.2.60:8080")]);
        assert_eq!(believed("10.0.0.1", &port, &rfc7239), ip("192.0.2.60"));
        // An obfuscated hop: the last trusted hop stands for the client.
        let hidden = headers(&[("forwarded", "for=_hidden, for=10.0.0.5")]);
        assert_eq!(believed("10.0.0.1", &hidden, &rfc7239), ip("10.0.0.5"));
        // X-Forwarded-For is the client's own when the proxy writes Forwarded.
        let xff_only = headers(&[("x-forwarded-for", "198.51.100.9")]);
        assert_eq!(believed("10.0.0.1", &xff_only, &rfc7239), ip("10.0.0.1"));

        let real_ip = settings(&["10.0.0.0/8"], ClientIpHeader::XRealIp);
        assert_eq!(
            believed("10.0.0.1", &spoofed, &real_ip),
            ip("198.51.100.67")
        );
    }

    #[test]
    fn a_hop_that_is_not_text_spoils_only_itself() {
        let trusted = settings(&["10.0.0.0/8"], ClientIpHeader::XForwardedFor);
        let map: Headers = vec![("x-forwarded-for", b"\xff\xfe, 198.51.100.4".to_vec())];
        assert_eq!(believed("10.0.0.1", &map, &trusted), ip("198.51.100.4"));
    }

    #[test]
    fn ipv4_mapped_peers_and_hops_are_ipv4() {
        let trusted = settings(&["10.0.0.0/8"], ClientIpHeader::XForwardedFor);
        let chain = headers(&[("x-forwarded-for", "::ffff:198.51.100.8")]);
        assert_eq!(
            believed("::ffff:10.0.0.1", &chain, &trusted),
            ip("198.51.100.8")
        );
        let believed_v6 = believe("2001:db8::1", &Headers::new(), &trusted).unwrap();
        assert_eq!(believed_v6.key, IpKey::new(ip("2001:db8::ffff"), 64));
    }

    #[test]
    fn the_client_ip_header_is_named_by_the_operator() {
        assert_eq!(
            "X-Forwarded-For".parse::<ClientIpHeader>(),
            Ok(ClientIpHeader::XForwardedFor)
        );
        assert_eq!(
            "forwarded".parse::<ClientIpHeader>(),
            Ok(ClientIpHeader::Forwarded)
        );
        assert_eq!(
            "x-real-ip".parse::<ClientIpHeader>(),
            Ok(ClientIpHeader::XRealIp)
        );
        assert!("x-client-ip".parse::<ClientIpHeader>().is_err());
    }
}
