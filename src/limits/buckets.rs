//! Rate limits: which buckets exist, what they are keyed by, and the
//! numbers a response reports. The token buckets themselves are the
//! `governor` crate's (GCRA); this module only holds authd's policy.
//!
//! Why not actix-governor: it is GPL-3.0-or-later (authd is Apache-2.0 and
//! operators ship the binary), and two of the limits need facts a
//! middleware does not have: the client a `/token` request authenticated
//! as (its tier), and whether client authentication failed. The HTTP
//! middleware in `http/rate_limit.rs` applies the per-IP buckets; the
//! token endpoint applies the tier and failure buckets.
use std::collections::HashMap;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

use super::client_ip::IpKey;

/// `N/sec`, `N/min` or `N/hour`: a burst of N, refilled evenly over the
/// period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: NonZeroU32,
    pub per: Duration,
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || format!("expected N/sec, N/min or N/hour, got {text:?}");
        let (count, unit) = text.trim().split_once('/').ok_or_else(invalid)?;
        let count: u32 = count.trim().parse().map_err(|_| invalid())?;
        let count = NonZeroU32::new(count).ok_or_else(invalid)?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(invalid()),
        };
        Ok(Self { count, per })
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "sec",
            60 => "min",
            _ => "hour",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

impl Rate {
    /// The time one request's token takes to come back, in microseconds
    /// (at least 1): what the shared buckets count in.
    pub fn interval_micros(self) -> u64 {
        ((self.per / self.count.get()).as_micros() as u64).max(1)
    }

    /// This rate cut to one of `share` equal parts (at least 1 request):
    /// N replicas at their share admit at most the whole.
    pub fn divided(self, share: u32) -> Rate {
        let count = (self.count.get() / share.max(1)).max(1);
        Rate {
            count: NonZeroU32::new(count).expect("at least 1"),
            per: self.per,
        }
    }

    fn quota(self) -> Quota {
        let interval = (self.per / self.count.get()).max(Duration::from_nanos(1));
        Quota::with_period(interval)
            .expect("a non-zero interval")
            .allow_burst(self.count)
    }
}

/// The configured limits (`AUTHD_RATE_LIMIT_*`, `AUTHD_RATE_TIERS`).
#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    /// Every route, per client IP (JWKS and discovery excepted).
    pub ip: Rate,
    /// JWKS and discovery, per client IP.
    pub well_known: Rate,
    /// `POST /login`, per client IP.
    pub login: Rate,
    /// `/introspect`, per client IP.
    pub introspect: Rate,
    /// `POST /register` (dynamic client registration), per client IP.
    pub register: Rate,
    /// Failed client authentications per (client IP, client_id).
    pub client_auth_failures: Rate,
    /// `/token` per client, by the client's tier.
    pub tiers: Vec<(String, Rate)>,
}

pub const DEFAULT_TIER: &str = "standard";

impl Default for RateLimitSettings {
    fn default() -> Self {
        let rate = |text: &str| text.parse().expect("a valid default");
        Self {
            ip: rate("3000/min"),
            well_known: rate("12000/min"),
            login: rate("30/min"),
            introspect: rate("1200/min"),
            register: rate("20/hour"),
            client_auth_failures: rate("10/min"),
            tiers: vec![
                ("low".into(), rate("60/min")),
                (DEFAULT_TIER.into(), rate("600/min")),
                ("high".into(), rate("6000/min")),
            ],
        }
    }
}

