//! The login failure throttle: failed logins per username and per client
//! IP, with growing delays, in this process's memory.
use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

use super::client_ip::{ClientIp, IpKey};

/// The throttle keys of an attempt: the username, then the client IP.
pub(crate) fn throttle_keys(username: &str, ip: Option<ClientIp>) -> [ThrottleKey; 2] {
    [
        ThrottleKey::Username(throttled_username(username)),
        ThrottleKey::Ip(ip.map(|ip| ip.key)),
    ]
}

/// What of a typed username is counted: its first 64 characters (a key
/// must not grow with whatever is typed).
pub(crate) fn throttled_username(username: &str) -> String {
    username.chars().take(64).collect()
}

/// Failures allowed before delays start, for the username and the
/// address: a person mistypes a few times; many people share an IP
/// (offices, carrier NAT).
pub(crate) const FREE_FAILURES: [u32; 2] = [5, 20];
/// A key is forgotten this long after its last failure.
pub(crate) const FORGET_AFTER: std::time::Duration = std::time::Duration::from_secs(15 * 60);
/// The longest delay.
pub(crate) const MAX_DELAY: std::time::Duration = std::time::Duration::from_secs(15 * 60);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ThrottleKey {
    Username(String),
    Ip(Option<IpKey>),
}

impl ThrottleKey {
    fn free_failures(&self) -> u32 {
        match self {
            ThrottleKey::Username(_) => FREE_FAILURES[0],
            ThrottleKey::Ip(_) => FREE_FAILURES[1],
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: DateTime<Utc>,
    blocked_until: DateTime<Utc>,
}

/// Failed logins per username and per IP, in this process's memory: after
/// the free failures each further one doubles the wait (1 s, 2 s, 4 s … up
/// to 15 min). A key is forgotten 15 minutes after its last failure.
/// authd's own logic: the rate limiter crate (issue 7) counts requests, not
/// failures that a success resets.
pub struct LoginThrottle {
    failures: Mutex<HashMap<ThrottleKey, Failures>>,
    /// Free failures are divided by this (a replica's share while Redis,
    /// which counts for all of them, is away).
    share: u32,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::with_share(1)
    }
}

const FORGET: Duration = Duration::seconds(FORGET_AFTER.as_secs() as i64);
const MAX_DELAY_SECONDS: i64 = MAX_DELAY.as_secs() as i64;
/// Bound on remembered keys, so a flood of usernames cannot exhaust memory.
const MAX_KEYS: usize = 100_000;

impl LoginThrottle {
    /// A throttle that allows `1 / share` of the free failures (at least
    /// one).
    pub fn with_share(share: u32) -> Self {
        Self {
            failures: Mutex::new(HashMap::new()),
            share: share.max(1),
        }
    }

    /// In one critical section: refuses while any key is blocked, otherwise
    /// counts this attempt as a failure (taken back by `succeeded`).
    pub(crate) fn reserve(&self, keys: &[ThrottleKey], now: DateTime<Utc>) -> Result<(), u64> {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(retry_after) = Self::blocked_in(&failures, keys, now) {
            return Err(retry_after);
        }
        Self::fail_in(&mut failures, keys, now, self.share);
        Ok(())
    }

    /// Whether any key is blocked now (counts nothing).
    pub(crate) fn blocked(&self, keys: &[ThrottleKey], now: DateTime<Utc>) -> Option<u64> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        Self::blocked_in(&failures, keys, now)
    }

    fn blocked_in(
        failures: &HashMap<ThrottleKey, Failures>,
        keys: &[ThrottleKey],
        now: DateTime<Utc>,
    ) -> Option<u64> {
        keys.iter()
            .filter_map(|key| failures.get(key))
            .filter(|f| f.blocked_until > now)
            .map(|f| ((f.blocked_until - now).num_milliseconds() + 999) / 1000)
            .map(|seconds| seconds.max(1) as u64)
            .max()
    }

    #[cfg(test)]
    pub(crate) fn failed(&self, keys: &[ThrottleKey], now: DateTime<Utc>) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        Self::fail_in(&mut failures, keys, now, self.share);
    }

    fn fail_in(
        failures: &mut HashMap<ThrottleKey, Failures>,
        keys: &[ThrottleKey],
        now: DateTime<Utc>,
        share: u32,
    ) {
        if failures.len() >= MAX_KEYS {
            failures.retain(|_, f| now - f.last < FORGET);
        }
        for key in keys {
            let entry = failures.entry(key.clone()).or_insert(Failures {
                count: 0,
                last: now,
                blocked_until: now,
            });
            if now - entry.last >= FORGET {
                entry.count = 0;
            }
            entry.count += 1;
            entry.last = now;
            let free = (key.free_failures() / share).max(1);
            if let Some(over) = entry.count.checked_sub(free) {
                let delay = 1i64
                    .checked_shl(over.min(20))
                    .unwrap_or(MAX_DELAY_SECONDS)
                    .min(MAX_DELAY_SECONDS);
                entry.blocked_until = now + Duration::seconds(delay);
            }
        }
    }

    /// A success clears the username's count and takes back the attempt
    /// `reserve` counted against the IP.
    pub(crate) fn succeeded(&self, keys: &[ThrottleKey]) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for key in keys {
            match key {
                ThrottleKey::Username(_) => {
                    failures.remove(key);
                }
                ThrottleKey::Ip(_) => {
                    if let Some(entry) = failures.get_mut(key) {
                        entry.count = entry.count.saturating_sub(1);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_start_after_the_free_failures_and_grow() {
        let throttle = LoginThrottle::default();
        let keys = throttle_keys("alice", None);
        let start = Utc::now();
        for _ in 0..4 {
            throttle.failed(&keys, start);
            assert_eq!(throttle.blocked(&keys, start), None);
        }
        throttle.failed(&keys, start);
        assert_eq!(throttle.blocked(&keys, start), Some(1));
        throttle.failed(&keys, start);
        assert_eq!(throttle.blocked(&keys, start), Some(2));
        assert_eq!(throttle.blocked(&keys, start + Duration::seconds(3)), None);
        throttle.succeeded(&keys);
        assert_eq!(throttle.blocked(&keys, start), None);
    }

    #[test]
    fn parallel_attempts_are_counted_before_they_are_checked() {
        let throttle = LoginThrottle::default();
        let keys = throttle_keys("carol", None);
        let now = Utc::now();
        // Sixty guesses arriving together: only the free ones get through.
        let admitted = (0..60)
            .filter(|_| throttle.reserve(&keys, now).is_ok())
            .count();
        assert_eq!(admitted, 5);
    }

    #[test]
    fn a_share_of_the_free_failures_is_allowed() {
        let throttle = LoginThrottle::with_share(3);
        let keys = throttle_keys("dave", None);
        let now = Utc::now();
        assert!(throttle.reserve(&keys, now).is_ok());
        assert!(
            throttle.reserve(&keys, now).is_err(),
            "5 / 3 replicas = 1 free failure each"
        );
    }

    #[test]
    fn failures_are_forgotten_after_a_quiet_period() {
        let throttle = LoginThrottle::default();
        let keys = throttle_keys("bob", None);
        let start = Utc::now();
        for _ in 0..5 {
            throttle.failed(&keys, start);
        }
        let later = start + FORGET;
        throttle.failed(&keys, later);
        assert_eq!(throttle.blocked(&keys, later), None);
    }
}