impl RateLimitSettings {
    /// `name=RATE,name=RATE`; must name the `standard` tier.
    pub fn parse_tiers(text: &str) -> Result<Vec<(String, Rate)>, String> {
        let mut tiers = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, rate) = entry
                .split_once('=')
                .ok_or_else(|| format!("expected name=N/min, got {entry:?}"))?;
            let name = name.trim();
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(format!("tier names are letters, digits and '-': {name:?}"));
            }
            tiers.push((name.to_owned(), rate.parse()?));
        }
        if !tiers.iter().any(|(name, _)| name == DEFAULT_TIER) {
            return Err(format!(
                "must define the {DEFAULT_TIER:?} tier (clients without --rate-tier use it)"
            ));
        }
        Ok(tiers)
    }

    /// Every limit cut to one of `share` parts (the fallback of a replica
    /// that cannot reach Redis).
    pub fn divided(&self, share: u32) -> Self {
        Self {
            ip: self.ip.divided(share),
            well_known: self.well_known.divided(share),
            login: self.login.divided(share),
            introspect: self.introspect.divided(share),
            register: self.register.divided(share),
            client_auth_failures: self.client_auth_failures.divided(share),
            tiers: self
                .tiers
                .iter()
                .map(|(name, rate)| (name.clone(), rate.divided(share)))
                .collect(),
        }
    }

    /// The rate of a per-IP bucket.
    pub fn ip_rate(&self, bucket: IpBucket) -> Rate {
        match bucket {
            IpBucket::Every => self.ip,
            IpBucket::WellKnown => self.well_known,
            IpBucket::Login => self.login,
            IpBucket::Introspect => self.introspect,
            IpBucket::Register => self.register,
        }
    }

    /// The tier a client's `/token` requests count against: its own, or
    /// the standard tier for a name no longer configured.
    pub fn tier<'a>(&'a self, name: &'a str) -> (&'a str, Rate) {
        let standard = || RateLimitSettings::default().tiers[1].1;
        match self.tiers.iter().find(|(n, _)| n == name) {
            Some((name, rate)) => (name, *rate),
            None => (
                DEFAULT_TIER,
                self.tiers
                    .iter()
                    .find(|(n, _)| n == DEFAULT_TIER)
                    .map_or_else(standard, |(_, rate)| *rate),
            ),
        }
    }

    pub fn has_tier(&self, name: &str) -> bool {
        self.tiers.iter().any(|(n, _)| n == name)
    }

    pub fn tier_names(&self) -> Vec<&str> {
        self.tiers.iter().map(|(n, _)| n.as_str()).collect()
    }
}

/// The buckets keyed by client IP that the HTTP layer applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpBucket {
    Every,
    WellKnown,
    Login,
    Introspect,
    Register,
}

impl IpBucket {
    pub fn as_str(self) -> &'static str {
        match self {
            IpBucket::Every => "ip",
            IpBucket::WellKnown => "well_known",
            IpBucket::Login => "login",
            IpBucket::Introspect => "introspect",
            IpBucket::Register => "register",
        }
    }
}

/// What one bucket said: the numbers for `X-RateLimit-*` and, when the
/// request is refused, `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset: u64,
    /// `Some(seconds)` when refused.
    pub retry_after: Option<u64>,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        self.retry_after.is_none()
    }

    /// The decision that leaves the client less room (reported when a
    /// request passed several buckets).
    pub fn tighter(self, other: Decision) -> Decision {
        match (self.allowed(), other.allowed()) {
            (false, _) => self,
            (_, false) => other,
            _ if other.remaining < self.remaining => other,
            _ => self,
        }
    }
}

type Keyed<K> = RateLimiter<K, DashMapStateStore<K>, DefaultClock, StateInformationMiddleware>;

pub(crate) fn ceil_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

struct Bucket<K: Hash + Eq + Clone> {
    limiter: Keyed<K>,
    rate: Rate,
}

impl<K: Hash + Eq + Clone> Bucket<K> {
    fn new(rate: Rate) -> Self {
        Self {
            limiter: RateLimiter::dashmap(rate.quota())
                .with_middleware::<StateInformationMiddleware>(),
            rate,
        }
    }

    fn check(&self, key: &K, clock: &DefaultClock) -> Decision {
        let limit = self.rate.count.get();
        let interval = self.rate.quota().replenish_interval();
        match self.limiter.check_key(key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Decision {
                    limit,
                    remaining,
                    reset: ceil_secs(interval * (limit - remaining.min(limit))),
                    retry_after: None,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(clock.now());
                Decision {
                    limit,
                    remaining: 0,
                    reset: ceil_secs(interval * limit),
                    retry_after: Some(ceil_secs(wait).max(1)),
                }
            }
        }
    }

    fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// Counts of refused requests per bucket (read by `/metrics`).
#[derive(Debug, Default)]
pub struct RateLimitHits {
    counts: Mutex<HashMap<&'static str, u64>>,
    total: AtomicU64,
}

impl RateLimitHits {
    pub(crate) fn hit(&self, bucket: &'static str) {
        self.total.fetch_add(1, Ordering::Relaxed);
        *self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(bucket)
            .or_default() += 1;
    }

    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let mut counts: Vec<_> = self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        counts.sort();
        counts
    }
}

/// Every bucket of one process (`limiter::Limits` decides when these are
/// the ones counting, and counts the refusals).
pub struct RateLimits {
    clock: DefaultClock,
    every: Bucket<IpKey>,
    well_known: Bucket<IpKey>,
    login: Bucket<IpKey>,
    introspect: Bucket<IpKey>,
    register: Bucket<IpKey>,
    failures: Bucket<(IpKey, String)>,
    /// (IP, client_id) pairs that used up their failures, until when.
    blocked: Mutex<HashMap<(IpKey, String), Instant>>,
    tiers: HashMap<String, Bucket<String>>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits").finish_non_exhaustive()
    }
}

impl RateLimits {
    pub fn new(settings: &RateLimitSettings) -> Self {
        Self {
            clock: DefaultClock::default(),
            every: Bucket::new(settings.ip),
            well_known: Bucket::new(settings.well_known),
            login: Bucket::new(settings.login),
            introspect: Bucket::new(settings.introspect),
            register: Bucket::new(settings.register),
            failures: Bucket::new(settings.client_auth_failures),
            blocked: Mutex::new(HashMap::new()),
            tiers: {
                let mut tiers: HashMap<String, Bucket<String>> = settings
                    .tiers
                    .iter()
                    .map(|(name, rate)| (name.clone(), Bucket::new(*rate)))
                    .collect();
                // `check_tier` falls back to the standard tier: it always
                // exists, even for settings built in code.
                tiers
                    .entry(DEFAULT_TIER.to_owned())
                    .or_insert_with(|| Bucket::new(RateLimitSettings::default().tiers[1].1));
                tiers
            },
        }
    }

    /// Takes one request from `bucket` for `ip`.
    pub fn check_ip(&self, bucket: IpBucket, ip: IpKey) -> Decision {
        match bucket {
            IpBucket::Every => self.every.check(&ip, &self.clock),
            IpBucket::WellKnown => self.well_known.check(&ip, &self.clock),
            IpBucket::Login => self.login.check(&ip, &self.clock),
            IpBucket::Introspect => self.introspect.check(&ip, &self.clock),
            IpBucket::Register => self.register.check(&ip, &self.clock),
        }
    }

    /// Refuses a client that used up its failed authentications from this
    /// IP, before its credentials are even checked.
    pub fn client_auth_blocked(&self, ip: IpKey, client_id: &str) -> Option<Decision> {
        let key = (ip, client_id.to_owned());
        let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        let until = *blocked.get(&key)?;
        let now = Instant::now();
        if until <= now {
            blocked.remove(&key);
            return None;
        }
        let rate = self.failures.rate;
        Some(Decision {
            limit: rate.count.get(),
            remaining: 0,
            reset: ceil_secs(rate.per),
            retry_after: Some(ceil_secs(until.duration_since(now)).max(1)),
        })
    }

    /// Records a failed client authentication. The failure that empties the
    /// bucket blocks the pair until the bucket admits one again: N failures
    /// are answered 401, the next request 429.
    pub fn client_auth_failed(&self, ip: IpKey, client_id: &str) {
        let key = (ip, client_id.to_owned());
        let decision = self.failures.check(&key, &self.clock);
        let wait = match decision.retry_after {
            Some(seconds) => Some(Duration::from_secs(seconds)),
            None if decision.remaining == 0 => {
                Some(self.failures.rate.quota().replenish_interval())
            }
            None => None,
        };
        if let Some(wait) = wait {
            let until = Instant::now() + wait;
            self.blocked
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, until);
        }
    }

    /// Takes one `/token` request from the client's tier bucket (an unknown
    /// tier name, e.g. removed from the configuration, counts as standard).
    pub fn check_tier(&self, tier: &str, client_id: &str) -> Decision {
        let bucket = self
            .tiers
            .get(tier)
            .or_else(|| self.tiers.get(DEFAULT_TIER))
            .expect("the standard tier exists");
        bucket.check(&client_id.to_owned(), &self.clock)
    }

    /// Drops the state of keys that are full again (every minute), so a
    /// flood from many addresses does not grow memory for good.
    pub fn forget_idle(&self) {
        self.every.forget_idle();
        self.well_known.forget_idle();
        self.login.forget_idle();
        self.introspect.forget_idle();
        self.register.forget_idle();
        self.failures.forget_idle();
        for bucket in self.tiers.values() {
            bucket.forget_idle();
        }
        let now = Instant::now();
        self.blocked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, until| *until > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    use crate::limits::client_ip::{ClientIp, DEFAULT_IPV6_PREFIX};

    fn key(text: &str) -> IpKey {
        IpKey::new(text.parse().unwrap(), DEFAULT_IPV6_PREFIX)
    }

    #[test]
    fn ipv6_clients_are_counted_by_prefix() {
        let one = key("2001:db8:1:2:aaaa::1");
        assert_eq!(one, key("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        assert_ne!(one, key("2001:db8:1:3::1"));
        let by_48 = |text: &str| IpKey::new(text.parse().unwrap(), 48);
        assert_eq!(by_48("2001:db8:1:2::1"), by_48("2001:db8:1:ffff::1"));
        let exact = |text: &str| IpKey::new(text.parse().unwrap(), 128);
        assert_ne!(exact("2001:db8::1"), exact("2001:db8::2"));
        // IPv4 is per address, also when it arrives IPv4-mapped.
        assert_ne!(key("192.0.2.1"), key("192.0.2.2"));
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
        assert_eq!(
            ClientIp::new("::ffff:192.0.2.1".parse().unwrap(), 64).addr,
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
        // One /64 shares one bucket.
        let settings = RateLimitSettings {
            ip: "2/hour".parse().unwrap(),
            ..Default::default()
        };
        let limits = RateLimits::new(&settings);
        assert!(
            limits
                .check_ip(IpBucket::Every, key("2001:db8::1"))
                .allowed()
        );
        assert!(
            limits
                .check_ip(IpBucket::Every, key("2001:db8::2"))
                .allowed()
        );
        assert!(
            !limits
                .check_ip(IpBucket::Every, key("2001:db8::3"))
                .allowed()
        );
        assert!(
            limits
                .check_ip(IpBucket::Every, key("2001:db8:0:1::1"))
                .allowed()
        );
    }

    #[test]
    fn rates_parse_and_print() {
        let rate: Rate = "600/min".parse().unwrap();
        assert_eq!(rate.count.get(), 600);
        assert_eq!(rate.per, Duration::from_secs(60));
        assert_eq!(rate.to_string(), "600/min");
        for bad in ["0/min", "ten/min", "10", "10/day", "-1/sec", ""] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn tiers_must_include_standard() {
        let tiers = RateLimitSettings::parse_tiers("standard=10/min, gold=100/sec").unwrap();
        assert_eq!(tiers.len(), 2);
        assert!(RateLimitSettings::parse_tiers("gold=100/sec").is_err());
        assert!(RateLimitSettings::parse_tiers("standard").is_err());
        assert!(RateLimitSettings::parse_tiers("st andard=1/min").is_err());
    }

    #[test]
    fn a_bucket_admits_its_burst_then_refuses_with_a_wait() {
        let settings = RateLimitSettings {
            ip: "3/hour".parse().unwrap(),
            ..Default::default()
        };
        let limits = RateLimits::new(&settings);
        let ip = key("192.0.2.1");
        let seen: Vec<u32> = (0..3)
            .map(|_| limits.check_ip(IpBucket::Every, ip).remaining)
            .collect();
        assert_eq!(seen, vec![2, 1, 0]);
        let refused = limits.check_ip(IpBucket::Every, ip);
        assert!(!refused.allowed());
        let wait = refused.retry_after.unwrap();
        assert!((1100..=1200).contains(&wait), "{wait}");
        assert_eq!(refused.limit, 3);
        // Another address has its own bucket.
        let other = key("192.0.2.2");
        assert!(limits.check_ip(IpBucket::Every, other).allowed());
    }

    #[test]
    fn a_share_is_a_whole_part_of_the_limit_and_never_zero() {
        let rate: Rate = "60/min".parse().unwrap();
        assert_eq!(rate.divided(3).count.get(), 20);
        assert_eq!(rate.divided(7).count.get(), 8);
        assert_eq!(rate.divided(1000).count.get(), 1);
        assert_eq!(rate.divided(0), rate);
        assert_eq!(rate.divided(3).per, rate.per);
        assert_eq!(rate.interval_micros(), 1_000_000);
        assert_eq!("1000000/sec".parse::<Rate>().unwrap().interval_micros(), 1);
        let settings = RateLimitSettings::default().divided(2);
        assert_eq!(settings.tier("standard").1.count.get(), 300);
        assert_eq!(settings.tier("gone").0, DEFAULT_TIER);
        assert_eq!(settings.ip_rate(IpBucket::Login).count.get(), 15);
    }

    #[test]
    fn failed_client_authentications_block_the_pair_only() {
        let settings = RateLimitSettings {
            client_auth_failures: "2/hour".parse().unwrap(),
            ..Default::default()
        };
        let limits = RateLimits::new(&settings);
        let ip = key("192.0.2.1");
        for _ in 0..2 {
            assert!(limits.client_auth_blocked(ip, "c1").is_none());
            limits.client_auth_failed(ip, "c1");
        }
        let blocked = limits.client_auth_blocked(ip, "c1").expect("blocked");
        assert!(blocked.retry_after.unwrap() > 1000);
        assert!(limits.client_auth_blocked(ip, "c2").is_none());
        let elsewhere = key("192.0.2.9");
        assert!(limits.client_auth_blocked(elsewhere, "c1").is_none());
    }
}
